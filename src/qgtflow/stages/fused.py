"""Geometry and reduce in one pass over the k-chunks, without a geometry store (``evaluate`` in this process with
no ``workdir``: the store would be written to a scratch directory, read once by reduce and deleted).

Each chunk of the k-points is read from the kgrid store or, for a plain uniform grid, made in memory without one
(:class:`qgtflow.stages.kgrid_stage.MemoryGrid`: the same values), its fields computed
(:func:`qgtflow.stages.geometry_stage.points_fields`: the same fields, the same finite checks) and added to the
reduce's sums (:class:`qgtflow.stages.reduce_stage.PointSums`) while in cache, chunk by chunk in the order the
reduce stage reads them in one task: the responses are bitwise those of the two stages through the store. What
the stages derive from the whole store is gathered on the way: the near-degeneracy count (geometry's warning)
and the energy/velocity sample of the sampling check (:func:`qgtflow.preflight.sampling_rows`). Point sampling
only (tetrahedron integration reads halos across chunks: it goes through the store).

With a Dask ``client`` (``evaluate`` with ``n_workers`` > 0; without, it runs in process at any size) the chunks are dealt round-robin to one task per worker; each task runs the same pass over its
chunks (:func:`_pass`) and returns only its partial sums, counts and samples, merged here: no store is written
either, and the responses equal the in-process pass's to rounding (the partial histograms are added in another
order; not bitwise).
"""

from __future__ import annotations

import logging

import numpy as np

from qgtflow import io
from qgtflow.errors import StoreError
from qgtflow.geometry import fermi_window
from qgtflow.geometry.fields import OPTIONAL_FIELDS, near_degeneracy_warning, near_degenerate_count
from qgtflow.guards import require_finite
from qgtflow.preflight import sample_step, sampling_message, sampling_rows
from qgtflow.reduce.kinds import required_fields
from qgtflow.stages import geometry_stage, reduce_stage

log = logging.getLogger(__name__)


def applies(study) -> bool:
    """Whether ``study`` can be evaluated in one pass (point sampling)."""
    return study.integration != "tetrahedron"


class _StoredGrid:
    """A kgrid store read chunk by chunk (the interface of :class:`qgtflow.stages.kgrid_stage.MemoryGrid`)."""

    def __init__(self, path, fingerprint: str):
        self.name, self.group = path, io.open_group(path, fingerprint)
        self.attrs = dict(self.group.attrs)
        self.n_points, self.dim = self.group["kvec"].shape  # (a wedge's n_kpoints attr: the full grid's count)

    def rows(self, start: int, stop: int) -> dict:
        return geometry_stage.read_points(self.group, self.name, start, stop)


def _pass(model, source, ranges, attrs, threshold, optional, names, window, sums_args, rows):
    """The fields of the chunks ``ranges`` [(start, stop)] of ``source`` (a grid with ``rows``, or the (path,
    fingerprint) of a kgrid store, opened here: a worker task) reduced chunk by chunk in that order: (the sums of
    :class:`qgtflow.stages.reduce_stage.PointSums` (``sums_args``), near-degenerate count, k-points inside the
    Fermi window, [(start, energy, velocity)] at the sampling ``rows`` of those chunks)."""
    if isinstance(source, tuple):
        source = _StoredGrid(*source)
    sums = reduce_stage.PointSums(*sums_args)
    samples = []
    near, inside = 0, 0
    for start, stop in ranges:
        points = source.rows(start, stop)
        fields = geometry_stage.points_fields(model, points, attrs, start, threshold, optional, names, window)
        near += int(near_degenerate_count(fields["energy"], threshold, model.band_sector))
        mine = rows[(rows >= start) & (rows < stop)] - start
        if window is not None:
            flag = np.asarray(points[fermi_window.FLAG], bool)
            inside += int(flag.sum())
            mine = mine[flag[mine]]
        if mine.size:  # copies: the kernel's buffers are reused by the next chunk
            samples.append((start, fields["energy"][mine], fields["velocity"][mine]))
        require_finite(source.name, start, {"weight": points["weight"]})  # the fields were checked by chunk_fields
        sums.add(fields, points["weight"])
    return sums.result(), near, inside, samples


