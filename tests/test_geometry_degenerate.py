"""Geometry at degenerate points of a symmetric 3D multi-orbital lattice model.

The model: p orbitals (x, y, z) ⊗ spin on a simple cubic lattice, Slater–Koster σ/π hoppings,
on-site spin–orbit λ L·S, and optionally chiral Kramers–Weyl terms Σ_a sin k_a (α σ_a + γ L_a) that
break inversion and every mirror but keep time reversal and the cubic rotations (point group O).
At the TRIM Γ and R the six states form a j = 3/2 quartet and a j = 1/2 Kramers pair; at X and M
Kramers pairs; the chiral terms split them linearly away from the TRIM (as in GaAs or Te), where
the kernels' group derivatives need degenerate perturbation theory. Without the chiral terms the
model has time reversal and inversion: Kramers pairs everywhere, group-summed Ω ≡ 0, so the AHC and
the Berry-curvature dipole vanish.
"""

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields
from qgtflow.geometry.projector import compute_quadrupole_fields
from qgtflow.models import TightBindingModel
from qgtflow.study import load_study

SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], complex)
L_P = np.array([[[0 if len({a, i, j}) < 3 else -1j * np.sign(np.linalg.det(np.eye(3)[[a, i, j]]))
                  for j in range(3)] for i in range(3)] for a in range(3)])  # (L_a)_ij = −i ε_aij
TRIM = {"Gamma": (0, 0, 0), "X": (np.pi, 0, 0), "M": (np.pi, np.pi, 0), "R": (np.pi, np.pi, np.pi)}


def p_orbital_model(chiral=True, noise=0.0, seed=0, t_sigma=1.0, t_pi=-0.3, soc=0.25, alpha=0.15, gamma=0.1):
    """6-band p ⊗ spin cubic model (lattice constant 1, energies in model units; see module doc).

    ``noise``: amplitude of random Hermitian perturbations of every hopping (rounding / Wannierisation
    errors that split the symmetry degeneracies by about that much).
    """
    hops = []
    one = np.eye(2)
    onsite = soc * sum(np.kron(L_P[a], SIGMA[a]) for a in range(3))
    blocks = {(0, 0, 0): onsite}
    for a in range(3):
        R = tuple(int(x) for x in np.eye(3, dtype=int)[a])
        t = np.diag([t_pi] * 3).astype(complex)
        t[a, a] = t_sigma
        hop = np.kron(t, one)
        if chiral:  # Σ sin k_a M_a: +M_a/(2i) at +a, −M_a/(2i) at −a
            hop = hop + (alpha * np.kron(np.eye(3), SIGMA[a]) + gamma * np.kron(L_P[a], one)) / 2j
        blocks[R] = hop
    rng = np.random.default_rng(seed)
    for R in list(blocks):
        if noise:
            blocks[R] = blocks[R] + noise * (rng.uniform(-1, 1, (6, 6)) + 1j * rng.uniform(-1, 1, (6, 6)))
    blocks[(0, 0, 0)] = (blocks[(0, 0, 0)] + blocks[(0, 0, 0)].conj().T) / 2
    for R in [r for r in blocks if any(r)]:
        blocks[tuple(-x for x in R)] = blocks[R].conj().T
    for R, mat in blocks.items():
        hops += [(R, i, j, mat[i, j]) for i in range(6) for j in range(6) if mat[i, j] != 0]
    return TightBindingModel("p_orbital_cubic", np.eye(3), np.zeros((6, 3)), hops, params={"chiral": int(chiral)})


def group_fields(model, k, bands):
    """Ω, g, 𝒢, ∂∂ε summed over the band set ``bands`` at k, by the spectral sums with exact energies."""
    H, dH, d2H = model.derivatives(np.atleast_2d(k), order=2)
    E, U = np.linalg.eigh(H[0])
    V = np.einsum("li,alm,mj->aij", U.conj(), dH[0], U)
    W = np.einsum("li,ablm,mj->abij", U.conj(), d2H[0], U)
    others = [m for m in range(len(E)) if m not in bands]
    T = np.zeros((3, 3), complex)
    G = np.zeros((3, 3))
    M = sum(W[:, :, n, n].real for n in bands)
    for n in bands:
        for m in others:
            p = np.einsum("a,b->ab", V[:, n, m], V[:, m, n])
            T += p / (E[n] - E[m]) ** 2
            G += 2 * p.real / (E[n] - E[m]) ** 3
            M = M + 2 * p.real / (E[n] - E[m])
    return {"berry_curvature": -2 * T.imag, "quantum_metric": T.real, "bcp": G, "inverse_mass": M}


