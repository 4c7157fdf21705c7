"""003 DC spin currents and spin magnetization: forms (fn. 82), NDSM closed form, Table I parities, units."""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.errors import ConfigError
from qgtflow.geometry.fields import compute_fields
from qgtflow.kgrid import make_grid
from qgtflow.models.tight_binding import TightBindingModel
from qgtflow.reduce.kinds import required_fields
from qgtflow.reduce.responses import RESPONSES
from qgtflow.reduce.spectral import EnergyBins, accumulate
from qgtflow.stages import reduce_stage
from qgtflow.study import load_study

SPIN_RESPONSES = ["spin_sigma_lin_tau1", "spin_beta_lin_tau1", "spin_sigma_lin_tau0", "spin_beta_lin_tau0",
                  "spin_sigma_nl_tau2", "spin_beta_nl_tau2", "spin_sigma_nl_tau1", "spin_beta_nl_tau1",
                  "spin_sigma_nl_tau0", "spin_beta_nl_tau0"]
S0 = np.eye(2, dtype=complex)
SX = np.array([[0, 1], [1, 0]], complex)
SY = np.array([[0, -1j], [1j, 0]], complex)
SZ = np.array([[1, 0], [0, -1]], complex)


# ---- lattice models τ ⊗ σ (orbital ⊗ spin) with chosen symmetries ------------------------------------

def _random_hoppings(rng, n, scale):
    """{R: t(R)} with t(−R) = t(R)† on a square lattice (all orbitals at the origin)."""
    hops = {}
    for R in [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0)]:
        t = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * scale
        hops[R], hops[tuple(-r for r in R)] = t, t.conj().T
    t0 = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * scale
    hops[(0, 0)] = 0.5 * (t0 + t0.conj().T)
    return hops


def _symmetrize(hops, symmetry):
    """Average t(R) with its image under P (U_P t(−R) U_P†), T (U_T t(R)* U_T†) or PT (U t(−R)* U†)."""
    UP = np.kron(SZ, S0)  # orbitals of opposite parity; spin is axial
    UT = np.kron(S0, 1j * SY)  # T = iσ_y K, T² = −1
    out = {}
    for R, t in hops.items():
        mR = tuple(-r for r in R)
        if symmetry == "P":
            img = UP @ hops[mR] @ UP.conj().T
        elif symmetry == "T":
            img = UT @ t.conj() @ UT.conj().T
        elif symmetry == "PT":
            U = UP @ UT
            img = U @ hops[mR].conj() @ U.conj().T
        else:
            img = t
        out[R] = 0.5 * (t + img)
    return out


def _model(hops, spin, onsite, name):
    """Tight-binding model from {R: t(R)} (orbitals at the origin) with on-site energies diag(onsite)."""
    n = onsite.shape[0]
    entries = [(R, i, j, t[i, j]) for R, t in hops.items() for i in range(n) for j in range(n) if t[i, j] != 0]
    model = TightBindingModel(name, np.eye(2), np.zeros((n, 2)), entries, onsite=np.diag(onsite).real,
                              params={"name": name})
    model.spin = spin
    return model


def soc_model(symmetry=None, seed=5, hopping=0.12):
    """4-band τ ⊗ σ lattice model with spin–orbit coupling (random spin-dependent hoppings), spin 1 ⊗ σ.

    Without P, T or PT an on-site Zeeman term 1.5 σ_z (T-, PT-odd, P-even; kept for P) separates the
    four bands; T and PT keep Kramers pairs, split by the spin–orbit hoppings only.
    """
    rng = np.random.default_rng(seed)
    hops = _symmetrize(_random_hoppings(rng, 4, hopping), symmetry)
    spin = np.stack([np.kron(S0, s) for s in (SX, SY, SZ)])
    onsite = np.kron(3.0 * SZ, S0) + (np.kron(S0, 1.5 * SZ) if symmetry in (None, "P") else 0)
    return _model(hops, spin, onsite, f"soc_{symmetry}")


