"""Exact energy-moment histograms of the linear triangle/tetrahedron interpolant (chunked), and their
T = 0 read-out (qgtflow.reduce.simplex_moments.accumulate_simplex_moments / zero_temperature)."""

import math

import numpy as np
import pytest

from qgtflow.reduce import spectral
from qgtflow.reduce.simplex_moments import _delta_piece, accumulate_simplex_moments, chunk_vertices, zero_temperature
from qgtflow.reduce.tetrahedron import _delta_simplex, delta_weights, theta_weights
from tests.test_tetrahedron import box_grid, observed_order, periodic_grid, window_grid


def histogram(grid, energy, Q, lo, width, n_bins, n_moments=5, chunks=None):
    """Moments and underflow of the whole grid, chunk by chunk ([start, stop) boundaries ``chunks``)."""
    moments = np.zeros((n_bins, n_moments, Q.shape[2]))
    underflow = np.zeros(Q.shape[2])
    bounds = [0, grid.n_points] if chunks is None else list(chunks)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        vi = chunk_vertices(grid, start, stop)
        accumulate_simplex_moments(grid, start, stop, vi, energy[vi], Q[vi], lo, width, moments, underflow)
    return moments, underflow


def tb_data(grid, nb=2, nc=3, seed=0):
    """Tight-binding-like bands and smooth integrands (N, nb), (N, nb, nc)."""
    rng = np.random.default_rng(seed)
    k = grid.points()
    eps = np.stack([-2 * np.cos(k).sum(axis=1) * (1 + 0.2 * n) + 0.3 * n for n in range(nb)], axis=1)
    Q = np.empty((grid.n_points, nb, nc))
    for n in range(nb):
        for c in range(nc):
            a = rng.normal(size=k.shape[1])
            Q[:, n, c] = 1 + 0.5 * np.cos(k @ a) + 0.2 * c
    return eps, Q


# ---------------------------------------------------------------- 1. chunking


@pytest.mark.parametrize("grid", [periodic_grid((13,)), periodic_grid((11, 9)), periodic_grid((5, 6, 7)),
                                  window_grid(10, 1.0, 2), window_grid(6, 1.0, 3)])
