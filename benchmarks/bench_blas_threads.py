"""BLAS threads on qgtflow's batched small matrices: the library's default (one thread per core) against one thread
(what ``qgtflow.cluster.single_threaded_blas`` sets for in-process ``evaluate`` and ``qgtflow bands``, and what the
workflow's jobs and Dask workers set through ``OMP/MKL/OPENBLAS_NUM_THREADS=1``).

Workload per band count n: batched ``A @ A`` and ``numpy.linalg.eigh`` of (batch, n, n) complex matrices (the
shapes of the NumPy eigenbasis, Kubo and position-operator paths), about 4096 × 4 / n matrices, 5 passes. Each
setting runs in a fresh process (the thread count is fixed when OpenBLAS loads), the two interleaved, ``--repeats``
times; printed: median CPU and wall seconds of each and the ratio threaded / one thread.

Measured (2026-12-06, shared 2-core VM at load ≈ 7.5 from other work; noisy; --repeats 2): n = 84: 23.7 s CPU /
40.7 s wall threaded against 0.93 s / 1.32 s on one thread (25× CPU, 31× wall); n = 8: equal (1.03×). On an idle
2-core machine a threaded BLAS could at best halve the n = 84 time, so one thread is the safe choice.
Run: ``.venv/bin/python benchmarks/bench_blas_threads.py [--repeats 3] [--bands 2 8 16 84]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORK = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((4096 * 4 // n, n, n)) + 1j * rng.standard_normal((4096 * 4 // n, n, n))
h = a + a.conj().transpose(0, 2, 1)
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(5):
    a @ a
    np.linalg.eigh(h)
print(json.dumps([time.process_time() - cpu, time.perf_counter() - wall]))
"""
PINNED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run(n: int, single: bool) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    if single:
        env.update({k: "1" for k in PINNED})
    out = subprocess.run([sys.executable, "-c", WORK, str(n)], env=env, capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bands", type=int, nargs="+", default=[2, 8, 16, 84])
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    print(f"{'bands':>5} {'threaded CPU s':>15} {'wall s':>8} {'1 thread CPU s':>15} {'wall s':>8} "
          f"{'CPU ratio':>9} {'wall ratio':>10}")
    for n in args.bands:
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for single in (False, True):
                times[single].append(run(n, single))
        (tc, tw), (sc, sw) = ([statistics.median(x[i] for x in times[s]) for i in (0, 1)] for s in (False, True))
        print(f"{n:>5} {tc:>15.3f} {tw:>8.3f} {sc:>15.3f} {sw:>8.3f} {tc / sc:>9.2f} {tw / sw:>10.2f}")


if __name__ == "__main__":
    main()
