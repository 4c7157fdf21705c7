"""Reading the workflow's stores for the report: the finest responses store of a study, its convergence error bars,
ωτ of a store, and the fingerprints of the stores the report was planned on.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from qgtflow import io
from qgtflow.errors import StoreError


def default_sizes() -> list[int]:
    try:
        from qgtflow.study import study_schema

        return list(study_schema()["properties"]["kgrid"]["properties"]["sizes"]["default"])
    except Exception:  # schema unreadable: the glob fallback still finds the stores
        return []


def study_sizes(study_cfg) -> list[str]:
    """Labels of the study's grid sizes, coarse to fine ("8", "3x3x4"; directories n8, n3x3x4)."""
    from qgtflow import gridsize

    if isinstance(study_cfg, dict):
        sizes = (study_cfg.get("kgrid") or {}).get("sizes")
        if sizes:
            return [gridsize.label(s) for s in sizes]
    return [gridsize.label(s) for s in default_sizes()]


def finest_store(results_dir: Path, study: str, study_cfg) -> tuple[Path | None, str | None]:
    """Path of the finest-grid responses store (and a note when it is not the configured one)."""
    sizes = study_sizes(study_cfg)
    if sizes:
        p = results_dir / study / f"n{sizes[-1]}" / "responses.zarr"  # sizes ascend (validated)
        if p.exists():
            return p, None
    found = []
    for q in (results_dir / study).glob("n*/responses.zarr"):
        m = re.fullmatch(r"n(\d+)", q.parent.name)
        if m:
            found.append((int(m.group(1)), q))
    expected = f"{study}/n{sizes[-1]}/responses.zarr" if sizes else f"{study}/n<N>/responses.zarr"
    if not found:
        return None, f"study '{study}': responses store {expected} not found"
    n, q = max(found)
    return q, f"study '{study}': {expected} not found, used the finest available grid n{n}"


def open_store(path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.open_zarr(path)


def omega_tau(ds: xr.Dataset) -> np.ndarray:
    """ωτ of a responses store (ω as photon energy in the store's energy unit; τ from its attrs)."""
    from qgtflow.units import HBAR, NATURAL_ENERGY, UnitSystem

    omega = np.asarray(ds["omega"].values, float)
    tau = float(ds.attrs.get("tau", np.nan))
    unit = str(ds["omega"].attrs.get("units", NATURAL_ENERGY))
    if unit in (NATURAL_ENERGY, "model energy"):  # "model energy": stores written before the pint-readable names
        return omega * tau
    return omega * UnitSystem(energy=unit).energy_si / HBAR * tau


def conv_error(results_dir: Path, study: str, response: str, selection: dict):
    """Error bars of ``response`` from the study's convergence store at ``selection`` (None if unavailable)."""
    conv = results_dir / study / "convergence" / "convergence.zarr"
    try:
        e = open_store(conv)[f"{response}_error"]
        for dim, label in selection.items():
            if dim in e.dims:
                e = e.sel({dim: label}, method="nearest") if np.issubdtype(e[dim].dtype, np.number) else \
                    e.isel({dim: [str(v) for v in e[dim].values].index(str(label))})
        return np.asarray(e.values, float)
    except Exception:
        return None


STORE_OF_PART = {"convergence": "convergence.zarr", "bands": "bands.zarr"}  # else a grid's n<size>/responses.zarr


def bands_store(results_dir: Path, study: str) -> Path:
    """Path of the study's bands store (the bands stage's output)."""
    return results_dir / study / "bands" / "bands.zarr"


def check_fingerprints(upstream: dict, results: Path) -> None:
    """The stores the report reads must be the ones its plan expects (their fingerprints, qgtflow.plan):
    ``upstream`` maps '<study>/<part>' to the expected fingerprint; a missing store is a note of its section."""
    for where, expected in upstream.items():
        name, part = where.split("/", 1)
        store = results / name / part / STORE_OF_PART.get(part, "responses.zarr")
        if store.exists():
            found = io.store_attrs(store).get(io.FINGERPRINT)
            if found != expected:
                raise StoreError(f"store {store} has fingerprint {found!r}, expected {expected!r} (made from other "
                                 "inputs or code; rerun its stage)")
