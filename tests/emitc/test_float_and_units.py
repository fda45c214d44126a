"""--emit-c on a float model (host), the L2 arena planner, the C of one kernel."""

import json

import numpy as np
import onnx
import pytest

from tvm_gap8.cli import main
from tvm_gap8.emitc.network import first_fit
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def test_first_fit_never_overlaps_live_tensors():
    rng = np.random.default_rng(0)
    items = []
    for i in range(60):
        first = int(rng.integers(0, 30))
        items.append((f"t{i}", int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 5))))
    offsets, peak = first_fit(items)
    for a, sa, fa, la in items:
        assert offsets[a] % 8 == 0 and offsets[a] + sa <= peak
        for b, sb, fb, lb in items:
            if a < b and not (la < fb or lb < fa):  # live together: disjoint bytes
                assert offsets[a] + sa <= offsets[b] or offsets[b] + sb <= offsets[a], (a, b)
    # a chain where each tensor dies when the next is made reuses two slots
    chain = [(f"c{i}", 1000, i, i + 1) for i in range(10)]
    assert first_fit(chain)[1] == 2000


def test_float_network_host_equals_llvm_and_reference(tmp_path):
    model = tmp_path / "dwpw.onnx"
    onnx.save(M.mobilenet_v1(alpha=0.25, resolution=64), str(model))
    rc = main(["compile", str(model), "--emit-c", "--run", "host", "--instrument",
               "-o", str(tmp_path / "o"), "-q"])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 0
    assert "int gap8_network_run(const float *in, float *out);" in \
        (tmp_path / "o" / "gap8" / "network.h").read_text()
    assert report["run"]["vs_llvm"] == {"max_abs_diff": 0.0, "equal": True}  # exact floats
    assert report["run"]["check"]["passed"]
    assert report["measured"]["all_equal_to_static"]


@pytest.mark.parametrize("bad", ["--run", "--instrument"])
def test_run_flags_without_emit_c_are_usage_errors(bad, tmp_path, capsys):
    model = tmp_path / "m.onnx"
    onnx.save(M.dw_pw_block(cin=8, cout=8, h=8, w=8), str(model))
    args = ["compile", str(model), "-o", str(tmp_path / "o"), "-q", bad] + \
        (["host"] if bad == "--run" else [])
    assert main(args) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_core_copies_count_like_the_report(tmp_path, monkeypatch):
    """Copies that cannot become DMA calls stay core loops and still count exactly what
    cost/ir.py counts (forced here for every copy of an int8 DW->PW block, padded input too)."""
    from tvm_gap8.emitc import plainc
    from tvm_gap8.testing.quant import quantized

    monkeypatch.setattr(plainc, "_dma_call", lambda *a: None)
    monkeypatch.setattr(plainc, "_padded_dma", lambda *a: None)
    model = tmp_path / "block.onnx"
    onnx.save(quantized(M.dw_pw_block(cin=16, cout=32, h=15, w=13, k=3, stride=2)), str(model))
    rc = main(["compile", str(model), "--emit-c", "--run", "host", "--instrument",
               "-o", str(tmp_path / "o"), "-q"])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 0 and report["run"]["vs_llvm"]["integers_equal"], report["run"]["vs_llvm"]
    assert report["emit_c"]["dma_calls"] == 0 and report["emit_c"]["core_copies"] > 0
    assert report["measured"]["all_equal_to_static"]
    assert "GAP8_COPY_ELEM" in (tmp_path / "o" / "gap8" / "kernels.c").read_text()