def test_chunks_sum_to_single_chunk_and_conserve_weight(grid):
    """Any partition of [0, N) into chunks (unaligned with rows, wrapping) gives the single-chunk
    moments to 1e-12; Σ_b S_0 + underflow = ∫Q over the zone (θ weights above everything); S_0 of
    every bin is the θ-weight difference between its edges (exact, bands with curvature)."""
    eps, Q = tb_data(grid)
    span = eps.max() - eps.min()
    lo, n_bins = eps.min() + 0.15 * span, 14  # some states below (underflow), the histogram covers the rest
    width = 0.9 * span / (n_bins - 1)
    ref_m, ref_u = histogram(grid, eps, Q, lo, width, n_bins)
    assert lo + n_bins * width > eps.max() and eps.min() < lo
    N = grid.n_points
    for chunk in (1, 7, N // 3 + 1, N - 1):
        bounds = list(range(0, N, chunk)) + [N]
        m, u = histogram(grid, eps, Q, lo, width, n_bins, chunks=bounds)
        np.testing.assert_allclose(m, ref_m, rtol=0, atol=1e-12 * np.abs(ref_m).max())
        np.testing.assert_allclose(u, ref_u, rtol=0, atol=1e-12 * np.abs(ref_u).max())
    total = np.einsum("kn,knc->c", theta_weights(eps, grid, eps.max() + 1.0), Q)
    np.testing.assert_allclose(ref_m[:, 0].sum(axis=0) + ref_u, total, rtol=1e-12)
    edges = lo + width * np.arange(n_bins + 1)
    F = np.einsum("ekn,knc->ec", theta_weights(eps, grid, edges), Q)
    np.testing.assert_allclose(ref_m[:, 0], np.diff(F, axis=0), rtol=0, atol=1e-13)
    np.testing.assert_allclose(ref_u, F[0], rtol=0, atol=1e-13)


def test_chunk_vertices_is_needed_and_sufficient():
    grid = periodic_grid((5, 4))
    v = chunk_vertices(grid, 17, 20)  # bases (4,1), (4,2), (4,3): the last row wraps onto row 0
    expected = {4 * 4 + 1, 4 * 4 + 2, 4 * 4 + 3, 16, 1, 2, 3, 0}
    assert set(v.tolist()) == expected and np.all(np.diff(v) > 0)
    win = window_grid(4, 1.0, 2)
    assert chunk_vertices(win, 3, 4).size == 0  # a base on the last column has no cell
    assert set(chunk_vertices(win, 2, 4).tolist()) == {2, 3, 6, 7}
    eps, Q = tb_data(grid)
    m, u = np.zeros((3, 2, 3)), np.zeros(3)
    with pytest.raises(ValueError, match="not in vertex_index"):
        accumulate_simplex_moments(grid, 17, 20, v[:-1], eps[v[:-1]], Q[v[:-1]], -1.0, 0.5, m, u)
    # a superset of the needed vertices is fine
    allv = np.arange(grid.n_points)
    accumulate_simplex_moments(grid, 17, 20, allv, eps, Q, -1.0, 0.5, m, u)
    m2, u2 = np.zeros_like(m), np.zeros_like(u)
    accumulate_simplex_moments(grid, 17, 20, v, eps[v], Q[v], -1.0, 0.5, m2, u2)
    np.testing.assert_array_equal(m, m2)
    np.testing.assert_array_equal(u, u2)


def test_simplices_above_or_below_are_cheap():
    grid = periodic_grid((8, 8, 8))
    eps, Q = tb_data(grid)
    m, u = np.zeros((10, 4, 3)), np.zeros(3)
    vi = np.arange(grid.n_points)
    span = (eps.min(), eps.max())
    assert accumulate_simplex_moments(grid, 0, grid.n_points, vi, eps, Q, span[0] - 1.0 - 1e-9, 0.1, m, u) == 0
    assert not m.any() and not u.any()  # all above the histogram (lo + 10 w < min ε): skipped
    # all below: whole cells go to the underflow in one step
    assert accumulate_simplex_moments(grid, 0, grid.n_points, vi, eps, Q, span[1] + 0.01, 0.1, m, u) == 0
    np.testing.assert_allclose(u, np.einsum("kn,knc->c", theta_weights(eps, grid, 100.0), Q), rtol=1e-12)


# ---------------------------------------------------------------- 2. exactness


def _linear_box_moments(c, a, x0, b, length, lo, width, n_bins, n_moments):
    """Closed-form moments of ε = c + a·k, Q = x0 + b·k over the box [0, L]^d.

    Inclusion–exclusion over the box corners v (as in test_tetrahedron): with a_i > 0 (negative
    components reflected), s_v = (E − ε(v))_+, the Fermi sea is F(E) = Σ_v (−1)^|v| s_v^d/(d! Πa)
    (x_v + s_v β/(d+1)), β = Σ b_i/a_i, so ρ(E) = F'(E) = Σ_v (−1)^|v| [x_v s_v^(d−1)/((d−1)! Πa)
    + β s_v^d/(d! Πa)], a sum of truncated powers (E − ε_v)_+^j. With (E − c_b)^q = Σ_i C(q, i)
    (E − ε_v)^i (ε_v − c_b)^(q−i):
        ∫_l^r (E − ε_v)_+^j (E − c_b)^q/q! dE = Σ_i (ε_v − c_b)^(q−i)/(i! (q−i)!) [(E − ε_v)_+^(j+i+1)/(j+i+1)]_l^r.
    Underflow = F(lo). Everything / (2π)^d.
    """
    a, b = np.array(a, float), np.array(b, float)
    neg = a < 0
    c = c + np.sum(a[neg]) * length
    x0 = x0 + np.sum(b[neg]) * length
    a[neg], b[neg] = -a[neg], -b[neg]
    d = a.size
    pa, beta = np.prod(a), np.sum(b / a)
    moments = np.zeros((n_bins, n_moments))
    underflow = 0.0
    for corner in np.ndindex(*(2,) * d):
        v = np.array(corner, float) * length
        sign = (-1) ** sum(corner)
        ev, xv = c + a @ v, x0 + b @ v
        s = max(lo - ev, 0.0)
        underflow += sign * s**d / (math.factorial(d) * pa) * (xv + s * beta / (d + 1))
        terms = [(xv / (math.factorial(d - 1) * pa), d - 1), (beta / (math.factorial(d) * pa), d)]
        for bn in range(n_bins):
            left, right = lo + bn * width, lo + (bn + 1) * width
            cb = lo + (bn + 0.5) * width
            for q in range(n_moments):
                for coef, j in terms:
                    for i in range(q + 1):
                        p = j + i + 1
                        prim = (max(right - ev, 0.0) ** p - max(left - ev, 0.0) ** p) / p
                        moments[bn, q] += sign * coef * (ev - cb) ** (q - i) / (math.factorial(i) * math.factorial(q - i)) * prim
    return moments / (2 * math.pi) ** d, underflow / (2 * math.pi) ** d


@pytest.mark.parametrize("dim, a, b", [
    (1, (0.8,), (-1.3,)),
    (2, (0.7, 1.1), (0.4, -0.9)),
    (2, (-1.3, 0.45), (1.2, 0.3)),
    (3, (0.7, 1.1, 0.45), (0.4, -0.9, 0.25)),
    (3, (-0.6, 1.05, -0.35), (0.3, 0.8, -1.1)),
])
@pytest.mark.parametrize("n", [2, 4])
def test_linear_band_and_integrand_moments_are_exact(dim, a, b, n):
    """ε, Q linear: every moment, q = 0..5, and the underflow equal the closed form to 1e-12."""
    length, c, x0 = 1.3, -0.2, 0.6
    grid = box_grid(n, length, dim)
    k = grid.points()
    eps = (c + k @ np.array(a))[:, None]
    Q = (x0 + k @ np.array(b))[:, None, None]
    lo, width, n_bins, nq = eps.min() + 0.13, 0.071, 23, 6  # partly below, partly above the histogram
    m, u = histogram(grid, eps, Q, lo, width, n_bins, nq)
    ref_m, ref_u = _linear_box_moments(c, a, x0, b, length, lo, width, n_bins, nq)
    assert np.abs(ref_m[:, 0]).max() > 1e-4 and abs(ref_u) > 1e-7
    np.testing.assert_allclose(m[:, :, 0], ref_m, rtol=0, atol=1e-12 * np.abs(ref_m[:, 0]).max())
    assert u[0] == pytest.approx(ref_u, abs=1e-13)


@pytest.mark.parametrize("coarse, periodic", [((7,), True), ((5, 3), True), ((3, 4, 5), True), ((4, 4), False),
                                              ((3, 3, 3), False)])
def test_refined_interpolant_gives_identical_moments(coarse, periodic):
    """Random data (all vertex orderings, every piece): refining the grid by 2 with the coarse
    piecewise-linear interpolant leaves every moment unchanged (the Kuhn splits nest)."""
    rng = np.random.default_rng(len(coarse) + 10 * periodic)
    dim, nb, nc = len(coarse), 2, 2
    coarse = np.array(coarse)
    if periodic:
        g_c, g_f = periodic_grid(coarse), periodic_grid(2 * coarse)
    else:
        g_c, g_f = box_grid(coarse[0], 1.0, dim), box_grid(2 * coarse[0] - 1, 1.0, dim)
    eps_c = rng.normal(size=(*coarse, nb))
    Q_c = rng.normal(size=(*coarse, nb, nc))
    fine = np.array(g_f.sizes)

    def refine(vals):
        out = np.empty((*fine, *vals.shape[dim:]))
        for f in np.ndindex(*fine):
            i = np.array(f) // 2
            j = i + np.array(f) % 2
            j = j % coarse if periodic else j
            out[f] = 0.5 * (vals[tuple(i)] + vals[tuple(j)])
        return out

    args = (-1.2, 0.29, 9, 5)
    mc, uc = histogram(g_c, eps_c.reshape(-1, nb), Q_c.reshape(-1, nb, nc), *args)
    mf, uf = histogram(g_f, refine(eps_c).reshape(-1, nb), refine(Q_c).reshape(-1, nb, nc), *args)
    scale = np.abs(mc).max()
    np.testing.assert_allclose(mf, mc, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(uf, uc, rtol=0, atol=1e-12 * scale)


def test_flat_band_is_a_point_mass():
    """A flat band at E0: S_q[b] = ∫Q (E0 − c_b)^q/q! in E0's bin, nothing elsewhere; below lo → underflow."""
    grid = periodic_grid((6, 5, 4))
    E0 = 0.123
    eps = np.full((grid.n_points, 1), E0)
    Q = np.ones((grid.n_points, 1, 1)) * 0.7
    lo, width = -0.5, 0.1
    m, u = histogram(grid, eps, Q, lo, width, 10)
    b = int((E0 - lo) / width)
    x = E0 - (lo + (b + 0.5) * width)
    total = 0.7 * grid.weight * grid.n_points
    np.testing.assert_allclose(m[b, :, 0], [total * x**q / math.factorial(q) for q in range(5)], rtol=1e-12)
    assert np.abs(np.delete(m, b, axis=0)).max() == 0 and u[0] == 0
    m, u = histogram(grid, eps, Q, 0.2, width, 10)
    assert not m.any() and u[0] == pytest.approx(total, rel=1e-12)


def test_closed_form_cross_section_matches_geometric_kernel():
    """_delta_piece (closed-form cone volumes) = _delta_simplex (determinants), incl. near-ties."""
    rng = np.random.default_rng(1)
    for d in (1, 2, 3):
        nv = d + 1
        pts, idx, mat = np.empty((8, nv)), np.empty(nv, np.int64), np.empty((nv, nv))
        a1, a2 = np.empty(nv), np.empty(nv)
        for trial in range(300):
            e = np.sort(rng.normal(size=nv))
            if trial % 3 == 0:
                e[1] = e[0] + 1e-9
            for m in range(d):
                E = e[m] + rng.uniform(0.01, 0.99) * (e[m + 1] - e[m])
                _delta_simplex(e, E, d, pts, idx, mat, a1)
                _delta_piece(e, E, d, m + 1, a2)
                np.testing.assert_allclose(a2, a1, rtol=0, atol=1e-13 * np.abs(a1).max())


# ---------------------------------------------------------------- 3. T = 0 read-out


def dirac(grid, m=0.2, bands=(1,), k0=None):
    k = grid.points() if k0 is None else grid.points() - k0
    E = np.sqrt((k**2).sum(axis=1) + m * m)
    eps = np.stack([s * E for s in bands], axis=1)
    vx2 = k[:, 0] ** 2 / E**2  # v_x² is the same in both bands
    return eps, np.repeat(vx2[:, None, None], len(bands), axis=1)


@pytest.mark.parametrize("n, dim", [(48, 2), (16, 3)])
def test_zero_temperature_equals_theta_delta_sums(n, dim):
    """No vertex energy in μ's bin: the read-out is exact (ρ is a polynomial of degree ≤ d there):
    orders 0, 1, 2 equal Σ W^θ Q, −Σ W^δ Q and d/dμ Σ W^δ Q (central difference, exact for the
    quadratic 2D ρ; O(10⁻⁸) for the cubic 3D one). With a vertex energy κ inside the bin and
    μ − κ ∝ w, the errors of order p scale as w^(d−p) (ρ is C^(d−2) at a vertex energy)."""
    grid = window_grid(n, 2.0, dim)
    # off-centre cone: no symmetry-tied vertex energies (a tied edge would make ρ jump, not kink)
    eps, Q = dirac(grid, k0=np.array([0.0123, -0.0371, 0.0217][:dim]))
    vi = chunk_vertices(grid, 0, grid.n_points)

    def sums(E, weights):
        return np.einsum("ekn,knc->ec", weights(eps, grid, np.atleast_1d(E)), Q)[:, 0]

    verts = np.unique(eps)
    kappa = verts[np.argmin(np.abs(verts - 0.5))]
    gaps = np.diff(verts)
    i = np.searchsorted(verts, kappa)
    room = min(gaps[i - 1], gaps[i])  # distance from κ to its neighbouring vertex energies
    # (a) μ between vertex energies, its bin free of them
    mu = kappa + 0.5 * gaps[i]
    width = 0.2 * gaps[i]
    lo = mu - 3.4 * width
    m, u = np.zeros((8, 5, 1)), np.zeros(1)
    accumulate_simplex_moments(grid, 0, grid.n_points, vi, eps[vi], Q[vi], lo, width, m, u)
    z = [zero_temperature(lo, width, m, u, mu, order)[0, 0] for order in range(3)]
    D = sums(mu, delta_weights)[0]
    dmu = 1e-5 * gaps[i]
    dD = np.diff(sums([mu - dmu, mu + dmu], delta_weights))[0] / (2 * dmu)
    assert z[0] == pytest.approx(sums(mu, theta_weights)[0], rel=1e-12)
    assert -z[1] == pytest.approx(D, rel=1e-11)
    assert z[2] == pytest.approx(dD, rel=1e-6, abs=1e-6 * D / gaps[i])
    # (b) a break of ρ at κ inside μ's bin (ρ is C^{d−2} there: a kink in 2D, a jump of ρ'' in 3D)
    err, ws = [], room / 2 ** np.arange(1, 5)
    for w in ws:
        lo, mu = kappa - 0.3 * w - 3 * w, kappa + 0.4 * w
        m, u = np.zeros((7, 5, 1)), np.zeros(1)
        accumulate_simplex_moments(grid, 0, grid.n_points, vi, eps[vi], Q[vi], lo, w, m, u)
        dD = np.diff(sums([mu - 1e-4 * w, mu + 1e-4 * w], delta_weights))[0] / (2e-4 * w)
        z = np.array([zero_temperature(lo, w, m, u, mu, order)[0, 0] for order in range(3)])
        err.append(z - [sums(mu, theta_weights)[0], -sums(mu, delta_weights)[0], dD])
    err = np.array(err)
    assert observed_order(ws, err[:, 0]) == pytest.approx(dim, abs=0.1)  # O(w^d)
    assert observed_order(ws, err[:, 1]) == pytest.approx(dim - 1, abs=0.1)  # O(w^(d−1))
    if dim == 3:
        assert observed_order(ws, err[:, 2]) == pytest.approx(1.0, abs=0.15)  # O(w^(d−2))


def test_zero_temperature_validation():
    m, u = np.zeros((4, 3, 2)), np.zeros(2)
    assert zero_temperature(0.0, 0.5, m, u, [0.0, 1.3, 2.0], 1).shape == (3, 2)
    with pytest.raises(ValueError):
        zero_temperature(0.0, 0.5, m, u, 2.1, 0)
    with pytest.raises(ValueError):
        zero_temperature(0.0, 0.5, m, u, 1.0, 3)


# ---------------------------------------------------------------- 4. finite T on a fixed coarse grid


def test_finite_T_converges_to_T0_where_point_sampling_fails():
    """2D massive Dirac on a FIXED 64² window, Q = v_x², both bands, μ = 0.5: spectral.contract of
    the simplex histograms tends to the T = 0 Drude weight Σ W^δ Q as T → 0, down to k_BT = 10⁻⁴ of
    the bandwidth (≈ 10⁻² of the energy step between neighbouring k-points); point-sampled
    histograms on the same grid turn into noise there (O(1) relative errors)."""
    grid = window_grid(64, 2.0, 2)
    eps, Q = dirac(grid, bands=(-1, 1))
    mu = np.array([0.5])
    D0 = np.einsum("kn,kn->", delta_weights(eps, grid, 0.5), Q[:, :, 0])
    bandwidth = eps.max() - eps.min()
    vi = chunk_vertices(grid, 0, grid.n_points)
    rel_tet, rel_pts = [], []
    fracs = [1e-1, 1e-2, 1e-3, 1e-4]
    for frac in fracs:
        kT = np.array([frac * bandwidth])
        bins = spectral.EnergyBins(mu, kT)
        mt, ut = bins.empty(1)
        mp, up = bins.empty(1)
        accumulate_simplex_moments(grid, 0, grid.n_points, vi, eps[vi], Q[vi], bins.lo, bins.width, mt, ut)
        spectral.accumulate(eps, np.full(grid.n_points, grid.weight), Q, bins.lo, bins.width, mp, up)
        rel_tet.append(-spectral.contract(bins, mt, ut, mu, kT, 1)[0, 0, 0] / D0 - 1)
        rel_pts.append(-spectral.contract(bins, mp, up, mu, kT, 1)[0, 0, 0] / D0 - 1)
        if frac == fracs[-1]:  # the same moments read out at T = 0
            assert -zero_temperature(bins.lo, bins.width, mt, ut, mu, 1)[0, 0] == pytest.approx(D0, rel=1e-10)
    rel_tet, rel_pts = np.abs(rel_tet), np.abs(rel_pts)
    assert abs(rel_tet[0] - rel_pts[0]) < 0.03  # at high T both are fine (and both far from T = 0)
    assert np.all(np.diff(rel_tet) < 0)
    assert rel_tet[-1] < 1e-5
    assert rel_pts[-1] > 0.3 and rel_pts[-2] > 0.03


# ---------------------------------------------------------------- 5. closed-form physics


def test_dirac_drude_weight_closed_form():
    """2D massive Dirac ε = √(k² + m²) (v = 1, m = 0.2, window kmax = 2), T = 0 Drude weight
    D(μ) = Σ∫ d²k/(2π)² v_x² δ(ε − μ) = (μ² − m²)/(4π μ) (polar coordinates: k_F² = μ² − m²,
    v = k/ε, δ(ε − μ) = (μ/k_F) δ(k − k_F), ∫cos² = π: D = π k_F · (μ/k_F) · (k_F²/μ²)/(2π)²).

    Two routes from the same moments:
    - Fermi sea (order 0, Q = ∂²ε/∂k_x² = (k_y² + m²)/ε³; ∫θ(μ − ε) ∂_x²ε = ∫δ(ε − μ) v_x² by parts):
      converges as h², observed order 2.00;
    - Fermi surface (order 1, Q = v_x²): the pointwise error of a curved Fermi line has an
      oscillating h^{3/2} part (see test_tetrahedron.test_delta_dos_2d_converges), so the RMS over
      μ ∈ [0.45, 0.55] is checked, observed order ≈ 1.5, and μ = 0.5 itself to 4e-4.
    """
    m = 0.2
    exact = lambda mu: (mu**2 - m**2) / (4 * np.pi * mu)  # noqa: E731
    mus = np.linspace(0.45, 0.55, 41)
    lo, width, n_bins = 0.4, 2.5e-3, 80
    hs, err_sea, err_surf = [], [], []
    for n in (64, 128, 256, 384):
        grid = window_grid(n, 2.0, 2)
        k = grid.points()
        E = np.sqrt((k**2).sum(axis=1) + m * m)
        Q = np.stack([k[:, 0] ** 2 / E**2, (k[:, 1] ** 2 + m * m) / E**3], axis=1)[:, None, :]
        mom, u = histogram(grid, E[:, None], Q, lo, width, n_bins)
        surf = -zero_temperature(lo, width, mom, u, mus, 1)[:, 0] / exact(mus) - 1
        sea = zero_temperature(lo, width, mom, u, mus, 0)[:, 1] / exact(mus) - 1
        hs.append(grid.spacing)
        err_sea.append(sea[20])
        err_surf.append(np.sqrt(np.mean(surf**2)))
        if n == 384:
            assert abs(surf[20]) < 4e-4 and abs(sea[20]) < 2e-4
    assert observed_order(hs, err_sea) == pytest.approx(2.0, abs=0.15)
    assert 1.3 < observed_order(hs, err_surf) < 2.2