DIPOLES = {"berry_curvature": "berry_curvature_dipole_density", "quantum_metric": "quantum_metric_dipole_density",
           "bcp": "bcp_dipole_density", "inverse_mass": "energy_third_derivative"}


def assert_group_derivatives(model, k0, groups, h=1e-4, rtol=2e-6, threshold=1e-6):
    """Kernel group sums of the dipole densities = central differences of the group-summed fields."""
    f = compute_fields(model, np.asarray(k0, float)[None], degeneracy_threshold=threshold)
    for bands in groups:
        for c in range(3):
            step = np.eye(3)[c] * h
            plus, minus = group_fields(model, k0 + step, bands), group_fields(model, k0 - step, bands)
            for name, dname in DIPOLES.items():
                fd = (plus[name] - minus[name]) / (2 * h)
                kernel = f[dname][0, bands][..., c].sum(0)
                scale = np.abs(fd).max() + 1e-3
                np.testing.assert_allclose(kernel, fd, atol=rtol * scale, err_msg=f"{dname} at {k0}, {bands}, c={c}")
    return f


def degenerate_groups(E, tol=1e-8):
    groups, start = [], 0
    for i in range(1, len(E) + 1):
        if i == len(E) or E[i] - E[i - 1] > tol:
            groups.append(list(range(start, i)))
            start = i
    return groups


@pytest.fixture(scope="module")
def chiral_model():
    return p_orbital_model(chiral=True)


@pytest.mark.parametrize("point", sorted(TRIM))
def test_group_dipoles_match_finite_differences_at_trim(chiral_model, point):
    """∂_c of group-summed Ω, g, 𝒢, ∂∂ε at degenerate TRIM = central differences of the spectral group sums.

    The chiral terms split the Kramers pairs and the j = 3/2 quartet linearly; ∂Ω of the pairs at X and M is
    O(1) (at Γ and R the cubic rotations and ∇·Ω = 0 force it to zero, which the old group-averaged band
    velocities violated).
    """
    k0 = np.array(TRIM[point], float)
    E = compute_fields(chiral_model, k0[None])["energy"][0]
    groups = degenerate_groups(E)
    assert sorted(len(g) for g in groups) == ([2, 4] if point in ("Gamma", "R") else [2, 2, 2])
    f = assert_group_derivatives(chiral_model, k0, groups)
    if point in ("X", "M"):
        assert np.abs(f["berry_curvature_dipole_density"][0]).max() > 0.1


def tuned_crossing_model(k0, bands, seed=5, n=6):
    """A random 3D lattice model plus a constant term that makes ``bands`` exactly degenerate at k0.

    A generic (Weyl-like) touching away from any TRIM: the bands split linearly in every direction with
    a velocity matrix V^c_DD that is not ∝ 1, and g, 𝒢, Ω of the group have nonzero derivatives.
    """
    rng = np.random.default_rng(seed)
    hops = []
    for R in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, -1)]:
        t = 0.3 * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
        hops += [(R, i, j, t[i, j]) for i in range(n) for j in range(n)]
        hops += [(tuple(-r for r in R), j, i, np.conj(t[i, j])) for i in range(n) for j in range(n)]
    onsite = 1.5 * np.arange(n)
    positions = rng.uniform(0, 1, (n, 3))
    lattice = np.array([[1.0, 0.1, 0.0], [0.0, 1.2, 0.2], [0.1, 0.0, 0.9]])
    base = TightBindingModel("random3d", lattice, positions, hops, onsite=onsite)
    E, U = np.linalg.eigh(base.derivatives(np.asarray(k0, float)[None], 0)[0][0])
    mean = E[bands].mean()
    shift = sum((mean - E[b]) * np.outer(U[:, b], U[:, b].conj()) for b in bands)
    # the constant term is H(k) − (E-shift) at k0; in convention II its (i, j) entry carries e^{ik·(τ_j − τ_i)}
    tau = positions @ lattice
    phase = np.exp(-1j * (tau[None, :, :] - tau[:, None, :]) @ np.asarray(k0, float))
    extra = shift * phase
    hops += [((0, 0, 0), i, j, extra[i, j]) for i in range(n) for j in range(n)]
    return TightBindingModel("random3d_tuned", lattice, positions, hops, onsite=onsite)


