"""``kgrid.symmetry_reduce`` end to end (qgtflow.wedge): the symmetrised irreducible-wedge results equal the full-grid
ones (an independent computation: every point of the zone evaluated) on a magnetic Haldane layer (C3 with the
antiunitary mirrors), the same layer stretched (one antiunitary mirror left: nonzero dipoles and rank-3
responses), a square-lattice Chern insulator (Qi–Wu–Zhang, 4/mm'm' restricted to the plane) and the bcc-Fe-like
Wannier model (4/mm'm', moment along z); and the studies the wedge cannot honour are refused before any compute."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("spglib")

ALL = ["sigma_ahe", "sigma_drude", "berry_curvature_dipole", "sigma_bcd", "sigma_nonlinear_drude", "sigma_qm"]
UP = [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
HALDANE_CRYSTAL = {"atoms": [["A", 0, 0, 0], ["B", 1 / 3, 1 / 3, 0]], "magnetic_moments": UP}
FE_DATA = Path(__file__).resolve().parents[1] / "src" / "qgtflow" / "data"


def _haldane_tb(stretch: float, t_vertical: float) -> dict:
    """Haldane (φ = π/2, sublattice mass 0.2) as a tight-binding model on a lattice stretched along y, with
    ``t_vertical`` on the bond along y (its mirror x → −x, with time reversal, is the symmetry left)."""
    t2 = 0.1j
    hops = [[[0, 0], 0, 1, 1.0], [[-1, 0], 0, 1, 1.0], [[0, -1], 0, 1, t_vertical]]
    for R in ([1, 0], [-1, 1], [0, -1]):
        hops += [[R, 0, 0, [t2.real, t2.imag]], [R, 1, 1, [t2.real, -t2.imag]]]
    return {"name": "haldane_tb", "tight_binding": {
        "lattice": [[1.0, 0.0], [0.5, stretch * np.sqrt(3) / 2]], "positions": [[0, 0], [1 / 3, 1 / 3]],
        "hoppings": hops, "onsite": [0.2, -0.2]}}


def _qwz(m: float = -1.0) -> dict:
    """Qi–Wu–Zhang: sin kx σx + sin ky σy + (m + cos kx + cos ky) σz, both orbitals on the square lattice's site."""
    hops = [[[1, 0], 0, 0, 0.5], [[0, 1], 0, 0, 0.5], [[1, 0], 1, 1, -0.5], [[0, 1], 1, 1, -0.5],
            [[1, 0], 0, 1, [0, -0.5]], [[-1, 0], 0, 1, [0, 0.5]], [[0, 1], 0, 1, -0.5], [[0, -1], 0, 1, 0.5]]
    return {"name": "qwz", "tight_binding": {"lattice": [[1.0, 0.0], [0.0, 1.0]], "positions": [[0, 0], [0, 0]],
                                             "hoppings": hops, "onsite": [m, -m]}}


CASES = {
    "haldane": ({"name": "haldane", "params": {"t1": 1.0, "t2": 0.1, "phi": float(np.pi / 2), "mass": 0.2}},
                HALDANE_CRYSTAL, 12, {}, 6, ["sigma_ahe", "sigma_drude", "sigma_nonlinear_drude"]),
    "haldane_stretched": (_haldane_tb(1.1, 1.3), HALDANE_CRYSTAL, 12, {}, 2, ALL),
    "qwz_square": (_qwz(), {"atoms": [["X", 0, 0, 0]], "magnetic_moments": [[0, 0, 1.0]]}, 12, {}, 8,
                   ["sigma_ahe", "sigma_drude"]),
    "fe_like": ({"name": "fe_like", "wannier90": {"tb": str(FE_DATA / "fe_like_tb.dat")}},
                {"magnetic_moments": [[0.0, 0.0, 2.2]]}, 6, None, 16, ["sigma_ahe", "sigma_drude"]),
}


def _study(case: str, reduce: bool) -> dict:
    model, crystal, size, units, _, _ = CASES[case]
    return {"model": model, "symmetry": crystal, "units": "natural", "tau": 1.0,
            "kgrid": {"sizes": [size], "symmetry_reduce": reduce, "chunk_size": 64},
            "mu": [-0.6, -0.2, 0.3], "temperature": [0.13], "responses": ALL}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wedge_equals_the_full_grid(case, tmp_path):
    """Every response nonzero in the case (listed) equals the full grid's to 1e-10 of its largest entry; the others
    vanish (forbidden by the group, or σ_bcd ∝ the vanishing dipole), and the wedge's value is no larger than the
    full grid's rounding noise."""
    from qgtflow.api import evaluate
    from qgtflow.wedge import stored_operations

    full = evaluate(_study(case, False), n_workers=0, workdir=tmp_path)
    wedge = evaluate(_study(case, True), n_workers=0, workdir=tmp_path)
    _, _, size, _, n_ops, nonzero = CASES[case]
    assert len(stored_operations(wedge.attrs)) == n_ops and stored_operations(full.attrs) is None
    assert wedge.attrs["n_kpoints"] == full.attrs["n_kpoints"] == wedge.attrs["grid_n_full_kpoints"]
    for name in ALL:
        f, w = full[name].values, wedge[name].values
        assert w.shape == f.shape and wedge[name].attrs == full[name].attrs
        if name in nonzero:
            assert np.abs(w - f).max() <= 1e-10 * np.abs(f).max(), (name, np.abs(w - f).max(), np.abs(f).max())
            assert np.abs(f).max() > 1e-6, name  # natural units: the tensors are O(1e-3 .. 1) where nonzero
        else:
            assert np.abs(f).max() < 1e-9, name  # rounding noise of cancelling terms
            assert np.abs(w).max() <= max(np.abs(f).max(), 1e-30), name


