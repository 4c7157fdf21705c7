"""Two Dask workers beside one: the one pass of ``evaluate`` without a workdir (``qgtflow.stages.fused``: each
task computes its chunks' fields and returns only its partial sums, no store written), wall time.

    .venv/bin/python benchmarks/bench_workers.py [--sizes 512 1024] [--repeat 3] [--quantities ahc all4]

Model: bench_peer.py's Haldane ``_tb.dat`` (2 bands), its μ grid (301 values) and T = 300 K; quantities as
bench_peer.py (``ahc``: σ_AHE; ``all4``: σ_AHE, Drude, BCD, nonlinear Drude in one run). Printed per (quantity,
grid), best of ``--repeat`` wall times, runs of the worker counts interleaved:

* ``pass``: ``fused.run`` on an already running LocalCluster of 1 and of 2 workers (processes, one thread each),
  each warmed by a first untimed pass (kernels loaded on every worker), and the speed-up 1 worker / 2 workers;
  beside it the CPU seconds the workers spent (summed): equal totals mean the split costs nothing, and a wall
  speed-up below 2 with equal totals is the cores the other processes took;
* ``evaluate``: ``qgtflow.evaluate(n_workers=1 | 2)`` end to end as a user calls it (its cluster started and
  stopped inside, workers loading the kernels), and ``n_workers=0`` (this process) for reference.

The load average at start and end is printed: on a shared 2-core machine the speed-up is bounded by the cores the
other processes leave.

2026-12-07 03:19 UTC, ``--sizes 512 1024 --repeat 3 --no-evaluate``, load average 11–14 (five sessions on the 2
cores; not conclusive): 1 → 2 workers σ_AHE 512² 0.98 → 1.10 s (0.89×), 1024² 5.19 → 2.85 s (1.82×); all four
512² 3.38 → 5.62 s (0.60×), 1024² 31.3 → 17.3 s (1.81×). 03:52 UTC, load average 5–7, with the workers' CPU:
σ_AHE 512² 0.45 → 0.59 s wall (0.76×), workers' CPU 0.33 → 0.39 s; 1024² 1.62 → 1.67 s (0.97×), CPU 1.34 → 1.47 s;
all four 512² 1.46 → 1.38 s (1.05×), CPU 1.21 → 1.13 s; 1024² 5.88 → 4.90 s (1.20×), CPU 4.32 → 4.51 s: the split
costs the workers 0–18 % more CPU; the wall speed-up is what the other processes left of the second core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import logging  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peer  # noqa: E402  (its models, study and quantities)


def one_pass(study, size, client):
    """``fused.run`` on ``client``'s workers (the plumbing of ``qgtflow.api.evaluate`` without a workdir)."""
    from qgtflow.plan import grid_chain, stage_study
    from qgtflow.stages import fused, kgrid_stage
    from qgtflow.study import load_study

    st = load_study(study)
    chain = grid_chain(st, size)
    reduce_study = stage_study("reduce", chain["reduce"], where=st.where)
    grid = kgrid_stage.memory_grid(st, size, chain["kgrid"])
    return fused.run(st, reduce_study, grid, chain["geometry"], chain["reduce"], client=client)


def best_wall(fn, reps_times: list):
    t0 = time.perf_counter()
    fn()
    reps_times.append(time.perf_counter() - t0)


def timed_pass(study, size, client, walls: list, cpus: list):
    """Wall time of the pass on ``client`` and the CPU seconds its workers spent (summed over the workers)."""
    c0 = client.run(time.process_time)
    best_wall(lambda: one_pass(study, size, client), walls)
    c1 = client.run(time.process_time)
    cpus.append(sum(c1[w] - c0[w] for w in c0))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quantities", nargs="+", default=["ahc", "all4"], choices=list(bench_peer.QUANTITY_SETS))
    ap.add_argument("--no-evaluate", action="store_true", help="only the pass on running clusters")
    args = ap.parse_args(argv)
    logging.getLogger("qgtflow").setLevel(logging.ERROR)
    import qgtflow
    from qgtflow.cluster import local_cluster

    print(f"# bench_workers {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores visible, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, best of {args.repeat} (wall s)", flush=True)
    blocks, lat = bench_peer.MODELS["haldane"]()
    tb = bench_peer.write_2d_tb(Path(tempfile.mkdtemp(prefix="bench-workers-")) / "haldane_tb.dat", lat, blocks)
    with local_cluster(1) as one, local_cluster(2) as two:
        for client in (one, two):  # the workers' sampling warnings of the coarse warm-up grid, as here
            client.run(lambda: logging.getLogger("qgtflow").setLevel(logging.ERROR))
        for qset in args.quantities:
            responses = [bench_peer.QUANTITIES[q][0] for q in bench_peer.QUANTITY_SETS[qset]]
            study = bench_peer.qgtflow_study(tb, responses)
            qgtflow.evaluate(study, size=8, n_workers=0)  # this process's kernels
            for client in (one, two):  # every worker's kernels loaded (compiled code read from numba's cache)
                client.run(qgtflow.evaluate, study, size=8, n_workers=0)
            for size in args.sizes:
                times = {"pass1": [], "pass2": [], "eval0": [], "eval1": [], "eval2": []}
                cpu = {"pass1": [], "pass2": []}
                for _ in range(args.repeat):  # interleaved
                    timed_pass(study, size, one, times["pass1"], cpu["pass1"])
                    timed_pass(study, size, two, times["pass2"], cpu["pass2"])
                    if not args.no_evaluate:
                        for n in (0, 1, 2):
                            best_wall(lambda: qgtflow.evaluate(study, size=size, n_workers=n), times[f"eval{n}"])
                b = {k: min(v) for k, v in times.items() if v}
                line = (f"quantity={qset} grid={size}² pass: 1 worker {b['pass1']:.3f} s, "
                        f"2 workers {b['pass2']:.3f} s, speed-up {b['pass1'] / b['pass2']:.2f}× (workers' CPU s, "
                        f"best: 1 worker {min(cpu['pass1']):.3f}, 2 workers {min(cpu['pass2']):.3f} summed)")
                if not args.no_evaluate:
                    line += (f"; evaluate: n_workers=1 {b['eval1']:.2f} s, n_workers=2 {b['eval2']:.2f} s "
                             f"(speed-up {b['eval1'] / b['eval2']:.2f}×), in process {b['eval0']:.3f} s")
                print(line, flush=True)
    print(f"# end, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
