"""Adaptive refinement of a uniform k-grid near the Fermi surfaces of the requested μ.

Why. The reduce stage samples f0(ε) and f0'(ε) at points (``reduce/spectral.py``). Where |v|·h ≫ k_BT
a Fermi shell of width ~k_BT/|v| falls between grid points and the result turns to noise; a uniform
grid fine enough for low T wastes almost all its points far from the Fermi surface, where the
integrand is smooth (Fermi sea) or exponentially small (Fermi surface).

What (study key ``kgrid.refine: {factor: r, window_kT: w, levels: 1|2, degeneracy: δ}``). The base
grid of N points per axis is the uniform grid of :mod:`qgtflow.kgrid`; every base point k owns the
cell k + Σ_a t_a s_a, t_a ∈ [−½, ½), s_a = basis_a / N_a (a k·p window's cells tile the window, a
periodic zone's tile the zone). A cell is *flagged* when

* some band n has |ε_n(k) − μ| ≤ w·k_BT_min + s_n(k) for some requested μ (all μ of the study,
  k_BT_min of the lowest T: the narrowest Fermi window sets the resolution needed), where
  s_n(k) = ½ Σ_a max_± |ε_n(k ± s_a) − ε_n(k)| estimates the spread of ε_n over the cell from the
  2d neighbours (exact for a linear band, ≥ the exact spread to second order: conservative at band
  extrema; band energies from ``np.linalg.eigvalsh`` of ``model.unique_derivatives(k)[:, 0]``,
  sector by sector for a :class:`~qgtflow.models.sectors.SectorModel`, sorted within each sector);
* or, when ``degeneracy`` δ is given, two adjacent bands of one sector come within δ anywhere in
  the cell: ε_{n+1} − ε_n − s_n − s_{n+1} ≤ δ (geometry hot spots where 1/(ε_n − ε_m) peaks).

A flagged cell's point is replaced by the r^d cell-centred points of its sub-grid (k + Σ_a
((j_a + ½)/r − ½) s_a, j_a = 0..r−1), each of weight w_base / r^d; unflagged points keep w_base.
With ``levels: 2`` each new sub-cell (steps s_a / r) is judged by the same criterion and, if
flagged, replaced by its own r^d sub-points (weight w_base / r^{2d}). Σ weight is unchanged exactly
(up to rounding), sub-points stay inside their parent cell and never coincide with another point.

Which h. Convergence studies extrapolate in the grid spacing h. A refined grid reports the *base*
spacing ``grid_spacing`` = h (and ``grid_spacing_refined`` = h / r^levels as information). Reason:
the refinement rule is fixed (r, levels, w), so every length of the refined grid is a fixed
multiple of h — halving h halves the refined spacing too. The error is then C_shell (h/r^L)^p
(Fermi-window cells) + C_rest h^q (unflagged cells: a Fermi-surface integrand is ≤ e^{−w} there,
a Fermi-sea integrand is smooth there), and Richardson extrapolation only uses spacing *ratios*,
which are the same in h and h/r^L: the extrapolated value and error bar do not depend on the
choice, while h keeps sizes of refined and uniform runs comparable (the refined regions simply
converge faster, by r^{L p}). Honest caveats: (i) the flagged set is re-decided for every N, so its
boundary moves by whole cells between grid densities; in cells just outside it the neglected
f0' weight is ~e^{−w} relative, which bounds the resulting non-smooth error (w = 12: ~6e-6);
(ii) once the refined spacing resolves k_BT (|v| h / r^L ≲ k_BT) point sampling of f0' converges
faster than any power (trapezoid rule on a smooth function), so the *observed* order of a refined
Fermi-surface study is typically high and erratic — it is reported, not assumed; in the
unresolved regime (|v| h / r^L ≫ k_BT) errors are noise-like for refined and uniform grids alike.
(iii) Fermi-sea integrands (f0, the default on periodic zones) do change order: each cell is a
midpoint rule, and a uniform grid's O(h²) midpoint errors cancel over a periodic zone (spectral
convergence of smooth parts), but cells of two resolutions leave
(1 − r^{−2}) h²/24 ∮ ∇F·n dS/(2π)^d over the inner boundary of the refined region (inside the Fermi
sea, where F f0 ≈ F is smooth but not flat). A refined sea-form study therefore converges with
observed order ≈ 2 in h, which Richardson extrapolation in the base h removes (measured, Haldane
σ_xy with μ in the gap, k_BT = 0.01, r = 4: finest refined grid off by 1.4e-3 relative, observed order
1.5–2, extrapolated value within its error bar of the spectrally converged uniform one; see
``tests/test_refine.py``). Refine sea-form studies only where the uniform grid is noise-limited
(k_BT below |v| h); where it already converges spectrally, refinement buys nothing.

This module is pure numpy (no zarr): :func:`parse_refine`, :func:`band_energies`,
:func:`cell_spread`, :func:`flag_cells`, :func:`subdivide`, and :class:`Refiner`, which applies the
rule to blocks of base points; ``stages/kgrid_stage.py`` streams its output into the kgrid store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from qgtflow.errors import ConfigError
from qgtflow.models.sectors import sector_blocks

DEFAULTS = {"factor": 4, "window_kT": 12.0, "levels": 1}
MAX_LEVELS = 2
ENERGY_BLOCK_ENTRIES = 1 << 21  # complex entries of unique_derivatives per energy block (~32 MB)


@dataclass(frozen=True)
class RefineSpec:
    """Validated ``kgrid.refine`` settings."""

    factor: int = 4
    window_kT: float = 12.0
    levels: int = 1
    degeneracy: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def parse_refine(cfg, key: str = "kgrid.refine") -> RefineSpec | None:
    """``kgrid.refine`` (a mapping, or None/absent for a uniform grid) → :class:`RefineSpec`.

    Every problem raises :class:`ConfigError` naming the key (``kgrid.refine.factor`` …).
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise ConfigError(key, cfg, "a mapping {factor, window_kT, levels, degeneracy} (or no key for a uniform grid)")
    unknown = sorted(set(cfg) - {"factor", "window_kT", "levels", "degeneracy"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", cfg[unknown[0]],
                          "one of the known keys ['degeneracy', 'factor', 'levels', 'window_kT']")
    factor = cfg.get("factor", DEFAULTS["factor"])
    if not isinstance(factor, (int, np.integer)) or isinstance(factor, bool) or factor < 2:
        raise ConfigError(f"{key}.factor", factor, "an integer >= 2 (sub-points per axis of a refined cell)")
    window = cfg.get("window_kT", DEFAULTS["window_kT"])
    if not _number(window) or not np.isfinite(window) or window <= 0:
        raise ConfigError(f"{key}.window_kT", window, "a number > 0 (half-width of the refined energy window in "
                          "units of k_B T of the lowest temperature)")
    levels = cfg.get("levels", DEFAULTS["levels"])
    if not isinstance(levels, (int, np.integer)) or isinstance(levels, bool) or not 1 <= levels <= MAX_LEVELS:
        raise ConfigError(f"{key}.levels", levels, "1 or 2 (how many times flagged cells are subdivided)")
    deg = cfg.get("degeneracy")
    if deg is not None and (not _number(deg) or not np.isfinite(deg) or deg <= 0):
        raise ConfigError(f"{key}.degeneracy", deg, "an energy > 0 (model energy units): refine where two bands "
                          "come closer than this")
    return RefineSpec(factor=int(factor), window_kT=float(window), levels=int(levels),
                      degeneracy=None if deg is None else float(deg))


def band_energies(model, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Band energies (N, nb), ascending within each sector, and the sector index of every band (nb,).

    ``np.linalg.eigvalsh`` of H = ``unique_derivatives(k)[:, 0]``, sector by sector (bands of different
    sectors never mix), in blocks of at most :data:`ENERGY_BLOCK_ENTRIES` complex entries of the
    derivative array (a big model's derivative slots are never held for a whole chunk).
    """
    k = np.ascontiguousarray(np.asarray(k, float).reshape(-1, model.dim))
    parts, sector_of_band = [], []
    for s, (_, sector, _) in enumerate(sector_blocks(model)):
        n = sector.nbands
        out = np.empty((k.shape[0], n))
        if k.shape[0]:
            n_slots = sector.unique_derivatives(k[:1]).shape[1]
            block = max(64, ENERGY_BLOCK_ENTRIES // (n_slots * n * n))
            for lo in range(0, k.shape[0], block):
                out[lo:lo + block] = np.linalg.eigvalsh(sector.unique_derivatives(k[lo:lo + block])[:, 0])
        parts.append(out)
        sector_of_band += [s] * n
    return np.concatenate(parts, axis=1), np.asarray(sector_of_band, int)


def cell_spread(energy: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Estimated spread of every band over each cell: ½ Σ_a max_± |ε(k ± s_a) − ε(k)|.

    energy (N, nb) at the cell centres; neighbours (2, dim, N, nb) at k + s_a (index 0) and k − s_a (1).
    """
    diff = np.abs(neighbours - energy[None, None])
    return 0.5 * diff.max(axis=0).sum(axis=0)


def flag_cells(energy: np.ndarray, spread: np.ndarray, mu, kT: float, window_kT: float,
               degeneracy: float | None = None, sector_of_band: np.ndarray | None = None) -> np.ndarray:
    """Cells to refine (bool (N,)): some band's [ε − s − w k_BT, ε + s + w k_BT] contains a μ, or
    (``degeneracy``) two adjacent bands of one sector come within δ inside the cell."""
    mu = np.sort(np.atleast_1d(np.asarray(mu, float)))
    half = spread + window_kT * float(kT)
    lo = np.searchsorted(mu, energy - half, side="left")
    hi = np.searchsorted(mu, energy + half, side="right")
    flags = np.any(hi > lo, axis=1)
    if degeneracy is not None and energy.shape[1] > 1:
        sector = np.zeros(energy.shape[1], int) if sector_of_band is None else np.asarray(sector_of_band)
        same = sector[1:] == sector[:-1]
        if np.any(same):
            gap = energy[:, 1:] - energy[:, :-1] - spread[:, 1:] - spread[:, :-1]
            flags |= np.any((gap <= degeneracy) & same[None, :], axis=1)
    return flags


def sub_offsets(dim: int, factor: int) -> np.ndarray:
    """Fractional offsets (r^d, dim) of a cell's cell-centred sub-points, in units of the cell's steps."""
    t = (np.arange(factor) + 0.5) / factor - 0.5
    grids = np.meshgrid(*([t] * dim), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def subdivide(points: np.ndarray, steps: np.ndarray, factor: int) -> np.ndarray:
    """The r^d sub-points of every cell: (N·r^d, dim), the sub-points of cell i contiguous and in order.

    steps (dim, dim): rows are the cell's edge vectors s_a (the cell is k + Σ_a t_a s_a, t_a ∈ [−½, ½)).
    """
    offsets = sub_offsets(points.shape[1], factor) @ np.asarray(steps, float)  # (r^d, dim)
    return (points[:, None, :] + offsets[None, :, :]).reshape(-1, points.shape[1])


@dataclass
class RefineResult:
    """Refined points of one block of base points, in base-point order (a cell's sub-points in place)."""

    kvec: np.ndarray | None  # (M, dim), None when only counted
    weight: np.ndarray | None  # (M,)
    n_points: int
    flagged_per_level: list[int]  # cells flagged at level 0 (base cells), 1 (sub-cells), ...


class Refiner:
    """Apply the refinement rule of ``spec`` to blocks of base points of one uniform grid.

    steps (dim, dim): base cell edge vectors (rows s_a = basis_a / N_a); mu: requested μ (model
    energy units); kT: k_BT of the lowest temperature (model energy units).
    """

    def __init__(self, model, steps: np.ndarray, spec: RefineSpec, mu, kT: float):
        self.model, self.spec = model, spec
        self.steps = np.asarray(steps, float)
        self.dim = self.steps.shape[0]
        self.mu = np.sort(np.atleast_1d(np.asarray(mu, float)))
        self.kT = float(kT)
        self.sub = spec.factor ** self.dim  # sub-points per refined cell

    @classmethod
    def for_grid(cls, model, grid, spec: RefineSpec, mu, kT: float) -> Refiner:
        steps = np.asarray(grid.basis, float) / np.asarray(grid.sizes, float)[:, None]
        return cls(model, steps, spec, mu, kT)

    @property
    def expansion(self) -> int:
        """Largest number of output points per base point (r^{d·levels})."""
        return self.sub ** self.spec.levels

    def flags(self, points: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Flag the cells (edge vectors ``steps``) centred on ``points``."""
        n, d = points.shape
        if n == 0:
            return np.zeros(0, bool)
        shifted = [points + sign * steps[a] for sign in (1.0, -1.0) for a in range(d)]
        energy, sector = band_energies(self.model, np.concatenate([points] + shifted))
        centre = energy[:n]
        neighbours = energy[n:].reshape(2, d, n, -1)
        spread = cell_spread(centre, neighbours)
        return flag_cells(centre, spread, self.mu, self.kT, self.spec.window_kT, self.spec.degeneracy, sector)

    def refine(self, points: np.ndarray, weight, count_only: bool = False) -> RefineResult:
        """Refine the cells of base ``points`` (N, dim) of weight ``weight`` (scalar or (N,))."""
        points = np.asarray(points, float).reshape(-1, self.dim)
        weight = np.broadcast_to(np.asarray(weight, float), (points.shape[0],))
        r = self.spec.factor
        keep_k, keep_w, keep_key = [], [], []  # finished points with a sort key (base index, sub-index...)
        n_out = 0
        flagged_per_level = []
        # active cells: points, weights, and their position key as (base index, path within the base cell)
        cur_k, cur_w = points, np.asarray(weight)
        cur_key = np.arange(points.shape[0], dtype=np.int64)  # base index × sub^level + local sub index
        steps = self.steps
        for level in range(self.spec.levels + 1):
            last = level == self.spec.levels
            flags = np.zeros(cur_k.shape[0], bool) if last else self.flags(cur_k, steps)
            if not last:
                flagged_per_level.append(int(flags.sum()))
            done = ~flags
            n_done = int(done.sum())
            n_out += n_done
            if not last and count_only and level + 1 == self.spec.levels:
                n_out += int(flags.sum()) * self.sub  # the last level's points are only counted
                break
            if not count_only and n_done:
                scale = self.sub ** (self.spec.levels - level)  # keys on a common scale: base × sub^levels
                keep_k.append(cur_k[done])
                keep_w.append(cur_w[done])
                keep_key.append(cur_key[done] * scale)
            if last or not flags.any():
                break
            cur_k = subdivide(cur_k[flags], steps, r)
            cur_w = np.repeat(cur_w[flags] / self.sub, self.sub)
            cur_key = (cur_key[flags][:, None] * self.sub + np.arange(self.sub)[None, :]).ravel()
            steps = steps / r
        while len(flagged_per_level) < self.spec.levels:
            flagged_per_level.append(0)
        if count_only:
            return RefineResult(None, None, n_out, flagged_per_level)
        if not keep_k:
            return RefineResult(np.zeros((0, self.dim)), np.zeros(0), 0, flagged_per_level)
        kvec, w, key = np.concatenate(keep_k), np.concatenate(keep_w), np.concatenate(keep_key)
        order = np.argsort(key, kind="stable")
        return RefineResult(kvec[order], w[order], n_out, flagged_per_level)


def refine_points(model, grid, spec: RefineSpec, mu, kT: float, start: int = 0, stop: int | None = None,
                  count_only: bool = False) -> RefineResult:
    """Refine base points start..stop−1 of the uniform ``grid`` (a :class:`qgtflow.kgrid.KGrid`)."""
    refiner = Refiner.for_grid(model, grid, spec, mu, kT)
    return refiner.refine(grid.points(start, stop), grid.weight, count_only=count_only)
