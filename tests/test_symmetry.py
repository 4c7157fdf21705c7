"""Point groups of declared crystals (spglib, magnetic moments from the user) and the components they forbid,
used by the convergence verdicts of `qgtflow converge` (issue 18 item 5)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("spglib")

from qgtflow.models.symmetry import crystal_operations, forbidden_components  # noqa: E402
from tests.data.make_fe_like import LATTICE as FE_LATTICE  # noqa: E402

FE = [["Fe", 0.0, 0.0, 0.0]]
ALL2 = ["xx", "xy", "xz", "yx", "yy", "yz", "zx", "zy", "zz"]


def test_bcc_fe_with_a_moment_along_z_allows_only_sigma_xy():
    """4/mm'm' (moment ∥ z): the AHE has only σ_xy = −σ_yx; without the moment time reversal forbids it all;
    inversion forbids every second-order conductivity; cubic Drude is diagonal."""
    magnetic = crystal_operations(FE_LATTICE, FE, [[0.0, 0.0, 2.2]])
    plain = crystal_operations(FE_LATTICE, FE)
    assert len(magnetic) == 16 and len(plain) == 96  # 4/mm'm' (8 unitary + 8 with θ); m-3m × {1, θ}
    assert sorted(set(ALL2) - set(forbidden_components("sigma_ahe", magnetic, 3))) == ["xy", "yx"]
    assert forbidden_components("sigma_ahe", plain, 3) == ALL2
    assert len(forbidden_components("sigma_bcd", magnetic, 3)) == 27
    assert sorted(set(ALL2) - set(forbidden_components("sigma_drude", plain, 3))) == ["xx", "yy", "zz"]
    assert forbidden_components("spin_sigma_lin_tau1", plain, 3) is None  # not classified: nothing claimed


def test_forbidden_components_vanish_in_the_computed_ahc(tmp_path):
    """The Fe-like Wannier model (moment ∥ z): every component the magnetic group forbids is zero in the AHC
    qgtflow computes, and the allowed one is not."""
    from qgtflow.api import evaluate
    from tests.test_real_material import STUDY

    ds = evaluate({**STUDY, "mu": [0.5], "kgrid": {"sizes": [6]}}, n_workers=0, workdir=tmp_path)
    s = ds["sigma_ahe"].sel(mu=0.5).isel(T=0)
    zero = forbidden_components("sigma_ahe", crystal_operations(FE_LATTICE, FE, [[0, 0, 1.0]]), 3)
    scale = float(np.abs(s).max())
    assert abs(float(s.sel(i="x", j="y"))) > 0.1 * scale
    for label in zero:
        assert abs(float(s.sel(i=label[0], j=label[1]))) < 1e-9 * scale, label


def test_layer_keeps_the_in_plane_operations():
    """Honeycomb layer (two C, 2D lattice of the built-in Haldane model): C3 makes the Drude tensor isotropic."""
    from qgtflow.models.builtin import build_model

    model = build_model("haldane", {})
    ops = crystal_operations(model.lattice, [["C", 0, 0, 0], ["C", 1 / 3, 1 / 3, 0]])
    assert all(R.shape == (2, 2) for R, _ in ops)
    assert forbidden_components("sigma_drude", ops, 2) == ["xy", "yx"]
    assert forbidden_components("sigma_ahe", ops, 2) == ["xx", "xy", "yx", "yy"]  # time reversal declared


def test_converge_reports_symmetry_zeros_from_the_study(tmp_path):
    """`converge` takes the forbidden components of the study's crystal as symmetry zeros: reported as
    residuals (tiny), excluded from the verdicts."""
    from qgtflow.driver import EXCLUDED, converge

    study = {"name": "haldane_sym", "model": {"name": "haldane", "params": {"t2": 0.1, "mass": 0.0}},
             "units": "natural", "kgrid": {"sizes": [12]}, "mu": [0.5], "temperature": [0.2], "tau": 1.0,
             "responses": ["sigma_drude"], "symmetry": {"atoms": [["C", 0, 0, 0], ["C", 1 / 3, 1 / 3, 0]]}}
    res = converge(study, n_workers=0, max_rounds=3, plots=False)
    assert sorted(res.residuals["component"]) == ["xy", "yx"]
    assert (res.residuals["relative"] < 1e-10).all()
    rows = res.table[res.table["component"].isin(["xy", "yx"])]
    assert (rows["verdict"] == EXCLUDED).all()
