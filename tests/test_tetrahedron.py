"""Linear triangle/tetrahedron integration (qgtflow.reduce.tetrahedron): exactness, convergence, T → 0."""

import math

import numpy as np
import pytest

from qgtflow.kgrid import KGrid
from qgtflow.reduce.occupation import fermi_derivative
from qgtflow.reduce.tetrahedron import delta_weights, simplex_offsets, theta_weights


def window_grid(n: int, kmax: float, dim: int) -> KGrid:
    """The k·p window grid make_grid builds: cell-centred points of [−kmax, kmax]^dim."""
    return KGrid(sizes=(n,) * dim, kind="window", basis=np.diag([2.0 * kmax] * dim),
                 origin=np.full(dim, -kmax), shift=(0.5,) * dim)


def box_grid(n: int, length: float, dim: int) -> KGrid:
    """Window grid whose outermost points sit exactly at 0 and ``length``: integration box [0, L]^dim."""
    h = length / (n - 1)
    return KGrid(sizes=(n,) * dim, kind="window", basis=np.diag([n * h] * dim),
                 origin=np.full(dim, -h / 2), shift=(0.5,) * dim)


def periodic_grid(sizes, basis=None) -> KGrid:
    dim = len(sizes)
    basis = 2 * np.pi * np.eye(dim) if basis is None else np.asarray(basis, float)
    return KGrid(sizes=tuple(sizes), kind="periodic", basis=basis, origin=np.zeros(dim), shift=(0.0,) * dim)


def observed_order(h, err) -> float:
    """Least-squares slope of log|err| against log h."""
    return float(np.polyfit(np.log(h), np.log(np.abs(err)), 1)[0])


def integrate(weights, values):
    return float(np.sum(weights * values))


# ---------------------------------------------------------------- 1. Fermi sea of a parabolic band


@pytest.mark.parametrize("dim, sizes", [(2, (16, 32, 64)), (3, (12, 24, 48))])
def test_theta_fermi_sea_parabolic_converges_as_h2(dim, sizes):
    """n = ∫θ(E_F − k²/2) = k_F^d V_d/(2π)^d and ∫θ cos k_x converge to the exact values as O(h²).

    k_F = 1: ∫_disk cos k_x = 2π J_1(1), ∫_ball cos k_x = 4π (sin 1 − cos 1).
    """
    kF, kmax = 1.0, 1.5
    ball = math.pi if dim == 2 else 4 * math.pi / 3
    n_exact = ball * kF**dim / (2 * math.pi) ** dim
    j1_of_1 = 0.44005058574493355  # Bessel J_1(1)
    cos_exact = (2 * math.pi * j1_of_1 if dim == 2 else 4 * math.pi * (math.sin(1) - math.cos(1))) / (2 * math.pi) ** dim
    hs, err_n, err_cos = [], [], []
    for n in sizes:
        grid = window_grid(n, kmax, dim)
        k = grid.points()
        k2 = (k**2).sum(axis=1)[:, None]
        W = theta_weights(0.5 * k2, grid, 0.5 * kF**2)
        assert W.shape == (grid.n_points, 1)
        hs.append(grid.spacing)
        err_n.append(integrate(W, 1.0) / n_exact - 1)
        err_cos.append(integrate(W, np.cos(k[:, :1])) / cos_exact - 1)
    assert abs(err_n[-1]) < 3e-3 and abs(err_cos[-1]) < 4e-3
    # the interpolant of a convex band lies above it: the Fermi sea is systematically too small
    assert all(e < 0 for e in err_n)
    assert observed_order(hs, err_n) == pytest.approx(2.0, abs=0.25)
    assert observed_order(hs, err_cos) == pytest.approx(2.0, abs=0.25)


# ---------------------------------------------------------------- 2. density of states