FAKE_PMSIS = """/* the PMSIS declarations gap8_pmsis.c, gap8_cluster.h and main.c use (per
 * the SDK headers cited in the notes), to type-check the SDK back end where there is no SDK */
#include <stdint.h>
#include <stdio.h>
#define PI_CL_L1
#define PI_L2
#define PI_CL_DMA_DIR_LOC2EXT 0
#define PI_CL_DMA_DIR_EXT2LOC 1
#define PI_PERF_CYCLES 0
typedef struct { int id; } pi_cl_dma_cmd_t;
struct pi_device { void *data; };
struct pi_cluster_conf { int id; };
struct pi_cluster_task { int stack_size; int slave_stack_size; int nb_cores; };
void pi_cl_dma_cmd(uint32_t ext, uint32_t loc, uint32_t size, uint32_t dir, pi_cl_dma_cmd_t *c);
void pi_cl_dma_cmd_2d(uint32_t ext, uint32_t loc, uint32_t size, uint32_t stride,
                      uint32_t length, uint32_t dir, pi_cl_dma_cmd_t *c);
void pi_cl_dma_cmd_wait(pi_cl_dma_cmd_t *c);
void pi_cl_dma_flush(void);
uint32_t pi_core_id(void);
void pi_cl_team_fork(int nb_cores, void (*entry)(void *), void *arg);
void pi_cl_team_barrier(void);
void pi_cluster_conf_init(struct pi_cluster_conf *conf);
void pi_open_from_conf(struct pi_device *dev, void *conf);
int pi_cluster_open(struct pi_device *dev);
void pi_cluster_close(struct pi_device *dev);
struct pi_cluster_task *pi_cluster_task(struct pi_cluster_task *t, void (*e)(void *), void *a);
int pi_cluster_send_task_to_cl(struct pi_device *dev, struct pi_cluster_task *task);
void pi_perf_conf(unsigned events);
void pi_perf_reset(void);
void pi_perf_start(void);
void pi_perf_stop(void);
unsigned pi_perf_read(int event);
void pmsis_exit(int err);
int pmsis_kickoff(void *entry);
/* bsp/ram.h, bsp/ram/hyperram.h, bsp/flash/hyperflash.h, bsp/fs.h, bsp/fs/readfs.h */
typedef struct pi_cl_ram_req_s { int id; } pi_cl_ram_req_t;
typedef struct pi_fs_file_s { int id; } pi_fs_file_t;
struct pi_hyperram_conf { int id; };
struct pi_hyperflash_conf { int id; };
struct pi_fs_conf { struct pi_device *flash; };
struct pi_readfs_conf { struct pi_fs_conf fs; };
void pi_hyperram_conf_init(struct pi_hyperram_conf *conf);
int32_t pi_ram_open(struct pi_device *device);
int pi_ram_alloc(struct pi_device *device, uint32_t *addr, uint32_t size);
void pi_ram_write(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size);
void pi_cl_ram_read(struct pi_device *device, uint32_t pi_ram_addr, void *addr, uint32_t size,
                    pi_cl_ram_req_t *req);
void pi_cl_ram_read_wait(pi_cl_ram_req_t *req);
void pi_cl_ram_write(struct pi_device *device, uint32_t pi_ram_addr, void *addr, uint32_t size,
                     pi_cl_ram_req_t *req);
void pi_cl_ram_write_wait(pi_cl_ram_req_t *req);
void pi_hyperflash_conf_init(struct pi_hyperflash_conf *conf);
int32_t pi_flash_open(struct pi_device *device);
void pi_readfs_conf_init(struct pi_readfs_conf *conf);
int32_t pi_fs_mount(struct pi_device *device);
void pi_fs_unmount(struct pi_device *device);
pi_fs_file_t *pi_fs_open(struct pi_device *device, const char *file, int flags);
int32_t pi_fs_read(pi_fs_file_t *file, void *buffer, uint32_t size);
void pi_fs_close(pi_fs_file_t *file);
/* PULP GCC's builtin for pv.sdotsp.b (gap8_simd.h), declared for the host compiler */
int __builtin_pulp_sdotsp4(signed char __attribute__((vector_size(4))) a,
                           signed char __attribute__((vector_size(4))) b, int c);
"""


def _type_check_pmsis(project, include):
    """Every emitted C file compiled -fsyntax-only with -DGAP8_PMSIS against the declarations."""
    import subprocess

    (include / "pmsis.h").write_text(f"#ifndef FAKE_PMSIS_H\n#define FAKE_PMSIS_H\n{FAKE_PMSIS}"
                                     "#endif\n")
    for header in ("bsp/ram.h", "bsp/ram/hyperram.h", "bsp/flash/hyperflash.h", "bsp/fs.h",
                   "bsp/fs/readfs.h"):  # their declarations are in the stub pmsis.h
        (include / header).parent.mkdir(parents=True, exist_ok=True)
        (include / header).write_text('#include "pmsis.h"\n')
    sources = sorted(p.name for p in project.iterdir() if p.suffix == ".c")
    assert {"gap8_pmsis.c", "network.c", "kernels.c", "weights.c", "main.c"} <= set(sources)
    for src in sources:
        proc = subprocess.run(["cc", "-std=gnu99", "-Wall", "-Werror", "-fsyntax-only",
                               "-DGAP8_PMSIS", f"-I{include}", src], cwd=project,
                              capture_output=True, text=True)
        assert proc.returncode == 0, (src, proc.stderr[-1500:])


