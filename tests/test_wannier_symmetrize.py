"""`model.wannier90.symmetrize` (issue 18): a perturbed zincblende Wannier90 file (T_d + T, sp3 spinors, A(R) with
on-site and bond elements) is refused by the study's symmetry check as read and passes it symmetrised; its
symmetry-forbidden AHC and Berry-curvature dipole on a full grid vanish to rounding; the spec comes from the .win;
a wrong projection is refused in one line naming the key (exit 2 from the CLI); recorded in the hash and attrs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("spglib")

from qgtflow.errors import ConfigError, ModelError  # noqa: E402
from qgtflow.study import load_study  # noqa: E402
from tests.symmetric_models import (A_FCC, perturbed, perturbed_positions, zincblende,  # noqa: E402
                                    zincblende_positions)
from tests.wannier_files import write_tb  # noqa: E402

A_ANG = 5.65  # Å, cubic


def _files(tmp_path, projections="Ga: sp3\nAs: sp3"):
    _, atoms, _, table = zincblende(("Ga", "As"), "sp3", 0.3)
    rtab = zincblende_positions(("Ga", "As"), "sp3", True)
    noisy = perturbed(table, 0.002)
    rnoisy = perturbed_positions(rtab, 0.002)
    path = write_tb(tmp_path / "gaas_tb.dat", A_FCC * A_ANG, noisy, decimals=10,
                    positions={R: m * A_ANG for R, m in rnoisy.items()})
    rows = "\n".join(f"{a[0]} {a[1]} {a[2]} {a[3]}" for a in atoms)
    (tmp_path / "gaas.win").write_text(
        f"num_wann = 16\nspinors = true\nbegin projections\n{projections}\nend projections\n"
        f"begin atoms_frac\n{rows}\nend atoms_frac\n")
    return path


def _study(path, symmetrize=True, responses=("sigma_ahe",), size=4, symmetry=True):
    wannier = {"tb": str(path)}
    if symmetrize is not None:
        wannier["symmetrize"] = symmetrize
    out = {"model": {"name": "gaas_like", "wannier90": wannier}, "units": "natural",
           "kgrid": {"sizes": [size]}, "mu": [1.0], "temperature": [0.05], "responses": list(responses)}
    return {**out, "symmetry": {}} if symmetry else out


def test_the_symmetrised_file_passes_the_check_the_raw_one_fails(tmp_path):
    """Read as is (symmetrize: false), the file breaks T_d beyond the default tolerance (refused); symmetrize: true
    (projections, spinors and atoms from the .win) passes, H and A changed by the recorded relative amounts, and the
    hash differs from the unsymmetrised model's. Absent, the key defaults to the study's crystal because the study
    declares one and the .win has projections; without a projections block the file is used as it is (refused)."""
    path = _files(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_study(_study(path, False))
    assert err.value.key == "symmetry.tolerance"
    auto = load_study(_study(path, None))
    assert auto.config["model"]["wannier90"]["symmetrize"] is True and "symmetrized over" in auto.model.convention
    assert "symmetrize" not in load_study(_study(path, None, symmetry=False)).config["model"]["wannier90"]
    win = tmp_path / "gaas.win"
    text = win.read_text()
    win.write_text(text.replace("begin projections\nGa: sp3\nAs: sp3\nend projections\n", ""))
    with pytest.raises(ConfigError):
        load_study(_study(path, None))
    win.write_text(text)
    study = load_study(_study(path))
    conv = study.model.convention
    assert "symmetrized over the crystal's space group × time reversal (non-magnetic) (48 operations" in conv, conv
    assert "relative change of H(R) " in conv and "of A(R) beyond the centres" in conv, conv
    assert study.model.params["symmetrize"]["projections"] == ["Ga: sp3", "As: sp3"]
    assert study.model.params["symmetrize"]["spinors"] is True
    raw = load_study(_study(path, False, symmetry=False)).model
    assert raw.identity() != study.model.identity()


def test_forbidden_ahc_and_bcd_vanish_on_the_full_grid(tmp_path):
    """T_d × T forbids every AHC and BCD component: the symmetrised model's full-grid values are rounding (the
    raw file's are not)."""
    from qgtflow.api import evaluate

    path = _files(tmp_path)
    responses = ("sigma_ahe", "berry_curvature_dipole")
    sym = evaluate(_study(path, responses=responses, size=3), n_workers=0, workdir=tmp_path / "s")
    raw = evaluate(_study(path, False, responses=responses, size=3, symmetry=False), n_workers=0,
                   workdir=tmp_path / "r")
    for name in responses:
        s, r = float(np.abs(sym[name]).max()), float(np.abs(raw[name]).max())
        assert s < 1e-9 * r, (name, s, r)
    assert "symmetrized over the crystal's space group" in sym.attrs["model_convention"]
    assert "symmetrized" not in raw.attrs["model_convention"]


