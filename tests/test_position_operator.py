"""The full Wannier position operator (issue 18 item 3): Berry curvature and its dipole with the position matrix
elements A(R) of a _tb.dat, against an independent finite-difference Berry phase (Fukui–Hatsugai link variables
of the full Bloch states, the basis transported with the position-operator connection), the Chern number, the
convention independence of the full result, and the AHC of the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from qgtflow.errors import ModelError
from qgtflow.geometry.fields import compute_fields
from qgtflow.models.wannier import read_tb
from tests.wannier_files import write_tb

LATTICE = np.array([[2.0, 0.0, 0.0], [0.5, 2.2, 0.0], [0.0, 0.0, 10.0]])  # Å; a layer (dim 2)
CENTRES = np.array([[0.0, 0.0, 0.0], [0.7, 0.4, 0.0], [1.2, 1.5, 0.0]])  # Cartesian, Å
N_ORB = 3
# 11 lattice vectors tile no Monkhorst–Pack supercell: the reader applies no Wigner–Seitz correction, so H(k) is
# the plain Fourier sum of the blocks (as `bloch` below computes it)
HOPS_R = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, -1, 0), (2, 0, 0)]


def _hermitian_set(rng, scale, shape):
    """{R: block} with block(−R) = block(R)^† over HOPS_R and their negatives."""
    out = {}
    for R in HOPS_R:
        m = scale * (rng.normal(size=shape) + 1j * rng.normal(size=shape))
        if not any(R):
            m = 0.5 * (m + np.conj(np.swapaxes(m, 0, 1)))
            out[R] = m
        else:
            out[R] = m
            out[tuple(-r for r in R)] = np.conj(np.swapaxes(m, 0, 1))
    return out


def model_blocks(seed=10):
    """Random time-reversal-breaking 3-orbital layer: H(R) (eV) and off-diagonal position elements r(R) (Å,
    in-plane; zero R = 0 diagonal: the file's centres carry it)."""
    rng = np.random.default_rng(seed)
    H = _hermitian_set(rng, 0.4, (N_ORB, N_ORB))
    H[(0, 0, 0)] = H[(0, 0, 0)] + np.diag([-1.0, 0.0, 1.2])
    r = _hermitian_set(rng, 0.06, (N_ORB, N_ORB, 3))
    for R in r:
        r[R][..., 2] = 0.0
    r[(0, 0, 0)][np.arange(N_ORB), np.arange(N_ORB)] = 0.0
    return H, r


@pytest.fixture(scope="module")
def tb_file(tmp_path_factory):
    H, r = model_blocks()
    path = tmp_path_factory.mktemp("position") / "layer_tb.dat"
    return write_tb(path, LATTICE, H, centres=CENTRES, positions=r, decimals=10)


def bloch(k, H, r, centres=CENTRES):
    """Independent of qgtflow: H(k) (K, n, n) and the basis connection A(k) (K, 2, n, n) at k (K, 2) (convention I:
    phases e^{ik·R}; Å, eV), A_nm(k) = Σ_R e^{ik·R} ⟨0n|r|Rm⟩ with the centres on the R = 0 diagonal."""
    k = np.atleast_2d(k)
    full = {R: m.copy() for R, m in r.items()}
    full[(0, 0, 0)][np.arange(len(centres)), np.arange(len(centres))] += centres
    Hk = sum(m[None] * np.exp(1j * k @ (np.array(R) @ LATTICE)[:2])[:, None, None] for R, m in H.items())
    Ak = sum(np.moveaxis(m[..., :2], -1, 0)[None] * np.exp(1j * k @ (np.array(R) @ LATTICE)[:2])[:, None, None, None]
             for R, m in full.items())
    return Hk, Ak


def plaquette_flux(k0, dk1, dk2, H, r):
    """Berry flux per band (K, n) through the parallelograms k0, k0+dk1, k0+dk1+dk2, k0+dk2 (k0: (K, 2))
    (Fukui–Hatsugai): minus the phase of the product of links ψ(k)† M(k, k') ψ(k'), the basis overlap
    M = exp(−i (k'−k)·A((k+k')/2)) (parallel transport with the position-operator connection)."""
    k0 = np.atleast_2d(k0)
    corners = [k0, k0 + dk1, k0 + dk1 + dk2, k0 + dk2]
    states = [np.linalg.eigh(bloch(k, H, r)[0])[1] for k in corners]
    prod = np.ones((k0.shape[0], N_ORB), complex)
    for p in range(4):
        ka, kb = corners[p], corners[(p + 1) % 4]
        X = np.einsum("ka,kaij->kij", kb - ka, bloch(0.5 * (ka + kb), H, r)[1])  # Hermitian
        lam, Q = np.linalg.eigh(X)
        M = np.einsum("kij,kj,klj->kil", Q, np.exp(-1j * lam), np.conj(Q))
        prod *= np.einsum("kin,kij,kjn->kn", np.conj(states[p]), M, states[(p + 1) % 4])
    return -np.angle(prod)


def test_reader_attaches_the_position_operator_and_records_it(tb_file):
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    assert model.position is not None and "position operator: full" in model.convention
    off = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=False)
    assert off.position is None and "tight-binding approximation" in off.convention
    assert off.model_hash != model.model_hash


