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
    assert forbidden_components("pockels_skew", plain, 3) is None  # not classified: nothing claimed


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
             "responses": ["sigma_drude"], "symmetry": {"atoms": [["C", 0, 0, 0], ["C", 1 / 3, 1 / 3, 0]],
                                                 "magnetic_moments": [[0, 0, 1.0], [0, 0, 1.0]]}}
    res = converge(study, n_workers=0, max_rounds=3, plots=False)
    assert sorted(res.residuals["component"]) == ["xy", "yx"]
    assert (res.residuals["relative"] < 1e-10).all()
    rows = res.table[res.table["component"].isin(["xy", "yx"])]
    assert (rows["verdict"] == EXCLUDED).all()


HALDANE_SYM = {"name": "haldane_sym", "model": {"name": "haldane", "params": {"t2": 0.1, "mass": 0.0}},
               "units": "natural", "kgrid": {"sizes": [6, 8, 10]}, "mu": [0.5], "temperature": [0.2], "tau": 1.0,
               "responses": ["sigma_drude"], "symmetry": {"atoms": [["C", 0, 0, 0], ["C", 1 / 3, 1 / 3, 0]],
                                                 "magnetic_moments": [[0, 0, 1.0], [0, 0, 1.0]]}}


def test_convergence_stage_reports_the_planned_symmetry_zeros_as_residuals(tmp_path):
    """The Snakemake convergence stage takes the zeros from its job's params (the plan's derived value, computed
    from the crystal at plan time; the stage builds no model) and reports them as the driver does: verdict
    'symmetry zero (excluded)' in the CSV, <name>_symmetry_residual in the store, symmetry_residuals.csv."""
    import pandas as pd
    import xarray as xr

    from qgtflow import api, io, plan
    from qgtflow.stages import convergence_stage
    from qgtflow.stages.convergence_stage import EXCLUDED
    from qgtflow.study import load_study

    study = load_study(HALDANE_SYM)
    job = plan.convergence_job(study)
    assert job["symmetry_zeros"] == {"sigma_drude": ["xy", "yx"]}
    paths = []
    for size in study.sizes:
        path = tmp_path / f"n{size}.zarr"
        api.evaluate(study, size=size, out=str(path), n_workers=0, workdir=str(tmp_path / f"w{size}"))
        paths.append(str(path))
    job["upstream"] = {p: io.store_attrs(p)[io.FINGERPRINT] for p in paths}
    convergence_stage.run(plan.stage_study("convergence", job), paths, str(tmp_path / "conv"), plots=False, job=job)
    table = pd.read_csv(tmp_path / "conv" / "convergence.csv", keep_default_na=False)
    assert set(table.loc[table["component"].isin(["xy", "yx"]), "verdict"]) == {EXCLUDED}
    assert EXCLUDED not in set(table.loc[table["component"].isin(["xx", "yy"]), "verdict"])
    residuals = pd.read_csv(tmp_path / "conv" / "symmetry_residuals.csv")
    assert sorted(residuals["component"]) == ["xy", "yx"] and (residuals["relative"] < 1e-10).all()
    with xr.open_zarr(tmp_path / "conv" / "convergence.zarr") as ds:
        res = ds["sigma_drude_symmetry_residual"]
        assert {"units", "long_name", "formula"} <= set(res.attrs)
        assert float(res.sel(i="x", j="y").max()) < 1e-10 and bool(res.sel(i="x", j="x").isnull().all())


def test_symmetry_key_changes_the_convergence_params_only():
    """The zeros are a derived value of the convergence contract; no other stage's params see the crystal."""
    from qgtflow import plan
    from qgtflow.study import load_study

    plain = load_study({k: v for k, v in HALDANE_SYM.items() if k != "symmetry"})
    sym = load_study(HALDANE_SYM)
    assert plan.stage_inputs("convergence", plain)["symmetry_zeros"] == {}
    for stage in ("kgrid", "geometry", "reduce"):
        assert plan.stage_inputs(stage, plain) == plan.stage_inputs(stage, sym)


def test_symmetry_of_a_kp_model_is_refused_before_compute():
    from qgtflow.errors import QgtflowError
    from qgtflow.study import load_study

    with pytest.raises(QgtflowError, match=r"symmetry: given for the k·p model .*expected a periodic model"):
        load_study({"model": {"name": "massive_dirac"}, "responses": ["sigma_drude"], "mu": [0.2], "temperature": [10.0],
                    "symmetry": {"atoms": [["C", 0, 0, 0]]}})


