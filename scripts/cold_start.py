"""Cold-start latency: ``import fastmlp`` + the first ``fit`` in a fresh interpreter, cold and warm cache.

Runs two fresh processes that share an empty ``NUMBA_CACHE_DIR``: the first compiles every kernel it
needs (cold cache), the second loads them from that cache (warm cache). Besides the wall-clock times each
prints its CPU time, which other processes on a busy machine inflate much less. The asv suite tracks the same
thing as ``training.ColdStart``.

usage: python scripts/cold_start.py
"""

import os
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import fastmlp
t1 = time.perf_counter()
rng = np.random.RandomState(0)
X = rng.randn(30, 569)
Y = (rng.rand(1, 569) < 0.5).astype(float)
fastmlp.MLP([30, 64, 32, 1], seed=1).fit(X, Y, epochs=1, learning_rate=0.05, batch_size=32)
t2, c2 = time.perf_counter(), time.process_time()
print(f"import {t1 - t0:.2f} s, first fit (W3 network) {t2 - t1:.2f} s, total {t2 - t0:.2f} s "
      f"(CPU time {c2 - c0:.2f} s)")
"""


def main():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE="1")
        for label in ("cold cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
            print(f"{label}: {out.stdout.strip()}")


if __name__ == "__main__":
    main()
