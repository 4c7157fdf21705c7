"""ndd_alpha_sea, the Fermi-sea magnetoelectric α_xy(f) of 002 Eq. 15 (reduce/ndd_alpha.py): the Doppler closed
form of each valley (tests/test_nonlocal_kubo.py), units and formula attrs, refusals, and the metallic identity
Im(σ_xxz + σ_xzx)^inter(ω → 0) = −α(f) + γ_xxz + γ_xzx from the stored responses (docs/AMBIGUITIES-notes.md 002.A)."""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.errors import ConfigError
from qgtflow.geometry.fields import compute_fields
from qgtflow.models.builtin import ndd_two_valley
from qgtflow.reduce.occupation import fermi
from qgtflow.study import load_study
from qgtflow.units import unit_registry

X = 0
METAL = {"name": "metal", "units": "natural", "model": {"name": "ndd_two_valley"},
         "kgrid": {"sizes": [8], "kmax": [4.0, 4.0, 3.5]}, "mu": [0.0, 0.8, 1.2], "temperature": [0.1],
         "omega": [1.0e-6], "broadening": 0.05,
         "responses": ["sigma_nonlocal", "quadrupolar_current_gamma", "ndd_alpha_sea"]}


@pytest.fixture(scope="module")
def metal(tmp_path_factory):
    return evaluate(METAL, n_workers=0, workdir=tmp_path_factory.mktemp("metal"))


def test_alpha_is_the_doppler_form_of_each_valley(metal):
    """α(f) = −2v' Σ_valleys ∫ g_xx (f_v − f_c)/E for Eq. 14 (t = v'k_z), on the study's own grid."""
    study = load_study(METAL)
    k = study.make_grid(8).points()
    w = np.full(len(k), study.make_grid(8).weight)
    mu, kT = np.array(METAL["mu"]), 0.1
    expected = 0.0
    for block, weight in zip(ndd_two_valley().sectors, ndd_two_valley().weights):
        f = compute_fields(block, k)
        e, g = f["energy"], f["quantum_metric"][:, 0, X, X]
        occ = fermi(e[..., None], mu, kT)
        expected = expected - 2 * block.params["vprime"] * weight * np.einsum(
            "k,km->m", w * g / (e[:, 1] - e[:, 0]), occ[:, 0] - occ[:, 1])
    alpha = metal["ndd_alpha_sea"].isel(T=0).values
    assert np.all(np.abs(expected) > 1e-3)
    np.testing.assert_allclose(alpha, expected, rtol=1e-10)
    attrs = metal["ndd_alpha_sea"].attrs
    assert "α_xy" in attrs["formula"] and attrs["long_name"]
    ureg = unit_registry()
    assert ureg.parse_units(attrs["units"]) == ureg.parse_units(metal["sigma_nonlocal"].attrs["units"])


def test_metallic_eq15_from_the_stored_responses(metal):
    """The stored Kubo σ (ω ≪ η, so Im σ is its ω → 0 value), γ and α: Im(σ_xxz + σ_xzx)^inter = −α(f) + γ_xxz +
    γ_xzx to O(η²/E²) (≤ 0.1 % of the terms at η = 0.05); the printed Eq. 15, −α + (3/2)γ_xxz + (1/2)γ_zzx, holds in the gap only."""
    s = metal["sigma_nonlocal"].sel(band_part="interband", complex_part="imag").isel(omega=0, T=0)
    g = metal["quadrupolar_current_gamma"].isel(T=0)
    gxxz, gxzx, gzzx = (g.sel(i=a, j=b, k=c).values for a, b, c in (("x", "x", "z"), ("x", "z", "x"),
                                                                       ("z", "z", "x")))
    alpha = metal["ndd_alpha_sea"].isel(T=0).values
    lhs = (s.sel(i="x", j="x", k="z") + s.sel(i="x", j="z", k="x")).values
    scale = np.abs(alpha) + np.abs(gxxz) + np.abs(gxzx)  # the terms: their sum cancels to ~3 % of them at μ = 0.8
    np.testing.assert_allclose(lhs, -alpha + gxxz + gxzx, rtol=0, atol=2e-3 * scale.min())
    printed = -alpha + 1.5 * gxxz + 0.5 * gzzx
    assert abs(lhs[0] / printed[0] - 1) < 0.05  # μ = 0, band edges ±0.05: only the thermal γ's (~2 % of α)
    assert np.all(np.abs(lhs[1:] - printed[1:]) > 0.2 * np.abs(printed[1:]))  # μ = 0.8, 1.2: a metal


@pytest.mark.parametrize("change", [{"model": {"name": "massive_dirac"}, "kgrid": {"sizes": [8], "kmax": 1.0}},
                                    {"model": {"name": "haldane"}, "kgrid": {"sizes": [8]}}])
def test_alpha_refuses_what_its_form_does_not_cover(change):
    study = {k: v for k, v in {**METAL, "responses": ["ndd_alpha_sea"], **change}.items()}
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert "ndd_alpha_sea" in str(err.value)
