"""Stage ``kgrid``: write the k-points and integration weights of one grid density.

Store schema (``kgrid.zarr``): ``kvec`` (kpoint, axis) [model length⁻¹], ``weight`` (kpoint)
[model length⁻ᵈ, Σ w = ∫d^dk/(2π)^d], ``chunk_done`` (chunk); attrs: grid description + provenance.
Uniform grids also carry, per axis a of the grid, the coords ``k_index_a`` (kpoint; integer n_a) and
``k_frac_a`` (kpoint; (n_a + shift_a)/N_a in the grid basis), which the geometry stage copies, so a field
unstacks into a k-map: ``ds.berry_curvature.set_index(kpoint=["k_index_x", "k_index_y"]).unstack("kpoint")``.

With ``kgrid.refine`` (:mod:`qgtflow.refine`) the same schema holds the adaptively refined grid:
two streaming passes over the base grid's chunks (count, then write; never all N^d energies at once),
output chunks of ``chunk_size`` refined points written by region with their markers (a killed run
resumes from the finished chunks; the counting pass is kept in the attrs), and the attrs
``refine_factor``, ``refine_levels``, ``refine_window_kT``, ``n_refined_cells``, ``n_base_points``,
``grid_spacing`` (base h) and ``grid_spacing_refined`` (h / r^levels). The fingerprint then also
covers the refine settings, the study's μ and T (qgtflow.plan declares them for a refined grid), so a new μ re-refines.

With ``kgrid.symmetry_reduce`` (:mod:`qgtflow.wedge`) the store holds the irreducible points only, weight m_k w
(orbit size m_k), with the point group in the attrs ``grid_symmetry_rotations``, ``grid_symmetry_time_reversal``
and ``grid_n_full_kpoints`` (``n_kpoints`` stays the full grid's); the fingerprint then also covers ``symmetry``.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from qgtflow import io, wedge
from qgtflow.kgrid import AXES, effective_chunk_size
from qgtflow.refine import Refiner, parse_refine

log = logging.getLogger(__name__)


def fingerprint(study, size: int, job: dict | None = None) -> str:
    """The kgrid store's fingerprint: its job's (:func:`qgtflow.plan.fingerprint`: the keys the kgrid
    stage declares, among them the refine settings and, when refining, mu and T; the size; the code)."""
    if job is not None:
        return job["fingerprint"]
    from qgtflow.plan import job_inputs

    return job_inputs("kgrid", study, size)["fingerprint"]


def refine_spec(study):
    """The study's :class:`qgtflow.refine.RefineSpec`, or None for a uniform grid (refine with
    ``integration: tetrahedron`` is refused by :func:`qgtflow.study.load_study`)."""
    return parse_refine((study.config.get("kgrid") or {}).get("refine"), key=f"{study.where}kgrid.refine")


def refine_kT(study) -> float:
    """k_BT of the study's lowest temperature (model energy units): the narrowest Fermi window."""
    return float(min(study.units.kT(t) for t in np.atleast_1d(study.temperature)))


GRID_COORDS = ("k_index_", "k_frac_")  # name prefixes of the per-axis grid coords (uniform grids)


def grid_coord_values(grid, start: int, stop: int) -> dict[str, np.ndarray]:
    """The values of :func:`grid_coords` for the flat points start..stop−1."""
    return _coord_values(grid, grid.indices(start, stop), grid.fractions(start, stop))


