"""Tests of the 004 electro-optic post-processing (qgtflow.reduce.thin_film)."""

import itertools

import numpy as np
import pytest

from qgtflow.reduce.thin_film import (
    Z0,
    eq9_coefficients,
    eq9_delta_sigma,
    field_induced_conductivity,
    incident_jones,
    pockels_kerr_split,
    polarization_rotation,
    polarization_state,
    reflectance_change,
    sheet_absorptance,
    sheet_reflection_transmission,
    transmittance_change,
)

RNG = np.random.default_rng(20240611)

# Realistic magnitudes for gapped bilayer graphene at ωτ ~ 1 (004 Fig. 1): Z0 σ0 ~ 0.3, δσ/σ0 ~ 10 %
# at E ~ 2e4 V/m.
SIGMA_SCALE = 1e-3  # S
P_SCALE = 5e-9  # S m / V
K_SCALE = 2.5e-13  # S m^2 / V^2


def crandn(*shape, scale=1.0):
    return scale * (RNG.normal(size=shape) + 1j * RNG.normal(size=shape))


def drude_sigma0(omega_tau, D=SIGMA_SCALE):
    """Isotropic σ0 = D/(1 + iωτ) (004 Eq. 4 form, e^{+iωt}), shape (..., 2, 2)."""
    s = D / (1 + 1j * np.asarray(omega_tau, dtype=float))
    return s[..., None, None] * np.eye(2)


# ------------------------------------------------------------------------------------------------
# C_3v tensors by group averaging (independent of the Eq. 9 reading)
# ------------------------------------------------------------------------------------------------
def c3v_group():
    """The six 2×2 matrices of C_3v with the mirror x → −x."""
    mats = []
    for n in range(3):
        a = 2 * np.pi * n / 3
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        mats.append(R)
        mats.append(R @ np.diag([-1.0, 1.0]))
    return mats


def transform(T, g):
    """T'_{a...} = g_{aa'} ... T_{a'...} on the trailing Cartesian indices."""
    rank = T.ndim
    out = T
    for ax in range(rank):
        out = np.moveaxis(np.tensordot(g, out, axes=([1], [ax])), 0, ax)
    return out


def c3v_average(T):
    G = c3v_group()
    return sum(transform(T, g) for g in G) / len(G)


def c3v_tensors(totally_symmetric_kerr=False):
    P = c3v_average(crandn(2, 2, 2, scale=P_SCALE))
    K = crandn(2, 2, 2, 2, scale=K_SCALE)
    if totally_symmetric_kerr:
        K = sum(np.transpose(K, p) for p in itertools.permutations(range(4))) / 24
    return P, c3v_average(K)


def test_c3v_averaged_tensors_are_invariant_and_have_eq9_pattern():
    P, K = c3v_tensors()
    for g in c3v_group():
        np.testing.assert_allclose(transform(P, g), P, atol=1e-12 * P_SCALE)
        np.testing.assert_allclose(transform(K, g), K, atol=1e-12 * K_SCALE)
    x, y = 0, 1
    # mirror x → −x: entries with an odd number of x indices vanish
    for idx in itertools.product((0, 1), repeat=3):
        if idx.count(0) % 2 == 1:
            assert abs(P[idx]) < 1e-12 * P_SCALE
    assert np.allclose([P[x, x, y], P[x, y, x], P[y, x, x]], -P[y, y, y], atol=1e-12 * P_SCALE)
    assert abs(P[y, y, y]) > 1e-3 * P_SCALE