@pytest.mark.parametrize("case, size", [("fe_like", 96), ("haldane", 96)])
def test_preflight_and_job_memory_count_the_wedge_not_the_full_grid(case, size):
    """The preflight's disk estimate and the jobs' chunk size follow the points the wedge's store holds: an upper
    estimate of the irreducible count (never below it, at most 1.5x it here), not the full grid's |G| times more
    (fe_like at 320³ was refused needing 235 GB for its 16 GB of stores)."""
    from qgtflow.models.symmetry import irreducible_wedge
    from qgtflow.preflight import estimate
    from qgtflow.study import load_study
    from qgtflow.wedge import stored_points, wedge_operations

    def cfg(reduce):
        c = _study(case, reduce)
        return {**c, "kgrid": {**c["kgrid"], "chunk_size": 1 << 16}}

    study, full = load_study(cfg(True)), load_study(cfg(False))
    grid = study.make_grid(size)
    irr, _ = irreducible_wedge(wedge_operations(study), study.model.reciprocal_vectors, grid.sizes)
    stored, chunk = stored_points(study, grid)
    assert len(irr) <= stored <= 1.5 * len(irr) and chunk == min(1 << 16, stored)
    assert stored_points(full, full.make_grid(size)) == (grid.n_points, min(1 << 16, grid.n_points))
    wedge_est, full_est = estimate(study, size, 1), estimate(full, size, 1)
    assert wedge_est.n_kpoints == full_est.n_kpoints == grid.n_points  # limits.max_kpoints: the grid's
    assert wedge_est.disk_bytes / full_est.disk_bytes == pytest.approx(stored / grid.n_points, rel=1e-6)

def test_the_wedge_holds_fewer_points_with_multiplicity_weights(tmp_path):
    """The kgrid store of the wedge: Σ weights = the full grid's, integer multiplicities, the group in the attrs."""
    import xarray as xr

    from qgtflow.stages import kgrid_stage
    from qgtflow.study import load_study

    study = load_study(_study("haldane", True))
    full = load_study(_study("haldane", False))
    kgrid_stage.run(study, 12, tmp_path / "w.zarr")
    kgrid_stage.run(full, 12, tmp_path / "f.zarr")
    with xr.open_zarr(tmp_path / "w.zarr") as w, xr.open_zarr(tmp_path / "f.zarr") as f:
        assert w.sizes["kpoint"] < f.sizes["kpoint"] / 4
        m = w["weight"].values / f["weight"].values[0]
        np.testing.assert_allclose(m, np.round(m), atol=1e-12)
        assert m.min() >= 1 and np.isclose(w["weight"].values.sum(), f["weight"].values.sum(), rtol=1e-13)
        assert len(w.attrs["grid_symmetry_rotations"]) == 6 and "grid_symmetry_rotations" not in f.attrs


