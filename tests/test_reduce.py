"""Response tensors: identities, closed forms, independent integration, units."""

import numpy as np
import pytest
from scipy import constants as sc

import qgtflow
from qgtflow.geometry.fields import compute_fields
from qgtflow.reduce.occupation import fermi_derivative
from qgtflow.reduce.spectral import EnergyBins, accumulate, contract
from qgtflow.stages import reduce_stage
from qgtflow.study import load_study
from tests.conftest import random_lattice_model

SECOND_ORDER = ["sigma_qm", "sigma_bcd", "sigma_nonlinear_drude", "berry_curvature_dipole", "sigma_qm_variant"]


def _reduce_fields(study, model, size):
    """Reduce a study on ``model`` in-process (geometry from compute_fields on the study's grid)."""
    grid = study.make_grid(size) if model is study.model else None
    from qgtflow.kgrid import make_grid

    grid = grid or make_grid(model, size)
    fields = compute_fields(model, grid.points())
    weight = np.full(grid.n_points, grid.weight)
    out = {}
    for form in ("sea", "surface"):
        study.config["fermi_form"] = form
        kT = np.array([study.units.kT(t) for t in study.temperature])
        bins = EnergyBins(study.mu, kT, bins_per_kT=8)
        terms = [reduce_stage.RESPONSES[r].term(form) for r in study.responses]
        Q = reduce_stage._integrands(fields, terms)
        m, u = bins.empty(Q.shape[2])
        accumulate(fields["energy"], weight, Q, bins.lo, bins.width, m, u)
        out[form] = reduce_stage.response_dataset(study, m, u, bins, {}, model.dim, form)
    return out


def test_fermi_sea_and_surface_forms_agree_on_lattice_model():
    model = random_lattice_model()
    study = load_study({"model": {"name": "haldane"}, "units": "natural", "mu": [-3.2, 0.1, 2.9],
                        "temperature": [0.3, 0.6], "tau": 1.0, "responses": SECOND_ORDER})
    study.model = model
    res = _reduce_fields(study, model, 96)
    for name in SECOND_ORDER:
        sea, surf = res["sea"][name].values, res["surface"][name].values
        scale = np.abs(sea).max()
        assert scale > 1e-4, name  # the model breaks every symmetry: nothing vanishes by accident
        assert np.abs(sea - surf).max() < 1e-7 * scale, name


def test_sigma_qm_iii_vanishes_and_off_diagonal_does_not():
    """001 Eq. 14: σ^qm_iii = 0 identically; the PT toy model has σ^qm_xyy ≠ 0 for t ≠ 0."""
    for form in ("sea", "surface"):
        study = {"model": {"name": "pt_toy_4band", "params": {"t": 0.9}}, "kgrid": {"sizes": [120], "kmax": 1.2},
                 "mu": [0.15, 0.25, 0.3], "temperature": [30.0], "fermi_form": form,
                 "responses": ["sigma_qm", "sigma_qm_variant"]}
        ds = qgtflow.evaluate(study, n_workers=0)
        qm = ds.sigma_qm
        big = np.abs(qm.sel(i="x", j="y", k="y")).max().item()
        assert big > 0
        for c in "xy":
            assert np.abs(qm.sel(i=c, j=c, k=c)).max().item() < 1e-10 * big
        np.testing.assert_allclose(ds.sigma_qm_variant.sel(variant="wpd"), qm, rtol=1e-12, atol=1e-12 * big)
        # LKA and QK differ from WPD (001 Table 1) — the variants are not copies
        assert np.abs(ds.sigma_qm_variant.sel(variant="lka") - qm).max().item() > 1e-3 * big


def test_pt_model_has_no_berry_curvature_dipole_current():
    study = {"model": {"name": "pt_toy_4band", "params": {"t": 0.5}}, "kgrid": {"sizes": [80], "kmax": 1.2},
             "mu": [0.2, 0.3], "temperature": [20.0], "responses": ["sigma_bcd", "sigma_nonlinear_drude"]}
    ds = qgtflow.evaluate(study, n_workers=0)
    drude = np.abs(ds.sigma_nonlinear_drude).max().item()
    assert drude > 0
    assert np.abs(ds.sigma_bcd).max().item() < 1e-12 * drude


