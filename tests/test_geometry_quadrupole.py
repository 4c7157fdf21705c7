"""Exact quantum-metric quadrupole and Christoffel symbols (geometry/projector.py).

Checks: agreement of g and ∂g with the sum-over-states kernel, finite differences of the exact
dipole, the massive-Dirac closed form (000 Eq. 20 plus the term of AMBIGUITIES 000.1), Christoffel
identities (000 Eq. 16–18, including the integration by parts Eq. 15 = Eq. 18 on a lattice),
gauge invariance, degenerate groups, two-band sum rule.
"""

import itertools

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields, fields_from_unique
from qgtflow.geometry.projector import compute_quadrupole_fields, quadrupole_fields
from qgtflow.models import PolynomialModel, build_model
from qgtflow.models.builtin import PAULI
from tests.conftest import random_lattice_model

RNG = np.random.default_rng(11)


def _random_hermitian(rng, n, scale=1.0):
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    return scale * (a + a.conj().T) / 2


def random_polynomial_3d(seed=5, nbands=3):
    """3D k·p model with random Hermitian coefficients up to cubic order (all derivative slots active)."""
    rng = np.random.default_rng(seed)
    terms = {(0, 0, 0): np.diag(2.0 * (np.arange(nbands) - (nbands - 1) / 2))}
    for expo in itertools.product(range(4), repeat=3):
        if 1 <= sum(expo) <= 3:
            terms[expo] = _random_hermitian(rng, nbands, 0.4 / (1 + sum(expo)))
    return PolynomialModel("random_3d", 3, terms)


def pt_dirac_3d(m=0.3, b=0.5):
    """3D PT-symmetric Dirac model with cubic terms: every band doubly degenerate (Clifford basis)."""
    s = PAULI
    gx, gy, gz = (np.kron(s["x"], s[c]) for c in "xyz")
    g4 = np.kron(s["z"], s["0"])
    terms = {(1, 0, 0): gx, (0, 1, 0): gy, (0, 0, 1): gz, (0, 0, 0): m * g4,
             (2, 0, 0): -b * g4, (0, 2, 0): -b * g4, (0, 0, 2): -b * g4,
             (1, 1, 1): 0.3 * g4, (3, 0, 0): 0.2 * gy, (0, 1, 2): -0.25 * gx}
    return PolynomialModel("pt_dirac_3d", 3, terms)


def random_polynomial_1d(seed=2, nbands=3):
    rng = np.random.default_rng(seed)
    terms = {(0,): np.diag(1.5 * np.arange(nbands))}
    for e in (1, 2, 3):
        terms[(e,)] = _random_hermitian(rng, nbands, 0.5 / e)
    return PolynomialModel("random_1d", 1, terms)


MODELS = {
    "massive_dirac": lambda: build_model("massive_dirac", {"v": 1.0, "mass": 0.3}),
    "tilted_dirac": lambda: build_model("tilted_dirac", {"v": 1.0, "tilt": 0.4, "mass": 0.2}),
    "pt_toy_4band": lambda: build_model("pt_toy_4band", {"t": 0.5}),
    "haldane": lambda: build_model("haldane", {"mass": 0.2}),
    "random_lattice_3band": lambda: random_lattice_model(),
    "random_3d_3band": lambda: random_polynomial_3d(),
    "random_3d_4band": lambda: random_polynomial_3d(seed=8, nbands=4),
    "pt_dirac_3d": pt_dirac_3d,
    "random_1d": random_polynomial_1d,
}


def _kpoints(model, n, scale=0.6):
    """Random k in the window [-scale, scale]^d (continuum models) or anywhere in the BZ (lattices)."""
    if model.periodic:
        return RNG.uniform(0, 1, (n, model.dim)) @ model.reciprocal_vectors
    return RNG.uniform(-scale, scale, (n, model.dim))


@pytest.mark.parametrize("name", list(MODELS))
def test_metric_and_dipole_match_sum_over_states(name):
    model = MODELS[name]()
    k = _kpoints(model, 40, 1.0)
    q = compute_quadrupole_fields(model, k)
    f = fields_from_unique(model.unique_derivatives(k), model.dim)  # generic sum over states, no closed form
    for key in ("quantum_metric", "quantum_metric_dipole_density"):
        scale = np.abs(f[key]).max()
        assert scale > 1e-3
        np.testing.assert_allclose(q[key], f[key], rtol=0, atol=1e-10 * scale, err_msg=key)