def _coord_values(grid, idx: np.ndarray, frac: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for a, ax in enumerate(AXES[:grid.dim]):
        out[f"k_index_{ax}"], out[f"k_frac_{ax}"] = idx[:, a], frac[:, a]
    return out


def _uniform_template(study, grid, n_points: int, chunk: int, attrs: dict) -> xr.Dataset:
    """The store template of ``n_points`` points of the uniform ``grid`` (all of it, or its wedge)."""
    import dask.array as da

    length = study.units.length_unit
    return xr.Dataset(
        {"kvec": (("kpoint", "axis"), da.zeros((n_points, grid.dim), chunks=(chunk, grid.dim)),
                  {"long_name": "crystal momentum", "units": f"{length}-1"}),
         "weight": ("kpoint", da.zeros(n_points, chunks=chunk),
                    {"long_name": "integration weight, sum = integral d^dk/(2 pi)^d",
                     "units": f"{length}-{grid.dim}"})},
        coords={"axis": ("axis", list(AXES[:grid.dim])), **grid_coords(grid, n_points, chunk)},
        attrs=io.provenance_attrs(study, "kgrid", {**grid.attrs(), "grid_spacing_units": f"{length}-1", **attrs}))


def _uniform_dataset(study, grid, attrs: dict) -> xr.Dataset:
    """The whole store of the uniform ``grid`` computed (numpy; same variables, coords, attrs and encoding as
    :func:`_uniform_template` filled chunk by chunk), its single chunk marked done."""
    length = study.units.length_unit
    n = grid.n_points
    values = grid_coord_values(grid, 0, n)
    coords = {name: ("kpoint", values[name], var[2]) for name, var in grid_coords(grid, n, None).items()}
    return xr.Dataset(
        {"kvec": (("kpoint", "axis"), grid.points(0, n), {"long_name": "crystal momentum", "units": f"{length}-1"}),
         "weight": ("kpoint", np.full(n, grid.weight), {"long_name": "integration weight, sum = integral d^dk/(2 pi)^d",
                                                        "units": f"{length}-{grid.dim}"}),
         "chunk_done": io.chunk_markers(np.ones(1, np.int8))},
        coords={"axis": ("axis", list(AXES[:grid.dim])), **coords},
        attrs=io.provenance_attrs(study, "kgrid", {**grid.attrs(), "grid_spacing_units": f"{length}-1", **attrs}))


def grid_coords(grid, n_points: int, chunk: int | None) -> dict:
    """Lazy per-axis grid-index (int64) and fractional coords of ``n_points`` points of ``grid`` for a store template
    (see module doc); ``chunk=None``: their names and attrs only (the arrays are None)."""
    def zeros(dtype):
        import dask.array as da

        return None if chunk is None else da.zeros(n_points, dtype=dtype, chunks=chunk)  # dtype= (positional: ignored)

    coords = {}
    for a, ax in enumerate(AXES[:grid.dim]):
        coords[f"k_index_{ax}"] = ("kpoint", zeros(np.int64),
                                   {"long_name": f"grid index n_{ax} of the k-point along grid axis {a}", "units": "1"})
        coords[f"k_frac_{ax}"] = ("kpoint", zeros(np.float64),
                                  {"long_name": f"fractional coordinate (n_{ax} + shift)/N along grid axis {a}",
                                   "units": "1"})
    return coords


class MemoryGrid:
    """The kgrid store of a plain uniform grid (no refine, no wedge: :func:`memory_grid`) without writing it: its
    attrs as the store holds them (JSON round trip) and the arrays :func:`run` would write for points start..stop−1
    (:meth:`rows`), made on demand. For a one-pass ``evaluate`` that keeps no store (:mod:`qgtflow.stages.fused`)."""

    def __init__(self, study, size, job: dict | None = None):
        import json

        self.grid = grid = study.make_grid(size)
        length = study.units.length_unit
        attrs = io.provenance_attrs(study, "kgrid", {**grid.attrs(), "grid_spacing_units": f"{length}-1",
                                                      io.FINGERPRINT: fingerprint(study, size, job)})
        self.attrs = json.loads(json.dumps(attrs))
        self.n_points, self.chunk_size, self.dim = grid.n_points, grid.chunk_size, grid.dim
        self.name = f"the {grid.kind} grid {list(grid.sizes)} of study '{study.name}' (in memory)"

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """{kvec, weight, grid coords} of the points start..stop−1 (a whole chunk of the store: the same values)."""
        grid = self.grid
        return {"kvec": grid.points(start, stop), "weight": np.full(stop - start, grid.weight),
                **grid_coord_values(grid, start, stop)}


def memory_grid(study, size, job: dict | None = None) -> MemoryGrid | None:
    """The :class:`MemoryGrid` of ``study`` at ``size``, or None when its kgrid is refined or a wedge (made only by
    :func:`run`)."""
    if refine_spec(study) is not None or wedge.requested(study.kgrid):
        return None
    return MemoryGrid(study, size, job)


def run(study, size: int, out: str, job: dict | None = None) -> int:
    """Write the kgrid store of ``size`` points per axis to ``out``; returns the chunks written.
    ``job``: the job's inputs from the plan (:func:`qgtflow.plan.job_inputs`; default: from ``study``)."""
    if refine_spec(study) is not None:
        return run_refined(study, size, out, job)
    if wedge.requested(study.kgrid):
        return run_wedge(study, size, out, job)
    grid = study.make_grid(size)
    fp = fingerprint(study, size, job)
    log.info("kgrid %s: %s grid %s, %d points in %d chunks", study.name, grid.kind, grid.sizes, grid.n_points,
             grid.n_chunks)
    if grid.n_chunks == 1:  # the whole grid at once: plain numpy, one atomic write, no Dask graph
        ds = _uniform_dataset(study, grid, {io.FINGERPRINT: fp})
        io.write_dataset(ds, out, encoding=io.kpoint_encoding(ds, grid.chunk_size))
        return 1
    io.write_template(_uniform_template(study, grid, grid.n_points, grid.chunk_size, {io.FINGERPRINT: fp}), out,
                      grid.chunk_size, grid.n_chunks)
    for index in range(grid.n_chunks):
        start, stop = grid.chunk_bounds(index)
        io.write_region(out, start, stop, {"kvec": grid.points(start, stop),
                                           "weight": np.full(stop - start, grid.weight),
                                           **grid_coord_values(grid, start, stop)}, index)
    io.mark_complete(out)
    return grid.n_chunks


def run_wedge(study, size: int, out: str, job: dict | None = None) -> int:
    """``kgrid.symmetry_reduce``: the irreducible points of the uniform grid (one per orbit of the point group of
    the study's ``symmetry`` crystal) with weight m_k w (m_k the orbit's size), the group in the attrs
    (:mod:`qgtflow.wedge`); returns the chunks written."""
    from qgtflow.models.symmetry import irreducible_wedge

    grid = study.make_grid(size)
    ops = wedge.wedge_operations(study)  # 3D lifts for a 2D model with a spin operator
    irreducible, mult = irreducible_wedge(ops, study.model.reciprocal_vectors, grid.sizes)
    n = len(irreducible)
    kg = study.kgrid
    chunk = effective_chunk_size(n, int(kg["chunk_size"]), kg.get("max_chunks"))
    n_chunks = -(-n // chunk)
    log.info("kgrid %s: irreducible wedge of the %s grid %s under %d operations: %d of %d points in %d chunks",
             study.name, grid.kind, grid.sizes, len(ops), n, grid.n_points, n_chunks)
    attrs = {io.FINGERPRINT: fingerprint(study, size, job), "chunk_size": chunk, wedge.N_FULL: grid.n_points,
             **wedge.operation_attrs(ops)}
    io.write_template(_uniform_template(study, grid, n, chunk, attrs), out, chunk, n_chunks)
    for index in range(n_chunks):
        start, stop = index * chunk, min(n, (index + 1) * chunk)
        flat = irreducible[start:stop]
        idx = np.stack(np.unravel_index(flat, grid.sizes), axis=1)
        frac = idx / np.asarray(grid.sizes, float)  # Γ-centred (wedge.check_study)
        io.write_region(out, start, stop, {"kvec": grid.origin + frac @ grid.basis,
                                           "weight": grid.weight * mult[start:stop],
                                           **_coord_values(grid, idx, frac)}, index)
    io.mark_complete(out)
    return n_chunks


REFINE_BLOCK_POINTS = 1 << 20  # bound on refined points generated at once (worst case: every cell flagged)


def _refine_blocks(refiner: Refiner, grid, index: int, count_only: bool):
    """Refine base chunk ``index`` block by block (bounded memory); yields RefineResults in order."""
    start, stop = grid.chunk_bounds(index)
    block = max(1, REFINE_BLOCK_POINTS // refiner.expansion)
    for lo in range(start, stop, block):
        hi = min(stop, lo + block)
        yield refiner.refine(grid.points(lo, hi), grid.weight, count_only=count_only)


class _ChunkEmitter:
    """Cut a stream of refined points into output chunks and write the ones not yet done."""

    def __init__(self, out, chunk: int, total: int, done: np.ndarray):
        self.out, self.chunk, self.total, self.done = out, chunk, total, done
        self.pos = self.buf_start = 0  # next point's global index; global index of the buffer's first point
        self.buf_k, self.buf_w = [], []
        self.written = 0

    def skip(self, n: int) -> None:
        """Advance over ``n`` points without generating them (every chunk they touch is done)."""
        if n:
            self.buf_k, self.buf_w = [], []
            self.pos += n
            self.buf_start = self.pos
            self._flush()

    def feed(self, kvec: np.ndarray, weight: np.ndarray) -> None:
        if len(weight):
            self.buf_k.append(kvec)
            self.buf_w.append(weight)
            self.pos += len(weight)
            self._flush()

    def _flush(self) -> None:
        while self.buf_start < self.total:
            j = self.buf_start // self.chunk
            end = min((j + 1) * self.chunk, self.total)
            if self.pos < end:
                return
            n = end - self.buf_start
            k = np.concatenate(self.buf_k) if self.buf_k else np.zeros((0, 0))
            w = np.concatenate(self.buf_w) if self.buf_w else np.zeros(0)
            if not self.done[j]:
                if self.buf_start != j * self.chunk:  # cannot happen: a skipped range touches only done chunks
                    raise RuntimeError(f"refined kgrid chunk {j} is incomplete in the stream")
                io.write_region(self.out, j * self.chunk, end, {"kvec": k[:n], "weight": w[:n]}, j)
                self.done[j] = True
                self.written += 1
            self.buf_k, self.buf_w = ([k[n:]], [w[n:]]) if n < len(w) else ([], [])
            self.buf_start = end


def run_refined(study, size: int, out: str, job: dict | None = None) -> int:
    """The refined grid of ``kgrid.refine`` (see :mod:`qgtflow.refine`); returns the chunks written.

    Pass 1 counts the refined points of every base chunk (kept in the store's attrs), pass 2
    regenerates them in order and writes whole output chunks; on resume the counts are read back
    and base chunks whose output chunks are all done are not regenerated.
    """
    grid = study.make_grid(size)
    spec = refine_spec(study)
    kT = refine_kT(study)
    refiner = Refiner.for_grid(study.model, grid, spec, study.mu, kT)
    import dask.array as da

    length = study.units.length_unit
    fp = fingerprint(study, size, job)
    if io.can_resume(out, fp) and "refine_chunk_counts" in io.store_attrs(out):
        attrs = io.store_attrs(out)
        done = io.chunks_done(out)
        if attrs.get(io.COMPLETE) and done.all():
            log.info("kgrid %s: refined store %s already complete", study.name, out)
            return 0
        counts = [int(c) for c in attrs["refine_chunk_counts"]]
        chunk, total = int(attrs["chunk_size"]), int(attrs["n_kpoints"])
        log.info("kgrid %s: resuming refined grid, %d of %d chunks done", study.name, int(done.sum()), done.size)
    else:
        counts, flagged = [], np.zeros(spec.levels, np.int64)
        for index in range(grid.n_chunks):  # pass 1: count
            n = 0
            for res in _refine_blocks(refiner, grid, index, count_only=True):
                n += res.n_points
                flagged += res.flagged_per_level
            counts.append(n)
        total = int(sum(counts))
        kg = study.kgrid
        chunk = effective_chunk_size(total, int(kg.get("chunk_size", grid.chunk_size)), kg.get("max_chunks"))
        n_chunks = -(-total // chunk)
        attrs = {**grid.attrs(), "grid_spacing_units": f"{length}-1", io.FINGERPRINT: fp,
                 "n_kpoints": total, "chunk_size": chunk, "n_base_points": grid.n_points,
                 "base_chunk_size": grid.chunk_size, "refine_chunk_counts": counts,
                 "refine_factor": spec.factor, "refine_levels": spec.levels, "refine_window_kT": spec.window_kT,
                 **({"refine_degeneracy": spec.degeneracy} if spec.degeneracy is not None else {}),
                 "refine_kT_min": kT, "n_refined_cells": int(flagged[0]),
                 "n_refined_cells_per_level": [int(f) for f in flagged],
                 "grid_spacing": grid.spacing, "grid_spacing_refined": grid.spacing / spec.factor ** spec.levels}
        log.info("kgrid %s: refined %s grid %s: %d base points, %d cells refined (per level %s) -> %d points in "
                 "%d chunks", study.name, grid.kind, grid.sizes, grid.n_points, int(flagged[0]), flagged.tolist(),
                 total, n_chunks)
        ds = xr.Dataset(
            {"kvec": (("kpoint", "axis"), da.zeros((total, grid.dim), chunks=(chunk, grid.dim)),
                      {"long_name": "crystal momentum", "units": f"{length}-1"}),
             "weight": ("kpoint", da.zeros(total, chunks=chunk),
                        {"long_name": "integration weight, sum = integral d^dk/(2 pi)^d",
                         "units": f"{length}-{grid.dim}"})},
            coords={"axis": ("axis", list(AXES[:grid.dim]))},
            attrs=io.provenance_attrs(study, "kgrid", attrs))
        io.write_template(ds, out, chunk, n_chunks)
        done = np.zeros(n_chunks, bool)
    emitter = _ChunkEmitter(out, chunk, total, done.copy())
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for index in range(grid.n_chunks):  # pass 2: write
        lo, hi = int(offsets[index]), int(offsets[index + 1])
        if hi == lo:
            continue
        if done[lo // chunk:(hi - 1) // chunk + 1].all():
            emitter.skip(hi - lo)
            continue
        for res in _refine_blocks(refiner, grid, index, count_only=False):
            emitter.feed(res.kvec, res.weight)
        if emitter.pos != hi:
            raise RuntimeError(f"refined kgrid: base chunk {index} gave {emitter.pos - lo} points, counted {hi - lo}")
    io.mark_complete(out)
    return emitter.written
