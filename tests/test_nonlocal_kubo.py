"""002 Eq. 11 (multi-band Kubo, spatially dispersive): against the two-band Eq. 12, a doubled (degenerate) copy,
gauge rotations inside degenerate groups, and the closed form of its intraband part."""

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields
from qgtflow.kgrid import make_grid
from qgtflow.models.builtin import ndd_two_valley
from qgtflow.models.polynomial import PolynomialModel
from qgtflow.reduce import nonlocal_kubo as nk
from qgtflow.reduce.transitions import ndd_accumulate, two_band_pairs

X, Z = 0, 2
MU, KT = np.array([0.0, 0.6]), np.array([0.05])  # μ in the global gap; μ in valley 1's conduction band
OMEGA = np.array([0.5, 1.0, 2.5])  # two below every direct gap, one across valley 1's


def _grid(model, n=12, kmax=4.0):
    grid = make_grid(model, n, kmax=kmax)
    k = grid.points()
    return k, np.full(len(k), grid.weight)


def _kubo_delta_n(model, k, w, eta, sectors=False, h=None):
    h = nk.step_size(model, k, eta, KT) if h is None else h
    plus, minus = (nk.sigma_q_derivative(model, k, w, Z, MU, KT, s * OMEGA, eta, h, sectors=sectors)[..., X, X]
                   for s in (1, -1))
    return nk.delta_n(plus, minus)


def _eq12_delta_n(model, k, w, eta):
    f = compute_fields(model, k)
    pairs = two_band_pairs(model.band_sector)
    out = np.zeros((len(pairs), OMEGA.size, MU.size, KT.size), complex)
    ndd_accumulate(f["energy"], f["velocity"], f["quantum_metric"], w, model.band_weight, pairs, MU, KT, OMEGA,
                   eta, out, np.zeros(out.shape))
    return -0.5 * out.sum(axis=0)  # 002 Eq. 12 in units of e²cμ0/ħ (kinds._emit_delta_n)


@pytest.fixture(scope="module")
def seed_model():
    model = ndd_two_valley()
    k, w = _grid(model)
    return model, k, w


def test_interband_kubo_equals_two_band_eq12_on_the_seed_model(seed_model):
    """Re Δn: the same on the same grid (to the Richardson error); Im Δn: the two broadenings of the δ-functions
    (Eq. 11 at ω + iη; Eq. 12's Lorentzians) differ by O(η), so the gap closes linearly as η → 0."""
    model, k, w = seed_model
    gaps = []
    for eta in (0.04, 0.02):
        kubo = _kubo_delta_n(model, k, w, eta)[nk.PARTS.index("interband")]
        eq12 = _eq12_delta_n(model, k, w, eta)
        scale = np.abs(eq12.real).max()
        assert scale > 1e-3
        np.testing.assert_allclose(kubo.real, eq12.real, rtol=0, atol=1e-7 * scale)
        gaps.append(np.abs(kubo.imag - eq12.imag).max())
    assert gaps[0] < 0.1 * scale
    assert 1.6 < gaps[0] / gaps[1] < 2.4  # O(η)


def test_intraband_part_is_the_fermi_surface_closed_form(seed_model):
    """Linear order in q of the m = n terms: σ^intra_xxz = Σ_n ∫ ∂_zε_n (∂_xε_n)² f0'(ε_n) / (i z²)."""
    model, k, w = seed_model
    eta = 0.04
    h = nk.step_size(model, k, eta, KT)
    sigma = nk.sigma_q_derivative(model, k, w, Z, MU, KT, OMEGA, eta, h)[nk.PARTS.index("intraband"), ..., X, X]
    f = compute_fields(model, k)
    v = f["velocity"]
    from qgtflow.reduce.occupation import fermi_derivative

    df = fermi_derivative(f["energy"][..., None, None], MU[:, None], KT[None, :], 1)  # (N, n, μ, T)
    surface = np.einsum("k,kn,knab->ab", w, v[..., Z] * v[..., X] ** 2, df)
    z = OMEGA + 0.04j
    closed = surface[None] / (1j * z[:, None, None] ** 2)
    assert np.abs(closed).max() > 1e-4
    np.testing.assert_allclose(sigma, closed, rtol=0, atol=1e-7 * np.abs(closed).max())


