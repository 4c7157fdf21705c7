"""Stage ``reduce``: Fermi-sea / Fermi-surface integrals over all (μ, T) in one pass over k.

Store schema (``responses.zarr``): coords ``mu`` [model energy], ``T`` [K or model energy],
Cartesian dims ``i, j, k`` labelled x/y/z (pseudovector index: z only in 2D), ``variant`` where
used, ``spin`` (x, y, z) and ``quantity`` (spin_density, magnetization_muB) for the 003 spin
responses; one variable per response with attrs units, long_name, formula, form; global attrs
study, model, model_hash, grid_sizes, n_kpoints, grid_spacing, unit_system, provenance.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import xarray as xr
import zarr

from qgtflow import gridsize, io, wedge
from qgtflow.cluster import local_cluster, worker_count
from qgtflow.guards import require_finite
from qgtflow.preflight import sampling_warning
from qgtflow.reduce import kinds
from qgtflow.reduce.kinds import required_fields
from qgtflow.reduce.responses import RESPONSES  # noqa: F401  (the binned formulas, for callers)
from qgtflow.reduce.spectral import accumulate
from qgtflow.stages.tasks import run_tasks

log = logging.getLogger(__name__)

BLOCK = 2048  # k-points per integrand block inside a chunk


def _integrands(fields: dict, terms: list) -> np.ndarray:
    """Concatenate every response's integrand into one (N, nb, n_comp_total) array."""
    parts = []
    for _, term in terms:
        q = term.integrand(fields)
        parts.append(q.reshape(q.shape[0], q.shape[1], -1))
    return np.ascontiguousarray(np.concatenate(parts, axis=2))


def band_masks(band_weight: np.ndarray, band_sector: np.ndarray, resolve: bool) -> np.ndarray:
    """(S, nb) weights: one row (all sectors, weighted) or one row per sector when resolving."""
    if not resolve:
        return band_weight[None, :]
    labels = list(dict.fromkeys(band_sector.tolist()))
    return np.stack([np.where(band_sector == lbl, band_weight, 0.0) for lbl in labels])