def test_berry_curvature_equals_the_fukui_hatsugai_berry_phase(tb_file):
    """Local flux / area of a small plaquette (δ = 2e-4 Å⁻¹, error O(δ²)) = Ω^xy of every band, with the
    position operator; the tight-binding approximation differs by much more than the tolerance."""
    H, r = model_blocks()
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    off = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=False)
    rng = np.random.default_rng(3)
    k = rng.uniform(-1.5, 1.5, (6, 2))
    delta = 2e-4
    flux = plaquette_flux(k - 0.5 * delta, np.array([delta, 0]), np.array([0, delta]), H, r) / delta**2
    omega = compute_fields(model, k, 1e-8)["berry_curvature"][:, :, 0, 1]
    omega_tb = compute_fields(off, k, 1e-8)["berry_curvature"][:, :, 0, 1]
    scale = np.abs(flux).max()
    np.testing.assert_allclose(omega, flux, atol=1e-5 * scale)
    assert np.abs(omega_tb - flux).max() > 1e-2 * scale


def test_dipole_equals_finite_differences_and_conventions_agree(tb_file):
    """∂_c Ω with the position operator vs central differences; the full Ω and ∂Ω do not depend on the phase
    convention (I or II), the tight-binding approximation does."""
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    conv1 = read_tb(tb_file, length_unit="angstrom", dim=2, convention="I")
    k = np.random.default_rng(5).uniform(-1.5, 1.5, (5, 2))
    f = compute_fields(model, k, 1e-8)
    f1 = compute_fields(conv1, k, 1e-8)
    for name in ("berry_curvature", "berry_curvature_dipole_density"):
        np.testing.assert_allclose(f1[name], f[name], atol=1e-10 * np.abs(f[name]).max())
    h = 1e-5
    for c in range(2):
        e = np.eye(2)[c] * h
        fd = (compute_fields(model, k + e, 1e-8)["berry_curvature"]
              - compute_fields(model, k - e, 1e-8)["berry_curvature"]) / (2 * h)
        an = f["berry_curvature_dipole_density"][..., c]
        np.testing.assert_allclose(an, fd, atol=1e-6 * np.abs(an).max())


def test_core_subsets_equal_the_full_run_with_the_position_operator(tb_file):
    """A run for a few fields builds H and A only to the orders they read (σ_AHE: first) and gives the same
    values as the run of all fields (third order of both)."""
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    k = np.random.default_rng(9).uniform(-1.5, 1.5, (7, 2))
    full = compute_fields(model, k, 1e-8)
    for core in (("energy", "velocity", "berry_curvature"), ("quantum_metric", "bcp"),
                 ("berry_curvature_dipole_density",), ("quantum_metric_dipole_density", "bcp_dipole_density")):
        part = compute_fields(model, k, 1e-8, core=core)
        for name in core:
            np.testing.assert_allclose(part[name], full[name], rtol=0, atol=1e-12 * np.abs(full[name]).max())