def spinless_model(seed=5):
    """H ⊗ 1 (no spin–orbit coupling, no magnetism), spin 1 ⊗ σ."""
    rng = np.random.default_rng(seed)
    hops = {R: np.kron(t, S0) for R, t in _random_hoppings(rng, 2, 0.3).items()}
    spin = np.stack([np.kron(S0, s) for s in (SX, SY, SZ)])
    return _model(hops, spin, np.kron(3.0 * SZ, S0), "no_soc")


def reduce_in_process(model, responses, form, mu, temperature=0.3, size=64, tau=1.3, omega=None):
    """Geometry (compute_fields with the spin fields) and reduce in-process, as the stages do."""
    # a stand-in model with a spin operator (spin responses on one without are refused), replaced by ``model``
    study = load_study({"model": {"name": "massive_dirac"}, "units": "natural", "mu": list(mu),
                        "temperature": [temperature], "tau": tau, "responses": list(responses), "fermi_form": form,
                        **({"omega": list(omega)} if omega is not None else {})})
    study.model = model
    grid = make_grid(model, size)
    optional = tuple(f for f in required_fields(responses, form, study.omega) if f.startswith(("spin", "zeeman")))
    fields = compute_fields(model, grid.points(), optional=optional)
    weight = np.full(grid.n_points, grid.weight)
    kT = np.array([study.units.kT(t) for t in study.temperature])
    bins = EnergyBins(study.mu, kT, bins_per_kT=8)
    terms = [(f, part) for r in responses for f, parts in [study.response(r).term_parts(form)] for part in parts]
    Q = reduce_stage._integrands(fields, terms)
    m, u = bins.empty(Q.shape[2])
    accumulate(fields["energy"], weight, Q, bins.lo, bins.width, m, u)
    return reduce_stage.response_dataset(study, m, u, bins, {}, model.dim, form)


MU = [-4.4, -1.7, 0.0, 1.3, 4.6]


@pytest.fixture(scope="module")
def generic():
    model = soc_model(None)
    return {form: reduce_in_process(model, SPIN_RESPONSES, form, MU) for form in ("sea", "surface")}


# ---- (a) footnote 82 and the by-parts forms ---------------------------------------------------------

@pytest.mark.parametrize("name", SPIN_RESPONSES)
def test_fermi_sea_equals_fermi_surface_on_a_lattice(generic, name):
    """Eq. 4–5: Fermi sea = fn. 82 Fermi-surface recast; Eq. 9–14: printed form = by-parts Fermi-sea form."""
    sea, surf = generic["sea"][name], generic["surface"][name]
    scale = np.abs(sea.values).max()
    assert scale > 1e-4, name  # no symmetry: nothing vanishes by accident
    if len(RESPONSES[name].forms) == 1:  # Eq. 6: Fermi sea only
        assert sea.attrs["form"] == surf.attrs["form"] == "Fermi sea (f0)"
    np.testing.assert_allclose(sea.values, surf.values, atol=1e-7 * scale, err_msg=name)


def test_footnote80_term_matters_on_a_lattice(generic):
    """Eq. 4's Fermi-surface recast needs fn. 80's ¼<{∂a∂bH, σ^c}> term (nonzero for a lattice H)."""
    model = soc_model(None)
    ds = reduce_in_process(model, ["spin_sigma_lin_tau1"], "surface", MU)
    full = ds["spin_sigma_lin_tau1"]
    assert full.attrs["form"] == "Fermi sea + Fermi surface (f0 and f0' terms)"
    fields = compute_fields(model, make_grid(model, 16).points(),
                            optional=("spin_velocity_derivative", "spin_qgt_metric_x_gap"))
    extra = fields["spin_velocity_derivative"] - 2 * fields["spin_qgt_metric_x_gap"]
    assert np.abs(extra).max() > 1e-3


# ---- (b) NDSM closed form, massive Dirac -------------------------------------------------------------