@pytest.mark.parametrize("name", list(MODELS))
def test_quadrupole_matches_finite_differences_of_exact_dipole(name):
    model = MODELS[name]()
    k = _kpoints(model, 6)
    h = 1e-5
    quad = compute_quadrupole_fields(model, k)["quantum_metric_quadrupole_density"]
    scale = np.abs(quad).max()
    assert scale > 1e-3
    for e in range(model.dim):
        dk = np.zeros(model.dim)
        dk[e] = h
        fp = compute_fields(model, k + dk)["quantum_metric_dipole_density"]
        fm = compute_fields(model, k - dk)["quantum_metric_dipole_density"]
        fd = (fp - fm) / (2 * h)  # [..., a, b, c] = ∂_e ∂_c g^{ab}
        err = np.abs(fd - quad[..., e]).max()
        assert err < 1e-6 * scale, (name, e, err / scale)


def test_quadrupole_is_symmetric():
    model = random_polynomial_3d()
    q = compute_quadrupole_fields(model, _kpoints(model, 20))["quantum_metric_quadrupole_density"]
    np.testing.assert_array_equal(q, np.swapaxes(q, 2, 3))  # (a, b)
    np.testing.assert_array_equal(q, np.swapaxes(q, 4, 5))  # (c, e)


def _eq20_printed(q, E):
    """000 Eq. 20 as printed (v = 1): ∂_μ∂_ν g_αβ, layout [..., α, β, μ, ν]."""
    d = np.eye(2)
    t1 = (2 * np.einsum("ab,mn->abmn", d, d) + np.einsum("am,bn->abmn", d, d) + np.einsum("an,bm->abmn", d, d))
    t2 = (2 * np.einsum("Nm,Nn,ab->Nabmn", q, q, d) + np.einsum("Nb,Nn,am->Nabmn", q, q, d)
          + np.einsum("Nm,Nb,an->Nabmn", q, q, d) + np.einsum("Na,Nn,bm->Nabmn", q, q, d)
          + np.einsum("Na,Nm,bn->Nabmn", q, q, d) + np.einsum("Na,Nb,mn->Nabmn", q, q, d))
    return -t1[None] / (4 * E[:, None, None, None, None] ** 4) + t2 / E[:, None, None, None, None] ** 6


def _missing_term(q, E):
    """AMBIGUITIES 000.1: −6 k_α k_β k_μ k_ν / ε⁸."""
    return -6 * np.einsum("Na,Nb,Nm,Nn->Nabmn", q, q, q, q) / E[:, None, None, None, None] ** 8


