"""Grid-convergence numerics: Richardson extrapolation, observed order, error bars, verdicts.

Pure numpy, no I/O (the stage is :mod:`qgtflow.stages.convergence_stage`). Every function works on a
stack ``values[s, ...]`` of one quantity at several grid densities ``s`` with spacings ``h[s]``
and vectorises over the trailing entries (tensor components × μ × T …).

Model of the error: ``v(h) = c + a h^p`` for small h. With the three finest densities
(h₁ > h₂ > h₃) the observed order p solves

    (v₁ − v₂) / (v₂ − v₃) = (h₁^p − h₂^p) / (h₂^p − h₃^p)            (any grid ratios)

(bisection; the right side increases with p), clipped to [P_MIN, P_MAX]. The extrapolated
value is the Richardson step on the two finest densities,
``c = v₃ + (v₃ − v₂) / ((h₂/h₃)^p − 1)``.

Error bar (conservative, in the spirit of Roache's grid convergence index, GCI):

- three or more densities, monotone: ``error = 1.25 |c − v_finest| + spread`` where
  ``spread`` is the largest deviation from c of the alternative extrapolations: the
  Richardson step of the previous pair with the same p (differs from c only when p was
  clipped, i.e. the power law does not fit) and, with four or more densities, the full
  extrapolation from the previous triplet (tests whether the coarser grids were already
  asymptotic);
- three or more densities, not monotone (oscillating differences): no order; the value is
  the finest one and the error the largest deviation of the last three values from it;
- differences at round-off level ("flat"): value = finest, error = largest difference;
- two densities: order assumed 2 (``ASSUMED_ORDER``) and ``error = 3 |c − v_finest|``
  (Roache's safety factor for an unverified order);
- one density, or a non-finite value anywhere in the sequence: no estimate, verdict
  "insufficient data".

Verdicts are small check objects with a ``.converged`` attribute (habit of Z2Pack's
``MoveCheck``/``GapCheck``); an entry is reliable only when every check passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

P_MIN = 0.5
P_MAX = 8.0
ASSUMED_ORDER = 2.0
SAFETY_FITTED = 1.25  # Roache GCI safety factor, order observed on >= 3 grids
SAFETY_ASSUMED = 3.0  # Roache GCI safety factor, order assumed (2 grids)
ATOL_FRACTION = 1e-6  # atol floor: this fraction of the largest |value| of the response
_ROUNDOFF = 1e3 * np.finfo(float).eps  # differences below this × |value| are noise

# method codes (stored as int8 in zarr; names in METHODS)
SINGLE, ASSUMED, FITTED, CLIPPED, OSCILLATING, FLAT, MISSING = range(7)
METHODS = {
    SINGLE: "single",
    ASSUMED: "assumed-order",
    FITTED: "fitted-order",
    CLIPPED: "clipped-order",
    OSCILLATING: "oscillating",
    FLAT: "flat",
    MISSING: "missing",
}

# verdict codes (stored as int8 in zarr, CF flag_values/flag_meanings)
CONVERGED, NOT_CONVERGED, INSUFFICIENT = 1, 0, -1
VERDICTS = {CONVERGED: "converged", NOT_CONVERGED: "not converged", INSUFFICIENT: "insufficient data"}


def _code_names(codes, table: dict) -> np.ndarray:
    codes = np.asarray(codes)
    out = np.empty(codes.shape, dtype=object)
    for code, name in table.items():
        out[codes == code] = name
    return out


def verdict_names(codes) -> np.ndarray:
    """Map verdict codes to their strings (element-wise)."""
    return _code_names(codes, VERDICTS)


def method_names(codes) -> np.ndarray:
    """Map extrapolation-method codes to their strings (element-wise)."""
    return _code_names(codes, METHODS)


def richardson_step(v_coarse, v_fine, ratio, order):
    """Richardson extrapolation of two values with spacing ratio h_coarse/h_fine > 1 and order p."""
    v_coarse, v_fine = np.asarray(v_coarse, float), np.asarray(v_fine, float)
    return v_fine + (v_fine - v_coarse) / (np.asarray(ratio, float) ** np.asarray(order, float) - 1.0)


def _order_ratio(h, p):
    """(h₁^p − h₂^p) / (h₂^p − h₃^p) for h = (h₁, h₂, h₃) normalised by h₃; increasing in p."""
    x, y = h[0] / h[2], h[1] / h[2]
    return (x**p - y**p) / (y**p - 1.0)


def observed_order(h, values, p_min: float = P_MIN, p_max: float = P_MAX):
    """Observed convergence order from three densities.

    ``h``: three spacings, strictly decreasing; ``values``: shape (3, ...).
    Returns ``(p, status)`` with ``p`` clipped to [p_min, p_max] (NaN where no order exists)
    and ``status`` one of FITTED, CLIPPED, OSCILLATING, FLAT per entry.
    """
    h = np.asarray(h, float)
    v = np.asarray(values, float)
    if h.shape != (3,) or not np.all(np.diff(h) < 0) or h[-1] <= 0:
        raise ValueError(f"observed_order needs three strictly decreasing positive spacings, got {h}")
    d1, d2 = v[0] - v[1], v[1] - v[2]
    scale = np.max(np.abs(v), axis=0)
    noise = _ROUNDOFF * scale
    flat = (np.abs(d1) <= noise) & (np.abs(d2) <= noise)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = d1 / d2  # ±inf when only d2 vanishes
    monotone = (r > 0) & ~flat  # NaN compares False
    g_lo, g_hi = _order_ratio(h, p_min), _order_ratio(h, p_max)
    p = np.full(r.shape, np.nan)
    status = np.full(r.shape, OSCILLATING, dtype=np.int8)
    status[flat] = FLAT
    below = monotone & (r <= g_lo)
    above = monotone & (r >= g_hi)
    inside = monotone & ~below & ~above
    p[below], p[above] = p_min, p_max
    status[below | above] = CLIPPED
    if np.any(inside):
        target = r[inside]
        lo = np.full(target.shape, p_min)
        hi = np.full(target.shape, p_max)
        for _ in range(64):  # bisection: |hi − lo| < 8 / 2^64
            mid = 0.5 * (lo + hi)
            up = _order_ratio(h, mid) < target
            lo = np.where(up, mid, lo)
            hi = np.where(up, hi, mid)
        p[inside] = 0.5 * (lo + hi)
        status[inside] = FITTED
    return p, status


@dataclass(frozen=True)
class Extrapolation:
    """Per-entry result of :func:`extrapolate` (arrays with the entries' shape)."""

    value: np.ndarray  # extrapolated to h -> 0
    error: np.ndarray  # error bar of `value` (NaN when unknown)
    order: np.ndarray  # order used (observed, clipped or assumed; NaN when none)
    method: np.ndarray  # int8 method codes, see METHODS
    finest: np.ndarray  # value at the finest density
    n_densities: int

    @property
    def sufficient(self) -> np.ndarray:
        return (self.method != SINGLE) & (self.method != MISSING) & np.isfinite(self.error)


def extrapolate(h, values) -> Extrapolation:
    """Extrapolate ``values[s, ...]`` at spacings ``h[s]`` to h -> 0 (see module docstring).

    ``h`` need not be sorted; entries are ordered coarse -> fine internally. Spacings must be
    distinct and positive.
    """
    h = np.asarray(h, float)
    v = np.asarray(values, float)
    if h.ndim != 1 or v.shape[:1] != h.shape:
        raise ValueError(f"values must have shape (len(h), ...), got {v.shape} for {h.size} spacings")
    if h.size == 0:
        raise ValueError("no grid densities")
    if np.any(~np.isfinite(h)) or np.any(h <= 0):
        raise ValueError(f"grid spacings must be finite and positive, got {h}")
    order_idx = np.argsort(-h, kind="stable")
    h, v = h[order_idx], v[order_idx]
    if np.any(np.diff(h) >= 0):
        raise ValueError(f"grid spacings must be distinct, got {h}")
    n = h.size
    shape = v.shape[1:]
    finest = v[-1].copy()
    finite = np.all(np.isfinite(v), axis=0)

    if n == 1:
        method = np.full(shape, SINGLE, dtype=np.int8)
        method[~finite] = MISSING
        nan = np.full(shape, np.nan)
        return Extrapolation(np.array(finest), nan, nan.copy(), method, np.asarray(finest), n)

    ratio_last = h[-2] / h[-1]
    with np.errstate(invalid="ignore", over="ignore"):
        if n == 2:
            value = richardson_step(v[0], v[1], ratio_last, ASSUMED_ORDER)
            error = SAFETY_ASSUMED * np.abs(value - finest)
            order = np.full(shape, ASSUMED_ORDER)
            method = np.full(shape, ASSUMED, dtype=np.int8)
        else:
            p, method = observed_order(h[-3:], v[-3:])
            order = p
            power = np.isin(method, (FITTED, CLIPPED))
            pp = np.where(power, p, ASSUMED_ORDER)  # placeholder order where none exists
            value = np.where(power, richardson_step(v[-2], v[-1], ratio_last, pp), finest)
            # alternatives: previous pair with the same order; previous triplet's own extrapolation
            alt = [richardson_step(v[-3], v[-2], h[-3] / h[-2], pp)]
            if n >= 4:
                p4, m4 = observed_order(h[-4:-1], v[-4:-1])
                ok4 = np.isin(m4, (FITTED, CLIPPED))
                alt.append(np.where(ok4, richardson_step(v[-3], v[-2], h[-3] / h[-2], np.where(ok4, p4, 2.0)), v[-2]))
            spread = np.max([np.abs(a - value) for a in alt], axis=0)
            error_power = SAFETY_FITTED * np.abs(value - finest) + spread
            deviation = np.max(np.abs(v[-3:] - finest), axis=0)  # oscillating / flat sequences
            error = np.where(power, error_power, deviation)
    method = np.asarray(method, dtype=np.int8).copy()
    value = np.where(finite, value, np.nan)
    error = np.where(finite, error, np.nan)
    order = np.where(finite, order, np.nan)
    method[~finite] = MISSING
    return Extrapolation(np.asarray(value), np.asarray(error), np.asarray(order), method, np.asarray(finest), n)


# --------------------------------------------------------------------------- checks


class DataCheck:
    """Enough finite densities for an error estimate (>= ``min_densities``)."""

    def __init__(self, *, min_densities: int = 2):
        self.min_densities = int(min_densities)
        self._converged = None

    @property
    def converged(self):
        return self._converged

    def update(self, result: Extrapolation) -> "DataCheck":
        ok = result.sufficient & (result.n_densities >= self.min_densities)
        self._converged = np.asarray(ok, bool)
        return self


class ToleranceCheck:
    """Error bar within ``rtol·|value|``, or, for an entry that is zero within the floor, within the floor.

    ``atol_effective = max(atol, atol_fraction · scale)``, with ``scale`` the largest |value|
    over all entries of the same response variable (default: over the entries passed), so that
    components vanishing by symmetry (round-off values) do not fail. ``|value|`` is the smaller
    of |extrapolated| and |finest| (conservative). The floor only ever certifies entries that are
    zero within it — |extrapolated|, |finest| and the error bar all ≤ ``atol_effective`` — never a
    nonzero entry whose error bar exceeds ``rtol·|value|`` (a floor of 1e-3 of the largest entry must
    not pass a 1e-4 study whose value is still 2e-4 off).
    """

    def __init__(self, *, rtol: float, atol: float = 0.0, atol_fraction: float = ATOL_FRACTION):
        if not rtol > 0:
            raise ValueError(f"rtol must be > 0, got {rtol}")
        if atol < 0 or atol_fraction < 0:
            raise ValueError(f"atol and atol_fraction must be >= 0, got {atol}, {atol_fraction}")
        self.rtol, self.atol, self.atol_fraction = float(rtol), float(atol), float(atol_fraction)
        self._converged = None
        self.tolerance = None
        self.atol_effective = None

    @property
    def converged(self):
        return self._converged

    def update(self, result: Extrapolation, scale: float | None = None) -> "ToleranceCheck":
        if scale is None:
            finite = np.abs(result.finest[np.isfinite(result.finest)])
            scale = float(finite.max()) if finite.size else 0.0
        self.atol_effective = max(self.atol, self.atol_fraction * float(scale))
        magnitude = np.fmin(np.abs(result.value), np.abs(result.finest))
        zero_within_floor = np.fmax(np.abs(result.value), np.abs(result.finest)) <= self.atol_effective
        self.tolerance = np.where(zero_within_floor, np.maximum(self.rtol * magnitude, self.atol_effective),
                                  self.rtol * magnitude)
        with np.errstate(invalid="ignore"):
            self._converged = np.asarray(result.error <= self.tolerance, bool)  # NaN -> False
        return self


def verdict(result: Extrapolation, checks) -> np.ndarray:
    """Combine updated checks: INSUFFICIENT where data is lacking, else CONVERGED iff all pass."""
    out = np.full(result.value.shape, CONVERGED, dtype=np.int8)
    for check in checks:
        if isinstance(check, DataCheck):
            continue
        out[~np.asarray(check.converged, bool)] = NOT_CONVERGED
    for check in checks:
        if isinstance(check, DataCheck):
            out[~np.asarray(check.converged, bool)] = INSUFFICIENT
    return out


@dataclass(frozen=True)
class Assessment:
    """Extrapolation + verdict of one response variable."""

    result: Extrapolation
    verdict: np.ndarray  # int8 codes, see VERDICTS
    tolerance: np.ndarray
    atol_effective: float

    @property
    def converged(self) -> np.ndarray:
        return self.verdict == CONVERGED

    @property
    def relative_error(self) -> np.ndarray:
        """error / |value| where |value| exceeds the atol floor, NaN elsewhere."""
        mag = np.fmin(np.abs(self.result.value), np.abs(self.result.finest))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(mag > self.atol_effective, self.result.error / mag, np.nan)


class WindowCheck:
    """Fails entries whose (μ, T) has a Fermi surface cut by the k·p window (:func:`window_cuts`): the window
    then misses part of the Fermi-surface integral, which no grid refinement recovers."""

    def __init__(self, cut):
        self.cut = cut  # bool, broadcastable to the entries (False: nothing cut)
        self._converged = None

    @property
    def converged(self):
        return self._converged

    def update(self, result: Extrapolation) -> "WindowCheck":
        self._converged = ~np.broadcast_to(np.asarray(self.cut, bool), result.value.shape)
        return self


WINDOW_MARGIN_KT = 10.0  # f0'(10 k_BT) / f0'(0) ≈ 2e-4


def window_edge_energies(model, grid, n: int = 2001) -> list[np.ndarray]:
    """Band energies on the faces of a k·p window ``grid`` (the box origin + [0, 1]^d · basis): one array per face,
    shape (per,)*(d − 1) + (bands,), uniform meshes with per = n (2D) or ~√n (3D)."""
    d = grid.dim
    per = n if d <= 2 else max(int(np.sqrt(n)), 16)
    axis = np.linspace(0.0, 1.0, per)
    faces = []
    for a in range(d):
        others = [b for b in range(d) if b != a]
        mesh = np.meshgrid(*[axis] * (d - 1), indexing="ij")
        for side in (0.0, 1.0):
            frac = np.full((axis.size ** (d - 1), d), side)
            for col, m in zip(others, mesh):
                frac[:, col] = m.ravel()
            k = grid.origin[None, :] + frac @ grid.basis
            e = np.linalg.eigvalsh(model.unique_derivatives(k)[:, 0])
            faces.append(e.reshape((axis.size,) * (d - 1) + (e.shape[-1],)))
    return faces


def window_cut(study) -> np.ndarray | None:
    """(μ, T) flags of ``study`` (model built) where its k·p window cuts a Fermi surface within
    WINDOW_MARGIN_KT·k_BT (:func:`window_cuts`): the window misses part of that Fermi-surface integral at every
    grid density. None for periodic zones. The window does not depend on the grid density."""
    if study.model.periodic:
        return None
    window = study.make_grid(study.sizes[0])
    return window_cuts(window_edge_energies(study.model, window), study.mu, study.kT)


def window_cuts(faces, mu, kT, margin: float = WINDOW_MARGIN_KT) -> np.ndarray:
    """(μ, T) bool: on some face of the window a band comes within margin·k_BT of μ, or crosses μ between two
    neighbouring samples (a Fermi line or surface leaves the window)."""
    mu, kT = np.asarray(mu, float), np.asarray(kT, float)
    cut = np.zeros((mu.size, kT.size), bool)
    for e in faces:
        e = np.asarray(e, float)
        for i, m in enumerate(mu):
            x = e - m
            crosses = any(np.any(np.diff(np.sign(x), axis=ax) != 0) for ax in range(e.ndim - 1) if e.shape[ax] > 1)
            cut[i] |= crosses | (np.abs(x).min() <= margin * kT)
    return cut


def assess(h, values, *, rtol: float, atol: float = 0.0, atol_fraction: float = ATOL_FRACTION,
           window_cut=None) -> Assessment:
    """Extrapolate one response variable's stack and judge every entry; ``window_cut``: bool broadcastable to
    the entries, True where the k·p window cuts a Fermi surface (those entries are not converged)."""
    result = extrapolate(h, values)
    data = DataCheck().update(result)
    tol = ToleranceCheck(rtol=rtol, atol=atol, atol_fraction=atol_fraction).update(result)
    checks = [data, tol] + ([WindowCheck(window_cut).update(result)] if window_cut is not None else [])
    return Assessment(result, verdict(result, checks), tol.tolerance, tol.atol_effective)