def test_delta_dos_parabolic_3d_converges_as_h2():
    """3D ε = k²/2: g(E) = √(2E)/(2π²), pointwise in E, error O(h²)."""
    E = 0.5
    exact = math.sqrt(2 * E) / (2 * math.pi**2)
    hs, errs = [], []
    for n in (12, 24, 48):
        grid = window_grid(n, 1.5, 3)
        eps = 0.5 * (grid.points() ** 2).sum(axis=1)[:, None]
        hs.append(grid.spacing)
        errs.append(integrate(delta_weights(eps, grid, E), 1.0) / exact - 1)
    assert abs(errs[-1]) < 3e-3
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("band, dos", [
    ("parabolic", lambda E: np.full_like(E, 1 / (2 * np.pi))),  # m/(2π), m = 1
    ("dirac", lambda E: E / (2 * np.pi)),                          # E/(2π v²), v = 1
])
def test_delta_dos_2d_converges(band, dos):
    """2D DOS of ε = k²/2 and ε = |k|, RMS relative error over E ∈ [0.3, 0.9].

    In 2D the pointwise DOS error of the linear method is not a clean h² power: the interpolation
    error h² q(k/h) (q periodic in the cell) averaged along a curved Fermi line keeps an
    oscillating part ~h^{5/2} in the Fermi-sea area, whose E-derivative is ~h^{3/2} (stationary
    phase). The observed order is ≈ 1.5, so the test asserts 1.3 < order < 2.2 and the size.
    """
    Es = np.linspace(0.3, 0.9, 61)
    hs, errs = [], []
    for n in (24, 48, 96, 192):
        grid = window_grid(n, 1.5, 2)
        k2 = (grid.points() ** 2).sum(axis=1)
        eps = 0.5 * k2 if band == "parabolic" else np.sqrt(k2)
        W = delta_weights(eps[:, None], grid, Es)
        assert W.shape == (Es.size, grid.n_points, 1)
        rel = W.sum(axis=(1, 2)) / dos(Es) - 1
        hs.append(grid.spacing)
        errs.append(np.sqrt(np.mean(rel**2)))
    assert errs[-1] < 5e-4
    assert 1.3 < observed_order(hs, errs) < 2.2


# ---------------------------------------------------------------- 3. exactness for linear data


def _exact_linear_box(E, c, a, x0, b, length, mode):
    """∫_{[0,L]^d} θ(E − c − a·k)(x0 + b·k) dk (mode 'theta') or its E-derivative ('delta').

    Independent closed form: inclusion–exclusion over the box corners v, 1_box = Σ_v (−1)^|v|
    1[k ≥ v]; for a > 0 the set {k ≥ v, ε ≤ E} is a simplex with volume s^d/(d! Πa) and centroid
    v + s/(d+1) Σ_i e_i/a_i, s = (E − ε(v))_+. Components a_i < 0 are first reflected
    (k_i → L − k_i).
    """
    a, b = np.array(a, float), np.array(b, float)
    neg = a < 0
    c = c + np.sum(a[neg]) * length
    x0 = x0 + np.sum(b[neg]) * length
    a[neg], b[neg] = -a[neg], -b[neg]
    d = a.size
    pa = np.prod(a)
    beta = np.sum(b / a)
    total = 0.0
    for corner in np.ndindex(*(2,) * d):
        v = np.array(corner, float) * length
        s = max(E - c - a @ v, 0.0)
        xv = x0 + b @ v
        if mode == "theta":
            term = s**d / (math.factorial(d) * pa) * (xv + s * beta / (d + 1))
        else:
            # s^(d−1) is a step function in 1D: 1/2 at s = 0 (mean of both sides of the jump)
            # (equality up to rounding: the grid's outermost points are L only to rounding)
            gap = E - c - a @ v
            lead = s ** (d - 1) if d > 1 else (0.5 if abs(gap) < 1e-12 else float(gap > 0))
            term = lead / (math.factorial(d - 1) * pa) * xv + s**d * beta / (math.factorial(d) * pa)
        total += (-1) ** sum(corner) * term
    return total / (2 * math.pi) ** d