def test_ndsm_closed_form_massive_dirac(tmp_path):
    """003 text (its "Eq. 9" means Eq. 10): β^(2)_zxx = (e²/ħ²)(τ²/16π) Δ(μ²−Δ²)/|μ|³ μ_B at T → 0, with
    M = −μ_B⟨σ⟩ (AMBIGUITIES 003.1); the spin density is minus that."""
    delta, tau = 1.0, 1.0
    mu = np.array([-3.0, -2.0, 1.5, 2.0, 3.0])
    ds = evaluate({"name": "ndsm", "units": "natural",
                   "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": delta}},
                   "kgrid": {"sizes": [480], "kmax": 4.0}, "mu": mu.tolist(), "temperature": [0.04], "tau": tau,
                   "responses": ["spin_beta_nl_tau2"]}, n_workers=0, workdir=tmp_path)
    beta = ds["spin_beta_nl_tau2"]
    assert beta.dims == ("quantity", "mu", "T", "spin", "i", "j")
    closed = tau ** 2 / (16 * np.pi) * delta * (mu ** 2 - delta ** 2) / np.abs(mu) ** 3
    mag = beta.sel(quantity="magnetization_muB", spin="z", i="x", j="x").isel(T=0).values
    dens = beta.sel(quantity="spin_density", spin="z", i="x", j="x").isel(T=0).values
    err = np.abs(mag / closed - 1).max()
    print(f"NDSM closed form: max relative deviation {err:.2e}")
    assert err < 1e-2, (mag, closed, err)
    np.testing.assert_allclose(dens, -mag, rtol=1e-14)
    # isotropy: β_zyy = β_zxx; in-plane spin components vanish
    np.testing.assert_allclose(beta.sel(spin="z", i="y", j="y").values, beta.sel(spin="z", i="x", j="x").values,
                               rtol=1e-6)
    assert np.abs(beta.sel(spin=["x", "y"]).values).max() < 1e-8 * np.abs(closed).max()


# ---- (c) 003 Table I: which responses vanish under P, T, PT ----------------------------------------

# response: forbidden under (P, T, PT) — J_{a;c} P-odd T-even, M_a P-even T-odd, E P-odd T-even, τ T-odd
FORBIDDEN = {
    "spin_sigma_lin_tau1": (False, True, True),   # spin QM
    "spin_sigma_lin_tau0": (False, False, False),  # spin BC
    "spin_beta_lin_tau1": (True, False, True),    # Zeeman BC (Edelstein)
    "spin_beta_lin_tau0": (True, True, False),    # Zeeman QM
    "spin_sigma_nl_tau2": (True, False, True),    # spin QMD (NDSC)
    "spin_sigma_nl_tau1": (True, True, False),    # spin BCD
    "spin_sigma_nl_tau0": (True, False, True),    # spin QMD + QM
    "spin_beta_nl_tau2": (False, True, True),     # Zeeman BCD (NDSM)
    "spin_beta_nl_tau1": (False, False, False),   # Zeeman QMD
    "spin_beta_nl_tau0": (False, True, True),     # Zeeman BCD + QM
}


@pytest.mark.parametrize("symmetry", ["P", "T", "PT"])
def test_table1_parities(generic, symmetry):
    model = soc_model(symmetry)
    ds = reduce_in_process(model, SPIN_RESPONSES, "surface", MU)
    col = ["P", "T", "PT"].index(symmetry)
    for name in SPIN_RESPONSES:
        scale = np.abs(generic["surface"][name].values).max()
        size = np.abs(ds[name].values).max()
        if FORBIDDEN[name][col]:
            assert size < 1e-8 * scale, (symmetry, name, size / scale)
        else:
            assert size > 1e-3 * scale, (symmetry, name, size / scale)