def test_a_wrong_projection_is_refused_naming_the_key(tmp_path, capsys):
    """s;p declared on Ga where the file has sp3 hybrids: same count, a large change, refused in one line; a count
    that does not add up to num_wann too; from the CLI, exit 2."""
    path = _files(tmp_path, projections="Ga: s;p\nAs: sp3")
    with pytest.raises(ModelError) as err:
        load_study(_study(path))
    msg = str(err.value)
    assert "model.wannier90.symmetrize: changes H(R) by" in msg and "\n" not in msg, msg
    with pytest.raises(ModelError, match=r"model.wannier90.symmetrize.projections: .* give 8 Wannier functions"):
        load_study(_study(path, {"spinors": False, "projections": {"Ga": "sp3", "As": "sp3"}}))
    import yaml

    from qgtflow.cli import main

    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(_study(path)))
    assert main(["evaluate", str(cfg), "--out", str(tmp_path / "r.zarr")]) == 2
    assert "model.wannier90.symmetrize" in capsys.readouterr().err


def test_moments_must_match_the_studys(tmp_path):
    """Averaged over the magnetic group of moments along z but checked against the study's non-magnetic crystal:
    refused naming the key (the check would judge the model against a group it was not averaged over)."""
    path = _files(tmp_path)
    spec = {"magnetic_moments": [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]}
    with pytest.raises(ConfigError) as err:
        load_study(_study(path, spec))
    assert err.value.key == "model.wannier90.symmetrize.magnetic_moments"
    study = load_study({**_study(path, spec), "symmetry": {"magnetic_moments": spec["magnetic_moments"]}})
    assert "magnetic space group of the moments (8 operations" in study.model.convention


def test_unsupported_projections_leave_the_file_as_it_is(tmp_path, caplog):
    """A .win whose projections the module does not treat (spin-selective, (u)): the default does not symmetrise
    (a warning says why), so the study behaves as without the key."""
    from qgtflow.models.config import with_symmetrize_default

    path = _files(tmp_path, projections="Ga: sp3(u)\nAs: sp3")
    cfg = {"wannier90": {"tb": str(path)}}
    with caplog.at_level("WARNING"):
        assert with_symmetrize_default(cfg, {"tolerance": 1e-3}) is cfg
    assert "projections are not symmetrised" in caplog.text
    sited = _files(tmp_path, projections="f=0.1,0,0: sp3\nAs: sp3")
    assert with_symmetrize_default({"wannier90": {"tb": str(sited)}}, {}) == {"wannier90": {"tb": str(sited)}}
    assert "expected a site on one of the atoms" in caplog.text
    assert with_symmetrize_default({"wannier90": {"tb": str(path), "dim": 2}}, {}) == {
        "wannier90": {"tb": str(path), "dim": 2}}


def test_an_hr_file_without_centres(tmp_path):
    """_hr.dat + .win (lattice, atoms, projections, spinors), no centres (convention I): H alone is averaged, the
    energies come out symmetric under every operation to 1e-12 eV."""
    from qgtflow.models.symmetrize import space_operations
    from qgtflow.models.tight_binding import TightBindingModel
    from qgtflow.models.wannier import read_hr, write_hr

    A, atoms, _, table = zincblende(("Ga", "As"), "sp3", 0.3)
    noisy = TightBindingModel.from_table("noisy", A * A_ANG, np.zeros((16, 3)), perturbed(table, 0.002),
                                         convention="I")
    path = write_hr(noisy, tmp_path / "zb_hr.dat")
    cell = "\n".join(" ".join(f"{x:.10f}" for x in row) for row in A * A_ANG)
    rows = "\n".join(f"{a[0]} {a[1]} {a[2]} {a[3]}" for a in atoms)
    (tmp_path / "zb.win").write_text(f"spinors = .true.\nbegin unit_cell_cart\n{cell}\nend unit_cell_cart\n"
                                     f"begin atoms_frac\n{rows}\nend atoms_frac\n"
                                     "begin projections\nGa: l=-3\nAs: sp3\nend projections\n")
    model = read_hr(path, symmetrize=True, length_unit="angstrom")
    assert "relative change of H(R)" in model.convention and "A(R)" not in model.convention.split("symmetrized")[1]
    k = np.array([[0.3, -0.7, 1.1]])
    e0 = np.linalg.eigvalsh(model.unique_derivatives(k, order=0)[:, 0])
    for op in space_operations(A, atoms):
        gk = (-1.0 if op.time_reversal else 1.0) * k @ op.cartesian.T
        assert np.abs(np.linalg.eigvalsh(model.unique_derivatives(gk, order=0)[:, 0]) - e0).max() < 1e-12


