"""Dask cluster sizing: a local cluster sized from the job's allocation (threads and CPU affinity)."""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may use: the smaller of CPU affinity and os.cpu_count()."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        affinity = os.cpu_count() or 1
    return max(1, min(affinity, os.cpu_count() or 1))


def worker_count(requested: int | None) -> int:
    cores = available_cores()
    n = cores if not requested else min(int(requested), cores)
    log.info("cores visible (affinity): %d; requested workers: %s; using %d", cores, requested, n)
    return max(1, n)


@contextlib.contextmanager
def local_cluster(n_workers: int | None = None):
    """A real ``distributed`` LocalCluster (processes, one thread each) and its client."""
    from distributed import Client, LocalCluster

    n = worker_count(n_workers)
    env = {var: "1" for var in _THREAD_VARS}
    env["NUMBA_CACHE_DIR"] = os.environ.get("NUMBA_CACHE_DIR", "")
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.WARNING, env={k: v for k, v in env.items() if v})
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