def _masked(Q: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Stack the integrand blocks of the output sectors along the component axis (band weights applied)."""
    if masks.shape[0] > 1 or np.any(masks != 1.0):
        return np.ascontiguousarray(np.concatenate([Q * m[None, :, None] for m in masks], axis=2))
    return Q


def _read_points(group, names, index: np.ndarray, gap: int = 4096):
    """Fields at sorted flat ``index`` read as a few contiguous runs (a chunk, its halo, a periodic wrap):
    returns ({name: array (len(run points), ...)}, positions of ``index`` in those arrays)."""
    breaks = np.flatnonzero(np.diff(index) > gap) + 1
    runs = np.split(index, breaks)
    spans = [(int(r[0]), int(r[-1]) + 1) for r in runs]
    offsets = np.cumsum([0] + [b - a for a, b in spans])
    data = {f: np.concatenate([io.read_rows(group, f, a, b) for a, b in spans]) for f in names}
    which = np.searchsorted([a for a, _ in spans], index, side="right") - 1
    pos = offsets[which] + index - np.asarray([a for a, _ in spans])[which]
    return data, pos


def _simplex_chunks(group, chunk_ranges, needed, terms, bins, masks, grid, pairs=None):
    """Tetrahedron integration of a run of chunks: exact moment histograms of the linear interpolant over the
    cells whose base vertex lies in each chunk (the chunk's points plus a halo, read once per chunk).
    ``pairs``: {accumulator key: (accumulator, parameters)} of the pair sums (their ``add_simplices``)."""
    from qgtflow.reduce.simplex_moments import accumulate_simplex_moments, chunk_vertices

    moments = underflow = None
    states = {key: acc.start(params) for key, (acc, params) in (pairs or {}).items()} or None
    if not terms and not states:  # only responses made outside the histograms (model-evaluated, derived)
        return moments, underflow, None
    for start, stop in chunk_ranges:
        all_index = chunk_vertices(grid, start, stop)
        if all_index.size == 0:
            continue
        buffer, all_pos = _read_points(group, needed, all_index)
        require_finite(group.store, 0, {f: a[all_pos] for f, a in buffer.items()}, kpoints=all_index)  # pre-kernel
        for lo in range(start, stop, BLOCK):
            hi = min(stop, lo + BLOCK)
            idx = chunk_vertices(grid, lo, hi)
            if idx.size == 0:
                continue
            pos = all_pos[np.searchsorted(all_index, idx)]
            fields = {f: a[pos] for f, a in buffer.items()}
            for key, (acc, params) in (pairs or {}).items():
                acc.add_simplices(states[key], fields, params, grid, lo, hi, idx)
            if not terms:
                continue
            Q = _masked(_integrands(fields, terms), masks)
            if moments is None:
                moments, underflow = bins.empty(Q.shape[2])
            accumulate_simplex_moments(grid, lo, hi, idx, np.ascontiguousarray(fields["energy"]), Q,
                                       bins.lo, bins.width, moments, underflow)
    return moments, underflow, states


class PointSums:
    """The moment histograms and pair sums of point sampling with the stored weights, fed chunk by chunk in the
    order of the chunks (:meth:`add`); ``needed``: the fields the sums read. ``masks`` (S, nb): band weights per
    output sector; the integrand blocks of the S sectors are stacked along the component axis. ``pair_params``:
    {accumulator key: parameters} of the requested pair sums (:func:`qgtflow.reduce.kinds.accumulators`) or None.
    ``ac``: (photon energies, broadening) of frequency-dependent forms."""

    def __init__(self, names, form, bins, masks, pair_params=None, ac=(None, 0.0)):
        self.terms = [t for calc in kinds.of_kind(names, "binned") for t in calc.terms(form, *ac)]
        self.needed = set(required_fields(names, form, ac[0]))
        self.pairs = {key: (acc, pair_params[key]) for key, (acc, _) in kinds.accumulators(names).items()} \
            if pair_params else {}
        self.bins, self.masks = bins, masks
        self.moments = self.underflow = None
        self.states = {key: acc.start(params) for key, (acc, params) in self.pairs.items()} or None

    def add(self, chunk: dict, weight: np.ndarray) -> None:
        """Accumulate one chunk: {field: (n, ...)} (at least ``needed``) and its weights (n,)."""
        bins = self.bins
        for lo in range(0, len(weight), BLOCK):  # cache-sized blocks keep the integrand temporaries hot
            fields = {f: chunk[f][lo:lo + BLOCK] for f in self.needed}
            for key, (acc, params) in self.pairs.items():
                acc.add(self.states[key], fields, weight[lo:lo + BLOCK], params)
            if not self.terms:
                continue
            Q = _masked(_integrands(fields, self.terms), self.masks)
            if self.moments is None:
                self.moments, self.underflow = bins.empty(Q.shape[2])
            accumulate(np.ascontiguousarray(fields["energy"]), weight[lo:lo + BLOCK], Q, bins.lo, bins.width,
                       self.moments, self.underflow)

    def result(self):
        """(moments, underflow, pair-sum states), as a reduce task returns them."""
        return self.moments, self.underflow, self.states


def _reduce_chunks(geometry_path, chunk_ranges, names, form, bins, masks, pair_params=None, ac=(None, 0.0),
                   grid=None):
    """Worker task: accumulate the moment histograms (and the pair sums) of a run of chunks (:class:`PointSums`;
    ``grid``: the uniform KGrid for tetrahedron integration, None: point sampling with the stored weights)."""
    sums = PointSums(names, form, bins, masks, pair_params, ac)
    group = zarr.open_group(str(geometry_path), mode="r")
    if grid is not None:
        return _simplex_chunks(group, chunk_ranges, sums.needed, sums.terms, bins, masks, grid, sums.pairs)
    for start, stop in chunk_ranges:
        chunk = {f: io.read_rows(group, f, start, stop, geometry_path) for f in sums.needed}  # checksums verified
        weight = io.read_rows(group, "weight", start, stop, geometry_path)
        require_finite(geometry_path, start, {**chunk, "weight": weight})  # before any kernel sees them
        sums.add(chunk, weight)
    return sums.result()


def contract_all(bins, moments, underflow, mu, kT, order: int) -> np.ndarray:
    """spectral.contract for T > 0 and the exact T = 0 read-out (tetrahedron histograms) for T = 0: (μ, T, comp)."""
    from qgtflow.reduce.simplex_moments import read_out

    return read_out(bins, moments, underflow, mu, kT, order)


def response_dataset(study, moments, underflow, bins, geometry_attrs: dict, dim: int, form_requested: str,
                     sectors: list[str] | None = None, pair_sums: tuple | None = None) -> xr.Dataset:
    """Contract the accumulated moments into labelled, unit-carrying response tensors.

    ``sectors``: labels when the integrands were resolved per sector (a leading ``sector`` dim).
    ``pair_sums``: ({accumulator key: state}, {accumulator key: parameters}) of the requested pair sums.
    """
    kT = np.array([study.units.kT(t) for t in study.temperature])
    energy_unit = study.units.energy_unit
    coords = {"mu": ("mu", study.mu, {"long_name": "chemical potential", "units": energy_unit}),
              "T": ("T", study.temperature, {"long_name": "temperature", "units": study.units.temperature_unit})}
    data = {}
    offset = 0
    if moments is None:
        moments, underflow = bins.empty(0)
    n_sectors = len(sectors) if sectors else 1
    per_sector = moments.shape[-1] // n_sectors
    contracted = {}  # one contraction per occupation order, shared by every response using it
    for calc in kinds.of_kind(study.responses, "binned"):
        name = calc.name
        resp = study.response(name)
        form, parts = resp.term_parts(form_requested)
        comp_coords = resp.component_coords(dim)
        extra = dict(resp.extra_dims)
        shape = tuple(len(v) for v in extra.values()) + tuple(len(comp_coords[d]) for d in resp.cart_dims)
        n_comp = int(np.prod(shape))
        values = 0.0
        for term in parts:  # one Term, or several of different occupation orders (summed)
            block = slice(offset, offset + n_comp)
            offset += n_comp
            if term.order not in contracted:
                contracted[term.order] = contract_all(bins, moments, underflow, study.mu, kT, term.order)
            part = np.stack([contracted[term.order][:, :, s * per_sector + block.start:s * per_sector + block.stop]
                             for s in range(n_sectors)])
            values = values + part * resp.prefactor(study.units, _tau(study), term, term.order, dim)
        orders = sorted({term.order for term in parts})
        values = values.reshape((n_sectors, study.mu.size, study.temperature.size) + shape)
        if resp.omega_factor is not None:  # 004: combine the static parts with their ω factors (complex)
            values, extra = _frequency_combined(study, resp, values)
        elif resp.omega_scale is not None and study.omega is not None:  # 000 App. B: one factor of the whole
            values, extra = _frequency_scaled(study, resp, values, extra)
        dims = ("mu", "T") + tuple(extra) + resp.cart_dims
        if extra:  # put extra dims (e.g. variant) first, as in the CATALOG
            values = np.moveaxis(values, [1, 2], [1 + len(extra), 2 + len(extra)])
            dims = tuple(extra) + ("mu", "T") + resp.cart_dims
        if sectors:
            dims = ("sector",) + dims
        else:
            values = values[0]
        data[name] = xr.Variable(dims, values, {
            **resp.unit_attrs(study.units, dim), "long_name": resp.long_name, "formula": resp.formula,
            "form": {(0,): "Fermi sea (f0)", (1,): "Fermi surface (f0')"}.get(
                tuple(orders), "Fermi sea + Fermi surface (f0 and f0' terms)"),
            **({"time_convention": resp.time_convention} if resp.time_convention else {}), **resp.attrs})
        for d, labels in comp_coords.items():
            coords.setdefault(d, (d, labels))
        for d, labels in extra.items():
            coords.setdefault(d, (d, labels, {**_EXTRA_COORD_ATTRS, "omega": {
                "long_name": "photon energy ħω", "units": energy_unit}}.get(d, {})))
    if pair_sums is not None:
        added = kinds.pair_sum_variables(study, *pair_sums, sectors)
        data.update(added)
        for d, c in kinds.coords_for(added, study).items():
            coords.setdefault(d, c)
    if sectors:
        coords["sector"] = ("sector", list(sectors), {"long_name": "model sector (valley / block), weighted"})
    grid_attrs = {k: v for k, v in geometry_attrs.items()
                  if k.startswith("grid_") or k in ("n_kpoints", "degeneracy_threshold")}
    attrs = io.provenance_attrs(study, "reduce", {
        **grid_attrs, "fermi_form": form_requested, **({"tau": study.tau} if np.isfinite(study.tau) else {}),
        **({"tau_source": study.tau_source} if study.tau_source else {}),
        "energy_bin_width": bins.width, "energy_bin_moments": bins.n_moments})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _frequency_combined(study, resp, values):
    """(S, μ, T, parts, *cart) static integrals → (S, μ, T, ω, complex_part, *cart) with resp.omega_factor(ωτ)."""
    from qgtflow.reduce.responses import COMPLEX_PARTS

    wt = np.asarray(study.omega, float) * study.units.tau_model(study.tau)
    factor = np.asarray(resp.omega_factor(wt), complex)  # (W, parts)
    combined = np.einsum("wp,smtp...->smtw...", factor, values)
    return np.stack([combined.real, combined.imag], axis=4), {"omega": list(study.omega), "complex_part": COMPLEX_PARTS}


def _frequency_scaled(study, resp, values, extra: dict):
    """(S, μ, T, *extra, *cart) static values → (S, μ, T, ω, complex_part, *extra, *cart) times resp.omega_scale(ωτ)."""
    from qgtflow.reduce.responses import COMPLEX_PARTS

    wt = np.asarray(study.omega, float) * study.units.tau_model(study.tau)
    factor = np.asarray(resp.omega_scale(wt), complex)  # (W,)
    scaled = np.einsum("w,smt...->smtw...", factor, values)
    return (np.stack([scaled.real, scaled.imag], axis=4),
            {"omega": list(study.omega), "complex_part": COMPLEX_PARTS, **extra})


_EXTRA_COORD_ATTRS = {"phase": {"long_name": "time dependence of the response to E(t) = E cos ωt (003 Eq. 7–8)"}}


def _born_tau(study, shells):
    """``impurities.born_tau``: τ of every τ-dependent response := the symmetric Born transport time (s, or
    ħ/energy in natural units) of the study's impurities at its first μ and T, on the study's grid (from the
    shells store). Returns the study with that τ (the study itself without ``born_tau``)."""
    imp = study.config.get("impurities") or {}
    if not imp.get("born_tau"):
        return study
    tau = float(shells["born_transport_time"].values)
    log.info("reduce %s: tau = Born transport time %.4g (%s)", study.name, tau,
             "hbar/energy" if study.units.natural else "s")
    return study.with_tau(tau, "Born transport time of the impurities (first mu, T)")


def _after_pass(study, ds: xr.Dataset, shells) -> xr.Dataset:
    """Add the model-evaluated responses (from the shells store) and then the derived ones (from the responses in
    ``ds``), with the coordinates of their dims."""
    added = {}
    model_kind = kinds.of_kind(study.responses, "model")
    if model_kind:
        for calc in model_kind:
            log.info("reduce %s: %s from the shells store", study.name, calc.name)
            added[calc.name] = calc.compute(study, shells)
        ds = ds.assign(added)
    groups: dict = {}  # derived responses sharing one compute are made in one call
    for calc in kinds.of_kind(study.responses, "derived"):
        groups.setdefault(calc.compute, []).append(calc.name)
    for compute, names in groups.items():
        made = compute(study, ds, names)
        ds = ds.assign(made)
        added.update(made)
    if added:
        ds = ds.assign_coords({k: v for k, v in kinds.coords_for(added, study).items() if k not in ds.coords})
    return ds


def _tau(study) -> float:
    return study.units.tau_model(study.tau) if study.units.natural else study.tau


def _window_cut(study, job: dict):
    """(μ, T) flags where the study's k·p window cuts a Fermi surface (the plan's ``window_cut``, from the model:
    :func:`qgtflow.convergence.window_cut`); None for periodic zones."""
    if job.get("window_cut") is None:
        return None
    cut = np.asarray(job["window_cut"], bool)
    mu = study.mu
    if cut.any():
        log.warning("study %s: the k.p window cuts a Fermi surface at mu = %s: those entries cannot converge",
                    study.name, sorted({float(m) for m in np.asarray(mu)[cut.any(axis=1)]}))
    return cut


def run(study, geometry_store: str, out: str | None = None, n_workers: int | None = None, client=None,
        job: dict | None = None, shells_store: str | None = None) -> xr.Dataset:
    """Reduce ``geometry_store`` (and ``shells_store`` for a study with a shells job) into the study's
    responses; writes ``out`` when given.

    ``job``: the job's inputs from the plan (:func:`qgtflow.plan.job_inputs`: the upstream stores'
    expected fingerprints, this store's); default: derived from ``study``. A store of other inputs is refused."""
    from qgtflow.plan import check_store, grid_chain

    if job is None:
        job = grid_chain(study, gridsize.from_axes(io.store_attrs(geometry_store)["grid_sizes"]))["reduce"]
    geo = check_store(geometry_store, job["upstream"]["geometry"])
    shells = None
    if "shells" in job["upstream"]:
        if shells_store is None:
            from qgtflow.errors import StoreError

            raise StoreError(f"reduce {study.name}: the plan has a shells store for this study; none was given")
        shells = check_store(shells_store, job["upstream"]["shells"])
    sampling = sampling_warning(study, geo)  # k_BT below the grid's energy step: warned and kept in the attrs
    form = study.fermi_form
    bins = study.energy_bins()
    study = _born_tau(study, shells)
    n_k, chunk = geo.sizes["kpoint"], int(geo.attrs["chunk_size"])
    ranges = [(s, min(n_k, s + chunk)) for s in range(0, n_k, chunk)]
    # one task per worker: each returns a full moment histogram, the costly thing to ship
    if client is not None:
        workers = len(client.scheduler_info()["workers"])
    else:
        workers = 1 if n_workers == 0 else worker_count(n_workers)
    n_tasks = max(1, min(len(ranges), workers))
    groups = [ranges[i::n_tasks] for i in range(n_tasks)]
    log.info("reduce %s: %d k-points, %d responses (%s form), %d mu x %d T, %d energy bins of %.3g", study.name,
             n_k, len(study.responses), form, study.mu.size, study.temperature.size, bins.n_bins, bins.width)
    missing = [f for f in required_fields(study.responses, form, study.omega) if f not in geo]
    if missing:
        from qgtflow.errors import StoreError

        raise StoreError(f"geometry store {geometry_store} lacks fields {missing}")
    band_weight = geo["band_weight"].values if "band_weight" in geo.coords else np.ones(geo.sizes["band"])
    band_sector = geo["band_sector"].values.astype(str) if "band_sector" in geo.coords else \
        np.array(["all"] * geo.sizes["band"])
    masks, sectors, pair_params = reduce_setup(study, band_weight, band_sector, geo.sizes["axis"], bins)
    ac = (study.omega, study.broadening)
    grid = None
    if study.integration == "tetrahedron":
        from qgtflow.kgrid import grid_from_attrs

        grid = grid_from_attrs(geo.attrs)
        log.info("reduce %s: linear-tetrahedron integration on the %s grid", study.name, list(grid.sizes))
    args = [(os.fspath(geometry_store), g, study.responses, form, bins, masks, pair_params, ac, grid)
            for g in groups if g]
    total = (None, None, None)

    def consume(results):
        nonlocal total
        for part in results:
            total = merge_sums(total, part, study.responses)

    if client is None and n_workers != 0:
        with local_cluster(n_workers) as own:
            consume(run_tasks(_reduce_chunks, args, own, label=f"reduce {study.name}"))
    else:
        consume(run_tasks(_reduce_chunks, args, client, label=f"reduce {study.name}"))
    return finish(study, total, pair_params, bins, dict(geo.attrs), geo.sizes["axis"], sectors,
                  shells, job, sampling, out)


def merge_sums(total, part, names):
    """Two tasks' (moments, underflow, pair-sum states) of the responses ``names`` added (``total`` updated in place
    where it has arrays; either may be (None, None, None): nothing accumulated)."""
    total_m, total_u, total_d = total
    m, u, d = part
    if m is not None:
        if total_m is None:
            total_m, total_u = m, u
        else:
            total_m += m
            total_u += u
    if d is not None:
        total_d = d if total_d is None else {k: kinds.accumulators(names)[k][0].merge(total_d[k], v)
                                              for k, v in d.items()}
    return total_m, total_u, total_d


def reduce_setup(study, band_weight, band_sector, dim: int, bins):
    """(masks, sectors, pair_params) of a reduce: the band weights per output sector (:func:`band_masks`), the
    sector labels when resolving them (else None) and the parameters of the requested pair sums (None without)."""
    resolve = bool(study.config.get("resolve_sectors"))
    masks = band_masks(band_weight, band_sector, resolve)
    sectors = list(dict.fromkeys(band_sector.tolist())) if resolve else None
    pair_params = None
    accumulators = kinds.accumulators(study.responses)
    if accumulators:  # pair sums: their parameters, shipped to the workers
        ctx = {"mu": study.mu, "kT": study.kT, "omega": study.omega, "eta": study.broadening,
               "band_weight": band_weight, "band_sector": band_sector, "dim": dim, "bins": bins,
               "tetrahedron": study.integration == "tetrahedron"}
        pair_params = {key: acc.prepare(ctx) for key, (acc, _) in accumulators.items()}
    return masks, sectors, pair_params


def finish(study, sums, pair_params, bins, geometry_attrs: dict, dim: int, sectors, shells, job: dict,
           sampling: str | None, out=None) -> xr.Dataset:
    """The responses dataset of the accumulated ``sums`` (moments, underflow, pair-sum states): contracted,
    symmetrised over a wedge's group, the model-evaluated and derived responses added, fingerprint, window cut
    and sampling warning in the attrs; written to ``out`` when given."""
    total_m, total_u, total_d = sums
    pair_sums = None if pair_params is None else (total_d, pair_params)
    ds = response_dataset(study, total_m, total_u, bins, geometry_attrs, dim, study.fermi_form, sectors, pair_sums)
    operations = wedge.stored_operations(geometry_attrs)
    if operations is not None:  # an irreducible wedge (kgrid.symmetry_reduce): P Σ_IBZ m_k F = Σ_BZ F
        ds = wedge.symmetrise(ds, operations, dim)
    ds = _after_pass(study, ds, shells)
    ds.attrs[io.FINGERPRINT] = job["fingerprint"]
    cut = _window_cut(study, job)
    if cut is not None:  # read by the convergence stage: those (mu, T) entries are not converged
        ds.attrs["window_cut"] = cut.astype(int).tolist()
    if sampling:
        ds.attrs["sampling_warning"] = sampling
    if out is not None:
        io.write_dataset(ds, out)
    return ds
