"""Stage ``kgrid``: write the k-points and integration weights of one grid density.

Store schema (``kgrid.zarr``): ``kvec`` (kpoint, axis) [model length⁻¹], ``weight`` (kpoint)
[model length⁻ᵈ, Σ w = ∫d^dk/(2π)^d], ``chunk_done`` (chunk); attrs: grid description + provenance.
"""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import xarray as xr

from qgtflow import io
from qgtflow.kgrid import AXES

log = logging.getLogger(__name__)


def fingerprint(study, size: int) -> str:
    grid = study.make_grid(size)
    return f"{study.model.model_hash}-{hash_json(grid.attrs())}"


def hash_json(obj) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run(study, size: int, out: str) -> None:
    grid = study.make_grid(size)
    length = "model length" if study.units.natural else study.units.length
    fp = fingerprint(study, size)
    log.info("kgrid %s: %s grid %s, %d points in %d chunks", study.name, grid.kind, grid.sizes, grid.n_points,
             grid.n_chunks)
    ds = xr.Dataset(
        {"kvec": (("kpoint", "axis"), da.zeros((grid.n_points, grid.dim), chunks=(grid.chunk_size, grid.dim)),
               {"long_name": "crystal momentum", "units": f"{length}-1"}),
         "weight": ("kpoint", da.zeros(grid.n_points, chunks=grid.chunk_size),
                    {"long_name": "integration weight, sum = integral d^dk/(2 pi)^d",
                     "units": f"{length}-{grid.dim}"})},
        coords={"axis": ("axis", list(AXES[:grid.dim]))},
        attrs=io.provenance_attrs(study, "kgrid", {**grid.attrs(), "grid_spacing_units": f"{length}-1",
                                                   io.FINGERPRINT: fp}))
    io.write_template(ds, out, grid.chunk_size, grid.n_chunks)
    for index in range(grid.n_chunks):
        start, stop = grid.chunk_bounds(index)
        io.write_region(out, start, stop, {"kvec": grid.points(start, stop),
                                           "weight": np.full(stop - start, grid.weight)}, index)
    io.mark_complete(out)
