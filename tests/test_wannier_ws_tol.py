"""model.wannier90.ws_distance_tol: Wannier90's Wigner–Seitz tie tolerance, for centres symmetric only to the
Wannierisation's accuracy (WannierBerri's GaAs_tb.dat: README, Symmetry).

The file: a cubic crystal (a = 3 Å) on a 1×1×1 grid, A at the origin, B at (0.3, ½, ½), C at (½, 0, 0) (point
group 4mm about x, no inversion, so the Berry curvature the check compares is not zero); every A–B, A–C and B–C
hopping of the file (R = 0) is shared by the 4, 2 and 4 equivalent bonds of the ideal crystal, so H(k) has the
four-fold axis along x. B's centre is written off by 3e-5 Å along y: the A–B (and B–C) bonds with −y (+y) are then
3.9e-5 Å shorter than the others, beyond the default tolerance 1e-5 Å, so |H_AB| = |t cos(k_z a/2)| and the
four-fold rotation changes the energies; at 1e-4 Å or more all 4 are ties again and the energies are symmetric (the
offset is a gauge phase in convention II)."""

from __future__ import annotations

import numpy as np
import pytest

from qgtflow.errors import ConfigError
from qgtflow.models.wannier import read_tb
from qgtflow.study import load_study
from tests.wannier_files import write_tb

A = 3.0
OFFSET = np.array([0.0, 3e-5, 0.0])  # Å, B's centre off the body centre
# two of the crystal's operations on k (Cartesian): the mirror y → −y and the four-fold rotation about x
OPERATIONS = {"m_y": np.diag([1.0, -1.0, 1.0]), "C4x": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])}


@pytest.fixture
def tb_file(tmp_path):
    h0 = np.array([[0.0, -1.0, -0.7], [-1.0, 0.4, -0.5], [-0.7, -0.5, 0.9]], complex)  # eV, R = 0 only
    centres = np.array([[0.0, 0.0, 0.0], [0.3 * A, A / 2, A / 2], [A / 2, 0.0, 0.0]])
    centres[1] += OFFSET
    return write_tb(tmp_path / "cubic_tb.dat", A * np.eye(3), {(0, 0, 0): h0}, centres=centres, decimals=10)


def _broken(model) -> float:
    """The largest |E_n(g·k) − E_n(k)| (eV) over random k and the two operations."""
    k = np.random.default_rng(5).uniform(-np.pi, np.pi, (12, 3)) / (A / 10)  # 1/nm (model lengths in nm)
    E = np.linalg.eigvalsh(model.derivatives(k, 0)[0])
    return max(float(np.abs(np.linalg.eigvalsh(model.derivatives(k @ g.T, 0)[0]) - E).max())
               for g in OPERATIONS.values())


def test_larger_tie_tolerance_restores_the_crystal_symmetry(tb_file):
    default = read_tb(tb_file)
    assert _broken(default) > 0.05  # each A–B hopping on 2 of its 4 bonds: E(g·k) ≠ E(k)
    assert default.ws_near_ties is not None and default.ws_near_ties[0] > 0  # the near misses are recorded
    assert 1e-5 < default.ws_near_ties[1] < 1e-4
    wide = read_tb(tb_file, ws_distance_tol=1e-3)
    assert _broken(wide) < 1e-9
    assert wide.ws_near_ties is None
    # absent or the default: the model and its hash as before (no ws_distance_tol in the params); else recorded
    assert "ws_distance_tol" not in default.params
    assert read_tb(tb_file, ws_distance_tol=1e-5).model_hash == default.model_hash
    assert wide.params["ws_distance_tol"] == 1e-3 and wide.model_hash != default.model_hash


def _study(tb_file, **wannier):
    return {"model": {"name": "cubic", "wannier90": {"tb": str(tb_file), "position_operator": False, **wannier}},
            "kgrid": {"sizes": [4]}, "mu": [0.0], "temperature": [0.05], "responses": ["sigma_drude"]}


def test_study_key_reaches_the_model(tb_file):
    """The study key is threaded to the reader: a different model hash (a rerun from the stages building it)."""
    plain = load_study(_study(tb_file)).model
    wide = load_study(_study(tb_file, ws_distance_tol=1e-3)).model
    assert wide.params["ws_distance_tol"] == 1e-3 and "ws_distance_tol" not in plain.params
    assert wide.model_hash != plain.model_hash
    assert _broken(wide) < 1e-9


