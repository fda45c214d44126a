"""``--run gvsoc``: the emitted project built against pulp-runtime and run on GVSOC's pulp-open
cluster (``tools/ensure_gvsoc.sh`` installs both into ``.tools/gvsoc``; ``TVM_GAP8_GVSOC``
points elsewhere). The run prints the output and, instrumented, per-layer measurements, which
this module parses.

How pulp-open differs from GAP8 (said next to every figure, ``PLATFORM_NOTE``): its L2 is
1.6 MB (grown to 9 MB at launch; the link script keeps GAP8's 512 kB for code and data), it has no HyperRAM (weights
the plan keeps in L3 live in an L2 region past 512 kB: a stand-in with L2 timing, no L3->L2
cost), a cluster-controller core beside the 8 workers, and pulp-open's clocks and L2 latency.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BuildError, LinkError

#: GVSOC and pulp-runtime revisions of ``tools/ensure_gvsoc.sh``
SOC_JSON = "gvsoc/generators/pulp/chips/pulp_open/soc.json"
SOURCE = "gvsoc pulp-open (gvsoc 209c147, pulp-runtime 415a028)"
PLATFORM_NOTE = ("GVSOC pulp-open, not GAP8: GAP8's 512 kB L2 enforced at link time; weights "
                 "in L3 read from an L2 stand-in (L2 timing, no L3 cost); pulp-open clocks")
#: L2 of pulp-open as we launch it: soc.json's l2 grown to 9 MB (shared part 0x900000 in 48
#: cuts of 0x30000; launch options only, verified by a 4-8 MB DMA read-back: DMA timing equal to
#: stock L2), GAP8's 512 kB at its start, the L3 stand-in after it
L2_BASE, L2_END, GAP8_L2 = 0x1C000000, 0x1C910000, 0x80000
L2_SIZE, L2_SHARED, L2_CUT = 0x910000, 0x900000, 0x30000
#: pulp-runtime's L1 region for pulp (kernel/chips/pulp/link.ld) and the cluster's cores
L1_BASE, L1_SIZE, CLUSTER_CORES = 0x10000004, 0xFFFC, 8
RV32_GCC = "riscv64-unknown-elf-gcc"
PICOLIBC = "/usr/lib/picolibc/riscv64-unknown-elf"
COUNTER_FIELDS = ("l2_to_l1_bytes", "l1_to_l2_bytes", "l3_to_l2_bytes", "l2_to_l1_transfers",
                  "l1_to_l2_transfers", "l3_to_l2_transfers", "macs", "tiles", "cycles",
                  "dma_wait_cycles", "l2_to_l3_bytes", "l2_to_l3_transfers")


def home() -> Path:
    env = os.environ.get("TVM_GAP8_GVSOC")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".tools" / "gvsoc"


def gvsoc_available() -> str | None:
    """None when GVSOC, pulp-runtime and the rv32 GCC are here, else what is missing."""
    h = home()
    missing = [str(p) for p in (h / "gvsoc/bin/gvsoc", h / "pulp-runtime/rules/pulp.mk",
                                h / "pulp_compat.h", h / "venv/bin/python") if not p.exists()]
    if shutil.which(RV32_GCC) is None:
        missing.append(RV32_GCC)
    if missing:
        return (f"GVSOC not installed ({', '.join(missing)} missing): run "
                "`sh tools/ensure_gvsoc.sh` (make test does)")
    return None


@dataclass
class GvsocRun:
    """One inference on GVSOC: the output and what the cluster measured."""
    output: object  # np.ndarray, or a list of them (one per output)
    seconds: float
    cycles: int                      # cluster timer, the whole network
    layers: list[dict] = field(default_factory=list)   # per layer: COUNTER_FIELDS + cores (+ stages)


def _input_c(data) -> str:
    """``data``: the inputs in the entry's order, back to back, each at a multiple of 8 bytes
    (one array or a list of them)."""
    parts = data if isinstance(data, (list, tuple)) else [data]
    chunks = []
    for d in parts:
        b = np.ascontiguousarray(d).tobytes()
        chunks.append(b + bytes(-len(b) % 8))
    raw = np.frombuffer(b"".join(chunks), np.int8)
    rows = [", ".join(str(int(v)) for v in raw[i:i + 32]) for i in range(0, raw.size, 32)]
    return ("/* the input of this run (written by tvm_gap8.emitc.gvsoc) */\n#include <stdint.h>\n"
            f"const int8_t gap8_input[{max(raw.size, 1)}] __attribute__((aligned(8))) = {{\n  "
            + ",\n  ".join(rows or ["0"]) + "\n};\n")


def _link_script() -> str:
    """pulp-runtime's pulp link script, plus the L3 stand-in region past GAP8's 512 kB."""
    base = (home() / "pulp-runtime/kernel/chips/pulp/link.ld").read_text()
    start = L2_BASE + GAP8_L2
    region = (f"  L3STANDIN    : ORIGIN = {start:#x}, LENGTH = {L2_END - start:#x}\n")
    base = base.replace("MEMORY\n{\n", "MEMORY\n{\n" + region, 1)
    # its bounds as symbols: the runtime tells an L3 copy by address, without loading them
    section = ("  .gap8_l3 : { __gap8_l3_start = .; *(.gap8_l3) __gap8_l3_stop = .; }"
               " > L3STANDIN\n")
    head, tail = base.rsplit("}", 1)
    return head + section + "}" + tail


def libm_flags() -> str | None:
    """Link flags of picolibc's rv32im libm (pulp-runtime links -nostdlib, with only its minimal
    printf: leftover float code calling <math.h> needs it), or None when it is not installed."""
    try:
        d = subprocess.run([RV32_GCC, "-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs",
                            "-print-multi-directory"], capture_output=True, text=True,
                           timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    lib = Path(PICOLIBC) / "lib" / d
    # picolibc keeps its math in libc.a (libm.a is an empty stand-in): only what the kernels
    # call is pulled in, pulp-runtime's own printf staying first
    return f"-L{lib} -lm -lc -lgcc" if d and (lib / "libc.a").exists() else None


def build(project: str, data: np.ndarray, stack_bytes: int, instrument: bool = True,
          timeout: int = 600, stage_times: bool = False) -> str:
    """Builds ``project`` for pulp-open with ``data`` as its input; returns the ELF path.
    ``stage_times``: the master core also times every stage of every kernel (from one
    ``GAP8_STAGE_END`` to the next; with the counters)."""
    missing = gvsoc_available()
    if missing:
        raise BuildError(f"--run gvsoc: {missing}")
    h = home()
    Path(project, "gap8_input.c").write_text(_input_c(data))
    ld = Path(project, "chips/pulp/link.ld")   # ld takes -T scripts from the cwd first
    ld.parent.mkdir(parents=True, exist_ok=True)
    ld.write_text(_link_script())
    arch = "-march=rv32imc_zicsr_zifencei -mabi=ilp32"
    libgcc = subprocess.run([RV32_GCC, "-march=rv32imc", "-mabi=ilp32",
                             "-print-libgcc-file-name"], capture_output=True, text=True).stdout
    t = "riscv64-unknown-elf"
    flags = "-DGAP8_INSTRUMENT -DGAP8_INSTRET_ONLY" if instrument or stage_times else ""
    flags += " -DGAP8_STAGE_TIMES" if stage_times else ""
    cmd = ["make", "-s", "-f", "Makefile.pulprt", "build", "platform=gvsoc",
           f"PULP_CC={t}-gcc", f"PULP_LD={t}-gcc", f"PULP_AR={t}-ar",
           f"PULP_OBJDUMP={t}-objdump", f"GAP8_CFLAGS={flags}",
           f"GAP8_CLUSTER_STACK_BYTES={stack_bytes}",
           f"GAP8_LDLIBS={libm_flags() or ''}",
           f"PULP_ARCH_CFLAGS={arch} -isystem {PICOLIBC}/include "
           f"-include {h / 'pulp_compat.h'}",
           f"PULP_ARCH_LDFLAGS={arch} -L{os.path.dirname(libgcc.strip())}"]
    env = dict(os.environ, PULPRT_HOME=str(h / "pulp-runtime"), PULPRT_TARGET="pulp",
               PULPRUN_TARGET="pulp-open")
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)
    elf = os.path.join(project, "build", "gap8", "gap8")
    if proc.returncode or not os.path.exists(elf):
        _link_error(proc.stderr)
        raise BuildError(f"pulp-runtime build of {project} failed: "
                         f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
    _check_l1(elf, stack_bytes)
    return elf


def _check_l1(elf: str, stack_bytes: int):
    """pulp-runtime allocates the 8 cluster stacks from what the link left of L1 at boot, and a
    failed allocation hangs the run silently: check it here, naming the region."""
    proc = subprocess.run([RV32_GCC.replace("gcc", "size"), "-A", elf], capture_output=True,
                          text=True)
    used = sum(int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)\s+(\d+)$", proc.stdout,
                                                     re.M)
               if L1_BASE <= int(m.group(3)) < L1_BASE + L1_SIZE)
    stacks = CLUSTER_CORES * stack_bytes
    if used + stacks > L1_SIZE:
        raise LinkError(f"the network does not fit L1 (TCDM: the L1 arena and the cluster "
                        f"stacks): {used:,} B linked + {stacks:,} B of stacks > {L1_SIZE:,} B, "
                        f"over by {used + stacks - L1_SIZE:,} bytes (pulp-runtime for GVSOC)")


def _link_error(stderr: str):
    m = re.search(r"region `([^']+)' overflowed by (\d+) bytes", stderr)
    if m:
        region = {"L2": "L2 (512 kB: code, data, stacks, arenas, L2 weights)",
                  "L1": "L1 (TCDM: the L1 arena and the cluster stacks)",
                  "L3STANDIN": "L3 stand-in (L2 past 512 kB on pulp-open)"}.get(m.group(1),
                                                                                m.group(1))
        raise LinkError(f"the network does not fit {region}: region `{m.group(1)}' overflowed "
                        f"by {int(m.group(2)):,} bytes (pulp-runtime link for GVSOC)")


def run(project: str, elf: str, out_shapes, out_dtypes, timeout: int = 900) -> GvsocRun:
    """Runs ``elf`` on ``gvsoc --target=pulp-open`` and parses what it printed."""
    h = home()
    env = dict(os.environ, PATH=f"{h / 'venv/bin'}:{h / 'gvsoc/bin'}:{os.environ['PATH']}")
    work = os.path.abspath(os.path.join(project, "gvsoc-run"))
    cmd = ["gvsoc", "--target=pulp-open", f"--work-dir={work}", *_big_l2(work),
           f"--binary={os.path.abspath(elf)}", "run"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"the GVSOC run timed out after {timeout} s (a hang: L1 full?)") \
            from exc
    seconds = time.perf_counter() - t0
    return parse(proc.stdout, proc.returncode, out_shapes, out_dtypes, seconds)


def _big_l2(work: str) -> list[str]:
    """Launch options growing pulp-open's L2 to ``L2_SIZE`` (room for the L3 stand-in): the
    installed soc.json with a larger l2 and shared mapping, and every memory cut resized."""
    soc = json.loads((home() / SOC_JSON).read_text())
    soc["l2"]["size"] = hex(L2_SIZE)
    soc["l2"]["shared"]["mapping"]["size"] = hex(L2_SHARED)
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "soc_gap8.json")
    with open(path, "w") as f:
        json.dump(soc, f, indent=1)
    return ["--config-opt", f"chip/soc_config_file={path}",
            "--config-opt", f"chip/soc/l2/*/size={L2_CUT:#x}"]


def parse(stdout: str, returncode: int, out_shapes, out_dtypes, seconds: float) -> GvsocRun:
    """The run's printout: ``out_shapes``/``out_dtypes`` one per output (lists), or one shape
    and dtype for a single output (``output`` then that array; else the list)."""
    status = re.search(r"^gap8-status (-?\d+) cycles (\d+)", stdout, re.M)
    if returncode or status is None or int(status.group(1)):
        raise BuildError(f"the GVSOC run failed (exit {returncode}): {stdout.strip()[-1000:]}")
    single = not (isinstance(out_shapes, list) and out_shapes
                  and isinstance(out_shapes[0], (tuple, list)))
    shapes = [out_shapes] if single else out_shapes
    dtypes = [out_dtypes] * len(shapes) if single else out_dtypes
    raw = [bytearray() for _ in shapes]
    for m in re.finditer(r"^gap8-out (\d+) \d+((?: [0-9a-f]{2})+)$", stdout, re.M):
        raw[int(m.group(1))] += bytes(int(v, 16) for v in m.group(2).split())
    outs = [np.frombuffer(bytes(r), dtype=d).reshape(s) for r, d, s in zip(raw, dtypes, shapes)]
    out = outs[0] if single else outs
    layers = {}
    for m in re.finditer(r"^gap8-layer (\d+)((?: \d+)+)$", stdout, re.M):
        layers[int(m.group(1))] = dict(zip(COUNTER_FIELDS, map(int, m.group(2).split())))
    for m in re.finditer(r"^gap8-core (\d+)((?: \d+)+)$", stdout, re.M):
        vals = list(map(int, m.group(2).split()))
        layers[int(m.group(1))]["cores"] = [
            {"active_cycles": vals[i], "instructions": vals[i + 1]}
            for i in range(0, len(vals), 2)]
    for m in re.finditer(r"^gap8-stage (\d+) (\d+) (\d+)$", stdout, re.M):
        layers[int(m.group(1))].setdefault("stages", {})[int(m.group(2))] = int(m.group(3))
    return GvsocRun(out, seconds, int(status.group(2)), [layers[i] for i in sorted(layers)])