@pytest.mark.parametrize("snap", [False, True])
def test_eq9_equals_general_contraction_for_c3v(snap):
    P, K = c3v_tensors(totally_symmetric_kerr=snap)
    sigma0 = drude_sigma0(1.0)
    c = eq9_coefficients(P, K)
    np.testing.assert_allclose(c["dK"], c["K1"] - c["K2"], rtol=1e-10)  # ΔK = K1 − K2 (text under Eq. 9)
    if snap:
        np.testing.assert_allclose(c["K1"], 3 * c["K2"], rtol=1e-10)  # AMBIGUITIES 004.3
    E = RNG.normal(size=(7, 2)) * 3e4
    general = field_induced_conductivity(sigma0, P, K, E) - sigma0
    eq9 = eq9_delta_sigma(E, c["P"], c["K1"], c["K2"], c["dK"])
    np.testing.assert_allclose(eq9, general, rtol=1e-10, atol=1e-12 * SIGMA_SCALE)
    np.testing.assert_allclose(eq9_delta_sigma(E, c["P"], c["K1"], c["K2"]), general, rtol=1e-10, atol=1e-15)


def test_eq9_differs_from_contraction_without_symmetry():
    """The comparison above can fail: a generic tensor is not of the Eq. 9 form."""
    P = crandn(2, 2, 2, scale=P_SCALE)
    K = crandn(2, 2, 2, 2, scale=K_SCALE)
    c = eq9_coefficients(P, K)
    E = np.array([1.3e4, -0.7e4])
    general = field_induced_conductivity(np.zeros((2, 2)), P, K, E)
    assert not np.allclose(eq9_delta_sigma(E, c["P"], c["K1"], c["K2"], c["dK"]), general, rtol=1e-3)


def test_eq9_entries_by_hand():
    """P_xxy = P, P_yyy = −P, K_xxxx = K1, K_xxyy = K2 reproduce Eq. 9 entry by entry."""
    Pv, K1, K2 = 2.0 + 1j, 0.5 - 0.2j, 0.1 + 0.3j
    P = np.zeros((2, 2, 2), complex)
    P[0, 0, 1] = P[0, 1, 0] = P[1, 0, 0] = Pv
    P[1, 1, 1] = -Pv
    K = np.zeros((2, 2, 2, 2), complex)
    K[0, 0, 0, 0] = K[1, 1, 1, 1] = K1
    K[0, 0, 1, 1] = K[1, 1, 0, 0] = K2
    K[0, 1, 0, 1] = K[0, 1, 1, 0] = K[1, 0, 0, 1] = K[1, 0, 1, 0] = (K1 - K2) / 2
    Ex, Ey = 0.3, -1.7
    d = field_induced_conductivity(np.zeros((2, 2)), P, K, [Ex, Ey])
    expected = np.array(
        [
            [Pv * Ey + K1 * Ex**2 + K2 * Ey**2, Pv * Ex + (K1 - K2) * Ex * Ey],
            [Pv * Ex + (K1 - K2) * Ex * Ey, -Pv * Ey + K1 * Ey**2 + K2 * Ex**2],
        ]
    )
    np.testing.assert_allclose(d, expected, rtol=1e-14)
    c = eq9_coefficients(P, K)
    np.testing.assert_allclose([c["P"], c["K1"], c["K2"], c["dK"]], [Pv, K1, K2, K1 - K2])


