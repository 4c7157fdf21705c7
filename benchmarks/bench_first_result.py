"""Time to first result (issue 15): cold and warm ``qgtflow evaluate``, per-job start-up of the tiny
workflow, import time of each stage.

- evaluate: a 64² two-band (Haldane) and a 64² four-band (PT toy, 001 Eq. 20) study, each as a fresh
  ``qgtflow evaluate`` process; *cold* = an empty qgtflow cache (``QGTFLOW_CACHE_DIR``: numba compiles
  the kernels), *warm* = the same cache again; beside it the warm run on a 2-worker Dask
  LocalCluster (``--workers 2``, what a small study used before it ran in-process). Cold, warm and
  Dask runs are interleaved, repeated ``--repeats`` times; the table prints min/median and the
  ratios of the medians of the same run.
- workflow: ``config/test.yaml`` (2 studies x 2 grids, 15 jobs) on a warm cache into a temporary
  results directory; per-job wall time from the rules' ``benchmark:`` files (the jobs' grids are
  tiny, so this is their start-up: interpreter, Snakefile parse, imports, stores).
- imports: ``python -X importtime -c 'import qgtflow.stages.X'`` (cumulative µs of the module).
- job start-up: CPU seconds of a fresh process per rule: set-up (snakemake.script, the job's numba cache from the
  user's shared one) and the stage module's import.
- a finished run (its job logs): ``--cpu-of RESULTS_DIR`` sums the jobs' ``job CPU`` lines (runtime.end_job) per rule
  and study; ``--occupancy-of RESULTS_DIR``: sum of job wall times / (run wall x 2 cores), from the logs' timestamps.

- default run (``--default-run``): ``qgtflow run`` of config/config.yaml into a temporary results dir: wall
  time (with the load average) and MB per study and stage.

Run: ``.venv/bin/python benchmarks/bench_first_result.py [--repeats N] [--skip-workflow] [--default-run]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QGTFLOW = str(Path(sys.executable).with_name("qgtflow"))

STUDIES = {
    "2-band (Haldane) 64²": """model: {name: haldane, params: {t1: 1.0, t2: 0.1, phi: 1.5707963267948966, mass: 0.2}}
units: natural
kgrid: {sizes: [64]}
mu: [-0.5, 0.0, 0.5]
temperature: [0.05]
responses: [sigma_ahe]
""",
    "4-band (PT toy) 64²": """model: {name: pt_toy_4band, params: {v: 1.0, m: 0.1, b: 1.0, t: 0.5}}
kgrid: {sizes: [64], kmax: 1.2}
mu: {start: 0.0, stop: 0.4, num: 5}
temperature: [50.0]
responses: [sigma_qm, sigma_drude]
""",
}


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["QGTFLOW_CACHE_DIR"] = str(cache)
    return env


def evaluate_seconds(study: Path, cache: Path, out: Path, workers: str | None = None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [QGTFLOW, "evaluate", str(study), "--out", str(out)] + (["--workers", workers] if workers else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(cache), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"evaluate failed:\n{proc.stderr[-3000:]}")
    return seconds


def bench_evaluate(repeats: int, tmp: Path) -> None:
    print("\n== qgtflow evaluate, wall time of the whole command (s) ==")
    print(f"{'study':24s} {'cold (min/med)':>16s} {'warm (min/med)':>16s} {'warm Dask x2':>14s} "
          f"{'cold/warm':>9s} {'Dask/warm':>9s}")
    for label, text in STUDIES.items():
        study = tmp / "study.yaml"
        study.write_text(text)
        cold, warm, dask = [], [], []
        for r in range(repeats):
            cache = tmp / f"cache-{r}"
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(evaluate_seconds(study, cache, tmp / "out.zarr"))
            warm.append(evaluate_seconds(study, cache, tmp / "out.zarr"))
            dask.append(evaluate_seconds(study, cache, tmp / "out.zarr", workers="2"))
            shutil.rmtree(cache, ignore_errors=True)
        med = statistics.median
        print(f"{label:24s} {min(cold):7.1f}/{med(cold):<7.1f}  {min(warm):7.2f}/{med(warm):<7.2f}  "
              f"{med(dask):12.2f}  {med(cold) / med(warm):9.1f} {med(dask) / med(warm):9.1f}")


def bench_workflow(tmp: Path) -> None:
    print("\n== tiny workflow (config/test.yaml, warm cache): wall time per job (s) ==")
    results = tmp / "results-test"
    cmd = [QGTFLOW, "run", "--configfile", str(ROOT / "config" / "test.yaml"), "--config",
           f"results_dir={results}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    total = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"workflow failed:\n{proc.stderr[-3000:]}")
    per_rule: dict[str, list[float]] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        per_rule.setdefault(tsv.parent.name, []).append(float(row["s"]))
    everything = [s for v in per_rule.values() for s in v]
    for rule, seconds in per_rule.items():
        print(f"  {rule:12s} jobs {len(seconds):2d}  median {statistics.median(seconds):5.2f}  max {max(seconds):5.2f}")
    print(f"  all jobs: {len(everything)}, median {statistics.median(everything):.2f} s, "
          f"max {max(everything):.2f} s; whole `qgtflow run` {total:.1f} s")


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_JOB_CPU = re.compile(r"job CPU (\d+\.\d+) s(?: \(self [\d.]+ s, children [\d.]+ s; process wall ([\d.]+|-) s\))?")


def job_logs(results: Path) -> list[dict]:
    """One row per job log of a run (``logs/<rule>/<study>[_n<size>].log``): rule, study, start and end (the
    log's first and last timestamps; the start moved back to the process start when the ``job CPU`` line
    gives the process wall time, so interpreter start-up and imports count), CPU seconds from the
    ``job CPU`` line (runtime.end_job; None when the job did not log one) and the threads Snakemake gave it
    (setup_job's "N thread(s) given" line)."""
    from datetime import datetime

    rows = []
    for log in sorted((results / "logs").glob("*/*.log")):
        text = log.read_text()
        stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                  for m in map(_STAMP.match, text.splitlines()) if m]
        if not stamps:
            continue
        cpu = _JOB_CPU.search(text)
        given = re.search(r"(\d+) thread\(s\) given", text)
        wall = float(cpu.group(2)) if cpu and cpu.group(2) not in (None, "-") else None
        end = stamps[-1]
        rows.append({"rule": log.parent.name, "study": re.sub(r"_n\d+(?:x\d+)*$", "", log.stem),
                     "start": end - wall if wall is not None else stamps[0], "end": end,
                     "cpu": float(cpu.group(1)) if cpu else None, "threads": int(given.group(1)) if given else 1})
    return rows


