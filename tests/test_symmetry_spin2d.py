"""2D spin responses' symmetry zeros from the 3D lifts of the layer's operations (models/symmetry.py,
``lifted_operations``): a Rashba layer on the square lattice keeps C4v × T of the planar crystal's D4h × T (the
lifts C2z and the vertical mirrors, not the inversion, m_z or the in-plane C2 axes), and the zeros that group gives
are zero on the full grid while every other component is not."""

from __future__ import annotations

import logging
from itertools import product

import numpy as np
import pytest

pytest.importorskip("spglib")

SQUARE = {"atoms": [["X", 0, 0, 0]]}  # one site per cell: a planar crystal, D4h × time reversal in 3D
SIGMA = {"x": np.array([[0, 1], [1, 0]], complex), "y": np.array([[0, -1j], [1j, 0]]),
         "z": np.diag([1.0 + 0j, -1.0])}


def _rashba(t=1.0, t2=0.23, lam=0.61, spin=("sigma_x", "sigma_y", "sigma_z")) -> dict:
    """H = −2t (cos kx + cos ky) − 4t' cos kx cos ky + λ (sin ky σx − sin kx σy): spin up/down on one site."""
    blocks = {(1, 0): -t * np.eye(2) + 0.5j * lam * SIGMA["y"], (0, 1): -t * np.eye(2) - 0.5j * lam * SIGMA["x"],
              (1, 1): -t2 * np.eye(2), (1, -1): -t2 * np.eye(2)}
    hops = []
    for R, T in blocks.items():
        for sign, M in ((1, T), (-1, T.conj().T)):
            hops += [[[sign * R[0], sign * R[1]], i, j, [float(M[i, j].real), float(M[i, j].imag)]]
                     for i in range(2) for j in range(2) if M[i, j] != 0]
    return {"name": "rashba_square", "spin": list(spin),
            "tight_binding": {"lattice": [[1.0, 0.0], [0.0, 1.0]], "positions": [[0, 0], [0, 0]], "hoppings": hops}}


def _study(responses, **model) -> dict:
    return {"model": _rashba(**model), "symmetry": SQUARE, "units": "natural", "tau": 1.0,
            "kgrid": {"sizes": [16], "chunk_size": 256}, "mu": [-2.1, -0.7, 0.4], "temperature": [0.2],
            "responses": responses}


RESPONSES = ["spin_beta_lin_tau1", "spin_sigma_lin_tau0"]
# hand-derived (module doc of models/symmetry.py): the Edelstein β_{c;a} (stored (spin, i)) and the spin Hall
# σ_{ab;c} (stored (i, j, spin)) of C4v × T (Rashba: β_xy = −β_yx, σ_xy;z = −σ_yx;z) and of D2d × T in 2D
# (Dresselhaus: β_xx = −β_yy, the spin Hall pair unchanged: S4 keeps s_z as C4 does)
KEPT = {"rashba": {"spin_beta_lin_tau1": ["xy", "yx"], "spin_sigma_lin_tau0": ["xyz", "yxz"]},
        "dresselhaus": {"spin_beta_lin_tau1": ["xx", "yy"], "spin_sigma_lin_tau0": ["xyz", "yxz"]}}
SPIN = {"rashba": ("sigma_x", "sigma_y", "sigma_z"), "dresselhaus": ("sigma_y", "sigma_x", "sigma_z")}


def _labels(response: str) -> list[str]:
    from qgtflow.models.symmetry import stored_index_sizes

    return ["".join("xyz"[i] for i in idx) for idx in product(*(range(n) for n in stored_index_sizes(response, 2)))]


@pytest.mark.parametrize("case", ["rashba", "dresselhaus"])
def test_lifts_the_spin_operator_respects_give_the_hand_derived_zeros(case):
    """The planar square crystal gives 32 lifts (D4h × T); the Rashba layer keeps the 16 of C4v × T (C2z, not the
    inversion; the vertical mirrors, not the in-plane C2 axes nor m_z), the Dresselhaus layer (spin x ↔ y) the 16
    of D2d × T (S4 for C4, the in-plane C2 axes for the line mirrors); the zeros are the hand-derived ones."""
    from qgtflow.geometry.covariance import operation_label
    from qgtflow.models.symmetry import lifted_operations, study_symmetry_zeros
    from qgtflow.study import load_study

    st = load_study(_study(RESPONSES, spin=SPIN[case]))
    lifts, why = lifted_operations(st.model, st.config["symmetry"])
    assert why is None and len(lifts) == 16, why
    names = {operation_label(R, t) for R, t in lifts}
    assert "C2[0, 0, 1]" in names and "-1" not in names and "m[0, 0, 1]" not in names, names
    assert ("m[1, 0, 0]" in names) == (case == "rashba") and ("C2[1, 0, 0]" in names) == (case != "rashba"), names
    zeros = study_symmetry_zeros(st.model, st.config["symmetry"], RESPONSES)
    for name in RESPONSES:
        assert zeros[name] == [c for c in _labels(name) if c not in KEPT[case][name]], (name, zeros[name])


