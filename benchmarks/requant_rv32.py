"""Executed rv32imc instructions per output of the requantization, per mode (``--requant``).

    python benchmarks/requant_rv32.py [--channels 16 --pixels 256]

Three kernels over the same int32 accumulators ``acc[c, p]`` and per-channel int32 bias,
multiplier and shift, emitted to C by the same path as the network's kernels
(``emitc.plainc.plain_kernel``), built with the same flags (``emitc.build.RV32_FLAGS``) and run
on QEMU rv32imc (``minstret`` read around each call):

* ``baseline``: ``y = (int8)(acc + bias)`` (the loop, the loads, the store);
* ``fixed`` / ``float32``: ``y = requant(acc + bias, M[c], k[c])`` of that mode
  (``kernels/requant.py``), zero point -3, clamp [-128, 127]; ``fixed64``: the fixed mode's
  64-bit form (what a kernel with a shift below 33 in some channel, i.e. a scale >= 1/4,
  computes).

Instructions per requantization = (mode - baseline) / outputs: what the requantization adds to
storing the accumulator, its per-channel loads included (bound once per channel before the
pixel loop by ``emitc/hoist.py``, as in the network's kernels). Accumulators are random over
``±2^20`` (a PW with 128 int8 input channels reaches ~2^21), scales ``fl32(s_x s_w / s_y)``
of the order of 1e-3.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from tvm import te

from tvm_gap8.emitc import build, project
from tvm_gap8.emitc.plainc import plain_kernel
from tvm_gap8.kernels.requant import REQUANT_MODES

STUBS = """#include <stdint.h>
#include <stdio.h>
#include "gap8_requant.h"
static inline int32_t gap8_team_size(void) { return 1; }
static inline int32_t gap8_core_of(int32_t c) { return c; }
#define GAP8_SHARE_BEGIN(n, core) ((n) * (core))
static inline void gap8_barrier(void) {}
#define GAP8_STAGE_END(stage) ((void)0)
#define CSR(name, var) __asm__ volatile(".option push\\n.option arch, +zicsr\\n" \\
    "csrr %0, " name "\\n.option pop" : "=r"(var))
static uint64_t instret(void) {
  uint32_t hi, lo, hi2;
  do {
    CSR("minstreth", hi);
    CSR("minstret", lo);
    CSR("minstreth", hi2);
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
}
"""


#: (label, mode, min_shift): the modes as the kernels use them (``fixed`` in its 32-bit form,
#: every shift >= 33 here), and ``fixed`` in its 64-bit form (a scale >= 1/4 somewhere)
VARIANTS = (("fixed", "fixed", 33), ("fixed64", "fixed", 1), ("float32", "float32", 1))


def kernel(name: str, channels: int, pixels: int, variant: tuple | None) -> str:
    """The C source of one kernel (``variant`` None: the baseline)."""
    acc = te.placeholder((channels, pixels), "int32", name="acc")
    first = te.placeholder((channels,), "int32", name="bias")
    mult, shift = (te.placeholder((channels,), "int32", name=n) for n in ("mult", "shift"))
    if variant is None:
        def body(c, p):
            return (acc[c, p] + first[c]).astype("int8")
    else:
        _, mode, min_shift = variant

        def body(c, p):
            return REQUANT_MODES[mode].expr(acc[c, p], first[c], mult[c], shift[c], -3, -128,
                                            127, "int8", min_shift)
    y = te.compute((channels, pixels), body, name="y")
    return plain_kernel(name, te.create_prim_func([acc, first, mult, shift, y]),
                        instrument_macs=False).source


def _array(name: str, ctype: str, values) -> str:
    return f"static {ctype} {name}[] = {{{', '.join(str(int(v)) for v in values)}}};\n"


def program(channels: int, pixels: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2 ** 20, 2 ** 20, channels * pixels)
    bias = rng.integers(-2 ** 12, 2 ** 12, channels)
    scales = (np.float32(0.02) * rng.uniform(1e-3, 5e-3, channels).astype(np.float32)) / \
        np.float32(0.05)
    src = [STUBS, _array("acc", "int32_t", acc), _array("bias", "int32_t", bias)]
    for mode, rq in REQUANT_MODES.items():
        mk = [rq.multiplier(s) for s in scales]
        src += [_array(f"mult_{mode}", "int32_t", [m for m, _ in mk]),
                _array(f"shift_{mode}", "int32_t", [k for _, k in mk])]
    src += [kernel("k_baseline", channels, pixels, None)]
    src += [kernel(f"k_{v[0]}", channels, pixels, v) for v in VARIANTS]
    src.append(f"static int8_t y[{channels * pixels}];\nstatic int8_t l1[8];\n")
    calls = [("baseline", "bias", "fixed")] + [(v[0], "bias", v[1]) for v in VARIANTS]
    body = []
    for label, first, mode in calls:
        body.append(f"  {{ uint64_t t0 = instret(); k_{label}(acc, {first}, mult_{mode}, "
                    f"shift_{mode}, y, l1); uint64_t t1 = instret(); int s = 0; "
                    f"for (int i = 0; i < {channels * pixels}; ++i) s += y[i]; "
                    f"printf(\"{label} %lu %d\\n\", (unsigned long)(t1 - t0), s); }}")
    src.append("int main(void) {\n" + "\n".join(body) + "\n  return 0;\n}\n")
    return "\n".join(src)


def run(channels: int, pixels: int) -> dict:
    """{name: executed instructions} of each kernel."""
    with tempfile.TemporaryDirectory() as work:
        c_file, elf = os.path.join(work, "requant.c"), os.path.join(work, "requant.elf")
        with open(c_file, "w", encoding="utf-8") as f:
            f.write(program(channels, pixels))
        subprocess.run([build.RV32_GCC, "-std=c99", "-Wall", *build.RV32_FLAGS,
                        f"-I{project.RUNTIME}", c_file, "-o", elf], check=True)
        proc = subprocess.run(["timeout", "120", *build.qemu_command(elf)], capture_output=True,
                              text=True, check=True)
    out = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        name, count, total = line.split()
        out[name] = int(count)
        out.setdefault("sums", {})[name] = int(total)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--pixels", type=int, default=256)
    args = ap.parse_args(argv)
    missing = build.rv32_available()
    if missing:
        sys.exit(f"needs the rv32 toolchain and QEMU: {missing}")
    counts = run(args.channels, args.pixels)
    n = args.channels * args.pixels
    print(f"{n} outputs; rv32imc instructions (QEMU minstret), -O2; the sums of the outputs "
          "must agree between fixed and fixed64")
    sums = counts.pop("sums")
    if sums["fixed"] != sums["fixed64"]:
        sys.exit("the two forms of the fixed mode disagree")
    for name, count in counts.items():
        extra = "" if name == "baseline" else \
            f"  requantization: {(count - counts['baseline']) / n:.1f} per output"
        print(f"  {name:9} {count:9d} ({count / n:.1f} per output){extra}")
    return counts


if __name__ == "__main__":
    main()