def test_massive_dirac_mass_breaks_T(tmp_path):
    """Massless Dirac (T-symmetric): the NDSM and the linear Zeeman-QM magnetization vanish; the mass
    (T-breaking) switches them on."""
    base = {"name": "d", "units": "natural", "kgrid": {"sizes": [160], "kmax": 3.0}, "mu": [1.2, 1.8],
            "temperature": [0.1], "tau": 1.0, "responses": ["spin_beta_nl_tau2", "spin_beta_lin_tau0",
                                                              "spin_beta_lin_tau1"]}
    res = {m: evaluate({**base, "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": m}}},
                       n_workers=0, workdir=tmp_path / str(m)) for m in (0.0, 0.5)}
    for name in ("spin_beta_nl_tau2", "spin_beta_lin_tau0"):
        on = np.abs(res[0.5][name].values).max()
        assert on > 1e-3
        assert np.abs(res[0.0][name].values).max() < 1e-8 * on, name
    assert np.abs(res[0.0]["spin_beta_lin_tau1"].values).max() > 1e-3  # Edelstein: T-even


# ---- (d) no spin–orbit coupling --------------------------------------------------------------------

def test_no_spin_orbit_coupling_no_spin_response(generic):
    ds = reduce_in_process(spinless_model(), SPIN_RESPONSES, "surface", MU)
    for name in SPIN_RESPONSES:
        scale = np.abs(generic["surface"][name].values).max()
        assert np.abs(ds[name].values).max() < 1e-10 * scale, name


# ---- (e) units, attrs, refusal --------------------------------------------------------------------

def test_units_and_attrs_physical(tmp_path):
    ds = evaluate({"name": "snte", "model": {"name": "snte_surface_dirac"}, "units": {"energy": "eV", "length": "nm"},
                   "kgrid": {"sizes": [64]}, "mu": [0.02, 0.03], "temperature": [20.0], "tau": 0.5e-12,
                   "responses": SPIN_RESPONSES}, n_workers=0, workdir=tmp_path)
    expected = {"spin_sigma_lin_tau1": ("s-1 V-1", ("mu", "T", "i", "j", "spin")),
                "spin_sigma_lin_tau0": ("s-1 V-1", ("mu", "T", "i", "j", "spin")),
                "spin_beta_lin_tau1": ("m-1 V-1", ("quantity", "mu", "T", "spin", "i")),
                "spin_beta_lin_tau0": ("m-1 V-1", ("quantity", "mu", "T", "spin", "i")),
                "spin_sigma_nl_tau2": ("s-1 m V-2", ("mu", "T", "i", "j", "k", "spin")),
                "spin_sigma_nl_tau1": ("s-1 m V-2", ("mu", "T", "i", "j", "k", "spin")),
                "spin_sigma_nl_tau0": ("s-1 m V-2", ("mu", "T", "i", "j", "k", "spin")),
                "spin_beta_nl_tau2": ("V-2", ("quantity", "mu", "T", "spin", "i", "j")),
                "spin_beta_nl_tau1": ("V-2", ("quantity", "mu", "T", "spin", "i", "j")),
                "spin_beta_nl_tau0": ("V-2", ("quantity", "mu", "T", "spin", "i", "j"))}
    for name, (units, dims) in expected.items():
        var = ds[name]
        assert var.attrs["units"] == units, (name, var.attrs["units"])
        assert var.dims == dims, (name, var.dims)
        assert "003 Eq." in var.attrs["formula"] and var.attrs["long_name"]
        assert np.all(np.isfinite(var.values)) and np.abs(var.values).max() > 0, name
        if "beta" in name:
            assert "AMBIGUITIES 003.1" in var.attrs["quantity_convention"]
            assert list(var["quantity"].values) == ["spin_density", "magnetization_muB"]
            np.testing.assert_allclose(var.sel(quantity="magnetization_muB"), -var.sel(quantity="spin_density"),
                                       rtol=1e-13)
        else:
            assert "¼{v̂^a, σ̂^c}" in var.attrs["spin_current_convention"]
    assert list(ds["spin"].values) == ["x", "y", "z"]