def test_degenerate_copies_give_the_same_band_values(tmp_path):
    """Every band doubled (H ⊗ 1₂, r ⊗ 1₂): degenerate groups of two carry the single copy's per-band values."""
    H, r = model_blocks()
    H2 = {R: np.kron(m, np.eye(2)) for R, m in H.items()}
    r2 = {R: np.stack([np.kron(m[..., a], np.eye(2)) for a in range(3)], -1) for R, m in r.items()}
    single = read_tb(write_tb(tmp_path / "one_tb.dat", LATTICE, H, centres=CENTRES, positions=r, decimals=10),
                     length_unit="angstrom", dim=2)
    double = read_tb(write_tb(tmp_path / "two_tb.dat", LATTICE, H2, centres=np.repeat(CENTRES, 2, axis=0),
                              positions=r2, decimals=10), length_unit="angstrom", dim=2)
    k = np.random.default_rng(11).uniform(-1.5, 1.5, (4, 2))
    a = compute_fields(single, k, 1e-6)
    b = compute_fields(double, k, 1e-6)
    for name in ("berry_curvature", "berry_curvature_dipole_density", "quantum_metric", "bcp",
                 "quantum_metric_dipole_density", "bcp_dipole_density"):
        np.testing.assert_allclose(b[name][:, ::2], a[name], atol=1e-9 * np.abs(a[name]).max())
        np.testing.assert_allclose(b[name][:, 1::2], a[name], atol=1e-9 * np.abs(a[name]).max())


def _grid(n):
    """Cell-centred grid (shift ½) of the 2D zone: points (N², 2) and the two steps (Cartesian, Å⁻¹)."""
    b = 2 * np.pi * np.linalg.inv(LATTICE[:2, :2]).T
    frac = (np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2) + 0.5) / n
    return frac @ b, b / n


def test_chern_number_and_ahc_of_the_pipeline(tb_file, tmp_path):
    """The lowest band (isolated) has an integer Chern number from Ω with the position operator; the AHC of
    `evaluate` (μ inside the middle band, smooth T) equals the Fukui–Hatsugai Fermi sum on the same grid."""
    from qgtflow.api import evaluate

    H, r = model_blocks()
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    n = 96
    k, steps = _grid(n)
    f = compute_fields(model, k, 1e-8)
    area = abs(np.linalg.det(steps))
    chern = f["berry_curvature"][:, 0, 0, 1].sum() * area / (2 * np.pi)
    assert round(chern) == -1 and abs(chern - round(chern)) < 1e-3, chern  # 1.2e-4 at n = 96
    flux = plaquette_flux(k - 0.5 * (steps[0] + steps[1]), steps[0], steps[1], H, r)
    assert abs(flux[:, 0].sum() / (2 * np.pi) - round(chern)) < 1e-9
    mu, kT = float(np.median(f["energy"][:, 1])), 0.05
    study = {"model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2}}, "units": "natural",
             "kgrid": {"sizes": [n], "shift": 0.5}, "mu": [mu], "temperature": [kT], "responses": ["sigma_ahe"]}
    ahc = float(evaluate(study, n_workers=0, workdir=tmp_path)["sigma_ahe"].values.reshape(-1)[1])  # (x, y)
    occ = 1.0 / (np.exp((f["energy"] - mu) / kT) + 1.0)
    fukui = -np.sum(occ * flux) / (2 * np.pi) ** 2
    assert abs(ahc - fukui) < 5e-4 * np.abs(fukui)  # 1e-4 at n = 96, (ahc, fukui)


def test_responses_of_fields_without_the_position_operator_are_refused(tb_file):
    """The 003 Zeeman fields are refused in one line; the responses of the g and 𝒢 dipoles, of the Christoffel
    symbols and of the quadrupole (ife_coefficient, sea) are not (they include the position operator)."""
    from qgtflow.study import geometry_fields, load_study

    base = {"model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2}}, "units": "natural",
            "kgrid": {"sizes": [8]}, "mu": [0.0], "temperature": [0.05], "tau": 1.0}
    assert "quantum_metric_quadrupole_density" in geometry_fields(load_study({**base, "responses": ["sigma_ahe",
                                                                                                 "ife_coefficient"]}))
    off = {**base, "model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2,
                                                                "position_operator": False}}}
    assert "quantum_metric_quadrupole_density" in geometry_fields(load_study({**off, "responses": ["ife_coefficient"]}))
    fields = geometry_fields(load_study({**base, "responses": ["sigma_ahe", "sigma_bcd", "sigma_qm",
                                                               "quadrupolar_current_gamma"]}))
    assert {"bcp_dipole_density", "quantum_metric_dipole_density"} <= set(fields)
    assert "christoffel" in geometry_fields(load_study({**base, "responses": ["ife_coefficient"],
                                                         "fermi_form": "surface"}))
    from qgtflow.geometry.position import check_position_operator

    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    check_position_operator(model, ["reads_dg"], lambda r: ["quantum_metric_dipole_density", "christoffel"])
    with pytest.raises(ModelError, match="zeeman_bcp.*AMBIGUITIES-notes.*position_operator: false"):
        check_position_operator(model, ["reads_zeeman"], lambda r: ["zeeman_bcp"])


