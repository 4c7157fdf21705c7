"""Where the Dask workers of a stage run, and how big the jobs are.

- :func:`local_cluster`: a ``distributed`` LocalCluster inside the current job, sized from the
  job's allocation (threads and CPU affinity, see :func:`job_cpus`).
- :func:`slurm_cluster`: Dask workers in their own SLURM jobs (``dask_jobqueue.SLURMCluster``);
  the workflow selects it for the geometry stage with the config key ``dask.backend: slurm``
  (settings under ``dask.slurm``, see ``profiles/slurm/dask.yaml``).
- :func:`estimate_memory_mb` / :func:`job_memory_mb`: peak memory of a geometry or reduce job from
  the per-k-point field arrays of one chunk; the rules request it from SLURM (``mem_mb``) and
  ``qgtflow run`` prints it before submitting.

Only the standard library is imported at module level: :func:`qgtflow.runtime.setup_job` uses this
module before numpy/numba are imported.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import sys

from qgtflow.errors import PreflightError

log = logging.getLogger(__name__)

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")

# Threads each rule declares (-> sbatch --cpus-per-task); geometry and reduce run one
# single-threaded Dask worker per thread, the report one forked process per thread (it runs alone, last).
# Used by the rules and by `qgtflow run`'s memory estimate.
RULE_THREADS = {"kgrid": 1, "geometry": 8, "reduce": 4, "convergence": 1, "report": 2, "shells": 1, "bands": 1}

# Defaults of the Dask-on-SLURM settings (config key dask.slurm; documented in
# workflow/schemas/config.schema.yaml, example in profiles/slurm/dask.yaml).
SLURM_DEFAULTS = {
    "jobs": 2,                      # SLURM jobs of Dask workers
    "cores": 1,                     # CPUs per worker job (one single-threaded worker process each)
    "memory": None,                 # per worker job, e.g. "4GB"; None: estimate_memory_mb of the chunk
    "walltime": "01:00:00",
    "partition": None,              # None: the cluster's default partition
    "account": None,                # None: no -A (the user's default account)
    "job_extra_directives": [],     # further "#SBATCH" options, e.g. ["--qos=normal"]
    "interface": None,              # network interface of scheduler and workers (e.g. "ib0", "lo")
    "log_directory": None,          # SLURM logs of the worker jobs (workflow: {results_dir}/logs/dask-slurm)
    "local_directory": None,        # workers' scratch (spill) directory; None: Dask's default
    "job_name": "qgtflow-dask",
    "worker_start_timeout": 3600,   # seconds to wait for the first worker before giving up
}


# ---------------------------------------------------------------- CPUs


def cpu_affinity() -> list[int]:
    """CPUs this process may run on (sched_getaffinity; all CPUs where unavailable)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def available_cores() -> int:
    """Cores this process may use: the smaller of CPU affinity and os.cpu_count()."""
    return max(1, min(len(cpu_affinity()), os.cpu_count() or 1))


def _cpu_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)


