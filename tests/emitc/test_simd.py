"""The micro-kernels of runtime/gap8_simd.h (what intrinsics.py replaces reduction loops by)
against numpy on random int8 data: lengths with and without a tail of 1-3 bytes, aligned and
unaligned operands, zero and non-zero offsets, accumulate or not, strided (CHW) activations.
On the host and on rv32imc under QEMU (the portable plain C every back end must equal), and on
GVSOC's pulp-open (the Xpulpv2 .insn versions: the hardware loops, post-increment loads,
pv.sdotsp.b, unaligned word loads) when it is here."""

import os
import re
import subprocess

import numpy as np
import pytest

from tvm_gap8.emitc import gvsoc as G

RUNTIME = os.path.join(os.path.dirname(G.__file__), "runtime")
SIZE = 4096


def _cases(rng):
    """(kind, args) of each call the harness makes; byte offsets into the a / b arrays."""
    cases = []
    for n in (1, 3, 4, 5, 8, 13, 32, 64, 67, 128, 130):
        for al in (0, 1, 4):
            off = int(rng.integers(-128, 128)) if n % 5 == 0 else 0
            cases.append(("dot", dict(a=64 + al, sa=1, b=512 + (al % 2) * 3, sb=1, n=n, c=off)))
            cases.append(("dot", dict(a=96, sa=3, b=700, sb=2, n=n, c=off)))
            k = (n + 3) // 4 * 4 + (4 if al == 4 else (1 if al == 1 else 0))
            for acc in (0, 1):
                cases.append(("dot4", dict(a=128 + al, b=1024 + al, K=k, n=n, c=off, acc=acc)))
                cases.append(("dot4x2", dict(a=256 + al, P=k, b=2048 + al, K=k + 4 * al, n=n,
                                             c=off, acc=acc)))
                step = 2 + 5 * (al % 2)   # a CHW tile: channels `step` bytes apart
                cases.append(("dot4s", dict(a=1000 + al, S=step, b=1500 + al, K=k, n=n, c=off,
                                            acc=acc)))
                cases.append(("dot4x2s", dict(a=1100 + al, S=step + 2, P=1 + al, b=2600 + al,
                                              K=k + al, n=n, c=off, acc=acc)))
    for row in (3, 6, 33, 34, 35):
        for al in range(4):
            cases.append(("dw3x3", dict(a=300 + al, r=row, b=3000 + al * 9, c=0)))
    cases.append(("dw3x3", dict(a=310, r=34, b=3009, c=5)))
    for row, al, c in ((3, 0, 0), (34, 1, 0), (50, 2, 0), (33, 3, -4)):  # weights as values too
        cases.append(("dw3x3w", dict(a=300 + al, r=row, b=3100 + al * 9, c=c)))
    for rows, length in ((3, 9), (3, 4), (1, 1), (2, 7), (3, 15), (5, 16)):
        for al in range(4):
            cases.append(("rows", dict(a=400 + al, ar=387 - al, b=3500 + al, br=length + al,
                                       rows=rows, n=length, c=0)))
    cases.append(("rows", dict(a=401, ar=40, b=3501, br=9, rows=3, n=9, c=-7)))
    for rows, length, br in ((3, 9, 12), (3, 4, 4), (1, 1, 4), (2, 7, 8), (3, 15, 16),
                             (5, 16, 20), (3, 9, 9)):
        for al in range(4):
            for acc in (0, 1):
                cases.append(("rows4", dict(a=600 + al, ar=387 - al, b=3600 + (al % 2) * 2,
                                            boc=rows * br + 4 * (al // 2), br=br, rows=rows,
                                            n=length, c=0, acc=acc)))
    cases.append(("rows4", dict(a=601, ar=40, b=3600, boc=36, br=12, rows=3, n=9, c=5, acc=1)))
    return cases


#: kind -> the call returning one sum
SCALAR_CALLS = {
    "dot": "gap8_dot_i8(A + {a}, {sa}, B + {b}, {sb}, {n}, {c})",
    "rows": "gap8_rows_i8(A + {a}, {ar}, B + {b}, {br}, {rows}, {n}, {c})",
    "dw3x3": "gap8_dw3x3_i8(A + {a}, {r}, B + {b}, {c})",
    "dw3x3w": "gap8_dw3x3w_i8(A + {a}, {r}, B + {b}, {w}, {c})",
}
#: kind -> (the call writing acc[], how many acc values it writes)
ACC_CALLS = {
    "rows4": ("gap8_rows4_i8(acc, A + {a}, {ar}, B + {b}, {boc}, {br}, {rows}, {n}, {c}, {acc})",
              4),
    "dot4": ("gap8_dot4_i8(acc, A + {a}, B + {b}, {K}, {n}, {c}, {acc})", 4),
    "dot4s": ("gap8_dot4s_i8(acc, A + {a}, {S}, B + {b}, {K}, {n}, {c}, {acc})", 4),
    "dot4x2s": ("gap8_dot4x2s_i8(acc, A + {a}, {S}, {P}, B + {b}, {K}, {n}, {c}, {acc})", 8),
    "dot4x2": ("gap8_dot4x2_i8(acc, A + {a}, {P}, B + {b}, {K}, {n}, {c}, {acc})", 8),
}


def _harness(cases, a, b, init) -> str:
    lines = ['#include <stdio.h>', '#include <stdint.h>', '#include "gap8_simd.h"',
             f"static int8_t A[{SIZE}] __attribute__((aligned(4))) = "
             f"{{{','.join(map(str, a))}}};",
             f"static int8_t B[{SIZE}] __attribute__((aligned(4))) = "
             f"{{{','.join(map(str, b))}}};",
             "static void run(void) {", "  int32_t acc[8];"]
    for i, (kind, p) in enumerate(cases):
        seed = ", ".join(str(int(v)) for v in init[i])
        if kind in SCALAR_CALLS:
            weights = ", ".join(f'B[{p["b"] + k}]' for k in range(9))  # gap8_dw3x3w_i8's
            call = SCALAR_CALLS[kind].format(**p, w=weights)
            lines.append(f'  printf("r {i} %ld\\n", (long){call});')
            continue
        lines.append(f"  {{ int32_t s[8] = {{{seed}}}; for (int k = 0; k < 8; ++k) "
                     "acc[k] = s[k]; }")
        call, m = ACC_CALLS[kind]
        lines.append("  " + call.format(**p) + ";")
        fmt = " ".join(["%ld"] * m)
        args = ", ".join(f"(long)acc[{k}]" for k in range(m))
        lines.append(f'  printf("r {i} {fmt}\\n", {args});')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _expected(kind, p, a, b, init):
    a32, b32 = a.astype(np.int64), b.astype(np.int64)

    def dot(pa, sa, pb, sb, n, c):
        return int(np.sum((a32[pa:pa + sa * n:sa] + c) * b32[pb:pb + sb * n:sb]))

    if kind == "dot":
        return [dot(p["a"], p["sa"], p["b"], p["sb"], p["n"], p["c"])]
    if kind == "rows":
        return [sum(dot(p["a"] + r * p["ar"], 1, p["b"] + r * p["br"], 1, p["n"], p["c"])
                    for r in range(p["rows"]))]
    if kind in ("dw3x3", "dw3x3w"):
        return [sum(int((a32[p["a"] + r * p["r"] + s] + p["c"]) * b32[p["b"] + 3 * r + s])
                    for r in range(3) for s in range(3))]
    if kind == "rows4":
        out = [sum(dot(p["a"] + r * p["ar"], 1, p["b"] + k * p["boc"] + r * p["br"], 1, p["n"],
                       p["c"]) for r in range(p["rows"])) for k in range(4)]
        base = init[:4]
    elif kind in ("dot4", "dot4s"):
        out = [dot(p["a"], p.get("S", 1), p["b"] + k * p["K"], 1, p["n"], p["c"])
               for k in range(4)]
        base = init[:4]
    else:
        out = [dot(p["a"] + q * p["P"], p.get("S", 1), p["b"] + k * p["K"], 1, p["n"], p["c"])
               for k in range(4) for q in range(2)]
        base = init[:8]
    return [int(v) + (int(s) if p["acc"] else 0) for v, s in zip(out, base)]


def _data():
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, SIZE).astype(np.int8)
    b = rng.integers(-128, 128, SIZE).astype(np.int8)
    cases = _cases(rng)
    for kind, p in cases:   # gap8_rows4_i8's weight rows are zero-padded to whole words
        if kind == "rows4":
            for k in range(4):
                for r in range(p["rows"]):
                    row = p["b"] + k * p["boc"] + r * p["br"]
                    b[row + p["n"]:row + min(p["br"], -(-p["n"] // 4) * 4)] = 0
    init = rng.integers(-(1 << 20), 1 << 20, (len(cases), 8))
    return cases, a, b, init


def _check(stdout, cases, a, b, init):
    got = {int(m.group(1)): [int(v) for v in m.group(2).split()]
           for m in re.finditer(r"^r (\d+) ([-\d ]+)$", stdout, re.M)}
    assert len(got) == len(cases), stdout[-2000:]
    for i, (kind, p) in enumerate(cases):
        assert got[i] == _expected(kind, p, a, b, init[i]), (kind, p)


def test_portable_micro_kernels_equal_numpy(tmp_path):
    cases, a, b, init = _data()
    (tmp_path / "h.c").write_text(_harness(cases, a, b, init)
                                  + "int main(void) { run(); return 0; }\n")
    exe = tmp_path / "h"
    subprocess.run(["cc", "-O2", "-std=gnu99", "-Wall", "-Werror", f"-I{RUNTIME}", "h.c", "-o",
                    str(exe)], cwd=tmp_path, check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _check(out, cases, a, b, init)


def test_portable_micro_kernels_equal_numpy_on_rv32(rv32, tmp_path):
    """The same plain C built for rv32imc (the emulator build's flags) and run on QEMU."""
    from tvm_gap8.emitc import build

    cases, a, b, init = _data()
    (tmp_path / "h.c").write_text(_harness(cases, a, b, init)
                                  + "int main(void) { run(); return 0; }\n")
    elf = tmp_path / "h.elf"
    subprocess.run([build.RV32_GCC, "-std=gnu99", "-Wall", "-Werror", *build.RV32_FLAGS,
                    f"-I{RUNTIME}", "h.c", "-o", str(elf)], cwd=tmp_path, check=True)
    run = subprocess.run(["timeout", "120", *build.qemu_command(str(elf))], capture_output=True,
                         text=True, check=True)
    _check(run.stdout + run.stderr, cases, a, b, init)


def test_pulprt_micro_kernels_equal_numpy_on_gvsoc(tmp_path):
    """The Xpulpv2 versions, run by cluster core 0 of pulp-open."""
    missing = G.gvsoc_available()
    if missing:
        pytest.skip(missing)
    cases, a, b, init = _data()
    src = _harness(cases, a, b, init) + """
#include "pulp.h"
int main(void) {
  if (hal_cluster_id() == 0 && !hal_is_fc()) {
    if (hal_core_id() == 0) run();
    return 0;
  }
  return bench_cluster_forward(0);
}
"""
    (tmp_path / "h.c").write_text(src)
    for f in ("gap8_simd.h",):
        (tmp_path / f).write_text(open(os.path.join(RUNTIME, f)).read())
    (tmp_path / "Makefile").write_text(
        "PULP_APP = h\nPULP_APP_SRCS = h.c\nPULP_CFLAGS = -O3 -std=gnu99 -DGAP8_PULPRT\n"
        "include $(PULPRT_HOME)/rules/pulp.mk\n")
    h = G.home()
    arch = "-march=rv32imc_zicsr_zifencei -mabi=ilp32"
    libgcc = subprocess.run([G.RV32_GCC, "-march=rv32imc", "-mabi=ilp32",
                             "-print-libgcc-file-name"], capture_output=True, text=True).stdout
    t = "riscv64-unknown-elf"
    env = dict(os.environ, PULPRT_HOME=str(h / "pulp-runtime"), PULPRT_TARGET="pulp",
               PULPRUN_TARGET="pulp-open",
               PATH=f"{h / 'venv/bin'}:{h / 'gvsoc/bin'}:{os.environ['PATH']}")
    proc = subprocess.run(
        ["make", "-s", "build", "platform=gvsoc", f"PULP_CC={t}-gcc", f"PULP_LD={t}-gcc",
         f"PULP_AR={t}-ar", f"PULP_OBJDUMP={t}-objdump",
         f"PULP_ARCH_CFLAGS={arch} -isystem /usr/lib/picolibc/riscv64-unknown-elf/include "
         f"-include {h / 'pulp_compat.h'}",
         f"PULP_ARCH_LDFLAGS={arch} -L{os.path.dirname(libgcc.strip())}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    elf = tmp_path / "build" / "h" / "h"
    assert proc.returncode == 0 and elf.exists(), (proc.stdout + proc.stderr)[-3000:]
    run = subprocess.run(["gvsoc", "--target=pulp-open", f"--work-dir={tmp_path / 'run'}",
                          f"--binary={elf}", "run"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    _check(run.stdout, cases, a, b, init)
