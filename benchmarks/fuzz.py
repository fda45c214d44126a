"""Fuzz the GAP8 lowering: random DW->PW / PW->DW blocks (float and int8, random L1 budgets)
compiled through the full flow and judged by --check (float: onnxruntime at basic level;
int8: bit for bit the integer reference, every layer within one step of the QDQ spec).

    python benchmarks/fuzz.py [--equal N] [--seed S]

Draws random blocks until N of them (default 1000) have been compiled and found equal to
onnxruntime (or a failure budget of 3 x N draws is spent).

Prints progress, then a table: blocks that passed the check, blocks cleanly refused because
the L1 budget was too small (the error names the layer and the bytes), and failures (with the
case, to be kept as a regression in tests/models/test_fuzz_blocks.py). Exit status 1 on any
failure.
"""

import argparse
import sys
import time

import numpy as np

from tvm_gap8.testing.fuzz import random_case, run_case


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equal", type=int, default=1000,
                    help="stop once this many blocks compiled and matched onnxruntime")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    equal = refused = 0
    failures = []
    kinds = {"float": 0, "int8": 0}
    t0 = time.perf_counter()
    drawn = 0
    while equal < args.equal and drawn < 3 * args.equal:
        drawn += 1
        i = drawn - 1
        case = random_case(rng)
        try:
            check = run_case(case)
        except Exception as exc:  # a crash is a failure too
            failures.append((case, f"{type(exc).__name__}: {exc}"))
            continue
        if check is None:
            refused += 1
        elif check["passed"]:
            equal += 1
            kinds["int8" if case.int8 else "float"] += 1
        else:
            failures.append((case, check))
        if (i + 1) % 50 == 0:
            print(f"[{i + 1} drawn] equal {equal}/{args.equal}, L1-refused {refused}, failed "
                  f"{len(failures)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
    print(f"{'random blocks drawn':<34}{drawn:>8}")
    print(f"{'passed the check':<34}{equal:>8}   (float {kinds['float']}, int8 {kinds['int8']})")
    print(f"{'refused: L1 budget too small':<34}{refused:>8}")
    print(f"{'failures':<34}{len(failures):>8}")
    print(f"{'seconds':<34}{time.perf_counter() - t0:>8.0f}")
    for case, why in failures:
        print(f"FAILED {case}: {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
