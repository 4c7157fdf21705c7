"""Zarr stores: templates, chunk-region writes, completion markers, checked opening.

Every store written by qgtflow is a labelled xarray Dataset in zarr v3:
  - a metadata-only template is written first (float variables filled with NaN, so a missing
    chunk can never pass for zero);
  - chunks are filled by region, each followed by its own ``chunk_done[i] = 1`` marker (one
    zarr chunk per marker, so concurrent writers never share a chunk);
  - ``qgtflow_complete = True`` is set in the attrs only after every chunk is marked done.
:func:`open_store` refuses stores that are not complete or were made from another config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from qgtflow import __version__

# xarray writes string coordinates (x/y/z labels) as fixed-length UTF-32 and consolidates
# metadata; zarr warns that both are outside the v3 core spec. Both read back with xarray/zarr.
warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
from qgtflow import safety
from qgtflow.errors import StoreError

COMPLETE = safety.MARKER
FINGERPRINT = "qgtflow_fingerprint"


def cf_attrs(stage: str, study_name: str) -> dict:
    """The CF and provenance attrs every store carries (Conventions, title, source, history, version)."""
    import datetime
    import platform

    return {
        "Conventions": "CF-1.10",
        "title": f"qgtflow {stage} store for study '{study_name}'",
        "source": f"qgtflow {__version__}",
        "history": f"{datetime.datetime.now(datetime.timezone.utc).isoformat()} created by qgtflow {stage} "
                   f"on {platform.node()}",
        "qgtflow_version": __version__,
    }


def provenance_attrs(study, stage: str, extra: dict | None = None) -> dict:
    """Global attrs shared by every store: CF-ish metadata plus provenance."""
    attrs = {
        **cf_attrs(stage, study.name),
        "study": study.name,
        "stage": stage,
        "model": study.model.name,
        "model_hash": study.model.model_hash,
        "model_convention": study.model.convention,
        "unit_system": study.units.label,
        "config_json": json.dumps(study.config, sort_keys=True),
        COMPLETE: False,
    }
    attrs.update(extra or {})
    return attrs


def write_template(ds: xr.Dataset, path: str | Path, chunk_size: int, n_chunks: int, compress: bool = True) -> None:
    """Write metadata (and small coordinate data) of ``ds`` with kpoint-chunked lazy variables.

    ``ds`` holds dask-backed variables (only their shape/dtype/attrs matter) chunked along
    ``kpoint`` by ``chunk_size``. A ``chunk_done`` marker array (one zarr chunk per k-chunk) is added.
    k-chunked float arrays are zstd level 1 (``compress``; 0.35 of raw on a Haldane geometry store, exact,
    and the NaN padding of the last chunk costs ~nothing; level 3 gains 5 % for 15 % more CPU, byte-shuffle
    (blosc) compresses these mostly-zero tensors worse; bytes per k-point: benchmarks/bench_peer.py);
    ``compress=False`` stores them raw.
    """
    ds = ds.copy()
    ds["chunk_done"] = chunk_markers(np.zeros(n_chunks, np.int8))
    encoding = kpoint_encoding(ds, chunk_size, compress)
    path = safety.output_target(path, "store")
    if safety.removable(path):
        shutil.rmtree(path)
    ds.to_zarr(path, mode="w", compute=False, encoding=encoding, zarr_format=3, consolidated=False)
    # the marker array is written for real (zeros), everything else stays unwritten (NaN fill)
    zarr.open_group(str(path), mode="r+")["chunk_done"][:] = 0


def chunk_markers(done: np.ndarray) -> xr.DataArray:
    """The ``chunk_done`` marker array of a k-chunked store (int8, 1 = the k-chunk is written)."""
    return xr.DataArray(np.asarray(done, np.int8), dims="chunk",
                        attrs={"long_name": "1 when the k-chunk has been written", "units": "1"})


FLAG_FILL = -1  # fill value of int8 per-k-point flags (0/1): a missing chunk is told from a written one


def kpoint_encoding(ds: xr.Dataset, chunk_size: int, compress: bool = True) -> dict:
    """The encoding of a k-chunked store (:func:`write_template`): ``chunk_size`` k-points a chunk, float arrays
    NaN-filled, int8 per-k-point flags FLAG_FILL-filled, the k-chunked ones zstd level 1 (``compress``), every array
    crc32c-checksummed, one marker a chunk."""
    encoding = checked_encoding(ds)
    encoding["chunk_done"]["chunks"] = (1,)
    for name, var in ds.variables.items():
        if name == "chunk_done":
            continue
        if "kpoint" in var.dims:  # data and per-k-point coords (a template's lazy coords: their Dask chunks)
            encoding[name]["chunks"] = tuple(chunk_size if d == "kpoint" else s for d, s in zip(var.dims, var.shape))
        if name in ds.data_vars and var.dtype == np.int8 and "kpoint" in var.dims:  # 0/1 flags (in_fermi_window)
            encoding[name]["fill_value"] = FLAG_FILL  # never stored: an unwritten chunk reads -1, not a flag
        if name in ds.data_vars and var.dtype.kind == "f":
            encoding[name]["fill_value"] = np.nan
            if "kpoint" in var.dims:
                encoding[name]["compressors"] = (ZstdCodec(level=1), Crc32cCodec()) if compress else (Crc32cCodec(),)
    return encoding


def checked_encoding(ds: xr.Dataset) -> dict:
    """Per-variable zarr encoding with a crc32c checksum after compression on every chunk of every array
    (data and coordinates): a damaged chunk fails to decode instead of being read as data."""
    return {name: {"compressors": (ZstdCodec(), Crc32cCodec()) if ds[name].dtype.kind in "fciub" else (Crc32cCodec(),)}
            for name in ds.variables}


ATTRS_HASH = "qgtflow_attrs_sha256"


def attrs_hash(attrs: dict) -> str:
    """sha256 of a store's root attrs as stored (JSON), without the completion flag and this hash."""
    import hashlib

    body = {k: v for k, v in attrs.items() if k not in (COMPLETE, ATTRS_HASH)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _seal(path: str | Path, extra_attrs: dict | None = None) -> None:
    """Set extra attrs, the attrs hash and the completion flag; consolidate the metadata."""
    group = zarr.open_group(str(path), mode="r+")
    if extra_attrs:
        group.attrs.update(extra_attrs)
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)  # as stored (JSON round trip)
    group.attrs.update({ATTRS_HASH: attrs_hash(attrs), COMPLETE: True})
    zarr.consolidate_metadata(str(path))