def test_bands_store_holds_no_tight_binding_only_field_under_the_full_operator(tb_file):
    """The bands stage's map gets the quadrupole density for a Christoffel response with the position operator on
    or off; a field that does not include it (a Zeeman field, which the schema keeps out of the bands stage anyway)
    is refused in one line naming the key."""
    from qgtflow.study import bands_fields, load_study

    base = {"model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2}}, "units": "natural",
            "kgrid": {"sizes": [8]}, "mu": [0.0], "temperature": [0.05], "tau": 1.0, "responses": ["ife_coefficient"],
            "fermi_form": "surface"}
    assert "quantum_metric_quadrupole_density" in bands_fields(load_study(base))["kmap"]
    off = {**base, "model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2,
                                                                "position_operator": False}}}
    assert "quantum_metric_quadrupole_density" in bands_fields(load_study(off))["kmap"]
    from qgtflow.geometry.position import check_position_fields

    with pytest.raises(ModelError, match=r"bands\.kmap\.fields: \['zeeman_qgt_metric'\] .*"
                                         "position_operator: false"):
        check_position_fields(read_tb(tb_file, length_unit="angstrom", dim=2), ["zeeman_qgt_metric"],
                              "bands.kmap.fields")


def test_christoffel_symbols_of_the_full_metric(tb_file):
    """With the position operator Γ_abc = ½(∂_c g_ab + ∂_b g_ac − ∂_a g_bc) of the full ∂g; the same combination
    of the tight-binding ∂g is the projector kernel's Γ (position operator off)."""
    from qgtflow.geometry.position import christoffel_symbols

    k = np.random.default_rng(9).uniform(-1.5, 1.5, (4, 2))
    for position_operator in (True, False):
        model = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=position_operator)
        f = compute_fields(model, k, 1e-8, optional=("christoffel",), core=("energy",))
        dg = compute_fields(model, k, 1e-8)["quantum_metric_dipole_density"]
        gam = np.empty_like(dg)
        for a, b, c in np.ndindex(2, 2, 2):
            gam[..., a, b, c] = 0.5 * (dg[..., a, b, c] + dg[..., a, c, b] - dg[..., b, c, a])
        np.testing.assert_allclose(f["christoffel"], gam, atol=1e-10 * np.abs(gam).max())
        np.testing.assert_allclose(christoffel_symbols(dg), gam, atol=1e-12 * np.abs(gam).max())


def test_no_position_elements_beyond_the_centres_add_nothing(tmp_path):
    """A file whose position blocks hold the centres only: the reader attaches no operator (the tight-binding
    fields, unchanged); and the external terms of a vanishing basis connection are exactly zero for every field."""
    from qgtflow.geometry.position import external_terms

    H, r = model_blocks()
    assert read_tb(write_tb(tmp_path / "centres_tb.dat", LATTICE, H, centres=CENTRES, decimals=10),
                   length_unit="angstrom", dim=2).position is None
    model = read_tb(write_tb(tmp_path / "full_tb.dat", LATTICE, H, centres=CENTRES, positions=r, decimals=10),
                    length_unit="angstrom", dim=2)
    k = np.random.default_rng(13).uniform(-1.5, 1.5, (5, 2))
    Hu = model.unique_derivatives(k)
    Au = model.position.unique_derivatives(k)
    ext = external_terms(Hu, np.zeros_like(Au), 2, 1e-8, dipole=True, metric=True)
    assert set(ext) == {"berry_curvature", "berry_curvature_dipole_density", "quantum_metric", "bcp"}
    assert all(not np.any(v) for v in ext.values())
    assert all(np.abs(v).max() > 0 for v in external_terms(Hu, Au, 2, 1e-8, metric=True).values())


def _overlap(k_from, k_to, blocks, states_from, states_to):
    """⟨ψ_m(k_from)| M |ψ_n(k_to)⟩ (K, n, n), M = exp(−i (k_to − k_from)·A^W(mid)): the Wannier-space overlap of the
    full Bloch states with the basis transported by the position-operator connection (as in plaquette_flux)."""
    X = np.einsum("ka,kaij->kij", k_to - k_from, blocks(0.5 * (k_from + k_to))[1])
    lam, Q = np.linalg.eigh(X)
    M = np.einsum("kij,kj,klj->kil", Q, np.exp(-1j * lam), np.conj(Q))
    return np.einsum("kim,kij,kjn->kmn", np.conj(states_from), M, states_to)


