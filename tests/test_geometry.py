"""Geometry fields: closed forms, independent methods, finite differences, gauge invariance."""

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields, fields_from_derivatives
from qgtflow.models import build_model
from tests.conftest import random_lattice_model

RNG = np.random.default_rng(7)

DERIVATIVE_PAIRS = [
    ("velocity", "energy"),
    ("inverse_mass", "velocity"),
    ("energy_third_derivative", "inverse_mass"),
    ("berry_curvature_dipole_density", "berry_curvature"),
    ("quantum_metric_dipole_density", "quantum_metric"),
    ("bcp_dipole_density", "bcp"),
]

MODELS = [
    ("massive_dirac", {"v": 1.0, "mass": 0.3}),
    ("tilted_dirac", {"v": 1.0, "tilt": 0.4, "mass": 0.2}),
    ("pt_toy_4band", {"t": 0.5}),
    ("haldane", {"mass": 0.2}),
]


def _model(name, params):
    return random_lattice_model() if name == "random_lattice" else build_model(name, params)


def test_massive_dirac_closed_forms():
    v, M = 0.8, 0.3
    model = build_model("massive_dirac", {"v": v, "mass": M})
    k = RNG.uniform(-1, 1, (50, 2))
    f = compute_fields(model, k)
    eps = np.sqrt(v**2 * (k**2).sum(1) + M**2)
    g = v**2 * (eps[:, None, None] ** 2 * np.eye(2) - v**2 * np.einsum("na,nb->nab", k, k)) / (4 * eps[:, None, None] ** 4)
    omega = M * v**2 / (2 * eps**3)
    np.testing.assert_allclose(f["energy"], np.stack([-eps, eps], 1), rtol=1e-13)
    for band, sign in ((0, 1), (1, -1)):
        np.testing.assert_allclose(f["quantum_metric"][:, band], g, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(f["berry_curvature"][:, band, 0, 1], sign * omega, rtol=1e-11)
        np.testing.assert_allclose(f["berry_curvature"][:, band, 1, 0], -sign * omega, rtol=1e-11)
        # 𝒢 = 2 g / (ε_n − ε_m) for two bands
        np.testing.assert_allclose(f["bcp"][:, band], -sign * g / eps[:, None, None], rtol=1e-11, atol=1e-14)
        # velocity ∂ε/∂k = ±v² k / ε
        np.testing.assert_allclose(f["velocity"][:, band], -sign * v**2 * k / eps[:, None], rtol=1e-12)


def test_berry_curvature_matches_discrete_berry_phase():
    """Independent method: the Berry phase of a small loop (product of overlaps) is ∫Ω dA."""
    model = build_model("haldane", {"mass": 0.2})
    k0, r, n = np.array([0.7, -0.4]), 2e-3, 256
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    loop = k0 + r * np.stack([np.cos(th), np.sin(th)], 1)
    _, vecs = np.linalg.eigh(model.derivatives(loop, 0)[0])
    exact = compute_fields(model, k0[None])["berry_curvature"][0, :, 0, 1]
    for band in range(2):
        u = vecs[:, :, band]
        phase = -np.angle(np.prod(np.einsum("ni,ni->n", u.conj(), np.roll(u, -1, axis=0))))
        assert phase / (np.pi * r**2) == pytest.approx(exact[band], rel=1e-4)


@pytest.mark.parametrize("name,params", MODELS + [("random_lattice", {})])
def test_exact_derivatives_match_finite_differences(name, params):
    model = _model(name, params)
    k = RNG.uniform(-0.6, 0.6, (6, 2))
    h = 1e-5
    base = compute_fields(model, k)
    for c in range(2):
        dk = np.zeros(2)
        dk[c] = h
        fp, fm = compute_fields(model, k + dk), compute_fields(model, k - dk)
        for deriv, field in DERIVATIVE_PAIRS:
            fd = (fp[field] - fm[field]) / (2 * h)
            exact = base[deriv][..., c]
            scale = max(np.abs(exact).max(), np.abs(base[field]).max(), 1e-12)
            assert np.abs(fd - exact).max() < 2e-6 * scale, (name, deriv, c)


@pytest.mark.parametrize("name,params", MODELS + [("random_lattice", {})])
def test_gauge_invariance(name, params):
    """Random orbital-basis rotations and random eigenvector gauges leave every field unchanged."""
    model = _model(name, params)
    k = RNG.uniform(-0.8, 0.8, (40, 2))
    mats = model.derivatives(k, 3)
    ref = fields_from_derivatives(*mats)
    n = model.nbands
    q, _ = np.linalg.qr(RNG.normal(size=(n, n)) + 1j * RNG.normal(size=(n, n)))
    rotated = [q @ m @ q.conj().T for m in mats]
    for seed in (-1, 11):
        new = fields_from_derivatives(*rotated, gauge_seed=seed)
        for key in ref:
            scale = max(np.abs(ref[key]).max(), 1e-3)  # fields that vanish by symmetry: absolute floor
            np.testing.assert_allclose(new[key], ref[key], atol=1e-9 * scale, err_msg=f"{key} seed={seed}")


def test_gauge_seed_actually_changes_eigenvectors():
    """The gauge hook must not be a no-op: the random rotation changes the eigenvectors it acts on."""
    from qgtflow.geometry.kernels import _groups, _random_gauge

    E = np.array([0.0, 0.0, 1.0])
    U = np.eye(3, dtype=complex)
    grp = np.empty(3, np.int64)
    ng = _groups(E, 1e-6, grp)
    _random_gauge(U, grp, ng)
    assert ng == 2 and np.abs(U[:2, :2] - np.eye(2)).max() > 1e-3
    np.testing.assert_allclose(U.conj().T @ U, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("t", [0.0, 0.5, 0.9])
def test_pt_model_degenerate_and_curvature_free(t):
    """001 Eq. 20 is PT-symmetric: doubly degenerate bands, pointwise zero traced Berry curvature."""
    model = build_model("pt_toy_4band", {"t": t})
    f = compute_fields(model, RNG.uniform(-1.5, 1.5, (200, 2)))
    np.testing.assert_allclose(f["energy"][:, 0], f["energy"][:, 1], atol=1e-12)
    np.testing.assert_allclose(f["energy"][:, 2], f["energy"][:, 3], atol=1e-12)
    assert np.abs(f["berry_curvature"]).max() < 1e-12
    assert np.abs(f["berry_curvature_dipole_density"]).max() < 1e-10
    assert np.abs(f["quantum_metric"]).max() > 0.01  # the metric is not trivially zero


def test_pt_model_spectrum_closed_form():
    v, m, b, t = 1.0, 0.1, 1.0, 0.9
    model = build_model("pt_toy_4band", {"v": v, "m": m, "b": b, "t": t})
    k = RNG.uniform(-1, 1, (30, 2))
    eps = np.sqrt(v**2 * (k**2).sum(1) + (m - b * (k**2).sum(1) + t * k[:, 0]) ** 2)
    f = compute_fields(model, k)
    np.testing.assert_allclose(f["energy"], np.stack([-eps, -eps, eps, eps], 1), rtol=1e-12)


def test_metric_positive_semidefinite_and_bound(lattice_model):
    """g is PSD and det g ≥ (Ω/2)² pointwise for every band (quantum-geometric inequality)."""
    f = compute_fields(lattice_model, RNG.uniform(-3, 3, (300, 2)))
    g, om = f["quantum_metric"], f["berry_curvature"][..., 0, 1]
    assert np.linalg.eigvalsh(g).min() > -1e-12
    det = g[..., 0, 0] * g[..., 1, 1] - g[..., 0, 1] ** 2
    assert np.all(det - om**2 / 4 > -1e-10 * np.abs(det).max())


@pytest.mark.parametrize("name,params", [("massive_dirac", {"v": 0.7, "mass": -0.2}),
                                         ("tilted_dirac", {"tilt": 0.5}), ("haldane", {"mass": 0.3, "phi": 0.7}),
                                         ("pt_toy_4band", {"t": 0.0}), ("pt_toy_4band", {"t": 0.9})])
def test_clifford_closed_form_equals_sum_over_states(name, params):
    """Independent methods: d-vector (Clifford) closed forms vs eigenvector sums, every field."""
    model = build_model(name, params)
    assert model.clifford_gammas is not None  # all of these are Clifford models
    k = RNG.uniform(-2, 2, (300, 2))
    closed = compute_fields(model, k, closed_form=True)
    generic = compute_fields(model, k, closed_form=False)
    for key in closed:
        scale = max(np.abs(generic[key]).max(), 1e-3)
        np.testing.assert_allclose(closed[key], generic[key], atol=1e-10 * scale, err_msg=key)


def test_touching_points_of_a_clifford_model_take_the_sum_over_states():
    """clifford_chunk leaves the k-points where the two levels touch to geometry_chunk (run on those indices only):
    there the fields are the generic path's exactly, elsewhere the closed form's."""
    model = build_model("massive_dirac", {"v": 1.0, "mass": 0.0})
    k = RNG.uniform(-1, 1, (40, 2))
    k[[3, 17, 39]] = 0.0  # the Dirac point: 2r = 0 < threshold
    closed = compute_fields(model, k, closed_form=True, n_threads=2)
    generic = compute_fields(model, k, closed_form=False, n_threads=2)
    for key in closed:
        np.testing.assert_array_equal(closed[key][[3, 17, 39]], generic[key][[3, 17, 39]], err_msg=key)
        scale = max(np.abs(generic[key]).max(), 1e-3)
        np.testing.assert_allclose(closed[key], generic[key], atol=1e-10 * scale, err_msg=key)


def test_clifford_detection():
    from qgtflow.geometry.clifford import clifford_basis, structure_constants

    assert random_lattice_model().clifford_gammas is None  # a generic 3-band model has no such basis
    gam = build_model("pt_toy_4band").clifford_gammas
    assert gam.shape == (3, 4, 4) and np.abs(structure_constants(gam)).max() < 1e-14  # PT: no curvature
    pauli = clifford_basis([np.array([[1, 2 - 1j], [2 + 1j, -1]])])
    assert pauli.shape == (1, 2, 2)
    # two non-anticommuting 4×4 terms (σz⊗1 and σz⊗σz commute) are refused
    sz, one = np.diag([1.0, -1.0]), np.eye(2)
    assert clifford_basis([np.kron(sz, one), np.kron(sz, sz)]) is None


def test_active_slots_are_exact_for_polynomial_models():
    """Slots flagged inactive really vanish (their rotation is skipped in the kernel)."""
    for name in ("massive_dirac", "pt_toy_4band"):
        model = build_model(name)
        active = model.active_slots()
        Hu = model.unique_derivatives(RNG.uniform(-1, 1, (50, 2)))
        assert not active.all()  # third derivatives of these quadratic models vanish
        assert np.abs(Hu[:, ~active]).max() == 0.0
        assert all(np.abs(Hu[:, u]).max() > 0 for u in np.flatnonzero(active))


@pytest.mark.parametrize("name,params", MODELS + [("random_lattice", {})])
@pytest.mark.parametrize("closed_form", [True, False])
def test_fewer_fields_give_identical_values(name, params, closed_form):
    """Compute only what is read: the kernel at level 1 (Ω, g, 𝒢 from H and ∂H) and level 2 (+ ∂²ε) returns
    bit-identical values to the full kernel, and only the fields asked for (CORE_FIELDS order kept)."""
    model = _model(name, params)
    k = RNG.uniform(-2, 2, (200, model.dim))
    full = compute_fields(model, k, closed_form=closed_form)
    for core in [("energy", "velocity", "berry_curvature"), ("energy", "velocity", "inverse_mass", "bcp")]:
        part = compute_fields(model, k, closed_form=closed_form, core=core)
        assert list(part) == list(core)
        for key in core:
            np.testing.assert_array_equal(part[key], full[key], err_msg=key)


def test_reused_buffers_are_the_calling_threads_own():
    """compute_fields(reuse_buffers=True) in two threads at once on two models of one shape: the arrays one thread
    holds are not overwritten by the other's chunk (the buffers were once per process: the second thread's fields
    landed in the first's result)."""
    import threading

    from qgtflow.geometry.fields import compute_fields

    models = [build_model("massive_dirac", {"v": 1.0, "mass": 0.1}), build_model("massive_dirac", {"v": 1.0,
                                                                                              "mass": 0.5})]
    k = np.random.default_rng(3).uniform(-1, 1, (32, 2))
    ref = [compute_fields(m, k)["berry_curvature"].copy() for m in models]
    assert not np.allclose(ref[0], ref[1])
    first_done, results, errors = threading.Event(), {}, []

    def run(i):
        try:
            if i == 1:
                assert first_done.wait(30)  # thread 0 holds its result while this one computes
            results[i] = compute_fields(models[i], k, reuse_buffers=True)["berry_curvature"]
            if i == 0:
                first_done.set()
                second.join(30)
                results["0 after"] = results[0].copy()
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    second = threading.Thread(target=run, args=(1,))
    first = threading.Thread(target=run, args=(0,))
    second.start()
    first.start()
    first.join(60)
    assert not errors, errors
    np.testing.assert_array_equal(results["0 after"], ref[0])
    np.testing.assert_array_equal(results[1], ref[1])
