"""Run a list of independent tasks on a Dask client, or inline when no client is given."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


def run_tasks(fn, arg_list, client=None, label: str = "tasks"):
    """Yield fn(*args) results in completion order, with progress (bar on a TTY, log lines in batch)."""
    total = len(arg_list)
    if total == 0:
        return
    bar = None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=label, unit="chunk")
        except ImportError:  # pragma: no cover
            bar = None
    t0 = time.perf_counter()
    next_report = 0.1
    if client is None:
        iterator = (fn(*args) for args in arg_list)
    else:
        from distributed import as_completed

        futures = [client.submit(fn, *args, pure=False, retries=2) for args in arg_list]
        iterator = (f.result() for f in as_completed(futures))
    for done, result in enumerate(iterator, 1):
        if bar is not None:
            bar.update(1)
        elif done / total >= next_report or done == total:
            log.info("%s: %d/%d done (%.1f s)", label, done, total, time.perf_counter() - t0)
            next_report += 0.1
        yield result
    if bar is not None:
        bar.close()
