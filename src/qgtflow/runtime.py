"""Job set-up of the workflow's rule scripts: threads, numba cache, logging, Dask settings.

Infrastructure only (no physics): the rule scripts call :func:`setup_job` first, before numpy,
numba or BLAS are imported, so its thread settings take effect. Only the standard library (and
:mod:`qgtflow.cluster`'s CPU count, itself standard library only) is imported here.

The ``dask`` settings of the workflow config reach a job through the environment variable
:data:`DASK_ENV`, set by the Snakefile at parse time (a SLURM job parses it again): they decide
how a job runs, never what it computes, so they are not params (changing ``dask.n_workers``
reruns nothing) and the scripts do not read the workflow config.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from qgtflow.cachedir import cache_root  # standard library only, like this module

log = logging.getLogger("qgtflow.runtime")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PINNED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
DASK_ENV = "QGTFLOW_DASK"


def publish_dask_settings(dask_config: dict) -> None:
    """Snakefile (parse time): hand the config's ``dask`` section to the jobs it starts."""
    os.environ[DASK_ENV] = json.dumps(dask_config or {}, sort_keys=True)


def dask_settings() -> dict:
    """The workflow config's ``dask`` section as the Snakefile published it ({} outside a workflow)."""
    return json.loads(os.environ.get(DASK_ENV) or "{}")


def setup_job(smk) -> tuple[logging.Logger, int]:
    """Prepare a Snakemake ``script:`` job; returns (logger, number of Dask workers).

    - sizes the job from the smaller of the threads Snakemake gave it (SLURM: ``--cpus-per-task``)
      and the CPUs its affinity allows: ``dask: n_workers`` (default: that many) single-threaded
      workers, ``NUMBA_NUM_THREADS`` so that workers x numba threads <= it; OMP/MKL/OPENBLAS
      pinned to 1; all of it logged (threads, affinity, SLURM job);
    - gives the job its own ``NUMBA_CACHE_DIR`` under :func:`numba_cache_root` ``/jobs`` (numba's
      cache is not safe for concurrent writers, numba#4807), seeded from the user's shared cache
      and published back to it at exit, under a file lock, so kernels compile once per user and
      qgtflow source (not once per work directory), also for ``qgtflow evaluate``;
    - logs to the rule's ``log:`` file (and stderr: the SLURM job log), uncaught exceptions included.
    """
    from qgtflow.cluster import job_cpus

    requested = dask_settings().get("n_workers")
    cpus = job_cpus(smk.threads, requested)
    n_workers = cpus["n_workers"]
    for var in _PINNED:
        os.environ[var] = "1"
    os.environ["NUMBA_NUM_THREADS"] = str(cpus["numba_threads"])
    job_key = "-".join([smk.rule, *(str(v) for v in smk.wildcards)])
    cache = _job_numba_cache(numba_cache_root(), job_key)
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
    slurm = "not in a SLURM job"
    if cpus["slurm_job"]:
        slurm_mem = os.environ.get("SLURM_MEM_PER_NODE")  # the jobstep plugin may have unset it
        slurm = (f"SLURM job {cpus['slurm_job']} (cpus-per-task {cpus['slurm_cpus'] or '-'}"
                 f"{f', mem {slurm_mem} MB' if slurm_mem else ''})")
    logger.info("rule %s %s: %d thread(s) given, CPU affinity %s (%d CPUs), %s -> using %d: %d Dask worker(s)%s x "
                "NUMBA_NUM_THREADS=%s; NUMBA_CACHE_DIR=%s", smk.rule, dict(smk.wildcards.items()), cpus["threads"],
                cpus["affinity"], cpus["n_affinity"], slurm, cpus["usable"], n_workers,
                f" (dask.n_workers={requested})" if requested else "", os.environ["NUMBA_NUM_THREADS"], cache)
    if cpus["threads"] > cpus["n_affinity"]:
        logger.warning("rule %s was given %d threads but may run on %d CPUs only: sized for %d", smk.rule,
                       cpus["threads"], cpus["n_affinity"], cpus["usable"])
    mem_mb = getattr(smk.resources, "mem_mb", None) if hasattr(smk, "resources") else None
    if mem_mb:
        logger.info("rule %s: memory requested %s MB (estimate x attempt)", smk.rule, mem_mb)
    threaded_dask_default()
    return logger, n_workers


