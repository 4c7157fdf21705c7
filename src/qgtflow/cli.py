"""The ``qgtflow`` command line (the rule scripts' job set-up is :mod:`qgtflow.runtime`).

    qgtflow evaluate STUDY.yaml --out OUT.zarr [--size N] [--workers N]
    qgtflow converge STUDY.yaml --out DIR [--rtol X] [--max-points N] [--workers N] [--strict]
    qgtflow run [--configfile F] [--cores N|all] [--slurm] [--dask-slurm [F]] [--dry-run] [snakemake args ...]
    qgtflow report [--configfile F] [snakemake args ...]
    qgtflow verify PATH [PATH ...]
    qgtflow init DIR
    qgtflow models | responses
    qgtflow --version

``run`` and ``report`` drive Snakemake on the workflow's ``Snakefile`` (a source checkout, or the
copy installed with the package) in the current directory: ``.snakemake/`` and a relative
``results_dir`` land where the user is; the config defaults to ``./config/config.yaml`` when there
is one (``qgtflow init DIR`` writes it), else the workflow's own ``config/config.yaml``. User errors
(:class:`~qgtflow.errors.QgtflowError`, missing files) print one line ``qgtflow: error: ...`` and
exit with status 2; a failed workflow exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from qgtflow.errors import QgtflowError, one_line
from qgtflow.runtime import LOG_FORMAT

log = logging.getLogger("qgtflow.cli")


class UsageError(QgtflowError):
    """A bad command line or environment (missing file, no workflow found)."""


# ---------------------------------------------------------------- command line


def _need_workflow_stack(*modules: str) -> None:
    """The workflow commands need the ``workflow`` extra (Snakemake, its SLURM plugin, dask-jobqueue)."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"this command needs {', '.join(missing)}, not installed: pip install 'qgtflow[workflow]'")


def workflow_root() -> Path:
    """The directory holding the workflow's top-level Snakefile (the repository)."""
    candidates = []
    if os.environ.get("QGTFLOW_WORKFLOW_DIR"):
        candidates.append(Path(os.environ["QGTFLOW_WORKFLOW_DIR"]))
    candidates += [Path(__file__).resolve().parents[2], Path.cwd(), Path(sys.prefix) / "share" / "qgtflow"]
    for root in candidates:
        if (root / "Snakefile").is_file() and (root / "workflow" / "rules").is_dir():
            return root.resolve()
    raise UsageError("cannot find the qgtflow workflow (Snakefile + workflow/rules): not in a source checkout, "
                     f"not installed under {Path(sys.prefix) / 'share' / 'qgtflow'}; set QGTFLOW_WORKFLOW_DIR")


def default_configfiles(root: Path) -> list[str]:
    """The config of a run given no ``--configfile``: ``./config/config.yaml`` of the current directory
    (a project written by ``qgtflow init``), else the workflow's own default config."""
    here = Path.cwd() / "config" / "config.yaml"
    return [str(here if here.is_file() else root / "config" / "config.yaml")]


def slurm_profile(root: Path) -> Path:
    """The SLURM profile of a run: ``./profiles/slurm`` (a project written by ``qgtflow init``, site
    settings filled in), else the workflow's own ``profiles/slurm``."""
    here = Path.cwd() / "profiles" / "slurm"
    return here if (here / "config.yaml").is_file() else root / "profiles" / "slurm"


def _existing_file(path: str, what: str) -> str:
    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"{what} {path} is a directory; expected a YAML file")
    if not p.is_file():
        from qgtflow.safety import file_kind

        kind = file_kind(p.stat().st_mode) if p.exists() else None
        raise UsageError(f"{what} {path} is {kind}; expected a YAML file" if kind else f"{what} {path} does not exist")
    return str(p.resolve())


def _config_file(path: str) -> str:
    """An existing workflow config file holding a YAML mapping (Snakemake's own refusal of a broken
    file does not say where it is broken)."""
    import yaml

    from qgtflow.study import yaml_problem

    from qgtflow import yamlio

    resolved = _existing_file(path, "config file")
    try:
        data = yamlio.load(Path(resolved).read_text())  # duplicate keys refused
    except yaml.YAMLError as exc:
        raise UsageError(f"config file {path}: not valid YAML ({yaml_problem(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise UsageError(f"config file {path}: got {got}; expected a mapping of config keys (results_dir, dask, "
                         "studies, report)")
    return resolved


def _snakemake_command(root: Path, configfile, extra: list[str], targets: tuple = ()) -> list[str]:
    """``configfile``: None, one path or several (merged by Snakemake in order, later ones win)."""
    # targets first: options such as --config/--configfile take several values
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(root / "Snakefile"), "--directory",
           str(Path.cwd())]
    files = [configfile] if isinstance(configfile, (str, Path)) else list(configfile or default_configfiles(root))
    if files:
        cmd += ["--configfile", *(_config_file(str(f)) for f in files)]
    return cmd + extra


