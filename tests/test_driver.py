"""Convergence driver (qgtflow.driver.converge, `qgtflow converge`): massive Dirac k·p window in
natural units, against 1D radial quadratures of the same window integrals."""

from __future__ import annotations

import itertools
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from scipy.integrate import quad
from scipy.special import expit

from qgtflow import api
from qgtflow.cli import main
from qgtflow.driver import converge, size_sequence
from qgtflow.errors import ConfigError

V, M, MU, T, KMAX, TAU = 1.0, 0.2, 0.5, 0.03, 1.5, 1.0
STUDY = {"name": "dirac", "model": {"name": "massive_dirac", "params": {"v": V, "mass": M}}, "units": "natural",
         "kgrid": {"sizes": [32], "kmax": KMAX}, "mu": [MU], "temperature": [T], "tau": TAU,
         "responses": ["sigma_drude", "sigma_ahe"], "convergence": {"rtol": 1e-5}}
ZERO = {"sigma_drude": ["xy", "yx"], "sigma_ahe": ["xx", "yy"]}


# ---------------------------------------------------------------- closed forms on the window


def _arc(r, K):
    """Length of the circle of radius r inside the square [-K, K]²."""
    return 2 * np.pi * r if r <= K else 2 * np.pi * r - 8 * r * np.arccos(K / r)


def _fermi(e, mu, t):
    return expit(-(e - mu) / t)


def _minus_dfermi(e, mu, t):
    f = expit(-(e - mu) / t)
    return f * (1.0 - f) / t


def _radial(f, K, kinks):
    """∫_0^{√2 K} f(r) dr, split at the window's half-width and the Fermi radius."""
    edges = [0.0] + sorted({K, *(k for k in kinks if 0 < k < np.sqrt(2) * K)}) + [np.sqrt(2) * K]
    return sum(quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0] for a, b in itertools.pairwise(edges))


def drude_xx(v, m, mu, t, K, tau=1.0):
    """τ Σ_n ∫_window d²k/(2π)² v_x² (−f0'), H = v(kx σx + ky σy) + m σz; v_x² averages to v²/2 on
    every arc by the square's x ↔ y symmetry; v = ∂ε/∂k = v² k/ε."""
    eps = lambda r: np.sqrt(v**2 * r**2 + m**2)
    f = lambda r: (_arc(r, K) / 2 * v**4 * r**2 / eps(r) ** 2
                   * (_minus_dfermi(eps(r), mu, t) + _minus_dfermi(-eps(r), mu, t)) / (4 * np.pi**2))
    return tau * _radial(f, K, [np.sqrt(max(mu**2 - m**2, 0.0)) / v])


def ahe_xy(v, m, mu, t, K):
    """−Σ_n ∫_window d²k/(2π)² Ω^xy_n f0 with Ω^xy_∓ = ±m v²/(2ε³) (lower / upper band)."""
    eps = lambda r: np.sqrt(v**2 * r**2 + m**2)
    f = lambda r: (-_arc(r, K) * m * v**2 / (2 * eps(r) ** 3)
                   * (_fermi(-eps(r), mu, t) - _fermi(eps(r), mu, t)) / (4 * np.pi**2))
    return _radial(f, K, [np.sqrt(max(mu**2 - m**2, 0.0)) / v])


def test_quadratures_reach_the_zero_temperature_closed_forms():
    # Drude weight at T -> 0 with the Fermi circle inside the window: (μ² − m²)/(4π μ) (v = 1)
    assert drude_xx(1.0, M, MU, 2e-4, KMAX) == pytest.approx((MU**2 - M**2) / (4 * np.pi * MU), rel=1e-5)
    # AHE at T -> 0, μ in the gap, window -> ∞: the half quantum −sign(m)/(4π) (a finite window is not)
    assert ahe_xy(1.0, M, 0.0, 1e-3, 400.0) == pytest.approx(-1 / (4 * np.pi), rel=1e-3)
    assert abs(ahe_xy(1.0, M, 0.0, 1e-3, KMAX) + 1 / (4 * np.pi)) > 0.1 / (4 * np.pi)