def read_rows(group, name: str, start: int, stop: int, store=None) -> np.ndarray:
    """``group[name][start:stop]`` as numpy; a chunk failing its checksum is a StoreError naming store,
    variable and chunk."""
    try:
        return np.asarray(group[name][start:stop])
    except ValueError as exc:
        if "checksum" not in str(exc):
            raise
        step = group[name].chunks[0]
        first, last = start // step, max(start, stop - 1) // step
        where = f"chunk {first}" if first == last else f"chunks {first}..{last}"
        raise StoreError(f"store {store or group.store}: variable '{name}' {where} fails its crc32c checksum "
                         "(damaged); rerun its stage (`qgtflow verify` lists every damaged chunk)") from None


def write_region(path: str | Path, start: int, stop: int, arrays: dict[str, np.ndarray], chunk_index: int) -> None:
    """Write one k-chunk of every variable, then mark the chunk done."""
    group = zarr.open_group(str(path), mode="r+")
    with safety.signals_deferred():  # no zarr write left pending on its I/O thread by a signal
        for name, arr in arrays.items():
            group[name][start:stop] = arr
        group["chunk_done"][chunk_index] = 1


def chunks_done(path: str | Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["chunk_done"][:], dtype=bool)


def store_attrs(path: str | Path) -> dict:
    return dict(zarr.open_group(str(path), mode="r").attrs)


