"""Spin and Zeeman quantum geometry of 003 (geometry/spin.py).

Checks: an independent numpy route (eigh + explicit sums of 003 Eq. 2, 3 and the Q, Z of Eq. 13–14, finite
differences for the dipoles), exact dipoles vs central finite differences of the kernel's own fields, the
sum rules of 003 footnote 82, the spin-polarized limit (footnote 72), gauge invariance (constant unitaries and
random unitaries inside degenerate groups), pair-resolved fields, hand-derived closed forms for the massive
Dirac model and the SnTe-surface model (003 text), sectors, and the refusal of models without spin.
"""

import itertools

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields, fields_from_unique
from qgtflow.geometry.spin import (
    SPIN_DIPOLE_FIELDS,
    SPIN_FIELDS,
    SPIN_PAIR_FIELDS,
    compute_spin_fields,
    spin_fields,
)
from qgtflow.models import PolynomialModel, build_model
from qgtflow.models.builtin import PAULI
from tests.conftest import random_lattice_model

RNG = np.random.default_rng(2025)

BAND_TO_DIPOLE = {  # undifferentiated field -> its exact k-derivative (derivative index before the spin axis)
    "spin_qgt_metric_x_gap": "spin_qgt_metric_x_gap_dipole",
    "spin_qgt_curvature": "spin_qgt_curvature_dipole",
    "spin_bcp": "spin_bcp_dipole",
    "zeeman_qgt_curvature": "zeeman_qgt_curvature_dipole",
    "zeeman_bcp": "zeeman_bcp_dipole",
    "zeeman_hspace_bcp": "zeeman_hspace_bcp_dipole",
    "spin_velocity": "spin_velocity_derivative",
}


def _random_hermitian(rng, n, scale=1.0):
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    return scale * (a + a.conj().T) / 2


def random_spin(rng, n):
    """A random Hermitian triple (σ^x, σ^y, σ^z): no algebra, commutes with nothing special."""
    return np.stack([_random_hermitian(rng, n) for _ in range(3)])


def random_polynomial(dim=2, nbands=3, seed=4):
    """k·p model with random Hermitian coefficients up to cubic order and a random spin triple."""
    rng = np.random.default_rng(seed)
    terms = {(0,) * dim: np.diag(2.0 * (np.arange(nbands) - (nbands - 1) / 2))}
    for expo in itertools.product(range(4), repeat=dim):
        if 1 <= sum(expo) <= 3:
            terms[expo] = _random_hermitian(rng, nbands, 0.5 / (1 + sum(expo)))
    model = PolynomialModel(f"random_{dim}d", dim, terms)
    model.spin = random_spin(rng, nbands)
    return model


def random_lattice_with_spin(seed=3):
    model = random_lattice_model(seed=seed)
    model.spin = random_spin(np.random.default_rng(seed + 100), model.nbands)
    return model


def pt_with_random_spin(t=0.5, seed=7):
    """001 Eq. 20 (every band doubly degenerate) with a random Hermitian spin triple."""
    model = build_model("pt_toy_4band", {"t": t})
    model.spin = random_spin(np.random.default_rng(seed), 4)
    return model


def rank_one_model(nbands=3, seed=1):
    """H(k) = ψ(k)ψ(k)†, ψ = ψ0 + kx ψ1 + ky ψ2 (random complex vectors), with a random spin triple.

    Exactly one nondegenerate band |ψ|² and an (n−1)-fold degenerate level at 0 everywhere, coupled to it:
    the block P_D' V^b |n⟩⟨n| V^d P_D' is rank one, so the diagonal spin elements of Δ̄ (003 Eq. 13) are
    gauge dependent inside the level and only the group-block form is invariant (unlike for 001 Eq. 20,
    whose quaternionic blocks make both agree).
    """
    rng = np.random.default_rng(seed)
    p0, p1, p2 = (rng.normal(size=nbands) + 1j * rng.normal(size=nbands) for _ in range(3))

    def o(a, b):
        return np.outer(a, b.conj())

    terms = {(0, 0): o(p0, p0), (1, 0): o(p0, p1) + o(p1, p0), (0, 1): o(p0, p2) + o(p2, p0),
             (2, 0): o(p1, p1), (0, 2): o(p2, p2), (1, 1): o(p1, p2) + o(p2, p1)}
    model = PolynomialModel(f"rank_one_{nbands}", 2, terms)
    model.spin = random_spin(rng, nbands)
    return model


MODELS = {
    "random_2d": lambda: random_polynomial(2),
    "random_3d": lambda: random_polynomial(3, seed=6),
    "random_1d": lambda: random_polynomial(1, nbands=4, seed=8),
    "random_lattice": random_lattice_with_spin,
    "pt_toy_4band": pt_with_random_spin,
    "rank_one_3": lambda: rank_one_model(3),
    "rank_one_4": lambda: rank_one_model(4, seed=2),
}


def _kpoints(model, n, scale=0.6):
    if model.periodic:
        return RNG.uniform(0, 1, (n, model.dim)) @ model.reciprocal_vectors
    return RNG.uniform(-scale, scale, (n, model.dim))


