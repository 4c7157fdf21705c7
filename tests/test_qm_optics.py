"""Quantum-metric optics (000 inverse Faraday effect, 002 quadrupolar current): forms, symmetries, stores."""

import numpy as np
import pytest
import xarray as xr

from qgtflow.api import evaluate

HALDANE = {"name": "haldane", "params": {"mass": 0.2, "phi": 0.6}}


@pytest.fixture(scope="module")
def haldane_forms(tmp_path_factory):
    """IFE and γ on a Haldane BZ in both forms: Eq. 15 (quadrupole, sea) and Eq. 18 (Christoffel, surface)."""
    tmp = tmp_path_factory.mktemp("qmo")
    base = {"name": "h", "units": "natural", "model": HALDANE, "kgrid": {"sizes": [192]},
            "mu": [-0.9, -0.5, 0.3, 20.0], "temperature": [0.3], "tau": 3.0,
            "responses": ["ife_coefficient", "quadrupolar_current_gamma"]}
    return {form: evaluate({**base, "fermi_form": form}, n_workers=0, workdir=tmp / form)
            for form in ("sea", "surface")}


def test_ife_eq15_equals_christoffel_eq18_on_a_lattice(haldane_forms):
    sea, surface = haldane_forms["sea"]["ife_coefficient"], haldane_forms["surface"]["ife_coefficient"]
    assert sea.dims == ("part", "mu", "T", "pseudovector", "i", "j")
    assert "000 Eq. 15" in sea.attrs["formula"] and "Eq. 18" in sea.attrs["formula"]
    scale = np.abs(sea.values).max()
    assert scale > 0
    np.testing.assert_allclose(sea.values, surface.values, atol=1e-4 * scale)  # 192²: ~2e-5; 256²: ~1e-7 (grid-limited)


def test_gamma_sea_equals_surface_on_a_lattice(haldane_forms):
    sea, surface = haldane_forms["sea"]["quadrupolar_current_gamma"], haldane_forms["surface"]["quadrupolar_current_gamma"]
    scale = np.abs(sea.values).max()
    assert scale > 0 and "002 Eq. 10" in sea.attrs["formula"]
    np.testing.assert_allclose(sea.values, surface.values, atol=1e-4 * scale)  # 192²: ~2e-5; 256²: ~1e-7 (grid-limited)


def test_filled_bands_contribute_nothing(haldane_forms):
    """μ far above both bands: Fermi-sea integrals of total derivatives over the BZ vanish (AMBIGUITIES)."""
    for name in ("ife_coefficient", "quadrupolar_current_gamma"):
        sea = haldane_forms["sea"][name]
        full = sea.sel(mu=20.0).values
        assert np.abs(full).max() < 1e-4 * np.abs(sea.values).max(), name  # 192² grid: ~2e-5


def test_ife_parts_are_the_symmetric_and_antisymmetric_halves(haldane_forms):
    a = haldane_forms["sea"]["ife_coefficient"]
    total = a.sel(part="total")
    scale = np.abs(total.values).max()
    swapped = total.transpose(..., "j", "i").values
    np.testing.assert_allclose(a.sel(part="symmetric"), 0.5 * (total + swapped), atol=1e-13 * scale)
    np.testing.assert_allclose(a.sel(part="antisymmetric"), 0.5 * (total - swapped), atol=1e-13 * scale)
    assert np.abs(a.sel(part="antisymmetric").values).max() > 0.1 * scale


def test_ife_massive_dirac_aaa_vanishes_and_axy_does_not(tmp_path):
    """000: a_{zαα} = 0 for the massive Dirac model (odd integrand); a_{zxy} ≠ 0."""
    study = {"name": "md", "units": "natural", "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.2}},
             "kgrid": {"sizes": [160], "kmax": 2.0}, "mu": [0.3, 0.5], "temperature": [0.03], "tau": 1.0,
             "responses": ["ife_coefficient"]}
    a = evaluate(study, n_workers=0, workdir=tmp_path)["ife_coefficient"].sel(part="total", pseudovector="z")
    scale = np.abs(a.values).max()
    assert abs(float(a.sel(i="x", j="y").isel(mu=0, T=0))) > 0.1 * scale
    for ax in "xy":
        assert np.abs(a.sel(i=ax, j=ax).values).max() < 1e-8 * scale