def print_cpu_seconds(results: Path) -> None:
    """CPU seconds per rule and per study, summed over the ``job CPU`` lines of a finished run's job logs (the
    job process and its Dask workers; snakemake's own process is not in it). On a shared machine wall time is
    inflated, CPU is not: the sum over 2 cores is a lower bound of the run's wall time."""
    rows = job_logs(results)
    missing = [r for r in rows if r["cpu"] is None]
    per_rule: dict[str, list[float]] = {}
    per_study: dict[str, float] = {}
    for r in rows:
        if r["cpu"] is not None:
            per_rule.setdefault(r["rule"], []).append(r["cpu"])
            per_study[r["study"]] = per_study.get(r["study"], 0.0) + r["cpu"]
    total = sum(sum(v) for v in per_rule.values())
    print(f"  job CPU seconds: total {total:.1f} s over {len(rows) - len(missing)} jobs "
          f"(/2 cores = {total / 2 / 60:.2f} min, a lower bound of the wall time)"
          + (f"; {len(missing)} job log(s) without a `job CPU` line" if missing else ""))
    for rule, cpus in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"    rule  {rule:28s} jobs {len(cpus):3d}  {sum(cpus):8.1f} s  (median {statistics.median(cpus):.2f})")
    for study, cpu in sorted(per_study.items(), key=lambda kv: -kv[1]):
        print(f"    study {study:28s} {cpu:8.1f} s")


def print_occupancy(results: Path, cores: int = 2, bins: int = 12) -> None:
    """How busy the cores were: sum of the jobs' wall times / (run wall x cores), the run's wall from the first
    job's start to the last job's end (the job logs' timestamps, :func:`job_logs`); then the threads the jobs
    held, the CPU they used, the same per rule and per slice of the run."""
    rows = job_logs(results)
    t0, t1 = min(r["start"] for r in rows), max(r["end"] for r in rows)
    span = t1 - t0

    def mean_over(a, b, key):
        return sum(max(0.0, min(b, r["end"]) - max(a, r["start"])) * (1 if key is None else r[key])
                   for r in rows) / (b - a)

    job_wall = sum(r["end"] - r["start"] for r in rows)
    cpu = sum(r["cpu"] or 0.0 for r in rows)
    print(f"  {len(rows)} jobs over {span:.1f} s: occupancy {job_wall:.1f} s of job wall / ({span:.1f} s x {cores} "
          f"cores) = {job_wall / (span * cores):.0%}; threads held {mean_over(t0, t1, 'threads'):.2f} of {cores}; "
          f"job CPU {cpu:.1f} s = {cpu / (span * cores):.0%} of {cores} cores x span")
    for rule in sorted({r["rule"] for r in rows}):
        mine = [r for r in rows if r["rule"] == rule]
        print(f"    rule {rule:12s} jobs {len(mine):3d}  threads held {sorted({r['threads'] for r in mine})}  "
              f"job wall sum {sum(r['end'] - r['start'] for r in mine):8.1f} s  "
              f"CPU sum {sum(r['cpu'] or 0.0 for r in mine):7.1f} s")
    width = span / bins
    print(f"  per {width:.1f} s slice: jobs running / threads held")
    print("   " + " ".join(f"{mean_over(t0 + i * width, t0 + (i + 1) * width, None):4.1f}/"
                          f"{mean_over(t0 + i * width, t0 + (i + 1) * width, 'threads'):<4.1f}" for i in range(bins)))


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def bench_default_run(tmp: Path) -> None:
    """The default workflow (config/config.yaml) into a temporary results dir: wall time, disk per study and
    stage (issue 15 targets: <= 8 min on 2 cores, <= 1.5 GB). Slow (minutes): run it on a quiet machine."""
    print("\n== default run (config/config.yaml, 2 cores) ==")
    results = tmp / "results-default"
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([QGTFLOW, "run", "--cores", "2", "--config", f"results_dir={results}"], capture_output=True,
                          text=True, cwd=ROOT)
    total = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"default run failed:\n{proc.stderr[-3000:]}")
    print(f"  wall time {total / 60:.1f} min (load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f})")
    print(f"  {'study':28s} {'kgrid':>10s} {'geometry':>10s} {'responses':>10s} {'convergence':>12s}  (MB)")
    for study in sorted(p for p in results.iterdir() if p.is_dir() and p.name not in ("report", "benchmarks", "logs")):
        mb = {name: sum(_du(d) for d in study.rglob(name)) / 1e6
              for name in ("kgrid.zarr", "geometry.zarr", "responses.zarr", "convergence")}
        print(f"  {study.name:28s} {mb['kgrid.zarr']:10.1f} {mb['geometry.zarr']:10.1f} {mb['responses.zarr']:10.1f} "
              f"{mb['convergence']:12.1f}")
    print(f"  total on disk {_du(results) / 1e9:.2f} GB")
    print_cpu_seconds(results)
    print_occupancy(results)


