"""Fermi-surface-only studies: geometry fields only at the k-points whose states can reach the Fermi window.

The reduce stage bins a state into its energy histogram only when its energy lies in [lo, lo + n_bins·width)
(``reduce/spectral.py`` :class:`EnergyBins`: lo = μ_min − m, m = max(40 k_BT_max, 8 bin widths), where f0' < e^-40;
the top is below μ_max + m + width ≤ μ_max + 9m/8, which bounds it without the bin width, so that adding a lower T
moves nothing); a state outside goes to the underflow, which only the Fermi-sea order f0 reads. The window
[E_lo, E_hi] = [μ_min − m, μ_max + 9m/8] covers the histogram.
So when every requested response reads the geometry only through Fermi-surface terms (occupation order ≥ 1), a
state outside the window contributes exactly nothing, and its fields need not be computed:

* point sampling: a k-point is needed when one of its bands lies in the window;
* linear tetrahedra: when a band's range over some cell containing the k-point meets the window (the cells of a
  k-point lie in its 3^d neighbourhood, whose per-band range is checked).

Elsewhere only the band energies are computed (exact, cheaper than the fields); every other field is stored as 0
and the per-k flag ``in_fermi_window`` says which. The window is a plan value derived from μ, T and the energy
binning (:func:`energy_window`), so an edit of μ or T reruns the geometry only when it moves the window.
"""

from __future__ import annotations

import itertools

import numpy as np

from qgtflow.geometry.fields import FIELD_SPECS

FLAG = "in_fermi_window"
FLAG_ATTRS = {"long_name": "1 where the geometry fields were computed (a state can reach the Fermi window), 0 where "
                           "only the band energies were (every other field stored as 0)",
              "units": "1",
              "formula": "point sampling: some ε_n(k) in [E_lo, E_hi]; tetrahedra: some band's range over the 3^d "
                         "neighbourhood of k meets it; [E_lo, E_hi] = the reduce stage's energy histogram "
                         "(attr fermi_window)"}
# A chunk goes through the window only when a cheap sample (every SAMPLE_STRIDE-th point) finds at least this
# fraction of it skippable, by kernel level (fields.FIELD_LEVEL): below, the energies of every point, the window
# test and the scatter into zero-filled arrays cost more than the fields they spare. Break-even measured with
# benchmarks/bench_fermi_window.py (2026-12-06, one thread, loaded 2-core VM): tight-binding Fe-like (6 bands)
# ~45 % / ~33 % / ~12 % at levels 1 / 2 / 3; with the Wannier position operator the fields cost 3-4x more and
# it drops to ~10-15 % / ~10 % / < 7 % (GaAs, 16 bands, real _tb.dat).
SAMPLE_STRIDE = 32
MIN_SKIPPABLE = {1: 0.45, 2: 0.35, 3: 0.12}
MIN_SKIPPABLE_POSITION = {1: 0.15, 2: 0.12, 3: 0.05}
ROUNDING = 1e-10  # relative pad of the window test: energies here (eigvalsh) and in the kernel differ by rounding


def surface_only(study) -> bool:
    """Whether every requested response reads the geometry only through Fermi-surface terms (order ≥ 1) in the
    study's form; pair sums (every occupied pair) and any Fermi-sea term need every state."""
    from qgtflow.reduce.kinds import get

    calcs = [get(name) for name in study.responses]
    binned = [c for c in calcs if c.kind == "binned"]
    if not binned or any(c.kind == "pair_sum" for c in calcs):
        return False
    return all(term.order >= 1 for c in binned
               for _, term in c.terms(study.fermi_form, study.omega, study.broadening))


def energy_window(study) -> dict | None:
    """The plan's ``fermi_window`` of the geometry stage: {"energy": [E_lo, E_hi] (model energy units, the reduce
    stage's histogram range), "cells": tetrahedron integration}; None when the study needs every state."""
    if not surface_only(study):
        return None
    bins = study.energy_bins()
    lo, top = float(np.min(study.mu)), float(np.max(study.mu))
    margin = lo - bins.lo  # max(40 k_BT_max, 8 × bin width): the bins' top lo + n·width < top + margin + width
    return {"energy": [bins.lo, top + margin * (1.0 + 1.0 / 8.0)], "cells": study.integration == "tetrahedron"}


def band_energies(model, k: np.ndarray) -> np.ndarray:
    """ε_n(k) (N, n_bands) in the geometry kernel's band order (sector by sector, ascending in each)."""
    sectors = getattr(model, "sectors", None)
    if sectors:
        return np.concatenate([band_energies(m, k) for m in sectors], axis=1)
    H = model.unique_derivatives(k, order=0)[:, 0]
    if H.shape[-1] == 2:  # closed form (a + d)/2 ∓ √(((a − d)/2)² + |b|²): 4× batched LAPACK on 2×2
        a, d = H[:, 0, 0].real, H[:, 1, 1].real
        half = np.hypot(0.5 * (a - d), np.abs(H[:, 1, 0]))
        return np.stack([0.5 * (a + d) - half, 0.5 * (a + d) + half], axis=1)
    return np.linalg.eigvalsh(H)