# ---------------------------------------------------------------- driver runs


class CountingEvaluate:
    def __init__(self):
        self.sizes = []
        self.real = api.evaluate

    def __call__(self, study, size=None, **kwargs):
        self.sizes.append(size)
        return self.real(study, size=size, **kwargs)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    base = tmp_path_factory.mktemp("driver")
    result = converge(STUDY, n_workers=0, workdir=str(base / "work"), out_dir=str(base / "out"),
                      zero_components=ZERO)
    return base, result


def test_converges_to_the_closed_form_within_the_error_bar(first):
    _, r = first
    assert r.converged and r.stop_reason == "all entries converged", str(r)
    assert 3 <= r.n_densities <= 7 and r.n_computed == r.n_densities
    assert r.sizes == size_sequence(32, 1.5, r.n_densities) == [32, 48, 72, 108, 162, 244, 366][:r.n_densities]
    assert r.n_kpoints == r.sizes[-1] ** 2
    # every round after the second judged all 4 entries (the 4 symmetry zeros are residuals), the last all converged
    assert [x.n_converged is None for x in r.rounds] == [True, True] + [False] * (r.n_densities - 2)
    assert r.rounds[-1].n_converged == r.rounds[-1].n_entries == 4
    for response, comps, exact in (("sigma_drude", ("xx", "yy"), drude_xx(V, M, MU, T, KMAX, TAU)),
                                   ("sigma_ahe", ("xy",), ahe_xy(V, M, MU, T, KMAX)),
                                   ("sigma_ahe", ("yx",), -ahe_xy(V, M, MU, T, KMAX))):
        for comp in comps:
            e = r.entry(response, comp)
            assert e["verdict"] == "converged" and e["n_points_finest"] == r.n_kpoints
            assert abs(e["extrapolated"] - exact) <= e["error"], (response, comp, e["extrapolated"], exact, e["error"])
            assert e["error"] <= 1e-5 * abs(exact)
    # the AHE converges with the midpoint rule's order 2 on the window (boundary of the filled band)
    assert r.entry("sigma_ahe", "xy")["order"] == pytest.approx(2.0, abs=0.05)
    # finite-T Drude weight lies below the T = 0 closed form
    assert r.entry("sigma_drude", "xx")["extrapolated"] < (MU**2 - M**2) / (4 * np.pi * MU)


def test_writes_the_convergence_stage_outputs(first):
    base, r = first
    out = base / "out"
    table = pd.read_csv(out / "convergence.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 8 and r.n_entries == 4
    assert set(table["verdict"]) == {"converged", "symmetry zero (excluded)"}
    assert list(table.columns)[:6] == ["study", "response", "variant", "component", "mu", "T"]
    ds = xr.open_zarr(out / "convergence.zarr")
    assert ds.attrs["qgtflow_complete"] and ds.attrs["driver_sizes"] == r.sizes
    assert ds.sizes["size"] == r.n_densities and int(ds["n_kpoints"][-1]) == r.n_kpoints
    assert (ds["sigma_drude_verdict"].values == 1).all()
    for name in ("conv_sigma_drude.png", "mu_sigma_ahe.png", "summary.txt", "symmetry_residuals.csv"):
        assert (out / name).is_file(), name
    text = str(r)
    assert len(text.splitlines()) <= 45 and "sigma_drude xx" in text and "converged 4" in text


def test_symmetry_residuals_of_vanishing_components(first, tmp_path):
    _, r = first
    res = r.residuals
    assert sorted(map(tuple, res[["response", "component"]].values)) == \
        [("sigma_ahe", "xx"), ("sigma_ahe", "yy"), ("sigma_drude", "xy"), ("sigma_drude", "yx")]
    assert (res["relative"] < 1e-12).all(), res
    drude = res[res["response"] == "sigma_drude"]
    assert np.allclose(drude["scale"], abs(r.entry("sigma_drude", "xx")["value_finest"]))
    # reported beside the verdicts, and only for the named components
    assert r.table["symmetry_residual"].notna().sum() == 4
    assert r.entry("sigma_drude", "xy")["symmetry_residual"] < 1e-12
    # residuals, not results: excluded from the verdict and the counts
    zero = r.table["symmetry_residual"].notna()
    assert (r.table.loc[zero, "verdict"] == "symmetry zero (excluded)").all()
    assert (r.table.loc[~zero, "verdict"] == "converged").all() and r.n_entries == (~zero).sum()
    assert "symmetry residuals" in str(r)
    # an unknown label is refused after the first density, naming it
    count = CountingEvaluate()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api, "evaluate", count)
        with pytest.raises(ConfigError, match="zero_components.sigma_drude.*'xz'"):
            converge(STUDY, n_workers=0, workdir=str(tmp_path / "w"), zero_components={"sigma_drude": ["xz"]})
        with pytest.raises(ConfigError, match="zero_components.*sigma_qm"):
            converge(STUDY, n_workers=0, workdir=str(tmp_path / "w"), zero_components={"sigma_qm": ["xyy"]})
    assert count.sizes == [32]


