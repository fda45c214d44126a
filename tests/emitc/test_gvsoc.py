"""--run gvsoc: the emitted network built against pulp-runtime and run on GVSOC's pulp-open
cluster (8 cores): bit-exact against the LLVM build and the integer reference, with cycles
measured per layer (cluster timer, per-core PCCR, DMA waits) beside the modelled ones."""

import json

import numpy as np
import pytest

from tvm_gap8.cli import main
from tvm_gap8.emitc import gvsoc as G
from tvm_gap8.errors import BuildError, LinkError
from tvm_gap8.target import GAP8


def _compile(model, out, *extra):
    rc = main(["compile", model, "--emit-c", "--run", "gvsoc", "-o", str(out), "-q", *extra])
    return rc, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def v1_on_gvsoc(int8_model, rv32, gvsoc, tmp_path_factory):
    """int8 MobileNetV1 x0.25 @96, the CLI defaults, run on GVSOC once for this module."""
    out = tmp_path_factory.mktemp("gvsoc") / "v1"
    rc, report = _compile(int8_model("mobilenet_v1_025_96"), out)
    return rc, report, out


def test_int8_mobilenet_v1_on_gvsoc_bit_exact_and_measured(v1_on_gvsoc):
    rc, report, _ = v1_on_gvsoc
    run = report["run"]
    assert rc == 0 and run["platform"] == "gvsoc"
    assert run["vs_llvm"] == {"integers_equal": True, "max_abs_diff": 0}
    assert run["check"]["passed"] and run["check"]["exact"]["equal"]
    measured = report["measured"]
    assert measured["source"] == G.SOURCE and "not GAP8" in measured["note"]
    tiled = {t["name"]: t for t in report["layers"] if t.get("tiled")}
    rows = [r for r in measured["layers"] if r["name"] in tiled]
    assert len(rows) == len(tiled) > 10
    for r in rows:
        t = tiled[r["name"]]
        assert r["cycles"] > 0 and r["modelled_cycles"] == t["plan"]["cycles"], r["name"]
        assert len(r["cores"]) == 8 and all(c["active_cycles"] <= r["cycles"] for c in r["cores"])
        assert r["dma_wait_cycles"] < r["cycles"], r["name"]
        # the DMA back end moved exactly what the IR declares
        tr = t["traffic"]
        assert r["l2_to_l1_bytes"] == tr["l2_to_l1_act"] + tr["l2_to_l1_wgt"], r["name"]
        assert r["l1_to_l2_bytes"] == tr["l1_to_l2_act"], r["name"]
    # every PW reduction is one micro-kernel call (pv.sdotsp.b on the cluster), and the split
    # keeps the cores of every layer within 15% of each other: conv layers (stem, DW, PW, fused
    # pairs), the pool and the 10-output FC (its reduction split over the cores, the copies
    # shared by the team instead of issued by the master core alone); on a layer of ~2,000
    # cycles a core (the pool) the master core's copy calls alone are ~15%: there, within 350
    # cycles (measured 1.10-1.17 as the code's placement in the instruction cache moves: 303
    # cycles on 2026-12-07, when the kernels before it changed and the pool's did not)
    kernels = (v1_on_gvsoc[2] / "gap8" / "kernels.c").read_text()
    assert report["emit_c"]["dot_calls"] >= 6 and "gap8_dot4" in kernels
    assert "gap8_dma_copy_1d_team(" in kernels and "dense_acc_rf" in kernels
    kinds = {r["kind"] for r in measured["layers"]}
    assert {"conv", "dw_pw", "pool", "dense"} <= kinds
    for r in measured["layers"]:
        active = [c["active_cycles"] for c in r["cores"]]
        assert max(active) <= max(1.15 * min(active), min(active) + 350), (r["name"], active)
    totals = measured["totals"]
    assert totals["cycles"] <= totals["network_cycles"] == run["measured_cycles"]
    assert totals["modelled_cycles"] == sum(r["modelled_cycles"] for r in rows)