def test_haldane_chern_number_quantized_and_si_units():
    base = {"model": {"name": "haldane", "params": {"t1": 1.0, "t2": 0.1, "phi": np.pi / 2, "mass": 0.2}},
            "kgrid": {"sizes": [48]}, "mu": [0.0], "temperature": [0.01], "units": "natural",
            "responses": ["sigma_ahe"]}
    ds = qgtflow.evaluate(base, n_workers=0)
    chern = -2 * np.pi * ds.sigma_ahe.sel(i="x", j="y").item()  # σ_xy = −C e²/h, e = ħ = 1
    assert abs(abs(chern) - 1) < 1e-6
    assert ds.sigma_ahe.sel(i="y", j="x").item() == pytest.approx(-ds.sigma_ahe.sel(i="x", j="y").item())
    # trivial phase: |mass| > 3√3 t2
    triv = qgtflow.evaluate({**base, "model": {"name": "haldane", "params": {"t2": 0.1, "mass": 0.8}}}, n_workers=0)
    assert abs(triv.sigma_ahe.sel(i="x", j="y").item()) < 1e-6
    # physical units: energies in eV, a in nm → σ_xy = −C e²/h in siemens
    phys = qgtflow.evaluate({**base, "units": "physical", "temperature": [10.0]}, n_workers=0)
    assert phys.sigma_ahe.attrs["units"] == "S"
    assert phys.sigma_ahe.sel(i="x", j="y").item() == pytest.approx(-chern * sc.e**2 / sc.h, rel=1e-6)


def test_drude_closed_form_massive_dirac():
    """σ_xx = (e²τ/ħ²)(μ² − M²)/(4πμ) at low T for H = v k·σ + Mσz (ħ absorbed in v)."""
    v, M, tau = 0.5, 0.05, 2e-13
    mu = np.array([0.1, 0.15, 0.2])
    study = {"model": {"name": "massive_dirac", "params": {"v": v, "mass": M}}, "kgrid": {"sizes": [400], "kmax": 0.6},
             "mu": mu.tolist(), "temperature": [30.0], "tau": tau, "responses": ["sigma_drude"]}
    ds = qgtflow.evaluate(study, n_workers=0)
    exact = sc.e**2 * tau / sc.hbar**2 * (mu**2 - M**2) / (4 * np.pi * mu) * sc.e  # (eV² → J²)/eV... see below
    # (μ² − M²)/μ is in eV → J; (1/nm²)·nm² cancels in 2D
    np.testing.assert_allclose(ds.sigma_drude.sel(i="x", j="x", T=30.0).values, exact, rtol=2e-3)
    np.testing.assert_allclose(ds.sigma_drude.sel(i="x", j="y").values, 0, atol=1e-9 * exact.max())


def test_histogram_reduction_matches_direct_fermi_sum():
    """The moment histogram equals the brute-force Σ w Q f^(p)(ε) for every (μ, T)."""
    rng = np.random.default_rng(0)
    energy = rng.uniform(-1, 1, (5000, 3))
    Q = rng.normal(size=(5000, 3, 2))
    w = rng.uniform(0.5, 1.5, 5000)
    mu, kT = np.linspace(-0.5, 0.5, 7), np.array([0.01, 0.05, 0.2, 0.9])  # 0.9: bins merged 64x
    bins = EnergyBins(mu, kT, bins_per_kT=6)
    m, u = bins.empty(2)
    accumulate(energy, w, Q, bins.lo, bins.width, m, u)
    for order in (0, 1):
        got = contract(bins, m, u, mu, kT, order)
        for a, muv in enumerate(mu):
            for b, t in enumerate(kT):
                direct = np.einsum("n,nb,nbc->c", w, fermi_derivative(energy, muv, t, order), Q)
                scale = np.abs(np.einsum("n,nbc->c", w, np.abs(Q))).max() / (t if order else 1)
                assert np.abs(got[a, b] - direct).max() < 1e-7 * scale


def test_fermi_derivatives_match_finite_differences():
    e = np.linspace(-0.3, 0.3, 11)
    h = 1e-6
    for order in range(1, 5):
        fd = (fermi_derivative(e + h, 0.05, 0.07, order - 1) - fermi_derivative(e - h, 0.05, 0.07, order - 1)) / (2 * h)
        np.testing.assert_allclose(fermi_derivative(e, 0.05, 0.07, order), fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())