def _states(k, blocks):
    return np.linalg.eigh(blocks(k)[0])[1]


DIRECTIONS = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])]


def _metric_from(per_direction):
    """g (…, 2, 2) from the quadratic forms u·g·u along u = x, y and x + y."""
    gxx, gyy, gsum = per_direction
    gxy = 0.5 * (gsum - gxx - gyy)
    return np.stack([np.stack([gxx, gxy], -1), np.stack([gxy, gyy], -1)], -2)


def _fidelity_metric(k, blocks, groups, delta=1e-4):
    """Group quantum metric from the fidelity 1 − |det⟨ψ_D(k−δu/2)|M|ψ_D(k+δu/2)⟩|² ≈ δ² u·g_D·u (error O(δ²)),
    divided by the group size (a band's value); ``blocks(k)``: H(k), A(k); ``groups``: lists of band indices."""
    out = []
    for u in DIRECTIONS:
        lo, hi = k - 0.5 * delta * u, k + 0.5 * delta * u
        O = _overlap(lo, hi, blocks, _states(lo, blocks), _states(hi, blocks))
        per_band = np.empty((k.shape[0], sum(len(g) for g in groups)))
        for g in groups:
            fid = 1.0 - np.abs(np.linalg.det(O[:, g][:, :, g])) ** 2
            per_band[:, g] = (fid / delta**2 / len(g))[:, None]
        out.append(per_band)
    return _metric_from(out)


def test_quantum_metric_equals_the_fidelity_of_the_full_bloch_states(tb_file):
    """g with the position operator = the fidelity metric of the Bloch states built in the position-operator
    convention (Wannier-space overlaps); the tight-binding approximation is off by much more."""
    H, r = model_blocks()
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    off = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=False)
    k = np.random.default_rng(7).uniform(-1.5, 1.5, (6, 2))
    fid = _fidelity_metric(k, lambda q: bloch(q, H, r), [[0], [1], [2]])
    g = compute_fields(model, k, 1e-8)["quantum_metric"]
    g_tb = compute_fields(off, k, 1e-8)["quantum_metric"]
    scale = np.abs(fid).max()
    np.testing.assert_allclose(g, fid, atol=1e-6 * scale)
    assert np.abs(g_tb - fid).max() > 1e-2 * scale


def test_bcp_equals_pairwise_transition_probabilities(tb_file):
    """𝒢^ab_n = 2 Σ_m Re(𝒜^a_nm 𝒜^b_mn) / (ε_n − ε_m), the pair metric Re(𝒜^a_nm 𝒜^b_mn) from the gauge-invariant
    transition probabilities |⟨ψ_m(k−δu/2)|M|ψ_n(k+δu/2)⟩|² ≈ δ² |u·𝒜_mn|² (error O(δ)), energies from H(k)."""
    H, r = model_blocks()
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    off = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=False)
    k = np.random.default_rng(8).uniform(-1.5, 1.5, (6, 2))
    delta = 1e-6
    blocks = lambda q: bloch(q, H, r)  # noqa: E731
    E = np.linalg.eigvalsh(blocks(k)[0])
    gap = E[:, None, :] - E[:, :, None]  # [m, n] = ε_n − ε_m
    off_diag = ~np.eye(N_ORB, dtype=bool)
    weighted = []
    for u in DIRECTIONS:
        lo, hi = k - 0.5 * delta * u, k + 0.5 * delta * u
        pair = np.abs(_overlap(lo, hi, blocks, _states(lo, blocks), _states(hi, blocks))) ** 2 / delta**2  # [m, n]
        weighted.append(2.0 * np.where(off_diag, pair / np.where(off_diag, gap, 1.0), 0.0).sum(axis=1))
    bcp_fd = _metric_from(weighted)
    bcp = compute_fields(model, k, 1e-8)["bcp"]
    scale = np.abs(bcp_fd).max()
    np.testing.assert_allclose(bcp, bcp_fd, atol=1e-4 * scale)
    assert np.abs(compute_fields(off, k, 1e-8)["bcp"] - bcp_fd).max() > 1e-2 * scale