WIN = """num_wann = 6
begin unit_cell_cart
ang
 -1.435  1.435  1.435
  1.435 -1.435  1.435
  1.435  1.435 -1.435
end unit_cell_cart
begin atoms_{kind}
{unit}Fe  {pos}
end atoms_{kind}
mp_grid = 4 4 4
"""


@pytest.mark.parametrize("kind, unit, pos", [("frac", "", "0.0 0.0 0.0"), ("cart", "bohr\n", "0 0 0"),
                                             ("cart", "", "0.0 0.0 2.87")])
def test_crystal_from_the_win_gives_the_point_group(tmp_path, kind, unit, pos):
    """A Wannier90 model whose seedname.win lists the atoms needs no symmetry.atoms: the moments alone (from the
    user) give bcc Fe's 4/mm'm' and its AHE zeros; a Cartesian atom at a lattice vector (a3 + ... = (0, 0, a))
    is the origin in fractional coordinates."""
    import shutil

    from qgtflow.models.symmetry import crystal_operations, study_symmetry_zeros
    from qgtflow.models.wannier import read_win_atoms
    from qgtflow.study import load_study
    from tests.test_real_material import DATA, STUDY

    shutil.copy(DATA / "fe_like_tb.dat", tmp_path / "fe_like_tb.dat")
    (tmp_path / "fe_like.win").write_text(WIN.format(kind=kind, unit=unit, pos=pos))
    atoms = read_win_atoms(tmp_path / "fe_like.win")
    assert atoms[0][0] == "Fe" and np.allclose(np.mod(np.array(atoms[0][1:]) + 1e-9, 1.0), 0.0, atol=1e-6)
    cfg = {**STUDY, "model": {"name": "fe", "wannier90": {"tb": str(tmp_path / "fe_like_tb.dat")}},
           "symmetry": {"magnetic_moments": [[0.0, 0.0, 2.2]]}}
    st = load_study(cfg)
    zeros = study_symmetry_zeros(st.model, st.config["symmetry"], st.responses)
    expected = forbidden_components("sigma_ahe", crystal_operations(FE_LATTICE, FE, [[0.0, 0.0, 2.2]]), 3)
    assert zeros == {"sigma_ahe": expected} and "xy" not in expected


def test_symmetry_without_atoms_or_win_is_refused(tmp_path):
    from qgtflow.errors import QgtflowError
    from qgtflow.study import load_study
    from tests.test_real_material import STUDY

    with pytest.raises(QgtflowError, match=r"symmetry\.atoms: missing; expected .*atoms_frac or atoms_cart"):
        load_study({**STUDY, "symmetry": {}})


def test_win_atoms_are_in_the_convergence_fingerprint_only(tmp_path):
    """The crystal read from seedname.win reaches the convergence stage (its symmetry zeros): moving an atom
    changes the convergence job's fingerprint (it and the report rerun), not the model's stages (the Hamiltonian
    is the same); an edit of the .win that changes nothing read (a comment) changes no fingerprint."""
    import shutil

    from qgtflow import plan
    from qgtflow.study import load_study
    from tests.test_real_material import DATA, STUDY

    shutil.copy(DATA / "fe_like_tb.dat", tmp_path / "fe_like_tb.dat")
    cfg = {**STUDY, "model": {"name": "fe", "wannier90": {"tb": str(tmp_path / "fe_like_tb.dat")}},
           "symmetry": {"magnetic_moments": [[0.0, 0.0, 2.2], [0.0, 0.0, 0.0]]}}
    win = tmp_path / "fe_like.win"

    def fingerprints(text):
        win.write_text(text)
        st = load_study(cfg)
        jobs = {stage: job["fingerprint"] for stage, job in plan.grid_chain(st, st.sizes[0]).items()}
        jobs["bands"] = plan.bands_job(st)["fingerprint"]
        return {**jobs, "convergence": plan.convergence_job(st)["fingerprint"]}

    two_atoms = WIN.format(kind="frac", unit="", pos="0.0 0.0 0.0\nCo  0.5 0.5 0.5")
    before = fingerprints(two_atoms)
    assert fingerprints(two_atoms + "! a comment\n") == before
    moved = fingerprints(two_atoms.replace("Co  0.5 0.5 0.5", "Co  0.5 0.5 0.45"))
    assert {stage for stage in before if moved[stage] != before[stage]} == {"convergence"}


@pytest.mark.parametrize("block, unit_first, expected", [
    ("unit_cell_cart", "bohr\n 2 0 0\n 0 2 0\n 0 0 2\n", np.eye(3) * 2 * 0.529177210903),
    ("atoms_cart", "bohr\nFe 0 0 1\n", None)])