def test_sdk_back_end_type_checks_against_the_pmsis_api(tmp_path):
    """No GAP SDK here: the SDK back end is type-checked against PMSIS's declarations."""
    model = tmp_path / "block.onnx"
    onnx.save(M.dw_pw_block(cin=8, cout=16, h=10, w=10), str(model))
    assert main(["compile", str(model), "--emit-c", "--l1-kb", "16",
                 "-o", str(tmp_path / "o"), "-q"]) == 0
    project = tmp_path / "o" / "gap8"
    _type_check_pmsis(project, tmp_path)
    ld = (project / "gap8_memory.ld").read_text()  # --l1-kb is the L1 region of the link
    assert "L1 (rw) : ORIGIN = 0x80580000, LENGTH = 16000" in ld
    assert "L2 (rw) : ORIGIN = 0x80500000, LENGTH = 512000" in ld
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert 0 < report["emit_c"]["l1_arena_bytes"] <= 16000
    assert "READFS_FILES" not in (project / "Makefile").read_text()  # no weight in L3


def _emit_under(model, hw_fields: dict, tmp_path):
    """(project dir, report) of ``--emit-c`` of the ONNX ``model`` under ``--hw hw_fields``."""
    path, hw = tmp_path / "model.onnx", tmp_path / "hw.json"
    onnx.save(model, str(path))
    hw.write_text(json.dumps(hw_fields))
    assert main(["compile", str(path), "--emit-c", "--hw", str(hw), "-o", str(tmp_path / "o"),
                 "-q"]) == 0
    return tmp_path / "o" / "gap8", json.loads((tmp_path / "o" / "report.json").read_text())


def _preprocessed_pmsis(project, source: str, include) -> str:
    """``source`` of the project after the preprocessor, built with -DGAP8_PMSIS."""
    import subprocess

    return subprocess.run(["cc", "-E", "-DGAP8_PMSIS", f"-I{include}", source], cwd=project,
                          capture_output=True, text=True, check=True).stdout


def test_mobilenet_v2_example_type_checks_for_the_sdk(int8_model, tmp_path):
    """The int8 MobileNetV2-style example (x0.35 @96), CLI defaults: every emitted file,
    weights.c included, type-checks with -DGAP8_PMSIS against the PMSIS declarations, and its
    L1 arena leaves the configured cluster stacks free (a GAP8_CLUSTER_STACK_BYTES stack per
    core)."""
    from tvm_gap8.target import GAP8

    assert main(["compile", int8_model("mobilenet_v2_035_96"), "--emit-c",
                 "-o", str(tmp_path / "o"), "-q"]) == 0
    project = tmp_path / "o" / "gap8"
    _type_check_pmsis(project, tmp_path)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    header = (project / "network.h").read_text()
    assert f"#define GAP8_CLUSTER_STACK_BYTES {GAP8.cluster_stack_bytes}" in header
    assert 0 < report["emit_c"]["l1_arena_bytes"] <= GAP8.l1_bytes - GAP8.stack_bytes


def test_sdk_back_end_reads_l3_weights_from_hyperram(tmp_path):
    """Weights placed in L3: under -DGAP8_PMSIS they are not in the image (no L3 array in
    weights.c) but in gap8_l3_weights.bin (the same bytes as the emulator's L3 array, listed in
    the Makefile's READFS_FILES), loaded to HyperRAM at start and read from the cluster with
    pi_cl_ram_read; every file type-checks against the PMSIS declarations."""
    io = 16 * 16 * 16 + 16 * 16 * 32  # the caller's input and output, in L2
    project, report = _emit_under(quantized(M.dw_pw_block(cin=16, cout=32, h=16, w=16)),
                                  {"l2_bytes": io + 768, "l2_reserved_bytes": 0}, tmp_path)
    l3 = report["emit_c"]["l3_weight_bytes"]
    assert l3 > 0 and report["placement"]["l3_weight_bytes"] == l3
    _type_check_pmsis(project, tmp_path)
    blob = (project / "gap8_l3_weights.bin").read_bytes()
    assert len(blob) == l3
    make = (project / "Makefile").read_text()
    assert make.index("READFS_FILES += gap8_l3_weights.bin") < make.index("include $(RULES_DIR)")
    assert "pi_cl_ram_read(" in (project / "gap8_pmsis.c").read_text()
    # the PMSIS preprocessed weights.c holds no L3 array; the emulator's holds the same bytes
    pre = _preprocessed_pmsis(project, "weights.c", tmp_path)
    assert "gap8_l3_weights[" not in pre and "const int8_t *gap8_l3_weights;" in pre
    text = (project / "weights.c").read_text()
    body = text[text.index("gap8_l3_weights[") :]
    values = [int(v) for v in body[body.index("{") + 1 : body.index("}")].replace("\n", " ")
              .split(",")]
    assert bytes(v & 0xFF for v in values) == blob


