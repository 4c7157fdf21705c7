"""Bad input is refused before any compute, with the key, the value and what was expected."""

import numpy as np
import pytest

from qgtflow.errors import ConfigError, ModelError, QgtflowError
from qgtflow.models import TightBindingModel, build_model
from qgtflow.study import load_study

GOOD = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}}, "mu": [0.1, 0.2],
        "temperature": [10.0], "responses": ["sigma_drude"]}


def _with(**changes):
    study = {**GOOD}
    study.update(changes)
    return study


@pytest.mark.parametrize("study,fragments", [
    (_with(model={"name": "graphene_typo"}), ["unknown model 'graphene_typo'", "haldane", "massive_dirac"]),
    (_with(model={"name": "massive_dirac", "params": {"velocity": 1.0}}), ["unknown parameter", "velocity", "'v'"]),
    (_with(model={"name": "massive_dirac", "params": {"v": float("nan")}}), ["model.params.v'", "finite"]),
    (_with(responses=["sigma_qm", "sigma_quantum"]), ["responses", "sigma_quantum", "sigma_qm"]),
    (_with(responses=[]), ["responses", "at least 1"]),
    (_with(temperature=[-5.0]), ["temperature", "> 0"]),
    (_with(temperature=[0.0]), ["temperature", "> 0"]),
    (_with(mu=[0.3, 0.1]), ["mu", "increasing"]),
    (_with(mu=[0.1, 0.1]), ["mu", "duplicates"]),
    (_with(mu={"start": 0.0, "stop": 1.0}), ["mu"]),
    (_with(kgrid={"sizes": [1]}), ["kgrid.sizes[0]", ">= 2"]),
    (_with(kgrid={"sizes": [64, 32]}), ["kgrid.sizes", "increasing"]),
    (_with(kgrid={"sizes": [16], "kmax": -1.0}), ["kgrid.kmax"]),
    (_with(kgrid={"sizes": [16], "chunk_size": 0}), ["kgrid.chunk_size", ">= 1"]),
    (_with(kgrid={"sizes": [16], "points": 3}), ["kgrid.points", "known keys"]),
    (_with(tau=-1e-12), ["tau", "> 0"]),
    (_with(units="imperial"), ["units"]),
    (_with(fermi_form="both"), ["fermi_form", "sea", "surface"]),
    (_with(degeneracy_threshold=0), ["degeneracy_threshold", "> 0"]),
    (_with(temprature=[10.0]), ["temprature", "known keys"]),
    ({k: v for k, v in GOOD.items() if k != "mu"}, ["mu", "required"]),
    (_with(model={"name": "haldane"}, kgrid={"sizes": [16], "kmax": 1.0}), ["kgrid.kmax", "periodic"]),
    (_with(units="natural"), ["tau", "sigma_drude", "natural units"]),
])
def test_bad_study_is_refused_with_a_clear_message(study, fragments):
    with pytest.raises(QgtflowError) as info:
        load_study(study)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_named_study_errors_carry_the_config_path():
    with pytest.raises(ConfigError, match=r"studies\.demo\.temperature"):
        load_study(_with(temperature=[-1.0]), name="demo")


def test_non_hermitian_tight_binding_model_is_refused():
    lattice = np.eye(2)
    hops = [((1, 0), 0, 1, 0.5), ((-1, 0), 1, 0, 0.7)]  # partner amplitude does not match
    model = TightBindingModel("broken", lattice, [[0, 0], [0.5, 0.5]], hops)
    with pytest.raises(ModelError, match="not Hermitian"):
        model.validate()


def test_model_shape_errors():
    from qgtflow.models import PolynomialModel

    with pytest.raises(ModelError, match="expected square"):
        PolynomialModel("bad", 2, {(0, 0): np.ones((2, 3))})
    with pytest.raises(ModelError, match="2x2"):
        PolynomialModel("bad", 2, {(0, 0): np.eye(2), (1, 0): np.eye(3)})
    with pytest.raises(ModelError, match="exponent"):
        PolynomialModel("bad", 2, {(0, 0, 1): np.eye(2)})


def test_good_study_has_defaults_filled():
    st = load_study(GOOD)
    assert st.tau == 1e-12  # physical units: 1 ps by default
    assert np.isnan(load_study(_with(units="natural", responses=["sigma_ahe"])).tau)  # τ-free response
    assert st.config["kgrid"]["sizes"] == [64, 96, 128]
    assert st.fermi_form == "surface"  # k·p window: Fermi-surface forms avoid boundary terms
    assert build_model("haldane").periodic and load_study(_with(model={"name": "haldane"})).fermi_form == "sea"