def test_degenerate_groups_metric_equals_the_group_fidelity(tmp_path):
    """Every band doubled (H ⊗ 1₂, r ⊗ 1₂ plus an in-group mixing of r that leaves the bands degenerate): the
    group metric from 1 − |det| over each degenerate pair, per band."""
    H, r = model_blocks()
    mix = 0.02 * np.kron(np.eye(N_ORB), np.array([[0.0, 1.0], [1.0, 0.0]]))
    H2 = {R: np.kron(m, np.eye(2)) for R, m in H.items()}
    r2 = {R: np.stack([np.kron(m[..., a], np.eye(2)) + (mix if not any(R) and a < 2 else 0.0) for a in range(3)], -1)
          for R, m in r.items()}
    centres = np.repeat(CENTRES, 2, axis=0)
    model = read_tb(write_tb(tmp_path / "two_tb.dat", LATTICE, H2, centres=centres, positions=r2, decimals=10),
                    length_unit="angstrom", dim=2)
    k = np.random.default_rng(12).uniform(-1.5, 1.5, (4, 2))
    fid = _fidelity_metric(k, lambda q: bloch(q, H2, r2, centres), [[0, 1], [2, 3], [4, 5]])
    g = compute_fields(model, k, 1e-6)["quantum_metric"]
    np.testing.assert_allclose(g, fid, atol=1e-6 * np.abs(fid).max())


# -- the dipoles of g and 𝒢 with the position operator ---------------------------------------------------------

METRIC_DIPOLES = {"quantum_metric": "quantum_metric_dipole_density", "bcp": "bcp_dipole_density"}


def _group_sums(values, groups):
    """Per-band values (K, n, …) → their sums over each degenerate group (lists of band indices), per band."""
    out = np.empty_like(values)
    for g in groups:
        out[:, g] = values[:, g].sum(axis=1, keepdims=True)
    return out


def _richardson(model, k, name, c, threshold, h=1e-4):
    """∂_c of a field by Richardson-extrapolated central differences (steps h, h/2; error O(h⁴))."""
    e = np.eye(model.dim)[c]
    central = [(compute_fields(model, k + s * e, threshold, core=(name,))[name]
                - compute_fields(model, k - s * e, threshold, core=(name,))[name]) / (2 * s) for s in (h, h / 2)]
    return (4 * central[1] - central[0]) / 3


def _assert_dipoles_equal_differences(model, k, groups, threshold, rtol=1e-6):
    """∂_c g and ∂_c 𝒢 (group sums: smooth through degeneracies) against Richardson differences of g and 𝒢,
    relative to each k-point's largest value."""
    f = compute_fields(model, k, threshold)
    for base, dipole in METRIC_DIPOLES.items():
        scale = np.abs(f[dipole]).reshape(len(k), -1).max(axis=1)
        assert scale.min() > 0
        for c in range(model.dim):
            fd = _group_sums(_richardson(model, k, base, c, threshold), groups)
            err = np.abs(_group_sums(f[dipole][..., c], groups) - fd).reshape(len(k), -1).max(axis=1) / scale
            assert err.max() < rtol, (dipole, "xyz"[c], err)


def _fe_like_with_positions(path, seed=21, scale=0.05):
    """The Fe-like bcc model (tests/data/make_fe_like.py) with random off-diagonal position elements A(R) on its
    R vectors (r(−R) = r(R)^†, zero R = 0 diagonal)."""
    from tests.data.make_fe_like import LATTICE as FE_LATTICE, blocks

    H = blocks()
    rng = np.random.default_rng(seed)
    r = {}
    for R in sorted(H):
        mR = tuple(-x for x in R)
        if mR in r:
            r[R] = np.conj(np.swapaxes(r[mR], 0, 1))
            continue
        m = scale * (rng.normal(size=(6, 6, 3)) + 1j * rng.normal(size=(6, 6, 3)))
        r[R] = 0.5 * (m + np.conj(np.swapaxes(m, 0, 1))) if R == mR else m
    r[(0, 0, 0)][np.arange(6), np.arange(6)] = 0.0
    return read_tb(write_tb(path, FE_LATTICE, H, positions=r, decimals=10), length_unit="angstrom"), FE_LATTICE