def _die_with_parent():
    """A preexec function: the child gets SIGTERM when this process dies, even by SIGKILL (Linux)."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _forwarding_signals(proc: subprocess.Popen, received: list):
    """While the block runs, SIGINT/SIGTERM/SIGHUP to this process go to ``proc`` (Snakemake cancels its
    jobs, SLURM ones included, and exits); this process waits for it instead of leaving it orphaned."""
    from qgtflow.safety import handling_signals

    def forward(signum, frame):
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT if signum == signal.SIGHUP else signum)

    return handling_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), forward)


def _run_snakemake(cmd: list[str], what: str, workdir: Path | None = None, lock=None) -> int:
    log.info("%s: %s", what, " ".join(cmd))
    t0 = time.perf_counter()
    missing_input = locked = False
    received: list[int] = []
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1, preexec_fn=_die_with_parent()) as proc, \
            _forwarding_signals(proc, received):
        if lock is not None:
            lock.add_child(proc.pid)
        for line in proc.stderr:  # pass Snakemake's messages through, watching for missing inputs and locks
            sys.stderr.write(line)
            missing_input = missing_input or "MissingInputException" in line
            locked = locked or "LockException" in line
        proc.wait()
    rc = proc.returncode
    if received:
        name = signal.Signals(received[0]).name
        print(f"qgtflow: {what} stopped by {name}: Snakemake cancelled its jobs and exited (status {rc}); "
              "rerun to finish (finished chunks are kept)", file=sys.stderr)
        return 128 + received[0]
    if rc == 0:
        log.info("%s: finished in %.1f s", what, time.perf_counter() - t0)
        return 0
    if rc == 2:  # config errors (already printed by the workflow as one line) and snakemake usage errors
        return 2
    if locked:  # Snakemake refused: another run holds a lock on some of the same files
        print(f"qgtflow: error: {what}: refused, another workflow run is writing some of the same results "
              f"(Snakemake lock in {workdir or 'the working directory'}/.snakemake/locks); wait for it to finish. "
              "If no run is active (a killed run left the lock): `qgtflow run --unlock` with the same --configfile",
              file=sys.stderr)
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
    from qgtflow.study import load_study

    study = _existing_file(args.study, "study file")
    if args.size is not None and args.size < 2:
        raise UsageError(f"--size {args.size}: expected an integer >= 2")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers {args.workers}: expected an integer >= 0 (0 = no Dask)")
    try:  # validate first: every refusal before any compute names the file (keys as written in it)
        validated = load_study(study)
    except QgtflowError as exc:
        message = str(exc)
        raise UsageError(message if study in message else f"study file {args.study}: {message}") from None
    import tempfile

    from qgtflow import preflight
    from qgtflow.cluster import in_process, worker_count

    size = args.size or validated.sizes[-1]
    workers = 1 if in_process(validated.make_grid(size).n_points, args.workers) else worker_count(args.workers)
    preflight.check(validated, [size], workers=workers,
                    disk_dir=Path(tempfile.gettempdir()), what="evaluate")  # scratch kgrid + geometry stores
    from qgtflow.api import SCRATCH_PREFIX
    from qgtflow.safety import exit_on_signals, sweep_scratch

    for gone in sweep_scratch(tempfile.gettempdir(), SCRATCH_PREFIX):
        log.info("evaluate: removed %s (scratch of a killed evaluate)", gone)
    log.info("evaluate %s -> %s", study, args.out)
    t0 = time.perf_counter()
    try:
        with exit_on_signals():  # SIGTERM/SIGHUP: scratch stores, lock and Dask workers are cleaned up
            ds = evaluate(validated, size=args.size, out=args.out, n_workers=args.workers)
    except SystemExit as exc:
        print(f"qgtflow: evaluate stopped by signal {int(exc.code) - 128}; its scratch stores were removed, "
              f"{args.out} was not written", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(exc.code))  # no interpreter teardown: zarr's I/O loop would log its cancelled writes
    log.info("evaluate: wrote %s (%s) in %.1f s", args.out, ", ".join(map(str, ds.data_vars)),
             time.perf_counter() - t0)
    return 0


def cmd_bands(args, extra) -> int:
    """Bands and k-maps of one study file (the workflow's bands stage, without Snakemake)."""
    from qgtflow.stages import bands_stage
    from qgtflow.study import load_study

    study = _existing_file(args.study, "study file")
    try:  # validate first: every refusal before any compute names the file
        validated = load_study(study)
    except QgtflowError as exc:
        message = str(exc)
        raise UsageError(message if study in message else f"study file {args.study}: {message}") from None
    t0 = time.perf_counter()
    from qgtflow.cluster import single_threaded_blas

    with single_threaded_blas():
        ds = bands_stage.run(validated, args.out)
    log.info("bands: wrote %s (%s) in %.1f s", args.out, ", ".join(map(str, ds.data_vars)), time.perf_counter() - t0)
    return 0


def _zero_components(items: list[str] | None) -> dict[str, list[str]]:
    """``--zero RESPONSE:COMP[,COMP...]`` (repeatable) -> {response: [component labels]}."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        name, sep, comps = item.partition(":")
        labels = [c.strip() for c in comps.split(",") if c.strip()]
        if not sep or not name.strip() or not labels:
            raise UsageError(f"--zero {item}: expected RESPONSE:COMPONENT[,COMPONENT...], e.g. sigma_drude:xy,yx")
        out.setdefault(name.strip(), []).extend(labels)
    return out


def cmd_converge(args, extra) -> int:
    from qgtflow.driver import converge
    from qgtflow.study import load_study

    study = _existing_file(args.study, "study file")
    checks = [("--rtol", args.rtol, args.rtol is None or args.rtol > 0, "a number > 0"),
              ("--atol", args.atol, args.atol is None or args.atol >= 0, "a number >= 0"),
              ("--max-points", args.max_points, args.max_points is None or args.max_points >= 1, "an integer >= 1"),
              ("--max-rounds", args.max_rounds, args.max_rounds >= 3, "an integer >= 3"),
              ("--growth", args.growth, args.growth > 1, "a number > 1"),
              ("--start", args.start, args.start is None or args.start >= 2, "an integer >= 2"),
              ("--workers", args.workers, args.workers is None or args.workers >= 0,
               "an integer >= 0 (0 = no Dask)")]
    for option, value, ok, expected in checks:
        if not ok:
            raise UsageError(f"{option} {value}: expected {expected}")
    zero = _zero_components(args.zero)
    try:  # validate first: every refusal before any compute names the file (keys as written in it)
        validated = load_study(study)
    except QgtflowError as exc:
        message = str(exc)
        raise UsageError(message if study in message else f"study file {args.study}: {message}") from None
    workdir = args.workdir or str(Path(args.out) / "responses")
    args.max_points = _converge_preflight(validated, args, workdir)
    log.info("converge %s -> %s (responses stores in %s)", study, args.out, workdir)
    result = converge(validated, rtol=args.rtol, atol=args.atol, start=args.start, growth=args.growth,
                      max_points=args.max_points, max_rounds=args.max_rounds, n_workers=args.workers,
                      workdir=workdir, out_dir=args.out, zero_components=zero, plots=not args.no_plots)
    print(result.summary())
    if args.strict and not result.converged:
        print(f"qgtflow: {result.n_entries - result.n_converged} of {result.n_entries} entries not converged "
              "(--strict)", file=sys.stderr)
        return 1
    return 0


def _converge_preflight(study, args, workdir: str) -> int | None:
    """Refuse a first grid that cannot fit; cap the densities (max_points) at the last one that fits the
    study's limits and the machine, so the driver stops there with its reason instead of running out."""
    from qgtflow import preflight
    from qgtflow.cluster import worker_count
    from qgtflow.driver import size_sequence

    workers = 1 if args.workers == 0 else worker_count(args.workers)
    if args.start is None and not isinstance(study.sizes[0], int):
        raise UsageError(f"kgrid.sizes[0] = {list(study.sizes[0])}: converge grows one points-per-axis number; "
                         "expected an isotropic first size or --start")
    start = int(args.start if args.start is not None else study.sizes[0])
    sizes = size_sequence(start, args.growth, int(args.max_rounds))
    scratch = Path(workdir) / "scratch"
    preflight.check(study, sizes[:1], workers=workers, disk_dir=scratch, what="converge")
    cap = args.max_points
    for size in sizes[1:]:
        n = study.make_grid(size).n_points
        if cap is not None and n > cap:
            break
        try:
            preflight.check(study, [size], workers=workers, disk_dir=scratch, what="converge")
        except preflight.PreflightError as exc:
            log.warning("converge: densities capped below %d per axis (%s)", size, exc)
            return n - 1
    return cap


def _load_yaml(path) -> dict:
    from qgtflow import yamlio

    return yamlio.load(Path(path).read_text()) or {}


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _option_value(extra: list[str], name: str) -> str | None:
    """The value of ``--name V`` / ``--name=V`` among the arguments passed through to Snakemake."""
    for i, arg in enumerate(extra):
        if arg == name and i + 1 < len(extra):
            return extra[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def memory_estimates(configfiles: list, threads: dict[str, int]) -> list[tuple]:
    """(study, size, rule, threads, mem_mb) of every geometry and reduce job of a workflow config,
    as the rules request them (qgtflow.cluster.job_memory_mb; first attempt), plus (study, size,
    'dask-slurm worker job', cores, mem_mb) when the geometry stage runs its workers on SLURM."""
    from qgtflow.cluster import job_memory_mb, rule_job_threads, slurm_settings, slurm_worker_memory_mb
    from qgtflow.study import load_study

    config: dict = {}
    for path in configfiles:
        config = _merged(config, _load_yaml(path))
    dask = {"n_workers": None, "backend": "local", **(config.get("dask") or {})}
    rows = []
    for name, cfg in (config.get("studies") or {}).items():
        study = load_study(cfg, name=name)
        for size in study.sizes:
            n_points = study.make_grid(size).n_points
            for rule in ("geometry", "reduce"):  # as common.smk's rule_threads: 1 for an in-process job
                n = min(threads[rule], rule_job_threads(rule, n_points, dask.get("n_workers")))
                rows.append((name, size, rule, n, job_memory_mb(study, size, rule, n, dask)))
            if dask["backend"] == "slurm":
                settings = slurm_settings(dask)
                mem = settings["memory"] or slurm_worker_memory_mb(study, size, settings["cores"])
                rows.append((name, size, "dask-slurm worker job", settings["cores"], mem))
    return rows


def _job_threads(root: Path, args, backend: str, extra: list[str]) -> dict[str, int]:
    """Threads of the geometry and reduce jobs as Snakemake will give them: the rules' own
    (qgtflow.cluster.RULE_THREADS), then set-threads / max-threads from the profiles (profiles/slurm/ with
    --slurm, then a --workflow-profile) and the command line, then --cores when local."""
    from qgtflow.cluster import RULE_THREADS, fit_to_partition, partition_limits

    threads = {rule: RULE_THREADS[rule] for rule in ("geometry", "reduce")}
    if args.slurm:  # as the rules size their SLURM jobs: capped at the default partition's nodes
        limits = partition_limits()
        threads = {rule: fit_to_partition(rule, "cpus", n, limits) for rule, n in threads.items()}
    if backend == "slurm":
        threads["geometry"] = 1
    settings: dict = {}
    profiles = [slurm_profile(root)] if args.slurm else []
    if _option_value(extra, "--workflow-profile"):
        profiles.append(Path(_option_value(extra, "--workflow-profile")))
    for profile in profiles:
        if (profile / "config.yaml").is_file():
            settings.update(_load_yaml(profile / "config.yaml"))
    if _option_value(extra, "--max-threads"):
        settings["max-threads"] = _option_value(extra, "--max-threads")
    set_threads = settings.get("set-threads") or {}
    if isinstance(set_threads, list):  # ["geometry=4", ...]
        set_threads = dict(item.split("=", 1) for item in set_threads if "=" in item)
    if "--set-threads" in extra:  # --set-threads geometry=4 reduce=2 (values up to the next option)
        for item in extra[extra.index("--set-threads") + 1:]:
            if item.startswith("-"):
                break
            if "=" in item:
                set_threads[item.split("=", 1)[0]] = item.split("=", 1)[1]
    for rule in threads:
        if rule in set_threads:
            threads[rule] = int(set_threads[rule])
    caps = [settings.get("max-threads")]
    if not args.slurm:
        caps.append(os.cpu_count() or 1 if (args.cores or "all") == "all" else args.cores)
    for cap in caps:
        if cap is not None and str(cap).isdigit():
            threads = {rule: max(1, min(n, int(cap))) for rule, n in threads.items()}
    return threads


def _print_memory_estimates(root: Path, args, configfiles: list, extra: list[str]) -> None:
    """Log the memory every geometry/reduce job will request, before Snakemake submits anything.
    Never fails the run: a bad config is reported by the workflow itself."""
    try:
        files = configfiles or default_configfiles(root)
        backend = "local"
        for f in files:
            backend = (_load_yaml(f).get("dask") or {}).get("backend", backend)
        rows = memory_estimates(files, _job_threads(root, args, backend, extra))
    except Exception as exc:  # noqa: BLE001 - an estimate must never stop the run
        log.debug("memory estimate skipped: %s", exc)
        return
    if rows:
        log.info("memory estimate per job (mem_mb requested%s; a retry scales it by the attempt):",
                 " from SLURM" if args.slurm else "")
        lines: dict = {}
        for name, size, rule, n, mem in rows:
            unit = "CPU" if rule.startswith("dask") else "thread"
            lines.setdefault((name, rule, n, unit), []).append(f"n{size} {mem} MB")
        for (name, rule, n, unit), items in lines.items():
            log.info("  %s %s (%d %s%s): %s", name, rule, n, unit, "s" if n > 1 else "", ", ".join(items))


def _preflight_run(root: Path, args, configfiles: list, extra: list[str], results: Path) -> None:
    """Every study at every size against its limits and the machine (memory: local runs only; the stores of
    all studies against the free disk of the results directory). A config the workflow would refuse is
    left to it (its message names the key)."""
    from qgtflow import preflight
    from qgtflow.study import load_study

    try:
        files = configfiles or default_configfiles(root)
        config: dict = {}
        for path in files:
            config = _merged(config, _load_yaml(path))
        backend = (config.get("dask") or {}).get("backend", "local")
        threads = _job_threads(root, args, backend, extra)
        studies = [load_study(cfg, name=name) for name, cfg in (config.get("studies") or {}).items()]
    except Exception as exc:  # noqa: BLE001 - the workflow reports config errors itself
        log.debug("preflight skipped: %s", exc)
        return
    local = not args.slurm and backend != "slurm"
    for study in studies:
        preflight.check(study, study.sizes, workers=max(threads.values()), disk_dir=results, what="run",
                        machine_memory=local)


# --max-jobs-per-timespan of a local run (a later one among the user's Snakemake arguments wins). Snakemake's
# default, 100/1s, re-runs its scheduler one timespan after each scheduling pass, and that pass arms the next: the
# timers add up, one chain per finished job (a Timer thread each), to hundreds of passes a second late in the default
# run, each stat-ing the inputs of every ready job (its main process: ~117 CPU s of the run's 942). Nothing of a local
# run is rate-limited, so a longer timespan only thins those passes 5x; the last timer holds Snakemake's exit back by
# at most that long.
LOCAL_JOB_RATE = "1000/5s"

# Snakemake options that only report or repair metadata: no results are written
_NO_WRITE = ("--unlock", "--summary", "-S", "--detailed-summary", "-D", "--list-rules", "--list", "-l", "--lint",
             "--dag", "--rulegraph", "--filegraph", "--list-changes", "--lc", "--list-input-changes", "--li",
             "--list-params-changes", "--lp", "--list-code-changes", "--cleanup-metadata", "--cm",
             "--dry-run", "--dryrun", "-n", "--help", "-h", "--version", "-v")


def _results_dir(root: Path, configfiles: list, extra: list[str]) -> Path:
    """The results directory the run will write: ``results_dir`` of the (merged) config files, or of
    ``--config results_dir=DIR`` among the Snakemake arguments; relative to the current directory."""
    value = None
    for path in configfiles or default_configfiles(root):
        with contextlib.suppress(Exception):  # unreadable configs are reported by the workflow itself
            value = _load_yaml(path).get("results_dir", value)
    for i, arg in enumerate(extra):
        if arg.startswith("--config="):
            items = [arg.split("=", 1)[1]]
        elif arg in ("--config", "-C"):  # KEY=VALUE ... up to the next option
            items = list(itertools.takewhile(lambda a: not a.startswith("-"), extra[i + 1:]))
        else:
            continue
        for item in items:
            if item.startswith("results_dir="):
                value = item.split("=", 1)[1]
    path = Path(str(value or "results")).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _not_a_directory(path: Path) -> tuple[Path, str | None]:
    """(the nearest existing path at or above ``path``, why it cannot hold the directory: 'X is a FIFO, not a
    directory', ...; None when it is a directory)."""
    from qgtflow.safety import file_kind

    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.is_dir():
        return probe, None
    try:
        kind = file_kind(os.stat(probe).st_mode) or "not a directory"
    except OSError:
        kind = "not a directory"
    return probe, f"{probe} is {kind}, not a directory"


def _unwritable(path: Path) -> str | None:
    """Why a run could not create or write the directory ``path`` (None: it can)."""
    probe, problem = _not_a_directory(path)
    if problem:
        return problem
    if not os.access(probe, os.W_OK | os.X_OK):
        readonly = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        return f"{probe} is on a read-only file system" if readonly else f"{probe} is not writable (permission denied)"
    return None


def cmd_run(args, extra) -> int:
    _need_workflow_stack("snakemake", *(["snakemake_executor_plugin_slurm"] if args.slurm else []),
                         *(["dask_jobqueue"] if args.dask_slurm else []))
    root = workflow_root()
    opts = []
    if args.slurm:
        opts += ["--executor", "slurm", "--profile", str(slurm_profile(root))]
        if args.cores:
            opts += ["--cores", args.cores]
    else:
        opts += ["--cores", args.cores or "all", "--max-jobs-per-timespan", LOCAL_JOB_RATE]
    if args.dry_run:
        opts.append("--dry-run")
    configfiles = [args.configfile] if args.configfile else []
    if args.dask_slurm:
        # a second config file is merged into the first: name the default one explicitly
        dask_file = slurm_profile(root) / "dask.yaml" if args.dask_slurm is True else args.dask_slurm
        configfiles = (configfiles or default_configfiles(root)) + [str(dask_file)]
    cmd = _snakemake_command(root, configfiles, opts + extra)  # checks that the config files exist
    lock = contextlib.nullcontext()
    if args.dry_run or any(a.split("=", 1)[0] in _NO_WRITE for a in extra):
        # writes nothing: a read-only results directory is fine, a file or FIFO there is not (Snakemake's traceback)
        results = _results_dir(root, configfiles, extra)
        problem = _not_a_directory(results)[1]
        if problem:
            raise UsageError(f"results directory {results} cannot be used: {problem}; nothing was run (set "
                             "results_dir in the config or pass --config results_dir=DIR)")
    else:
        results = _results_dir(root, configfiles, extra)
        problem = _unwritable(results)
        if problem:
            raise UsageError(f"results directory {results} cannot be written: {problem}; nothing was run (set "
                             "results_dir in the config or pass --config results_dir=DIR)")
        from qgtflow.safety import ResultsLock

        lock = ResultsLock(results, f"qgtflow run ({root})")  # one writer per results dir, across checkouts/hosts
    _print_memory_estimates(root, args, configfiles, extra)
    if not isinstance(lock, contextlib.nullcontext):
        _preflight_run(root, args, configfiles, extra, lock.directory)
    with lock:
        if not isinstance(lock, contextlib.nullcontext) and not args.no_verify:
            verify_results(results)  # damaged stores are recomputed, not reported as "Nothing to be done"
        held = None if isinstance(lock, contextlib.nullcontext) else lock
        return _run_snakemake(cmd, "run", Path.cwd(), lock=held)


def cmd_verify(args, extra) -> int:
    """Verify every qgtflow store at or under the given paths; exit 2 naming the first damaged one."""
    from qgtflow import io
    from qgtflow.errors import StoreError

    stores = []
    for given in args.paths:
        path = Path(given)
        if not path.exists():
            raise UsageError(f"verify {given}: does not exist")
        found = io.find_stores(path)
        if not found:
            raise UsageError(f"verify {given}: no qgtflow store there")
        stores += found
    damaged = []
    for store in stores:
        try:
            info = io.verify_store(store)
        except StoreError as exc:
            damaged.append(str(exc))
            print(f"DAMAGED {exc}")
            continue
        note = "" if info["checksummed"] else " (written before per-chunk checksums: completeness only)"
        print(f"ok {store}: {info['arrays']} arrays, {info['chunks']} chunks{note}")
    if damaged:
        more = f" (and {len(damaged) - 1} more damaged store(s), listed above)" if len(damaged) > 1 else ""
        raise StoreError(damaged[0] + more)
    return 0


def verify_results(results: Path, remove: bool = True) -> list[Path]:
    """Before a run: verify the qgtflow stores under ``results``; remove damaged ones (ours only) and the
    ``<name>.done.json`` manifest beside them, so the workflow recomputes them. Returns what was removed."""
    from qgtflow import io, safety
    from qgtflow.errors import StoreError

    if not results.is_dir():
        return []
    removed = []
    t0 = time.perf_counter()
    stores = io.find_stores(results)
    for store in stores:
        try:
            io.verify_store(store)
        except StoreError as exc:
            if not remove:
                raise
            log.warning("run: %s -- removing it so that the workflow recomputes it", exc)
            if safety.removable(store):
                shutil.rmtree(store)
            manifest = store.with_name(store.name.replace(".zarr", ".done.json"))
            if manifest != store and manifest.is_file():
                manifest.unlink()
            removed.append(store)
    if stores:
        log.info("run: verified %d existing store(s) under %s in %.1f s (%d damaged, removed)", len(stores), results,
                 time.perf_counter() - t0, len(removed))
    return removed


def cmd_report(args, extra) -> int:
    _need_workflow_stack("snakemake")
    root = workflow_root()
    # only the report rule may run: the results must exist already (`qgtflow run` makes them)
    opts = ["--cores", "1", "--forcerun", "report", "--allowed-rules", "report"]
    return _run_snakemake(_snakemake_command(root, args.configfile, opts + extra, targets=("report",)), "report",
                          Path.cwd())


def cmd_models(args, extra) -> int:
    """The built-in models: name, parameters with their defaults, first line of the docstring."""
    import inspect

    from qgtflow.models.builtin import BUILTIN_MODELS

    for name, builder in BUILTIN_MODELS.items():
        params = ", ".join(f"{p.name}={p.default:.6g}" if isinstance(p.default, float) else f"{p.name}={p.default}"
                           for p in inspect.signature(builder).parameters.values())
        doc = (inspect.getdoc(builder) or "").split("\n")[0]
        print(f"{name}\n  params: {params}\n  {doc}")
    print("\nown Hamiltonians: model.hamiltonian / matrix / tight_binding / wannier90 in a study file "
          "(src/qgtflow/schemas/study.schema.yaml)")
    return 0


def cmd_responses(args, extra) -> int:
    """The responses a study may request (every registered calculator): name, kind, dims (besides mu, T),
    SI units in 2D and 3D where the catalogue fixes them, formula."""
    from qgtflow.reduce import kinds
    from qgtflow.reduce.responses import DIRECT_RESPONSES, RESPONSES
    from qgtflow.units import format_si_units

    for name, calc in kinds.CALCULATORS.items():
        resp, pair = RESPONSES.get(name), DIRECT_RESPONSES.get(name)
        if resp is not None:
            dims = ", ".join([*(d for d, _ in resp.extra_dims), *resp.cart_dims]) or "-"
            units = " | ".join(f"{d}D: {format_si_units(resp.si_units(d))}" for d in (2, 3))
            units = f" (physical): {units}; natural: e = hbar = k_B = 1"
            formula = resp.formula
            if resp.omega_scale is not None:  # an optional frequency form (000 App. B)
                formula += f"; with study key omega: {resp.omega_formula.split(';')[0]} (omega = 0: the static value)"
        elif pair is not None:
            dims, units, formula = ", ".join(pair.dims), ": in the store's attrs", pair.formula
        else:
            dims, units = "see the store", ": in the store's attrs"
            formula = ("made from the model on the study's grid" if calc.kind == "model" else
                       "assembled from the study's other responses") + " (paper + equation: the variable's formula attr)"
        if calc.needs:
            formula += f"; needs study keys {', '.join(calc.needs)}"
        print(f"{name} ({calc.kind})\n  dims: mu, T, {dims}\n  units{units}\n  formula: {formula}")
    return 0


INIT_FILES = ("config/config.yaml", "profiles/slurm/config.yaml", "profiles/slurm/dask.yaml",
              "profiles/slurm/README.md")


def cmd_init(args, extra) -> int:
    """Write a runnable project into DIR (new, or an empty directory): the default workflow config and
    the SLURM profile, copied from the workflow this qgtflow runs. Nothing else is touched."""
    root = workflow_root()
    target = Path(args.directory).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        what = "a directory that is not empty" if target.is_dir() else "an existing file"
        raise UsageError(f"init {args.directory}: is {what}; expected a new or empty directory "
                         "(qgtflow writes only into directories it creates)")
    missing = [name for name in INIT_FILES if not (root / name).is_file()]
    if missing:
        raise UsageError(f"init: the workflow in {root} lacks {', '.join(missing)}; reinstall qgtflow[workflow]")
    for name in INIT_FILES:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, dest)
    print(f"wrote a qgtflow project in {target}: {', '.join(INIT_FILES[:2])} ...\n"
          f"next: cd {target} && qgtflow run -n   (then `qgtflow run`, or `qgtflow run --slurm` with "
          "profiles/slurm/config.yaml filled in)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgtflow", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    from qgtflow import __version__

    parser.add_argument("-v", "--verbose", action="store_true", help="debug log lines")
    parser.add_argument("--version", action="version", version=f"qgtflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{evaluate,converge,bands,run,report,verify,init,models,responses}")

    p = sub.add_parser("evaluate", allow_abbrev=False, help="one study at one grid density, without Snakemake")
    p.add_argument("study", metavar="STUDY.yaml", help="study file (src/qgtflow/schemas/study.schema.yaml)")
    p.add_argument("--out", required=True, metavar="OUT.zarr", help="responses store to write")
    p.add_argument("--size", type=int, help="points per axis (default: the largest of kgrid.sizes)")
    p.add_argument("--workers", type=int, help="Dask workers (default: in this process up to 2^18 k-points, else one per "
                   "visible core; 0 = in process)")
    p.set_defaults(func=cmd_evaluate, passthrough=False)

    p = sub.add_parser("converge", allow_abbrev=False,
                       help="refine the k-grid of one study until every response entry converges")
    p.add_argument("study", metavar="STUDY.yaml", help="study file (src/qgtflow/schemas/study.schema.yaml)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory for convergence.zarr, convergence.csv, plots and summary.txt")
    p.add_argument("--rtol", type=float, help="relative tolerance (default: the study's convergence.rtol)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default: the study's convergence.atol)")
    p.add_argument("--max-points", type=int, metavar="N", help="never run a grid with more k-points")
    p.add_argument("--max-rounds", type=int, default=8, metavar="N", help="at most N grid densities (default 8)")
    p.add_argument("--start", type=int, metavar="N", help="points per axis of the first grid "
                   "(default: the smallest of kgrid.sizes)")
    p.add_argument("--growth", type=float, default=1.5, help="factor per axis between densities (default 1.5)")
    p.add_argument("--workers", type=int, help="Dask workers (default: in this process up to 2^18 k-points, else one per "
                   "visible core; 0 = in process)")
    p.add_argument("--workdir", metavar="DIR", help="responses stores of every density, reused by a later call "
                   "(default: DIR/responses under --out)")
    p.add_argument("--zero", action="append", metavar="RESPONSE:COMP[,COMP]",
                   help="components that vanish by symmetry: report their relative residuals (repeatable)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when an entry did not converge")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=cmd_converge, passthrough=False)

    p = sub.add_parser("bands", allow_abbrev=False, help="bands with Ω, g along a k-path and k-maps of one study")
    p.add_argument("study", metavar="STUDY.yaml", help="study file (its `bands` key: path, points, fields, kmap)")
    p.add_argument("--out", default="bands.zarr", metavar="OUT.zarr", help="bands store to write (default bands.zarr)")
    p.set_defaults(func=cmd_bands, passthrough=False)

    p = sub.add_parser("run", allow_abbrev=False, help="run the Snakemake workflow (other arguments go to snakemake)")
    p.add_argument("--configfile", metavar="F", help="workflow config (default: config/config.yaml)")
    p.add_argument("--cores", metavar="N|all", help="local cores (default: all; with --slurm: not set)")
    p.add_argument("--slurm", action="store_true", help="submit jobs to SLURM with the profile in profiles/slurm/")
    p.add_argument("--dask-slurm", nargs="?", const=True, metavar="F",
                   help="run the geometry stage's Dask workers as SLURM jobs (dask-jobqueue), with the settings "
                        "in F (default: profiles/slurm/dask.yaml) merged into the workflow config")
    p.add_argument("-n", "--dry-run", action="store_true", help="show the jobs without running them")
    p.add_argument("--no-verify", action="store_true", help="skip verifying (checksums, completeness) the stores "
                   "already in the results directory; damaged ones are otherwise removed and recomputed")
    p.set_defaults(func=cmd_run, passthrough=True)

    p = sub.add_parser("verify", allow_abbrev=False, help="check qgtflow stores: completeness, attrs and per-chunk "
                       "checksums (exit 2 naming store, variable and chunk of the first damage)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a store, or a directory searched for stores")
    p.set_defaults(func=cmd_verify, passthrough=False)

    p = sub.add_parser("report", allow_abbrev=False, help="(re)build results/report/index.html from existing results")
    p.add_argument("--configfile", metavar="F", help="workflow config (default: config/config.yaml)")
    p.set_defaults(func=cmd_report, passthrough=True)

    p = sub.add_parser("models", allow_abbrev=False, help="list the built-in models and their parameters")
    p.set_defaults(func=cmd_models, passthrough=False)

    p = sub.add_parser("responses", allow_abbrev=False, help="list the responses: name, dims, units, formula")
    p.set_defaults(func=cmd_responses, passthrough=False)

    p = sub.add_parser("init", allow_abbrev=False, help="write a runnable project (config/config.yaml, "
                       "profiles/slurm/) into a new directory; run the workflow from there")
    p.add_argument("directory", metavar="DIR", help="a new or empty directory")
    p.set_defaults(func=cmd_init, passthrough=False)
    return parser


_ENVIRONMENT_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                       errno.ENOSPC, errno.EDQUOT, errno.EEXIST, errno.ENAMETOOLONG}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if extra and not args.passthrough:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    if args.command in ("evaluate", "converge", "bands"):  # before numba is imported: kernels compiled once per user
        from qgtflow.runtime import use_shared_numba_cache

        use_shared_numba_cache(args.command)
    try:
        return args.func(args, extra)
    except QgtflowError as exc:
        print(f"qgtflow: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment refused a file operation (missing, read-only, disk full, ...)
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        print(f"qgtflow: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qgtflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `qgtflow responses | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValueError as exc:  # a chunk read outside qgtflow.io.read_rows (xarray, dask) failed its checksum
        if "checksum" not in str(exc):
            raise
        print(f"qgtflow: error: a store chunk fails its crc32c checksum (damaged): {exc}; run `qgtflow verify "
              "PATH` on the stores used to find it, and rerun its stage", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