@pytest.mark.parametrize("dim, a, b", [
    (1, (0.8,), (-1.3,)),
    (2, (0.7, 1.1), (0.4, -0.9)),
    (2, (-1.3, 0.45), (1.2, 0.3)),
    (3, (0.7, 1.1, 0.45), (0.4, -0.9, 0.25)),
    (3, (-0.6, 1.05, -0.35), (0.3, 0.8, -1.1)),
])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_linear_band_and_integrand_are_exact(dim, a, b, n):
    """ε = c + a·k and X = x0 + b·k: θ and δ integrals over the box are exact to 1e-12."""
    length, c, x0 = 1.3, -0.2, 0.6
    grid = box_grid(n, length, dim)
    k = grid.points()
    eps = (c + k @ np.array(a))[:, None]
    X = (x0 + k @ np.array(b))[:, None]
    lo, hi = eps.min(), eps.max()
    Es = np.concatenate([np.linspace(lo - 0.1, hi + 0.1, 23), np.unique(eps)])  # incl. E at vertex energies
    Wt, Wd = theta_weights(eps, grid, Es), delta_weights(eps, grid, Es)
    for i, E in enumerate(Es):
        ref_t = _exact_linear_box(E, c, a, x0, b, length, "theta")
        ref_d = _exact_linear_box(E, c, a, x0, b, length, "delta")
        assert integrate(Wt[i], X) == pytest.approx(ref_t, abs=1e-12)
        assert integrate(Wd[i], X) == pytest.approx(ref_d, abs=1e-12)


@pytest.mark.parametrize("coarse, periodic", [((7,), True), ((5, 3), True), ((3, 4, 5), True),
                                              ((4, 5), False), ((3, 4, 3), False)])
def test_refined_interpolant_gives_identical_result(coarse, periodic):
    """Random (non-linear) data: refining the grid by 2 with the coarse piecewise-linear interpolant
    (values at Kuhn-edge midpoints) must give the same θ and δ integrals to rounding.

    The Kuhn split of the refined grid nests in the coarse one (both are cut by the planes
    x_i ∈ ℤ/2, x_i − x_j ∈ ℤ/2), so this checks every vertex ordering and case of the kernels.
    """
    rng = np.random.default_rng(len(coarse) + 10 * periodic)
    dim, nb = len(coarse), 3
    coarse = np.array(coarse)
    if periodic:
        g_c, g_f = periodic_grid(coarse), periodic_grid(2 * coarse)
    else:
        g_c, g_f = box_grid(coarse[0], 1.0, dim), box_grid(2 * coarse[0] - 1, 1.0, dim)
        if dim > 1:  # box_grid is cubic: use the same n per axis
            coarse = np.full(dim, coarse[0])
    eps_c = rng.normal(size=(*coarse, nb))
    X_c = rng.normal(size=(*coarse, nb))
    fine = np.array(g_f.sizes)

    def refine(vals):
        out = np.empty((*fine, nb))
        for f in np.ndindex(*fine):
            i = np.array(f) // 2
            o = np.array(f) % 2
            j = i + o
            j = j % coarse if periodic else j
            out[f] = 0.5 * (vals[tuple(i)] + vals[tuple(j)])
        return out

    eps_f, X_f = refine(eps_c), refine(X_c)
    flat = lambda v: v.reshape(-1, nb)  # noqa: E731
    Es = np.concatenate([np.linspace(-2.5, 2.5, 17), eps_c.ravel()[:5]])
    for weights in (theta_weights, delta_weights):
        Wc = weights(flat(eps_c), g_c, Es)
        Wf = weights(flat(eps_f), g_f, Es)
        rc = np.einsum("ekn,kn->e", Wc, flat(X_c))
        rf = np.einsum("ekn,kn->e", Wf, flat(X_f))
        np.testing.assert_allclose(rf, rc, rtol=0, atol=1e-12 * max(1.0, np.abs(rc).max()))


# ---------------------------------------------------------------- 4. periodic grids


@pytest.mark.parametrize("sizes", [(40, 40), (41, 37), (16, 12, 10), (9, 7, 5)])
def test_periodic_tight_binding_filling(sizes):
    """ε = −2 Σ cos k_i on the whole zone: filling 0 below, 1 above (wrap-around cells counted),
    1/2 at E = 0 (ε(k + (π,…,π)) = −ε(k) maps the grid and its split onto itself for even sizes)."""
    grid = periodic_grid(sizes)
    dim = len(sizes)
    eps = -2 * np.cos(grid.points()).sum(axis=1)[:, None]
    W = theta_weights(eps, grid, [-2 * dim - 0.5, 2 * dim + 0.5, 0.0])
    assert W[0].sum() == 0.0
    assert W[1].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(W[1], grid.weight, rtol=1e-12)  # every point fully occupied
    if all(s % 2 == 0 for s in sizes):
        assert W[2].sum() == pytest.approx(0.5, abs=1e-12)
    else:
        assert W[2].sum() == pytest.approx(0.5, abs=2e-2)