def test_second_call_recomputes_nothing(first, monkeypatch, caplog):
    base, r = first
    work = base / "work"
    stamps = {p.name: (p / "zarr.json").stat().st_mtime_ns for p in work.glob("*_responses.zarr")}
    assert len(stamps) == r.n_densities
    count = CountingEvaluate()
    monkeypatch.setattr(api, "evaluate", count)
    with caplog.at_level(logging.INFO, logger="qgtflow.driver"):
        again = converge(STUDY, n_workers=0, workdir=str(work), zero_components=ZERO)
    assert count.sizes == [] and again.n_computed == 0 and again.sizes == r.sizes
    assert {p.name: (p / "zarr.json").stat().st_mtime_ns for p in work.glob("*_responses.zarr")} == stamps
    pd.testing.assert_frame_equal(again.table, r.table)
    assert sum("reused" in m and "entries converged" in m for m in caplog.messages) == r.n_densities - 2
    # a stricter tolerance continues the same sequence: only the new density is computed
    more = converge(STUDY, rtol=1e-9, max_rounds=r.n_densities + 1, n_workers=0, workdir=str(work))
    assert count.sizes == [size_sequence(32, 1.5, r.n_densities + 1)[-1]] and more.n_computed == 1


def test_another_configuration_is_recomputed(first, tmp_path, monkeypatch):
    base, _ = first
    work = tmp_path / "work"
    shutil.copytree(base / "work", work)
    count = CountingEvaluate()
    monkeypatch.setattr(api, "evaluate", count)
    changed = {**STUDY, "temperature": [0.05]}
    r = converge(changed, rtol=1e-3, max_rounds=3, n_workers=0, workdir=str(work))
    assert count.sizes == [32, 48, 72] and r.n_computed == 3
    assert r.entry("sigma_drude", "xx")["T"] == 0.05


def test_unreachable_tolerance_returns_not_converged(first, monkeypatch):
    base, _ = first
    count = CountingEvaluate()
    monkeypatch.setattr(api, "evaluate", count)
    r = converge(STUDY, rtol=1e-12, max_rounds=3, n_workers=0, workdir=str(base / "work"))
    assert count.sizes == []  # the first run's densities are reused
    assert r.n_densities == 3 and not r.converged and "max_rounds = 3" in r.stop_reason
    for response, comp in (("sigma_drude", "xx"), ("sigma_drude", "yy"), ("sigma_ahe", "xy"), ("sigma_ahe", "yx")):
        e = r.entry(response, comp)
        assert e["verdict"] == "not converged" and e["error"] > 1e-12 * abs(e["extrapolated"])
    assert "not converged 4" in str(r)
    # a k-point budget that allows two densities only: stopped there, no verdict
    r2 = converge(STUDY, rtol=1e-12, max_points=48**2, n_workers=0, workdir=str(base / "work"))
    assert r2.sizes == [32, 48] and "max_points" in r2.stop_reason
    assert set(r2.table["verdict"]) <= {"insufficient data", "not converged"}
    assert (r2.table["verdict"] == "insufficient data").sum() >= 4


