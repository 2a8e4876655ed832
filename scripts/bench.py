#!/usr/bin/env python
"""Speedup table for people who don't run asv: fastmlp against course-style NumPy code and its peers.

Times one training epoch (as many epochs per call as ``fastmlp.workloads`` says) of every workload for
the NumPy baseline, fastmlp, and -- when installed -- PyTorch, JAX and scikit-learn, each in its own
process; prints the table and saves a PNG bar chart (matplotlib). The work is done by ``fastmlp._bench``,
which ``fastmlp bench`` uses too; ``--readme`` prints the README's tables. Run it with the OpenBLAS
variables unset for every peer alike:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench.py --readme

usage: python scripts/bench.py [--only W1,W4,S1] [--peers numpy,fastmlp,torch] [--dtype float32]
                               [--reps 5] [--plot bench_out/speedup.png] [--json out.json] [--quick] [--readme]
"""

import os
import sys

if __name__ == "__main__":
    # run from a clone without installing: the checkout's fastmlp comes first
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    from fastmlp._bench import main

    sys.exit(main())
