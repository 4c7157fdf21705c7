"""Stage ``geometry``: band-geometry fields per k-point and band, chunked over k on Dask.

Store schema (``geometry.zarr``): ``kvec`` (kpoint, axis), ``weight`` (kpoint), and every field of
:data:`qgtflow.geometry.FIELD_SPECS` with dims (kpoint, band, i, j, k…), attrs units/long_name/
formula (003 spin fields, optional: a last dim ``spin`` labelled x, y, z = component c of σ^c);
``chunk_done`` (chunk). A Fermi-surface-only study (the plan's ``fermi_window``) has its fields only where a state
can reach the window (:mod:`qgtflow.geometry.fermi_window`): ``in_fermi_window`` (kpoint) flags those k-points
(elsewhere energies only, every other field 0) and the attr ``fermi_window`` holds [E_lo, E_hi]. A killed run resumes: finished chunks (marked done) are kept,
the rest are recomputed; the store is flagged complete only when every chunk is done.
"""

from __future__ import annotations

import logging
import os

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from qgtflow import gridsize, io
from qgtflow.cluster import local_cluster
from qgtflow.geometry import fermi_window
from qgtflow.geometry.fields import (CORE_FIELDS, FIELD_SPECS, OPTIONAL_FIELDS, compute_fields, field_units,
                                     near_degeneracy_warning, near_degenerate_fraction)
from qgtflow.guards import require_finite_fields
from qgtflow.kgrid import AXES, grid_from_attrs
from qgtflow.stages.kgrid_stage import GRID_COORDS
from qgtflow.stages.tasks import run_tasks
from qgtflow.study import geometry_fields

log = logging.getLogger(__name__)

CART = ("i", "j", "k", "l")


def study_fields(study) -> list[str]:
    """Fields the geometry store of ``study`` holds (:func:`qgtflow.study.geometry_fields`)."""
    return geometry_fields(study)


def _template(study, kg: xr.Dataset, fp: str, fields: list[str], window: dict | None = None) -> xr.Dataset:
    n_k, dim = kg.sizes["kpoint"], kg.sizes["axis"]
    nb = study.model.nbands
    chunk = int(kg.attrs["chunk_size"])
    sizes = {"band": nb, "band_m": nb, "i": dim, "j": dim, "k": dim, "l": dim, "spin": 3}
    data = {"kvec": xr.Variable(("kpoint", "axis"), da.zeros((n_k, dim), chunks=(chunk, dim)), kg["kvec"].attrs),
            "weight": xr.Variable("kpoint", da.zeros(n_k, chunks=chunk), kg["weight"].attrs)}
    for name in fields:
        spec = FIELD_SPECS[name]
        shape = (n_k,) + tuple(sizes[d] for d in spec.dims)
        attrs = {"long_name": spec.long_name, "units": field_units(spec, study.units), "formula": spec.formula}
        data[name] = xr.Variable(("kpoint",) + spec.dims, da.zeros(shape, chunks=(chunk,) + shape[1:]), attrs)
    if window is not None:
        data[fermi_window.FLAG] = xr.Variable("kpoint", da.zeros(n_k, dtype=np.int8, chunks=chunk),
                                               fermi_window.FLAG_ATTRS)  # dtype= (dask ignores it positionally)
    band_coords = {
        "band": ("band", np.arange(nb)),
        "band_sector": ("band", study.model.band_sector.astype(str),
                        {"long_name": "sector (valley / block) of the band"}),
        "band_weight": ("band", study.model.band_weight.astype(float),
                        {"long_name": "multiplicity of the band in response sums (e.g. spin degeneracy)",
                         "units": "1"})}
    spin_coord = {"spin": ("spin", list(AXES), {"long_name": "spin component c of σ^c (003)"})} \
        if any("spin" in v.dims for v in data.values()) else {}
    grid_coords = {name: xr.Variable("kpoint", da.zeros(n_k, dtype=kg[name].dtype, chunks=chunk), kg[name].attrs)
                   for name in kg.coords if name.startswith(GRID_COORDS)}  # uniform grids: k-maps unstack
    ds = xr.Dataset(data, coords={**band_coords, "axis": list(AXES[:dim]), **{c: list(AXES[:dim]) for c in CART},
                                  **spin_coord, **grid_coords})
    attrs = {k: v for k, v in kg.attrs.items() if k.startswith("grid_") or k in ("n_kpoints", "chunk_size")}
    attrs.update({io.FINGERPRINT: fp, "degeneracy_threshold": study.degeneracy_threshold,
                  "field_convention": "velocity = dε/dk (ħ absorbed); *_dipole_density[..., a, b, c] = ∂_c F^ab; "
                                      "degenerate groups averaged (band sums = group traces)"})
    if window is not None:
        attrs["fermi_window"] = list(window["energy"])
    ds.attrs = io.provenance_attrs(study, "geometry", attrs)
    return ds


def read_points(group, kgrid_path, start, stop) -> dict:
    """{kvec, weight, grid coords} of the points start..stop−1 of the kgrid store's zarr ``group`` (checksums
    verified)."""
    k = io.read_rows(group, "kvec", start, stop, kgrid_path)  # checksums verified
    weight = io.read_rows(group, "weight", start, stop, kgrid_path)
    coords = {name: io.read_rows(group, name, start, stop, kgrid_path) for name in group.array_keys()
              if name.startswith(GRID_COORDS)}
    return {"kvec": k, "weight": weight, **coords}


