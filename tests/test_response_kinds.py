"""Response kinds behind one protocol (reduce/kinds.py): a toy response of each kind, registered here only, runs
through the reduce stage on a tiny grid — adding a response touches one module."""

import numpy as np
import pytest
import xarray as xr

import qgtflow
from qgtflow.errors import ConfigError
from qgtflow.reduce import kinds
from qgtflow.reduce.responses import DirectResponse, Response, Term

STUDY = {"name": "toy", "model": {"name": "haldane"}, "units": "natural", "kgrid": {"sizes": [6]},
         "mu": [-0.5, 0.5], "temperature": [0.4]}
TOYS = ["toy_density", "toy_weight_sum", "toy_grid_weight", "toy_twice_density"]


class _WeightSum:
    """Pair-sum accumulator of the toy: Σ_k w_k Σ_n band_weight_n (k-points × bands, weighted)."""

    key = "toy_weight_sum"

    def check_model(self, model, key, names):
        pass

    def prepare(self, ctx):
        return {"band_weight": np.asarray(ctx["band_weight"], float), "shape": (len(ctx["mu"]), len(ctx["kT"]))}

    def start(self, params):
        return np.zeros(1)

    def add(self, state, fields, weight, params):
        state += weight.sum() * params["band_weight"].sum()

    def merge(self, a, b):
        return a + b


def _emit_weight_sum(study, state, params, sectors):
    return ("mu", "T"), np.broadcast_to(state[0], (1,) + params["shape"]).copy(), "1"


def _grid_weight_product(study, grid):
    """Shells product of the toy (the model on the grid, evaluated by the shells stage)."""
    return {"toy_weight_total": xr.Variable((), grid.weight * grid.n_points * study.model.nbands,
                                            {"units": "1", "long_name": "toy: Σ_k w_k n_bands", "formula": "test"})}


def _grid_weight(study, shells):
    total = float(shells["toy_weight_total"].values)
    return xr.Variable(("mu", "T"), np.full((study.mu.size, study.temperature.size), total),
                       {"units": "1", "long_name": "toy: k-point weights of the grid", "formula": "test only"})


def _twice(study, ds, names):
    return {"toy_twice_density": xr.Variable(ds["toy_density"].dims, 2 * ds["toy_density"].values,
                                             {**ds["toy_density"].attrs, "long_name": "toy: twice the density"})}


def _needs_density(cfg, model, units, key, as_array):
    if "toy_density" not in cfg["responses"]:
        raise ConfigError(f"{key}responses", "toy_twice_density", "toy_density in the same study")


@pytest.fixture
def toys():
    kinds.register(kinds.Binned(Response(
        "toy_density", "toy: electron density", "test: n = Σ_n ∫[dk] f0", (),
        {"sea": Term(lambda f: np.ones_like(f["energy"]), 0, 0, 0, ("energy",))}, si_units=lambda d: {"m": -d})))
    kinds.register(kinds.PairSum(DirectResponse("toy_weight_sum", "toy: stored k-point weights", "test only",
                                                ("energy",), ("mu", "T")), _WeightSum(), _emit_weight_sum,
                                 omega="none", needs=()))
    kinds.register_shell_product("toy_grid_weight", _grid_weight_product)
    kinds.register(kinds.ModelEvaluated("toy_grid_weight", _grid_weight, shells=("toy_grid_weight",)))
    kinds.register(kinds.Derived("toy_twice_density", _twice, _needs_density))
    try:
        yield
    finally:
        for name in TOYS:
            kinds.unregister(name)
        kinds.SHELL_PRODUCTS.pop("toy_grid_weight", None)


def test_a_toy_response_of_each_kind_runs_through_reduce(toys, tmp_path):
    ds = qgtflow.evaluate({**STUDY, "responses": TOYS + ["sigma_ahe"]}, n_workers=0, workdir=tmp_path)
    for name in TOYS:
        assert ds[name].dims == ("mu", "T"), name
        assert {"units", "long_name", "formula"} <= set(ds[name].attrs), name
    # the pair sum over the stored weights equals the grid's weights (two kinds, two routes)
    np.testing.assert_allclose(ds["toy_weight_sum"].values, ds["toy_grid_weight"].values, rtol=1e-12)
    np.testing.assert_allclose(ds["toy_twice_density"].values, 2 * ds["toy_density"].values, rtol=0)
    n = ds["toy_density"].values
    assert np.all(n > 0) and n[1, 0] > n[0, 0]  # more electrons at the higher μ


def test_a_toy_response_validates_itself(toys):
    from qgtflow.study import load_study

    with pytest.raises(ConfigError, match="toy_density in the same study"):
        load_study({**STUDY, "responses": ["toy_twice_density"]})
    with pytest.raises(ConfigError, match="omega"):  # no frequency form among the requested ones
        load_study({**STUDY, "responses": ["toy_density"], "omega": [0.1]})
    assert "toy_density" not in load_study({**STUDY, "responses": ["toy_weight_sum"]}).responses


def test_every_builtin_response_is_one_calculator_of_a_known_kind():
    from qgtflow.reduce.responses import DIRECT_RESPONSES, RESPONSES, THIN_FILM

    names = set(RESPONSES) | set(DIRECT_RESPONSES) | set(THIN_FILM) | {"pockels_skew"}
    assert names <= set(kinds.CALCULATORS)
    assert {c.kind for c in kinds.CALCULATORS.values()} == set(kinds.KINDS)