def test_win_unit_lines_of_both_blocks(tmp_path, block, unit_first, expected):
    """One unit-line rule for unit_cell_cart and atoms_cart: a first bohr line converts to Å; after a row it is
    refused in one line naming it."""
    from qgtflow.errors import QgtflowError
    from qgtflow.models.wannier import read_win_atoms, read_win_lattice

    lattice = "begin unit_cell_cart\n 2 0 0\n 0 2 0\n 0 0 2\nend unit_cell_cart\n"
    path = tmp_path / "x.win"
    if block == "unit_cell_cart":
        path.write_text(f"begin unit_cell_cart\n{unit_first}end unit_cell_cart\n")
        np.testing.assert_allclose(read_win_lattice(path), expected, rtol=1e-9)
        path.write_text("begin unit_cell_cart\n 2 0 0\nbohr\n 0 2 0\n 0 0 2\nend unit_cell_cart\n")
        reader = read_win_lattice
    else:
        path.write_text(lattice + f"begin atoms_cart\n{unit_first}end atoms_cart\n")
        np.testing.assert_allclose(read_win_atoms(path)[0][1:], [0, 0, 0.529177210903 / 2], rtol=1e-9)
        path.write_text(lattice + "begin atoms_cart\nFe 0 0 1\nBohr\nend atoms_cart\n")
        reader = read_win_atoms
    with pytest.raises(QgtflowError, match="unit line .* after the .*; expected it first"):
        reader(path)


def test_2d_berry_curvature_dipole_zeros_carry_the_stored_labels():
    """In 2D the dipole is stored as D_az (Ω has only z): its zeros are named 'xz'/'yz' as the tables label
    them; a mirror y → −y flips Ω_z (axial) and ∂_x, not ∂_y: D_xz is forbidden, D_yz allowed; C₃ forbids both."""
    import numpy as np

    from qgtflow.models.symmetry import forbidden_components

    c, s = np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3)
    c3 = np.array([[c, -s], [s, c]])
    assert forbidden_components("berry_curvature_dipole", [(np.eye(2), 0), (c3, 0), (c3 @ c3, 0)], 2) == ["xz", "yz"]
    assert forbidden_components("berry_curvature_dipole", [(np.eye(2), 0), (np.diag([1.0, -1.0]), 0)], 2) == ["xz"]


def test_zeros_of_a_cell_printed_to_a_few_digits_are_the_exact_cells():
    """Mn3Sn's cell as its wannier90.win prints it (4.9103641 for 2.835·√3), or rounded to 3 decimals, gives the
    exact cell's symmetry zeros under the magnetic group of an in-plane 120° order: the Cartesian operations are
    made exactly orthogonal as a group (cartesian_rotations), where 1e-8 of non-orthogonality used to leave the
    forbidden Drude xy and AHC xz "allowed" (the projector's rows held to 1e-8)."""
    from qgtflow.models.symmetry import crystal_operations, symmetry_zero_components

    exact = np.array([[5.67, 0.0, 0.0], [-2.835, 2.835 * 3 ** 0.5, 0.0], [0.0, 0.0, 4.53]])
    printed = np.array([[5.6700001, 0.0, 0.0], [-2.835, 4.9103641, 0.0], [0.0, 0.0, 4.5300002]])
    atoms = [["Mn", 2 / 3, 5 / 6, 0.0], ["Mn", 1 / 6, 1 / 3, 0.0], ["Mn", 2 / 3, 1 / 3, 0.0], ["Mn", 1 / 3, 1 / 6, 0.5],
             ["Mn", 5 / 6, 2 / 3, 0.5], ["Mn", 1 / 3, 2 / 3, 0.5], ["Sn", 5 / 6, 1 / 6, 0.5], ["Sn", 1 / 6, 5 / 6, 0.0]]
    angles = np.radians([0, 240, 120, 0, 240, 120])
    moments = [[np.cos(a), np.sin(a), 0.0] for a in angles] + [[0.0, 0.0, 0.0]] * 2
    responses = ["sigma_ahe", "sigma_drude", "berry_curvature_dipole"]
    zeros = [symmetry_zero_components(responses, crystal_operations(lat, atoms, moments), 3)
             for lat in (exact, printed, np.round(exact, 3))]
    assert zeros[0] == zeros[1] == zeros[2]
    assert "xy" in zeros[0]["sigma_drude"] and zeros[0]["sigma_ahe"] == ["xx", "xy", "xz", "yx", "yy", "zx", "zz"]