def chunk_fields(model, group, kgrid_path, start, stop, threshold, optional=(), names=None, window=None):
    """One chunk's k-points, weights, grid coords (and Fermi-window flags) and fields: ({name: array}, fields),
    read from the kgrid store's zarr ``group`` (:func:`read_points`) and computed (:func:`points_fields`)."""
    points = read_points(group, kgrid_path, start, stop)
    return points, points_fields(model, points, dict(group.attrs), start, threshold, optional, names, window)


def points_fields(model, points: dict, grid_attrs: dict, start, threshold, optional=(), names=None, window=None):
    """The fields of the chunk ``points`` (:func:`read_points`; from flat point ``start`` of the grid of
    ``grid_attrs``), ``window``: the plan's ``fermi_window``, fields only at the k-points that reach it (their flags
    added to ``points``); finite, or refused naming the k-point. The arrays may be the kernel's reused buffers:
    consumed before the next chunk."""
    k = points["kvec"]
    core = None if names is None else tuple(name for name in names if name in CORE_FIELDS)

    def compute(points):
        return compute_fields(model, points, threshold, reuse_buffers=True,  # written out before the next chunk
                              optional=tuple(optional), core=core)  # only the fields stored: the kernel's level

    if window is not None:
        grid = grid_from_attrs(grid_attrs) if window.get("cells") else None
        fields, flag = fermi_window.fields_in_window(model, k, window, compute, names, threshold, grid, start)
        points[fermi_window.FLAG] = flag
    else:
        fields = compute(k)
    if names is not None:
        fields = {name: fields[name] for name in names}
    require_finite_fields(model, k, fields, start)  # the actual grid: a pole on any k-point, before it is stored
    return fields


def _geometry_chunk(model, kgrid_path, out, index, start, stop, threshold, optional=(), names=None, window=None):
    """Worker task: compute one chunk's fields (:func:`chunk_fields`) and write them by region."""
    group = zarr.open_group(str(kgrid_path), mode="r")
    points, fields = chunk_fields(model, group, kgrid_path, start, stop, threshold, optional, names, window)
    io.write_region(out, start, stop, {**points, **fields}, index)
    return index


def run(study, kgrid_store: str, out: str, n_workers: int | None = None, client=None, job: dict | None = None) -> int:
    """Fill ``out`` from ``kgrid_store``; returns how many chunks were computed in this call.

    ``job``: the job's inputs from the plan (:func:`qgtflow.plan.job_inputs`: the fields to store,
    the kgrid store's expected fingerprint, this store's); default: derived from ``study``. A kgrid
    store of other inputs is refused."""
    from qgtflow.plan import check_store, grid_chain

    if job is None:
        job = grid_chain(study, gridsize.from_axes(io.store_attrs(kgrid_store)["grid_sizes"]))["geometry"]
    names, fp, window = list(job["fields"]), job["fingerprint"], job.get("fermi_window")
    kg = check_store(kgrid_store, job["upstream"]["kgrid"])
    n_chunks = kg.sizes["chunk"]
    chunk = int(kg.attrs["chunk_size"])
    n_k = kg.sizes["kpoint"]
    if io.can_resume(out, fp):
        done = io.chunks_done(out)
        if io.store_attrs(out).get(io.COMPLETE) and done.all():
            log.info("geometry %s: store %s already complete", study.name, out)
            return 0
        log.info("geometry %s: resuming, %d of %d chunks already done", study.name, int(done.sum()), n_chunks)
    else:
        io.write_template(_template(study, kg, fp, names, window), out, chunk, n_chunks)
        done = np.zeros(n_chunks, bool)
    todo = [i for i in range(n_chunks) if not done[i]]
    # compile (or load from cache) the kernels once here so workers only load the cache
    optional = tuple(f for f in names if f in OPTIONAL_FIELDS)
    compute_fields(study.model, np.asarray(kg["kvec"][:2].values), study.degeneracy_threshold, optional=optional,
                   core=tuple(name for name in names if name in CORE_FIELDS))
    args = [(study.model, os.fspath(kgrid_store), os.fspath(out), i, i * chunk, min(n_k, (i + 1) * chunk),
             study.degeneracy_threshold, optional, names, window) for i in todo]
    log.info("geometry %s: %d chunks of %d k-points to compute (%d bands, dim %d)", study.name, len(todo), chunk,
             study.model.nbands, study.model.dim)
    if client is None and n_workers != 0:
        with local_cluster(n_workers) as own_client:
            for _ in run_tasks(_geometry_chunk, args, own_client, label=f"geometry {study.name}"):
                pass
    else:
        for _ in run_tasks(_geometry_chunk, args, client, label=f"geometry {study.name}"):
            pass
    io.mark_complete(out)
    _warn_near_degeneracies(study, out)
    if window is not None:
        inside = io.open_store(out)[fermi_window.FLAG].values
        log.info("geometry %s: fields at %d of %d k-points (the rest cannot reach the Fermi window %s)", study.name,
                 int(inside.sum()), inside.size, window["energy"])
    return len(todo)


def _warn_near_degeneracies(study, out) -> None:
    """Log a warning when many k-points have ungrouped bands split by little more than the threshold."""
    fraction = near_degenerate_fraction(io.open_store(out)["energy"].data, study.degeneracy_threshold,
                                        study.model.band_sector)
    message = near_degeneracy_warning(fraction, study.degeneracy_threshold, f"geometry {study.name}")
    if message:
        log.warning(message)