@pytest.mark.parametrize("v,M", [(1.0, 0.3), (0.7, -0.2)])
def test_massive_dirac_closed_form(v, M):
    """g_ab = v²/(4ε²)(δ_ab − v² k_a k_b/ε²): ∂∂g = v⁴ [Eq. 20 − 6 q_a q_b q_μ q_ν/E⁸](q = v k, E² = q² + M²)."""
    model = build_model("massive_dirac", {"v": v, "mass": M})
    k = RNG.uniform(-1, 1, (60, 2))
    f = compute_quadrupole_fields(model, k)
    qv = v * k
    E = np.sqrt((qv**2).sum(1) + M**2)
    printed = v**4 * _eq20_printed(qv, E)
    missing = v**4 * _missing_term(qv, E)
    exact = printed + missing
    scale = np.abs(exact).max()
    for band in range(2):
        quad = f["quantum_metric_quadrupole_density"][:, band]
        np.testing.assert_allclose(quad, exact, rtol=0, atol=1e-11 * scale)
        # the printed Eq. 20 alone is wrong by exactly the totally symmetric missing term ...
        np.testing.assert_allclose(quad - printed, missing, rtol=0, atol=1e-11 * scale)
        assert np.abs(missing).max() > 0.05 * scale
        # ... which drops out of the IFE contraction ε_{zνδ} ∂_α∂_ν g_δβ (000 Eq. 15)
        contract = lambda Q: Q[:, 1, :, :, 0] - Q[:, 0, :, :, 1]  # [N, β, α]: ν = x, δ = y minus ν = y, δ = x
        np.testing.assert_allclose(contract(quad), contract(printed), rtol=0, atol=1e-11 * scale)
    # sympy cross-check of the hand derivation (skipped if sympy is not installed)
    sp = pytest.importorskip("sympy")
    kx, ky, m, vv = sp.symbols("kx ky m v", real=True)
    ks = (kx, ky)
    e2 = vv**2 * (kx**2 + ky**2) + m**2
    g = [[vv**2 / (4 * e2) * (int(a == b) - vv**2 * ks[a] * ks[b] / e2) for b in range(2)] for a in range(2)]
    sym = np.empty((2, 2, 2, 2), dtype=object)
    for a, b, mu, nu in itertools.product(range(2), repeat=4):
        sym[a, b, mu, nu] = sp.lambdify((kx, ky, m, vv), sp.diff(g[a][b], ks[mu], ks[nu]))
    for i in range(5):
        val = np.array([[[[sym[a, b, mu, nu](k[i, 0], k[i, 1], M, v) for nu in range(2)] for mu in range(2)]
                         for b in range(2)] for a in range(2)])
        np.testing.assert_allclose(val, exact[i], rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("name", ["tilted_dirac", "pt_toy_4band", "random_lattice_3band", "random_3d_4band"])
def test_christoffel_identities(name):
    model = MODELS[name]()
    k = _kpoints(model, 30, 1.0)
    q = compute_quadrupole_fields(model, k)
    gam = q["christoffel"]
    dg = compute_fields(model, k)["quantum_metric_dipole_density"]  # [a, b, c] = ∂_c g_ab
    scale = np.abs(dg).max()
    # 000 Eq. 16 with the independent dipole
    ref = 0.5 * (dg + np.swapaxes(dg, -1, -2) - np.moveaxis(dg, -1, -3))  # [a,b,c] ← dg[b,c,a]
    np.testing.assert_allclose(gam, ref, rtol=0, atol=1e-10 * scale)
    # symmetric in the last two indices (torsion-free)
    np.testing.assert_allclose(gam, np.swapaxes(gam, -1, -2), rtol=0, atol=1e-14 * scale)
    # 000 Eq. 17: ∂_γ g_αβ = Γ_αβγ + Γ_βαγ
    np.testing.assert_allclose(gam + np.swapaxes(gam, -3, -2), dg, rtol=0, atol=1e-10 * scale)
    # and the quadrupole is its derivative: ∂_α∂_ν g_δβ = ∂_α(Γ_δβν + Γ_βδν) — FD of the Christoffel field
    h = 1e-5
    for a in range(model.dim):
        dk = np.zeros(model.dim)
        dk[a] = h
        gp = compute_quadrupole_fields(model, k + dk)["christoffel"]
        gm = compute_quadrupole_fields(model, k - dk)["christoffel"]
        fd = ((gp + np.swapaxes(gp, -3, -2)) - (gm + np.swapaxes(gm, -3, -2))) / (2 * h)  # [δ, β, ν]
        quad = q["quantum_metric_quadrupole_density"][..., a]  # [δ, β, ν] = ∂_ν ∂_a g_δβ
        assert np.abs(fd - quad).max() < 1e-6 * np.abs(quad).max()


def test_eq15_equals_eq18_on_a_lattice():
    """000 Eq. 15 (Fermi sea, quadrupole) = Eq. 18 (Fermi surface, Christoffel) by parts on a periodic BZ.

    ∫ f0 ∂_α∂_ν g_δβ = −∫ f0' ∂_α ε (Γ_δβν + Γ_βδν), summed over bands, for every index; smooth f0 on a
    uniform grid converges exponentially.
    """
    model = build_model("haldane", {"mass": 0.2})
    n = 160
    u = (np.arange(n) + 0.5) / n
    red = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    k = red @ model.reciprocal_vectors
    q = compute_quadrupole_fields(model, k)
    f = compute_fields(model, k)
    mu, T = -0.8, 0.25
    x = (f["energy"] - mu) / T
    f0 = 1 / (np.exp(x) + 1)
    df0 = -f0 * (1 - f0) / T
    gam = q["christoffel"]
    sea = np.einsum("Nn,Nndbav->abdv", f0, q["quantum_metric_quadrupole_density"]) / len(k)
    surf = -np.einsum("Nn,Nna,Nndbv->abdv", df0, f["velocity"], gam + np.swapaxes(gam, -3, -2)) / len(k)
    scale = np.abs(sea).max()
    assert scale > 1e-3
    np.testing.assert_allclose(sea, surf, rtol=0, atol=1e-9 * scale)
    # the IFE contraction (000 Eq. 15) is nonzero for this model, so the check is not vacuous
    assert np.abs(sea[..., 1, 0] - sea[..., 0, 1]).max() > 1e-3 * scale


@pytest.mark.parametrize("name", ["massive_dirac", "pt_toy_4band", "haldane", "random_lattice_3band",
                                  "random_3d_3band", "pt_dirac_3d"])
def test_gauge_invariance(name):
    """H → Q H Q† (random constant unitary) and random unitaries inside degenerate groups change nothing."""
    model = MODELS[name]()
    k = _kpoints(model, 40, 1.0)
    Hu = model.unique_derivatives(k)
    ref = quadrupole_fields(Hu, model.dim)
    n = model.nbands
    qmat, _ = np.linalg.qr(RNG.normal(size=(n, n)) + 1j * RNG.normal(size=(n, n)))
    rotated = qmat @ Hu @ qmat.conj().T
    for seed in (-1, 5):
        new = quadrupole_fields(rotated, model.dim, gauge_seed=seed)
        for key in ref:
            scale = max(np.abs(ref[key]).max(), 1e-3)
            np.testing.assert_allclose(new[key], ref[key], rtol=0, atol=1e-9 * scale, err_msg=f"{key} seed={seed}")


def test_degenerate_groups_of_mixed_size():
    """(h1 ⊗ 1₂) ⊕ h2, mixed by a random constant unitary: groups of size 2 and 1 in one spectrum.

    Per-band fields of the doubled block equal those of h1 (group trace / 2), the others those of h2.
    """
    h1, h2 = random_lattice_model(seed=3), random_lattice_model(seed=9, nbands=2)
    k = RNG.uniform(-2, 2, (30, 2))
    A, B = h1.unique_derivatives(k), h2.unique_derivatives(k)
    Hu = np.zeros(A.shape[:2] + (8, 8), complex)
    Hu[..., :6, :6] = np.kron(A, np.eye(2))
    Hu[..., 6:, 6:] = B
    qmat, _ = np.linalg.qr(RNG.normal(size=(8, 8)) + 1j * RNG.normal(size=(8, 8)))
    Hu = qmat @ Hu @ qmat.conj().T
    got = quadrupole_fields(Hu, 2, gauge_seed=3)
    r1, r2 = quadrupole_fields(A, 2), quadrupole_fields(B, 2)
    e1 = np.linalg.eigvalsh(A[:, 0])
    e2 = np.linalg.eigvalsh(B[:, 0])
    energies = np.concatenate([np.repeat(e1, 2, axis=1), e2], 1)
    order = np.argsort(energies, axis=1, kind="stable")
    for key in got:
        expected = np.concatenate([np.repeat(r1[key], 2, axis=1), r2[key]], 1)
        expected = np.take_along_axis(expected, order.reshape(order.shape + (1,) * (expected.ndim - 2)), 1)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got[key], expected, rtol=0, atol=1e-9 * scale, err_msg=key)


