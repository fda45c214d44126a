"""Executed rv32imc instructions of one soft-float multiply-accumulate and one soft-float add
(GAP8's cluster has no FPU: a float layer's MACs call libgcc's ``__mulsf3`` and ``__addsf3``).

    python benchmarks/soft_float_rv32.py [--n 4096]

Three loops over the same ``n`` random operand pairs (normal floats of both signs, magnitudes
1e-3..1e3: what a float conv multiplies), built with the network's rv32 flags
(``emitc.build.RV32_FLAGS``) and run on QEMU rv32imc, ``minstret`` read around each loop:

* ``int``: ``acc += a[i] * b[i]`` on int32 (the loop, the loads, one ``mul``, one ``add``);
* ``float mac``: the same on float (a ``__mulsf3`` and an ``__addsf3`` call);
* ``float add``: ``acc += a[i]`` on float (one ``__addsf3``), against ``acc += a[i]`` on int32.

Instructions per soft-float MAC = (float mac - int) / n, per soft-float add = (float add -
int add) / n: what replacing the integer operations by the soft-float calls adds. These are
instructions on QEMU, not GAP8 cycles; the cost model takes them as cycles (RI5CY issues one
instruction per cycle; its load-use and branch stalls are left out), ``ComputeCosts.
soft_float_mac_cycles`` / ``soft_float_add_cycles``.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from tvm_gap8.emitc import build

PROGRAM = r"""#include <stdint.h>
#include <stdio.h>
#define CSR(name, var) __asm__ volatile(".option push\n.option arch, +zicsr\n" \
    "csrr %%0, " name "\n.option pop" : "=r"(var))
static uint32_t instret(void) { uint32_t v; CSR("minstret", v); return v; }
#define N %(n)d
static const float fa[N] = {%(fa)s};
static const float fb[N] = {%(fb)s};
static const int32_t ia[N] = {%(ia)s};
static const int32_t ib[N] = {%(ib)s};
volatile float fsink;
volatile int32_t isink;
__attribute__((noinline)) static uint32_t int_mac(void) {
  uint32_t t0 = instret(); int32_t acc = 0;
  for (int i = 0; i < N; ++i) acc += ia[i] * ib[i];
  uint32_t t1 = instret(); isink = acc; return t1 - t0;
}
__attribute__((noinline)) static uint32_t float_mac(void) {
  uint32_t t0 = instret(); float acc = 0.0f;
  for (int i = 0; i < N; ++i) acc += fa[i] * fb[i];
  uint32_t t1 = instret(); fsink = acc; return t1 - t0;
}
__attribute__((noinline)) static uint32_t int_add(void) {
  uint32_t t0 = instret(); int32_t acc = 0;
  for (int i = 0; i < N; ++i) acc += ia[i];
  uint32_t t1 = instret(); isink = acc; return t1 - t0;
}
__attribute__((noinline)) static uint32_t float_add(void) {
  uint32_t t0 = instret(); float acc = 0.0f;
  for (int i = 0; i < N; ++i) acc += fa[i];
  uint32_t t1 = instret(); fsink = acc; return t1 - t0;
}
int main(void) {
  FILE *f = fopen("soft_float.txt", "w"); /* semihosting: in the run's directory */
  if (!f) return 1;
  fprintf(f, "int_mac %%lu float_mac %%lu int_add %%lu float_add %%lu\n",
          (unsigned long)int_mac(), (unsigned long)float_mac(), (unsigned long)int_add(),
          (unsigned long)float_add());
  fclose(f);
  return 0;
}
"""


def measure(n: int = 4096, seed: int = 0) -> dict:
    """{"mac": instructions per soft-float MAC, "add": per soft-float add} on QEMU rv32imc."""
    rng = np.random.default_rng(seed)

    def floats():
        return (rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)).astype(np.float32)

    fa, fb = floats(), floats()
    ia, ib = rng.integers(-128, 128, n), rng.integers(-128, 128, n)
    src = PROGRAM % {"n": n, "fa": ", ".join(f"{v!r}f" for v in fa.tolist()),
                     "fb": ", ".join(f"{v!r}f" for v in fb.tolist()),
                     "ia": ", ".join(map(str, ia.tolist())), "ib": ", ".join(map(str, ib.tolist()))}
    with tempfile.TemporaryDirectory() as tmp:
        c, elf = os.path.join(tmp, "soft_float.c"), os.path.join(tmp, "soft_float.elf")
        with open(c, "w", encoding="utf-8") as f:
            f.write(src)
        subprocess.run([build.RV32_GCC, "-std=c99", *build.RV32_FLAGS, c, "-o", elf],
                       check=True, capture_output=True, text=True)
        subprocess.run(["timeout", "120", *build.qemu_command(elf)], check=True,
                       capture_output=True, text=True, cwd=tmp)
        with open(os.path.join(tmp, "soft_float.txt"), encoding="utf-8") as f:
            out = f.read().split()
    got = dict(zip(out[0::2], map(int, out[1::2])))
    return {"mac": (got["float_mac"] - got["int_mac"]) / n,
            "add": (got["float_add"] - got["int_add"]) / n, "raw": got, "n": n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    args = ap.parse_args(argv)
    missing = build.rv32_available()
    if missing:
        print(f"needs the rv32 toolchain and QEMU ({missing})", file=sys.stderr)
        return 1
    m = measure(args.n)
    print(f"QEMU rv32imc, {args.n} operand pairs: {m['mac']:.1f} instructions per soft-float "
          f"MAC (__mulsf3 + __addsf3), {m['add']:.1f} per soft-float add (__addsf3); raw "
          f"{m['raw']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