def test_si_matches_natural_units_with_restored_constants(tmp_path):
    """NDSM: SI value = (e²τ²/ħ²) × natural-unit integral with energies in J, lengths in m."""
    from qgtflow.units import E_CHARGE, EV, HBAR

    common = {"kgrid": {"sizes": [96], "kmax": 0.5}, "temperature": [0.0001], "responses": ["spin_beta_nl_tau2"]}
    tau = 0.5e-12
    si = evaluate({"name": "si", "model": {"name": "massive_dirac", "params": {"v": 0.0658, "mass": 0.04}},
                   "units": {"energy": "eV", "length": "nm"}, "mu": [0.06], **common, "temperature": [20.0],
                   "tau": tau}, n_workers=0, workdir=tmp_path / "si")
    kT = 20.0 * 8.617333262e-5
    nat = evaluate({"name": "nat", "model": {"name": "massive_dirac", "params": {"v": 0.0658, "mass": 0.04}},
                    "units": "natural", "mu": [0.06], **common, "temperature": [kT], "tau": 1.0},
                   n_workers=0, workdir=tmp_path / "nat")
    # natural value (τ = 1 ħ/eV, lengths nm) → SI: × e² τ²/ħ² × (1 eV)^(1−1) × (1 nm)^(2−2)
    expected = nat["spin_beta_nl_tau2"].values * E_CHARGE ** 2 * tau ** 2 / HBAR ** 2 * EV ** 0
    np.testing.assert_allclose(si["spin_beta_nl_tau2"].values, expected, rtol=1e-10,
                               atol=1e-12 * np.abs(expected).max())


def test_model_without_spin_operator_is_refused(tmp_path):
    """Refused while the study is validated (load_study), naming its responses key."""
    with pytest.raises(ConfigError, match="responses'.*no spin operator"):
        evaluate({"name": "x", "units": "natural", "model": {"name": "tilted_dirac"}, "kgrid": {"sizes": [16]},
                  "mu": [0.2], "temperature": [0.1], "tau": 1.0, "responses": ["spin_sigma_lin_tau0"]},
                 n_workers=0, workdir=tmp_path)


def test_intrinsic_nonlinear_spin_magnetization_massive_dirac(tmp_path):
    """β^(0)_zxx (Eq. 14) of the massive Dirac model: constant for μ in the gap (an insulator's Fermi sea does not
    move), isotropic (zxx = zyy), and its μ-dependence outside the gap is independent of the k·p window; the
    closed forms quoted in 003's text (∝ 1/|μ|⁵ even inside the gap) cannot satisfy the first property."""
    mu = np.array([-2.0, -0.6, 0.0, 0.6, 2.0])
    out = {}
    for kmax in (4.0, 6.0):
        ds = evaluate({"name": "beta0", "units": "natural",
                       "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 1.0}},
                       "kgrid": {"sizes": [int(60 * kmax)], "kmax": kmax}, "mu": mu.tolist(), "temperature": [0.04],
                       "responses": ["spin_beta_nl_tau0"]}, n_workers=0, workdir=tmp_path / str(kmax))
        out[kmax] = ds["spin_beta_nl_tau0"].sel(quantity="magnetization_muB", spin="z").isel(T=0)
    b = out[4.0]
    xx = b.sel(i="x", j="x").values
    np.testing.assert_allclose(b.sel(i="y", j="y").values, xx, rtol=1e-6)
    assert abs(xx[2]) > 1e-4
    np.testing.assert_allclose(xx[1:4], xx[2], rtol=1e-4)  # flat in the gap (up to e^{-0.4/kT} activation)
    np.testing.assert_allclose(xx[[0, 4]], xx[0], rtol=1e-6)  # particle-hole symmetric
    assert abs(xx[0] - xx[2]) > 0.3 * abs(xx[2])  # the Fermi surface contributes outside the gap
    surface_4 = xx - xx[2]
    xx6 = out[6.0].sel(i="x", j="x").values
    np.testing.assert_allclose(xx6 - xx6[2], surface_4, rtol=2e-3, atol=1e-9)
