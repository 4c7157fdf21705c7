"""Compiled kernels for the workflow jobs a test starts: the jobs' shared numba cache
(``shared/`` under qgtflow.runtime.numba_cache_root(), which every job copies at start, see
qgtflow.runtime.setup_job) seeded from this test session's NUMBA_CACHE_DIR (tests/conftest.py), so
no job compiles a kernel this process already has (~20-60 s of CPU per kernel set when cold).

numba files a function's cache under ``<directory name>_<sha1 of the source directory's path>`` and
stamps it with the hash of the source file's content (numba.core.caching). A copy of the package at
another path (the frozen workspace of tests/tiny_run.py, a new temporary directory every session)
finds nothing under its own path; the same files serve it once filed under the copy's names.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
from pathlib import Path


def cache_subdir(source_dir: str | os.PathLike) -> str:
    """The directory numba caches the functions of ``source_dir``'s files in (its _CacheLocator)."""
    path = os.path.abspath(source_dir)
    return f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"


def _relocated_indexes(source: Path, package: Path, copy: Path):
    """(index file, its path relative to the cache) of ``package``'s kernels, named for ``copy``."""
    for directory in [package, *sorted(p for p in package.rglob("*") if p.is_dir())]:
        theirs = cache_subdir(copy / directory.relative_to(package))
        for index in sorted((source / cache_subdir(directory)).glob("*.nbi")):
            yield index, Path(theirs) / index.name


def seed_numba_cache(source: str | os.PathLike | None, root: Path | None = None,
                     relocate: tuple[Path, Path] | None = None) -> int:
    """Copy compiled kernels from ``source`` (a numba cache directory) into the jobs' shared cache.

    ``relocate=(package, copy)``: only the kernels of ``package``'s files, filed for the same files
    under ``copy``. Same lock and same per-function order (data files, then index) as the jobs' own
    publishing; an index no older than the source's is kept. Returns the number of index files copied."""
    from qgtflow.runtime import numba_cache_root

    if not source or not Path(source).is_dir():
        return 0
    source = Path(source)
    root = numba_cache_root() if root is None else root
    shared = root / "shared"
    lock = root / "shared.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    pairs = (_relocated_indexes(source, *relocate) if relocate
             else ((index, index.relative_to(source)) for index in source.rglob("*.nbi")))
    copied = 0
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            for index, relative in pairs:
                target = shared / relative
                if target.exists() and target.stat().st_mtime >= index.stat().st_mtime:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                stem = index.name[: -len(".nbi")]
                for data in index.parent.glob(f"{glob.escape(stem)}.*.nbc"):
                    tmp = target.parent / f".{data.name}.seed.tmp"
                    shutil.copy2(data, tmp)
                    os.replace(tmp, target.parent / data.name)
                tmp = target.parent / f".{index.name}.seed.tmp"
                shutil.copy2(index, tmp)
                os.replace(tmp, target)
                copied += 1
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return copied