REFUSED = {
    "kp_model": ({"model": {"name": "massive_dirac"}, "symmetry": None}, "kgrid.symmetry_reduce"),
    "no_crystal": ({"symmetry": None}, "kgrid.symmetry_reduce"),
    "tetrahedron": ({"integration": "tetrahedron"}, "kgrid.symmetry_reduce"),
    "refine": ({"kgrid": {"sizes": [12], "symmetry_reduce": True, "refine": {"factor": 2}}}, "kgrid.symmetry_reduce"),
    "shifted": ({"kgrid": {"sizes": [12], "symmetry_reduce": True, "shift": 0.5}}, "kgrid.shift"),
    "sectors": ({"resolve_sectors": True}, "kgrid.symmetry_reduce"),
    "pair_sum": ({"responses": ["sigma_drude", "ndd_delta_n"]}, "responses"),
    "anisotropic": ({"kgrid": {"sizes": [[12, 18]], "symmetry_reduce": True}}, "kgrid.sizes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_name_the_key(case):
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    change, key = REFUSED[case]
    cfg = {**_study("haldane", True), **change}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    if case == "kp_model":
        cfg["kgrid"] = {"sizes": [12], "symmetry_reduce": True}
    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    assert err.value.key == key and "\n" not in str(err.value), str(err.value)


def test_the_cli_refuses_with_exit_2(tmp_path, capsys):
    """A user error: one line naming the key, exit 2."""
    import yaml

    from qgtflow.cli import main

    cfg = {**_study("haldane", True), "integration": "tetrahedron"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["evaluate", str(path), "--out", str(tmp_path / "r.zarr")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qgtflow: error:")]
    assert len(lines) == 1 and "kgrid.symmetry_reduce" in lines[0], lines


def test_the_flag_reruns_kgrid_and_reads_the_crystal_only_when_set():
    """Plan: the crystal is a kgrid input only with symmetry_reduce (a flag's default false declares nothing)."""
    from qgtflow import plan
    from qgtflow.study import load_study

    off, on = load_study(_study("haldane", False)), load_study(_study("haldane", True))
    assert "symmetry" not in plan.stage_inputs("kgrid", off)["study"]
    assert "symmetry" in plan.stage_inputs("kgrid", on)["study"]
    a, b = plan.grid_chain(off, 12), plan.grid_chain(on, 12)
    assert all(a[s]["fingerprint"] != b[s]["fingerprint"] for s in ("kgrid", "geometry", "reduce"))
    assert plan.stage_inputs("geometry", off) == plan.stage_inputs("geometry", on)


# ---- the declared crystal is verified against the Hamiltonian before the wedge trusts it (geometry/covariance.py)

WRONG_CRYSTALS = {  # case: (model case, crystal, what breaks it)
    # no moments declares time reversal (and the plain mirrors) for the magnetic Haldane layer: energies
    "haldane_time_reversal": ("haldane", {"atoms": HALDANE_CRYSTAL["atoms"]}, "band energies"),
    # two equal atoms: the sublattice mass is declared away (C2 and C6 join the group): energies
    "haldane_equal_sublattices": ("haldane", {"atoms": [["A", 0, 0, 0], ["A", 1 / 3, 1 / 3, 0]],
                                              "magnetic_moments": UP}, "band energies"),
    # QWZ with the moment in the plane: C2' is declared; energies invariant, the curvature changes sign
    "qwz_moment_in_plane": ("qwz_square", {"atoms": [["X", 0, 0, 0]], "magnetic_moments": [[1.0, 0, 0]]},
                            "Berry curvature"),
    # Fe-like with the moment along x (the model's is along z): the curvature tells
    "fe_like_moment_along_x": ("fe_like", {"magnetic_moments": [[2.2, 0.0, 0.0]]}, "Berry curvature"),
    "fe_like_no_moment": ("fe_like", {}, "Berry curvature"),
}


@pytest.mark.parametrize("case", sorted(WRONG_CRYSTALS))
def test_a_crystal_that_is_not_a_symmetry_of_the_model_is_refused(case):
    """One line naming the key `symmetry.tolerance` with its value, the failing operation and the measured
    mismatch, at validation time."""
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    model_case, crystal, what = WRONG_CRYSTALS[case]
    with pytest.raises(ConfigError) as err:
        load_study({**_study(model_case, True), "symmetry": crystal})
    msg = str(err.value)
    assert err.value.key == "symmetry.tolerance" and err.value.value == 1e-3 and "\n" not in msg, msg
    assert "operation " in msg and what in msg and "held to" in msg, msg
    with pytest.raises(ConfigError) as err:  # without the wedge too: the crystal's symmetry zeros would be wrong
        load_study({**_study(model_case, False), "symmetry": crystal})
    assert err.value.key == "symmetry.tolerance" and "symmetry zeros" in str(err.value), str(err.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_correct_crystals_pass_to_rounding(case):
    """The declared groups of the wedge tests are symmetries of their models: energies and curvature map to
    rounding (far below the tolerances)."""
    from qgtflow.geometry import covariance
    from qgtflow.models.symmetry import study_operations
    from qgtflow.study import load_study

    study = load_study(_study(case, False))
    ops = study_operations(study.model, CASES[case][1])
    assert covariance.first_broken_operation(study.model, ops, 1e-3) is None
    points = covariance.test_points(study.model)
    moved = covariance.images(points, ops)
    k = np.concatenate([points, moved.reshape(-1, study.model.dim)])
    E, curv, _ = covariance.energies_and_curvature(study.model, k)
    E0, Eg = E[:len(points)], E[len(points):].reshape(len(ops), len(points), -1)
    assert np.abs(Eg - E0).max() < 1e-10 * (E.max() - E.min())
    assert np.abs(curv).max() > 1e-3  # the curvature check had something to compare


def _c4(t=0):
    return (np.array([[0.0, -1.0], [1.0, 0.0]]), t)


KP_OPERATIONS = {  # massive Dirac v(kx σx + ky σy) + m σz: rotations and m_x' are symmetries; m_x, T are not
    "C4": ([_c4()], None),
    "mirror_with_time_reversal": ([(np.diag([-1.0, 1.0]), 1)], None),
    "mirror": ([_c4(), (np.diag([-1.0, 1.0]), 0)], "m[1, 0]"),
    "time_reversal": ([(np.eye(2), 1)], "1'"),
}


@pytest.mark.parametrize("case", sorted(KP_OPERATIONS))
def test_a_kp_model_is_checked_on_its_window(case):
    """The check needs no lattice: the massive Dirac model's energies are invariant under every operation above,
    its curvature (even in k, nonzero at k = 0) flags the mirror and time reversal."""
    from qgtflow.geometry.covariance import first_broken_operation
    from qgtflow.models.builtin import build_model

    ops, broken = KP_OPERATIONS[case]
    result = first_broken_operation(build_model("massive_dirac"), ops, 1e-3)
    assert (result is None) if broken is None else (result[0] == broken and "Berry curvature" in result[1]), result


def test_operations_of_another_lattice_are_refused_on_the_energies():
    """The stretched Haldane layer keeps one antiunitary mirror of the hexagonal one: its own crystal passes, the
    hexagonal group (C3) fails on the band energies."""
    from qgtflow.geometry.covariance import first_broken_operation
    from qgtflow.models.symmetry import study_operations
    from qgtflow.study import load_study

    stretched = load_study(_study("haldane_stretched", False)).model
    hexagonal = load_study(_study("haldane", False)).model
    assert first_broken_operation(stretched, study_operations(stretched, HALDANE_CRYSTAL), 1e-3) is None
    label, why, needed = first_broken_operation(stretched, study_operations(hexagonal, HALDANE_CRYSTAL), 1e-3)
    assert label.startswith("C3") and "band energies" in why and needed > 1e-3, why


def test_the_cli_refuses_a_wrong_crystal_with_exit_2(tmp_path, capsys):
    import yaml

    from qgtflow.cli import main

    cfg = {**_study("haldane", True), "symmetry": {"atoms": HALDANE_CRYSTAL["atoms"]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["evaluate", str(path), "--out", str(tmp_path / "r.zarr")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qgtflow: error:")]
    assert len(lines) == 1 and "'symmetry.tolerance'" in lines[0] and "operation" in lines[0], lines
    assert not (tmp_path / "r.zarr").exists()


def test_operation_labels():
    from qgtflow.geometry.covariance import operation_label

    c3z = np.array([[-0.5, -np.sqrt(3) / 2, 0], [np.sqrt(3) / 2, -0.5, 0], [0, 0, 1]])
    assert operation_label(np.eye(3), 1) == "1'" and operation_label(-np.eye(3), 0) == "-1"
    assert operation_label(c3z, 0) == "C3[0, 0, 1]" and operation_label(-c3z, 1) == "-3[0, 0, 1]'"
    assert operation_label(np.diag([1.0, -1.0, 1.0]), 0) == "m[0, 1, 0]"
    assert operation_label(np.diag([-1.0, 1.0]), 1) == "m[1, 0]'" and operation_label(-np.eye(2), 0) == "C2"


def test_rotations_by_several_steps_are_named_by_their_order_and_power():
    """C5² (by 4π/5) is C5^2, not "C2" (the order once rounded from 2π/angle); C6² is C3; the sense is not named
    (C5³ = C5⁻² is C5^2 too); a named C<n>[..] / C<n>^<k>[..] reads back as the rotation in the positive sense."""
    from math import gcd

    from qgtflow.geometry.covariance import operation_label
    from qgtflow.models.symmetry import _rotation, named_operation

    z = [0.0, 0.0, 1.0]
    assert operation_label(_rotation(z, 5, 2), 0) == "C5^2[0, 0, 1]"
    assert operation_label(_rotation(z, 5, 3), 1) == "C5^2[0, 0, 1]'"
    assert operation_label(_rotation(z, 6, 2), 0) == "C3[0, 0, 1]"
    assert operation_label(-_rotation(z, 5, 2), 0) == "-5^2[0, 0, 1]" and operation_label(-_rotation(z, 2), 0) == \
        "m[0, 0, 1]"
    assert operation_label(_rotation(z, 8, 3)[:2, :2], 0) == "C8^3" and operation_label(_rotation(z, 7)[:2, :2], 0) \
        == "C7"
    assert operation_label(_rotation(z, 2 * np.pi)[:2, :2], 0) == "C(57.2958°)"  # 1 rad: no 2πk/n with n ≤ 120
    for axis in ([0, 0, 1], [1, 1, 1], [2, -1, 0.5]):  # the label's axis: largest component positive, as these
        for n in range(2, 13):
            for k in (k for k in range(1, n // 2 + 1) if gcd(n, k) == 1):
                R = _rotation(axis, n, k)
                label = operation_label(R, 1)
                assert label.startswith(f"C{n}" + (f"^{k}[" if k > 1 else "[")), (axis, n, k, label)
                back, t = named_operation(label)
                assert t == 1 and np.allclose(back, R, atol=1e-6), (axis, n, k, label)
    assert np.allclose(named_operation("C5^2z")[0], named_operation("C5z·C5z")[0])
    assert np.allclose(named_operation("C5^" + "9" * 30 + "z")[0], named_operation("C5^4z")[0])  # k mod n


# ---- the responses classified beyond the first six: wedge = full grid on a 2D and a 3D model

NEWLY_CLASSIFIED = ["sigma_qm_variant", "quadrupolar_current_gamma", "ife_coefficient", "sigma_optical",
                    "pockels_bcd", "snap_tensor", "kerr_snap"]


def _haldane_stacked() -> dict:
    """The stretched Haldane layer stacked along z with sublattice-dependent interlayer hopping: a 3D magnetic
    crystal without inversion whose group {1, m_x', m_z, C2y'} leaves every kind of tensor nonzero components (the
    interlayer A–B hop modulates the bond along y, which m_x' keeps)."""
    layer = _haldane_tb(1.1, 1.3)["tight_binding"]
    hops = [[list(R) + [0], i, j, t] for R, i, j, t in layer["hoppings"]]
    hops += [[[0, 0, 1], 0, 0, 0.3], [[0, 0, 1], 1, 1, -0.2], [[0, -1, 1], 0, 1, 0.15], [[0, -1, -1], 0, 1, 0.15]]
    lattice = [list(v) + [0.0] for v in layer["lattice"]] + [[0.0, 0.0, 1.3]]
    return {"name": "haldane_stacked", "tight_binding": {
        "lattice": lattice, "positions": [[0, 0, 0], [1 / 3, 1 / 3, 0]], "hoppings": hops, "onsite": layer["onsite"]}}


NEW_CASES = {  # model, crystal, size, operations
    "haldane_stretched": (_haldane_tb(1.1, 1.3), HALDANE_CRYSTAL, 8, 2),
    "haldane_stacked": (_haldane_stacked(), {"atoms": [["A", 0, 0, 0], ["B", 1 / 3, 1 / 3, 0]],
                                             "magnetic_moments": UP}, 6, 4),
}


@pytest.mark.parametrize("case", sorted(NEW_CASES))
def test_newly_classified_responses_wedge_equals_the_full_grid(case, tmp_path):
    """Every newly classified response (extra dims variant, part, omega and complex_part kept) symmetrised from the
    wedge equals the full grid to 1e-10 of its largest entry, and each has nonzero entries to compare; the
    components its kind says the group forbids vanish on the full grid (an independent check of the kind)."""
    from qgtflow.api import evaluate
    from qgtflow.models.symmetry import symmetry_zero_components
    from qgtflow.wedge import CART_DIMS, stored_operations

    model, crystal, size, n_ops = NEW_CASES[case]

    def study(reduce):
        return {"model": model, "symmetry": crystal, "units": "natural", "tau": 1.0, "omega": [0.05],
                "kgrid": {"sizes": [size], "symmetry_reduce": reduce, "chunk_size": 64},
                "mu": [-0.6, 0.3], "temperature": [0.2], "responses": NEWLY_CLASSIFIED}

    full = evaluate(study(False), n_workers=0, workdir=tmp_path)
    wedge = evaluate(study(True), n_workers=0, workdir=tmp_path)
    assert len(stored_operations(wedge.attrs)) == n_ops
    for name in NEWLY_CLASSIFIED:
        f, w = full[name].values, wedge[name].values
        assert w.shape == f.shape and wedge[name].dims == full[name].dims
        assert np.abs(f).max() > 1e-6, name
        assert np.abs(w - f).max() <= 1e-10 * np.abs(f).max(), (name, np.abs(w - f).max(), np.abs(f).max())
    ops = stored_operations(wedge.attrs)
    zeros = symmetry_zero_components(NEWLY_CLASSIFIED, ops, len(ops[0][0]))
    assert len(zeros) >= 4, zeros
    for name, labels in zeros.items():
        da = full[name]
        cart = [d for d in da.dims if d in CART_DIMS]
        names = np.array(["".join(c) for c in product(*(da[d].values.astype(str) for d in cart))])
        values = np.abs(da.values).reshape(-1, len(names))
        assert values[:, np.isin(names, labels)].max() < 1e-10 * values.max(), name


def test_the_kinds_act_on_the_stored_layouts():
    """The classification on the stored layouts: the group {1, −1} averages a polar rank-r tensor to (1 + (−1)^r)/2
    (an axial one to (1 + (−1)^(r+1))/2), {1, time reversal} keeps the T-even kinds and kills the T-odd ones; the
    IFE's pseudovector index comes first and is stored as z alone in 2D; 003's spin responses are 3D only."""
    from qgtflow.models.symmetry import TENSOR_KINDS, stored_index_sizes, tensor_action

    assert stored_index_sizes("ife_coefficient", 2) == [1, 2, 2] and stored_index_sizes("ife_coefficient", 3) == [3] * 3
    inversion = [(np.eye(3), 0), (-np.eye(3), 0)]
    for name, kind in TENSOR_KINDS.items():  # inversion: (−1)^rank for polar, (−1)^(rank+1) for axial tensors
        even = (kind.rank + kind.axial) % 2 == 0
        assert np.allclose(tensor_action(name, inversion, 3), np.eye(3 ** kind.rank) * even), name
    time_reversal = [(np.eye(2), 0), (np.eye(2), 1)]
    for name, kind in TENSOR_KINDS.items():
        if kind.spin:  # 003's spin responses: their spin index has three components in 2D too
            continue
        n = int(np.prod(stored_index_sizes(name, 2)))
        assert np.allclose(tensor_action(name, time_reversal, 2), np.eye(n) * (not kind.time_odd)), name


def test_convergence_labels_a_pseudovector_index_as_the_symmetry_zeros_do():
    """D_az and a_zxy are labelled 'xz' and 'zxy' in convergence.csv, as :func:`forbidden_components` names them
    (a 2D study whose group forbids a dipole component was refused by the convergence stage)."""
    from qgtflow.stages.convergence_stage import component_labels

    coords = {"i": ["x", "y"], "j": ["x", "y"], "pseudovector": ["z"], "part": ["total"]}
    assert component_labels(("i", "pseudovector"), coords) == ["xz", "yz"]
    assert component_labels(("part", "pseudovector", "i", "j"), coords)[1] == "total:zxy"


def _qwz_broken(breaking_ev: float) -> dict:
    """QWZ scaled to a ~0.9 eV bandwidth (eV, nm) with a C4-breaking term breaking_ev · cos k_x on both orbitals:
    a model symmetric only to a Wannierisation-like accuracy."""
    h, m = 0.1, -0.2
    hops = [[[1, 0], 0, 0, h], [[0, 1], 0, 0, h], [[1, 0], 1, 1, -h], [[0, 1], 1, 1, -h],
            [[1, 0], 0, 1, [0, -h]], [[-1, 0], 0, 1, [0, h]], [[0, 1], 0, 1, -h], [[0, -1], 0, 1, h],
            [[1, 0], 0, 0, breaking_ev / 2], [[1, 0], 1, 1, breaking_ev / 2]]
    return {"name": "qwz_broken", "tight_binding": {"lattice": [[0.4, 0.0], [0.0, 0.4]], "positions": [[0, 0], [0, 0]],
                                                    "hoppings": hops, "onsite": [m, -m]}}


def _broken_study(tolerance=None) -> dict:
    crystal = {"atoms": [["X", 0, 0, 0]], "magnetic_moments": [[0, 0, 1.0]]}
    if tolerance is not None:
        crystal["tolerance"] = tolerance
    return {"model": _qwz_broken(3e-4), "symmetry": crystal, "kgrid": {"sizes": [8]}, "mu": [0.0],
            "temperature": [100.0], "responses": ["sigma_ahe"]}


def test_symmetry_tolerance_accepts_a_model_broken_below_it():
    """0.3 meV of C4 breaking moves the energies at the test points by 6.5e-4 of the 0.93 eV bandwidth: refused at
    the default tolerance 1e-3 (energies held to 1e-4), with the tolerance that would pass named; accepted at 1e-2."""
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    with pytest.raises(ConfigError) as err:
        load_study(_broken_study())
    msg = str(err.value)
    assert err.value.key == "symmetry.tolerance" and err.value.value == 1e-3 and "\n" not in msg, msg
    assert "operation C4" in msg and "band energies by 0.00065 of the bandwidth" in msg, msg
    assert "raise symmetry.tolerance to 0.0065" in msg, msg
    assert load_study(_broken_study(1e-2)).config["symmetry"]["tolerance"] == 1e-2
    # the symmetric model passes at the default
    assert load_study({**_broken_study(), "model": _qwz_broken(0.0)}).config["symmetry"]["tolerance"] == 1e-3


def _narrow_qwz(breaking: float) -> dict:
    """t0 (cos kx + cos ky) σ0 + s [QWZ, m = −1] + breaking · cos kx σz (natural units): the σ0 term sets a ~3-wide
    band, the two bands are only 0.006–0.012 apart (2e-3–4e-3 of the bandwidth, a Kramers-like near-degenerate
    pair), and ``breaking`` breaks C4 (4e-4: ~1e-4 of the bandwidth, a Wannierisation-like accuracy; 0.3: a C2
    model)."""
    t0, s = 1.0, 2.5e-3
    hops = [[[1, 0], 0, 0, 0.5 * (t0 + s + breaking)], [[0, 1], 0, 0, 0.5 * (t0 + s)],
            [[1, 0], 1, 1, 0.5 * (t0 - s - breaking)], [[0, 1], 1, 1, 0.5 * (t0 - s)],
            [[1, 0], 0, 1, [0, -0.5 * s]], [[-1, 0], 0, 1, [0, 0.5 * s]], [[0, 1], 0, 1, -0.5 * s],
            [[0, -1], 0, 1, 0.5 * s]]
    return {"name": "narrow_qwz", "tight_binding": {"lattice": [[1.0, 0.0], [0.0, 1.0]], "positions": [[0, 0], [0, 0]],
                                                    "hoppings": hops, "onsite": [-s, s]}}


def _narrow_study(breaking: float, tolerance: float, crystal=None) -> dict:
    crystal = crystal or {"atoms": [["X", 0, 0, 0]], "magnetic_moments": [[0, 0, 1.0]]}
    return {"model": _narrow_qwz(breaking), "symmetry": {**crystal, "tolerance": tolerance}, "units": "natural",
            "kgrid": {"sizes": [8]}, "mu": [0.0], "temperature": [0.1], "responses": ["sigma_ahe"]}


def test_the_curvature_is_not_compared_below_gaps_the_breaking_can_rotate(caplog):
    """1e-4 of the bandwidth of C4 breaking on a pair only 2e-3–4e-3 of it apart changes the curvature summed below
    the pair's gap by 0.48 of its size (the old check refused it at every tolerance); those gaps are < 30× the
    operation's energy mismatch, so only the energies judge C4 and the mirrors with it (moved by 2.6e-4 of the
    bandwidth: accepted at 1e-2, refused at 1e-3), and the log line counts the compared and skipped gap-checks.
    The symmetric model compares all."""
    import logging

    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    with caplog.at_level(logging.INFO, logger="qgtflow.geometry.covariance"):
        assert load_study(_narrow_study(4e-4, 1e-2)).config["symmetry"]["tolerance"] == 1e-2
    line = next(r.getMessage() for r in caplog.records if "symmetry check of 8 operations" in r.getMessage())
    assert "compared below 24 of 48 gap-checks, 24 skipped" in line and "no gap wide enough for ['C4'" in line, line
    with pytest.raises(ConfigError) as err:
        load_study(_narrow_study(4e-4, 1e-3))
    assert "operation C4" in str(err.value) and "band energies" in str(err.value), str(err.value)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="qgtflow.geometry.covariance"):
        load_study(_narrow_study(0.0, 1e-3))
    assert any("48 of 48 gap-checks, 0 skipped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("case", ["time_reversal", "c4_on_a_c2_model"])
def test_a_wrong_group_on_the_near_degenerate_model_is_refused_at_the_largest_tolerance(case):
    """Skipping gaps does not hide a wrong group: time reversal (no moment) keeps the energies but flips the
    curvature (2 of its size, at the gaps the mirror's zero mismatch leaves compared), and C4 on the model with an
    O(1) C4 breaking (0.3 cos kx σz) moves the energies by 6.6e-2 of the bandwidth: both refused at 0.1, naming the
    compared gap-checks when the curvature refuses."""
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    breaking, crystal, what = {"time_reversal": (4e-4, {"atoms": [["X", 0, 0, 0]]}, "Berry curvature"),
                               "c4_on_a_c2_model": (0.3, None, "band energies")}[case]
    with pytest.raises(ConfigError) as err:
        load_study(_narrow_study(breaking, 0.1, crystal))
    msg = str(err.value)
    assert err.value.key == "symmetry.tolerance" and err.value.value == 0.1 and "\n" not in msg, msg
    assert what in msg and "beyond the largest tolerance" in msg, msg
    if what == "Berry curvature":
        assert "is 2 of |Ω|" in msg and "compared below 48 of 96 gap-checks, 48 skipped" in msg, msg


@pytest.mark.parametrize("phi, accepted_at", [(1e-4, 1e-2), (1e-3, 0.1)])
def test_a_vanishing_curvature_is_judged_against_the_typical_one(phi, accepted_at):
    """The non-magnetic Haldane layer (mass 0.2) with a tiny flux φ: where its Ω vanishes by the mirrors, φ leaves
    a small one that a mirror maps to minus itself — 2 of its own size, which the old floor (1e-6 of the largest)
    refused at every tolerance. Against the typical curvature the mismatch scales with φ (7.6e-3 at 1e-4, 7.6e-2 at
    1e-3): accepted at 1e-2 and 0.1, refused below."""
    from qgtflow.geometry.covariance import first_broken_operation
    from qgtflow.models.builtin import build_model
    from qgtflow.models.symmetry import study_operations

    model = build_model("haldane", {"t1": 1.0, "t2": 0.1, "phi": phi, "mass": 0.2})
    ops = study_operations(model, {"atoms": HALDANE_CRYSTAL["atoms"]})
    assert first_broken_operation(model, ops, accepted_at) is None
    label, why, needed = first_broken_operation(model, ops, accepted_at / 10)
    assert label.startswith("m[") and "Berry curvature" in why and accepted_at / 10 < needed < accepted_at, why
    assert abs(needed / phi - 76) < 2, needed


@pytest.mark.parametrize("bad", [0, -1e-3, 0.2, "loose"])
def test_symmetry_tolerance_out_of_range_is_refused(bad):
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    with pytest.raises(ConfigError) as err:
        load_study(_broken_study(bad))
    assert err.value.key == "symmetry.tolerance" and "\n" not in str(err.value), str(err.value)


# ---- 003's spin responses (3D): the spin index an axial, T-odd vector

SPIN_RESPONSES = ["spin_sigma_lin_tau1", "spin_sigma_lin_tau0", "spin_beta_lin_tau1", "spin_beta_lin_tau0",
                  "spin_sigma_nl_tau2", "spin_sigma_nl_tau1", "spin_sigma_nl_tau0", "spin_beta_nl_tau2",
                  "spin_beta_nl_tau1", "spin_beta_nl_tau0"]
SPIN_W = np.stack([np.kron(np.eye(3), s) for s in (np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]),
                                                   np.diag([1.0, -1.0]))])  # p ⊗ spin: the Fe-like model's spin


def _fe_spin_study(reduce: bool, responses=SPIN_RESPONSES, **extra) -> dict:
    spin = [[[str(complex(v)) for v in row] for row in m] for m in SPIN_W]
    return {"model": {"name": "fe_like", "spin": spin, "wannier90": {"tb": str(FE_DATA / "fe_like_tb.dat"),
                                                                     "position_operator": False}},
            "symmetry": {"magnetic_moments": [[0.0, 0.0, 2.2]]}, "units": "natural", "tau": 1.0,
            "kgrid": {"sizes": [6], "symmetry_reduce": reduce, "chunk_size": 64},
            "mu": [-0.6, 0.3], "temperature": [0.13], "responses": responses, **extra}


def test_spin_responses_wedge_equals_the_full_grid(tmp_path):
    """The ten 003 spin responses of the spinful Fe-like model (4/mm'm', moment along z) symmetrised from the wedge
    of the 6³ grid equal the full grid to 1e-10 of their largest entry; the components their kinds say the group
    forbids vanish on the full grid (an independent check of the axial, T-odd spin index and of the time parities
    (−1)^p of the spin currents, (−1)^(p+1) of the magnetizations). Inversion leaves the linear spin currents
    and the nonlinear magnetizations (measured: wedge − full ≤ 1.4e-11 of the largest entry, β^(0)_{abc}; the
    others ≤ 2e-13); the other five are rounding on both grids (≤ 1e-10 in natural units, the kept ones O(1e-2..10)).
    Fermi levels inside the bands: above them every sum is a cancellation to rounding and compares nothing."""
    from qgtflow.api import evaluate
    from qgtflow.models.symmetry import symmetry_zero_components
    from qgtflow.wedge import CART_DIMS, stored_operations

    full = evaluate(_fe_spin_study(False), n_workers=0, workdir=tmp_path)
    wedge = evaluate(_fe_spin_study(True), n_workers=0, workdir=tmp_path)
    ops = stored_operations(wedge.attrs)
    assert len(ops) == 16
    nonzero = [n for n in SPIN_RESPONSES if ("sigma_lin" in n or "beta_nl" in n)]
    for name in SPIN_RESPONSES:
        f, w = full[name].values, wedge[name].values
        assert w.shape == f.shape and wedge[name].dims == full[name].dims
        if name in nonzero:
            assert np.abs(f).max() > 1e-3, name
            assert np.abs(w - f).max() <= 1e-10 * np.abs(f).max(), (name, np.abs(w - f).max(), np.abs(f).max())
        else:  # odd under inversion
            assert np.abs(f).max() < 1e-9, (name, np.abs(f).max())
            assert np.abs(w).max() <= max(np.abs(f).max(), 1e-30), name
    zeros = symmetry_zero_components(SPIN_RESPONSES, ops, 3)
    assert set(zeros) == set(SPIN_RESPONSES), zeros
    for name in nonzero:
        da = full[name]
        cart = [d for d in da.dims if d in CART_DIMS]
        names = np.array(["".join(c) for c in product(*(da[d].values.astype(str) for d in cart))])
        values = np.abs(da.values).reshape(-1, len(names))
        assert values[:, np.isin(names, zeros[name])].max() < 1e-10 * values.max(), name
        assert not np.isin(names, zeros[name]).all(), name



def test_spin_response_time_parities_and_where_they_are_not_classified():
    """{1, time reversal} in 3D keeps σ^(0)_{ab;c} (spin Hall), β^(1)_{ab} (Edelstein), σ^(2), σ^(0)_{abd;c},
    β^(1)_{abc} and kills the other five; in 2D nothing is claimed, and the wedge takes no AC form of the τ⁰ ones."""
    from qgtflow.models.symmetry import classified, forbidden_components, tensor_action

    time_reversal = [(np.eye(3), 0), (np.eye(3), 1)]
    even = {"spin_sigma_lin_tau0", "spin_beta_lin_tau1", "spin_sigma_nl_tau2", "spin_sigma_nl_tau0",
            "spin_beta_nl_tau1"}
    for name in SPIN_RESPONSES:
        rank = 3 if "lin" in name and "sigma" in name else (2 if "lin" in name else (4 if "sigma" in name else 3))
        assert np.allclose(tensor_action(name, time_reversal, 3), np.eye(3 ** rank) * (name in even)), name
        assert classified(name, 3) and not classified(name, 2), name
        assert forbidden_components(name, [(np.eye(2), 0), (-np.eye(2), 0)], 2) is None, name
    assert not classified("spin_sigma_lin_tau0", 3, ac=True) and not classified("spin_beta_lin_tau0", 3, ac=True)
    assert classified("spin_sigma_lin_tau1", 3, ac=True) and classified("sigma_optical", 2, ac=True)


def test_the_ac_forms_of_the_intrinsic_spin_responses_vanish_where_the_unitary_subgroup_says(tmp_path):
    """σ^(0)_{ab;c}(ω) and β^(0)_{ab}(ω) of the Fe-like model (4/mm'm', 16 operations, 8 with θ) on the full 6³
    grid at two photon energies: their claimed zeros (those of the 8 unitary operations: 14 of σ's 27, all 9 of
    β's, odd under inversion) are rounding (≤ 1e-13 of the largest entry) in both the cos ωt and the sin ωt part.
    The static kind's zeros (21 of σ's, the full magnetic group with the static parity) would be wrong here: the
    sin part, of the opposite time parity, has its largest entry among them (measured 0.25 vs 4e-16)."""
    from qgtflow.api import evaluate
    from qgtflow.models.symmetry import study_operations, symmetry_zero_components
    from qgtflow.study import load_study
    from qgtflow.wedge import CART_DIMS

    names = ["spin_sigma_lin_tau0", "spin_beta_lin_tau0"]
    cfg = _fe_spin_study(False, names, omega=[0.05, 0.4], broadening=0.02)
    ops = study_operations(load_study(cfg).model, cfg["symmetry"])
    zeros, static = symmetry_zero_components(names, ops, 3, ac=True), symmetry_zero_components(names, ops, 3)
    assert (len(ops), len(zeros["spin_sigma_lin_tau0"]), len(static["spin_sigma_lin_tau0"])) == (16, 14, 21)
    assert set(zeros["spin_sigma_lin_tau0"]) < set(static["spin_sigma_lin_tau0"])
    ds = evaluate(cfg, n_workers=0, workdir=tmp_path)
    da = ds["spin_sigma_lin_tau0"]
    cart = [d for d in da.dims if d in CART_DIMS]
    labels = np.array(["".join(c) for c in product(*(da[d].values.astype(str) for d in cart))])
    largest = float(np.abs(da).max())
    for phase in ("cos", "sin"):
        values = np.abs(da.sel(phase=phase).values).reshape(-1, len(labels))
        assert values[:, np.isin(labels, zeros["spin_sigma_lin_tau0"])].max() <= 1e-13 * largest, phase
    sin = np.abs(da.sel(phase="sin").values).reshape(-1, len(labels))
    assert sin[:, np.isin(labels, static["spin_sigma_lin_tau0"])].max() > 0.5 * sin.max()
    assert float(np.abs(ds["spin_beta_lin_tau0"]).max()) <= 1e-13 * largest
    assert len(zeros["spin_beta_lin_tau0"]) == 9


def test_unclassified_spin_studies_are_refused_with_the_wedge():
    """The AC form of σ^(0)_{ab;c} has zeros, no wedge (a 2D spin response without 3D lifts is refused likewise:
    tests/test_symmetry_spin2d.py)."""
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    cfg = _fe_spin_study(True, ["spin_sigma_lin_tau1", "spin_sigma_lin_tau0"], omega=[0.05])
    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    assert err.value.key == "responses" and err.value.value == ["spin_sigma_lin_tau0"], str(err.value)
    assert "for their zeros only" in str(err.value) and "\n" not in str(err.value)


def test_a_spin_operator_in_another_frame_is_refused_for_spin_responses():
    """The spin responses' zeros and wedge trust the model's spin operator: the Fe-like model with its spin
    components cycled (σ^x, σ^y, σ^z) → (σ^z, σ^x, σ^y) is refused naming the spin operator when a spin response is
    asked for, and accepted without one (the crystal is still the Hamiltonian's)."""
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    cycled = [[[str(complex(v)) for v in row] for row in m] for m in SPIN_W[[2, 0, 1]]]
    cfg = _fe_spin_study(False, ["sigma_ahe", "spin_sigma_lin_tau0"])
    cfg["model"] = {**cfg["model"], "spin": cycled}
    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    msg = str(err.value)
    assert err.value.key == "symmetry.tolerance" and "spin operator as a T-odd axial vector" in msg, msg
    assert "\n" not in msg
    load_study({**cfg, "responses": ["sigma_ahe"]})
    load_study(_fe_spin_study(False, ["sigma_ahe", "spin_sigma_lin_tau0"]))  # the true spin operator passes


def test_spin_symmetry_zeros_are_residuals_in_converge(tmp_path):
    """`converge` labels the spin index with the Cartesian ones, as the zeros name them (a separate 'z:' prefix
    made the zero labels unknown to the table): the Fe-like model's 4/mm'm' zeros of σ^(0)_{ab;c} and β^(1)_{abc}
    (63 of the 81 entries) are excluded as residuals at rounding."""
    from qgtflow.driver import converge

    st = {**_fe_spin_study(False, ["spin_sigma_lin_tau0", "spin_beta_nl_tau1"]), "mu": [-0.6],
          "kgrid": {"sizes": [2, 4, 6], "chunk_size": 64}}
    r = converge(st, n_workers=0, workdir=str(tmp_path / "w"), out_dir=str(tmp_path / "o"), max_rounds=3,
                 plots=False)
    excluded = r.table[r.table["verdict"] == "symmetry zero (excluded)"]
    assert len(excluded) == 63 and len(r.table) == 81, (len(excluded), len(r.table))
    assert "xyz" not in set(excluded[excluded["response"] == "spin_sigma_lin_tau0"]["component"])  # σ_xy;z kept
    assert r.table["symmetry_residual"].max() < 1e-12


def _slightly_stretched(bond: float, tolerance: float) -> dict:
    """The hexagonal Haldane layer with one of its three NN bonds ``bond`` (the others 1) and the hexagonal crystal:
    C3 and two of the three antiunitary mirrors broken, by different amounts."""
    cfg = _study("haldane_stretched", False)
    tb = cfg["model"]["tight_binding"]
    tb["lattice"] = [[1.0, 0.0], [0.5, float(np.sqrt(3) / 2)]]
    tb["hoppings"] = [[R, i, j, bond] if (R, i, j) == ([0, -1], 0, 1) else [R, i, j, t]
                      for R, i, j, t in tb["hoppings"]]
    return {**cfg, "symmetry": {**HALDANE_CRYSTAL, "tolerance": tolerance}}


def test_the_tolerance_refusal_names_every_broken_operation_and_its_need():
    """One stretched bond (1.002) breaks C3 and two mirrors of the hexagonal crystal by different amounts: the one-
    line refusal names each broken operation with the tolerance it needs (C3⁺ and C3⁻ share a label: the larger)
    and asks for the largest; at that tolerance the study loads."""
    import re

    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    with pytest.raises(ConfigError) as err:
        load_study(_slightly_stretched(1.002, 1e-3))
    msg = str(err.value)
    assert err.value.key == "symmetry.tolerance" and "\n" not in msg, msg
    groups = msg.split("(needed: ")[1].split(")")[0].split("; ")  # "need label, label" in increasing need
    needs = {label: value for value, labels in (g.split(" ", 1) for g in groups)
             for label in re.findall(r"C3|m\[[-0-9., ]+\]'", labels)}
    assert set(needs) == {"C3", "m[0.577, 1]'", "m[-0.577, 1]'"}, msg
    values = [float(g.split(" ", 1)[0]) for g in groups]
    assert values == sorted(values) and len(values) == 2 and 1e-3 < values[0], msg
    assert f"raise symmetry.tolerance to {groups[-1].split(' ', 1)[0]} or more" in msg, msg
    assert load_study(_slightly_stretched(1.002, 1.01 * values[-1])).model is not None
    assert "broken operations are beyond the largest tolerance 0.1" in _refusal(_slightly_stretched(1.3, 0.1))


def _refusal(cfg) -> str:
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    return str(err.value)