def test_a_bcc_iron_like_file_with_fe_projections(tmp_path):
    """A .win as WannierBerri's Fe.win (``Fe: sp3d2;dxy;dxz;dyz``, spinors) beside an 18-band file that is an exactly
    4/mm'm'-symmetric model plus 0.2 % noise: the study declaring the moment (no key) symmetrises it by default with
    the magnetic group (16 operations), a small change, and passes the check."""
    from qgtflow.models.symmetrize import orbital_layout, symmetrize_tables

    A = 2.87 * 0.5 * np.array([[1.0, 1, 1], [-1, 1, 1], [-1, -1, 1]])
    atoms, moments = [["Fe", 0.0, 0.0, 0.0]], [[0.0, 0.0, 2.2]]
    rng = np.random.default_rng(8)
    table = {}
    for R in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 1, 1)]:
        m = rng.normal(size=(18, 18)) + 1j * rng.normal(size=(18, 18))
        mR = tuple(-r for r in R)
        table.update({R: m + m.conj().T} if R == mR else {R: m, mR: m.conj().T})
    layout = orbital_layout(atoms, ["Fe: sp3d2;dxy;dxz;dyz"], 18, spinors=True)
    exact = symmetrize_tables(A, atoms, layout, table, np.zeros((18, 3)), magnetic_moments=moments).table
    path = write_tb(tmp_path / "fe_tb.dat", A, perturbed({R: m for R, m in exact.items() if np.any(m)}, 0.002),
                    decimals=10)
    (tmp_path / "fe.win").write_text("num_wann = 18\nspinors = T\nbegin projections\nFe: sp3d2;dxy;dxz;dyz\n"
                                     "end projections\nbegin atoms_frac\nFe 0.0 0.0 0.0\nend atoms_frac\n")
    study = load_study({**_study(path, None), "symmetry": {"magnetic_moments": moments}})
    conv = study.model.convention
    assert "magnetic space group of the moments (16 operations; projections Fe: sp3d2;dxy;dxz;dyz, spinors" in conv
    change = float(conv.split("relative change of H(R) ")[1].split(",")[0].split(";")[0].split(")")[0])
    assert 1e-3 < change < 0.05, conv  # 0.2 % of the largest entry: 2.7 % of the norm


def test_site_projections_are_symmetrised_by_default(tmp_path):
    """The .win's projections by site (f= on Ga, c= in bohr on As, as Wannier90 allows) give the same symmetrised
    model as the species lines: the default turns on, and H agrees to rounding."""
    _, atoms, _, _ = zincblende(("Ga", "As"), "sp3", 0.3)
    cart = np.array(atoms[1][1:], float) @ A_FCC * A_ANG / 0.529177210903
    lines = f"bohr\nf=1,0,0: sp3\nc={cart[0]},{cart[1]},{cart[2]}: sp3:r=1"
    path = _files(tmp_path, projections=lines)
    cell = "\n".join(" ".join(f"{x:.10f}" for x in row) for row in A_FCC * A_ANG)
    win = tmp_path / "gaas.win"
    win.write_text(win.read_text() + f"begin unit_cell_cart\n{cell}\nend unit_cell_cart\n")
    sited = load_study(_study(path, None))
    assert sited.config["model"]["wannier90"]["symmetrize"] is True
    win.write_text(win.read_text().replace(lines, "Ga: sp3\nAs: sp3"))
    species = load_study(_study(path, None))
    a, b = sited.model.hopping_table, species.model.hopping_table
    assert a.keys() == b.keys() and max(np.abs(a[R] - b[R]).max() for R in a) < 1e-12


def test_te_like_file_labelled_in_its_centres_cells(tmp_path):
    """A symmetric Te-like _tb.dat (s on each site, then p, spinors) whose second and third sites' functions are
    labelled one lattice vector from the atoms the .win lists (WannierBerri's Te file): read with the .win's site
    lines it is recognised as symmetric (the cells from its centres), not refused; its energies unchanged."""
    from qgtflow.models.wannier import read_tb
    from tests.test_symmetrize import TE_ATOMS, TE_LATTICE, TE_SITES, te_in_centres_cells

    _, _, _, moved, frac = te_in_centres_cells(2)
    path = write_tb(tmp_path / "te_tb.dat", TE_LATTICE, moved, decimals=12, centres=frac @ TE_LATTICE)
    rows = "\n".join(f"Te {a[1]} {a[2]} {a[3]}" for a in TE_ATOMS)
    sites = "\n".join(TE_SITES)
    (tmp_path / "te.win").write_text(f"num_wann = 24\nspinors = .true.\nbegin projections\n{sites}\nend projections\n"
                                     f"begin atoms_frac\n{rows}\nend atoms_frac\n")
    raw = read_tb(path, length_unit="angstrom", position_operator=False)
    model = read_tb(path, length_unit="angstrom", position_operator=False, symmetrize=True)
    change = float(model.convention.split("relative change of H(R) ")[1].split()[0].rstrip(",;"))
    assert change < 1e-9
    k = np.array([[0.3, -0.7, 1.1]])
    e0, e1 = (np.linalg.eigvalsh(m.unique_derivatives(k, order=0)[:, 0]) for m in (raw, model))
    assert np.abs(e1 - e0).max() < 1e-9
