"""The ``qgtflow`` command line, and the set-up shared by the workflow's rule scripts.

    qgtflow evaluate STUDY.yaml --out OUT.zarr [--size N] [--workers N]
    qgtflow run [--configfile F] [--cores N|all] [--slurm] [--dry-run] [snakemake args ...]
    qgtflow report [--configfile F] [snakemake args ...]

``run`` and ``report`` drive Snakemake on the repository's top-level ``Snakefile`` (working
directory: the repository, so a relative ``results_dir`` lands there). User errors
(:class:`~qgtflow.errors.QgtflowError`, missing files) print one line ``qgtflow: error: ...`` and
exit with status 2; a failed workflow exits with status 1.

Only the standard library is imported at module level: the rule scripts call :func:`setup_job`
before numpy/numba/BLAS are first imported, so its thread settings take effect.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from qgtflow.errors import QgtflowError

log = logging.getLogger("qgtflow.cli")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PINNED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class UsageError(QgtflowError):
    """A bad command line or environment (missing file, no workflow found)."""


# ---------------------------------------------------------------- workflow jobs


def setup_job(smk) -> tuple[logging.Logger, int]:
    """Prepare a Snakemake ``script:`` job; returns (logger, number of Dask workers).

    - pins OMP/MKL/OPENBLAS threads to 1 and sizes ``NUMBA_NUM_THREADS`` so that
      workers x numba threads <= the job's threads;
    - gives the job its own ``NUMBA_CACHE_DIR`` under ``.snakemake/numba_cache/jobs`` (numba's
      cache is not safe for concurrent writers, numba#4807), seeded from a shared cache and
      published back to it at exit, under a file lock, so kernels compile once per work directory;
    - logs to the rule's ``log:`` file (and stderr: the SLURM job log), uncaught exceptions included.
    """
    threads = max(1, int(smk.threads))
    requested = (smk.config.get("dask") or {}).get("n_workers")
    n_workers = int(requested) if requested else threads
    for var in _PINNED:
        os.environ[var] = "1"
    os.environ["NUMBA_NUM_THREADS"] = str(max(1, threads // n_workers))
    job_key = "-".join([smk.rule, *(str(v) for v in smk.wildcards)])
    cache = _job_numba_cache(Path(".snakemake", "numba_cache").resolve(), job_key)
    os.environ["NUMBA_CACHE_DIR"] = str(cache)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # scheduler chatter (read on import)

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if smk.log:
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.insert(0, logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    logger = logging.getLogger(f"qgtflow.workflow.{smk.rule}")

    def excepthook(exc_type, exc, tb):
        logger.error("rule %s failed", smk.rule, exc_info=(exc_type, exc, tb))

    sys.excepthook = excepthook
    logger.info("rule %s %s: %d thread(s), %d Dask worker(s), NUMBA_NUM_THREADS=%s, NUMBA_CACHE_DIR=%s", smk.rule,
                dict(smk.wildcards.items()), threads, n_workers, os.environ["NUMBA_NUM_THREADS"], cache)
    return logger, n_workers


@contextlib.contextmanager
def _locked(lock_path: Path):
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _job_numba_cache(root: Path, job_key: str) -> Path:
    """A private numba cache for this job: a copy of ``root/shared``, published back at exit.

    Only this process (and its Dask workers) write the private copy. Publishing copies, per
    compiled function, the data files and then the index (atomic renames), and only when this job
    compiled something newer than the shared copy, so a reader never sees an index without its
    data. If file locks are unavailable (some parallel filesystems), the job cache starts cold.
    """
    shared, lock = root / "shared", root / "shared.lock"
    job = root / "jobs" / f"{job_key}-{os.getpid()}"
    if job.exists():
        shutil.rmtree(job)
    try:
        with _locked(lock):
            if shared.is_dir():
                shutil.copytree(shared, job)
    except OSError as exc:
        log.warning("numba cache: not sharing compiled kernels between jobs (%s)", exc)
        job.mkdir(parents=True, exist_ok=True)
        return job
    job.mkdir(parents=True, exist_ok=True)
    atexit.register(_publish_numba_cache, job, shared, lock)
    return job


def _publish_numba_cache(job: Path, shared: Path, lock: Path) -> None:
    def copy(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)

    try:
        with _locked(lock):
            for index in job.rglob("*.nbi"):
                target = shared / index.relative_to(job)
                if target.exists() and target.stat().st_mtime >= index.stat().st_mtime:
                    continue  # nothing newer compiled here
                stem = glob.escape(index.name[: -len(".nbi")])
                target.parent.mkdir(parents=True, exist_ok=True)
                for old in target.parent.glob(stem + ".*.nbc"):
                    old.unlink()
                for data in index.parent.glob(stem + ".*.nbc"):
                    copy(data, target.parent / data.name)
                copy(index, target)
        shutil.rmtree(job, ignore_errors=True)
    except OSError as exc:  # a cache is an optimisation: never fail the job for it
        logging.getLogger("qgtflow.cli").warning("numba cache: could not publish %s (%s)", job, exc)


# ---------------------------------------------------------------- command line


def workflow_root() -> Path:
    """The directory holding the workflow's top-level Snakefile (the repository)."""
    candidates = []
    if os.environ.get("QGTFLOW_WORKFLOW_DIR"):
        candidates.append(Path(os.environ["QGTFLOW_WORKFLOW_DIR"]))
    candidates += [Path(__file__).resolve().parents[2], Path.cwd()]
    for root in candidates:
        if (root / "Snakefile").is_file() and (root / "workflow" / "rules").is_dir():
            return root.resolve()
    raise UsageError("cannot find the qgtflow workflow (Snakefile + workflow/rules); run from a source checkout "
                     "or set QGTFLOW_WORKFLOW_DIR")


def _existing_file(path: str, what: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"{what} {path} does not exist")
    return str(p.resolve())


def _snakemake_command(root: Path, configfile: str | None, extra: list[str], targets: tuple = ()) -> list[str]:
    # targets first: options such as --config/--configfile take several values
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(root / "Snakefile"), "--directory", str(root)]
    if configfile:
        cmd += ["--configfile", _existing_file(configfile, "config file")]
    return cmd + extra