def test_sdk_back_end_reads_and_writes_l3_activations(tmp_path):
    """Activations placed in L3: under -DGAP8_PMSIS the L3 activation arena is a HyperRAM
    allocation (gap8_l3_load), tiles are read with pi_cl_ram_read and written back with
    pi_cl_ram_write through the L2 stage; every file type-checks against the PMSIS
    declarations; the emulator builds hold the arena as an array in the L3 section."""
    project, report = _emit_under(quantized(M.mobilenet_v1(alpha=0.25, resolution=32)),
                                  {"l2_bytes": 9000, "l2_reserved_bytes": 0, "l1_bytes": 16384},
                                  tmp_path)
    acts = report["emit_c"]["l3_activation_bytes"]
    assert acts > 0 and report["placement"]["l3_activation_bytes"] == acts
    _type_check_pmsis(project, tmp_path)
    runtime = (project / "gap8_pmsis.c").read_text()
    assert "pi_cl_ram_write(" in runtime and "pi_ram_alloc(&gap8_hyperram, &act_addr" in runtime
    pre = _preprocessed_pmsis(project, "network.c", tmp_path)
    assert "gap8_l3_acts[" not in pre and "int8_t *gap8_l3_acts;" in pre
    assert f"#define GAP8_L3_ACT_BYTES {acts}" in (project / "network.h").read_text()


def test_float_emit_c_warns_no_fpu_and_int8_has_no_float_layer(tmp_path, capsys):
    """GAP8's cluster has no FPU: --emit-c of a float model says so in one warning line naming
    its float layers (and report.json emit_c.float_layers); an int8 model has none, and with no
    weight in L3 its L3 stage buffer is not allocated."""
    import json

    import onnx

    from tvm_gap8.cli import main
    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    model = M.dw_pw_block(cin=8, cout=16, h=8, w=8)
    onnx.save(model, str(tmp_path / "f.onnx"))
    onnx.save(quantized(model), str(tmp_path / "q.onnx"))
    assert main(["compile", str(tmp_path / "f.onnx"), "--emit-c", "-o", str(tmp_path / "f"),
                 "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: GAP8's cluster has no FPU: ")
    report = json.loads((tmp_path / "f" / "report.json").read_text())
    assert report["emit_c"]["float_layers"] and report["emit_c"]["float_layers"][0] in err[0]
    assert main(["compile", str(tmp_path / "q.onnx"), "--emit-c", "-o", str(tmp_path / "q"),
                 "-q"]) == 0
    assert not capsys.readouterr().err.strip()
    report = json.loads((tmp_path / "q" / "report.json").read_text())
    assert report["emit_c"]["float_layers"] == [] and report["emit_c"]["l3_weight_bytes"] == 0
    assert "gap8_l3_stage[8]" in (tmp_path / "q" / "gap8" / "network.c").read_text()


def test_rv32_memory_map_regions_never_overlap_under_a_larger_l2():
    """A ``--hw`` L2 beyond 512 kB moves L1 and L3 up instead of overlapping them."""
    import dataclasses
    import re

    from tvm_gap8.emitc.project import linker_script
    from tvm_gap8.target import GAP8

    for l2 in (GAP8.l2_bytes, 2_000_000):
        ld = linker_script(dataclasses.replace(GAP8, l2_bytes=l2))
        regions = sorted((int(o, 16), int(n)) for o, n in
                         re.findall(r"ORIGIN = (0x[0-9a-f]+), LENGTH = (\d+)", ld))
        assert len(regions) == 3
        for (origin, size), (next_origin, _) in zip(regions, regions[1:]):
            assert origin + size <= next_origin, ld
