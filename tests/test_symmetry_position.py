"""The symmetry check of a Wannier model whose position matrix elements A(R) break the declared group while its
Hamiltonian keeps it (issue 18: WannierBerri's GaAs_tb.dat, whose A(R) keep only m[1, 1, 0] of T_d, the same
pointwise in qgtflow and in the peer, ``benchmarks/gaas_peer_pointwise.py``): refused, with a message that says A(R)
carry the breaking and what to do; accepted with the position operator off."""

from __future__ import annotations

import numpy as np
import pytest

from qgtflow.errors import ConfigError
from qgtflow.study import load_study
from tests.wannier_files import write_tb

LATTICE = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 10.0]])  # Å, a square layer
PAULI = {"x": np.array([[0, 1], [1, 0]], complex), "y": np.array([[0, -1j], [1j, 0]]), "z": np.diag([1.0, -1.0])}


def qwz_blocks(m=-1.0, t=0.5, breaking=0.0):
    """Qi–Wu–Zhang on the layer (eV): H(k) = 2t (sin kx σx + sin ky σy) + (m + 2t (cos kx + cos ky)) σz, C4-symmetric
    with the moment along z; ``breaking`` · cos kx σ0 breaks C4 in H itself. (5 R vectors tile no Monkhorst–Pack
    supercell: no Wigner–Seitz correction.)"""
    sx, sy, sz = PAULI["x"], PAULI["y"], PAULI["z"]
    H = {(0, 0, 0): m * sz}
    for R, s in (((1, 0, 0), sx), ((0, 1, 0), sy)):
        H[R] = t * (sz - 1j * s) + (0.5 * breaking * np.eye(2) if R[0] else 0)
        H[tuple(-r for r in R)] = np.conj(H[R].T)
    return H


def a_x_only(size=0.3):
    """r(R = 0) with only an x component between the two orbitals (Å): breaks C4, leaves H alone."""
    r = np.zeros((2, 2, 3), complex)
    r[0, 1, 0] = r[1, 0, 0] = size
    return {(0, 0, 0): r}


def study(path, position_operator=True, tolerance=1e-3):
    return {"model": {"name": "qwz_r", "wannier90": {"tb": str(path), "dim": 2,
                                                       "position_operator": position_operator}},
            "units": "natural", "symmetry": {"atoms": [["X", 0, 0, 0]], "magnetic_moments": [[0, 0, 1.0]],
                                             "tolerance": tolerance},
            "kgrid": {"sizes": [8]}, "mu": [0.0], "temperature": [0.01], "responses": ["sigma_ahe"]}


def test_position_elements_that_break_the_group_are_named_in_the_refusal(tmp_path):
    """H keeps C4 (the model passes without A(R), and with a C4-symmetric A(R) = 0 off the centres); an x-only A(R)
    changes the summed curvature under C4 by O(1): refused at the largest tolerance, the message naming A(R) and
    the switch; accepted with position_operator: false."""
    path = write_tb(tmp_path / "qwz_tb.dat", LATTICE, qwz_blocks(), positions=a_x_only(), decimals=10)
    with pytest.raises(ConfigError) as err:
        load_study(study(path, tolerance=0.1))
    msg = str(err.value)
    assert err.value.key == "symmetry.tolerance" and "\n" not in msg, msg
    assert "the file's position matrix elements A(R) carry the breaking" in msg, msg
    assert "set model.wannier90.position_operator: false" in msg and "System_R.symmetrize" in msg, msg
    assert load_study(study(path, position_operator=False)).config["symmetry"]["tolerance"] == 1e-3
    symmetric = write_tb(tmp_path / "sym_tb.dat", LATTICE, qwz_blocks(), decimals=10)
    assert load_study(study(symmetric)).model.position is None  # centres only: nothing beyond them to attach


def test_a_hamiltonian_without_the_group_is_told_apart(tmp_path):
    """Declared without the moment, the group holds time reversal, which QWZ (a Chern insulator) breaks in H: the
    refusal says the model is still refused without A(R), by which operation; a breaking of the energies (which
    A(R) do not enter) gets no position-operator note."""
    path = write_tb(tmp_path / "qwz_tb.dat", LATTICE, qwz_blocks(), positions=a_x_only(), decimals=10)
    non_magnetic = study(path, tolerance=0.1)
    del non_magnetic["symmetry"]["magnetic_moments"]
    with pytest.raises(ConfigError) as err:
        load_study(non_magnetic)
    msg = str(err.value)
    assert "without its position operator (model.wannier90.position_operator: false) it is still refused, by" \
        in msg, msg
    assert "the Hamiltonian itself does not have the group" in msg and "\n" not in msg, msg
    broken_h = write_tb(tmp_path / "broken_tb.dat", LATTICE, qwz_blocks(breaking=0.05), positions=a_x_only(),
                        decimals=10)
    with pytest.raises(ConfigError) as err:
        load_study(study(broken_h))
    msg = str(err.value)
    assert "changes the band energies" in msg and "position operator" not in msg, msg


def test_split_pairs_are_exact_in_the_checked_curvature(tmp_path):
    """The check's Ω summed below a wide gap equals the geometry stage's (degeneracy threshold 1e-9) when the model
    has pairs split by less than the check's gap rule (1e-3 of the bandwidth): two copies of a 3-orbital layer with
    A(R), split by ±ε D on site, the second copy with half the position elements. Grouping the pairs in the
    position-operator terms (their mean energies) put the sum 1.5e-5 off (GaAs: 2e-4 off the peer)."""
    from qgtflow.geometry import covariance as cv
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models.wannier import read_tb
    from tests.test_position_operator import CENTRES, LATTICE as LAYER, model_blocks

    H, r = model_blocks()
    eps = 1e-3  # eV: pairs split by 0.8e-3–2e-3 eV, below 1e-3 of the ~4 eV bandwidth
    H2 = {R: np.kron(m, np.eye(2)) for R, m in H.items()}
    H2[(0, 0, 0)] = H2[(0, 0, 0)] + eps * np.kron(np.diag([1.0, -0.7, 0.4]), PAULI["z"])
    r2 = {R: np.stack([np.kron(m[..., a], np.diag([1.0, 0.5])) for a in range(3)], -1) for R, m in r.items()}
    model = read_tb(write_tb(tmp_path / "split_tb.dat", LAYER, H2, centres=np.repeat(CENTRES, 2, axis=0),
                             positions=r2, decimals=12), length_unit="angstrom", dim=2)
    k = np.random.default_rng(4).uniform(-1.5, 1.5, (6, 2))
    E, curv, gap = cv.energies_and_curvature(model, k)
    split = np.diff(E, axis=-1)[:, ::2]
    assert split.max() < gap and split.min() > 2 * cv.GROUP_FRACTION * (E.max() - E.min()), (split, gap)
    reference = compute_fields(model, k, 1e-9)["berry_curvature"]
    wide = np.diff(E, axis=-1) > 0.1
    ours, theirs = np.cumsum(curv, axis=1)[:, :-1], np.cumsum(reference, axis=1)[:, :-1]
    scale = np.abs(theirs).max()
    assert wide.sum() >= 6
    np.testing.assert_allclose(ours[wide], theirs[wide], atol=1e-9 * scale)