def test_bad_driver_arguments():
    for kwargs, key in (({"max_rounds": 2}, "max_rounds"), ({"growth": 1.0}, "growth"), ({"rtol": 0.0}, "rtol"),
                        ({"max_points": 100}, "max_points")):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            converge(STUDY, n_workers=0, **kwargs)


# ---------------------------------------------------------------- command line


def _study_file(path, **over):
    path.write_text(yaml.safe_dump({**STUDY, **over}))
    return str(path)


def test_cli_strict_and_summary(first, tmp_path, capsys):
    base, _ = first
    study = _study_file(tmp_path / "dirac.yaml")
    common = ["converge", study, "--rtol", "1e-12", "--max-rounds", "3", "--workers", "0",
              "--workdir", str(base / "work"), "--no-plots"]
    assert main(common + ["--out", str(tmp_path / "a"), "--zero", "sigma_drude:xy,yx"]) == 0
    out = capsys.readouterr().out
    assert "not converged" in out and "k-points" in out and "sigma_drude xx" in out and "±" in out
    assert len(out.splitlines()) <= 45
    assert (tmp_path / "a" / "convergence.csv").is_file()
    assert main(common + ["--out", str(tmp_path / "b"), "--strict"]) == 1
    # reachable tolerance: --strict passes
    assert main(["converge", study, "--out", str(tmp_path / "c"), "--workers", "0", "--workdir", str(base / "work"),
                 "--no-plots", "--strict"]) == 0


@pytest.mark.parametrize("over,key", [({"kgrid": {"sizes": [1], "kmax": KMAX}}, "kgrid.sizes[0]"),
                                      ({"temperature": [-1.0]}, "temperature"),
                                      ({"colour": "red"}, "colour")])
def test_cli_bad_study_file(tmp_path, capsys, over, key):
    study = _study_file(tmp_path / "bad.yaml", **over)
    assert main(["converge", study, "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qgtflow: error:")]
    assert len(err) == 1 and f"'{key}'" in err[0] and "bad.yaml" in err[0], err
    assert not (tmp_path / "o").exists()


def test_cli_bad_options(tmp_path, capsys):
    study = _study_file(tmp_path / "dirac.yaml")
    for args, text in ((["--rtol", "-1"], "--rtol -1.0"), (["--max-rounds", "2"], "--max-rounds 2"),
                       (["--zero", "sigma_drude"], "--zero sigma_drude")):
        assert main(["converge", study, "--out", str(tmp_path / "o"), *args]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qgtflow: error:")]
        assert len(err) == 1 and text in err[0], err


def test_symmetry_zeros_do_not_hold_up_the_stopping_criterion(tmp_path):
    """Without any floor the round-off zeros xy, yx of σ_drude never meet rtol·|value|: named with --zero they
    are residuals and the run still stops when the real entries converge."""
    study = {**STUDY, "responses": ["sigma_drude"], "convergence": {"rtol": 1e-4, "atol_fraction": 1e-300}}
    plain = converge(study, n_workers=0, max_rounds=4, workdir=str(tmp_path / "w"))
    assert not plain.converged and {plain.entry("sigma_drude", c)["verdict"] for c in ("xy", "yx")} == {"not converged"}
    zero = converge(study, n_workers=0, max_rounds=4, workdir=str(tmp_path / "w"),
                    zero_components={"sigma_drude": ["xy", "yx"]})
    assert zero.converged and zero.n_entries == 2 and zero.stop_reason == "all entries converged"
    assert zero.n_densities <= plain.n_densities