# ------------------------------------------------------------------------------------------------
# Sheet reflection / transmission (SI S46–S52)
# ------------------------------------------------------------------------------------------------
def test_isotropic_sheet():
    """σ_xx = σ_yy = σ, σ_xy = 0: r = −σZ0/(2 + σZ0)·1, t = 2/(2 + σZ0)·1 (E^r, E^t in the lab frame)."""
    s = np.array([1e-3 + 2e-3j, 5e-2 - 1e-3j, 1e-6])
    r, t = sheet_reflection_transmission(s[:, None, None] * np.eye(2))
    np.testing.assert_allclose(r, (-s * Z0 / (2 + s * Z0))[:, None, None] * np.eye(2), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(t, (2 / (2 + s * Z0))[:, None, None] * np.eye(2), rtol=1e-13)
    # perfect conductor limit: total reflection with r = −1
    r, t = sheet_reflection_transmission(1e6 * np.eye(2))
    np.testing.assert_allclose(r, -np.eye(2), atol=1e-8)
    assert abs(Z0 - 376.730313) < 1e-5


def paper_S49_S52(s):
    """004 SI Eqs. S49 and S52 exactly as printed (σ_xy = σ_yx assumed there), Y below S52."""
    g = 1 / Z0
    sxx, sxy, syy = s[0, 0], s[0, 1], s[1, 1]
    Y = (2 * g + sxx) * (2 * g + syy) - sxy**2
    r = np.array(
        [[-2 * g * sxx + sxy**2 - sxx * syy, -2 * g * sxy], [-2 * g * sxy, -2 * g * syy + sxy**2 - sxx * syy]]
    ) / Y
    t = 2 / Y * np.array([[2 * g**2 + g * syy, -g * sxy], [-g * sxy, 2 * g**2 + g * sxx]])
    return r, t


def solve_boundary_conditions(s, Ei):
    """Numerically solve the sheet boundary conditions with the fields of SI S46.

    Unknowns (E^r, E^t). H^i = −(i/Z0) τ_y E^i, H^r = +(i/Z0) τ_y E^r, H^t = −(i/Z0) τ_y E^t;
    E^i + E^r = E^t and ẑ × (H^t − H^i − H^r) = σ E^t.
    """
    tau_y = np.array([[0, -1j], [1j, 0]])
    zcross = np.array([[0, -1], [1, 0]])  # ẑ × (a_x, a_y) = (−a_y, a_x)
    Hi_of = -1j / Z0 * tau_y
    Hr_of = 1j / Z0 * tau_y
    Ht_of = -1j / Z0 * tau_y
    A = np.zeros((4, 4), complex)
    b = np.zeros(4, complex)
    # E continuity: E^r − E^t = −E^i
    A[:2, :2] = np.eye(2)
    A[:2, 2:] = -np.eye(2)
    b[:2] = -Ei
    # H jump: ẑ×(H^t − H^r) − σE^t = ẑ×H^i
    A[2:, :2] = -zcross @ Hr_of
    A[2:, 2:] = zcross @ Ht_of - s
    b[2:] = zcross @ Hi_of @ Ei
    x = np.linalg.solve(A, b)
    return x[:2], x[2:]


def test_closed_forms_match_boundary_condition_solve_and_paper():
    for _ in range(20):
        s = crandn(2, 2, scale=SIGMA_SCALE * RNG.uniform(0.1, 30))  # general, non-symmetric
        r, t = sheet_reflection_transmission(s)
        for Ei in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), crandn(2)):
            Er, Et = solve_boundary_conditions(s, Ei)
            np.testing.assert_allclose(r @ Ei, Er, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(t @ Ei, Et, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(t, 2 * np.linalg.inv(2 * np.eye(2) + Z0 * s), rtol=1e-10)
        # symmetric σ: the printed S49/S52 agree with ours
        ss = (s + s.T) / 2
        rp, tp = paper_S49_S52(ss)
        r, t = sheet_reflection_transmission(ss)
        np.testing.assert_allclose(r, rp, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(t, tp, rtol=1e-10, atol=1e-14)
    # and the printed form is *not* right for a non-symmetric σ (Hall-like part): the test can fail
    s = np.array([[1e-3, 5e-4], [-5e-4, 1e-3]], complex)
    assert not np.allclose(paper_S49_S52(s)[1], sheet_reflection_transmission(s)[1], rtol=1e-3)


def random_dissipative_sigma(n):
    """Random complex σ (n, 2, 2) with positive-definite Hermitian part."""
    A = crandn(n, 2, 2, scale=SIGMA_SCALE)
    herm = A @ np.conj(np.swapaxes(A, -1, -2)) + 1e-5 * np.eye(2)
    B = crandn(n, 2, 2, scale=SIGMA_SCALE)
    antiherm = (B - np.conj(np.swapaxes(B, -1, -2))) / 2
    return herm + antiherm


def test_energy_balance():
    s = random_dissipative_sigma(50)
    Ei = crandn(50, 2)
    r, t = sheet_reflection_transmission(s)
    Er = np.einsum("nab,nb->na", r, Ei)
    Et = np.einsum("nab,nb->na", t, Ei)
    inc = np.sum(np.abs(Ei) ** 2, -1)
    R = np.sum(np.abs(Er) ** 2, -1) / inc
    T = np.sum(np.abs(Et) ** 2, -1) / inc
    A = Z0 * np.real(np.einsum("na,nab,nb->n", np.conj(Et), s, Et)) / inc
    assert np.all(A > 0)
    np.testing.assert_allclose(R + T + A, 1.0, rtol=1e-12)
    np.testing.assert_allclose(sheet_absorptance(s, Ei), A, rtol=1e-12)
    # lossless (anti-Hermitian) sheet: no absorption, [r; t] is an isometry for every polarization
    B = crandn(50, 2, 2, scale=SIGMA_SCALE * 10)
    s_ah = (B - np.conj(np.swapaxes(B, -1, -2))) / 2
    r, t = sheet_reflection_transmission(s_ah)
    rh = np.conj(np.swapaxes(r, -1, -2))
    th = np.conj(np.swapaxes(t, -1, -2))
    np.testing.assert_allclose(rh @ r + th @ t, np.broadcast_to(np.eye(2), r.shape), atol=1e-12)
    np.testing.assert_allclose(sheet_absorptance(s_ah, Ei), 0.0, atol=1e-12)
    # a dissipative sheet is not an isometry (the check above can fail)
    r, t = sheet_reflection_transmission(s)
    assert not np.allclose(np.conj(np.swapaxes(r, -1, -2)) @ r + np.conj(np.swapaxes(t, -1, -2)) @ t, np.eye(2))


# ------------------------------------------------------------------------------------------------
# Polarization state
# ------------------------------------------------------------------------------------------------
def test_polarization_state_against_time_sampling():
    wt = np.linspace(0, 2 * np.pi, 20001)
    for time_sign in (+1, -1):
        for _ in range(20):
            J = crandn(2)
            angle, ell = polarization_state(J, time_sign=time_sign)
            field = np.real(J[:, None] * np.exp(time_sign * 1j * wt)[None, :])  # (2, nt)
            mag = np.hypot(*field)
            k = np.argmax(mag)
            major = np.arctan2(field[1, k], field[0, k])
            d = (angle - major + np.pi / 2) % np.pi - np.pi / 2
            assert abs(d) < 1e-3
            np.testing.assert_allclose(abs(ell), mag.min() / mag.max(), rtol=1e-5, atol=2e-6)
            dfield = np.gradient(field, wt, axis=1)
            ccw = np.mean(field[0] * dfield[1] - field[1] * dfield[0]) > 0
            assert (ell > 0) == ccw
    a, e = polarization_state(np.array([[1, 0], [1, 1], [1, 1j]]) + 0j)
    np.testing.assert_allclose(a[:2], [0, np.pi / 4], atol=1e-15)
    np.testing.assert_allclose(e, [0, 0, -1], atol=1e-12)  # (1, i) e^{+iωt}: clockwise


# ------------------------------------------------------------------------------------------------
# EO observables (004 Figs. 2, 3)
# ------------------------------------------------------------------------------------------------
def c3v_setup(omega_tau=(1.0, 2.0, 5.0)):
    sigma0 = drude_sigma0(np.asarray(omega_tau))  # (nω, 2, 2)
    P, K = c3v_tensors(totally_symmetric_kerr=True)
    scale = 1 / (1 + 1j * np.asarray(omega_tau))
    return sigma0, P * scale[:, None, None, None], K * (scale**3)[:, None, None, None, None]


def test_zero_field_gives_nothing():
    sigma0, P, K = c3v_setup()
    E0 = np.zeros(2)
    s = field_induced_conductivity(sigma0, P, K, E0)
    np.testing.assert_array_equal(s, sigma0)
    rot = polarization_rotation(sigma0, s)
    for v in rot:
        np.testing.assert_allclose(v, 0.0, atol=1e-14)
    np.testing.assert_allclose(transmittance_change(sigma0, s, np.pi / 4), 0.0, atol=1e-14)
    np.testing.assert_allclose(reflectance_change(sigma0, s, np.pi / 4), 0.0, atol=1e-14)


def test_pockels_odd_kerr_even_for_field_along_y():
    sigma0, P, K = c3v_setup()
    Ey = np.array([0.005, 0.01, 0.03, 0.05]) * 1e6  # V/m (0.005–0.05 V/μm)
    Ep = np.stack([0 * Ey, Ey], -1)[:, None, :]  # (nE, 1, 2)
    Em = -Ep
    # Pockels only: Δθ odd in E_dc, and nonzero
    rp = polarization_rotation(sigma0, field_induced_conductivity(sigma0, P, None, Ep))
    rm = polarization_rotation(sigma0, field_induced_conductivity(sigma0, P, None, Em))
    assert np.min(np.abs(rp.dtheta_t)) > 1e-5 and np.min(np.abs(rp.dtheta_r)) > 1e-5
    np.testing.assert_allclose(rm.dtheta_t, -rp.dtheta_t, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(rm.dtheta_r, -rp.dtheta_r, rtol=1e-10, atol=1e-15)
    # Kerr only: even
    kp = polarization_rotation(sigma0, field_induced_conductivity(sigma0, None, K, Ep))
    km = polarization_rotation(sigma0, field_induced_conductivity(sigma0, None, K, Em))
    assert np.min(np.abs(kp.dtheta_t)) > 1e-8
    for a, b in zip(kp, km):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-18)
    # both: non-reciprocal (004 Fig. 2)
    bp = polarization_rotation(sigma0, field_induced_conductivity(sigma0, P, K, Ep))
    bm = polarization_rotation(sigma0, field_induced_conductivity(sigma0, P, K, Em))
    assert not np.allclose(np.abs(bp.dtheta_t), np.abs(bm.dtheta_t), rtol=1e-3)
    # Kerr-only ΔT, ΔR are even for any polarization angle
    for angle in (0.0, np.pi / 4, 0.3):
        for fn in (transmittance_change, reflectance_change):
            a = fn(sigma0, field_induced_conductivity(sigma0, None, K, Ep), angle)
            b = fn(sigma0, field_induced_conductivity(sigma0, None, K, Em), angle)
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-18)


def test_pockels_linear_term_of_dT_vanishes_at_45_degrees():
    """Eq. 9 with E ∥ y: δσ = diag(PE_y, −PE_y) + O(E²), so for π/4 incidence T and R are even in E_y
    (x ↔ y swap); a linear (Pockels) term in ΔT/T0 requires incidence off π/4 (∝ cos 2·angle)."""
    sigma0, P, _ = c3v_setup()
    Ey = 2e3  # V/m: small enough for the linear term to dominate
    E = np.array([[0, Ey], [0, -Ey]])[:, None, :]
    for fn in (transmittance_change, reflectance_change):
        d45 = fn(sigma0, field_induced_conductivity(sigma0, P, None, E), np.pi / 4)
        np.testing.assert_allclose(d45[0], d45[1], rtol=1e-9, atol=1e-16)
        d0 = fn(sigma0, field_induced_conductivity(sigma0, P, None, E), 0.0)
        odd = (d0[0] - d0[1]) / 2
        assert np.all(np.abs(odd) > 10 * np.abs((d0[0] + d0[1]) / 2))  # linear-dominated at small E
        d90 = fn(sigma0, field_induced_conductivity(sigma0, P, None, E), np.pi / 2)
        np.testing.assert_allclose((d90[0] - d90[1]) / 2, -odd, rtol=1e-2)


def test_pockels_kerr_split():
    sigma0, P, K = c3v_setup()
    E = np.array([0.0, -0.01e6])  # 004 Fig. 3a: E_y = −0.01 V/μm
    split = pockels_kerr_split(transmittance_change, sigma0, P, K, E, angle=0.0)
    np.testing.assert_allclose(
        split["total"], transmittance_change(sigma0, field_induced_conductivity(sigma0, P, K, E), 0.0)
    )
    np.testing.assert_allclose(
        split["pockels"], transmittance_change(sigma0, field_induced_conductivity(sigma0, P, 0 * K, E), 0.0)
    )
    np.testing.assert_allclose(
        split["kerr"], transmittance_change(sigma0, field_induced_conductivity(sigma0, 0 * P, K, E), 0.0)
    )
    np.testing.assert_allclose(split["pockels_fraction"] + split["kerr_fraction"], 1.0)
    # leading order: total ≈ pockels + kerr
    small = pockels_kerr_split(
        lambda s0, s: polarization_rotation(s0, s).dtheta_r, sigma0, P, K, np.array([0.0, 1e2])
    )
    np.testing.assert_allclose(small["total"], small["pockels"] + small["kerr"], rtol=1e-3)


def test_broadcasting_over_omega_and_field():
    sigma0, P, K = c3v_setup(omega_tau=np.linspace(0.5, 5, 4))  # nω = 4
    # add generic (non-C3v) parts so every entry matters
    P = P + crandn(4, 2, 2, 2, scale=P_SCALE)
    K = K + crandn(4, 2, 2, 2, 2, scale=K_SCALE)
    E = RNG.normal(size=(3, 1, 2)) * 2e4  # nE = 3
    s = field_induced_conductivity(sigma0, P, K, E)
    assert s.shape == (3, 4, 2, 2)
    rot = polarization_rotation(sigma0, s)
    dT = transmittance_change(sigma0, s, np.pi / 4)
    dR = reflectance_change(sigma0, s, np.pi / 4)
    r, t = sheet_reflection_transmission(s)
    assert r.shape == t.shape == (3, 4, 2, 2)
    assert dT.shape == dR.shape == rot.dtheta_t.shape == rot.ellipticity_r.shape == (3, 4)
    Ei = incident_jones(np.pi / 4)
    for i in range(3):
        for w in range(4):
            sl = sigma0[w] + P[w] @ E[i, 0] + np.einsum("abcd,c,d->ab", K[w], E[i, 0], E[i, 0])
            np.testing.assert_allclose(s[i, w], sl, rtol=1e-13)
            r1, t1 = sheet_reflection_transmission(sl)
            np.testing.assert_allclose(r[i, w], r1, rtol=1e-13)
            T0 = np.sum(np.abs(2 / (2 + Z0 * sigma0[w, 0, 0]) * Ei) ** 2)
            np.testing.assert_allclose(dT[i, w], np.sum(np.abs(t1 @ Ei) ** 2) / T0 - 1, rtol=1e-10)
            th, el = polarization_state(t1 @ Ei)
            np.testing.assert_allclose(rot.dtheta_t[i, w], th - np.pi / 4, atol=1e-12)
            np.testing.assert_allclose(rot.ellipticity_t[i, w], el, atol=1e-12)
    # eq9 coefficients broadcast over ω
    c = eq9_coefficients(P, K)
    assert c["P"].shape == c["K1"].shape == (4,)


def test_rotation_is_wrapped_modulo_pi():
    """Incidence along y (θ0 = π/2, the edge of the axis-angle range) with E ∥ x: the small rotation
    must come out small (not ≈ ±π) and odd in E for Pockels only."""
    sigma0, P, _ = c3v_setup()
    E = np.array([[2e4, 0.0], [-2e4, 0.0]])[:, None, :]
    rot = polarization_rotation(sigma0, field_induced_conductivity(sigma0, P, None, E), angle=np.pi / 2)
    for d in (rot.dtheta_t, rot.dtheta_r):
        assert np.all(np.abs(d) < 0.2) and np.all(np.abs(d) > 1e-6)
        np.testing.assert_allclose(d[0], -d[1], rtol=1e-9)