def _padded(window, energy: np.ndarray, threshold: float, nb: int) -> tuple[float, float]:
    """The window widened by rounding and by the kernel's degenerate-group energy averaging (≤ n·threshold)."""
    lo, hi = window
    scale = max(1.0, abs(lo), abs(hi), float(np.abs(energy).max()) if energy.size else 0.0)
    pad = ROUNDING * scale + nb * threshold
    return lo - pad, hi + pad


def needed_points(energy: np.ndarray, window, threshold: float) -> np.ndarray:
    """(N,) bool: some band of the k-point lies in the (padded) window."""
    lo, hi = _padded(window, energy, threshold, energy.shape[1])
    return ((energy >= lo) & (energy <= hi)).any(axis=1)


def neighbourhood(grid, start: int, stop: int) -> np.ndarray:
    """(stop − start, 3^d) flat indices of each point's neighbours k + {−1, 0, 1}^d (wrapped on periodic grids,
    clipped to the box on windows): every cell containing the point lies in it."""
    idx = grid.indices(start, stop)
    mode = "wrap" if grid.kind == "periodic" else "clip"
    out = [np.ravel_multi_index(tuple((idx + np.asarray(step)).T), grid.sizes, mode=mode)
           for step in itertools.product((-1, 0, 1), repeat=grid.dim)]
    return np.stack(out, axis=1)


def needed_cells(model, grid, start: int, stop: int, window, threshold: float) -> np.ndarray:
    """(stop − start,) bool: some band's range over the point's 3^d neighbourhood meets the (padded) window —
    true for every vertex of every cell whose linear interpolant reaches the window."""
    near = neighbourhood(grid, start, stop)
    flat, inverse = np.unique(near, return_inverse=True)
    energy = band_energies(model, grid.points_at(flat))[inverse.reshape(near.shape)]  # (N, 3^d, nb)
    lo, hi = _padded(window, energy, threshold, energy.shape[-1])
    return ((energy.min(axis=1) <= hi) & (energy.max(axis=1) >= lo)).any(axis=1)


def _field_shape(name: str, n: int, nb: int, dim: int) -> tuple[int, ...]:
    sizes = {"band": nb, "band_m": nb, "i": dim, "j": dim, "k": dim, "l": dim, "spin": 3}
    return (n,) + tuple(sizes[d] for d in FIELD_SPECS[name].dims)


def field_level(names) -> int:
    """The geometry kernel level the fields ``names`` need (``fields.FIELD_LEVEL``; optional fields: 3)."""
    from qgtflow.geometry.fields import FIELD_LEVEL

    return 3 if names is None else max((FIELD_LEVEL.get(name, 3) for name in names), default=1)


def worth_skipping(model, k: np.ndarray, window, threshold: float, min_skippable: float) -> bool:
    """Whether the chunk ``k`` has at least ``min_skippable`` of its points outside the (padded) window, estimated
    on every :data:`SAMPLE_STRIDE`-th point by the point test (for tetrahedra an upper bound: a cell needs more)."""
    sample = k[::SAMPLE_STRIDE]
    skippable = 1.0 - float(needed_points(band_energies(model, sample), window, threshold).mean())
    return skippable >= min_skippable


def fields_in_window(model, k: np.ndarray, window: dict, compute, names, threshold: float, grid=None,
                     start: int = 0) -> tuple[dict, np.ndarray]:
    """({name: (N, …)}, flag (N,) int8): ``compute(k_subset) -> {name: array}`` at the needed k-points only,
    band energies at the others, every other field 0 there. ``grid``, ``start``: the uniform grid and the flat
    index of k[0] (tetrahedron windows, ``window["cells"]``).

    When a sample of the chunk says too little is skippable (:func:`worth_skipping`, below
    :data:`MIN_SKIPPABLE` (:data:`MIN_SKIPPABLE_POSITION` with the Wannier position operator) of the kernel level,
    or ``window["min_skippable"]`` if given), the window test and the
    scatter would cost more than they save: every field is computed at every point (flag 1 throughout). The
    responses are the same either way (states outside the window contribute nothing)."""
    min_skippable = window.get("min_skippable")
    if min_skippable is None:
        from qgtflow.geometry.position import position_operator_on

        table = MIN_SKIPPABLE_POSITION if position_operator_on(model) else MIN_SKIPPABLE
        min_skippable = table[field_level(names)]
    if not worth_skipping(model, k, window["energy"], threshold, min_skippable):
        return compute(k), np.ones(k.shape[0], np.int8)
    energy = band_energies(model, k)
    if window.get("cells"):
        need = needed_cells(model, grid, start, start + k.shape[0], window["energy"], threshold)
    else:
        need = needed_points(energy, window["energy"], threshold)
    if need.all():  # nothing to skip: the fields as computed, no copy
        return compute(k), need.astype(np.int8)
    nb, dim = energy.shape[1], k.shape[1]
    out = {name: np.zeros(_field_shape(name, k.shape[0], nb, dim)) for name in names}
    if "energy" in out:
        out["energy"][:] = energy
    if need.any():
        part = compute(np.ascontiguousarray(k[need]))
        for name in names:
            out[name][need] = part[name]
    return out, need.astype(np.int8)