def test_gamma_vanishes_with_time_reversal_and_mirror_z(tmp_path):
    """002: Δn and γ vanish with T (or I) or mirror-z symmetry; ndd_two_valley with Δ2 = Δ1 has the two valleys
    cancel, and v' = 0 (mirror z) kills γ_xxz valley by valley."""
    base = {"units": "natural", "kgrid": {"sizes": [28], "kmax": [2.5, 2.5, 3.5]}, "mu": [0.6, 1.2],
            "temperature": [0.25], "responses": ["quadrupolar_current_gamma"], "resolve_sectors": True}
    broken = evaluate({**base, "name": "b", "model": {"name": "ndd_two_valley"}}, n_workers=0,
                      workdir=tmp_path / "b")["quadrupolar_current_gamma"]
    g = broken.sel(i="x", j="x", k="z")
    scale = np.abs(g.values).max()
    assert scale > 0 and broken.dims[0] == "sector"
    trs = evaluate({**base, "name": "t", "model": {"name": "ndd_two_valley", "params": {"delta2": 1.0}}},
                   n_workers=0, workdir=tmp_path / "t")["quadrupolar_current_gamma"]
    np.testing.assert_allclose(trs.sel(sector="1").values, -trs.sel(sector="2").values,
                               atol=1e-10 * np.abs(trs.values).max())
    assert np.abs(trs.sum("sector").values).max() < 1e-10 * np.abs(trs.values).max()
    mirror = evaluate({**base, "name": "m", "model": {"name": "ndd_two_valley", "params": {"vprime": 0.0}}},
                      n_workers=0, workdir=tmp_path / "m")["quadrupolar_current_gamma"]
    assert np.abs(mirror.sel(i="x", j="x", k="z").values).max() < 1e-10 * scale


def test_geometry_store_holds_optional_fields_only_when_needed(tmp_path):
    from qgtflow.geometry.fields import CORE_FIELDS, FIELD_SPECS, OPTIONAL_FIELDS

    study = {"name": "o", "units": "natural", "model": {"name": "tilted_dirac"}, "kgrid": {"sizes": [24]},
             "mu": [0.2], "temperature": [0.05], "tau": 1.0}
    evaluate({**study, "responses": ["sigma_drude"]}, n_workers=0, workdir=tmp_path / "a")
    evaluate({**study, "responses": ["ife_coefficient"], "fermi_form": "sea"}, n_workers=0, workdir=tmp_path / "b")
    plain = xr.open_zarr(tmp_path / "a" / "o_n24_geometry.zarr")
    quad = xr.open_zarr(tmp_path / "b" / "o_n24_geometry.zarr")
    assert not set(OPTIONAL_FIELDS) & set(plain.data_vars)
    q = quad["quantum_metric_quadrupole_density"]
    assert q.dims == ("kpoint", "band", "i", "j", "k", "l") and q.attrs["units"]
    assert np.isfinite(q.values).all()
    # store_fields: required (the default) keeps only what σ_Drude reads; `all` (opt-in) every core field map
    assert set(plain.data_vars) & set(FIELD_SPECS) == {"energy", "velocity"}
    evaluate({**study, "responses": ["sigma_drude"], "store_fields": "all"}, n_workers=0, workdir=tmp_path / "c")
    full = xr.open_zarr(tmp_path / "c" / "o_n24_geometry.zarr")
    assert set(full.data_vars) & set(FIELD_SPECS) == set(CORE_FIELDS)


NDD = {"units": "natural", "kgrid": {"sizes": [24], "kmax": [2.5, 2.5, 3.5]}, "mu": [0.0, 1.3],
       "temperature": [0.2], "responses": ["ndd_delta_n"], "resolve_sectors": True}