def _run_snakemake(cmd: list[str], what: str) -> int:
    log.info("%s: %s", what, " ".join(cmd))
    t0 = time.perf_counter()
    missing_input = False
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1) as proc:
        for line in proc.stderr:  # pass Snakemake's messages through, watching for missing inputs
            sys.stderr.write(line)
            missing_input = missing_input or "MissingInputException" in line
    rc = proc.returncode
    if rc == 0:
        log.info("%s: finished in %.1f s", what, time.perf_counter() - t0)
        return 0
    if rc == 2:  # config errors (already printed by the workflow as one line) and snakemake usage errors
        return 2
    if missing_input:
        hint = "; run `qgtflow run` first" if what == "report" else ""
        print(f"qgtflow: error: {what}: input files are missing (listed above){hint}", file=sys.stderr)
        return 2
    print(f"qgtflow: error: {what} failed (snakemake exit status {rc}); see the messages above and the "
          f"rule logs under the results directory", file=sys.stderr)
    return 1


def cmd_evaluate(args, extra) -> int:
    from qgtflow.api import evaluate

    study = _existing_file(args.study, "study file")
    if args.size is not None and args.size < 2:
        raise UsageError(f"--size {args.size}: expected an integer >= 2")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers {args.workers}: expected an integer >= 0 (0 = no Dask)")
    log.info("evaluate %s -> %s", study, args.out)
    t0 = time.perf_counter()
    ds = evaluate(study, size=args.size, out=args.out, n_workers=args.workers)
    log.info("evaluate: wrote %s (%s) in %.1f s", args.out, ", ".join(map(str, ds.data_vars)),
             time.perf_counter() - t0)
    return 0


def cmd_run(args, extra) -> int:
    root = workflow_root()
    opts = []
    if args.slurm:
        opts += ["--executor", "slurm", "--profile", str(root / "slurm")]
        if args.cores:
            opts += ["--cores", args.cores]
    else:
        opts += ["--cores", args.cores or "all"]
    if args.dry_run:
        opts.append("--dry-run")
    return _run_snakemake(_snakemake_command(root, args.configfile, opts + extra), "run")


def cmd_report(args, extra) -> int:
    root = workflow_root()
    # only the report rule may run: the results must exist already (`qgtflow run` makes them)
    opts = ["--cores", "1", "--forcerun", "report", "--allowed-rules", "report"]
    return _run_snakemake(_snakemake_command(root, args.configfile, opts + extra, targets=("report",)), "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgtflow", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{evaluate,run,report}")

    p = sub.add_parser("evaluate", allow_abbrev=False, help="one study at one grid density, without Snakemake")
    p.add_argument("study", metavar="STUDY.yaml", help="study file (src/qgtflow/schemas/study.schema.yaml)")
    p.add_argument("--out", required=True, metavar="OUT.zarr", help="responses store to write")
    p.add_argument("--size", type=int, help="points per axis (default: the largest of kgrid.sizes)")
    p.add_argument("--workers", type=int, help="Dask workers (default: the cores visible; 0 = in process)")
    p.set_defaults(func=cmd_evaluate, passthrough=False)

    p = sub.add_parser("run", allow_abbrev=False, help="run the Snakemake workflow (other arguments go to snakemake)")
    p.add_argument("--configfile", metavar="F", help="workflow config (default: config/config.yaml)")
    p.add_argument("--cores", metavar="N|all", help="local cores (default: all; with --slurm: not set)")
    p.add_argument("--slurm", action="store_true", help="submit jobs to SLURM with the profile in slurm/")
    p.add_argument("-n", "--dry-run", action="store_true", help="show the jobs without running them")
    p.set_defaults(func=cmd_run, passthrough=True)

    p = sub.add_parser("report", allow_abbrev=False, help="(re)build results/report/index.html from existing results")
    p.add_argument("--configfile", metavar="F", help="workflow config (default: config/config.yaml)")
    p.set_defaults(func=cmd_report, passthrough=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if extra and not args.passthrough:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    try:
        return args.func(args, extra)
    except QgtflowError as exc:
        print(f"qgtflow: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"qgtflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qgtflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
