"""The multi-band Kubo responses of 002 (sigma_nonlocal, ndd_delta_n_kubo) through evaluate and the plan: the same
Δn as the two-band ndd_delta_n, attrs and units, refusals, and which shells jobs an ω edit reruns."""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.errors import ConfigError
from qgtflow.plan import grid_chain
from qgtflow.study import load_study
from qgtflow.units import unit_registry

KUBO = {"name": "kubo", "units": "natural", "model": {"name": "ndd_two_valley"}, "kgrid": {"sizes": [12], "kmax": 4.0},
        "mu": [0.0, 0.6], "temperature": [0.05], "omega": [0.5, 2.5], "broadening": 0.04,
        "responses": ["ndd_delta_n", "ndd_delta_n_kubo", "sigma_nonlocal"]}


@pytest.fixture(scope="module")
def kubo(tmp_path_factory):
    return evaluate(KUBO, n_workers=0, workdir=tmp_path_factory.mktemp("kubo"))


def test_interband_kubo_delta_n_equals_the_two_band_response(kubo):
    """Re Δn of the interband part equals 002 Eq. 12 on the same grid (Im: O(η), tests/test_nonlocal_kubo.py)."""
    two_band = kubo["ndd_delta_n"].sel(complex_part="real")
    multi = kubo["ndd_delta_n_kubo"].sel(band_part="interband", complex_part="real")
    scale = np.abs(two_band.values).max()
    assert scale > 1e-3
    np.testing.assert_allclose(multi.transpose(*two_band.dims).values, two_band.values, rtol=0, atol=1e-7 * scale)


def test_kubo_responses_carry_units_and_formulas(kubo):
    ureg = unit_registry()
    sigma = kubo["sigma_nonlocal"]
    assert sigma.dims == ("band_part", "omega", "complex_part", "mu", "T", "i", "j", "k")
    assert list(kubo["band_part"].values) == ["interband", "intraband"]
    for name in ("sigma_nonlocal", "ndd_delta_n_kubo"):
        attrs = kubo[name].attrs
        assert "002 Eq. 11" in attrs["formula"] and attrs["long_name"], name
        ureg.Quantity(1.0, attrs["units"])  # parseable
    assert ureg.parse_units(kubo["ndd_delta_n_kubo"].attrs["units"]) == ureg.parse_units(
        kubo["ndd_delta_n"].attrs["units"])
    assert np.all(np.isfinite(sigma.values)) and np.abs(sigma.sel(i="x", j="x", k="z").values).max() > 0


@pytest.mark.parametrize("change, key", [({"temperature": [0.0]}, "temperature"),
                                         ({"broadening": None}, "broadening"),
                                         ({"model": {"name": "massive_dirac"}, "kgrid": {"sizes": [8], "kmax": 1.0},
                                           "responses": ["ndd_delta_n_kubo"]}, "responses")])
def test_kubo_responses_refuse_what_they_cannot_compute(change, key):
    study = {k: v for k, v in {**KUBO, "responses": ["ndd_delta_n_kubo"], **change}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert key in str(err.value)


def _shells_fingerprint(study: dict) -> str:
    return grid_chain(load_study(study), 12)["shells"]["fingerprint"]


def test_an_omega_edit_reruns_only_the_shells_of_kubo_studies():
    kubo = {**KUBO, "responses": ["ndd_delta_n_kubo"]}
    assert _shells_fingerprint(kubo) != _shells_fingerprint({**kubo, "omega": [0.5, 2.0]})
    assert _shells_fingerprint(kubo) != _shells_fingerprint({**kubo, "broadening": 0.02})
    skew = {"name": "s", "model": {"name": "bilayer_graphene_gapped"}, "kgrid": {"sizes": [12]}, "mu": [0.065],
            "temperature": [30.0], "tau": 1e-12, "omega": [1e-3], "impurities": {"density": 1e-5, "potential": 10.0},
            "responses": ["pockels_skew"]}
    assert _shells_fingerprint(skew) == _shells_fingerprint({**skew, "omega": [2e-3]})


def test_physical_units_scale_like_the_two_band_response(tmp_path):
    """eV/nm: Δn dimensionless (the same SI factor as ndd_delta_n), σ_ijk in S for a 3D model."""
    study = {**KUBO, "units": {"energy": "eV", "length": "nm"}, "kgrid": {"sizes": [8], "kmax": 4.0},
             "temperature": [600.0], "mu": [0.0]}
    ds = evaluate(study, n_workers=0, workdir=tmp_path)
    ureg = unit_registry()
    assert ureg.parse_units(ds["sigma_nonlocal"].attrs["units"]) == ureg.parse_units("S")
    two_band = ds["ndd_delta_n"].sel(complex_part="real")
    multi = ds["ndd_delta_n_kubo"].sel(band_part="interband", complex_part="real").transpose(*two_band.dims)
    scale = np.abs(two_band.values).max()
    assert scale > 0
    np.testing.assert_allclose(multi.values, two_band.values, rtol=0, atol=1e-7 * scale)


def test_shells_compute_only_the_q_directions_the_responses_read():
    """Δn alone reads σ_xxz: its shells store holds q = z only, bitwise the z slice of the full tensor that
    sigma_nonlocal needs (each direction is its own Richardson q-derivative)."""
    from qgtflow.stages.shells_stage import shells_dataset

    small = {**KUBO, "kgrid": {"sizes": [6], "kmax": 4.0}, "mu": [0.6], "omega": [0.5]}
    stores = {}
    for responses in (["ndd_delta_n_kubo"], ["ndd_delta_n_kubo", "sigma_nonlocal"]):
        study = load_study({**small, "responses": responses})
        job = grid_chain(study, 6)["shells"]
        stores[len(responses)] = shells_dataset(study, study.make_grid(6), job["products"], job)["kubo_sigma"]
    assert list(stores[1]["q"].values) == ["z"] and list(stores[2]["q"].values) == ["x", "y", "z"]
    assert np.array_equal(stores[1].values, stores[2].sel(q=["z"]).values)


def test_the_q_directions_read_are_in_the_shells_fingerprint():
    """Adding sigma_nonlocal (every q direction) to a Δn study reruns its shells job; a response that reads no
    shells (ndd_delta_n, from the geometry store) does not."""
    delta_n = {**KUBO, "responses": ["ndd_delta_n_kubo"]}
    assert _shells_fingerprint(delta_n) != _shells_fingerprint({**delta_n, "responses": ["ndd_delta_n_kubo",
                                                                                        "sigma_nonlocal"]})
    assert _shells_fingerprint(delta_n) == _shells_fingerprint({**delta_n, "responses": ["ndd_delta_n",
                                                                                        "ndd_delta_n_kubo"]})
    assert grid_chain(load_study(delta_n), 12)["shells"]["kubo_inputs"]["q"] == ["z"]