def _doubled(block, seed=7):
    """block ⊗ 1₂ in a scrambled basis (a fixed random unitary): degenerate pairs everywhere, mixed basis."""
    rng = np.random.default_rng(seed)
    n = 2 * block.nbands
    scramble, _ = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    expo = [tuple(e) for e in block.exponents]
    terms = {e: scramble @ np.kron(c, np.eye(2)) @ scramble.conj().T for e, c in zip(expo, block.coefficients)}
    return PolynomialModel("doubled", block.dim, terms, kmax=block.kmax)


def test_a_doubled_copy_gives_exactly_twice_the_single_copy(seed_model):
    model, k, w = seed_model
    block = model.sectors[0]
    h = nk.step_size(block, k, 0.04, KT)
    single = _kubo_delta_n(block, k, w, 0.04, h=h)
    double = _kubo_delta_n(_doubled(block), k, w, 0.04, h=h)
    for part in range(len(nk.PARTS)):
        scale = np.abs(single[part]).max()
        assert scale > 1e-5
        np.testing.assert_allclose(double[part], 2 * single[part], rtol=0, atol=1e-9 * scale)


def test_pair_sum_is_gauge_invariant_inside_degenerate_groups(seed_model):
    """Random unitaries inside each degenerate pair, at k and at k − q separately, change nothing."""
    _, k, w = seed_model
    model = _doubled(seed_model[0].sectors[0])
    q = np.array([0.0, 0.0, 0.03])
    ea, ua = np.linalg.eigh(model.derivatives(k - q, order=0)[0])
    eb, ub = np.linalg.eigh(model.derivatives(k, order=0)[0])
    vertex = model.derivatives(k - q / 2, order=1)[1]
    same = np.kron(np.eye(2, dtype=bool), np.ones((2, 2), bool))[None].repeat(len(k), axis=0)
    assert np.allclose(eb[:, ::2], eb[:, 1::2], atol=1e-12)  # degenerate pairs (0, 1), (2, 3)
    args = (vertex, same, w, MU, KT, OMEGA + 0.04j)
    ref = nk.pair_sum(ea, ua, eb, ub, *args)
    rng = np.random.default_rng(11)

    def rotated(u):
        blocks = np.linalg.qr(rng.normal(size=(len(k), 2, 2, 2)) + 1j * rng.normal(size=(len(k), 2, 2, 2)))[0]
        r = np.zeros((len(k), 4, 4), complex)
        r[:, :2, :2], r[:, 2:, 2:] = blocks[:, 0], blocks[:, 1]
        return u @ r

    again = nk.pair_sum(ea, rotated(ua), eb, rotated(ub), *args)
    np.testing.assert_allclose(again, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert np.abs(ref[nk.PARTS.index("intraband")]).max() > 1e-6  # the rotation mixes real intraband terms


def test_eq15_in_the_global_gap_is_the_magnetoelectric_alpha_alone(seed_model):
    """002 Eq. 15, Im(σ_xxz + σ_xzx)(ω → 0) = −α_xy + (3/2)γ_xxz + (1/2)γ_zzx: with μ in the global gap the γ's (Fermi
    surface, 002 Eq. 10) vanish, so the left side is −α_xy — a Fermi-sea constant that does not move with μ inside
    the gap, and that does not vanish for one valley of Eq. 14 (T and I both broken: design note, finding 3)."""
    model, k, w = seed_model
    mu, kT, zero = np.array([-0.03, 0.0, 0.03]), np.array([0.002]), np.array([0.0])  # global gap: |μ| < 0.05
    h = nk.step_size(model, k, 0.05, kT)
    along_z = nk.sigma_q_derivative(model, k, w, Z, mu, kT, zero, 0.05, h, sectors=True)[..., X, X]
    along_x = nk.sigma_q_derivative(model, k, w, X, mu, kT, zero, 0.05, h, sectors=True)[..., X, Z]
    lhs = (along_z + along_x).imag  # (sector, part, ω, μ, T)
    inter, intra = lhs[:, 0, 0, :, 0], lhs[:, 1, 0, :, 0]
    assert np.abs(intra).max() < 1e-12 * np.abs(inter).max()
    np.testing.assert_allclose(inter, inter[:, :1].repeat(3, axis=1), rtol=1e-8)
    assert np.all(np.abs(inter[:, 0]) > 1e-3)  # −α_xy of each valley


def test_eq15_alpha_equals_an_independent_closed_form(seed_model):
    """An independent α_xy for Eq. 14 (docs/AMBIGUITIES-notes.md 002.A). The tilt v'k_z is a scalar, so it leaves
    the states alone and shifts every pair energy ε_{m,k−q} − ε_{n,k} by −v'q_z. With μ in the gap, Eq. 11 is then
    the untilted (mirror-z even) pair sum at ω − v'q_z, and σ_xxz(ω = 0) = 4iv' Σ∫ g_xx E³/(E² + η²)², with
    E = ε_c − ε_v. This holds at any η. The magnetoelectric currents of Eq. 16 (∂P/∂t with P = αB, ∇×M with
    M = αᵀE) give σ_xxz = −2iα_xy and σ_xzx = iα_xy. So Eq. 15 in the gap reads −α_xy, with
    α_xy = −v'χ_xx = −2v' Σ∫ g_xx/E: the Röntgen magnetization M = P × v' of a dielectric that moves at v'ẑ."""
    model, k, w = seed_model
    mu, kT, zero = np.array([0.0]), np.array([0.002]), np.array([0.0])
    for eta, tol in ((0.05, 1e-3), (0.02, 2e-4)):  # σ_xzx and the sum carry O(η²/E²), E ≥ 2Δ₁
        h = nk.step_size(model, k, eta, kT)
        along_z = nk.sigma_q_derivative(model, k, w, Z, mu, kT, zero, eta, h, sectors=True)[:, 0, 0, 0, 0, X, X]
        along_x = nk.sigma_q_derivative(model, k, w, X, mu, kT, zero, eta, h, sectors=True)[:, 0, 0, 0, 0, X, Z]
        for s, (block, weight) in enumerate(zip(model.sectors, model.weights)):
            f = compute_fields(block, k)
            gap = f["energy"][:, 1] - f["energy"][:, 0]
            g = f["quantum_metric"][:, 0, X, X]
            vprime = block.params["vprime"]
            doppler = 4j * vprime * weight * np.sum(w * g * gap ** 3 / (gap ** 2 + eta ** 2) ** 2)
            alpha = -2 * vprime * weight * np.sum(w * g / gap)
            assert abs(alpha) > 5e-3
            assert abs(along_z[s] - doppler) < 1e-8 * abs(doppler)
            assert abs(along_x[s] - 1j * alpha) < tol * abs(alpha)
            assert abs((along_z[s] + along_x[s]).imag + alpha) < tol * abs(alpha)  # Eq. 15: −α_xy


def test_alpha_continuum_closed_form():
    """The α_xy of one valley with no k·p window: the in-plane integral of g_xx/E is 1/(24π|M|) at mass M (any v).
    The k_z integral of M = Δ + k_z²/2m then gives α_xy = −v' √(2m/Δ)/(24π). Checked here by quadrature of the
    model's own g_xx/E on a polar in-plane grid."""
    model = ndd_two_valley().sectors[0]
    p = np.geomspace(1e-4, 1e3, 3000)  # radial |k_∥| (v = 1)
    theta = (np.arange(16) + 0.5) * 2 * np.pi / 16
    kz = 0.7
    k = np.stack([np.outer(p, np.cos(theta)).ravel(), np.outer(p, np.sin(theta)).ravel(),
                  np.full(p.size * theta.size, kz)], axis=1)
    f = compute_fields(model, k)
    integrand = (f["quantum_metric"][:, 0, X, X] / (f["energy"][:, 1] - f["energy"][:, 0])).reshape(p.size, -1)
    radial = integrand.mean(axis=1) * p / (2 * np.pi)  # ∫d²k/(2π)² = ∫p dp ⟨·⟩_θ/(2π)
    tail = 1 / (32 * np.pi * p[-1])  # the integrand's 1/(32π p²) beyond the last point
    in_plane = np.sum(0.5 * (radial[1:] + radial[:-1]) * np.diff(p)) + tail
    mass = 1.0 + kz ** 2 / 2
    assert in_plane == pytest.approx(1 / (24 * np.pi * mass), rel=1e-4)


def test_eq15_in_a_metal_is_alpha_of_f_plus_two_fermi_surface_dipoles(seed_model):
    """002 Eq. 15 with μ in a band (docs/AMBIGUITIES-notes.md 002.A, "The metal"). At ω = 0, σ = iΠ(z)/z with
    z = iη, so Im σ_ijk = Im ∂_qΠ(0)/η + Re ∂_q∂_zΠ(0) + O(η). The interband pairs have gaps, so their η → 0 limit is
    regular; the tilt v'k_z of Eq. 14 gives the magnetoelectric α of the occupations, the q-derivatives of the
    occupations give two quantum-metric dipoles, and the untilted q-derivatives cancel (the d·σ antiunitary σ_yK):

        Im σ^inter_xxz = −2α(f) + γ_xzx,   Im σ^inter_xzx = α(f) + γ_xxz      (+ O(η²), the in-gap O(η²/E²))
        α(f) = −2v' Σ∫ g_xx (f_v − f_c)/E,   γ_jik = Σ_n ∫ v_i,n g_jk f0'(ε_n)   (002 Eq. 10, AMBIGUITIES 002.1)

    so Im(σ_xxz + σ_xzx)^inter = −α(f) + γ_xxz + γ_xzx, where Eq. 15 (consistent reading) has −α + (3/2)γ_xxz +
    (1/2)γ_zzx and γ_zzx = 0 here (odd in k_x): they differ by γ_xzx − γ_xxz/2. The intraband part is the
    Drude-like 2Σ∫ v_x² v_z f0'/η² (τ², extrinsic). Each identity holds on any grid (checked with η² Richardson)."""
    model, k, w = seed_model
    mu, kT, zero = np.array([1.2, 1.6]), np.array([0.1]), np.array([0.0])  # both valleys metallic (bottoms 0.05, 1.05)
    sums = {}
    for eta in (0.05, 0.025):
        h = nk.step_size(model, k, eta, kT)
        along_z = nk.sigma_q_derivative(model, k, w, Z, mu, kT, zero, eta, h, sectors=True)[:, :, 0, :, 0, X, X]
        along_x = nk.sigma_q_derivative(model, k, w, X, mu, kT, zero, eta, h, sectors=True)[:, :, 0, :, 0, X, Z]
        sums[eta] = (along_z.imag, along_x.imag)  # (sector, part, μ)
    from qgtflow.reduce.occupation import fermi, fermi_derivative

    for s, (block, weight) in enumerate(zip(model.sectors, model.weights)):
        f = compute_fields(block, k)
        e, v, g = f["energy"], f["velocity"], f["quantum_metric"]
        occ = fermi(e[..., None], mu, kT[0])  # (N, n, μ)
        df = weight * fermi_derivative(e[..., None], mu, kT[0], 1)
        alpha = -2 * block.params["vprime"] * weight * np.einsum(
            "k,km->m", w * g[:, 0, X, X] / (e[:, 1] - e[:, 0]), occ[:, 0] - occ[:, 1])
        g_xxz = np.einsum("k,kn,knm->m", w, v[..., X] * g[:, :, X, Z], df)
        g_xzx = np.einsum("k,kn,knm->m", w, v[..., Z] * g[:, :, X, X], df)
        g_zzx = np.einsum("k,kn,knm->m", w, v[..., Z] * g[:, :, Z, X], df)
        drude = 2 * np.einsum("k,kn,knm->m", w, v[..., X] ** 2 * v[..., Z], df)
        scale = np.abs(g_xxz) + np.abs(g_xzx)
        assert np.all(scale > 3e-4) and np.all(np.abs(alpha) > 5e-3)
        assert np.all(np.abs(g_zzx) < 1e-12 * scale)
        richardson = [(4 * sums[0.025][c][s, 0] - sums[0.05][c][s, 0]) / 3 for c in (0, 1)]  # η → 0
        np.testing.assert_allclose(richardson[0], -2 * alpha + g_xzx, rtol=0, atol=1e-6 * scale.min())
        np.testing.assert_allclose(richardson[1], alpha + g_xxz, rtol=0, atol=1e-6 * scale.min())
        eq15_printed = -alpha + 1.5 * g_xxz + 0.5 * g_zzx
        assert np.all(np.abs(richardson[0] + richardson[1] - eq15_printed) > 0.3 * scale)  # γ_xzx − γ_xxz/2
        for eta in (0.05, 0.025):
            intra = sums[eta][0][s, 1] + sums[eta][1][s, 1]
            np.testing.assert_allclose(intra, drude / eta ** 2, rtol=1e-5)


def test_metallic_eq15_forms_hold_for_any_two_band_model_with_a_scalar_tilt():
    """The derivation behind the metallic test above does not use Eq. 14's mirror z or a uniform tilt: for
    H = t(k) + d(k)·σ with t independent of k_x (so v_x has no identity part), the untilted q-derivatives still cancel
    (σ_yK anticommutes with d·σ and ∂d·σ), and Im σ^inter_xxz(ω = 0, η → 0) = Σ_n∫ v_z,n g_xx f0'_n + 4Σ∫ ∂_zt g_xx
    (f_v − f_c)/E (for t = v'k_z: γ_xzx − 2α(f)). Here d has no mirror and ∂_zt = 0.8 + 0.2k_y varies."""
    from qgtflow.models.builtin import PAULI as P
    from qgtflow.reduce.occupation import fermi, fermi_derivative

    terms = {(1, 0, 0): P["x"] + 0.2 * P["y"], (0, 1, 1): 0.3 * P["x"] + 0.2 * P["0"], (0, 1, 0): P["y"],
             (0, 0, 0): P["z"], (0, 0, 2): 0.5 * P["z"], (2, 0, 0): 0.4 * P["z"], (0, 0, 1): 0.3 * P["z"] + 0.8 * P["0"],
             (0, 2, 0): 0.3 * P["0"], (1, 1, 0): 0.2 * P["z"]}
    model = PolynomialModel("tilted_d_sigma", 3, terms, kmax=4.0)
    k, w = _grid(model)
    mu, kT, zero = np.array([1.5, 2.5]), np.array([0.15]), np.array([0.0])
    kubo = {}
    for eta in (0.05, 0.025):
        h = nk.step_size(model, k, eta, kT)
        kubo[eta] = nk.sigma_q_derivative(model, k, w, Z, mu, kT, zero, eta, h)[0, 0, :, 0, X, X].imag
    f = compute_fields(model, k)
    e, v, g = f["energy"], f["velocity"], f["quantum_metric"]
    occ = fermi(e[..., None], mu, kT[0])
    dipole = np.einsum("k,kn,knm->m", w, v[..., Z] * g[:, :, X, X], fermi_derivative(e[..., None], mu, kT[0], 1))
    tilt_z = 0.8 + 0.2 * k[:, 1]
    sea = 4 * np.einsum("k,km->m", w * tilt_z * g[:, 0, X, X] / (e[:, 1] - e[:, 0]), occ[:, 0] - occ[:, 1])
    assert np.all(np.abs(dipole) > 1e-3) and np.all(np.abs(sea) > 5e-3)
    richardson = (4 * kubo[0.025] - kubo[0.05]) / 3
    np.testing.assert_allclose(richardson, dipole + sea, rtol=0, atol=1e-6 * np.abs(dipole).min())