def test_metric_dipoles_equal_differences_of_the_full_metric_and_bcp(tb_file, tmp_path):
    """Layer model (off-diagonal A(R)) at generic points and its TRIMs; Fe-like bcc model with A(R) at a generic
    point and Γ, H, N, P, Δ: ∂g, ∂𝒢 with the position operator = Richardson differences of g, 𝒢 to 1e-6."""
    model = read_tb(tb_file, length_unit="angstrom", dim=2)
    b = 2 * np.pi * np.linalg.inv(LATTICE[:2, :2]).T
    frac = np.array([[0.13, 0.37], [0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.5, 0.5], [0.71, 0.22]])
    _assert_dipoles_equal_differences(model, frac @ b, [[0], [1], [2]], 1e-8)
    off = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=False)
    full, tight_binding = (compute_fields(m, frac @ b, 1e-8) for m in (model, off))
    for name in METRIC_DIPOLES.values():  # the external terms matter
        assert np.abs(full[name] - tight_binding[name]).max() > 1e-2 * np.abs(full[name]).max()
    fe, fe_lattice = _fe_like_with_positions(tmp_path / "fe_r_tb.dat")
    assert fe.position is not None
    b3 = 2 * np.pi * np.linalg.inv(fe_lattice).T
    frac3 = np.array([[0.13, 0.27, 0.41], [0, 0, 0], [0.5, -0.5, 0.5], [0, 0, 0.5], [0.25, 0.25, 0.25],
                      [0.1, 0.1, 0.0]])
    _assert_dipoles_equal_differences(fe, frac3 @ b3, [[i] for i in range(6)], 1e-8)


def test_metric_dipoles_at_degenerate_groups(tmp_path):
    """Every band doubled, with an in-group mixing of r (degenerate pairs at every k): the group sums of ∂g, ∂𝒢
    equal the differences of the group sums of g, 𝒢."""
    H, r = model_blocks()
    mix = 0.02 * np.kron(np.eye(N_ORB), np.array([[0.0, 1.0], [1.0, 0.0]]))
    H2 = {R: np.kron(m, np.eye(2)) for R, m in H.items()}
    r2 = {R: np.stack([np.kron(m[..., a], np.eye(2)) + (mix if not any(R) and a < 2 else 0.0) for a in range(3)], -1)
          for R, m in r.items()}
    model = read_tb(write_tb(tmp_path / "two_tb.dat", LATTICE, H2, centres=np.repeat(CENTRES, 2, axis=0),
                             positions=r2, decimals=10), length_unit="angstrom", dim=2)
    k = np.random.default_rng(17).uniform(-1.5, 1.5, (4, 2))
    _assert_dipoles_equal_differences(model, k, [[0, 1], [2, 3], [4, 5]], 1e-6)


def test_shared_eigenbasis_equals_the_external_terms_own_eigh(tb_file, tmp_path):
    """The batched kernel hands its eigenbasis to the external terms (position.ExternalTerms); the per-k kernel
    leaves them to diagonalise on their own (external_terms): the same fields, core subsets included (σ_AHE's
    level-1 run rotates only the diagonal of Ω^W), on the layer model and the Fe-like model with A(R)
    (degenerate spin-orbit pairs)."""
    from qgtflow.geometry.batched import POSITION_BATCHED_MIN_BANDS, use_batched

    layer = read_tb(tb_file, length_unit="angstrom", dim=2)
    fe, _ = _fe_like_with_positions(tmp_path / "fe_r_tb.dat")
    assert use_batched(fe.nbands, -1, False, POSITION_BATCHED_MIN_BANDS)  # the automatic choice shares it
    rng = np.random.default_rng(23)
    for model in (layer, fe):
        k = rng.uniform(-1.5, 1.5, (9, model.dim))
        for core in (None, ("energy", "velocity", "berry_curvature"), ("quantum_metric", "bcp")):
            shared = compute_fields(model, k, 1e-8, core=core, batched=True)
            own = compute_fields(model, k, 1e-8, core=core, batched=False)
            for name, value in own.items():
                np.testing.assert_allclose(shared[name], value, rtol=0, atol=1e-11 * max(np.abs(value).max(), 1e-300),
                                           err_msg=name)