# ------------------------------------------------------------------------------------------------------
# independent route: numpy eigh + explicit sums, non-degenerate bands, literal 003 definitions
# ------------------------------------------------------------------------------------------------------
def _reference_undifferentiated(model, k):
    """All band and pair fields from 003 Eq. 2, 3 and the definitions under Eq. 14, term by term."""
    H, dH, d2H = model.derivatives(k, order=2)
    sig = np.asarray(model.spin)
    N, d, n = k.shape[0], model.dim, model.nbands
    out = {name: [] for name in SPIN_FIELDS + SPIN_PAIR_FIELDS}
    for q in range(N):
        e, u = np.linalg.eigh(H[q])
        ud = u.conj().T
        v = np.array([ud @ dH[q, a] @ u for a in range(d)])  # v^a_nm
        s = np.array([ud @ sig[c] @ u for c in range(3)])  # σ^c_nm
        # spin-current operator ¼{∂_aH, σ^c} formed in the original basis, then rotated
        vs = np.array([[ud @ (0.25 * (dH[q, a] @ sig[c] + sig[c] @ dH[q, a])) @ u for c in range(3)]
                       for a in range(d)])  # [a, c, n, m]
        r = np.zeros((d, n, n), complex)  # r^a_nm = i<u_n|∂_a u_m> = −i v^a_nm / ε_nm  (003 text)
        for a, i, j in itertools.product(range(d), range(n), range(n)):
            if i != j:
                r[a, i, j] = -1j * v[a, i, j] / (e[i] - e[j])
        f = {name: None for name in out}
        f["spin_expectation"] = np.array([[s[c, i, i].real for c in range(3)] for i in range(n)])
        f["spin_velocity"] = np.einsum("acii->iac", vs).real
        sp = np.zeros((n, n, d, d, 3), complex)  # T^{ab;c}_nm
        zp = np.zeros((n, n, d, 3), complex)  # T̄^{ab}_nm
        ssea = np.zeros((n, d, d, d, 3))
        zsea = np.zeros((n, d, d, 3))
        for i, j in itertools.product(range(n), range(n)):
            if i == j:
                continue
            eps = e[i] - e[j]
            for a, b, c in itertools.product(range(d), range(d), range(3)):
                sp[i, j, a, b, c] = vs[a, c, i, j] * v[b, j, i] / eps**2  # 003 Eq. 2
            for a, b in itertools.product(range(d), range(3)):
                zp[i, j, a, b] = r[a, i, j] * s[b, j, i]  # 003 Eq. 3
            g_conv = (r[:, i, j][:, None] * r[:, j, i][None, :]).real  # g^{bd}_nm
            Delta = np.array([v[x, j, j].real - v[x, i, i].real for x in range(d)])  # Δ^d_mn = ∂_d ε_mn
            for a, b, dd, c in itertools.product(range(d), range(d), range(d), range(3)):
                dbar = (vs[a, c, j, j] - vs[a, c, i, i]).real  # Δ̄^{a;c}_mn
                Q = 2 * Delta[dd] * sp[i, j, a, b, c].real + dbar * g_conv[b, dd]
                ssea[i, a, b, dd, c] += Q / eps**2
            for a, b, c in itertools.product(range(3), range(d), range(d)):
                zbar = (s[a, j, j] - s[a, i, i]).real / 2  # Δ̄^a_mn
                omb = -2 * zp[i, j, b, a].imag  # Ω̄^{ba}_nm
                Z = Delta[c] * omb / 2 + zbar * eps * g_conv[b, c]
                zsea[i, b, c, a] += Z / eps**3
        eps_nm = e[:, None] - e[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(np.eye(n, dtype=bool), 0.0, 1.0 / eps_nm)
        f["spin_qgt_metric_pair"] = sp.real
        f["spin_qgt_curvature_pair"] = -2 * sp.imag
        f["zeeman_qgt_metric_pair"] = zp.real
        f["zeeman_qgt_curvature_pair"] = -2 * zp.imag
        f["spin_qgt_metric"] = sp.real.sum(1)
        f["spin_qgt_curvature"] = (-2 * sp.imag).sum(1)
        f["zeeman_qgt_metric"] = zp.real.sum(1)
        f["zeeman_qgt_curvature"] = (-2 * zp.imag).sum(1)
        f["spin_qgt_metric_x_gap"] = np.einsum("nm,nmabc->nabc", eps_nm, sp.real)
        f["spin_bcp"] = 2 * np.einsum("nm,nmabc->nabc", inv, sp.real)
        f["zeeman_bcp"] = 2 * np.einsum("nm,nmab->nab", inv, zp.real)
        f["zeeman_hspace_bcp"] = 2 * np.einsum("nm,nmab->nab", inv**2, -2 * zp.imag)
        f["spin_nonlinear_sea"] = ssea
        f["zeeman_nonlinear_sea"] = zsea
        # ∂_b v^{a;c}_nn by first-order perturbation theory written out (fn. 80/82 route)
        svd = np.zeros((n, d, d, 3))
        for i, a, b, c in itertools.product(range(n), range(d), range(d), range(3)):
            acc = 0.25 * (ud @ (d2H[q, a, b] @ sig[c] + sig[c] @ d2H[q, a, b]) @ u)[i, i].real
            for j in range(n):
                if j != i:
                    acc += 2 * (vs[a, c, i, j] * v[b, j, i]).real / (e[i] - e[j])
            svd[i, a, b, c] = acc
        f["spin_velocity_derivative"] = svd
        for name, acc in out.items():
            acc.append(f[name])
    return {name: np.array(val) for name, val in out.items()}


def _reference_dipoles(model, k, h=1e-3):
    """Five-point finite differences of the numpy reference fields (independent of the kernel's algebra)."""
    ref = {}
    per_dir = []
    for e in range(model.dim):
        dk = np.zeros(model.dim)
        dk[e] = h
        f2p, f1p, f1m, f2m = (_reference_undifferentiated(model, k + s * dk) for s in (2, 1, -1, -2))
        per_dir.append({base: (-f2p[base] + 8 * f1p[base] - 8 * f1m[base] + f2m[base]) / (12 * h)
                        for base in BAND_TO_DIPOLE})
    for base, dip in BAND_TO_DIPOLE.items():
        if dip == "spin_velocity_derivative":
            continue
        ref[dip] = np.stack([p[base] for p in per_dir], axis=-2)  # derivative index before the spin axis
    return ref


@pytest.mark.parametrize("name", ["random_2d", "random_3d", "random_1d", "random_lattice"])
def test_matches_numpy_reference(name):
    model = MODELS[name]()
    k = _kpoints(model, 5)
    got = compute_spin_fields(model, k, pairs=True)
    ref = _reference_undifferentiated(model, k)
    for key in SPIN_FIELDS + SPIN_PAIR_FIELDS:
        scale = np.abs(ref[key]).max()
        assert scale > 1e-3, key
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-10 * scale, err_msg=key)
    dips = _reference_dipoles(model, k)
    for key, val in dips.items():
        scale = np.abs(val).max()
        assert scale > 1e-3, key
        np.testing.assert_allclose(got[key], val, rtol=0, atol=1e-7 * scale, err_msg=key)


