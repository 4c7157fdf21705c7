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
  user's shared one) and the stage module's import (``--occupancy-of RESULTS_DIR``: how a finished run used its cores).

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


def cpu_seconds(benchmarks: Path) -> tuple[dict, dict]:
    """CPU seconds ({rule: s}, {study: s}) summed over the rules' ``benchmark:`` files (column cpu_time; a file
    is <rule>/<study>_n<size>.tsv or <rule>/<study>.tsv). On a shared machine wall time is inflated, CPU is not:
    the sum over 2 cores is a lower bound of the run's wall time."""
    per_rule: dict[str, float] = {}
    per_study: dict[str, float] = {}
    for tsv in sorted(benchmarks.rglob("*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        cpu = float(row["cpu_time"]) if row.get("cpu_time") not in (None, "", "NA") else 0.0
        study = re.sub(r"_n\d+(?:x\d+)*$", "", tsv.stem)
        per_rule[tsv.parent.name] = per_rule.get(tsv.parent.name, 0.0) + cpu
        per_study[study] = per_study.get(study, 0.0) + cpu
    return per_rule, per_study


def print_cpu_seconds(benchmarks: Path) -> None:
    per_rule, per_study = cpu_seconds(benchmarks)
    total = sum(per_rule.values())
    print(f"  CPU seconds: total {total:.0f} s (/2 cores = {total / 2 / 60:.1f} min, a lower bound of the wall time)")
    for label, table in (("rule", per_rule), ("study", per_study)):
        for name, cpu in sorted(table.items(), key=lambda kv: -kv[1]):
            print(f"    {label} {name:28s} {cpu:8.1f} s")


def job_intervals(results: Path) -> list[dict]:
    """One row per finished job of a run: rule, start, end (the benchmark file's mtime minus / at its wall seconds),
    CPU seconds and the threads Snakemake gave it (setup_job's "N thread(s) given" line in the job's log)."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        end = tsv.stat().st_mtime
        log = results / "logs" / tsv.parent.name / f"{tsv.stem}.log"
        given = re.search(r"(\d+) thread\(s\) given", log.read_text()) if log.is_file() else None
        cpu = float(row["cpu_time"]) if row.get("cpu_time") not in (None, "", "NA") else 0.0
        rows.append({"rule": tsv.parent.name, "start": end - float(row["s"]), "end": end, "cpu": cpu,
                     "threads": int(given.group(1)) if given else 1})
    return rows


def print_occupancy(results: Path, cores: int = 2, bins: int = 12) -> None:
    """How the run used its cores: over the span from the first job's start to the last job's end, the mean
    number of jobs running, of threads they hold (a job holding 2 threads of 2 cores keeps every other job
    waiting), and CPU seconds / (span x cores); then the same per slice of the span."""
    rows = job_intervals(results)
    t0, t1 = min(r["start"] for r in rows), max(r["end"] for r in rows)
    span = t1 - t0

    def mean_over(a, b, key):
        return sum(max(0.0, min(b, r["end"]) - max(a, r["start"])) * (1 if key is None else r[key])
                   for r in rows) / (b - a)

    cpu = sum(r["cpu"] for r in rows)
    print(f"  {len(rows)} jobs over {span / 60:.1f} min: mean jobs running {mean_over(t0, t1, None):.2f}, "
          f"threads held {mean_over(t0, t1, 'threads'):.2f} of {cores}, CPU {cpu:.0f} s = "
          f"{cpu / (span * cores):.0%} of {cores} cores x span")
    for rule in sorted({r["rule"] for r in rows}):
        mine = [r for r in rows if r["rule"] == rule]
        print(f"    rule {rule:12s} jobs {len(mine):3d}  threads held {sorted({r['threads'] for r in mine})}  "
              f"job wall sum {sum(r['end'] - r['start'] for r in mine):7.0f} s  CPU sum {sum(r['cpu'] for r in mine):6.0f} s")
    width = span / bins
    print(f"  per {width / 60:.1f} min slice: jobs running / threads held")
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
    print_cpu_seconds(results / "benchmarks")
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
                        help="only print the CPU seconds per rule and study of a finished run's benchmark files")
    parser.add_argument("--occupancy-of", type=Path, metavar="RESULTS_DIR",
                        help="only print how a finished run used its 2 cores: jobs running and threads held over time")
    args = parser.parse_args()
    if args.cpu_of:
        print_cpu_seconds(args.cpu_of / "benchmarks")
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
