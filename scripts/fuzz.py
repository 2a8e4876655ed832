"""Run the crash fuzz for longer than CI does: ``python scripts/fuzz.py --cases 200``.

Each case runs in its own child process (see ``tests/crash_fuzz.py``), by default twice: with the
environment as it is and with ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` unset (as on a user's machine,
where OpenBLAS picks its own kernels; the use-after-free of issue 9 showed only that way). Prints one line
per failure with the case, and a summary; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from tests.crash_fuzz import failure, make_case, run_case  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="number of random cases (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="first case seed (case i uses seed + i)")
    parser.add_argument("--openblas", choices=["both", "as-is", "unset"], default="both",
                        help="run each case with the OpenBLAS variables as they are, unset, or both")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per case")
    args = parser.parse_args(argv)
    modes = {"both": [False, True], "as-is": [False], "unset": [True]}[args.openblas]
    outcomes = collections.Counter()
    failed = 0
    start = time.perf_counter()
    for i in range(args.cases):
        case = make_case(np.random.RandomState(args.seed + i))
        for unset in modes:
            try:
                proc = run_case(case, openblas_unset=unset, timeout=args.timeout)
            except Exception as exc:  # a timeout is a failure too
                failed += 1
                print(f"FAIL (openblas {'unset' if unset else 'as-is'}) {json.dumps(case)}: {exc!r}", flush=True)
                continue
            last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
            if proc.returncode != 0 or not last.startswith(("trained", "refused")):
                failed += 1
                print(f"FAIL (openblas {'unset' if unset else 'as-is'}) {failure(case, proc)}", flush=True)
            else:
                outcomes[(case["path"], last[:60])] += 1
    print(f"{args.cases} cases x {len(modes)} environment(s) in {time.perf_counter() - start:.0f} s: "
          f"{failed} failed")
    for (path, outcome), count in sorted(outcomes.items()):
        print(f"  {path:<11} {outcome:<40} {count}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