@pytest.mark.parametrize("name", ["random_2d", "random_3d", "random_lattice", "pt_toy_4band", "rank_one_3",
                                  "massive_dirac", "snte"])
def test_dipoles_match_finite_differences(name):
    """Every exact k-derivative field vs central differences of the kernel's own undifferentiated field
    (degenerate models: derivatives of group traces)."""
    model = {"massive_dirac": lambda: build_model("massive_dirac", {"v": 1.0, "mass": 0.3}),
             "snte": lambda: build_model("snte_surface_dirac", {"vx": 1.0, "vy": 0.7, "beta": 0.2, "alpha": 0.3}),
             }.get(name, MODELS.get(name))()
    k = _kpoints(model, 8, 0.8)
    got = compute_spin_fields(model, k)
    h = 1e-5
    fd = {base: [] for base in BAND_TO_DIPOLE}
    for e in range(model.dim):
        dk = np.zeros(model.dim)
        dk[e] = h
        fp = compute_spin_fields(model, k + dk, dipoles=False)
        fm = compute_spin_fields(model, k - dk, dipoles=False)
        for base in BAND_TO_DIPOLE:
            fd[base].append((fp[base] - fm[base]) / (2 * h))
    for base, dip in BAND_TO_DIPOLE.items():
        num = np.stack(fd[base], axis=-2)
        scale = max(np.abs(got[dip]).max(), 1e-300)
        if name in ("massive_dirac",) and base.startswith("spin_") and base != "spin_velocity":
            assert np.abs(got[dip]).max() < 1e-12  # S^{a;c} ∝ 1 for the Dirac model: spin QGT ≡ 0
            continue
        if name == "massive_dirac" and base == "spin_velocity":
            assert np.abs(got[dip]).max() < 1e-12
            continue
        assert scale > 1e-3, (name, dip)
        err = np.abs(num - got[dip]).max()
        assert err < 1e-6 * scale, (name, dip, err / scale)


