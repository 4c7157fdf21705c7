"""000 App. B: the inverse-Faraday coefficient at a photon energy ħω, a_μαβ(ω) = a_μαβ(0)/(1 + iωτ).

The field index α of a_μαβ is the one carried by the first-order distribution f̃1 = −(τQ/ħ) Ẽ_α ∂_α f0/(1 + iωτ)
(Eq. 25 at O(E)); the field-gradient velocity of Eq. 5 is instantaneous, so the rectified magnetization is
M_μ = ½ Re[a_μαβ(ω) Ẽ_α Ẽ*_β] and a(ω → 0) is Eq. 15 (docs/inverse_faraday.md)."""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.errors import ConfigError
from qgtflow.study import load_study
from qgtflow.units import unit_registry
from tests.test_units import quantify_all

WARPED = {"name": "warped_dirac", "params": {"v": 1.0, "alpha": 1.0, "beta": 0.5, "mass": 0.5}}  # test_warped_ife
TAU = 2.0
OMEGA = [0.0, 0.1, 0.5, 2.0]


def _complex(da):
    return da.sel(complex_part="real").values + 1j * da.sel(complex_part="imag").values


@pytest.fixture(scope="module")
def warped(tmp_path_factory):
    """(static, at OMEGA) on the same store: the ω form reuses the geometry and only rescales in reduce."""
    work = tmp_path_factory.mktemp("warped")
    study = {"name": "warped", "units": "natural", "model": WARPED, "kgrid": {"sizes": [96], "kmax": [2.0, 3.0]},
             "mu": [0.8, 1.2], "temperature": [0.04], "tau": TAU, "responses": ["ife_coefficient"]}
    static = evaluate(study, n_workers=0, workdir=work)
    return static, evaluate({**study, "omega": OMEGA}, n_workers=0, workdir=work)


def test_omega_zero_is_the_static_coefficient(warped):
    static, ac = warped
    a0, a = static["ife_coefficient"], ac["ife_coefficient"].sel(omega=0.0)
    scale = float(np.abs(a0).max())
    assert scale > 0
    np.testing.assert_allclose(a.sel(complex_part="real").values, a0.values, rtol=0, atol=1e-12 * scale)
    assert float(np.abs(a.sel(complex_part="imag")).max()) == 0.0


def test_every_part_scales_with_one_over_one_plus_i_omega_tau(warped):
    """Componentwise, for total, symmetric (linear light, nonzero for α ≠ β warping) and antisymmetric parts."""
    static, ac = warped
    a0, a = static["ife_coefficient"], ac["ife_coefficient"]
    assert a.dims == ("omega", "complex_part", "part", "mu", "T", "pseudovector", "i", "j")
    sym = a0.sel(part="symmetric", pseudovector="z", i="x", j="y")
    assert float(np.abs(sym).min()) > 0.05 * float(np.abs(a0.sel(part="antisymmetric")).max())
    scale = float(np.abs(a0).max())
    for w in OMEGA:
        expected = a0.values / (1.0 + 1j * w * TAU)
        np.testing.assert_allclose(_complex(a.sel(omega=w)), expected, rtol=0, atol=1e-12 * scale)
    # linear light sees Re a(ω) of the symmetric part, circular light −Im a(ω) of the antisymmetric one:
    # the latter ∝ ωτ/(1 + ω²τ²), largest at ωτ = 1 and zero in the DC limit
    anti = a.sel(part="antisymmetric", pseudovector="z", i="x", j="y", mu=0.8, T=0.04)
    circ = -anti.sel(complex_part="imag").values
    wt = np.asarray(OMEGA) * TAU
    np.testing.assert_allclose(circ, float(anti.sel(omega=0.0, complex_part="real")) * wt / (1 + wt**2),
                               rtol=1e-12, atol=1e-14 * scale)


def test_attrs_name_units_formula_and_convention(warped):
    _, ac = warped
    var = ac["ife_coefficient"]
    assert {"units", "long_name", "formula", "time_convention"} <= set(var.attrs)
    assert "App. B" in var.attrs["formula"] and "a_μαβ(0)/(1 + iωτ)" in var.attrs["formula"]
    assert "Re[Ẽ e^{iωt}]" in var.attrs["time_convention"]
    units = quantify_all(unit_registry(), ac, "ife at omega")
    assert units["ife_coefficient"] == warped[0]["ife_coefficient"].attrs["units"] and "omega" in units


def test_omega_zero_equals_static_on_massive_dirac_in_si_units(tmp_path):
    """Physical units (τ in s, ħω in eV): ωτ is formed with the model-unit τ; ω = 0 is again Eq. 15."""
    study = {"name": "md", "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
             "units": {"energy": "eV", "length": "nm"}, "kgrid": {"sizes": [64], "kmax": 1.0}, "mu": [0.2],
             "temperature": [50.0], "tau": 1e-13, "responses": ["ife_coefficient"]}
    static = evaluate(study, n_workers=0, workdir=tmp_path)["ife_coefficient"]
    ds = evaluate({**study, "omega": [0.0, 0.01]}, n_workers=0, workdir=tmp_path)
    ureg = unit_registry()
    units = quantify_all(ureg, ds, "ife at omega, SI")  # every variable and coordinate, omega in eV
    assert ureg.parse_units(units["ife_coefficient"]).dimensionality == ureg.parse_units("A m2 V-2").dimensionality
    assert ureg.parse_units(units["omega"]).dimensionality == ureg.parse_units("eV").dimensionality
    ac = ds["ife_coefficient"]
    scale = float(np.abs(static).max())
    assert scale > 0
    np.testing.assert_allclose(_complex(ac.sel(omega=0.0)), static.values, rtol=0, atol=1e-12 * scale)
    wt = 0.01 * 1.602176634e-19 / 1.054571817e-34 * 1e-13  # ħω = 10 meV, τ = 0.1 ps: ωτ ≈ 1.52
    np.testing.assert_allclose(_complex(ac.sel(omega=0.01)), static.values / (1 + 1j * wt), rtol=1e-9,
                               atol=1e-12 * scale)
    assert ac.attrs["units"] == static.attrs["units"]


def test_ife_is_on_the_list_of_responses_with_a_frequency_form():
    base = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}}, "kgrid": {"sizes": [8]},
            "mu": [0.1], "temperature": [10.0], "tau": 1e-13}
    with pytest.raises(ConfigError, match="ife_coefficient"):
        load_study({**base, "responses": ["sigma_drude"], "omega": [0.1]})
    load_study({**base, "responses": ["ife_coefficient"], "omega": [0.0]})  # ω = 0: the static value
    with pytest.raises(ConfigError, match=">= 0"):
        load_study({**base, "responses": ["ife_coefficient"], "omega": [-0.1]})