@pytest.mark.parametrize("bands", [[2, 3], [1, 2, 3]])
def test_group_dipoles_match_finite_differences_at_generic_crossing(bands):
    k0 = np.array([0.4, -1.1, 0.7])
    model = tuned_crossing_model(k0, bands)
    E = compute_fields(model, k0[None])["energy"][0]
    assert np.ptp(E[bands]) < 1e-12 and sorted(len(g) for g in degenerate_groups(E)) == sorted([len(bands)] + [1] * (6 - len(bands)))
    f = assert_group_derivatives(model, k0, degenerate_groups(E))
    D = f["quantum_metric_dipole_density"][0, bands]
    assert np.abs(D).max() > 1e-2 and np.abs(f["berry_curvature_dipole_density"][0, bands]).max() > 1e-2


def test_group_metric_dipole_matches_projector_route_near_trim(chiral_model):
    """Independent method: ∂g from band-projector derivatives (geometry/projector.py), at and next to TRIM."""
    rng = np.random.default_rng(4)
    k = np.concatenate([np.array(list(TRIM.values()), float),
                        np.array(list(TRIM.values()), float) + rng.normal(0, 1e-9, (4, 3)),
                        rng.uniform(-np.pi, np.pi, (4, 3))])
    f = compute_fields(chiral_model, k, degeneracy_threshold=1e-6)
    q = compute_quadrupole_fields(chiral_model, k, degeneracy_threshold=1e-6)
    np.testing.assert_allclose(f["quantum_metric_dipole_density"], q["quantum_metric_dipole_density"], atol=1e-7)
    np.testing.assert_allclose(f["quantum_metric"], q["quantum_metric"], atol=1e-9)


