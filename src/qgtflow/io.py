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

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from qgtflow import __version__

# xarray writes string coordinates (x/y/z labels) as fixed-length UTF-32 and consolidates
# metadata; zarr warns that both are outside the v3 core spec. Both read back with xarray/zarr.
warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
from qgtflow.errors import StoreError

COMPLETE = "qgtflow_complete"
FINGERPRINT = "qgtflow_fingerprint"


def provenance_attrs(study, stage: str, extra: dict | None = None) -> dict:
    """Global attrs shared by every store: CF-ish metadata plus provenance."""
    import datetime
    import platform

    attrs = {
        "Conventions": "CF-1.10",
        "title": f"qgtflow {stage} store for study '{study.name}'",
        "source": f"qgtflow {__version__}",
        "history": f"{datetime.datetime.now(datetime.timezone.utc).isoformat()} created by qgtflow {stage} "
                   f"on {platform.node()}",
        "study": study.name,
        "stage": stage,
        "model": study.model.name,
        "model_hash": study.model.model_hash,
        "model_convention": study.model.convention,
        "unit_system": study.units.label,
        "config_json": json.dumps(study.config, sort_keys=True),
        "qgtflow_version": __version__,
        COMPLETE: False,
    }
    attrs.update(extra or {})
    return attrs


def write_template(ds: xr.Dataset, path: str | Path, chunk_size: int, n_chunks: int, compress: bool = True) -> None:
    """Write metadata (and small coordinate data) of ``ds`` with kpoint-chunked lazy variables.

    ``ds`` holds dask-backed variables (only their shape/dtype/attrs matter) chunked along
    ``kpoint`` by ``chunk_size``. A ``chunk_done`` marker array (one zarr chunk per k-chunk) is added.
    ``compress=False`` stores float fields raw (noise-like doubles barely compress; saves CPU).
    """
    ds = ds.copy()
    ds["chunk_done"] = xr.DataArray(np.zeros(n_chunks, np.int8), dims="chunk",
                                    attrs={"long_name": "1 when the k-chunk has been written", "units": "1"})
    encoding = {name: {"chunks": (1,)} if name == "chunk_done" else {} for name in ds.data_vars}
    for name, var in ds.data_vars.items():
        if name == "chunk_done":
            continue
        if "kpoint" in var.dims:
            encoding[name]["chunks"] = tuple(chunk_size if d == "kpoint" else s for d, s in zip(var.dims, var.shape))
        if var.dtype.kind == "f":
            encoding[name]["fill_value"] = np.nan
            if not compress:
                encoding[name]["compressors"] = None
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    ds.to_zarr(path, mode="w", compute=False, encoding=encoding, zarr_format=3, consolidated=False)
    # the marker array is written for real (zeros), everything else stays unwritten (NaN fill)
    zarr.open_group(str(path), mode="r+")["chunk_done"][:] = 0


def write_region(path: str | Path, start: int, stop: int, arrays: dict[str, np.ndarray], chunk_index: int) -> None:
    """Write one k-chunk of every variable, then mark the chunk done."""
    group = zarr.open_group(str(path), mode="r+")
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
    group = zarr.open_group(str(path), mode="r+")
    group.attrs.update({**(extra_attrs or {}), COMPLETE: True})
    zarr.consolidate_metadata(str(path))


def write_dataset(ds: xr.Dataset, path: str | Path) -> None:
    """Write a small, fully computed dataset atomically: temp dir, completion flag, rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds = ds.copy()
    ds.attrs[COMPLETE] = True
    ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def open_store(path: str | Path, fingerprint: str | None = None) -> xr.Dataset:
    """Open a qgtflow store lazily, refusing incomplete stores or ones from another config."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"store {path} does not exist (run the stage that makes it first)")
    try:
        attrs = store_attrs(path)
    except Exception as exc:  # noqa: BLE001 - any read failure is a broken store for the user
        raise StoreError(f"store {path} is unreadable: {exc}") from None
    if not attrs.get(COMPLETE, False):
        raise StoreError(f"store {path} is incomplete (a run was interrupted); rerun its stage to finish it")
    ds = xr.open_zarr(path, consolidated=True)  # complete stores always carry consolidated metadata
    if fingerprint is not None and ds.attrs.get(FINGERPRINT) not in (None, fingerprint):
        raise StoreError(f"store {path} was made from a different configuration; rerun its stage")
    return ds
