"""Fermi-surface-only studies compute the geometry only where a state reaches the Fermi window
(qgtflow.geometry.fermi_window): the responses are those of the full store, to 1e-12, at several μ and T, with
point and tetrahedron integration; Fermi-sea requests keep every state; the window is a plan value."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from qgtflow import io
from qgtflow.geometry import fermi_window
from qgtflow.plan import grid_chain, stage_study
from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
from qgtflow.study import load_study

SURFACE = ["sigma_drude", "sigma_bcd", "sigma_nonlinear_drude"]
HALDANE = {"name": "haldane", "params": {"mass": 0.2}}
TILTED = {"name": "tilted_dirac", "params": {"tilt": 0.3, "mass": 0.1}}
FE_LIKE = {"name": "fe_like", "wannier90": {"tb": "qgtflow:fe_like_tb.dat"}}


def study(model, mu, temperature, integration="points", responses=SURFACE, **extra):
    cfg = {"name": "fw", "model": model, "mu": mu, "temperature": temperature, "responses": responses,
           "fermi_form": "surface", "integration": integration, "kgrid": {"sizes": [8], "chunk_size": 256}, **extra}
    if model is FE_LIKE:
        cfg["units"] = {"length": "angstrom"}
    return load_study(cfg)


def responses(st, size, tmp_path, window: bool, min_skippable=None):
    """The study's responses on one grid, its geometry with (the plan's) or without the Fermi window
    (``min_skippable``: the chunks' skip decision, fermi_window.fields_in_window)."""
    chain = copy.deepcopy(grid_chain(st, size))
    if not window:
        chain["geometry"]["fermi_window"] = None
    elif min_skippable is not None:
        chain["geometry"]["fermi_window"]["min_skippable"] = min_skippable
    tag = ("on" if window else "off") + ("" if min_skippable is None else f"_{min_skippable}")
    kg, geo = tmp_path / f"kgrid_{tag}.zarr", tmp_path / f"geometry_{tag}.zarr"
    kgrid_stage.run(st, size, kg, job=chain["kgrid"])
    geometry_stage.run(st, kg, geo, n_workers=0, job=chain["geometry"])
    reduce_study = stage_study("reduce", chain["reduce"], where=st.where)
    return reduce_stage.run(reduce_study, geo, None, n_workers=0, job=chain["reduce"]), io.open_store(geo)


def assert_same(st, size, tmp_path):
    """Responses identical to 1e-12 (relative to each tensor's largest entry); some k-points skipped."""
    on, geo = responses(st, size, tmp_path, True)
    off, _ = responses(st, size, tmp_path, False)
    for name in st.responses:
        a, b = on[name].values, off[name].values
        assert np.abs(a - b).max() <= 1e-12 * max(np.abs(b).max(), 1e-300), name
    flag = geo[fermi_window.FLAG].values
    assert set(np.unique(flag)) == {0, 1}  # the window cut something, kept something
    assert geo.attrs["fermi_window"] == grid_chain(st, size)["geometry"]["fermi_window"]["energy"]
    skipped = flag == 0
    assert np.all(geo["velocity"].values[skipped] == 0.0)  # stored 0, finite, labelled
    assert np.all(np.isfinite(geo["energy"].values))
    return flag.mean()


@pytest.mark.parametrize("model, mu, temperature, size", [
    (HALDANE, [0.3, 0.45], [30.0, 150.0], 32),
    (TILTED, [0.15, 0.25], [20.0, 60.0], 32),
])
def test_points_identical(model, mu, temperature, size, tmp_path):
    assert_same(study(model, mu, temperature), size, tmp_path)


@pytest.mark.parametrize("model, mu, temperature, size", [
    (HALDANE, [0.35], [0.0, 40.0], 24),
    (TILTED, [0.2, 0.3], [0.0], 24),
])
def test_tetrahedron_identical(model, mu, temperature, size, tmp_path):
    assert_same(study(model, mu, temperature, "tetrahedron", energy_resolution=1e-4), size, tmp_path)


def test_fe_like_wannier_model(tmp_path):
    """The 3D bcc-Fe-like Wannier90 model (6 bands, spin-orbit), points and tetrahedra."""
    assert_same(study(FE_LIKE, [1.9, 2.0], [10.0, 20.0]), 8, tmp_path / "points")
    assert_same(study(FE_LIKE, [2.5], [0.0], "tetrahedron", energy_resolution=1e-4), 10, tmp_path / "cells")


def test_cells_cover_every_cell_reaching_the_window():
    """Tetrahedra: every vertex of every cell whose band range meets the window is kept, on a periodic grid and
    a k·p window, against a direct enumeration of the cells."""
    import itertools

    for model_cfg, size in [(HALDANE, 12), (TILTED, 10)]:
        st = study(model_cfg, [0.3], [0.0], "tetrahedron", energy_resolution=1e-4)
        grid = st.make_grid(size)
        window = [0.25, 0.35]
        keep = fermi_window.needed_cells(st.model, grid, 0, grid.n_points, window, 0.0)
        energy = fermi_window.band_energies(st.model, grid.points())
        for base in itertools.product(*(range(n) for n in grid.sizes)):
            if grid.kind == "window" and any(b == n - 1 for b, n in zip(base, grid.sizes)):
                continue
            corners = [np.ravel_multi_index(tuple(b + o for b, o in zip(base, off)), grid.sizes, mode="wrap")
                       for off in itertools.product((0, 1), repeat=grid.dim)]
            e = energy[corners]
            if ((e.min(axis=0) < window[1]) & (e.max(axis=0) >= window[0])).any():
                assert keep[corners].all(), base


def test_band_energies_follow_the_kernel(lattice_model):
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models import build_model

    for model in (lattice_model, build_model("snte_surface_dirac", {})):
        k = np.random.default_rng(0).uniform(-1, 1, (50, model.dim))
        kernel = compute_fields(model, k, core=("energy",))["energy"]
        assert np.abs(fermi_window.band_energies(model, k) - kernel).max() < 1e-12


def test_sea_requests_keep_every_state():
    assert fermi_window.energy_window(study(HALDANE, [0.3], [50.0], responses=["sigma_drude", "sigma_ahe"])) is None
    assert fermi_window.energy_window(study(HALDANE, [0.3], [50.0], responses=["sigma_bcd"],
                                            fermi_form="sea")) is None
    window = fermi_window.energy_window(study(HALDANE, [0.3], [50.0]))
    assert window["cells"] is False and window["energy"][0] < 0.3 < window["energy"][1]


def test_window_is_the_declared_input():
    """μ inside the window and a lower T keep the geometry job; a μ or T that moves the window changes it."""
    def params(mu, temperature):
        return grid_chain(study(HALDANE, mu, temperature), 8)["geometry"]

    base = params([0.2, 0.4], [50.0])
    assert params([0.2, 0.3, 0.4], [20.0, 50.0]) == base
    assert params([0.2, 0.5], [50.0])["fermi_window"] != base["fermi_window"]
    assert params([0.2, 0.4], [80.0])["fingerprint"] != base["fingerprint"]


@pytest.mark.parametrize("integration, size", [("points", 32), ("tetrahedron", 24)])
def test_skip_decision_leaves_the_responses_unchanged(integration, size, tmp_path):
    """A chunk with too little to skip is computed at every point (flag 1 throughout); forced either way, the
    responses equal those of the run without the window to 1e-12."""
    extra = {"energy_resolution": 1e-4} if integration == "tetrahedron" else {}
    st = study(HALDANE, [0.35], [0.0, 40.0] if integration == "tetrahedron" else [30.0], integration, **extra)
    off, _ = responses(st, size, tmp_path, False)
    flags = {}
    for min_skippable in (0.0, 2.0):  # always through the window / never
        on, geo = responses(st, size, tmp_path, True, min_skippable)
        flags[min_skippable] = geo[fermi_window.FLAG].values
        for name in st.responses:
            a, b = on[name].values, off[name].values
            assert np.abs(a - b).max() <= 1e-12 * max(np.abs(b).max(), 1e-300), (name, min_skippable)
    assert set(np.unique(flags[0.0])) == {0, 1} and np.all(flags[2.0] == 1)


def test_the_skip_decision_follows_the_sample():
    """The sample's skippable fraction against the threshold of the fields' kernel level."""
    from qgtflow.models import build_model

    model = build_model("haldane", {"mass": 0.2})
    k = np.random.default_rng(4).uniform(-np.pi, np.pi, (640, 2))
    energy = fermi_window.band_energies(model, k[::fermi_window.SAMPLE_STRIDE])
    window = [float(energy.max()) + 1.0, float(energy.max()) + 2.0]  # above every band: all skippable
    assert fermi_window.worth_skipping(model, k, window, 1e-8, 1.0)
    window = [float(energy.min()) - 1.0, float(energy.max()) + 1.0]  # every state inside: nothing skippable
    assert not fermi_window.worth_skipping(model, k, window, 1e-8, 0.01)
    assert fermi_window.field_level(["energy", "berry_curvature"]) == 1
    assert fermi_window.field_level(["berry_curvature_dipole_density"]) == 3