def run(study, reduce_study, kgrid, geometry_job: dict, reduce_job: dict, out=None, shells_store=None, client=None):
    """The responses of ``reduce_study`` (the reduce stage's study, :func:`qgtflow.plan.stage_study`) from the
    k-points of ``kgrid`` (the kgrid store's path, or a :class:`qgtflow.stages.kgrid_stage.MemoryGrid` never
    written), the fields of ``study`` (with its model) computed chunk by chunk and never stored; ``out`` written
    when given. ``geometry_job`` / ``reduce_job``: the plan's inputs of the two stages. ``client``: a Dask client
    whose workers run the chunks (one task per worker, each returning its partial sums); None: this process."""
    from qgtflow.plan import check_store
    from qgtflow.stages.tasks import run_tasks

    in_memory = hasattr(kgrid, "rows")
    source = kgrid if in_memory else _StoredGrid(kgrid, geometry_job["upstream"]["kgrid"])
    attrs = source.attrs
    n_k, chunk, dim = int(source.n_points), int(attrs["chunk_size"]), int(source.dim)
    names, window = list(geometry_job["fields"]), geometry_job.get("fermi_window")
    model, threshold = study.model, study.degeneracy_threshold
    optional = tuple(f for f in names if f in OPTIONAL_FIELDS)
    form = reduce_study.fermi_form
    missing = [f for f in required_fields(reduce_study.responses, form, reduce_study.omega) if f not in names]
    if missing:
        raise StoreError(f"reduce {reduce_study.name}: the geometry job computes no {missing}")
    shells = None
    if "shells" in reduce_job["upstream"]:
        if shells_store is None:
            raise StoreError(f"reduce {reduce_study.name}: the plan has a shells store for this study; none was given")
        shells = check_store(shells_store, reduce_job["upstream"]["shells"])
    # the geometry store's attrs the reduce reads (grid, wedge group, threshold), as geometry_stage._template
    geometry_attrs = {k: v for k, v in attrs.items() if k.startswith("grid_") or k in ("n_kpoints", "chunk_size")}
    geometry_attrs["degeneracy_threshold"] = threshold
    bins = reduce_study.energy_bins()
    reduce_study = reduce_stage._born_tau(reduce_study, shells)
    band_weight = model.band_weight.astype(float)
    band_sector = model.band_sector.astype(str)
    masks, sectors, pair_params = reduce_stage.reduce_setup(reduce_study, band_weight, band_sector, dim, bins)
    sums_args = (reduce_study.responses, form, bins, masks, pair_params,
                 (reduce_study.omega, reduce_study.broadening))
    ranges = [(start, min(n_k, start + chunk)) for start in range(0, n_k, chunk)]
    n_tasks = 1 if client is None else max(1, min(len(ranges), len(client.scheduler_info()["workers"])))
    log.info("evaluate %s: geometry and reduce in one pass, %d k-points in %d chunks (%d bands, dim %d), %d mu x "
             "%d T; no geometry store%s", study.name, n_k, len(ranges), model.nbands, model.dim,
             reduce_study.mu.size, reduce_study.temperature.size,
             "" if client is None else f"; {n_tasks} tasks on the Dask workers")
    check_sampling = "velocity" in names and "grid_spacing" in attrs
    rows = sampling_rows(n_k, chunk) if check_sampling else np.zeros(0, int)
    common = (attrs, threshold, optional, names, window, sums_args, rows)
    if client is None:
        parts = [_pass(model, source, ranges, *common)]
    else:  # chunks dealt round-robin (a Fermi window's work is uneven along the grid); a stored grid reopened there
        shipped = source if in_memory else (source.name, geometry_job["upstream"]["kgrid"])
        args = [(model, shipped, ranges[i::n_tasks], *common) for i in range(n_tasks)]
        parts = list(run_tasks(_pass, args, client, label=f"evaluate {study.name}"))
    sums, near, inside, samples = parts[0]
    for part_sums, part_near, part_inside, part_samples in parts[1:]:
        sums = reduce_stage.merge_sums(sums, part_sums, reduce_study.responses)
        near, inside, samples = near + part_near, inside + part_inside, samples + part_samples
    message = near_degeneracy_warning(near / n_k if n_k else 0.0, threshold, f"geometry {study.name}")
    if message:
        log.warning(message)
    if window is not None:
        log.info("geometry %s: fields at %d of %d k-points (the rest cannot reach the Fermi window %s)", study.name,
                 inside, n_k, window["energy"])
    sampling = None
    if check_sampling and reduce_study.integration == "points" and samples:
        samples.sort(key=lambda s: s[0])  # the chunks' order, whichever task computed them
        step = sample_step(reduce_study, attrs, np.concatenate([s[1] for s in samples]),
                           np.concatenate([s[2] for s in samples]))
        sampling = sampling_message(reduce_study, step)
    return reduce_stage.finish(reduce_study, sums, pair_params, bins, geometry_attrs, dim, sectors, shells,
                               reduce_job, sampling, out)