@pytest.mark.parametrize("case", ["rashba", "dresselhaus"])
def test_the_claimed_zeros_vanish_on_the_full_grid_and_nothing_else_does(case, tmp_path):
    """Computed on the full 16² grid at three Fermi levels: every claimed zero is ≤ 1e-12 of the response's largest
    entry, every other component is ≥ 1e-3 of it at some Fermi level (no over-claiming)."""
    from qgtflow.api import evaluate
    from qgtflow.models.symmetry import study_symmetry_zeros
    from qgtflow.study import load_study
    from qgtflow.wedge import CART_DIMS

    cfg = _study(RESPONSES, spin=SPIN[case])
    st = load_study(cfg)
    zeros = study_symmetry_zeros(st.model, st.config["symmetry"], RESPONSES)
    ds = evaluate(cfg, n_workers=0, workdir=tmp_path)
    for name in RESPONSES:
        da = ds[name]
        cart = [d for d in da.dims if d in CART_DIMS]
        labels = np.array(["".join(c) for c in product(*(da[d].values.astype(str) for d in cart))])
        values = np.abs(np.moveaxis(da.values, [da.dims.index(d) for d in cart], range(-len(cart), 0)))
        values = values.reshape(-1, len(labels))
        largest = values.max()
        zero = np.isin(labels, zeros[name])
        assert largest > 1e-6 and values[:, zero].max() <= 1e-12 * largest, (name, values[:, zero].max(), largest)
        assert (values[:, ~zero].max(axis=0) >= 1e-3 * largest).all(), (name, labels[~zero],
                                                                       values[:, ~zero].max(axis=0) / largest)


def test_no_lift_for_a_spin_operator_in_another_frame_leaves_them_unclassified(caplog):
    """Spin components cycled (σ^z, σ^x, σ^y): no lift of C4 (or of most mirrors) maps the spin as an axial vector,
    so the 2D spin responses get no zeros (nothing guessed), a warning names the operations, and the orbital
    responses keep theirs; the study itself loads (the crystal is still the Hamiltonian's)."""
    from qgtflow.models.symmetry import study_symmetry_zeros
    from qgtflow.study import load_study

    st = load_study(_study(RESPONSES + ["sigma_drude"], spin=("sigma_z", "sigma_x", "sigma_y")))
    with caplog.at_level(logging.WARNING, logger="qgtflow.models.symmetry"):
        zeros = study_symmetry_zeros(st.model, st.config["symmetry"], st.responses)
    assert zeros == {"sigma_drude": ["xy", "yx"]}, zeros
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "left unclassified" in warning[0] and "no 3D lift of ['C2', 'C4'" in warning[0]


def test_without_lifts_the_wedge_refuses_the_2d_spin_responses():
    """With the spin components cycled no lift exists: kgrid.symmetry_reduce is refused naming responses and the
    spin responses, saying why (its symmetrisation would need the lifts)."""
    from qgtflow.errors import ConfigError
    from qgtflow.study import load_study

    cfg = _study(["sigma_drude", "spin_beta_lin_tau1"], spin=("sigma_z", "sigma_x", "sigma_y"))
    cfg["kgrid"] = {**cfg["kgrid"], "symmetry_reduce": True}
    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    msg = str(err.value)
    assert err.value.key == "responses" and err.value.value == ["spin_beta_lin_tau1"] and "\n" not in msg, msg
    assert "no 3D lift of ['C2', 'C4'" in msg, msg


@pytest.mark.parametrize("case", ["rashba", "dresselhaus"])
def test_the_2d_spin_wedge_equals_the_full_grid(case, tmp_path):
    """kgrid.symmetry_reduce on the 16² grid (45 of 256 points): the store carries the 16 kept lifts (3 × 3)
    whatever the responses (σ_Drude alone too: the kgrid contract does not follow the responses, so a spin response
    added later must find them), and the symmetrised wedge sums of the two spin responses and σ_Drude equal the
    full grid's to 1e-10 of their largest entry."""
    from qgtflow.api import evaluate
    from qgtflow.wedge import stored_operations

    names = RESPONSES + ["sigma_drude"]
    full = evaluate(_study(names, spin=SPIN[case]), n_workers=0, workdir=tmp_path / "full")
    cfg = _study(["sigma_drude"], spin=SPIN[case])
    cfg["kgrid"] = {**cfg["kgrid"], "symmetry_reduce": True}
    drude = evaluate(cfg, n_workers=0, workdir=tmp_path / "wedge")
    assert all(np.shape(R) == (3, 3) for R, _ in stored_operations(drude.attrs))
    wedge = evaluate({**cfg, "responses": names}, n_workers=0, workdir=tmp_path / "wedge2")
    ops = stored_operations(wedge.attrs)
    assert len(ops) == 16 and all(np.shape(R) == (3, 3) for R, _ in ops)
    for name in names:
        f, w = full[name].values, wedge[name].values
        assert w.shape == f.shape and np.abs(f).max() > 1e-6, name
        assert np.abs(w - f).max() <= 1e-10 * np.abs(f).max(), (name, np.abs(w - f).max(), np.abs(f).max())


def test_converge_excludes_the_2d_spin_zeros_as_residuals(tmp_path):
    """`converge` on the Rashba layer: the lifted group's zeros of β^(1) and σ^(0) are the excluded components of
    convergence.csv (labelled as the zeros name them), at rounding; the kept ones are judged."""
    from qgtflow.driver import converge

    st = {**_study(RESPONSES), "mu": [-0.7], "kgrid": {"sizes": [8, 12, 16], "chunk_size": 256}}
    r = converge(st, n_workers=0, workdir=str(tmp_path / "w"), out_dir=str(tmp_path / "o"), max_rounds=3,
                 plots=False)
    table = r.table
    excluded = table[table["verdict"] == "symmetry zero (excluded)"]
    for name in RESPONSES:
        got = set(excluded[excluded["response"] == name]["component"])
        assert got == set(_labels(name)) - set(KEPT["rashba"][name]), (name, got)
        judged = set(table[(table["response"] == name) & (table["verdict"] != "symmetry zero (excluded)")]
                     ["component"])
        assert judged == set(KEPT["rashba"][name]), (name, judged)
    assert table["symmetry_residual"].max() < 1e-12