def test_periodic_oblique_basis_filling():
    """Triangular-lattice zone spanned by reciprocal vectors 60° apart: the shortest cell diagonal is
    b1 − b2, so the split is reflected; filling goes 0 → 1/V_cell = Σ_k w exactly."""
    b = 2 * np.pi * np.array([[1.0, -1 / np.sqrt(3)], [1.0, 1 / np.sqrt(3)]])
    grid = periodic_grid((18, 15), b)
    off = simplex_offsets(grid)
    assert off.shape == (2, 3, 2)
    for simplex in off.tolist():  # both triangles share the diagonal (0,1)–(1,0), not (0,0)–(1,1)
        assert [0, 1] in simplex and [1, 0] in simplex
        assert not ([0, 0] in simplex and [1, 1] in simplex)
    k = grid.points()
    eps = -2 * (np.cos(k[:, 0]) + np.cos(0.5 * k[:, 0] + np.sqrt(3) / 2 * k[:, 1])
                + np.cos(-0.5 * k[:, 0] + np.sqrt(3) / 2 * k[:, 1]))[:, None]
    W = theta_weights(eps, grid, np.array([eps.min() - 1e-9, eps.max() + 1e-9]))
    assert W[0].sum() == pytest.approx(0.0, abs=1e-12)
    assert W[1].sum() == pytest.approx(grid.weight * grid.n_points, rel=1e-12)
    assert grid.weight * grid.n_points == pytest.approx(2 / np.sqrt(3))  # 1/V_cell of the triangular lattice


def test_delta_integrated_over_energy_is_theta_difference():
    """∫_{E1}^{E2} W^δ(E) dE = W^θ(E2) − W^θ(E1) point by point (trapezoid on a fine E grid)."""
    grid = periodic_grid((24, 24))
    eps = -2 * np.cos(grid.points()).sum(axis=1)[:, None]
    eps = np.concatenate([eps, 0.5 * eps + 0.3], axis=1)  # two independent bands
    E1, E2 = -1.3, 0.7
    Es = np.linspace(E1, E2, 4001)
    integral = np.trapezoid(delta_weights(eps, grid, Es), Es, axis=0)
    diff = theta_weights(eps, grid, E2) - theta_weights(eps, grid, E1)
    assert np.abs(diff).max() > 1e-3
    # trapezoid error O(dE²) from the kinks of W^δ(E) at vertex energies (largest near saddle points)
    np.testing.assert_allclose(integral, diff, rtol=0, atol=1e-3 * np.abs(diff).max())
    assert integral.sum() == pytest.approx(diff.sum(), abs=1e-6)


# ---------------------------------------------------------------- 5. T → 0 limit of Fermi smearing


def test_fermi_smearing_tends_to_delta_weights():
    """Σ_k w (−f0'(ε − μ)) X on a very fine grid → Σ W^δ X as T → 0, with the Sommerfeld T² rate."""
    mu = -1.0

    def X(k):
        return 1 + 0.5 * np.cos(k[:, 0]) + 0.3 * np.sin(k[:, 0]) * np.sin(k[:, 1]) + 0.2 * np.cos(2 * k[:, 1])

    grid = periodic_grid((800, 800))
    k = grid.points()
    eps = -2 * np.cos(k).sum(axis=1)
    D = integrate(delta_weights(eps[:, None], grid, mu)[:, 0], X(k))
    fine = periodic_grid((1500, 1500))
    k = fine.points()
    eps, x = -2 * np.cos(k).sum(axis=1), X(k)
    Ts = np.array([0.2, 0.1, 0.05, 0.025])
    dev = np.array([fine.weight * np.sum(-fermi_derivative(eps, mu, T, 1) * x) - D for T in Ts])
    assert np.all(np.diff(np.abs(dev)) < 0)  # monotone approach
    assert observed_order(Ts, dev) == pytest.approx(2.0, abs=0.2)
    assert abs(dev[-1]) / D < 5e-4