def test_parse_reads_output_layers_and_cores():
    out = ("gap8-status 0 cycles 1234\ngap8-out 0 0 01 ff 80\n"
           "gap8-layer 0 10 20 0 1 1 0 0 1 900 50\ngap8-core 0" + " 800 400" * 8 + "\n")
    ran = G.parse(out, 0, (3,), np.int8, 1.0)
    assert ran.cycles == 1234 and ran.output.tolist() == [1, -1, -128]
    layer = ran.layers[0]
    assert layer["cycles"] == 900 and layer["dma_wait_cycles"] == 50
    assert layer["l2_to_l1_bytes"] == 10 and len(layer["cores"]) == 8
    with pytest.raises(BuildError, match="GVSOC run failed"):
        G.parse("nothing printed", 0, (3,), np.int8, 1.0)


def test_l1_check_names_the_region(v1_on_gvsoc):
    """An L1 arena that leaves no room for the cluster stacks is refused before the run (on
    pulp-runtime the stack allocation would fail silently and the run hang)."""
    elf = str(v1_on_gvsoc[2] / "gap8" / "build" / "gap8" / "gap8")
    G._check_l1(elf, 1024)  # what the build used: fits
    with pytest.raises(LinkError, match=r"does not fit L1 .*over by [\d,]+ bytes"):
        G._check_l1(elf, 8192)


def test_emitted_l1_arena_is_the_ir_peak(int8_model):
    """IR == plan extends to the C: every kernel's L1 arena is its IR-measured L1 peak up to
    the 8-byte alignment of its buffers, and the network's arena leaves the cluster stacks
    (int8 MobileNetV1 x1.0 @128 peels pipelined loops: copies of a buffer share its region)."""
    from tvm_gap8.compiler import compile_model
    from tvm_gap8.emitc.network import read_network
    from tvm_gap8.target import GAP8

    result = compile_model(int8_model("mobilenet_v1_100_128"), fusion="auto", layout="auto")
    net = read_network(result.lowered, GAP8, placement=result.placement)
    peaks = {t["kernel"]: t["l1_peak_bytes"] for t in result.report["layers"] if t.get("tiled")}
    for k in net.kernels.values():
        if k.name in peaks:
            assert 0 <= k.l1_bytes - peaks[k.name] < 64, (k.name, k.l1_bytes, peaks[k.name])
    assert net.l1_arena <= GAP8.l1_bytes - GAP8.stack_bytes


def test_parse_reads_every_output():
    out = ("gap8-status 0 cycles 99\ngap8-out 0 0 01 02\ngap8-out 1 0 00 00 80 3f\n"
           "gap8-out 2 0 ff\n")
    ran = G.parse(out, 0, [(2,), (1,), (1, 1)], [np.int8, np.float32, np.int8], 1.0)
    assert [o.tolist() for o in ran.output] == [[1, 2], [1.0], [[-1]]]


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_detector_head_three_outputs_on_gvsoc(int8, rv32, gvsoc, tmp_path):
    """The three-output detector on pulp-open: every output equal to the LLVM build (float:
    the Sigmoids' exp, in double as float_exp.py has it, from picolibc's math, linked after
    pulp-runtime)."""
    import onnx

    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    path = tmp_path / "det.onnx"
    onnx.save(quantized(M.detector_head()) if int8 else M.detector_head(), str(path))
    rc, report = _compile(str(path), tmp_path / "o")
    run = report["run"]
    assert rc == 0 and run["platform"] == "gvsoc" and run["check"]["passed"]
    assert len(run["vs_llvm_outputs"]) == 3
    assert run["vs_llvm"] == ({"integers_equal": True, "max_abs_diff": 0} if int8 else
                              {"equal": True, "max_abs_diff": 0.0})
    assert run["measured_cycles"] > 0


