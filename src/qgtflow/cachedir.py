"""qgtflow's per-user cache directory: the one place that resolves ``$QGTFLOW_CACHE_DIR`` (standard library only,
so the model layer and the job set-up both use it)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """qgtflow's per-user cache: ``$QGTFLOW_CACHE_DIR``, default ``~/.cache/qgtflow`` (compiled models
    under ``models/``, the numba kernel cache under ``numba/``). On a cluster it must be on a
    filesystem the compute nodes see (home usually is)."""
    root = os.environ.get("QGTFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "qgtflow")
    return Path(root).resolve()
