"""Monkhorst–Pack grids at library level: anisotropic sizes and per-axis shifts."""

import numpy as np
import pytest

from qgtflow.errors import ConfigError
from qgtflow.kgrid import make_grid
from qgtflow.study import load_study

STUDY = {"name": "s", "model": {"name": "haldane"}, "kgrid": {"sizes": [4]}, "mu": [0.0], "temperature": [10.0],
         "responses": ["sigma_ahe"]}


def test_per_axis_shift_from_the_study():
    st = load_study({**STUDY, "kgrid": {"sizes": [4], "shift": [0.5, 0.0]}})
    grid = st.make_grid(4)
    frac = grid.points() @ np.linalg.inv(grid.basis) * 4  # grid indices + shift
    np.testing.assert_allclose(np.sort(np.unique(np.round(frac[:, 0], 12))), [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(np.sort(np.unique(np.round(frac[:, 1], 12))), [0, 1, 2, 3], atol=1e-12)
    with pytest.raises(ConfigError, match="kgrid.shift"):
        load_study({**STUDY, "kgrid": {"sizes": [4], "shift": [0.5, 0.0, 0.1]}})


def test_anisotropic_grid_integrates_exactly():
    """3×3×4 Monkhorst–Pack grid, shifted: Σ w = 1/V_cell and a lattice-periodic cosine sums to zero."""
    from tests.test_geometry_degenerate import p_orbital_model

    model = p_orbital_model()
    grid = make_grid(model, [3, 3, 4], shift=[0.5, 0.0, 0.5])
    assert grid.sizes == (3, 3, 4) and grid.n_points == 36
    k = grid.points()
    np.testing.assert_allclose(grid.weight * grid.n_points * (2 * np.pi) ** 3, abs(np.linalg.det(grid.basis)))
    np.testing.assert_allclose(np.cos(k @ np.array([0.0, 0.0, 1.0])).sum(), 0, atol=1e-12)
    np.testing.assert_allclose(np.cos(k @ np.array([1.0, 0.0, 0.0])).sum(), 0, atol=1e-12)


def test_evaluate_on_an_anisotropic_grid(tmp_path):
    """evaluate(size=(n1, n2, n3)): a 3×3×4 grid of the bcc-Fe-like model, equal to the direct Fermi sum."""
    from qgtflow.api import evaluate
    from tests.test_real_material import STUDY, direct_ahc

    study = {**STUDY, "mu": [0.5]}
    ds = evaluate(study, size=(3, 3, 4), n_workers=0, workdir=tmp_path)
    assert list(ds.attrs["grid_sizes"]) == [3, 3, 4]
    direct = direct_ahc(study, (3, 3, 4), [0.5])
    np.testing.assert_allclose(ds["sigma_ahe"].values[:, 0, 0, 1], direct, rtol=1e-6, atol=1e-8 * np.abs(direct).max())
    assert abs(direct[0]) > 1e3


def test_anisotropic_sizes_in_a_study_file():
    """kgrid.sizes entries of one number per axis: validated (order, one per axis) and labelled n3x3x4 in the plan."""
    from qgtflow import gridsize
    from qgtflow.plan import WorkflowPlan, grid_chain
    from tests.test_real_material import STUDY as FE

    st = load_study({**FE, "kgrid": {"sizes": [[3, 3, 4], 5, [6, 6, 8]]}})
    assert st.sizes == [(3, 3, 4), 5, (6, 6, 8)]
    assert st.make_grid(st.sizes[0]).n_points == 36
    assert [gridsize.label(s) for s in st.sizes] == ["3x3x4", "5", "6x6x8"]
    assert gridsize.parse("3x3x4") == (3, 3, 4) and gridsize.parse("8") == 8
    assert grid_chain(st, (3, 3, 4))["kgrid"]["size"] == [3, 3, 4]
    plan = WorkflowPlan({"studies": {"fe": {**FE, "kgrid": {"sizes": [[3, 3, 4], [6, 6, 8]]}}}})
    assert plan.sizes("fe") == ["3x3x4", "6x6x8"]
    assert "geometry fe n3x3x4" in plan.jobs()
    assert plan.job_params("geometry fe n6x6x8") == grid_chain(plan.study("fe"), (6, 6, 8))["geometry"]
    for bad, fragment in (([[3, 3, 4], [3, 3, 4]], "increasing"), ([[4, 4, 4], [6, 6, 3]], "increasing"),
                          ([[3, 3], [4, 4]], "3 sizes"), ([[3, 3, 1]], ">= 2")):
        with pytest.raises(ConfigError, match=fragment):
            load_study({**FE, "kgrid": {"sizes": bad}})


def test_evaluate_defaults_to_the_finest_anisotropic_size(tmp_path):
    from qgtflow.api import evaluate
    from tests.test_real_material import STUDY as FE

    ds = evaluate({**FE, "mu": [0.5], "kgrid": {"sizes": [2, [3, 3, 4]]}}, n_workers=0, workdir=tmp_path)
    assert list(ds.attrs["grid_sizes"]) == [3, 3, 4]