def job_cpus(threads: int, requested_workers: int | None = None) -> dict:
    """CPU budget of a job: the smaller of the threads it was given and the CPUs it may run on.

    Returns {threads, affinity (CPU list string), n_affinity, usable, n_workers, numba_threads,
    slurm_job, slurm_cpus}: ``n_workers`` single-threaded Dask workers (the request, capped at
    ``usable``), ``numba_threads`` per worker so that workers x numba threads <= usable.
    """
    cpus = cpu_affinity()
    threads = max(1, int(threads))
    usable = max(1, min(threads, len(cpus)))
    n_workers = usable if not requested_workers else max(1, min(int(requested_workers), usable))
    return {"threads": threads, "affinity": _cpu_list(cpus), "n_affinity": len(cpus), "usable": usable,
            "n_workers": n_workers, "numba_threads": max(1, usable // n_workers),
            "slurm_job": os.environ.get("SLURM_JOB_ID"), "slurm_cpus": os.environ.get("SLURM_CPUS_PER_TASK")}


# Below this many k-points a study runs in the calling process: starting a LocalCluster (~3 s of
# worker start-up and teardown) costs more than the whole computation (~3-7e5 k-points/s per core).
IN_PROCESS_MAX_POINTS = 2**18


def in_process(n_points: int, requested: int | None) -> bool:
    """Whether a study of ``n_points`` k-points runs without a Dask cluster: ``requested`` = 0, or
    no worker count requested and the grid below :data:`IN_PROCESS_MAX_POINTS`."""
    return requested == 0 or (requested is None and int(n_points) <= IN_PROCESS_MAX_POINTS)


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS/LAPACK on one thread while qgtflow computes in this process (``evaluate``, ``qgtflow bands``), as the
    workflow's jobs and Dask workers already run (``OMP/MKL/OPENBLAS_NUM_THREADS=1``): qgtflow parallelises over
    k-points, and a threaded BLAS on its small batched matrices only contends for the cores
    (``benchmarks/bench_blas_threads.py``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def rule_job_threads(rule: str, n_points: int, requested: int | None) -> int:
    """Threads one job of ``rule`` asks for: :data:`RULE_THREADS`, except 1 for a geometry or reduce job
    whose ``n_points`` k-points it computes in its own process (:func:`in_process`): that job uses one
    core, and holding more would keep the scheduler from running another job beside it."""
    if rule in ("geometry", "reduce") and in_process(n_points, requested):
        return 1
    return RULE_THREADS[rule]


def worker_count(requested: int | None) -> int:
    cores = available_cores()
    n = cores if not requested else min(int(requested), cores)
    log.info("cores visible (affinity): %d; requested workers: %s; using %d", cores, requested, n)
    return max(1, n)


# ---------------------------------------------------------------- what a SLURM partition offers


def parse_sinfo(text: str, partition: str | None = None) -> dict | None:
    """{partition, cpus, mem_mb} of the largest node of ``partition`` (default: the one sinfo marks
    ``*``) from ``sinfo -h -N -o "%P %c %m"`` lines (one per node and partition); None if absent."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name, default = parts[0].rstrip("*"), parts[0].endswith("*")
        try:
            rows.append((name, default, int(parts[1].rstrip("+")), int(parts[2].rstrip("+"))))
        except ValueError:
            continue
    chosen = [r for r in rows if (r[0] == partition if partition else r[1])]
    if not chosen:
        return None
    return {"partition": chosen[0][0], "cpus": max(r[2] for r in chosen), "mem_mb": max(r[3] for r in chosen)}


_PARTITIONS: dict = {}


def partition_limits(partition: str | None = None, timeout: float = 20.0) -> dict | None:
    """CPUs and memory (MB) of the largest node of a SLURM partition (default: the cluster's default
    partition), from ``sinfo``; None where sinfo is missing or does not answer (no capping then)."""
    import subprocess

    if partition not in _PARTITIONS:
        try:
            proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%P %c %m"], capture_output=True, text=True,
                                  timeout=timeout)
            _PARTITIONS[partition] = parse_sinfo(proc.stdout, partition) if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            _PARTITIONS[partition] = None
    return _PARTITIONS[partition]


_CAPPED: set = set()


def rule_partition(resource_settings, rule: str) -> str | None:
    """The SLURM partition a rule's jobs ask for: its ``set-resources`` ``slurm_partition``, else the
    ``default-resources`` one (Snakemake's resource settings); None: the cluster's default partition.
    Only a literal name counts (an expression is decided per job, where no cap can be computed)."""
    overwrite = getattr(resource_settings, "overwrite_resources", None) or {}
    for source in (overwrite.get(rule), getattr(resource_settings, "default_resources", None)):
        name = _literal_resource(source, "slurm_partition")
        if name:
            return name
    return None


def _literal_resource(resources, key: str) -> str | None:
    if resources is None:
        return None
    value = resources.get(key)
    value = getattr(value, "raw", value)  # snakemake Resource: its value as written in the profile
    if not isinstance(value, str):
        return None
    value = value.strip().strip("'\"")
    return value if value.replace("-", "").replace("_", "").replace(".", "").isalnum() else None


def fit_to_partition(rule: str, what: str, wanted: int, limits: dict | None) -> int:
    """``wanted`` threads (``what`` = "cpus") or MB (``what`` = "mem_mb") of a rule's SLURM job, capped
    at what the partition's largest node offers: a job asking for more pends forever. Warns once per
    rule and resource when it caps."""
    if not limits or wanted <= limits[what]:
        return wanted
    if (rule, what) not in _CAPPED:
        _CAPPED.add((rule, what))
        unit = "CPUs" if what == "cpus" else "MB of memory"
        hint = ("set-threads in the profile sets it yourself" if what == "cpus" else
                "a smaller kgrid.chunk_size or dask.n_workers lowers the need")
        log.warning("SLURM partition %s offers at most %d %s per node: %s jobs ask for %d, capped to %d (%s)",
                    limits["partition"], limits[what], unit, rule, wanted, limits[what], hint)
    return int(limits[what])


# ---------------------------------------------------------------- memory

MB = 2**20
PROCESS_BASE_MB = 300   # one Python process with numpy, numba (kernels loaded), xarray, zarr, distributed
MAIN_BASE_MB = 400      # the job's own process: the above plus the Dask scheduler and client
ARRAY_FACTOR = 1.5      # model-evaluation temporaries and zarr write buffers on top of the chunk's arrays


def unique_derivatives(dim: int) -> int:
    """Distinct derivative slots of H up to third order: 1 + d + d(d+1)/2 + d(d+1)(d+2)/6."""
    return 1 + dim + dim * (dim + 1) // 2 + dim * (dim + 1) * (dim + 2) // 6


def field_bytes_per_kpoint(n_bands: int, dim: int) -> int:
    """float64 bytes of the core geometry fields of one k-point, from their dims in the field
    catalogue (``qgtflow.geometry.fields.FIELD_SPECS``; the kernel allocates exactly these)."""
    from qgtflow.geometry.fields import CORE_FIELDS

    return fields_bytes_per_kpoint(n_bands, dim, CORE_FIELDS)


def fields_bytes_per_kpoint(n_bands: int, dim: int, names=()) -> int:
    """float64 bytes per k-point of the named geometry fields, from their dims in the catalogue."""
    from qgtflow.geometry.fields import FIELD_SPECS

    sizes = {"band": n_bands, "band_m": n_bands, "spin": 3}
    return sum(8 * math.prod(sizes.get(d, dim) for d in FIELD_SPECS[name].dims)
               for name in names)


def hamiltonian_bytes_per_kpoint(n_bands: int, dim: int) -> int:
    """complex128 bytes of H and its distinct derivatives at one k-point (the compact (U, n, n) array)."""
    return 16 * unique_derivatives(dim) * n_bands**2


def optional_field_bytes_per_kpoint(n_bands: int, dim: int, names=()) -> int:
    """float64 bytes per k-point of optional geometry fields (e.g. the quantum-metric quadrupole, n·d⁴)."""
    return fields_bytes_per_kpoint(n_bands, dim, names)


def estimate_memory_mb(n_bands: int, dim: int, chunk_size: int, n_workers: int, *, stage: str = "geometry",
                       client: bool = True, histogram_mb: float = 0.0, optional_fields=()) -> int:
    """Peak memory (MB, rounded up to 100) of a geometry or reduce job.

    Each of ``n_workers`` worker processes holds one chunk at a time: for ``geometry`` the fields
    (plus the ``optional_fields`` the study stores) and the Hamiltonian derivative array, for
    ``reduce`` (at most) the fields it reads plus its moment histograms (``histogram_mb``).
    ``client``: add the job's own process (scheduler,
    client; for ``reduce`` the summed histograms); False for a job that holds workers only (a
    Dask-on-SLURM worker job). Calibrated with the process-tree RSS of geometry jobs (4-band 2D
    model, chunks of 16k-131k points, 1-2 workers): measured 70-80 % of this estimate.
    """
    if stage not in ("geometry", "reduce"):
        raise ValueError(f"stage {stage!r}: expected 'geometry' or 'reduce'")
    per_k = field_bytes_per_kpoint(n_bands, dim) + optional_field_bytes_per_kpoint(n_bands, dim, optional_fields)
    if stage == "geometry":
        per_k += hamiltonian_bytes_per_kpoint(n_bands, dim)
    chunk_mb = ARRAY_FACTOR * int(chunk_size) * per_k / MB
    worker_mb = PROCESS_BASE_MB + chunk_mb + (2 * histogram_mb if stage == "reduce" else 0.0)
    total = max(0, int(n_workers)) * worker_mb
    if client:
        total += MAIN_BASE_MB + (2 * histogram_mb if stage == "reduce" else 0.0)
    return int(100 * math.ceil(total / 100))


def histogram_mb(study) -> float:
    """Size of one moment histogram of the reduce stage (energy bins x moments x response components)."""

    from qgtflow.reduce.kinds import CALCULATORS

    try:
        dim = study.model.dim
        n_comp = sum(CALCULATORS[name].histogram_components(study, dim) for name in study.responses)
        bins = study.energy_bins()
        return bins.n_bins * bins.n_moments * n_comp * 8 / MB
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # estimate only: never stop the workflow
        _note_once(getattr(study, "name", "?"), "reduce histogram size of study %s unknown (%s): not in the memory "
                   "estimate", getattr(study, "name", "?"), exc)
        return 0.0


_NOTED: set = set()


def _note_once(key: str, message: str, *args) -> None:
    if key not in _NOTED:
        _NOTED.add(key)
        log.info(message, *args)


def study_optional_fields(study, fields=None) -> tuple[str, ...]:
    """Optional geometry fields the study's store holds (those its responses read; ``fields``: the
    store's fields when known, e.g. from a geometry job's plan)."""
    try:
        from qgtflow.geometry.fields import OPTIONAL_FIELDS
        from qgtflow.study import geometry_fields

        return tuple(f for f in (geometry_fields(study) if fields is None else fields) if f in OPTIONAL_FIELDS)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError) as exc:  # estimate only
        log.warning("optional geometry fields of study %s unknown (%s): not in the memory estimate",
                    getattr(study, "name", "?"), exc)
        return ()


def rule_workers(threads: int, dask_config: dict | None) -> int:
    """Dask workers a geometry/reduce job starts: ``dask.n_workers`` capped at its threads."""
    requested = (dask_config or {}).get("n_workers")
    threads = max(1, int(threads))
    return max(1, min(int(requested), threads)) if requested else threads


def job_memory_mb(study, size: int, rule: str, threads: int, dask_config: dict | None = None) -> int:
    """Memory (MB) to request for one geometry or reduce job of ``study`` at grid ``size``."""
    dask_config = dask_config or {}
    nb, dim = study.model.nbands, study.model.dim
    from qgtflow.wedge import stored_points

    grid = study.make_grid(size)  # size: points per axis, or one number per axis
    _, chunk = stored_points(study, grid)  # a wedge's chunks are those of its own (smaller) point count
    n = rule_workers(threads, dask_config)
    optional = study_optional_fields(study)
    if rule == "geometry":
        if dask_config.get("backend") == "slurm":
            n = 0  # the workers run in their own SLURM jobs
        return estimate_memory_mb(nb, dim, chunk, n, optional_fields=optional)
    if rule == "reduce":
        return estimate_memory_mb(nb, dim, chunk, n, stage="reduce", histogram_mb=histogram_mb(study),
                                  optional_fields=optional)
    raise ValueError(f"rule {rule!r}: expected 'geometry' or 'reduce'")


def slurm_worker_memory_mb(study, size: int, cores: int = 1, processes: int | None = None, *,
                           fields=None, chunk_size: int | None = None) -> int:
    """Memory (MB) of one Dask-on-SLURM worker job of the geometry stage (workers only, no client).
    ``fields``, ``chunk_size``: the store's fields and chunk size when known (a geometry job knows
    them from its plan and its kgrid store; its study does not declare the grid settings)."""
    dim = study.model.dim
    if chunk_size is None:  # no store yet: the study's grid (size: points per axis, or one number per axis)
        grid = study.make_grid(size)
        chunk_size = min(grid.chunk_size, grid.n_points)
    chunk = int(chunk_size)  # a kgrid store's chunk size is already clamped to its grid
    return estimate_memory_mb(study.model.nbands, dim, chunk, processes or cores, client=False,
                              optional_fields=study_optional_fields(study, fields))


# ---------------------------------------------------------------- clusters


def _worker_env(numba_cache_dir: str | None) -> dict[str, str]:
    env = {var: "1" for var in _THREAD_VARS}
    cache = numba_cache_dir or os.environ.get("NUMBA_CACHE_DIR")
    if cache:
        env["NUMBA_CACHE_DIR"] = str(cache)
    return env


@contextlib.contextmanager
def local_cluster(n_workers: int | None = None):
    """A real ``distributed`` LocalCluster (processes, one thread each) and its client (Dask's default
    scheduler while it is up, also where a job set :func:`qgtflow.runtime.threaded_dask_default`)."""
    import dask
    from distributed import Client, LocalCluster

    n = worker_count(n_workers)
    with quiet_dask_logs(), dask.config.set(scheduler=None):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.WARNING, env=_worker_env(None))
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


@contextlib.contextmanager
def quiet_dask_logs():
    """``distributed``'s INFO lines (scheduler/nanny start and stop, ~35 a run) hidden while the block
    runs, unless qgtflow logs at DEBUG (``qgtflow -v``); its warnings and errors still show."""
    logger = logging.getLogger("distributed")
    before = logger.level
    if not log.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)


def _memory_string(memory) -> str:
    """4000 (MB) -> '4000MiB' (so SLURM gets --mem=4000M); strings such as '4GB' pass through."""
    if isinstance(memory, (int, float)):
        return f"{math.ceil(memory)}MiB"
    return str(memory)


def make_slurm_cluster(cores: int = 1, memory=None, walltime: str = "01:00:00", partition: str | None = None,
                       account: str | None = None, job_extra_directives=(), processes: int | None = None,
                       interface: str | None = None, log_directory: str | None = None,
                       local_directory: str | None = None, job_name: str = "qgtflow-dask",
                       numba_cache_dir: str | None = None, python: str | None = None):
    """A ``dask_jobqueue.SLURMCluster`` with no jobs submitted yet (see :func:`slurm_cluster`)."""
    from dask_jobqueue import SLURMCluster

    if memory is None:
        raise ValueError("slurm_cluster: memory per worker job is required (e.g. 4000 MB or '4GB')")
    cores = max(1, int(cores))
    processes = max(1, int(processes or cores))
    env = _worker_env(numba_cache_dir)
    # SLURM enforces --mem; Dask's own per-worker limit (memory / processes) would pause or restart a
    # worker that keeps its chunk buffers between tasks (they are reused), so it only reports
    for key in ("TARGET", "SPILL", "PAUSE", "TERMINATE"):
        env[f"DASK_DISTRIBUTED__WORKER__MEMORY__{key}"] = "False"
    prologue = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    if log_directory:
        os.makedirs(log_directory, exist_ok=True)
    kwargs = {"cores": cores, "processes": processes, "memory": _memory_string(memory), "walltime": walltime,
              "queue": partition, "account": account, "job_extra_directives": list(job_extra_directives or []),
              "job_script_prologue": prologue, "interface": interface, "log_directory": log_directory,
              "local_directory": local_directory, "job_name": job_name, "python": python or sys.executable,
              "scheduler_options": {"dashboard_address": ":0"}}
    return SLURMCluster(**{k: v for k, v in kwargs.items() if v is not None})


@contextlib.contextmanager
def slurm_cluster(jobs: int = 2, worker_start_timeout: float | None = 3600, **settings):
    """Dask workers in SLURM jobs (``dask_jobqueue.SLURMCluster``) and a client of them.

    ``jobs`` SLURM jobs, each with ``cores`` CPUs (``--cpus-per-task``) running ``processes``
    (default: ``cores``) single-threaded worker processes, ``memory`` per job (MB as a number, or
    a Dask size string such as "4GB"; required; dask-jobqueue rounds --mem up to whole GiB above
    1 GiB), ``walltime`` HH:MM:SS, ``partition`` (-p), ``account`` (-A), ``job_extra_directives``
    (more sbatch options), ``interface``, ``log_directory``, ``local_directory``, ``job_name``.
    Workers get OMP/MKL/OpenBLAS/numba threads = 1 and ``numba_cache_dir`` (default: this
    process's NUMBA_CACHE_DIR, which must be on a filesystem the compute nodes see) so they load
    the kernels compiled here. Waits up to ``worker_start_timeout`` s for the first worker (a queue
    that never starts them fails the stage instead of hanging it); closing cancels the worker jobs.
    """
    import dask
    from distributed import Client

    with dask.config.set(scheduler=None):  # the client is the default scheduler (qgtflow.runtime.threaded_dask_default)
        cluster = make_slurm_cluster(**settings)
        try:
            sbatch_check(cluster.job_script())  # a refused job stops here with sbatch's message, not after the timeout
            log.info("Dask on SLURM: submitting %d worker job(s) of this script:\n%s", jobs, cluster.job_script())
            cluster.scale(jobs=int(jobs))
            client = Client(cluster)
            try:
                client.wait_for_workers(1, timeout=worker_start_timeout)
                log.info("Dask on SLURM: %d worker(s) connected: %s", len(client.scheduler_info()["workers"]),
                         sorted(client.scheduler_info()["workers"]))
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def slurm_settings(dask_config: dict | None) -> dict:
    """The ``dask.slurm`` settings of a workflow config with the defaults filled in."""
    settings = dict(SLURM_DEFAULTS)
    settings.update({k: v for k, v in ((dask_config or {}).get("slurm") or {}).items() if v is not None})
    return settings


# ---------------------------------------------------------------- observability

class PeakMemory:
    """Peak resident memory (MB) of this process and all its descendants (Dask workers included), sampled
    every ``interval`` seconds in a background thread while the ``with`` block runs."""

    def __init__(self, interval: float = 0.2):
        self.interval = float(interval)
        self.peak_mb = 0.0
        self.baseline_mb = 0.0  # at entry: the peak minus this is what the block added

    def sample(self) -> float:
        import psutil

        proc = psutil.Process()
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        self.peak_mb = max(self.peak_mb, total / MB)
        return total / MB

    def __enter__(self):
        import threading

        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(self.interval):
                self.sample()
        self.baseline_mb = self.sample()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()
        return False


def sbatch_check(job_script: str, timeout: float = 60.0) -> None:
    """``sbatch --test-only`` of the Dask worker job script: a job SLURM would refuse (unknown partition or
    account, too much memory, no sbatch) stops at once with sbatch's own message, instead of the stage
    waiting ``worker_start_timeout`` for workers that never come."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="qgtflow-dask-job-") as fh:
        fh.write(job_script)
        fh.flush()
        try:
            proc = subprocess.run(["sbatch", "--test-only", fh.name], capture_output=True, text=True,
                                  timeout=timeout)
        except FileNotFoundError:
            raise PreflightError("dask.backend: slurm: sbatch is not on PATH (is this a SLURM submit host?)") \
                from None
        except subprocess.TimeoutExpired:
            raise PreflightError(f"dask.backend: slurm: sbatch --test-only did not answer in {timeout:g} s "
                                 "(is the SLURM controller up?)") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise PreflightError(f"dask.backend: slurm: sbatch refuses the Dask worker job: "
                             f"{'; '.join(lines[-2:]) or f'exit status {proc.returncode}'}")
