"""One memory placement, read by everyone: for every layer of the example int8 networks under
three L2 sizes (all weights in L2; some in L3; all streamable ones in L3: the last under `slow`), the report's
placement and bytes equal what the emitted C does, counted at run time (``--instrument``, host
build), and the run stays bit-exact."""

import json

import pytest

from tvm_gap8.cli import main
from tvm_gap8.target import GAP8

def _l2_sizes(arena: int, weights: int, io: int) -> list:
    """GAP8's 512 kB (every weight in L2); 1 B short of all weights beside the arena and the
    caller's inputs and outputs (some go to L3, the L3 stage takes room too); room for those
    only (every streamable weight in L3, activations too to make room for the stage)."""
    base = GAP8.l2_reserved_bytes + arena + io
    return [GAP8.l2_bytes, base + weights - 1, base]


def _compile(model, out, hw_fields, platform="host"):
    hw = out.parent / f"{out.name}_hw.json"
    hw.write_text(json.dumps(hw_fields))
    rc = main(["compile", model, "--emit-c", "--run", platform, "--instrument", "--hw", str(hw),
               "-o", str(out), "-q"])
    assert rc == 0
    return json.loads((out / "report.json").read_text())


def _assert_placement_is_the_c(report):
    placement, emitted = report["placement"], report["emit_c"]
    assert placement["l3_weight_bytes"] == emitted["l3_weight_bytes"]
    assert placement["l2_weight_bytes"] == emitted["l2_weight_bytes"]
    assert placement["activation_arena_bytes"] == emitted["l2_arena_bytes"]
    assert placement["stage_bytes"] == emitted["l3_stage_bytes"]
    assert placement["l3_activation_bytes"] == emitted["l3_activation_bytes"]
    assert (placement["stage_bytes"] > 0) == \
        (placement["l3_weight_bytes"] + placement["l3_activation_bytes"] > 0)
    by_name = {p["name"]: p for p in placement["layers"]}
    tiled = [layer for layer in report["layers"] if layer.get("tiled")]
    measured = [m for m in report["measured"]["layers"] if m["kind"] != "tvm"]
    assert [m["name"] for m in measured] == [t["name"] for t in tiled]
    for m, t in zip(measured, tiled):
        for where in ("weights_in", "inputs_in", "output_in"):
            assert t[where] == m[where] == by_name[t["name"]][where], (t["name"], where)
        # the bytes the C moved L3 -> L2 and L2 -> L3 at run time == the report's figures
        assert m["l3_to_l2_bytes"] == t["traffic"]["l3_to_l2"], t["name"]
        assert m["l2_to_l3_bytes"] == t["traffic"]["l2_to_l3"], t["name"]
        assert (m["l2_to_l3_bytes"] > 0) == (t["output_in"] == "L3"), t["name"]
        if t["weights_in"] == "L3":
            reads = t["traffic"]["l2_to_l1_wgt"] + \
                (t["traffic"]["l2_to_l1_act"] if t["inputs_in"] == "L3" else 0)
            assert m["l3_to_l2_bytes"] == reads > 0, t["name"]
            assert by_name[t["name"]]["weight_bytes"].get("L3", 0) > 0, t["name"]
        else:
            assert "L3" not in by_name[t["name"]]["weight_bytes"], t["name"]
    assert report["measured"]["totals"]["l3_to_l2_bytes"] == \
        sum(t["traffic"]["l3_to_l2"] for t in tiled)
    assert report["measured"]["all_equal_to_static"]
    run = report["run"]
    assert run["vs_llvm"]["integers_equal"] and run["check"]["passed"], run


@pytest.mark.parametrize("name,count", [
    ("mobilenet_v1_025_96", 2),  # in CI: GAP8's L2 and some weights in L3
    pytest.param("mobilenet_v1_025_96", 3, marks=pytest.mark.slow),
    pytest.param("mobilenet_v2_035_96", 3, marks=pytest.mark.slow)])
def test_report_placement_equals_the_c_under_three_l2_sizes(name, count, int8_model, tmp_path):
    model = int8_model(name)
    first = _compile(model, tmp_path / "l2_0", {})
    p = first["placement"]
    sizes = _l2_sizes(p["activation_arena_bytes"], p["l2_weight_bytes"], p["io_bytes"])
    in_l3 = []
    for i, l2 in enumerate(sizes[:count]):
        report = first if i == 0 else _compile(model, tmp_path / f"l2_{i}", {"l2_bytes": l2})
        _assert_placement_is_the_c(report)
        in_l3.append(sum(layer.get("weights_in") == "L3" for layer in report["layers"]))
        assert report["placement"]["l2_peak_bytes"] <= report["placement"]["l2_budget_bytes"]
    assert in_l3[0] == 0 < in_l3[1]  # none, some streamable layers in L3
    assert count < 3 or in_l3[1] < in_l3[2]  # ... all of them


