"""CPU of Snakemake's own process over a run of many short jobs, with Snakemake's default job rate limit
(``--max-jobs-per-timespan 100/1s``) and with the one ``qgtflow run`` passes for local runs
(:data:`qgtflow.cli.LOCAL_JOB_RATE`).

Snakemake re-runs its scheduler one timespan after each scheduling pass, and that pass arms the next: the timers
add up, one chain per finished job, and each pass stats the inputs of every ready job. The workflow here is
qgtflow's shape without its work: ``--jobs`` independent chains a -> b -> c of ``sleep`` jobs (many jobs ready at
once, as the default run's 72 k-grid jobs are), on 2 cores. Printed: wall time, CPU seconds of the whole run (the
Snakemake process and its jobs, which only sleep), the scheduler passes ("Select jobs to execute" is logged only for
passes after one that selected something, so the count of the timer threads is shown instead: the most alive at once).

Run: ``.venv/bin/python benchmarks/bench_scheduler.py [--jobs 60] [--sleep 0.5]``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

SNAKEFILE = """
N = {n}
rule all:
    input: expand("c/{{i}}", i=range(N))
rule a:
    output: "a/{{i}}"
    shell: "sleep {sleep}; touch {{output}}"
rule b:
    input: "a/{{i}}"
    output: "b/{{i}}"
    shell: "sleep {sleep}; touch {{output}}"
rule c:
    input: "b/{{i}}"
    output: "c/{{i}}"
    shell: "sleep {sleep}; touch {{output}}"
"""


def run(workdir: Path, rate: str | None) -> tuple[float, float, float, int]:
    """(wall s, CPU s of the Snakemake process, CPU s of its children, most threads at once) of one run."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "all"]
    if rate:
        cmd += ["--max-jobs-per-timespan", rate]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak, own = 0, 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.num_threads())
            times = ps.cpu_times()
            own = times.user + times.system
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        sys.exit(f"snakemake failed in {workdir}")
    return wall, own, total - own, peak


def main() -> None:
    from qgtflow.cli import LOCAL_JOB_RATE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=60, help="independent chains of 3 jobs (default 60: 180 jobs)")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each job sleeps")
    args = parser.parse_args()
    print(f"{3 * args.jobs} sleep jobs of {args.sleep} s on 2 cores")
    print(f"{'--max-jobs-per-timespan':26s} {'wall s':>8s} {'Snakemake CPU s':>16s} {'jobs CPU s':>11s} {'threads max':>12s}")
    for rate in (None, LOCAL_JOB_RATE):
        with tempfile.TemporaryDirectory(prefix="qgtflow-bench-sched-") as tmp:
            (Path(tmp) / "Snakefile").write_text(SNAKEFILE.format(n=args.jobs, sleep=args.sleep))
            wall, own, jobs, peak = run(Path(tmp), rate)
        print(f"{rate or '100/1s (default)':26s} {wall:8.1f} {own:16.1f} {jobs:11.1f} {peak:12d}")


if __name__ == "__main__":
    main()