def write_rounded_hr(model, path, decimals=6):
    """The model as Wannier90 writes ``_hr.dat``: hoppings in eV rounded to ``decimals`` decimals."""
    rows = []
    table = model.hopping_table
    Rs = sorted(table)
    for R in Rs:
        for j in range(model.nbands):
            for i in range(model.nbands):
                t = table[R][i, j]
                rows.append(f"{R[0]:5d}{R[1]:5d}{R[2]:5d}{i + 1:5d}{j + 1:5d}{t.real:12.{decimals}f}{t.imag:12.{decimals}f}")
    degs = ["".join(f"{1:5d}" for _ in Rs[s:s + 15]) for s in range(0, len(Rs), 15)]
    path.write_text("\n".join(["rounded like Wannier90", f"{model.nbands:12d}", f"{len(Rs):12d}", *degs, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def split_kramers_study(tmp_path_factory):
    """TRS + inversion p⊗spin model (Kramers pairs everywhere), hoppings perturbed by ~1e-6 eV and rounded to
    6 decimals: the pairs split by μeV, as symmetry-degenerate bands of Wannier90 models do."""
    base = tmp_path_factory.mktemp("kramers")
    model = p_orbital_model(chiral=False, noise=1e-6, seed=2, t_sigma=1.0137, t_pi=-0.3081, soc=0.2519)
    write_rounded_hr(model, base / "pk_hr.dat")
    return {"name": "split_kramers", "model": {"name": "pk", "wannier90": {
        "hr": str(base / "pk_hr.dat"), "lattice": np.eye(3).tolist(), "positions": np.zeros((6, 3)).tolist()}},
        "units": {"length": "angstrom"}, "kgrid": {"sizes": [8]}, "mu": [-1.0, 0.5, 1.2], "temperature": [100.0],
        "responses": ["sigma_ahe", "berry_curvature_dipole", "sigma_drude"]}


def test_split_kramers_pairs_give_no_ahc_or_bcd_at_default_settings(split_kramers_study, tmp_path, caplog):
    """Time reversal + inversion: Ω ≡ 0 for every Kramers pair, so σ_AHE = 0 and D = 0. With the pairs split by
    μeV, the old default threshold (1e-6 eV) leaves them ungrouped: per-band Ω ∝ 1/Δε² that the Fermi factors at
    finite T do not cancel; the default groups them and the geometry stage warns about the old setting."""
    from qgtflow.api import evaluate

    splitting = np.diff(compute_fields(load_study(split_kramers_study).model, np.random.default_rng(1).uniform(
        -np.pi, np.pi, (64, 3)), degeneracy_threshold=1e-12)["energy"], axis=1)[:, ::2]
    assert 1e-7 < np.median(splitting) < 1e-5  # μeV-scale splitting of the symmetry-degenerate pairs
    e2_hbar_a = 2.434e-4 / 1e-10  # e²/ħ per Å (S/m): the natural AHC scale
    ds = evaluate(split_kramers_study, n_workers=0, workdir=tmp_path / "default")
    assert ds.attrs["degeneracy_threshold"] == 1e-4  # the default, stated in the attrs
    assert np.abs(ds["sigma_ahe"].values).max() < 1e-9 * e2_hbar_a
    assert np.abs(ds["berry_curvature_dipole"].values).max() < 1e-5
    assert "degeneracy_threshold" not in caplog.text
    old = evaluate({**split_kramers_study, "degeneracy_threshold": 1e-6}, n_workers=0, workdir=tmp_path / "old")
    assert np.abs(old["sigma_ahe"].values).max() > 1e-7 * e2_hbar_a
    assert np.abs(old["berry_curvature_dipole"].values).max() > 1e-2
    assert "raise degeneracy_threshold (now 1e-06)" in caplog.text


SPIN_DIPOLES = {  # dipole field: (field, axis of the field's derivative index e in the dipole layout)
    "spin_qgt_curvature_dipole": ("spin_qgt_curvature", 2), "spin_qgt_metric_x_gap_dipole": ("spin_qgt_metric_x_gap", 2),
    "spin_bcp_dipole": ("spin_bcp", 2), "zeeman_qgt_curvature_dipole": ("zeeman_qgt_curvature", 1),
    "zeeman_bcp_dipole": ("zeeman_bcp", 1), "zeeman_hspace_bcp_dipole": ("zeeman_hspace_bcp", 1)}


@pytest.mark.parametrize("point", ["X", "M"])
def test_spin_dipoles_match_finite_differences_at_trim(point):
    """003 spin/Zeeman dipoles of linearly split Kramers pairs = central differences of the group sums.

    At k ± h the pairs are split by ~1e-5 and grouped by a threshold above that (the group sums with the
    exact energies are smooth functions of k)."""
    from qgtflow.geometry.spin import compute_spin_fields

    chiral_model = p_orbital_model()
    chiral_model.spin = np.stack([np.kron(np.eye(3), s) for s in SIGMA])
    k0 = np.array(TRIM[point], float)
    f = compute_spin_fields(chiral_model, k0[None], degeneracy_threshold=1e-6)
    groups = degenerate_groups(compute_fields(chiral_model, k0[None])["energy"][0])
    h = 1e-4
    for e in range(3):
        step = np.eye(3)[e] * h
        plus, minus = (compute_spin_fields(chiral_model, (k0 + s)[None], degeneracy_threshold=1e-3, dipoles=False)
                       for s in (step, -step))
        for dname, (name, axis) in SPIN_DIPOLES.items():
            kernel = np.take(f[dname][0], e, axis=axis + 1)
            for bands in groups:
                fd = (plus[name][0, bands].sum(0) - minus[name][0, bands].sum(0)) / (2 * h)
                got = kernel[bands].sum(0)
                np.testing.assert_allclose(got, fd, atol=2e-6 * (np.abs(fd).max() + 1e-3), err_msg=f"{dname} e={e}")
    for dname in ("spin_qgt_metric_x_gap_dipole", "spin_bcp_dipole", "zeeman_bcp_dipole"):  # T-even: O(1) here
        assert np.abs(f[dname][0]).max() > 1e-2


def test_numpy_group_labels_equal_the_kernels_groups():
    """The NumPy routes (skew shells, position operator) group bands exactly as the numba kernels do."""
    from qgtflow.geometry.groups import group_labels
    from qgtflow.geometry.kernels import _groups

    rng = np.random.default_rng(3)
    E = np.sort(np.round(rng.normal(size=(200, 6)), 1) + 1e-7 * rng.normal(size=(200, 6)), axis=1)
    labels = group_labels(E, 1e-4)
    for row, lab in zip(E, labels):
        ref = np.empty(6, np.int64)
        _groups(row, 1e-4, ref)
        assert np.array_equal(ref, lab)
    assert labels[:, -1].min() < 5  # degenerate groups occur