@pytest.mark.parametrize("name", ["random_2d", "random_3d", "random_lattice", "pt_toy_4band"])
def test_footnote_82_sum_rules(name):
    """003 fn. 82: Σ_m Ω̄^{ba}_nm = ∂_b σ^a_nn; Σ_m 2ε_nm g^{ab;c}_nm = ∂_b v^{a;c}_nn − ¼<{∂_a∂_bH, σ^c}>_nn.

    The second is fn. 82 with the v^{ab;c} term of fn. 80 written with the ¼ of the spin-current operator
    ¼{v, σ} (fn. 80 prints ½, which does not match ∂_b of ¼{v^a, σ^c}). Also: the Zeeman-BCD density
    ∂_e Ω̄^{ba} = ∂_b∂_e σ^a_nn is symmetric in (b, e).
    """
    model = MODELS[name]()
    k = _kpoints(model, 10)
    got = compute_spin_fields(model, k)
    h = 1e-5
    for b in range(model.dim):
        dk = np.zeros(model.dim)
        dk[b] = h
        ds = (compute_spin_fields(model, k + dk)["spin_expectation"]
              - compute_spin_fields(model, k - dk)["spin_expectation"]) / (2 * h)
        zc = got["zeeman_qgt_curvature"][:, :, b, :]
        assert np.abs(ds - zc).max() < 1e-6 * np.abs(zc).max()
    # ¼<{∂_a∂_bH, σ^c}>_nn, group traced: from eigenprojectors built in numpy
    H, _dH, d2H = model.derivatives(k, order=2)
    sig = model.spin
    anti = np.einsum("Nabij,cjk->Nabcik", d2H, sig)
    anti = 0.25 * (anti + np.conj(np.swapaxes(anti, -1, -2)))
    _e, u = np.linalg.eigh(H)
    diag = np.einsum("Nin,Nabcij,Njn->Nnabc", u.conj(), anti, u).real
    if name == "pt_toy_4band":  # degenerate pairs: group average
        diag = np.repeat(0.5 * (diag[:, 0::2] + diag[:, 1::2]), 2, axis=1)
    lhs = 2 * got["spin_qgt_metric_x_gap"]
    rhs = got["spin_velocity_derivative"] - diag
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-11 * np.abs(lhs).max())
    zcd = got["zeeman_qgt_curvature_dipole"]
    np.testing.assert_allclose(zcd, np.swapaxes(zcd, 2, 3), rtol=0, atol=1e-10 * np.abs(zcd).max())


@pytest.mark.parametrize("name", ["random_2d", "random_3d", "random_lattice"])
def test_spin_polarized_limit_identity_spin(name):
    """003 fn. 72 with σ^c = s_c·1: v^{a;c} = (s_c/2) v^a, so T^{ab;c} = (s_c/2) T^{ab} and T̄ = 0.

    (s_c/2 is the spin projection in units of ħ: "Eq. (2) reduces to Eq. (1)" up to that factor.) The same
    holds for every energy-weighted sum and dipole: spin_bcp = (s/2) bcp, ∂Ω^{ab;c} = (s/2) ∂Ω^{ab}.
    """
    model = MODELS[name]()
    svec = np.array([0.7, -1.3, 1.0])
    model.spin = svec[:, None, None] * np.eye(model.nbands)[None]
    k = _kpoints(model, 30)
    got = compute_spin_fields(model, k)
    conv = fields_from_unique(model.unique_derivatives(k), model.dim)
    half = svec / 2
    pairs = [("spin_qgt_metric", "quantum_metric"), ("spin_qgt_curvature", "berry_curvature"),
             ("spin_bcp", "bcp"), ("spin_qgt_curvature_dipole", "berry_curvature_dipole_density"),
             ("spin_bcp_dipole", "bcp_dipole_density")]
    for spin_name, conv_name in pairs:
        expected = conv[conv_name][..., None] * half
        scale = np.abs(expected).max()
        assert scale > 1e-3
        np.testing.assert_allclose(got[spin_name], expected, rtol=0, atol=1e-10 * scale, err_msg=spin_name)
    np.testing.assert_allclose(got["spin_velocity"], conv["velocity"][..., None] * half, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["spin_velocity_derivative"], conv["inverse_mass"][..., None] * half,
                               rtol=0, atol=1e-10 * np.abs(conv["inverse_mass"]).max())
    np.testing.assert_allclose(got["spin_expectation"], np.broadcast_to(svec, got["spin_expectation"].shape),
                               rtol=0, atol=1e-13)
    for key in ("zeeman_qgt_metric", "zeeman_qgt_curvature", "zeeman_bcp", "zeeman_hspace_bcp",
                "zeeman_nonlinear_sea", "zeeman_qgt_curvature_dipole", "zeeman_bcp_dipole",
                "zeeman_hspace_bcp_dipole"):
        assert np.abs(got[key]).max() < 1e-12, key


def test_spin_polarized_limit_collinear_magnet():
    """003 fn. 72 on H = H0 ⊗ 1 + B 1 ⊗ σz with spin 1 ⊗ σ (no spin-orbit coupling, spin-split bands):

    band (n, ↑/↓) has T^{ab;z} = ±½ T^{ab}_n of H0, T^{ab;x} = T^{ab;y} = 0, and the Zeeman QGT vanishes.
    """
    h0 = random_lattice_model(seed=5)
    k = _kpoints(h0, 30)
    A = h0.unique_derivatives(k)
    B = 0.37
    Hu = np.kron(A, np.eye(2))
    Hu[:, 0] += B * np.kron(np.eye(3), PAULI["z"])
    spin = np.stack([np.kron(np.eye(3), PAULI[c]) for c in "xyz"])
    got = spin_fields(Hu, 2, spin)
    conv = fields_from_unique(A, 2)
    e0 = conv["energy"]
    energies = np.concatenate([e0 + B, e0 - B], axis=1)  # (↑ bands, ↓ bands)
    order = np.argsort(energies, axis=1, kind="stable")
    sz = np.concatenate([np.ones(3), -np.ones(3)])[order]  # σ^z of every sorted band
    for spin_name, conv_name in (("spin_qgt_metric", "quantum_metric"), ("spin_qgt_curvature", "berry_curvature"),
                                 ("spin_bcp", "bcp")):
        c6 = np.concatenate([conv[conv_name], conv[conv_name]], axis=1)
        c6 = np.take_along_axis(c6, order[:, :, None, None], 1)
        expected = np.zeros(c6.shape + (3,))
        expected[..., 2] = 0.5 * sz[:, :, None, None] * c6
        np.testing.assert_allclose(got[spin_name], expected, rtol=0, atol=1e-10 * np.abs(c6).max(),
                                   err_msg=spin_name)
    np.testing.assert_allclose(got["spin_expectation"][..., 2], sz, rtol=0, atol=1e-12)
    for key in ("zeeman_qgt_metric", "zeeman_qgt_curvature", "zeeman_bcp", "zeeman_hspace_bcp",
                "zeeman_nonlinear_sea"):
        assert np.abs(got[key]).max() < 1e-11, key