def can_resume(path: str | Path, fingerprint: str) -> bool:
    """True if ``path`` is an unfinished or finished store made from the same fingerprint."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        return False
    try:
        attrs = store_attrs(path)
        return attrs.get(FINGERPRINT) == fingerprint and "chunk_done" in zarr.open_group(str(path), mode="r")
    except Exception:  # unreadable leftovers are rebuilt
        return False


def mark_complete(path: str | Path, extra_attrs: dict | None = None) -> None:
    """Set the completion flag after checking every chunk marker, then consolidate metadata."""
    done = chunks_done(path)
    if not done.all():
        raise StoreError(f"store {path}: {int((~done).sum())} of {done.size} chunks missing; not marking complete")
    _seal(path, extra_attrs)


def write_dataset(ds: xr.Dataset, path: str | Path, encoding: dict | None = None) -> None:
    """Write a small, fully computed dataset atomically: temp dir, completion flag, rename (``encoding``: default
    :func:`checked_encoding`; a single-chunk k-point store passes :func:`kpoint_encoding`).

    An earlier store at ``path`` is replaced only once the new one is fully written; if writing
    fails (disk full, read-only file system) it stays as it was and a :class:`StoreError` names the path.
    """
    path = safety.output_target(path, "store")
    tmp = path.with_name(path.name + ".partial")
    old = path.with_name(path.name + ".old")
    for leftover in (tmp, old):  # ours from an interrupted write, or refused
        if safety.removable(leftover, "leftover"):
            shutil.rmtree(leftover)
    try:
        ds = ds.copy()
        ds.attrs[COMPLETE] = False
        with safety.signals_deferred():  # a signal lands after the write, not amid zarr's pending chunk writes
            ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False,
                       encoding=checked_encoding(ds) if encoding is None else encoding, write_empty_chunks=True)
            _seal(tmp)
            if path.exists():
                path.rename(old)
            tmp.rename(path)
    except OSError as exc:
        for _ in range(20):  # zarr's pending chunk writes may still land just after the first failure
            shutil.rmtree(tmp, ignore_errors=True)  # made by this call (absent before it)
            if not tmp.exists():
                break
            time.sleep(0.05)
        if old.exists() and not path.exists():
            old.rename(path)
        kept = " (its earlier contents are kept)" if path.exists() else ""
        raise StoreError(f"cannot write store {path}{kept}: {_os_reason(exc, path)}") from None
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)  # the store this call replaced (checked to be ours above)


def _os_reason(exc: OSError, path: Path) -> str:
    """What went wrong writing ``path``, in words (a parent that is a file is named as such)."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe != Path(os.path.abspath(path)) and probe.exists() and not probe.is_dir():
        return f"{probe} is a file, not a directory"
    reason = exc.strerror or str(exc)
    return f"{reason} ({exc.filename})" if exc.filename else reason


@contextlib.contextmanager
def output_lock(path: str | Path):
    """Reserve the output store ``path`` for this process while the block runs (before any compute).

    Refuses, with a :class:`StoreError` naming the path: anything but an absent path, an empty
    directory or a qgtflow store (:func:`qgtflow.safety.output_target`: files, foreign directories and
    zarr stores, devices, FIFOs, sockets, dangling symlinks), a location that cannot be written
    (read-only file system, a parent that is a file), a results directory a ``qgtflow run`` is
    writing, and a second writer: an exclusive ``flock`` on ``<path>.lock`` (of the resolved path, so
    aliases share it) held for the whole block (released by the OS if the process dies, so a killed
    run leaves no stale lock). Yields the resolved path.
    """
    given = path
    path = safety.output_target(path)
    running = safety.active_run_lock(path.parent)
    if running is not None:
        raise StoreError(f"output {given} is inside a results directory another qgtflow run is writing "
                         f"({safety.holder_text(running[1], running[0])}); wait for it or choose another path")
    lock = path.with_name(path.name + ".lock")

    def open_lock() -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return safety.open_lock_file(lock)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {_os_reason(exc, lock)}") from None

    import fcntl

    fd, owned = open_lock(), False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise StoreError(f"output {path} is being written by another qgtflow run ({holder}; lock {lock}); "
                                 "wait for it to finish or choose another output path") from None
            except OSError as exc:  # no flock on this file system: go on unlocked
                logging.getLogger(__name__).warning("cannot lock %s (%s); not guarding against a second writer",
                                                    lock, exc.strerror)
                owned = True
                break
            try:  # the previous holder may have removed the file between our open and flock
                current = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                owned = True
                break
            os.close(fd)
            fd = open_lock()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        if owned:
            with contextlib.suppress(OSError):
                os.unlink(lock)
        os.close(fd)


def open_store(path: str | Path, fingerprint: str | None = None) -> xr.Dataset:
    """Open a qgtflow store lazily, refusing incomplete stores or ones from another config."""
    path = Path(path)
    _checked_attrs(path)
    ds = xr.open_zarr(path, consolidated=True)  # complete stores always carry consolidated metadata
    _check_fingerprint(path, ds.attrs, fingerprint)
    return ds


def open_group(path: str | Path, fingerprint: str | None = None):
    """:func:`open_store`'s checks (complete, attrs checksum, fingerprint), returning the zarr group (read-only)
    without building an xarray Dataset: for a stage reading a few arrays by rows (:func:`read_rows`)."""
    path = Path(path)
    _check_fingerprint(path, _checked_attrs(path), fingerprint)
    return zarr.open_group(str(path), mode="r")


