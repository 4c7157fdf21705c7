"""HTML report from synthetic results trees (convergence stage run on synthetic responses stores)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from qgtflow.stages import convergence_stage
from qgtflow.report import build_report

_spec = importlib.util.spec_from_file_location("_conv_helpers", Path(__file__).with_name("test_convergence.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

SIZES = [24, 32, 48]


def study_cfg(name: str, sizes=SIZES) -> dict:
    return {"name": name, "description": f"synthetic study {name}",
            "model": {"name": "massive_dirac", "params": {"m": 0.1, "v": 1.0}},
            "kgrid": {"sizes": sizes}, "mu": [-0.2, 0.2], "temperature": [10, 100],
            "responses": ["sigma_qm", "sigma_drude"], "convergence": {"rtol": 1e-2, "atol": 0.0}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """results/{s1,s2}/n{N}/responses.zarr + results/{s}/convergence/ (s1 with plots, s2 without);
    s3 configured but never run; s4 has stores but no convergence stage."""
    root = tmp_path_factory.mktemp("results")
    for name, plots in (("s1", True), ("s2", False)):
        paths, _ = helpers.make_stores(root, SIZES, 2.0, study=name, seed=3 if name == "s1" else 4)
        convergence_stage.run(helpers.study_stub(name), paths, str(root / name / "convergence"), plots=plots)
    helpers.make_stores(root, [16, 20], 2.0, study="s4")
    config = {
        "studies": {n: study_cfg(n) for n in ("s1", "s2", "s3")} | {"s4": study_cfg("s4", [16, 20])},
        "report": {"title": "Test report", "figures": [
            {"name": "fig2c", "title": "Fig. 2c: sigma_qm xyy", "response": "sigma_qm",
             "component": {"i": "x", "j": "y", "k": "y"}, "studies": ["s1", "s2", "s3", "s4", "ghost"],
             "x": "mu", "select": {"T": 12.0}},
            {"name": "vsT", "response": "sigma_drude", "component": {"i": "x", "j": "x"}, "studies": ["s1"],
             "x": "T", "select": {"mu": 0.0}},
            {"name": "broken", "response": "sigma_qm", "component": {"i": "x", "j": "y", "q": "y"},
             "studies": ["s1"], "x": "mu"},
        ]},
    }
    return root, config


def _img_sources(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', text)


def test_report_links_existing_images_and_names_studies(results, tmp_path):
    root, config = results
    out = tmp_path / "site" / "report.html"
    build_report(config, str(root), str(out))
    text = out.read_text()
    for name in ("s1", "s2", "s3", "s4"):
        assert f"study-{name}" in text and f"<code>{name}</code>" in text
    srcs = _img_sources(text)
    assert srcs, "no images in the report"
    for src in srcs:
        assert not src.startswith(("/", "http")), src  # relative links
        assert (out.parent / src).is_file(), src
    # s1's convergence plots and the cross-study figure are in the page
    assert any("s1/conv_sigma_qm.png" in s for s in srcs)
    assert any("s1/mu_sigma_qm.png" in s for s in srcs)
    assert any(s.endswith("figures/fig2c.png") for s in srcs)
    assert any(s.endswith("figures/vsT.png") for s in srcs)
    assert not any(s.endswith("figures/broken.png") for s in srcs)
    assert "Test report" in text


def test_report_notes_missing_things(results, tmp_path):
    root, config = results
    out = tmp_path / "report.html"
    build_report(config, str(root), str(out))
    text = out.read_text()
    notes = " ".join(re.findall(r'<div class="note">(.*?)</div>', text, flags=re.S))
    assert "No convergence results for study &#x27;s3&#x27;" in notes
    assert "s3" in notes and "ghost" in notes and "not configured" in notes
    assert "s4" in notes and "error bars" in notes  # stores but no convergence stage
    assert "No convergence plots found" in notes  # s2 ran without plots
    assert "q" in notes and "broken" not in _img_sources(text)
    # verdict counts of s1: every entry converged (generous rtol, atol floor for the zeros)
    assert re.search(r"<code>sigma_qm</code></td><td>A V\^-2</td><td class=\"num\">80</td>"
                     r"<td class=\"num\">80</td>", text)


def test_report_without_results_dir(tmp_path):
    config = {"studies": {"only": study_cfg("only")},
              "report": {"figures": [{"name": "f", "response": "sigma_qm", "studies": ["only"]}]}}
    out = tmp_path / "r.html"
    build_report(config, str(tmp_path / "does-not-exist"), str(out))
    text = out.read_text()
    assert "only" in text and "missing results" in text
    assert "has no data to show" in text
    build_report({}, str(tmp_path), str(tmp_path / "empty.html"))
    assert "No studies configured" in (tmp_path / "empty.html").read_text()


def test_report_refuses_a_store_of_other_inputs(results, tmp_path):
    """The report checks the fingerprints of the stores it reads (its params, from qgtflow.plan)."""
    from qgtflow import io
    from qgtflow.errors import StoreError

    root, config = results
    store = root / "s1" / "convergence" / "convergence.zarr"
    found = io.store_attrs(store)[io.FINGERPRINT]
    build_report({**config, "upstream": {"s1/convergence": found}}, str(root), str(tmp_path / "ok.html"))
    with pytest.raises(StoreError) as exc:
        build_report({**config, "upstream": {"s1/convergence": "0123456789abcdef"}}, str(root),
                     str(tmp_path / "no.html"))
    assert "\n" not in str(exc.value) and found in str(exc.value) and "0123456789abcdef" in str(exc.value)
    assert not (tmp_path / "no.html").exists()


def test_hall_conductivity_figures_get_an_e2_over_h_axis():
    """A figure of Hall conductivities with one e²/h factor gets a right-hand axis in e²/h; mixed factors do not."""
    import math

    from matplotlib.figure import Figure

    from qgtflow.report.figures import _e2_over_h_axis

    ax = Figure().subplots()
    ax.set_ylim(0.0, 1.0)
    _e2_over_h_axis(ax, {(2 * math.pi, "e2 planck_constant-1")})
    (sec,) = [c for c in ax.child_axes]
    assert sec.get_ylabel() == "e²/h"
    ax.figure.draw_without_rendering()
    assert math.isclose(sec.get_ylim()[1], 2 * math.pi)  # σ = 1 e²/ħ is 2π e²/h
    ax2 = Figure().subplots()
    _e2_over_h_axis(ax2, {(2 * math.pi, "e2 planck_constant-1"), (25812.8, "e2 planck_constant-1")})
    assert not ax2.child_axes


def test_a_component_may_name_its_own_response(results, tmp_path):
    """Two responses in one panel (002: Kubo Δn beside Eq. 12's): a component's ``response`` replaces the figure's
    for its curves; a response the store lacks is a note, not a failure of the other curves."""
    from qgtflow.report.figures import cross_figure

    root, config = results
    fig = {"name": "two", "response": "sigma_qm", "studies": ["s1"], "x": "mu", "select": {"T": 12.0},
           "components": [{"i": "x", "j": "y", "k": "y"}, {"response": "sigma_drude", "i": "x", "j": "x"}]}
    written, notes, detail = cross_figure(fig, config["studies"], root, tmp_path / "two.png")
    assert written and not notes and (tmp_path / "two.png").stat().st_size > 0
    assert detail.startswith("sigma_qm")
    fig["components"][1]["response"] = "sigma_nope"
    written, notes, _ = cross_figure(fig, config["studies"], root, tmp_path / "three.png")
    assert written and notes == ["study 's1': response 'sigma_nope' not in responses.zarr"]