@pytest.mark.parametrize("name", ["random_2d", "random_3d", "random_lattice", "pt_toy_4band", "rank_one_3",
                                  "rank_one_4"])
def test_gauge_invariance(name):
    """H → Q H Q†, σ → Q σ Q† (random constant unitary) and random unitaries inside degenerate groups
    (``gauge_seed``) leave every field unchanged (band values = group traces / group size)."""
    model = MODELS[name]()
    k = _kpoints(model, 25, 1.0)
    Hu = model.unique_derivatives(k)
    ref = spin_fields(Hu, model.dim, model.spin, pairs=True)
    n = model.nbands
    qmat, _ = np.linalg.qr(RNG.normal(size=(n, n)) + 1j * RNG.normal(size=(n, n)))
    rotated = qmat @ Hu @ qmat.conj().T
    spin_rot = qmat @ model.spin @ qmat.conj().T
    for seed in (-1, 5, 12):
        new = spin_fields(rotated, model.dim, spin_rot, gauge_seed=seed, pairs=True)
        for key in ref:
            scale = max(np.abs(ref[key]).max(), 1e-3)
            np.testing.assert_allclose(new[key], ref[key], rtol=0, atol=1e-9 * scale, err_msg=f"{key} seed={seed}")


def test_degenerate_groups_are_exercised():
    """pt_toy_4band: every band doubly degenerate; the random gauge changes the eigenvectors (so the
    invariance test is not vacuous), partners carry equal values, and a basis-dependent quantity
    (the diagonal σ of one band before group averaging) really differs between gauges."""
    model = pt_with_random_spin(t=0.9)
    k = _kpoints(model, 40, 1.2)
    e = compute_fields(model, k)["energy"]
    np.testing.assert_allclose(e[:, 0], e[:, 1], atol=1e-12)
    np.testing.assert_allclose(e[:, 2], e[:, 3], atol=1e-12)
    f = compute_spin_fields(model, k, pairs=True)
    for key, arr in f.items():
        np.testing.assert_array_equal(arr[:, 0], arr[:, 1], err_msg=key)
        np.testing.assert_array_equal(arr[:, 2], arr[:, 3], err_msg=key)
        assert np.abs(arr).max() > 1e-3, key
    # the group trace differs from a single band's diagonal value in a generic gauge
    H = model.derivatives(k, order=0)[0]
    _, u = np.linalg.eigh(H)
    single = np.einsum("Ni,cij,Nj->Nc", u[:, :, 0].conj(), model.spin, u[:, :, 0]).real
    assert np.abs(single - f["spin_expectation"][:, 0]).max() > 1e-2