def bench_imports() -> None:
    print("\n== import time of each stage module (python -X importtime, cumulative) ==")
    for module in ("qgtflow.runtime", "qgtflow.stages.kgrid_stage", "qgtflow.stages.geometry_stage",
                   "qgtflow.stages.reduce_stage", "qgtflow.stages.convergence_stage"):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                              text=True, check=True)
        line = [ln for ln in proc.stderr.splitlines() if ln.rstrip().endswith(f"| {module}")][-1]
        cumulative_us = int(line.split("|")[1])
        print(f"  {module:36s} {cumulative_us / 1e6:6.2f} s")


_STARTUP = """import importlib, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
import snakemake.script  # what a script job's preamble imports to unpickle its job
from qgtflow import runtime
job = runtime._job_numba_cache(runtime.numba_cache_root(), "bench-startup")
c1 = cpu()
importlib.import_module(sys.argv[1])
print(c1, cpu() - c1)
"""


def bench_job_startup(repeats: int) -> None:
    """CPU seconds a workflow job spends before its stage runs, in a fresh process per rule (issue 15 target: <= 3 s):
    set-up (interpreter, snakemake.script, the job's numba cache from the user's shared one, as setup_job makes it)
    and the import of the stage's module; median over ``repeats``, the rules interleaved."""
    print("\n== job start-up, CPU s (median): set-up incl. numba cache + stage import ==")
    stages = ("kgrid", "geometry", "shells", "reduce", "convergence", "bands")
    seen: dict[str, list[tuple[float, float]]] = {s: [] for s in stages}
    for _ in range(max(3, repeats)):
        for stage in stages:
            proc = subprocess.run([sys.executable, "-c", _STARTUP, f"qgtflow.stages.{stage}_stage"], capture_output=True,
                                  text=True, check=True)
            setup, imports = map(float, proc.stdout.split())
            seen[stage].append((setup, imports))
    for stage, rows in seen.items():
        setup, imports = (statistics.median(r[i] for r in rows) for i in (0, 1))
        print(f"  {stage:12s} set-up {setup:5.2f}  import {imports:5.2f}  total {setup + imports:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-workflow", action="store_true")
    parser.add_argument("--default-run", action="store_true",
                        help="also run the default workflow and print its wall time and disk per study and stage")
    parser.add_argument("--cpu-of", type=Path, metavar="RESULTS_DIR",
                        help="only print the CPU seconds per rule and study of a finished run: the `job CPU` lines of its job logs")
    parser.add_argument("--occupancy-of", type=Path, metavar="RESULTS_DIR",
                        help="only print how busy a finished run kept its 2 cores: sum of job wall times / (run wall x cores), "
                             "from its job logs' timestamps")
    args = parser.parse_args()
    if args.cpu_of:
        print_cpu_seconds(args.cpu_of)
        return
    if args.occupancy_of:
        print_occupancy(args.occupancy_of)
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="qgtflow-bench-first-") as tmp:
        tmp = Path(tmp)
        bench_imports()
        bench_job_startup(args.repeats)
        bench_evaluate(args.repeats, tmp)
        if not args.skip_workflow:
            bench_workflow(tmp)
        if args.default_run:
            bench_default_run(tmp)


if __name__ == "__main__":
    main()
