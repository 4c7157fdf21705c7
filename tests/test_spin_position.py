"""The 003 spin-current fields with the Wannier position operator (geometry/spin.py spin_fields_position,
docs/spin-position-operator.md): velocity 𝒱^a = ∂_aH − i[A^W_a, H], vertex ¼{𝒱^a, σ^c}, connection 𝒜 = Ā − iV̂.

Checks: A^W = 0 gives the tight-binding kernel's values bit for bit; an independent dense route (numpy eigh and
the formulas of the spin.py docstring with 𝒱) agrees to 1e-10; the kernel's interband connection is the geometric
one Ā + i<u_m|∂u_n> (eigenvectors differenced in k) to ~1e-8; random unitaries inside degenerate groups change
nothing; the refused fields come back as NaN; and the Zeeman check behind their refusal: Eq. 3 with 𝒜 and the
fn. 82 form ∂_a<σ^b>_n differ by exactly <∇_aσ^b>_nn = −i<[A^W_a, σ^b]>_nn, which is not zero. On a _tb.dat with
position elements, through compute_fields: the dense route on Bloch sums built by hand from the file's blocks, and
independence of the phase convention (I vs II) with the operator on.
"""

import itertools

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields
from qgtflow.geometry.position import SPIN_FULL_VELOCITY_FIELDS, TB_ONLY_FIELDS
from qgtflow.geometry.spin import (
    SPIN_DIPOLE_FIELDS,
    SPIN_FIELDS,
    SPIN_PAIR_FIELDS,
    full_velocity_slots,
    spin_fields,
    spin_fields_position,
)
from qgtflow.models import PolynomialModel
from qgtflow.models.derivatives import index_maps
from qgtflow.models.wannier import read_tb
from tests.test_geometry_spin import pt_with_random_spin, random_polynomial, random_spin
from tests.test_position_operator import LATTICE, bloch, model_blocks, tb_file  # noqa: F401  (tb_file: fixture)

KEPT = tuple(SPIN_FULL_VELOCITY_FIELDS) + ("spin_expectation",)
DERIVATIVES = ("spin_velocity_derivative", "spin_qgt_metric_x_gap_dipole", "spin_qgt_curvature_dipole",
               "spin_bcp_dipole")  # the NumPy routes, which need ∂A^W
K = np.array([[0.31, -0.47], [-0.6, 0.2], [0.05, 0.73]])


def random_connection(dim=2, nbands=3, seed=11, scale=0.4):
    """A^W_a(k), a = 0..dim−1: Hermitian polynomials in k (one PolynomialModel per component)."""
    rng = np.random.default_rng(seed)
    comps = []
    for a in range(dim):
        terms = {}
        for expo in itertools.product(range(3), repeat=dim):
            if sum(expo) <= 2:
                m = rng.normal(size=(nbands, nbands)) + 1j * rng.normal(size=(nbands, nbands))
                terms[expo] = scale * (m + m.conj().T) / (2 * (1 + sum(expo)))
        comps.append(PolynomialModel(f"A{a}", dim, terms))
    return comps


def position_derivatives(comps, k, order=1):
    return np.stack([c.unique_derivatives(k, order=order) for c in comps], axis=1)