@pytest.mark.parametrize("name", ["rank_one_3", "rank_one_4", "pt_toy_4band"])
def test_degenerate_levels_match_projector_traces(name):
    """Degenerate levels, independently: group traces written with spectral projectors in the original basis.

    For levels D ∋ n and D' ≠ D (x = 1/(ε_D − ε_D'), v̄_D = Tr[P_D ∂H]/|D|, O = ¼{∂_aH, σ^c} or σ^a/2):
      Σ_{n∈D} spin_qgt_metric = Σ_D' Re Tr[P_D O P_D' ∂_bH] x²,  Σ_{n∈D} zeeman_qgt_curvature = Σ_D' 2 Re Tr[P_D ∂_aH P_D' σ^b] x,
      Σ_{n∈D} spin_nonlinear_sea = Σ_D' x⁴ (2(v̄^d_D' − v̄^d_D) Re Tr[P_D O P_D' ∂_bH]
                                         + Re Tr[P_D ∂_bH P_D' O P_D' ∂_dH] − Re Tr[P_D O P_D ∂_bH P_D' ∂_dH]),
      Σ_{n∈D} zeeman_nonlinear_sea[b,c,a] = Σ_D' x⁴ ((v̄^c_D' − v̄^c_D) Re Tr[P_D ∂_bH P_D' σ^a]
                                         + Re Tr[P_D ∂_bH P_D' (σ^a/2) P_D' ∂_cH] − Re Tr[P_D (σ^a/2) P_D ∂_bH P_D' ∂_cH]).
    """
    model = MODELS[name]()
    k = _kpoints(model, 6, 0.8)
    got = compute_spin_fields(model, k)
    H, dH = model.derivatives(k, order=1)
    sig = model.spin
    d, n = model.dim, model.nbands
    for q in range(len(k)):
        e, u = np.linalg.eigh(H[q])
        bounds = [0] + [i for i in range(1, n) if e[i] - e[i - 1] > 1e-6] + [n]
        levels = [(bounds[j], bounds[j + 1]) for j in range(len(bounds) - 1)]
        assert len(levels) < n  # there is a degenerate level
        P = [u[:, lo:hi] @ u[:, lo:hi].conj().T for lo, hi in levels]
        E = [e[lo:hi].mean() for lo, hi in levels]
        vb = [np.array([np.trace(Pi @ dH[q, a]).real / (hi - lo) for a in range(d)])
              for Pi, (lo, hi) in zip(P, levels)]
        O = [[0.25 * (dH[q, a] @ sig[c] + sig[c] @ dH[q, a]) for c in range(3)] for a in range(d)]
        for i, (lo, hi) in enumerate(levels):
            sm = np.zeros((d, d, 3))
            zc = np.zeros((d, 3))
            ss = np.zeros((d, d, d, 3))
            zs = np.zeros((d, d, 3))
            for j in range(len(levels)):
                if j == i:
                    continue
                x = 1 / (E[i] - E[j])
                Pi, Pj = P[i], P[j]
                for a, b, c in itertools.product(range(d), range(d), range(3)):
                    t = np.trace(Pi @ O[a][c] @ Pj @ dH[q, b]).real
                    sm[a, b, c] += t * x**2
                    for dd in range(d):
                        ss[a, b, dd, c] += x**4 * (2 * (vb[j][dd] - vb[i][dd]) * t
                                                   + np.trace(Pi @ dH[q, b] @ Pj @ O[a][c] @ Pj @ dH[q, dd]).real
                                                   - np.trace(Pi @ O[a][c] @ Pi @ dH[q, b] @ Pj @ dH[q, dd]).real)
                for b, a in itertools.product(range(d), range(3)):
                    t = np.trace(Pi @ dH[q, b] @ Pj @ sig[a]).real
                    zc[b, a] += 2 * t * x
                    for c in range(d):
                        zs[b, c, a] += x**4 * ((vb[j][c] - vb[i][c]) * t
                                               + 0.5 * np.trace(Pi @ dH[q, b] @ Pj @ sig[a] @ Pj @ dH[q, c]).real
                                               - 0.5 * np.trace(Pi @ sig[a] @ Pi @ dH[q, b] @ Pj @ dH[q, c]).real)
            w = hi - lo
            for key, ref in (("spin_qgt_metric", sm), ("zeeman_qgt_curvature", zc), ("spin_nonlinear_sea", ss),
                             ("zeeman_nonlinear_sea", zs)):
                scale = max(np.abs(got[key][q]).max(), 1e-3)
                for band in range(lo, hi):
                    np.testing.assert_allclose(got[key][q, band], ref / w, rtol=0, atol=1e-10 * scale, err_msg=key)


