"""Convergence numerics and stage, on synthetic responses stores with known h -> 0 limits."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from qgtflow import convergence as cv
from qgtflow.stages import convergence_stage
from qgtflow.errors import StoreError

AXES = ["x", "y"]
MU = np.linspace(-0.2, 0.2, 5)
TEMPS = np.array([10.0, 100.0])


def spacing(n: int) -> float:
    return 2 * np.pi / n  # |b| / N for a unit square lattice


def limits(rng_seed: int = 1):
    """Known h -> 0 limits c and prefactors a for sigma_qm (mu, T, i, j, k) and sigma_drude (mu, T, i, j).

    sigma_qm: only xyy, yxx, xxx non-zero (others vanish 'by symmetry');
    sigma_drude: diagonal only."""
    rng = np.random.default_rng(rng_seed)
    shape3 = (MU.size, TEMPS.size, 2, 2, 2)
    c3 = np.zeros(shape3)
    a3 = np.zeros(shape3)
    for idx in [(0, 1, 1), (1, 0, 0), (0, 0, 0)]:
        c3[(..., *idx)] = rng.uniform(1.0, 2.0, (MU.size, TEMPS.size)) * 1e-6
        a3[(..., *idx)] = rng.uniform(-1.0, 1.0, (MU.size, TEMPS.size)) * 1e-7
    c2 = np.zeros((MU.size, TEMPS.size, 2, 2))
    a2 = np.zeros_like(c2)
    for d in range(2):
        c2[..., d, d] = rng.uniform(1.0, 3.0, (MU.size, TEMPS.size))
        a2[..., d, d] = rng.uniform(0.1, 0.5, (MU.size, TEMPS.size))
    return c3, a3, c2, a2


def write_store(path: Path, n: int, sigma_qm, sigma_drude, *, study="s1", complete=True, variant=None) -> str:
    data = {
        "sigma_qm": (("mu", "T", "i", "j", "k"), sigma_qm,
                     {"units": "A V^-2", "long_name": "quantum-metric second-order conductivity",
                      "formula": "...", "form": "sea"}),
        "sigma_drude": (("mu", "T", "i", "j"), sigma_drude,
                        {"units": "S", "long_name": "Drude conductivity", "formula": "...", "form": "surface"}),
    }
    coords = {"mu": ("mu", MU, {"units": "eV", "long_name": "chemical potential"}),
              "T": ("T", TEMPS, {"units": "K", "long_name": "temperature"}),
              "i": AXES, "j": AXES, "k": AXES}
    if variant is not None:
        data["sigma_qm_variant"] = (("variant", "mu", "T", "i", "j", "k"), variant, {"units": "A V^-2",
                                                                                     "long_name": "variants"})
        coords["variant"] = ["wpd", "lka", "qk"]
    ds = xr.Dataset(data, coords=coords, attrs={
        "study": study, "model": "massive_dirac", "model_hash": "abc123", "grid_sizes": [n, n],
        "n_kpoints": n * n, "grid_spacing": spacing(n), "unit_system": "physical", "qgtflow_complete": complete})
    with warnings.catch_warnings():  # zarr v3: fixed-width strings, consolidated metadata
        warnings.simplefilter("ignore")
        ds.to_zarr(path, mode="w")
    return str(path)


def make_stores(tmp_path: Path, sizes, p: float, *, noise: float = 0.0, study="s1", seed=1, with_variant=False):
    c3, a3, c2, a2 = limits()
    rng = np.random.default_rng(seed)
    paths = []
    for n in sizes:
        h = spacing(n)
        qm = c3 + a3 * h**p
        # entries that vanish by symmetry carry round-off noise only
        qm = np.where(c3 == 0, 1e-22 * rng.standard_normal(qm.shape), qm)
        if noise:
            qm = qm * (1 + noise * rng.standard_normal(qm.shape))
        drude = c2 + a2 * h**p
        variant = np.stack([qm, 1.01 * qm, 0.99 * qm]) if with_variant else None
        d = tmp_path / study / f"n{n}"
        d.mkdir(parents=True, exist_ok=True)
        paths.append(write_store(d / "responses.zarr", n, qm, drude, study=study, variant=variant))
    return paths, (c3, a3, c2, a2)


def study_stub(name="s1", rtol=1e-2, atol=0.0):
    return SimpleNamespace(name=name, config={"convergence": {"rtol": rtol, "atol": atol}})


# --------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("p", [0.8, 1.0, 2.0, 3.5, 6.0])
def test_power_law_recovered_nonuniform_grids(p):
    h = np.array([spacing(n) for n in (16, 24, 40)])
    c = np.array([1.0, -2.5, 3e-7])
    a = np.array([0.7, 2.0, -1e-7])
    v = c + a * h[:, None] ** p
    r = cv.extrapolate(h, v)
    np.testing.assert_allclose(r.value, c, rtol=1e-9, atol=0)
    np.testing.assert_allclose(r.order, p, rtol=1e-6)
    assert np.all(r.method == cv.FITTED)
    # the error bar covers the true error of the finest value and is not absurdly large
    assert np.all(r.error >= np.abs(v[-1] - c))
    assert np.all(r.error <= 2 * np.abs(v[-1] - c) + 1e-15)


def test_order_uses_last_three_and_previous_triplet_widens_error():
    h = np.array([spacing(n) for n in (8, 16, 24, 32)])
    v = 1.0 + 0.5 * h**2
    r = cv.extrapolate(h[::-1], v[::-1])  # unsorted input is sorted internally
    assert r.value == pytest.approx(1.0, rel=1e-12) and r.order == pytest.approx(2.0, rel=1e-8)
    tight = r.error
    v_bad = v.copy()
    v_bad[0] += 0.3  # coarsest grid far from the asymptotic regime
    r2 = cv.extrapolate(h, v_bad)
    assert r2.value == pytest.approx(1.0, rel=1e-12)  # last three still exact
    assert r2.error > 1.5 * tight


def test_order_ratio_is_monotone():
    h = np.array([3.0, 2.2, 1.0])
    g = cv._order_ratio(h, np.linspace(cv.P_MIN, cv.P_MAX, 500))
    assert np.all(np.diff(g) > 0)


def test_two_densities_assume_order_two():
    h = np.array([spacing(32), spacing(48)])
    v = 2.0 - 0.3 * h**2
    r = cv.extrapolate(h, v)
    assert r.value == pytest.approx(2.0, rel=1e-12)
    assert r.order == 2.0 and r.method == cv.ASSUMED
    assert r.error == pytest.approx(3 * abs(v[-1] - 2.0))


def test_single_density_and_nan_are_insufficient():
    a = cv.assess(np.array([0.1]), np.array([[1.0, 2.0]]), rtol=0.5)
    assert np.all(a.verdict == cv.INSUFFICIENT)
    b = cv.assess(np.array([0.3, 0.2, 0.1]), np.array([[1.0, np.nan], [1.0, 1.0], [1.0, 1.0]]), rtol=0.5)
    assert list(b.verdict) == [cv.CONVERGED, cv.INSUFFICIENT]


def test_oscillating_sequence_has_no_order_and_honest_error():
    h = np.array([0.3, 0.2, 0.1])
    r = cv.extrapolate(h, np.array([1.0, 1.2, 1.05]))
    assert np.isnan(r.order) and r.method == cv.OSCILLATING
    assert r.value == 1.05 and r.error == pytest.approx(0.15)


def test_slow_convergence_is_clipped_and_not_converged():
    h = np.array([0.3, 0.2, 0.1])
    v = 1.0 + np.log(h) * 0.01  # slower than any power: order below P_MIN range
    a = cv.assess(h, v[:, None] * np.ones(3), rtol=1e-3)
    assert np.all(a.result.order >= cv.P_MIN) and np.all(a.result.order <= cv.P_MAX)
    assert np.all(a.verdict == cv.NOT_CONVERGED)


def test_atol_floor_for_vanishing_entries():
    h = np.array([0.3, 0.2, 0.1])
    big = 1.0 + 0.1 * h**2
    tiny = np.array([3e-19, -2e-19, 1e-19])  # round-off around zero
    v = np.stack([big, tiny], axis=1)
    a = cv.assess(h, v, rtol=1e-9)
    assert list(a.verdict) == [cv.NOT_CONVERGED, cv.CONVERGED]
    assert np.isnan(a.relative_error[1])  # no relative error for a vanishing entry
    b = cv.assess(h, v, rtol=1e-9, atol_fraction=0.0)  # without the floor the zero fails
    assert list(b.verdict) == [cv.NOT_CONVERGED, cv.NOT_CONVERGED]


def test_floor_never_certifies_a_nonzero_entry():
    """Issue 16: with a floor of 1e-3 of the largest entry, an entry of 0.02 whose error bar (~2e-4) exceeds
    rtol·|value| = 2e-6 is not converged (the old max(rtol·|value|, floor) passed it); a noisy symmetry zero
    (|value| and error below the floor) is."""
    h = np.array([0.3, 0.2, 0.1])
    big = 1.0 + 0.1 * h**2
    small = 0.02 + 0.02 * h**2
    noise = np.array([4e-4, -3e-4, 2e-4])
    v = np.stack([big, small, noise], axis=1)
    a = cv.assess(h, v, rtol=1e-4, atol_fraction=1e-3)
    assert a.atol_effective == pytest.approx(1e-3 * big[-1])
    assert a.result.error[1] < a.atol_effective  # the old rule max(rtol|v|, floor) would have passed it
    assert list(a.verdict) == [cv.NOT_CONVERGED, cv.NOT_CONVERGED, cv.CONVERGED]


def test_check_objects():
    r = cv.extrapolate(np.array([0.2, 0.1]), np.array([[1.0, 5.0], [1.0, 4.0]]))
    check = cv.ToleranceCheck(rtol=0.1).update(r)
    assert list(check.converged) == [True, False]
    assert cv.DataCheck().update(r).converged.all()
    with pytest.raises(ValueError):
        cv.ToleranceCheck(rtol=0.0)


# --------------------------------------------------------------------------- stage


def test_stage_recovers_limits_and_order(tmp_path):
    p = 2.5
    paths, (c3, a3, c2, a2) = make_stores(tmp_path, [48, 24, 64, 32], p, with_variant=True)  # unsorted input
    out = tmp_path / "conv"
    convergence_stage.run(study_stub(rtol=1e-2), paths, str(out))
    ds = xr.open_zarr(out / "convergence.zarr")
    assert ds.attrs["qgtflow_complete"] is True
    assert list(ds["size"].values) == [24, 32, 48, 64]
    assert np.all(np.diff(ds["grid_spacing"].values) < 0)
    ext = ds["sigma_qm_extrapolated"].transpose("mu", "T", "i", "j", "k").values
    nz = c3 != 0
    np.testing.assert_allclose(ext[nz], c3[nz], rtol=1e-8)
    order = ds["sigma_qm_order"].transpose("mu", "T", "i", "j", "k").values
    np.testing.assert_allclose(order[nz & (a3 != 0)], p, rtol=1e-5)
    np.testing.assert_allclose(ds["sigma_drude_extrapolated"].transpose("mu", "T", "i", "j").values[c2 != 0],
                               c2[c2 != 0], rtol=1e-10)
    np.testing.assert_allclose(ds["sigma_drude_order"].values[ds["sigma_drude_extrapolated"].values > 0], p, rtol=1e-6)
    verdict = ds["sigma_qm_verdict"].transpose("mu", "T", "i", "j", "k").values
    assert np.all(verdict == cv.CONVERGED)  # small prefactors, generous rtol; zeros via the floor
    assert ds["sigma_qm_values"].sizes["size"] == 4
    assert ds["sigma_qm_extrapolated"].attrs["units"] == "A V^-2"
    assert "sigma_qm_variant_verdict" in ds
    # plots
    for name in ("conv_sigma_qm.png", "mu_sigma_qm.png", "conv_sigma_drude.png", "mu_sigma_qm_variant.png"):
        assert (out / name).stat().st_size > 1000, name


def test_stage_tiny_rtol_and_noise_give_not_converged(tmp_path):
    paths, (c3, *_ ) = make_stores(tmp_path, [24, 32, 48], 2.0)
    out = tmp_path / "tight"
    convergence_stage.run(study_stub(rtol=1e-9), paths, str(out), plots=False)
    table = pd.read_csv(out / "convergence.csv", keep_default_na=False)
    qm = table[table.response == "sigma_qm"]
    nonzero = qm[qm.component.isin(["xyy", "yxx", "xxx"])]
    vanishing = qm[~qm.component.isin(["xyy", "yxx", "xxx"])]
    assert (nonzero.verdict == "not converged").all()
    assert (vanishing.verdict == "converged").all()  # atol floor: 1e-6 × max |sigma_qm|

    noisy, _ = make_stores(tmp_path / "noisy", [24, 32, 48], 2.0, noise=0.02, seed=7)
    out2 = tmp_path / "noisy_out"
    convergence_stage.run(study_stub(rtol=1e-3), noisy, str(out2), plots=False)
    t2 = pd.read_csv(out2 / "convergence.csv", keep_default_na=False)
    sig = t2[(t2.response == "sigma_qm") & t2.component.isin(["xyy", "yxx", "xxx"])]
    assert (sig.verdict == "not converged").mean() > 0.9


def test_csv_rows(tmp_path):
    paths, (c3, a3, c2, a2) = make_stores(tmp_path, [24, 32, 48], 2.0, with_variant=True)
    out = tmp_path / "conv"
    convergence_stage.run(study_stub(), paths, str(out), plots=False)
    t = pd.read_csv(out / "convergence.csv", keep_default_na=False)
    for col in ("response", "component", "mu", "T", "n_points_finest", "value_finest", "extrapolated", "error",
                "order", "verdict"):
        assert col in t.columns
    counts = t.response.value_counts().to_dict()
    assert counts == {"sigma_qm": 5 * 2 * 8, "sigma_drude": 5 * 2 * 4, "sigma_qm_variant": 3 * 5 * 2 * 8}
    assert set(t[t.response == "sigma_drude"].component) == {"xx", "xy", "yx", "yy"}
    assert set(t[t.response == "sigma_qm_variant"].variant) == {"wpd", "lka", "qk"}
    assert (t.n_points_finest == 48 * 48).all()
    row = t[(t.response == "sigma_qm") & (t.component == "xyy") & np.isclose(t.mu, MU[1]) & np.isclose(t["T"], 100.0)]
    assert len(row) == 1
    assert row.extrapolated.iloc[0] == pytest.approx(c3[1, 1, 0, 1, 1], rel=1e-8)
    assert row.value_finest.iloc[0] == pytest.approx(c3[1, 1, 0, 1, 1] + a3[1, 1, 0, 1, 1] * spacing(48) ** 2,
                                                     rel=1e-9)
    assert set(t.verdict) <= {"converged", "not converged", "insufficient data"}


def test_one_store_is_insufficient(tmp_path):
    paths, _ = make_stores(tmp_path, [32], 2.0)
    out = tmp_path / "one"
    convergence_stage.run(study_stub(), paths, str(out))
    t = pd.read_csv(out / "convergence.csv", keep_default_na=False)
    assert (t.verdict == "insufficient data").all()
    assert (out / "mu_sigma_qm.png").exists()


def test_bad_stores_raise(tmp_path):
    paths, _ = make_stores(tmp_path, [24, 32], 2.0)
    c3, a3, c2, a2 = limits()
    bad = write_store(tmp_path / "incomplete.zarr", 48, c3, c2, complete=False)
    with pytest.raises(StoreError, match="incomplete"):
        convergence_stage.run(study_stub(), paths + [bad], str(tmp_path / "o"))
    with pytest.raises(StoreError, match="does not exist"):
        convergence_stage.run(study_stub(), paths + [str(tmp_path / "nope.zarr")], str(tmp_path / "o"))
    other = write_store(tmp_path / "other.zarr", 48, c3, c2, study="s2")
    with pytest.raises(StoreError, match="study"):
        convergence_stage.run(study_stub(), paths + [other], str(tmp_path / "o"))


def test_atol_fraction_makes_noisy_symmetry_zeros_count_as_zero(tmp_path):
    """Symmetry zeros with grid noise of ~1e-5 of the response's scale: not converged with the default floor
    (1e-6 × largest), converged with convergence.atol_fraction = 1e-3; the real entries are unaffected."""
    c3, a3, c2, a2 = limits()
    rng = np.random.default_rng(3)
    paths = []
    for n in (24, 32, 48):
        h = spacing(n)
        qm = np.where(c3 == 0, 2e-11 * rng.standard_normal(c3.shape), c3 + a3 * h ** 2)
        d = tmp_path / f"n{n}"
        d.mkdir(parents=True, exist_ok=True)
        paths.append(write_store(d / "responses.zarr", n, qm, c2 + a2 * h ** 2))
    verdicts = {}
    for fraction in (None, 1e-3):
        stub = study_stub(rtol=1e-2)
        if fraction:
            stub.config["convergence"]["atol_fraction"] = fraction
        out = tmp_path / f"out{fraction}"
        convergence_stage.run(stub, paths, str(out), plots=False)
        t = pd.read_csv(out / "convergence.csv", keep_default_na=False)
        qm = t[t.response == "sigma_qm"]
        verdicts[fraction] = (qm[~qm.component.isin(["xyy", "yxx", "xxx"])].verdict == "converged").mean(), \
            (qm[qm.component.isin(["xyy", "yxx", "xxx"])].verdict == "converged").all()
        assert xr.open_zarr(out / "convergence.zarr").attrs["atol_fraction"] == (fraction or 1e-6)
    assert verdicts[None][0] < 0.5 and verdicts[1e-3][0] == 1.0
    assert verdicts[None][1] and verdicts[1e-3][1]


def test_window_that_cuts_a_fermi_surface_fails_the_verdict(tmp_path):
    """Issue 16: tilted Dirac t = 0.6 at μ = −3 has its valence Fermi line out to kx = 7.5; a window kmax = 5
    cuts it (3.6 % low, no grid refinement helps): those entries are not converged, μ = 1 is unaffected."""
    from qgtflow.api import evaluate
    from qgtflow.study import load_study

    study = load_study({"name": "cut", "units": "natural", "kgrid": {"sizes": [32, 48, 64], "kmax": 5.0},
                        "model": {"name": "tilted_dirac", "params": {"v": 1.0, "tilt": 0.6, "mass": 0.1}},
                        "mu": [-3.0, 1.0], "temperature": [0.05], "tau": 1.0, "responses": ["sigma_drude"],
                        "integration": "tetrahedron", "convergence": {"rtol": 0.05}})
    faces = cv.window_edge_energies(study.model, study.make_grid(32))
    assert cv.window_cuts(faces, [-3.0, 1.0], [0.05]).tolist() == [[True], [False]]
    assert cv.window_cuts(faces, [1.0], [0.2]).tolist() == [[True]]  # edge within 10 k_BT of μ
    paths = []
    for n in study.sizes:
        path = tmp_path / f"n{n}.zarr"
        evaluate(study, size=n, out=str(path), n_workers=0, workdir=str(tmp_path / f"w{n}"))
        paths.append(str(path))
    convergence_stage.run(study, paths, str(tmp_path / "conv"), plots=False)
    t = pd.read_csv(tmp_path / "conv" / "convergence.csv", keep_default_na=False)
    xx = t[(t.response == "sigma_drude") & (t.component == "xx")]
    assert (xx[xx.mu == -3.0].verdict == "not converged").all()
    assert (xx[xx.mu == 1.0].verdict == "converged").all()


def test_plots_keep_every_text_inside_the_figure_and_a_unicode_offset(tmp_path):
    """The figures are laid out once (tight_layout, no layout engine): wrapped two-line axis labels, titles,
    suptitle, legend and the y offset text stay inside the figure; the offset is '×10⁻⁶' in plain text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    paths, _ = make_stores(tmp_path, [24, 32, 48], 2.0)
    stores = convergence_stage.load_stores(paths)
    rc = convergence_stage.analyse_response(stores, "sigma_qm", 1e-2, 0.0)
    rc.attrs["long_name"] = "quantum-metric second-order conductivity of a long descriptive name"
    assert "\n" in convergence_stage.axis_label(rc.attrs, rc.name)
    mu_attrs, t_attrs = dict(stores[-1].ds["mu"].attrs), dict(stores[-1].ds["T"].attrs)
    figs = [convergence_stage.plot_convergence(rc, mu_attrs, t_attrs, tmp_path / "c.png"),
            convergence_stage.plot_vs_mu(rc, mu_attrs, t_attrs, tmp_path / "m.png", "48×48 k-points"),
            convergence_stage.plot_vs_t(rc, mu_attrs, t_attrs, tmp_path / "t.png")]
    for fig in figs:
        assert fig.get_layout_engine() is None
        renderer = FigureCanvasAgg(fig).get_renderer()
        drawn = fig.get_tightbbox(renderer)  # inches: every drawn text (tick labels in view only), legends, titles
        width, height = fig.get_size_inches()
        assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01, drawn
        assert drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, drawn
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        assert any("\n" in t.get_text() for t in texts)
        offsets = {ax.yaxis.get_offset_text().get_text() for ax in fig.axes}
        assert offsets == {"×10⁻⁶"}, offsets
        assert not any("$" in t.get_text() for t in texts)  # no mathtext to parse