# ---------------------------------------------------------------- 6. degenerate input


@pytest.mark.parametrize("grid", [periodic_grid((6, 5)), periodic_grid((4, 3, 5)), box_grid(4, 1.0, 3)])
def test_flat_band_at_E_is_finite(grid):
    eps = np.full((grid.n_points, 2), 0.25)
    eps[:, 1] = np.linspace(-1, 1, grid.n_points)  # a second, dispersive band
    Wt, Wd = theta_weights(eps, grid, 0.25), delta_weights(eps, grid, 0.25)
    assert np.all(np.isfinite(Wt)) and np.all(np.isfinite(Wd))
    full = theta_weights(eps, grid, 10.0)[:, 0].sum()
    assert Wt[:, 0].sum() == pytest.approx(0.5 * full)  # flat simplices at E count half occupied
    assert np.all(Wd[:, 0] == 0.0)
    assert theta_weights(eps, grid, 0.25 - 1e-12)[:, 0].sum() == 0.0
    assert theta_weights(eps, grid, 0.25 + 1e-12)[:, 0].sum() == pytest.approx(full)


@pytest.mark.parametrize("sizes", [(10,), (8, 6), (6, 4, 6)])
def test_tied_energies_and_E_at_vertex_energies(sizes):
    """Energies on a half-integer lattice (many equal vertex energies) and E exactly at them:
    finite, non-negative, θ monotone and continuous in E, δ at a vertex energy equal to the mean of
    its left and right limits, and δ integrating to the θ difference."""
    rng = np.random.default_rng(7)
    grid = periodic_grid(sizes)
    # integer on even-parity points, half-integer on odd ones: ties everywhere, but every simplex
    # has an axis edge joining the two parities (even sizes), so no simplex is flat
    parity = np.indices(sizes).sum(axis=0).ravel() % 2
    eps = rng.integers(0, 3, size=(grid.n_points, 2)) + 0.5 * parity[:, None]
    Ev = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    eta = 1e-9
    Wt, Wd = theta_weights(eps, grid, Ev), delta_weights(eps, grid, Ev)
    assert np.all(np.isfinite(Wt)) and np.all(np.isfinite(Wd))
    assert Wt.min() >= -1e-15 and Wd.min() >= 0.0
    below, above = theta_weights(eps, grid, Ev - eta), theta_weights(eps, grid, Ev + eta)
    assert np.abs(above - below).max() < 1e2 * eta * grid.weight
    assert np.all(above - Wt >= -1e-15) and np.all(Wt - below >= -1e-15)
    d_mean = 0.5 * (delta_weights(eps, grid, Ev - eta) + delta_weights(eps, grid, Ev + eta))
    np.testing.assert_allclose(Wd, d_mean, rtol=0, atol=1e-6 * Wd.max())
    Es = np.linspace(-0.5, 3.5, 1601)
    theta_sum = theta_weights(eps, grid, Es).sum(axis=(1, 2))
    assert np.all(np.diff(theta_sum) >= -1e-14)
    assert theta_sum[-1] == pytest.approx(2.0, abs=1e-12)  # two bands, fully occupied
    integral = np.trapezoid(delta_weights(eps, grid, Es).sum(axis=(1, 2)), Es)
    assert integral == pytest.approx(theta_sum[-1] - theta_sum[0], rel=1e-3)


def test_input_validation_and_shapes():
    grid = periodic_grid((4, 4))
    eps = np.zeros((grid.n_points, 1))
    assert theta_weights(eps, grid, 1.0).shape == (16, 1)
    assert delta_weights(eps, grid, [0.5, 1.0]).shape == (2, 16, 1)
    with pytest.raises(ValueError):
        theta_weights(np.zeros(grid.n_points), grid, 0.0)
    with pytest.raises(ValueError):
        theta_weights(np.zeros((15, 1)), grid, 0.0)
    with pytest.raises(ValueError):
        delta_weights(eps, grid, np.nan)