def _checked_attrs(path: Path) -> dict:
    """The root attrs of the store ``path``: refused unless it exists, is complete and its attrs are unchanged."""
    if not path.exists():
        raise StoreError(f"store {path} does not exist (run the stage that makes it first)")
    try:
        attrs = store_attrs(path)
    except Exception as exc:  # noqa: BLE001 - any read failure is a broken store for the user
        raise StoreError(f"store {path} is unreadable: {exc}") from None
    if not attrs.get(COMPLETE, False):
        raise StoreError(f"store {path} is incomplete (a run was interrupted); rerun its stage to finish it")
    if ATTRS_HASH in attrs and attrs[ATTRS_HASH] != attrs_hash(attrs):
        raise StoreError(f"store {path}: its attributes were changed after it was written (attrs checksum "
                         "mismatch); rerun its stage")
    return attrs


def _check_fingerprint(path: Path, attrs, fingerprint: str | None) -> None:
    if fingerprint is not None and attrs.get(FINGERPRINT) != fingerprint:
        raise StoreError(f"store {path} has fingerprint {attrs.get(FINGERPRINT)!r}, expected {fingerprint!r} "
                         "(made from other inputs or code; rerun its stage)")


def verify_store(path: str | Path) -> dict:
    """Check a qgtflow store completely: completion flag, attrs checksum, chunk markers, every chunk of every
    array present (float arrays and int8 flags: a missing chunk would read as its NaN / FLAG_FILL fill) and passing
    its crc32c checksum.

    Returns {"arrays": n, "chunks": n, "checksummed": bool}; raises StoreError naming store, variable and
    chunk for the first problem.
    """
    path = Path(path)
    attrs = safety.store_attrs_json(path)
    if attrs is None or COMPLETE not in attrs:
        raise StoreError(f"store {path}: not a qgtflow store (no zarr.json with the {COMPLETE} attr)")
    if not attrs.get(COMPLETE):
        raise StoreError(f"store {path} is incomplete (a run was interrupted); rerun its stage to finish it")
    if ATTRS_HASH in attrs and attrs[ATTRS_HASH] != attrs_hash(attrs):
        raise StoreError(f"store {path}: its attributes were changed after it was written (attrs checksum "
                         "mismatch); rerun its stage")
    try:
        group = zarr.open_group(str(path), mode="r", use_consolidated=False)
        arrays = dict(group.arrays())
    except Exception as exc:  # noqa: BLE001 - unreadable metadata is damage
        raise StoreError(f"store {path}: unreadable metadata ({type(exc).__name__}: {exc})") from None
    n_chunks, checksummed = 0, True
    for name, arr in sorted(arrays.items()):
        codecs = [type(c).__name__ for c in arr.metadata.codecs] if hasattr(arr.metadata, "codecs") else []
        checksummed = checksummed and "Crc32cCodec" in codecs
        nan_fill = arr.dtype.kind == "f" and np.isnan(arr.fill_value)
        flag_fill = arr.dtype == np.int8 and name != "chunk_done" and arr.fill_value == FLAG_FILL
        for coords in np.ndindex(*arr.cdata_shape):
            n_chunks += 1
            where = f"store {path}: variable '{name}' chunk {coords if len(coords) != 1 else coords[0]}"
            if (nan_fill or flag_fill) and not (path / name / arr.metadata.encode_chunk_key(coords)).is_file():
                raise StoreError(f"{where} is missing (it would read as {'NaN' if nan_fill else FLAG_FILL}); "
                                 "rerun its stage")
            try:
                block = arr.get_block_selection(coords)
            except Exception as exc:  # noqa: BLE001 - checksum, decompression, short read
                reason = "fails its crc32c checksum" if "checksum" in str(exc) else f"is unreadable ({exc})"
                raise StoreError(f"{where} {reason} (damaged); rerun its stage") from None
            if name == "chunk_done" and not np.all(block == 1):
                raise StoreError(f"{where}: marked not done in a store flagged complete; rerun its stage")
    return {"arrays": len(arrays), "chunks": n_chunks, "checksummed": checksummed}


def find_stores(root: str | Path) -> list[Path]:
    """qgtflow stores at or below ``root`` (directories whose zarr.json carries the completion attr)."""
    root = Path(root)
    if safety.is_qgtflow_store(root):
        return [root]
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        keep = []
        for d in sorted(dirnames):
            p = Path(dirpath) / d
            if safety.is_qgtflow_store(p):
                found.append(p)
            elif not d.startswith(".") and not os.path.islink(p):
                keep.append(d)
        dirnames[:] = keep
    return found