def test_float_layers_without_libm_are_refused_naming_them(tmp_path, capsys, monkeypatch):
    """No picolibc math for pulp-runtime: one error naming the float layers, before building."""
    import onnx

    from tvm_gap8.testing import onnx_models as M

    monkeypatch.setattr(G, "libm_flags", lambda: None)
    path = tmp_path / "det.onnx"
    onnx.save(M.detector_head(), str(path))
    rc = main(["compile", str(path), "--emit-c", "--run", "gvsoc", "-o", str(tmp_path / "o"),
               "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 2  # the no-FPU warning every float model gets, the error
    assert err[0].startswith("warning: GAP8's cluster has no FPU")
    assert err[1].startswith("error: --run gvsoc: pulp-runtime has no libm for the float layers")
    assert "cls1" in err[1] and "(they call exp)" in err[1]


def test_activations_in_l3_on_gvsoc(int8_model, rv32, gvsoc, tmp_path):
    """Activations the placement put in L3 (an L2 budget of 80,000 B) on GVSOC: the L3
    stand-in (L2 memory past GAP8's 512 kB) holds them, the pulp-runtime back end counts each
    tile's L3 edge; bit-exact, and per layer the L3 -> L2 and L2 -> L3 bytes the run counted
    equal the report's (read off the IR)."""
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"l2_bytes": GAP8.l2_reserved_bytes + 80000}))
    rc, report = _compile(int8_model("mobilenet_v1_025_96"), tmp_path / "o", "--hw", str(hw))
    assert rc == 0 and report["run"]["vs_llvm"]["integers_equal"], report["run"]
    assert report["placement"]["l3_activation_bytes"] > 0
    tiled = {layer["name"]: layer for layer in report["layers"] if layer.get("tiled")}
    measured = [m for m in report["measured"]["layers"] if m["name"] in tiled]
    assert len(measured) == len(tiled)
    for m in measured:
        traffic = tiled[m["name"]]["traffic"]
        assert (m["l3_to_l2_bytes"], m["l2_to_l3_bytes"]) == \
            (traffic["l3_to_l2"], traffic["l2_to_l3"]), m["name"]
    assert report["measured"]["totals"]["l2_to_l3_bytes"] > 0


def test_stage_times_add_up_to_each_layer(rv32, gvsoc, tmp_path):
    """Built with GAP8_STAGE_TIMES, the master core times every stage of every kernel (one
    GAP8_STAGE_END to the next, plainc's marks): each layer's stages are marks of its own C and
    add up to its measured cycles but the fork and join around them; the same C built without
    it runs no timer (the marks are no-ops: the other GVSOC tests)."""
    import re
    from tvm_gap8.compiler import compile_model
    from tvm_gap8.emitc.network import read_network
    from tvm_gap8.emitc.project import write_project
    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized
    model = quantized(M.mobilenet_v2(alpha=0.35, resolution=32, blocks=[
        (1, 16, 1, 1), (6, 24, 2, 2)]), samples=2)
    result = compile_model(model, hw=GAP8, fusion="all-chains")
    net = read_network(result.lowered, GAP8, placement=result.placement)
    project = str(tmp_path / "p")
    write_project(net, GAP8, project)
    x_t, out_t = net.tensors[net.inputs[0]], net.tensors[net.outputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, x_t.shape).astype(x_t.dtype)
    sim = G.run(project, G.build(project, x, net.cluster_stack_bytes, stage_times=True),
                out_t.shape, out_t.dtype)
    source = (tmp_path / "p" / "kernels.c").read_text()
    timed = 0
    for layer, counts in zip(net.layers, sim.layers):
        if layer.kernel not in net.kernels:
            continue  # a reshape: no kernel of ours
        marks = len(re.findall(r"GAP8_STAGE_END\(\d+\)", net.kernels[layer.kernel].source))
        stages = counts.get("stages", {})
        assert set(stages) <= set(range(1, marks)) and stages, (layer.name, stages, marks)
        untimed = counts["cycles"] - sum(stages.values())  # the fork and the join: ~600 cycles
        assert 0 <= untimed <= max(0.1 * counts["cycles"], 1000), (layer.name, untimed)
        timed += "pw_dw_pw" in layer.kernel
    assert timed == 2 and "GAP8_STAGE_END(0);" in source