def dense_route(H, dH, A, spin):
    """Per k: numpy eigh of H, 𝒱^a = ∂_aH − i[A_a, H] rotated, the spin.py formulas for simple bands."""
    E, U = np.linalg.eigh(H)
    Ud = U.conj().T
    d, n = len(dH), len(E)
    V = np.array([Ud @ (dH[a] - 1j * (A[a] @ H - H @ A[a])) @ U for a in range(d)])
    G = np.array([Ud @ s @ U for s in spin])
    S = np.array([[(V[a] @ G[c] + G[c] @ V[a]) / 4 for c in range(3)] for a in range(d)])
    x = np.zeros((n, n))
    off = ~np.eye(n, dtype=bool)
    x[off] = 1.0 / (E[:, None] - E[None, :])[off]
    out = {"spin_expectation": np.einsum("cii->ic", G).real,
           "spin_velocity": np.einsum("acii->iac", S).real}
    p = np.einsum("acnm,bmn->nmabc", S, V)  # S^{a;c}_nm V^b_mn
    w = x[:, :, None, None, None]
    out["spin_qgt_metric_pair"] = p.real * w**2
    out["spin_qgt_curvature_pair"] = -2.0 * p.imag * w**2
    out["spin_qgt_metric"] = out["spin_qgt_metric_pair"].sum(1)
    out["spin_qgt_curvature"] = out["spin_qgt_curvature_pair"].sum(1)
    out["spin_qgt_metric_x_gap"] = (p.real * w).sum(1)
    out["spin_bcp"] = 2.0 * (p.real * w**3).sum(1)
    # Q/ε² = 2Δ^d_mn g^{ab;c}_nm + Δ̄^{a;c}_mn g^{bd}_nm, g^{bd}_nm = Re 𝒱^b_nm 𝒱^d_mn x², Δ = 𝒱_mm − 𝒱_nn
    v = np.einsum("dii->id", V).real
    Delta = v[None, :, :] - v[:, None, :]  # [n, m, d]
    s = np.einsum("acii->iac", S).real
    Dbar = s[None, :, :, :] - s[:, None, :, :]  # [n, m, a, c]
    gbd = np.einsum("bnm,dmn->nmbd", V, V).real * x[:, :, None, None]**2
    gabc = p.real * w**2
    sea = (2.0 * np.einsum("nmd,nmabc->nmabdc", Delta, gabc)
           + np.einsum("nmac,nmbd->nmabdc", Dbar, gbd)) * x[:, :, None, None, None, None]**2
    out["spin_nonlinear_sea"] = sea.sum(1)
    return out


def test_zero_connection_is_bit_identical_to_the_tight_binding_kernel():
    model = random_polynomial(dim=2, nbands=3)
    Hu = model.unique_derivatives(K)
    Au = np.zeros((len(K), 2, 1) + Hu.shape[2:], complex)
    a = spin_fields_position(Hu, Au, 2, model.spin, pairs=True)
    b = spin_fields(Hu, 2, model.spin, pairs=True)
    assert tuple(a) == SPIN_FIELDS + SPIN_DIPOLE_FIELDS + SPIN_PAIR_FIELDS
    for name in KEPT:
        if name in DERIVATIVES:  # without ∂A^W: NaN
            assert np.isnan(a[name]).all()
        else:
            assert np.array_equal(a[name], b[name]), name
    for name in a:
        if name not in KEPT:
            assert name in TB_ONLY_FIELDS and np.isnan(a[name]).all(), name
    # with ∂A^W = 0 the NumPy derivatives reproduce the kernel's (¼<{∂_a∂_bH, σ^c}> + 2 Σ ε g and its dipoles)
    Au1 = np.zeros((len(K), 2, 3) + Hu.shape[2:], complex)
    c = spin_fields_position(Hu, Au1, 2, model.spin)
    for name in DERIVATIVES:
        np.testing.assert_allclose(c[name], b[name], rtol=0, atol=1e-11 * np.abs(b[name]).max(), err_msg=name)


def test_dense_numpy_route_agrees():
    model = random_polynomial(dim=2, nbands=4, seed=8)
    comps = random_connection(dim=2, nbands=4)
    Hu = model.unique_derivatives(K)
    Au = position_derivatives(comps, K, order=1)
    got = spin_fields_position(Hu, Au, 2, model.spin, pairs=True)
    i1, _, _ = index_maps(2)
    tb = spin_fields(Hu, 2, model.spin)
    for j in range(len(K)):
        ref = dense_route(Hu[j, 0], [Hu[j, i1[a]] for a in range(2)], Au[j, :, 0], model.spin)
        for name, value in ref.items():
            scale = max(np.abs(value).max(), 1e-300)
            np.testing.assert_allclose(got[name][j], value, rtol=0, atol=1e-10 * scale, err_msg=name)
    # and the operator does enter every kept field but the spin expectation
    for name in SPIN_FULL_VELOCITY_FIELDS:
        if name not in SPIN_PAIR_FIELDS:
            assert np.abs(got[name] - tb[name]).max() > 1e-3 * np.abs(tb[name]).max(), name
    np.testing.assert_array_equal(got["spin_expectation"], tb["spin_expectation"])


