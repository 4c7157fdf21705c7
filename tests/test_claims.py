"""The papers' claims (src/qgtflow/data/claims.yaml) as checks: the file's rows are well formed and
name default studies; the evaluators agree with closed forms on synthetic data; and every claim,
evaluated on a cheap proxy of its study (the row's ``test`` overrides: small grids, in-process
``qgtflow.evaluate``), keeps its expected verdict — a claim marked reproduced that stops reproducing
fails here, and so does a known difference that silently disappears.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from qgtflow.report import claims as C

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rows():
    return C.load_claims()


@pytest.fixture(scope="module")
def default_studies():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["studies"]


def test_every_row_is_well_formed_and_names_a_default_study(rows, default_studies):
    assert {r["paper"] for r in rows} == {"000", "001", "002", "003", "004"}
    for r in rows:
        named = {r["study"]} | {s["study"] for s in (r.get("b") or {}, *(r.get("terms") or [])) if "study" in s}
        assert named <= set(default_studies), (r["id"], named)
        assert isinstance(r.get("test"), dict), f"{r['id']}: no cheap proxy ('test' overrides)"


def test_malformed_rows_are_refused(tmp_path):
    good = {"id": "x", "paper": "000", "where": "Eq. 1", "statement": "s", "study": "A", "evaluator": "value",
            "a": {"response": "r"}, "paper_value": {"value": 1.0, "rtol": 0.1}, "expect": "reproduced"}
    for bad, message in (({"evaluator": "mean"}, "evaluator"), ({"expect": "differs"}, "reason"),
                         ({"paper_value": {"range": [2, 1]}}, "empty"), ({"colour": 1}, "unknown keys")):
        path = tmp_path / "claims.yaml"
        path.write_text(yaml.safe_dump([{**good, **bad}]))
        with pytest.raises(C.ClaimError, match=message):
            C.load_claims(path)


# ---------------------------------------------------------------- evaluators against closed forms


def _source():
    x = np.linspace(1.0, 10.0, 91)
    wt = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    ds = xr.Dataset({
        "power": (("mu", "i"), np.stack([3.0 * x ** -2, -x ** 3], axis=1), {"units": "1"}),
        "wave": (("mu",), np.sin(x)),
        "cplx": (("omega", "complex_part"), np.stack([wt ** -2, 2 * wt ** -1], axis=1), {"tau": 1.0}),
        "base": (("omega", "complex_part"), np.stack([np.ones(5), np.zeros(5)], axis=1)),
    }, coords={"mu": x, "i": ["x", "y"], "omega": wt, "complex_part": ["real", "imag"]})
    ds["omega"].attrs["units"] = "model energy"
    ds.attrs["tau"] = 1.0
    err = xr.Dataset({"power_error": (("mu", "i"), np.full((91, 2), 0.01))}, coords={"mu": x, "i": ["x", "y"]})
    return C.DatasetSource({"S": ds}, {"S": err})


def _row(**kw):
    return {"id": "t", "study": "S", "paper_value": {"range": [-np.inf, np.inf]}, **kw}


def test_evaluators_reproduce_closed_forms():
    src = _source()
    o = C.evaluate_claim(_row(evaluator="slope", a={"response": "power", "sel": {"i": "x"}}, along="mu",
                              within=[2.0, 8.0]), src)
    assert o.value == pytest.approx(-2.0, abs=1e-12)
    o = C.evaluate_claim(_row(evaluator="slope", a={"response": "cplx", "sel": {"complex_part": "imag"}},
                              along="omega_tau", within=[1.0, 8.0]), src)
    assert o.value == pytest.approx(-1.0, abs=1e-12)
    o = C.evaluate_claim(_row(evaluator="argmax", a={"response": "wave"}, along="mu", within=[6.0, 9.0]), src)
    assert abs(o.value - 2.5 * np.pi) <= 0.05 + 1e-12 and o.error == pytest.approx(0.05)
    o = C.evaluate_claim(_row(evaluator="sign_changes", a={"response": "wave"}, along="mu", floor=1e-3), src)
    assert o.value == 3  # sin x on [1, 10]: zeros at π, 2π, 3π
    # ratio with error bars in quadrature: 3x^-2 / (-x^3) at x = 2
    o = C.evaluate_claim(_row(evaluator="ratio", a={"response": "power", "sel": {"i": "x", "mu": 2.0}},
                              b={"response": "power", "sel": {"i": "y", "mu": 2.0}}), src)
    assert o.value == pytest.approx(-0.75 / 8)
    assert o.error == pytest.approx(abs(o.value) * np.hypot(0.01 / 0.75, 0.01 / 8))
    # |Σ T_n E^n| / |base| with complex T = ωτ^-2 + 2i ωτ^-1, E = 0.5
    o = C.evaluate_claim(_row(evaluator="field_series", a={"response": "base"}, field=0.5,
                              terms=[{"response": "cplx", "power": 1}]), src)
    wt = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    assert o.value == pytest.approx(0.5 * np.abs(wt ** -2 + 2j / wt))
    # max_abs keeps the largest magnitude, its own error bar
    o = C.evaluate_claim(_row(evaluator="value", a={"response": "power", "sel": {"i": "y"}, "reduce": "max_abs"}),
                         src)
    assert o.value == pytest.approx(1000.0) and o.error == pytest.approx(0.01)


def test_a_sum_selection_is_the_weighted_sum_of_its_terms():
    """``sum``: Σ factor × selection (002-eq15-metal's two sides), error bars in quadrature, None if a term has none."""
    src = _source()
    a = {"sum": [{"response": "power", "sel": {"i": "x", "mu": 2.0}},  # 3/4 ± 0.01
                 {"response": "power", "sel": {"i": "y", "mu": 2.0}, "factor": 0.5}]}  # −8/2 ± 0.005
    value, err = C.select(src, "S", a)
    assert float(value) == pytest.approx(0.75 - 4.0) and float(err) == pytest.approx(np.hypot(0.01, 0.005))
    o = C.evaluate_claim(_row(evaluator="value", a={"sum": [*a["sum"], {"response": "wave", "sel": {"mu": 2.0},
                                                                        "factor": -1.0}]}), src)
    assert float(o.value) == pytest.approx(0.75 - 4.0 - np.sin(2.0)) and o.error is None


def test_a_nan_error_bar_never_widens_the_interval():
    """A one-grid study's convergence store (or an entry with too few grids) has NaN error bars: the value is judged
    alone, never 'reproduced' by an unknown error; ``error_bar: false`` drops the error bar altogether (the 002 Kubo
    rows on ndd_kubo, ndd_kubo_metal)."""
    src = _source()
    src.errors["S"] = src.errors["S"] * np.nan
    a = {"response": "power", "sel": {"i": "x", "mu": 1.0}}  # 3.0
    far = {"value": 123.0, "rtol": 0.01}
    assert C.evaluate_claim(_row(evaluator="value", a=a, paper_value=far), src).verdict == "differs"
    assert C.evaluate_claim(_row(evaluator="value", a=a, paper_value={"value": 3.0, "rtol": 1e-9}),
                            src).verdict == "reproduced"
    assert C.evaluate_claim(_row(evaluator="value", a={**a, "error_bar": False}, paper_value=far),
                            src).verdict == "differs"
    summed = {"sum": [a, {**a, "factor": -2.0}], "error_bar": False}  # −3
    o = C.evaluate_claim(_row(evaluator="ratio", a=summed, b={**a, "error_bar": False},
                              paper_value={"value": -1.0, "rtol": 1e-12}), src)
    assert o.verdict == "reproduced" and o.error is None


def test_verdict_uses_the_interval_widened_by_the_error_bar():
    src = _source()
    a = {"response": "power", "sel": {"i": "x", "mu": 1.0}}  # 3.0 ± 0.01
    assert C.evaluate_claim(_row(evaluator="value", a=a, paper_value={"value": 3.005, "atol": 0.0}),
                            src).verdict == "reproduced"
    assert C.evaluate_claim(_row(evaluator="value", a=a, paper_value={"value": 3.05, "rtol": 0.01}),
                            src).verdict == "differs"
    assert C.evaluate_claim(_row(evaluator="value", a=a, paper_value={"value": 3.0, "factor": 1.5}),
                            src).verdict == "reproduced"
    out = C.evaluate_all([_row(evaluator="value", a={"response": "missing"}, paper_value={"value": 1})], src)
    assert out[0][1].verdict == "not evaluated" and "missing" in out[0][1].note
    html = C.claims_table([({**_row(evaluator="value", a=a, paper_value={"value": 1.0, "rtol": 0.1}),
                             "paper": "000", "where": "Eq. 1", "statement": "σ < 1", "expect": "reproduced"},
                            C.evaluate_claim(_row(evaluator="value", a=a, paper_value={"value": 1.0, "rtol": 0.1}),
                                             src))])
    assert "differs (unexpected)" in html and "3 ± 0.01" in html


# ---------------------------------------------------------------- every claim on its cheap proxy


def _proxies(rows, default_studies):
    """{(study, overrides as JSON): study config} for every study a row reads (b / terms may name another)."""
    out = {}
    for r in rows:
        for study in {r["study"]} | {s["study"] for s in (r.get("b") or {}, *(r.get("terms") or []))
                                     if "study" in s}:
            key = (study, json.dumps(r["test"], sort_keys=True))
            cfg = copy.deepcopy(default_studies[study])
            cfg.update(copy.deepcopy(r["test"]))
            out[key] = cfg
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_claim_keeps_its_verdict_on_its_proxy(rows, default_studies):
    import qgtflow

    results = {key: qgtflow.evaluate(cfg).load() for key, cfg in _proxies(rows, default_studies).items()}
    wrong = []
    for r in rows:
        key = json.dumps(r["test"], sort_keys=True)
        source = C.DatasetSource({study: ds for (study, k), ds in results.items() if k == key})
        outcome = C.evaluate_claim(r, source)
        if outcome.verdict != r["expect"]:
            wrong.append(f"{r['id']}: {outcome.verdict} (ours {outcome.text()}, paper {C.paper_interval(r)}), "
                         f"expected {r['expect']}")
    assert not wrong, "\n".join(wrong)


def test_a_selection_outside_the_stored_grid_is_not_evaluated():
    """A numeric selection beyond the store's grid by more than half its step (e.g. a metallic μ asked of a study
    that stores the gap's μ only) leaves the row 'not evaluated' with the reason, instead of the nearest value's
    answer; inside the grid the nearest value is taken."""
    src = _source()
    row = _row(evaluator="ratio", a={"response": "power", "sel": {"i": "x", "mu": 2.0}},
               b={"response": "power", "sel": {"i": "y", "mu": 2.0}})
    inside = C.evaluate_all([row], src)[0][1]
    assert inside.verdict != "not evaluated"
    far = {**row, "a": {"response": "power", "sel": {"i": "x", "mu": 50.0}}}
    (_, outcome), = C.evaluate_all([far], src)
    assert outcome.verdict == "not evaluated" and "outside the store's mu grid" in outcome.note