def threaded_dask_default() -> None:
    """Dask collections computed outside a Dask cluster (``.values`` of a store opened lazily) use Dask's threaded
    scheduler: the one Dask picks when no distributed Client exists, named here so that Dask does not import
    distributed to look for one (~0.15 s of CPU in every in-process geometry and reduce job and the convergence
    job). :func:`qgtflow.cluster.local_cluster` and :func:`~qgtflow.cluster.slurm_cluster` lift it while their
    client is up. Imports dask only (not numpy)."""
    import dask
    import dask.threaded

    dask.config.set(scheduler=dask.threaded.get)


def numba_cache_root() -> Path:
    """The shared numba cache of every qgtflow process of this user running these kernel sources: ``shared/`` plus
    job copies, under ``numba/src-<digest>`` (:func:`kernel_source_digest`)."""
    return cache_root() / "numba" / f"src-{kernel_source_digest()}"


@functools.lru_cache(maxsize=1)
def kernel_source_digest() -> str:
    """12 hex digits of the sha1 of every qgtflow module that imports numba (path and text). numba checks only the
    stamp of a kernel's own file, so a kernel that inlines another file's ``@njit`` function (geometry_chunk calls
    eigh.py's) was loaded stale after an upgrade that changed only that file; a cache per digest cannot be. ~5 ms."""
    return source_digest(Path(__file__).resolve().parent)


def source_digest(package: Path) -> str:
    """:func:`kernel_source_digest` of the package directory ``package``."""
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        text = path.read_bytes()
        if b"from numba" in text or b"import numba" in text:  # a module with kernels (not one naming numba)
            digest.update(str(path.relative_to(package)).encode() + b"\0" + text + b"\0")
    return digest.hexdigest()[:12]


def use_shared_numba_cache(key: str) -> Path | None:
    """Command-line processes (``qgtflow evaluate``/``converge``): a private copy of the shared numba
    cache as ``NUMBA_CACHE_DIR`` (published back at exit), so kernels compiled by one command or
    workflow job are loaded by every later one. Call before numba is imported. An explicit
    ``NUMBA_CACHE_DIR`` is the user's choice and is kept (returns None)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    try:
        cache = _job_numba_cache(numba_cache_root(), key)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation: numba's default then
        log.warning("numba cache: not sharing compiled kernels (%s)", exc)
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(cache)
    return cache


def announce_compile(logger: logging.Logger, optional=(), model=None) -> float:
    """Before the first kernel call: one line when numba will compile the geometry kernels in this
    process (a cold cache), with the expected time (the last measured compile) and where they are cached for later runs.
    ``model``: the study's model, whose kernels are named (``kernel_cache.geometry_kernels``; None: the generic one).
    Returns the estimated seconds (0: all cached)."""
    from qgtflow.geometry.kernel_cache import cache_location, cold_kernels, record_compiles

    cold = cold_kernels(optional, model)
    seconds = sum(cold.values())
    if cold:
        where = os.environ.get("NUMBA_CACHE_DIR", "")
        shared = numba_cache_root()
        where = str(shared / "shared") if where.startswith(str(shared)) else cache_location()
        logger.warning("compiling kernels, once: ~%.0f s (%s; later runs and jobs load them from %s)", seconds,
                       ", ".join(cold), where)
        record_compiles(cold)  # the next cold start quotes this one's measured time
    return seconds


def stage_workers(logger: logging.Logger, n_points: int, n_workers: int) -> int:
    """Dask workers of a geometry/reduce job over ``n_points`` k-points: 0 (in the job's process, no
    LocalCluster to start and stop) up to :data:`qgtflow.cluster.IN_PROCESS_MAX_POINTS`, else
    ``n_workers`` (from :func:`setup_job`)."""
    from qgtflow.cluster import IN_PROCESS_MAX_POINTS, in_process

    if in_process(n_points, None):
        logger.info("%d k-points: computed in this process (no Dask cluster up to %d k-points)", n_points,
                    IN_PROCESS_MAX_POINTS)
        return 0
    return n_workers


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


def _numba_subdir(source_dir: str) -> str:
    """The directory numba files the cache of ``source_dir``'s functions under (numba.core.caching's
    ``_CacheLocator.get_suitable_cache_subpath``: the directory's name and the SHA-1 of its absolute path)."""
    path = os.path.abspath(source_dir)
    return f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"


def kernel_cache_subdirs() -> list[str]:
    """The subdirectories of a numba cache that hold THIS installation's kernels: one per directory of the
    qgtflow package this module was imported from (numba keys the cache by the source directory's path),
    and the generated model modules' directory (``models/`` of :func:`cache_root`, as
    :func:`qgtflow.models.symbolic.cache_dir` names it). The kernels of other checkouts, other copies of
    the package and older installations in the shared cache are not among them."""
    package = os.path.dirname(os.path.abspath(__file__))
    dirs = [package] + sorted(os.path.join(top, d) for top, names, _ in os.walk(package)
                              for d in names if d != "__pycache__")
    dirs.append(str(cache_root() / "models"))
    return [_numba_subdir(d) for d in dirs if "__pycache__" not in d.split(os.sep)]