@pytest.mark.parametrize("value", [0, -1e-3, 0.5, "1e-3", True])
def test_bad_tie_tolerance_is_refused_in_one_line(tb_file, value):
    with pytest.raises(ConfigError) as info:
        load_study(_study(tb_file, ws_distance_tol=value))
    message = str(info.value)
    assert "model.wannier90.ws_distance_tol" in message and "\n" not in message, message


def test_symmetry_refusal_suggests_the_tie_tolerance(tb_file):
    """The crystal's check refuses the default reading (the energies break C4x) and says which ws_distance_tol would
    treat the near ties as ties; at that value the study is accepted."""
    crystal = {"atoms": [["A", 0, 0, 0], ["B", 0.3, 0.5, 0.5], ["C", 0.5, 0, 0]]}
    with pytest.raises(ConfigError) as info:
        load_study({**_study(tb_file), "symmetry": crystal})
    message = str(info.value)
    assert "symmetry.tolerance" in message and "\n" not in message, message
    assert "model.wannier90.ws_distance_tol: 0.0001 (Å)" in message, message
    load_study({**_study(tb_file, ws_distance_tol=1e-4), "symmetry": crystal})


def test_tie_tolerance_without_the_computed_correction_is_refused(tb_file):
    """With the Wigner–Seitz images given (a _wsvec.dat) or switched off the key would do nothing: refused."""
    from qgtflow.errors import ModelError

    with pytest.raises(ModelError, match=r"ws_distance_tol = 0\.001 .*_wsvec\.dat") as info:
        read_tb(tb_file, wsvec=False, ws_distance_tol=1e-3)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match=r"ws_distance_tol = nan; expected a positive finite length"):
        read_tb(tb_file, ws_distance_tol=float("nan"))


def test_a_new_tie_tolerance_reruns_the_stages_building_the_model(tb_file):
    """The workflow plan: the key changes the params (the model config and its hash) of every stage that builds the
    model, so they and everything downstream rerun; the same study without it plans the same jobs and params."""
    from qgtflow import plan

    def config(**wannier):
        return {"results_dir": "results", "dask": {"n_workers": 1}, "studies": {"A": _study(tb_file, **wannier)}}

    old = plan.WorkflowPlan(config())
    assert {job: old.job_params(job) for job in old.jobs()} == {job: plan.WorkflowPlan(config()).job_params(job)
                                                                for job in old.jobs()}
    new = plan.WorkflowPlan(config(ws_distance_tol=1e-3))
    changed = {job for job in new.jobs() if new.job_params(job) != old.job_params(job)}
    assert {"kgrid A n4", "geometry A n4"} <= changed, changed
    assert new.job_params("geometry A n4")["model_hash"] != old.job_params("geometry A n4")["model_hash"]
    assert {"reduce A n4"} <= plan.downstream_jobs(new, changed)


@pytest.mark.parametrize("tol", [1e-3, 0.05])
def test_vectorised_table_at_a_tie_tolerance_equals_the_reference(tol):
    """The vectorised Wigner–Seitz table (image search pruned with the tolerance) splits every hopping as the
    one-(R, i, j)-at-a-time reference at a non-default tolerance, with near ties (a centre 2e-4 Å off symmetric)."""
    from qgtflow.models.wannier import ws_distance_table
    from tests.test_wannier import wigner_seitz_points, ws_table_reference

    lattice = np.eye(3) * 4.0  # ties of 2, 4 and 8 images, split by the offsets (2e-4 and 8e-5 Å)
    frac = np.array([[0, 0, 0], [0.5 + 5e-5, 0.5 + 2e-5, 0.5], [0.5, 0, 0]])
    grid = (2, 2, 1)
    rng = np.random.default_rng(4)
    cells, _ = wigner_seitz_points(lattice, grid)
    table = {R: rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3)) for R in dict.fromkeys(cells)}
    ref = ws_table_reference(table, lattice, frac, np.asarray(grid), tol=tol)
    got = ws_distance_table(table, lattice, frac, grid, tol=tol)
    assert set(got) == set(ref)
    for key, mat in ref.items():
        np.testing.assert_allclose(got[key], mat, rtol=1e-13, atol=1e-15)
    default = ws_distance_table(table, lattice, frac, grid)
    assert set(default) != set(ref) or any(not np.allclose(default[k], ref[k]) for k in ref)  # the tolerance mattered
