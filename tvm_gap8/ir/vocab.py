"""The words the passes, schedules, cost model and report share: attribute and annotation keys,
buffer roles, copy directions, traffic keys, memory scopes. Defined once, here, on the bottom
floor (this module imports nothing of ours), so that no two modules spell a key differently and
no module imports another just for a name.
"""

# -- data layouts of an activation tensor or tile (kernels/layout.py: what they mean) ------------
CHW = "CHW"  # channels, rows, columns (NCHW in L2; ONNX's order)
HWC = "HWC"  # rows, columns, channels (NHWC)
LAYOUTS = (CHW, HWC)

# -- memory scopes of the lowered TIR ------------------------------------------------------------
#: GAP8's cluster L1 (TCDM). Lowering accepts the ``global.<tag>`` form for both the llvm and c
#: targets (checked on apache-tvm 0.27); a bare ``l1`` is rejected.
L1_SCOPE = "global.l1"

# -- block annotations of a scheduled kernel (read by cost.ir and the tests) -------------------
COPY_ANN = "gap8.copy"  # on a copy block: its direction
ROLE_ANN = "gap8.role"  # on a copy block or the intermediate's producer: the buffer's role
TRANSPOSE_ANN = "gap8.transpose"  # on a copy block that transposes the layout (HWC <-> CHW)
TILE_ANN = "gap8.tile"  # on a tile loop: the plan's axis it walks ("rows", "channels", ...)
SPLIT_ANN = "gap8.split"  # on a compute loop: the one its nest splits over the cores
#: on a block that sets a padded tile to its pad value before another block computes the
#: tile's interior: (row axis, column axis, top, left, rows, columns) of that interior, in the
#: stored tile's indices (the C stores the ring around it only: emitc/plainc.py)
RING_ANN = "gap8.ring"
#: on the split loop of a chain's expansion whose first iterations compute the rows of its
#: expanded tile that the row tile before also needed: (rows kept, rows a tile advances,
#: iterations per row, row axis of the stored tile, image rows among the first tile's kept
#: rows). ``ir/halo.py`` computes them on the first row tile only and moves them up from the
#: previous tile's last rows on the others.
HALO_ANN = "gap8.halo"
PAR_ANN = "gap8.parallel"  # on the loop the C splits over the cores (emitc/core_split.py)

# copy directions
L2_TO_L1 = "l2_to_l1"
L1_TO_L2 = "l1_to_l2"

# buffer roles
INPUT = "input"
WEIGHT = "weight"
OUTPUT = "output"
INTERMEDIATE = "intermediate"

# -- traffic keys (plans, the IR counts and report.json) --------------------------------------
L2_TO_L1_ACT = "l2_to_l1_act"
L1_TO_L2_ACT = "l1_to_l2_act"
L2_TO_L1_WGT = "l2_to_l1_wgt"
DMA_TRANSFERS = "dma_transfers"
L2_TO_L1_TRANSPOSED = "l2_to_l1_transposed"  # the part of l2_to_l1_act copied transposing
L3_TO_L2 = "l3_to_l2"
L2_TO_L3 = "l2_to_l3"  # activations the placement put in L3, written back through L2

# -- attributes of a composite function (set by the fusion / formation passes) -----------------
KIND_ATTR = "gap8.kind"  # also on the lowered PrimFunc
LAYOUTS_ATTR = "gap8.layouts"  # also on the lowered PrimFunc
ONNX_NODES_ATTR = "gap8.onnx_nodes"
LAYER_ATTR = "gap8.layer"

# -- attributes of a lowered kernel's PrimFunc ----------------------------------------------
INTEGER_ATTR = "gap8.integer"
MACS_ATTR = "gap8.macs"
WORK_ATTR = "gap8.work"  # the work counted by kind (cost/work.py): what the calibration prices
PLAN_ATTR = "gap8.plan"  # the tile: rows, channels, tile counts, double buffering
PLAN_FIGURES_ATTR = "gap8.plan_figures"  # the plan's L1 bytes, traffic, transfers, cycles
EPILOGUES_ATTR = "gap8.epilogues"
PLACEMENT_ATTR = "gap8.placement"  # where the weights live (L2, or L3 streamed through L2)

# -- module attributes: what the fusion passes decided ----------------------------------------
REFUSED_ATTR = "gap8.fusion_refused"
UNFUSED_ATTR = "gap8.unfused_dw"