def _job_numba_cache(root: Path, job_key: str, subdirs: list[str] | None = None) -> Path:
    """A private numba cache for this job: hard links (:func:`_link_or_copy`) to the files of ``root/shared``
    that this installation can load, the ``subdirs`` (default :func:`kernel_cache_subdirs`) and the top-level
    files, published back at exit. A shared cache grown big with other checkouts' kernels costs a job nothing.

    Only this process (and its Dask workers) write the private copy. Publishing copies, per
    compiled function, the data files and then the index (atomic renames), and only when this job
    compiled something newer than the shared copy, so a reader never sees an index without its
    data. If file locks are unavailable (some parallel filesystems), the job cache starts cold.
    """
    from qgtflow.safety import private_dir

    shared, lock = root / "shared", root / "shared.lock"
    job = root / "jobs" / f"{job_key}-{os.getpid()}"
    for directory in (root, shared, root / "jobs"):  # numba loads pickled code from these: ours only, 0700
        private_dir(directory, "numba cache")
    if job.exists():
        shutil.rmtree(job)
    subdirs = kernel_cache_subdirs() if subdirs is None else subdirs
    try:
        with _locked(lock):
            job.mkdir(parents=True)
            if shared.is_dir():
                for top in shared.iterdir():
                    if top.is_file():
                        _link_or_copy(str(top), str(job / top.name))
                for name in subdirs:
                    if (shared / name).is_dir():
                        shutil.copytree(shared / name, job / name, copy_function=_link_or_copy)
    except OSError as exc:
        log.warning("numba cache: not sharing compiled kernels between jobs (%s)", exc)
        job.mkdir(parents=True, exist_ok=True)
        return job
    job.mkdir(parents=True, exist_ok=True)
    atexit.register(_publish_numba_cache, job, shared, lock)
    _PENDING_PUBLISH.append((job, shared, lock))
    return job


_PENDING_PUBLISH: list[tuple[Path, Path, Path]] = []  # job caches of this process not yet published


def job_cpu_seconds() -> tuple[float, float]:
    """(this process, its waited-for children: Dask workers) user + system CPU seconds so far."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _process_wall_seconds() -> float | None:
    """Seconds since this process started (interpreter start-up included), None where unknown."""
    import time

    try:
        import psutil  # a Snakemake dependency

        return time.time() - psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - an accounting figure only
        return None


def end_job(logger: logging.Logger) -> None:
    """The last line of a rule script, after its stores are written and closed (the stages return only then;
    their Dask clusters are closed by then too): publishes the job's numba cache, logs one line
    ``job CPU X.XX s (...)`` (getrusage, this process + its children; read by
    benchmarks/bench_first_result.py ``--cpu-of``/``--occupancy-of``), flushes and closes the logs and the
    standard streams, and leaves with ``os._exit(0)``: the interpreter's teardown (Dask, numba, zarr
    modules; atexit handlers, whose only job here is the cache publishing, done above) costs a job
    ~0.3-1 s of a core and writes nothing."""
    while _PENDING_PUBLISH:
        job, shared, lock = _PENDING_PUBLISH.pop()
        atexit.unregister(_publish_numba_cache)
        _publish_numba_cache(job, shared, lock)
    own, children = job_cpu_seconds()
    wall = _process_wall_seconds()
    logger.info("job CPU %.2f s (self %.2f s, children %.2f s; process wall %s s)", own + children, own, children,
                "-" if wall is None else f"{wall:.2f}")
    logging.shutdown()  # flushes and closes the handlers: the rule's log file
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _link_or_copy(src: str, dst: str) -> None:
    """A job's view of one shared cache file: a hard link (no bytes copied: the shared cache holds
    hundreds of MB of kernels of every source version, which a copy per job read and wrote again),
    else a copy. Safe because nobody writes a cache file in place: numba saves to a temporary file
    and renames it over the old one (a new inode), and so does :func:`_publish_numba_cache`."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _publish_numba_cache(job: Path, shared: Path, lock: Path) -> None:
    def copy(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)

    try:
        with _locked(lock):
            for top in job.iterdir():  # the top-level files (the measured compile times): newer than the shared one's
                target = shared / top.name
                if top.is_file() and not top.name.startswith(".") and (
                        not target.exists() or target.stat().st_mtime < top.stat().st_mtime):
                    copy(top, target)
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
        log.warning("numba cache: could not publish %s (%s)", job, exc)