def test_pt_model_degenerate_partners_equal():
    model = build_model("pt_toy_4band", {"t": 0.9})
    q = compute_quadrupole_fields(model, RNG.uniform(-1.5, 1.5, (100, 2)))
    for key, arr in q.items():
        np.testing.assert_array_equal(arr[:, 0], arr[:, 1], err_msg=key)
        np.testing.assert_array_equal(arr[:, 2], arr[:, 3], err_msg=key)
        assert np.abs(arr).max() > 1e-3, key


@pytest.mark.parametrize("name", ["massive_dirac", "tilted_dirac", "haldane"])
def test_two_band_sum_rule(name):
    """Two bands: P_lower = 1 − P_upper, so g (and all its derivatives) of both bands coincide."""
    model = MODELS[name]()
    q = compute_quadrupole_fields(model, _kpoints(model, 50, 1.5))
    for key, arr in q.items():
        scale = np.abs(arr).max()
        assert scale > 1e-3
        np.testing.assert_allclose(arr[:, 0], arr[:, 1], rtol=0, atol=1e-12 * scale, err_msg=key)


def test_interface():
    model = build_model("pt_toy_4band")
    k = RNG.uniform(-1, 1, (7, 2))
    q = compute_quadrupole_fields(model, k)
    assert q["quantum_metric"].shape == (7, 4, 2, 2)
    assert q["quantum_metric_dipole_density"].shape == (7, 4, 2, 2, 2)
    assert q["quantum_metric_quadrupole_density"].shape == (7, 4, 2, 2, 2, 2)
    assert q["christoffel"].shape == (7, 4, 2, 2, 2)
    # inactive slots are skipped: same result with all slots flagged active
    full = quadrupole_fields(model.unique_derivatives(k), 2, n_threads=1)
    for key in q:
        np.testing.assert_allclose(q[key], full[key], rtol=0, atol=1e-14 * np.abs(full[key]).max())
    empty = quadrupole_fields(model.unique_derivatives(k[:0]), 2)
    assert empty["quantum_metric_quadrupole_density"].shape == (0, 4, 2, 2, 2, 2)
    with pytest.raises(ValueError):
        quadrupole_fields(model.unique_derivatives(k), 3)