def test_ndd_delta_n_static_limit_equals_the_closed_form(tmp_path):
    """ω, η → 0: A → 1, B → −2Δf/ω_mn, C → 2Δf/ω_mn (002 Eq. 12); compared with a numpy evaluation
    of those limits on the stored geometry fields."""
    from qgtflow.reduce.occupation import fermi

    study = {**NDD, "name": "s", "model": {"name": "ndd_two_valley"}, "omega": [1e-4], "broadening": 1e-10}
    ds = evaluate(study, n_workers=0, workdir=tmp_path)
    geo = xr.open_zarr(tmp_path / "s_n24_geometry.zarr")
    e, v, g, w = (geo[x].values for x in ("energy", "velocity", "quantum_metric", "weight"))
    expected = np.zeros((2, 2))  # (sector, mu)
    for p, (a, b) in enumerate([(0, 1), (2, 3)]):
        for im, mu in enumerate(study["mu"]):
            kT = study["temperature"][0]
            for m, n in ((a, b), (b, a)):
                wmn = e[:, m] - e[:, n]
                fm, fn = fermi(e[:, m], mu, kT), fermi(e[:, n], mu, kT)
                gz = v[:, m, 2] * g[:, m, 0, 0], v[:, n, 2] * g[:, n, 0, 0]
                gx = v[:, m, 0] * g[:, m, 0, 2], v[:, n, 0] * g[:, n, 0, 2]
                val = (gz[0] * (-fm * (1 - fm) / kT) + gz[1] * (-fn * (1 - fn) / kT)
                       + 2 * (fm - fn) / wmn * (gx[0] + gx[1] - gz[0] - gz[1]))
                expected[p, im] += -0.5 * np.sum(w * val)
    dn = ds["ndd_delta_n"].isel(omega=0, T=0)
    np.testing.assert_allclose(dn.sel(complex_part="real").values, expected, rtol=1e-6,
                               atol=1e-9 * np.abs(expected).max())
    # Im: Lorentzian tails, O(η/(ω ω_mn)) → 0 as η ≪ ω
    assert np.abs(dn.sel(complex_part="imag").values).max() < 1e-4 * np.abs(expected).max()
    assert np.abs(expected).max() > 0


def test_ndd_delta_n_vanishes_with_time_reversal_or_mirror_z(tmp_path):
    """002: Δn vanishes if T or I (Δ2 = Δ1: the valleys cancel) or mirror z (v' = 0) holds."""
    spec = {**NDD, "omega": [0.5, 2.0, 3.0], "broadening": 0.1, "responses": ["ndd_delta_n", "ndd_qmd_average"]}
    broken = evaluate({**spec, "name": "b", "model": {"name": "ndd_two_valley"}}, n_workers=0,
                      workdir=tmp_path / "b")["ndd_delta_n"]
    scale = np.abs(broken.sum("sector").values).max()
    assert scale > 0
    trs = evaluate({**spec, "name": "t", "model": {"name": "ndd_two_valley", "params": {"delta2": 1.0}}},
                   n_workers=0, workdir=tmp_path / "t")["ndd_delta_n"]
    assert np.abs(trs.isel(sector=0).values).max() > 0.1 * scale
    assert np.abs(trs.sum("sector").values).max() < 1e-10 * scale
    avg = evaluate({**spec, "name": "a", "model": {"name": "ndd_two_valley", "params": {"delta2": 1.0}}},
                   n_workers=0, workdir=tmp_path / "a")["ndd_qmd_average"]
    assert avg.dims == ("sector", "omega", "mu", "T") and np.abs(avg.values).max() > 0
    np.testing.assert_allclose(avg.sel(sector="1").values, -avg.sel(sector="2").values,
                               atol=1e-10 * np.abs(avg.values).max())
    mirror = evaluate({**spec, "name": "m", "model": {"name": "ndd_two_valley", "params": {"vprime": 0.0}}},
                      n_workers=0, workdir=tmp_path / "m")["ndd_delta_n"]
    assert np.abs(mirror.values).max() < 1e-10 * scale


def test_ndd_delta_n_is_refused_without_its_inputs():
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    base = {**NDD, "name": "r", "model": {"name": "ndd_two_valley"}, "omega": [1.0], "broadening": 0.1}
    with pytest.raises(ConfigError, match="broadening"):
        load_study({k: v for k, v in base.items() if k != "broadening"})
    with pytest.raises(ConfigError, match="3D model"):
        load_study({**base, "model": {"name": "massive_dirac"}, "kgrid": {"sizes": [8]}})
    with pytest.raises(ConfigError, match="two-band sectors"):
        load_study({**base, "model": {"name": "x", "hamiltonian": {"terms": [["kz", "tau_x sigma_x"],
                                                                             ["1", "tau_z sigma_0"]]}}})
    with pytest.raises(ConfigError, match="omega"):
        load_study({**base, "omega": [0.0, 1.0]})
