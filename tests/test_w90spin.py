"""Spin operators of real Wannier90 models from seedname.spn + seedname.chk (issue 18 item 3): both .spn formats,
the Wannier gauge with and without disentanglement, the 003 spin responses of a _tb.dat model with its .spn, and
the refusals (spin between centres or cells beyond spn_tolerance; malformed files)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qgtflow.errors import ModelError
from qgtflow.models.w90spin import read_chk, read_spn, wannier_spin
from tests.data.make_fe_like import LATTICE, SIGMA
from tests.wannier_files import write_chk, write_spn

DATA = Path(__file__).parent / "data"
S_W = np.stack([np.kron(np.eye(3), SIGMA[c]) for c in range(3)])  # p ⊗ spin: spinor Wannier functions
MP = (2, 2, 2)
KPTS = np.stack(np.meshgrid(*[np.arange(n) / n for n in MP], indexing="ij"), -1).reshape(-1, 3)


def _unitary(rng, n, m=None):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    return q[:, :m] if m else q


def ab_initio(tmp_path, disentangled, spin_w=None, seed=0):
    """A .chk with a random gauge and the .spn of Bloch states carrying the Wannier-gauge spin ``spin_w`` (k-point
    resolved (nk, 3, 6, 6) or constant); disentangled: 8 bands, 7 inside the window, 2 bands of noise outside
    the Wannier subspace."""
    rng = np.random.default_rng(seed)
    nk, nw = len(KPTS), 6
    nb = 8 if disentangled else nw
    u = np.stack([_unitary(rng, nw) for _ in range(nk)])
    if disentangled:
        lwindow = np.zeros((nk, nb), bool)
        lwindow[:, :7] = True
        u_opt = np.zeros((nk, nb, nw), complex)
        u_opt[:, :7] = np.stack([_unitary(rng, 7, nw) for _ in range(nk)])
        V = np.zeros((nk, nb, nw), complex)
        V[:, :7] = u_opt[:, :7] @ u
    else:
        lwindow, u_opt, V = None, None, u
    spin_w = np.broadcast_to(S_W if spin_w is None else spin_w, (nk, 3, nw, nw))
    S = np.einsum("kbi,kcij,kdj->kcbd", V, spin_w, np.conj(V))
    if disentangled:  # noise on the complement of the Wannier subspace
        for k in range(nk):
            Q = np.linalg.svd(V[k], full_matrices=True)[0][:, nw:]
            X = rng.normal(size=(3, 2, 2)) + 1j * rng.normal(size=(3, 2, 2))
            S[k] += np.einsum("bi,cij,dj->cbd", Q, X + np.conj(np.swapaxes(X, 1, 2)), np.conj(Q))
    chk = write_chk(tmp_path / "fe.chk", LATTICE, KPTS, MP, u, np.zeros((nw, 3)), u_opt, lwindow)
    return S, chk


@pytest.mark.parametrize("disentangled", [False, True])
def test_spn_formats_and_wannier_gauge(tmp_path, disentangled):
    S, chk = ab_initio(tmp_path, disentangled)
    text = write_spn(tmp_path / "fe.spn", S, formatted=True)
    binary = write_spn(tmp_path / "fe_bin.spn", S, formatted=False)
    np.testing.assert_allclose(read_spn(text), S, atol=1e-14)
    np.testing.assert_allclose(read_spn(binary), S, atol=0)
    assert read_chk(chk)["V"].shape == (8, S.shape[-1], 6)
    spin, left = wannier_spin(binary, chk, 6, tolerance=0.05)
    np.testing.assert_allclose(spin, S_W, atol=1e-12)
    assert left < 1e-12


def test_spin_between_cells_beyond_the_tolerance_is_refused(tmp_path):
    """S(R = ±x) = 0.1 (a cos 2πk_1 term of the Wannier-gauge spin): refused in one line at spn_tolerance 0.05."""
    extra = 0.2 * np.cos(2 * np.pi * KPTS[:, 0])[:, None, None, None] * S_W[None]
    S, chk = ab_initio(tmp_path, False, spin_w=S_W[None] + extra)
    spn = write_spn(tmp_path / "fe.spn", S)
    with pytest.raises(ModelError, match=r"fe.spn.*0\.2.*spn_tolerance = 0.05") as info:
        wannier_spin(spn, chk, 6, tolerance=0.05)
    assert "\n" not in str(info.value)
    spin, left = wannier_spin(spn, chk, 6, tolerance=1.0)
    assert abs(left - 0.2) < 1e-12  # the 2-point mesh folds R = ±x together: 0.1 + 0.1


def test_malformed_spn_is_refused(tmp_path):
    S, chk = ab_initio(tmp_path, False)
    spn = write_spn(tmp_path / "fe.spn", S)
    spn.write_text("\n".join(spn.read_text().splitlines()[:-5]) + "\n")
    with pytest.raises(ModelError, match="fe.spn.*expected"):
        read_spn(spn)
    binary = write_spn(tmp_path / "fe_bin.spn", S, formatted=False)
    binary.write_bytes(binary.read_bytes()[:-7])
    with pytest.raises(ModelError, match="fe_bin.spn.*Fortran unformatted"):
        read_spn(binary)
    with pytest.raises(ModelError, match="num_wann"):
        wannier_spin(write_spn(tmp_path / "ok.spn", S), chk, 4, tolerance=0.05)


def test_hostile_spn_and_chk_sizes_are_refused_in_one_line(tmp_path):
    """A negative num_bands (formatted or not) and an empty checkpoint are refused naming the file and the count —
    they raised 'negative dimensions are not allowed' and a bare StopIteration."""
    from scipy.io import FortranFile

    spn = tmp_path / "neg.spn"
    spn.write_text("header\n-2 1\n" + "1 0\n" * 3)
    with pytest.raises(ModelError, match=r"neg\.spn: num_bands = -2; expected a positive integer"):
        read_spn(spn)
    with FortranFile(tmp_path / "neg_bin.spn", "w") as f:
        f.write_record(np.frombuffer(b"h" * 60, np.uint8))
        f.write_record(np.array([-2, 1], "<i4"))
        f.write_record(np.zeros(3, "<c16"))
    with pytest.raises(ModelError, match=r"neg_bin\.spn: num_bands = -2"):
        read_spn(tmp_path / "neg_bin.spn")
    (tmp_path / "empty.chk").write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.chk: ends before the header"):
        read_chk(tmp_path / "empty.chk")
    os.mkfifo(tmp_path / "pipe.spn")
    for path in (tmp_path / "pipe.spn", "/dev/zero"):  # a FIFO blocked the reader, /dev/zero filled the memory
        for reader in (read_spn, read_chk):
            with pytest.raises(ModelError, match="not a regular file"):
                reader(path)


def test_spin_responses_of_a_tb_model_with_its_spn(tmp_path):
    """The 003 spin responses of the Fe-like _tb.dat with its .spn equal those with the same spin matrices given
    as `spin:` (the spin operator reaches the responses through the model), and the attrs say where it came from."""
    from qgtflow.api import evaluate
    from qgtflow.study import load_study

    S, chk = ab_initio(tmp_path, True)
    spn = write_spn(tmp_path / "fe.spn", S, formatted=False)
    base = {"units": {"length": "angstrom"}, "kgrid": {"sizes": [4]}, "mu": [0.5], "temperature": [300.0],
            "responses": ["spin_sigma_lin_tau1", "spin_sigma_lin_tau0"]}  # allowed with inversion (β^(1) is not)
    # (this file has no off-diagonal position elements; the spin fields with the position operator are tested in
    # tests/test_spin_position.py and tests/test_position_fields.py)
    w90 = {"tb": str(DATA / "fe_like_tb.dat"), "position_operator": False}
    from_spn = {**base, "model": {"name": "fe", "wannier90": {**w90, "spn": str(spn)}}}
    given = {**base, "model": {"name": "fe", "wannier90": w90, "spin": _numeric(S_W)}}
    st = load_study(from_spn)
    np.testing.assert_allclose(st.model.spin, S_W, atol=1e-12)
    assert "spin operator: S(R = 0) of fe.spn" in st.model.convention
    a = evaluate(from_spn, n_workers=0, workdir=tmp_path / "a")
    b = evaluate(given, n_workers=0, workdir=tmp_path / "b")
    for name in base["responses"]:
        scale = np.abs(b[name].values).max()
        assert scale > 0
        np.testing.assert_allclose(a[name].values, b[name].values, atol=1e-10 * scale)
    assert "spin operator" in a.attrs["model_convention"]


def _numeric(mats):
    """Study-file form of numeric complex matrices (entries as strings such as '(0-1j)')."""
    return [[[str(complex(v)) for v in row] for row in m] for m in mats]