def test_connection_curvature_path_equals_the_full_derivative_path(tb_file, tmp_path):
    """Ω, g, 𝒢 read of A^W only A^W and Ω^W_ab = ∂_aA^W_b − ∂_bA^W_a, built directly from the R blocks
    (PositionOperator.connection_curvature, one product with i(R_aA_b(R) − R_bA_a(R))): equal to the difference of
    the full first derivatives, and the fields equal to those of the full-∂A^W path to 1e-13 relative, on the layer
    model (conventions II and I, its TRIMs), the Fe-like model with A(R) (Γ, H, N, P) and the doubled layer with an
    in-group mixing of r (degenerate pairs at every k)."""
    import pickle

    from qgtflow.geometry.fields import fields_from_unique
    from qgtflow.geometry.position import ExternalTerms, add_external_terms

    H, r = model_blocks()
    mix = 0.02 * np.kron(np.eye(N_ORB), np.array([[0.0, 1.0], [1.0, 0.0]]))
    H2 = {R: np.kron(m, np.eye(2)) for R, m in H.items()}
    r2 = {R: np.stack([np.kron(m[..., a], np.eye(2)) + (mix if not any(R) and a < 2 else 0.0) for a in range(3)], -1)
          for R, m in r.items()}
    doubled = write_tb(tmp_path / "two_tb.dat", LATTICE, H2, centres=np.repeat(CENTRES, 2, axis=0), positions=r2,
                       decimals=10)
    fe, fe_lattice = _fe_like_with_positions(tmp_path / "fe_r_tb.dat")
    b2 = 2 * np.pi * np.linalg.inv(LATTICE[:2, :2]).T
    trims = np.array([[0.13, 0.37], [0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.5, 0.5]]) @ b2
    fe_k = np.array([[0.13, 0.27, 0.41], [0, 0, 0], [0.5, -0.5, 0.5], [0, 0, 0.5], [0.25, 0.25, 0.25]])
    cases = [(read_tb(tb_file, length_unit="angstrom", dim=2), trims),
             (read_tb(tb_file, length_unit="angstrom", dim=2, convention="I"), trims),
             (read_tb(doubled, length_unit="angstrom", dim=2), np.random.default_rng(17).uniform(-1.5, 1.5, (4, 2))),
             (fe, fe_k @ (2 * np.pi * np.linalg.inv(fe_lattice).T))]
    core = ("energy", "velocity", "berry_curvature", "quantum_metric", "bcp")
    for model, k in cases:
        d, pos = model.dim, model.position
        full = pos.unique_derivatives(k, order=1)  # slots: A, ∂_0A, ∂_1A, …
        compact = pos.connection_curvature(k)
        scale = np.abs(full).max()
        np.testing.assert_allclose(compact[:, :d], full[:, :, 0], rtol=0, atol=1e-13 * scale)
        omega = np.stack([full[:, b, 1 + a] - full[:, a, 1 + b] for a, b in pos.pairs], axis=1)
        np.testing.assert_allclose(compact[:, d:], omega, rtol=0, atol=1e-13 * scale)
        assert np.array_equal(pickle.loads(pickle.dumps(pos)).connection_curvature(k), compact)  # blocks rebuilt
        Hu = model.unique_derivatives(k, order=1)
        for batched in (False, True):
            new = compute_fields(model, k, 1e-6, core=core, n_threads=1, batched=batched)
            # the path before: the same kernel, the external terms from the full first derivatives of A^W
            extra = ExternalTerms(full, d, 1e-6, core) if batched else None
            old = fields_from_unique(Hu, d, 1e-6, -1, 1, None, active=model.active_slots(), level=1, batched=batched,
                                     extra=extra)
            if batched:
                extra.add_to(old)
            else:
                add_external_terms(old, model, k, Hu, 1e-6, core, full)
            for name in core:
                np.testing.assert_allclose(new[name], old[name], rtol=0,
                                           atol=1e-13 * max(np.abs(old[name]).max(), 1e-300), err_msg=name)


def test_symmetry_check_curvature_equals_the_full_derivative_path(tmp_path):
    """The symmetry check's Berry curvature (geometry/covariance.py) reads A^W and Ω^W only, as the external terms
    from A^W to third order did before (Fe-like model with A(R), degenerate spin-orbit pairs)."""
    from qgtflow.geometry import covariance
    from qgtflow.geometry.position import external_terms

    fe, _ = _fe_like_with_positions(tmp_path / "fe_r_tb.dat")
    k = np.random.default_rng(3).uniform(-2.0, 2.0, (12, 3))
    E, curv, gap = covariance.energies_and_curvature(fe, k)
    off_curv = covariance.energies_and_curvature(_without_position(fe), k)[1]
    old = off_curv + external_terms(fe.unique_derivatives(k, order=1), fe.position.unique_derivatives(k), 3, gap,
                                    dipole=False)["berry_curvature"]
    assert np.abs(curv - off_curv).max() > 1e-3 * np.abs(curv).max()  # the external terms matter
    np.testing.assert_allclose(curv, old, rtol=0, atol=1e-13 * np.abs(old).max())


def _without_position(model):
    import copy

    other = copy.copy(model)
    other.position = None
    return other