def _eigvecs(model, k):
    return np.linalg.eigh(model.unique_derivatives(k[None], order=0)[0, 0])


def test_connection_is_the_geometric_one_by_finite_differences():
    """g^{ab;c}_n = Σ_m Im(S_nm 𝒜^b_mn)/ε_nm, Ω^{ab;c}_n = Σ_m 2 Re(S_nm 𝒜^b_mn)/ε_nm with 𝒜^b_mn = Ā^b_mn +
    i<u_m|∂_b u_n>, the eigenvector derivative from a 4-point stencil (phases aligned to u(k))."""
    model = random_polynomial(dim=2, nbands=3, seed=5)
    comps = random_connection(dim=2, nbands=3, seed=2)
    k = K[0]
    Hu = model.unique_derivatives(k[None])
    Au = position_derivatives(comps, k[None], order=0)
    got = spin_fields_position(Hu, Au, 2, model.spin, dipoles=False)
    E, U = _eigvecs(model, k)
    i1, _, _ = index_maps(2)
    H = Hu[0, 0]
    Vfull = [U.conj().T @ (Hu[0, i1[a]] - 1j * (Au[0, a, 0] @ H - H @ Au[0, a, 0])) @ U for a in range(2)]
    G = [U.conj().T @ s @ U for s in model.spin]
    h = 1e-3
    for b in range(2):
        du = np.zeros_like(U)
        for w, step in ((8.0, h), (-8.0, -h), (-1.0, 2 * h), (1.0, -2 * h)):
            kk = k.copy()
            kk[b] += step
            _, Uk = _eigvecs(model, kk)
            ph = np.einsum("in,in->n", U.conj(), Uk)
            du += w * Uk * (ph.conj() / np.abs(ph))
        du /= 12 * h
        conn = U.conj().T @ Au[0, b, 0] @ U + 1j * (U.conj().T @ du)  # 𝒜^b_mn
        for a, c in itertools.product(range(2), range(3)):
            S = (Vfull[a] @ G[c] + G[c] @ Vfull[a]) / 4
            for n in range(3):
                z = sum(S[n, m] * conn[m, n] / (E[n] - E[m]) for m in range(3) if m != n)
                assert abs(got["spin_qgt_metric"][0, n, a, b, c] - z.imag) < 1e-7
                assert abs(got["spin_qgt_curvature"][0, n, a, b, c] - 2 * z.real) < 1e-7


def test_degenerate_groups_are_gauge_invariant():
    """001 Eq. 20 (every band doubly degenerate) with A^W mixing each pair: random unitaries inside the groups
    leave every kept field unchanged."""
    model = pt_with_random_spin()
    comps = random_connection(dim=model.dim, nbands=4, seed=9)
    k = np.array([[0.3, -0.2, 0.1][:model.dim], [0.7, 0.4, -0.5][:model.dim]])
    Hu = model.unique_derivatives(k)
    Au = position_derivatives(comps, k, order=1)
    ref = spin_fields_position(Hu, Au, model.dim, model.spin, 1e-8, pairs=True)
    for seed in (1, 7):
        rot = spin_fields_position(Hu, Au, model.dim, model.spin, 1e-8, gauge_seed=seed, pairs=True)
        for name in KEPT:
            scale = np.abs(ref[name]).max()
            np.testing.assert_allclose(rot[name], ref[name], rtol=0, atol=1e-10 * scale, err_msg=name)