def test_activations_beyond_l2_live_in_l3(int8_model, tmp_path):
    """An L2 budget smaller than the activation arena: the largest activations move to an L3
    arena, tiled L3 <-> L2 stage <-> L1; the report's placement is the C's, every layer's L3
    bytes counted at run time (on the rv32 emulator, the L3 arena in its L3 region; on the host
    when the toolchain is missing) equal the report's (read off the IR), the L2 peak fits the
    budget and the run stays bit-exact."""
    from tvm_gap8.emitc.build import rv32_available

    platform = "host" if rv32_available() else "rv32"  # rv32_available: what is missing
    model = int8_model("mobilenet_v1_025_96")
    budget = 80000
    report = _compile(model, tmp_path / "o", {"l2_bytes": GAP8.l2_reserved_bytes + budget},
                      platform)
    _assert_placement_is_the_c(report)
    placement = report["placement"]
    assert placement["l3_activation_bytes"] > 0 and placement["l2_peak_bytes"] <= budget
    layers = [layer for layer in report["layers"] if layer.get("tiled")]
    assert sum(layer["inputs_in"] == "L3" for layer in layers) >= 10
    assert sum(layer["traffic"]["l2_to_l3"] for layer in layers) > 0
    text = (tmp_path / "o" / "gap8" / "network.c").read_text()
    assert "gap8_l3_acts[GAP8_L3_ACT_BYTES] GAP8_L3_DATA" in text


def test_l2_too_small_even_with_l3_is_refused_naming_the_overflow(int8_model, tmp_path, capsys):
    """When L2 cannot hold what must stay there (the stage of one L3 copy, activations a kernel
    reads directly), --emit-c refuses in one error naming the budget and by how much; the
    report's placement says it does not fit."""
    import re

    model = int8_model("mobilenet_v1_025_96")
    budget = 20000
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"l2_bytes": GAP8.l2_reserved_bytes + budget}))
    rc = main(["compile", model, "--emit-c", "--hw", str(hw), "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    m = re.fullmatch(r"error: --emit-c: the L2 data \(([\d,]+) B of activations, ([\d,]+) B of "
                     r"weights, a ([\d,]+) B stage, ([\d,]+) B of inputs and outputs\) exceeds "
                     rf"the L2 budget of {budget:,} B \(L2 less code and runtime\) by ([\d,]+) B, "
                     r".*", err[0])
    assert m, err[0]
    arena, weights, stage, io, over = (int(m.group(i).replace(",", "")) for i in range(1, 6))
    assert arena + weights + stage + io - budget == over > 0 and io > 0
    rc = main(["compile", model, "--hw", str(hw), "-o", str(tmp_path / "r"), "-q"])
    placement = json.loads((tmp_path / "r" / "report.json").read_text())["placement"]
    assert rc == 0 and placement["fits_l2"] is False
    assert placement["activation_arena_bytes"] == arena


@pytest.mark.slow
def test_mobilenet_v1_224_runs_with_activations_in_l3_on_rv32(int8_model, rv32, tmp_path):
    """int8 MobileNetV1 x1.0 @224, 1000 classes (569 M MACs; its first PW writes 802,816 B):
    on GAP8's 512 kB its activations cannot all stay in L2. The placement puts the largest in
    L3; the rv32 build links in 512 kB of L2 code included, runs bit-exact, and every layer's
    L3 bytes counted at run time equal the report's."""
    report = _compile(int8_model("mobilenet_v1_100_224_1000"), tmp_path / "o", {}, "rv32")
    _assert_placement_is_the_c(report)
    placement, linked = report["placement"], report["run"]["l2_linked"]
    assert placement["l3_activation_bytes"] >= 802816
    assert linked["network_data_bytes"] + linked["code_bytes"] + \
        linked["runtime_data_bytes"] <= GAP8.l2_bytes
    totals = report["measured"]["totals"]
    assert totals["l2_to_l3_bytes"] > 802816 and totals["l3_to_l2_bytes"] > 802816