@pytest.mark.parametrize("name", ["random_2d", "pt_toy_4band"])
def test_pairs_sum_to_band_fields(name):
    model = MODELS[name]()
    f = compute_spin_fields(model, _kpoints(model, 20), pairs=True)
    for pair, band in zip(SPIN_PAIR_FIELDS, ("spin_qgt_metric", "spin_qgt_curvature", "zeeman_qgt_metric",
                                             "zeeman_qgt_curvature")):
        np.testing.assert_allclose(f[pair].sum(2), f[band], rtol=0, atol=1e-12 * np.abs(f[band]).max())
        n = f[pair].shape[1]
        same = np.abs(np.subtract.outer(np.arange(n) // (2 if name == "pt_toy_4band" else 1),
                                        np.arange(n) // (2 if name == "pt_toy_4band" else 1))) == 0
        assert np.abs(f[pair][:, same]).max() == 0.0  # no intra-group pairs


@pytest.mark.parametrize("v,M", [(1.0, 0.3), (0.7, -0.2)])
def test_massive_dirac_closed_form(v, M):
    """H = v(kx σx + ky σy) + M σz with spin σ (003); bands 0 = lower, 1 = upper; ε = √(v²k² + M²),
    n̂ = (v kx, v ky, M)/ε, ∂_b n̂^a = v δ_ab/ε − n̂^a v² k_b/ε² (δ_zb = 0).

    Derived by hand (two-band projectors P_± = (1 ± n̂·σ)/2, r^b_{+−} σ^a_{−+} = i Tr[P_+ ∂_bP_− P_− σ^a]):
      σ^a_nn = ∓n̂^a (lower/upper), so σ^z_nn = ∓M/ε;
      ¼{∂_aH, σ^c} = ¼{vσ^a, σ^c} = (v/2) δ_ac·1: v^{a;c}_nn = (v/2) δ_ac and every spin QGT quantity vanishes
        (off-diagonal elements of a multiple of 1), including Q (Δ̄^{a;c} = 0);
      T̄^{ba}_{±∓} = ½(n̂ × ∂_b n̂)^a ∓ (i/2) ∂_b n̂^a  →  ḡ^{ba} = ½(n̂ × ∂_b n̂)^a (both bands):
        ḡ^{x·} = (0, Mv/2ε², −v²ky/2ε²), ḡ^{y·} = (−Mv/2ε², 0, v²kx/2ε²);
        Ω̄^{ba}_± = ±∂_b n̂^a (so Ω̄^{xz}_{±∓} = ∓v²M kx/ε³, as quoted in 003);
      zeeman_bcp = 2ḡ/ε_nm = ±ḡ/ε, zeeman_hspace_bcp = 2Ω̄/ε_nm² = ±∂_b n̂^a/(2ε²) (upper/lower);
      Z^{abc}_{±∓}/ε³_{±∓} = ∓[v²k_c ∂_b n̂^a/ε + n̂^a ε (∂_b n̂·∂_c n̂)/2]/(8ε³)
        (Δ^c_{∓±} = ∓2v²k_c/ε, Δ̄^a_{∓±} = ∓n̂^a, g^{bc} = ¼ ∂_b n̂·∂_c n̂, ε_{±∓} = ±2ε).
    """
    model = build_model("massive_dirac", {"v": v, "mass": M})
    k = RNG.uniform(-1, 1, (50, 2))
    f = compute_spin_fields(model, k, pairs=True)
    kx, ky = k[:, 0], k[:, 1]
    eps = np.sqrt(v**2 * (kx**2 + ky**2) + M**2)
    nh = np.stack([v * kx, v * ky, np.full_like(kx, M)], -1) / eps[:, None]  # (N, 3)
    dn = np.zeros((len(k), 2, 3))  # [b, a] = ∂_b n̂^a
    for b in range(2):
        for a in range(3):
            dn[:, b, a] = (v * (a == b)) / eps - nh[:, a] * v**2 * k[:, b] / eps**2
    sign = np.array([-1.0, 1.0])  # lower, upper
    np.testing.assert_allclose(f["spin_expectation"], sign[None, :, None] * nh[:, None, :], rtol=0, atol=1e-13)
    np.testing.assert_allclose(f["spin_expectation"][..., 2], np.stack([-M / eps, M / eps], 1), rtol=0, atol=1e-13)
    sv = np.zeros((2, 3))
    sv[0, 0] = sv[1, 1] = v / 2
    np.testing.assert_allclose(f["spin_velocity"], np.broadcast_to(sv, f["spin_velocity"].shape), rtol=0, atol=1e-13)
    for key in ("spin_qgt_metric", "spin_qgt_curvature", "spin_qgt_metric_x_gap", "spin_bcp", "spin_nonlinear_sea",
                "spin_velocity_derivative", "spin_qgt_metric_pair", "spin_qgt_curvature_pair"):
        assert np.abs(f[key]).max() < 1e-12, key
    gbar = np.zeros((len(k), 2, 3))
    gbar[:, 0, 1] = M * v / (2 * eps**2)
    gbar[:, 0, 2] = -v**2 * ky / (2 * eps**2)
    gbar[:, 1, 0] = -M * v / (2 * eps**2)
    gbar[:, 1, 2] = v**2 * kx / (2 * eps**2)
    np.testing.assert_allclose(gbar, 0.5 * np.cross(nh[:, None, :], dn), rtol=0, atol=1e-14)
    for band in range(2):
        s = sign[band]
        np.testing.assert_allclose(f["zeeman_qgt_metric"][:, band], gbar, rtol=0, atol=1e-13)
        np.testing.assert_allclose(f["zeeman_qgt_curvature"][:, band], s * dn, rtol=0, atol=1e-13)
        np.testing.assert_allclose(f["zeeman_bcp"][:, band], s * gbar / eps[:, None, None], rtol=0, atol=1e-12)
        np.testing.assert_allclose(f["zeeman_hspace_bcp"][:, band], s * dn / (2 * eps[:, None, None] ** 2),
                                   rtol=0, atol=1e-12)
        z = np.zeros((len(k), 2, 2, 3))  # [b, c, a]
        for b, c, a in itertools.product(range(2), range(2), range(3)):
            dot = (dn[:, b] * dn[:, c]).sum(-1)
            z[:, b, c, a] = -s * (v**2 * k[:, c] * dn[:, b, a] / eps + nh[:, a] * eps * dot / 2) / (8 * eps**3)
        np.testing.assert_allclose(f["zeeman_nonlinear_sea"][:, band], z, rtol=0, atol=1e-12 * np.abs(z).max())
    # 003 text: Ω̄^{xz}_{±∓} = ∓v²Δ kx/(v²k² + Δ²)^{3/2}, Ω̄^{yz}_{±∓} = ∓v²Δ ky/(…)^{3/2}
    for band, pm in ((1, 1.0), (0, -1.0)):
        np.testing.assert_allclose(f["zeeman_qgt_curvature"][:, band, 0, 2], -pm * v**2 * M * kx / eps**3, atol=1e-13)
        np.testing.assert_allclose(f["zeeman_qgt_curvature"][:, band, 1, 2], -pm * v**2 * M * ky / eps**3, atol=1e-13)


def test_snte_spin_metric_closed_form():
    """003 text: for H_s = vx kx σy − s vy ky σx + β σz + s α ky with spin σ,
    g^{yx;y}_{±∓} = s vx α (vy² ky² + β²) / [8 (vx² kx² + vy² ky² + β²)²]  (both bands of valley s).

    (Here v^{y;y} = ¼{−s vy σx + sα, σy} = (sα/2) σy and v^x = vx σy, so T^{yx;y}_{±∓} = (sα vx/2)|σ^y_{±∓}|²/ε²_{±∓}
    with |σ^y_{+−}|² = 1 − n̂_y², ε_{±∓} = ±2E: the quoted form.)
    """
    vx, vy, beta, alpha = 1.0, 0.7, 0.2, 0.3
    model = build_model("snte_surface_dirac", {"vx": vx, "vy": vy, "beta": beta, "alpha": alpha})
    k = RNG.uniform(-1, 1, (40, 2))
    f = compute_spin_fields(model, k, pairs=True)
    assert f["spin_qgt_metric"].shape == (40, 4, 2, 2, 3)
    kx, ky = k[:, 0], k[:, 1]
    E2 = vx**2 * kx**2 + vy**2 * ky**2 + beta**2
    for sector, s in ((0, 1.0), (1, -1.0)):
        expected = s * vx * alpha * (vy**2 * ky**2 + beta**2) / (8 * E2**2)
        for band in (2 * sector, 2 * sector + 1):
            np.testing.assert_allclose(f["spin_qgt_metric"][:, band, 1, 0, 1], expected, rtol=1e-12, atol=1e-15)
    # sectors never mix: pair fields are block-diagonal in (n, m)
    for key in SPIN_PAIR_FIELDS:
        assert np.abs(f[key][:, :2, 2:]).max() == 0.0 and np.abs(f[key][:, 2:, :2]).max() == 0.0


def test_refuses_model_without_spin():
    model = build_model("tilted_dirac")
    with pytest.raises(ValueError, match="no spin operator"):
        compute_spin_fields(model, np.zeros((3, 2)))
    model = build_model("bilayer_graphene_gapped")  # sectors without spin
    with pytest.raises(ValueError, match="no spin operator"):
        compute_spin_fields(model, np.zeros((3, 2)))
    dirac = build_model("massive_dirac")
    Hu = dirac.unique_derivatives(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        spin_fields(Hu, 2, np.eye(2))
    with pytest.raises(ValueError, match="Hermitian"):
        spin_fields(Hu, 2, np.stack([PAULI["x"], PAULI["y"], np.array([[0, 1], [0, 0]], complex)]))
    with pytest.raises(ValueError, match="slots"):
        spin_fields(Hu[:, :3], 2, dirac.spin)


def test_interface():
    model = pt_with_random_spin()
    k = RNG.uniform(-1, 1, (7, 2))
    f = compute_spin_fields(model, k, pairs=True)
    assert set(f) == set(SPIN_FIELDS + SPIN_DIPOLE_FIELDS + SPIN_PAIR_FIELDS)
    assert f["spin_expectation"].shape == (7, 4, 3)
    assert f["spin_velocity"].shape == (7, 4, 2, 3)
    assert f["spin_qgt_metric"].shape == (7, 4, 2, 2, 3)
    assert f["zeeman_qgt_metric"].shape == (7, 4, 2, 3)
    assert f["spin_nonlinear_sea"].shape == (7, 4, 2, 2, 2, 3)
    assert f["zeeman_nonlinear_sea"].shape == (7, 4, 2, 2, 3)
    assert f["spin_bcp_dipole"].shape == (7, 4, 2, 2, 2, 3)
    assert f["zeeman_bcp_dipole"].shape == (7, 4, 2, 2, 3)
    assert f["spin_qgt_metric_pair"].shape == (7, 4, 4, 2, 2, 3)
    assert f["zeeman_qgt_curvature_pair"].shape == (7, 4, 4, 2, 3)
    plain = compute_spin_fields(model, k, dipoles=False, n_threads=1)
    assert set(plain) == set(SPIN_FIELDS)
    # inactive slots are skipped: same result with all slots flagged active; second-order Hu suffices
    full = spin_fields(model.unique_derivatives(k)[:, :6], 2, model.spin)
    for key in full:
        np.testing.assert_allclose(f[key], full[key], rtol=0, atol=1e-14 * max(np.abs(full[key]).max(), 1))
    empty = compute_spin_fields(model, k[:0], pairs=True)
    assert empty["spin_nonlinear_sea"].shape == (0, 4, 2, 2, 2, 3)
    assert empty["spin_qgt_metric_pair"].shape == (0, 4, 4, 2, 2, 3)