def test_zeeman_sea_and_surface_forms_differ_by_the_covariant_spin_derivative():
    """Why the Zeeman family stays refused: with 𝒜, Σ_m Ω̄^{ab}_nm (003 Eq. 3) = ∂_a<σ^b>_n − <∇_aσ^b>_nn,
    ∇_aσ^b = −i[A^W_a, σ^b] (k-independent σ in the Wannier basis): checked against a 4-point stencil of σ_nn(k),
    and the difference is O(1), not rounding."""
    model = random_polynomial(dim=2, nbands=3, seed=6)
    comps = random_connection(dim=2, nbands=3, seed=4)
    k = K[1]
    Hu = model.unique_derivatives(k[None])
    Au = position_derivatives(comps, k[None], order=0)
    sea = spin_fields(full_velocity_slots(Hu, Au[:, :, 0], 2), 2, model.spin, dipoles=False)["zeeman_qgt_curvature"]
    _, U = _eigvecs(model, k)
    h = 1e-3
    for a in range(2):
        ds = 0.0
        for w, step in ((8.0, h), (-8.0, -h), (-1.0, 2 * h), (1.0, -2 * h)):
            kk = k.copy()
            kk[a] += step
            ds = ds + w * spin_fields(model.unique_derivatives(kk[None]), 2, model.spin,
                                      dipoles=False)["spin_expectation"][0]
        ds = ds / (12 * h)  # [n, b]
        A = Au[0, a, 0]
        cov = np.array([np.diag(U.conj().T @ (-1j * (A @ s - s @ A)) @ U).real for s in model.spin]).T  # [n, b]
        np.testing.assert_allclose(sea[0, :, a, :], ds - cov, rtol=0, atol=1e-7)
        assert np.abs(cov).max() > 0.05


@pytest.mark.parametrize("bad", [(3, 2, 1, 3, 3), (2, 1, 1, 3, 3), (2, 2, 1, 4, 4)])
def test_wrong_position_shape_is_one_line(bad):
    model = random_polynomial(dim=2, nbands=3)
    with pytest.raises(ValueError, match=r"^position operator derivatives have shape .*; expected \(N, d, U, n, n\)"):
        spin_fields_position(model.unique_derivatives(K[:2]), np.zeros(bad, complex), 2, model.spin)


def test_wannier_file_against_an_independent_bloch_sum(tb_file):  # noqa: F811
    """A _tb.dat with off-diagonal position elements, read with the position operator (convention I), through
    compute_fields: every kept spin field equals the dense route on H(k), ∂H(k), A(k) summed by hand from the file's
    blocks (tests/test_position_operator.py ``bloch``, Å, eV)."""
    H, r = model_blocks()
    model = read_tb(tb_file, length_unit="angstrom", dim=2, convention="I")
    model.spin = random_spin(np.random.default_rng(12), 3)
    k = np.random.default_rng(4).uniform(-1.5, 1.5, (4, 2))
    got = compute_fields(model, k, 1e-8, optional=SPIN_FULL_VELOCITY_FIELDS + ("spin_expectation",))
    Hk, Ak = bloch(k, H, r)
    dHk = [sum(1j * (np.array(R) @ LATTICE)[a] * m[None] * np.exp(1j * k @ (np.array(R) @ LATTICE)[:2])[:, None, None]
               for R, m in H.items()) for a in range(2)]
    for j in range(len(k)):
        ref = dense_route(Hk[j], [dHk[a][j] for a in range(2)], Ak[j], model.spin)
        for name, value in ref.items():
            np.testing.assert_allclose(got[name][j], value, rtol=0, atol=1e-9 * np.abs(value).max(), err_msg=name)


def test_full_operator_spin_fields_do_not_depend_on_the_phase_convention(tb_file):  # noqa: F811
    """σ diagonal in the orbitals (commutes with the convention change diag(e^{ik·τ})): with the operator the kept
    fields are the same in conventions I and II, like Ω (the velocity ∇H is covariant); without it they are not."""
    spin = np.stack([np.diag(v) for v in np.random.default_rng(5).normal(size=(3, 3))]).astype(complex)
    k = np.random.default_rng(6).uniform(-1.5, 1.5, (3, 2))
    names = ("spin_qgt_metric", "spin_qgt_curvature", "spin_bcp", "spin_nonlinear_sea", "spin_velocity")
    fields = {}
    for conv, pos in itertools.product(("I", "II"), (True, False)):
        model = read_tb(tb_file, length_unit="angstrom", dim=2, convention=conv, position_operator=pos)
        model.spin = spin
        fields[conv, pos] = compute_fields(model, k, 1e-8, optional=names)
    for name in names:
        scale = np.abs(fields["I", True][name]).max()
        np.testing.assert_allclose(fields["II", True][name], fields["I", True][name], rtol=0, atol=1e-10 * scale,
                                   err_msg=name)
        assert np.abs(fields["II", False][name] - fields["I", False][name]).max() > 1e-3 * scale, name


def _stencil(f, k, b, h=1e-3):
    """4-point central difference of f(k) (an array or a dict of arrays) along direction b."""
    acc = None
    for w, step in ((8.0, h), (-8.0, -h), (-1.0, 2 * h), (1.0, -2 * h)):
        kk = np.array(k, float)
        kk[..., b] += step
        val = f(kk)
        if isinstance(val, dict):
            acc = {key: (0.0 if acc is None else acc[key]) + w * v for key, v in val.items()}
        else:
            acc = (0.0 if acc is None else acc) + w * val
    return {key: v / (12 * h) for key, v in acc.items()} if isinstance(acc, dict) else acc / (12 * h)


@pytest.mark.parametrize("degenerate", [False, True])
def test_spin_current_derivative_equals_finite_differences(degenerate):
    """∂_b v^{a;c}_nn with the operator (spin_velocity_derivative_position) = 4-point differences of the group-averaged
    spin current v^{a;c}_nn = <¼{𝒱^a, σ^c}>_nn; also for 001 Eq. 20 (every band doubly degenerate, A^W mixing each
    pair) and invariant under random unitaries inside the groups."""
    model = pt_with_random_spin() if degenerate else random_polynomial(dim=2, nbands=4, seed=8)
    d, n = model.dim, model.nbands
    comps = random_connection(dim=d, nbands=n, seed=3)
    k = np.array([[0.31, -0.22, 0.17][:d], [-0.5, 0.4, 0.6][:d]])

    def fields(kk, **kw):
        return spin_fields_position(model.unique_derivatives(kk), position_derivatives(comps, kk, order=1), d,
                                    model.spin, 1e-8, dipoles=False, **kw)

    got = fields(k)["spin_velocity_derivative"]
    for b in range(d):
        fd = _stencil(lambda kk: fields(kk)["spin_velocity"], k, b)
        np.testing.assert_allclose(got[:, :, :, b, :], fd, rtol=0, atol=1e-7 * np.abs(fd).max(), err_msg=f"b={b}")
    if degenerate:
        rot = fields(k, gauge_seed=4)["spin_velocity_derivative"]
        np.testing.assert_allclose(rot, got, rtol=0, atol=1e-10 * np.abs(got).max())


@pytest.mark.parametrize("degenerate", [False, True])
def test_spin_dipoles_equal_finite_differences(degenerate):
    """The three spin dipoles with the operator (spin_dipoles_position) = 4-point differences of the spin metric ×
    gap, spin curvature and spin BCP of the same route; also for 001 Eq. 20 (doubly degenerate bands)."""
    model = pt_with_random_spin() if degenerate else random_polynomial(dim=2, nbands=4, seed=8)
    d, n = model.dim, model.nbands
    comps = random_connection(dim=d, nbands=n, seed=3)
    k = np.array([[0.31, -0.22, 0.17][:d], [-0.5, 0.4, 0.6][:d]])
    got = spin_fields_position(model.unique_derivatives(k), position_derivatives(comps, k, order=1), d, model.spin,
                               1e-8)
    base = {"spin_qgt_metric_x_gap_dipole": "spin_qgt_metric_x_gap", "spin_qgt_curvature_dipole": "spin_qgt_curvature",
            "spin_bcp_dipole": "spin_bcp"}

    def band_fields(kk):
        return spin_fields_position(model.unique_derivatives(kk), position_derivatives(comps, kk, order=0), d,
                                    model.spin, 1e-8, dipoles=False)

    for e in range(d):
        fd = _stencil(band_fields, k, e)
        for name, undiff in base.items():
            np.testing.assert_allclose(got[name][:, :, :, :, e, :], fd[undiff], rtol=0,
                                       atol=1e-7 * np.abs(fd[undiff]).max(), err_msg=f"{name} e={e}")
