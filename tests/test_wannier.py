"""Tight-binding importers: Wannier90 _hr.dat/_tb.dat/_wsvec.dat, write_hr round trip, PythTB, TBmodels."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from qgtflow.errors import ModelError
from qgtflow.models.builtin import haldane
from qgtflow.models.tight_binding import TightBindingModel
from qgtflow.models.wannier import (
    from_pythtb,
    from_tbmodels,
    read_hr,
    read_tb,
    write_hr,
)

HALDANE = {"t1": 1.0, "t2": 0.15, "phi": 0.7, "mass": 0.2}
HALDANE_POS = np.array([[0.0, 0.0], [1 / 3, 1 / 3]])


def random_k(model, n=12, seed=0):
    """Random k over two Brillouin zones (Cartesian), so wrong phases cannot hide."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, model.dim)) @ model.reciprocal_vectors


def assert_same_model(a, b, k, order=3, atol=1e-12):
    for o, (x, y) in enumerate(zip(a.derivatives(k, order), b.derivatives(k, order))):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"derivative order {o}")


def bloch_u(model, positions, k):
    """diag e^{ik·τ}: H^II = U^† H^I U."""
    tau = np.asarray(positions) @ model.lattice
    return np.exp(1j * (k @ tau.T))  # (N, n)


# -- write_hr / read_hr round trip ----------------------------------------------------------------

def test_haldane_round_trip_convention_ii_with_positions(tmp_path):
    ref = haldane(**HALDANE)
    path = write_hr(ref, tmp_path / "haldane_hr.dat")
    got = read_hr(path, lattice=ref.lattice, lattice_unit="nm", length_unit="nm",
                  positions=HALDANE_POS, convention="II")
    assert got.dim == 2 and got.nbands == 2 and "convention II" in got.convention
    np.testing.assert_allclose(got.lattice, ref.lattice, atol=1e-15)
    assert_same_model(ref, got, random_k(ref))


def test_haldane_round_trip_convention_i(tmp_path):
    ref = haldane(**HALDANE)
    path = write_hr(ref, tmp_path / "haldane_hr.dat")
    got = read_hr(path, lattice=ref.lattice, lattice_unit="nm", length_unit="nm")  # no positions → I
    assert "convention I:" in got.convention
    hops = [(R, i, j, t) for R, m in ref.hopping_table.items() for i, j in zip(*np.nonzero(m)) for t in [m[i, j]]]
    ref_i = TightBindingModel("haldane_I", ref.lattice, HALDANE_POS, hops, convention="I")
    k = random_k(ref, seed=1)
    assert_same_model(ref_i, got, k)
    # independent check of the phase convention: H^I = U H^II U^†
    u = bloch_u(ref, HALDANE_POS, k)
    h_ii = ref.derivatives(k, 0)[0]
    np.testing.assert_allclose(got.derivatives(k, 0)[0], u[:, :, None] * h_ii * u.conj()[:, None, :], atol=1e-12)
    with pytest.raises(AssertionError):  # the two conventions really differ
        np.testing.assert_allclose(got.derivatives(k, 0)[0], h_ii, atol=1e-6)


def test_read_hr_units_and_3d_lattice_from_win(tmp_path):
    ref = haldane(**HALDANE)
    path = write_hr(ref, tmp_path / "hal_hr.dat")
    (tmp_path / "hal.win").write_text("num_wann = 2\n! comment\nBegin Unit_Cell_Cart\n  ang\n"
                                      "  2.46 0.0 0.0\n  1.23 2.130422493 0.0\n  0.0 0.0 20.0\nEnd Unit_Cell_Cart\n")
    got = read_hr(path)  # default: nm, 3D
    assert got.dim == 3
    np.testing.assert_allclose(got.lattice[0], [0.246, 0, 0])
    np.testing.assert_allclose(got.lattice[2], [0, 0, 2.0])
    got2 = read_hr(path, dim=2, length_unit="angstrom", energy_unit="meV")
    assert got2.dim == 2
    np.testing.assert_allclose(got2.lattice, [[2.46, 0], [1.23, 2.130422493]])
    k = random_k(got2)
    np.testing.assert_allclose(got2.derivatives(k, 0)[0],
                               1000 * got.derivatives(np.pad(10 * k, ((0, 0), (0, 1))), 0)[0], atol=1e-9)


def test_win_in_bohr(tmp_path):
    ref = haldane()
    path = write_hr(ref, tmp_path / "x_hr.dat")
    (tmp_path / "x.win").write_text("begin unit_cell_cart\nbohr\n1 0 0\n0 1 0\n0 0 1\nend unit_cell_cart\n")
    got = read_hr(path, length_unit="angstrom")
    np.testing.assert_allclose(np.diag(got.lattice), 0.529177210903, rtol=1e-9)


# -- a hand-written model with degeneracy weights -------------------------------------------------

R_LIST = [(0, 0, 0)] + [s * np.array(v) for v in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, -1, 0),
                                                  (1, 0, 1), (0, 1, 1), (2, 0, 0)] for s in (1, -1)]
R_LIST = [tuple(int(x) for x in R) for R in R_LIST]  # 17 vectors: two degeneracy lines
DEG = {R: (4 if R == (0, 0, 0) else 2 if abs(R[0]) == 1 else 1) for R in R_LIST}
LAT_ANG = np.array([[3.0, 0.0, 0.0], [0.5, 2.8, 0.0], [0.2, 0.3, 4.0]])
TAU_FRAC = np.array([[0.1, 0.2, 0.0], [0.55, 0.4, 0.3]])


def raw_hoppings(seed=3):
    """Raw (undivided) H(R) with H(−R) = H(R)^†, rounded to the 6 decimals of Wannier90 files."""
    rng = np.random.default_rng(seed)
    raw = {}
    for R in R_LIST:
        mR = tuple(-r for r in R)
        if mR in raw:
            raw[R] = raw[mR].conj().T
            continue
        m = np.round(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)), 6)
        if R == (0, 0, 0):
            m = np.round((m + m.conj().T) / 2, 6)
        raw[R] = m
    return raw


def write_hand_hr(path, raw):
    out = ["hand-written test file", "2", f"{len(R_LIST)}"]
    degs = [DEG[R] for R in R_LIST]
    out += [" ".join(f"{d:4d}" for d in degs[:15]), " ".join(f"{d:4d}" for d in degs[15:])]
    for R in R_LIST:
        for j in range(2):
            for i in range(2):
                h = raw[R][i, j]
                out.append(f"{R[0]:5d}{R[1]:5d}{R[2]:5d}{i + 1:5d}{j + 1:5d}{h.real:12.6f}{h.imag:12.6f}")
    path.write_text("\n".join(out) + "\n")
    return path


def write_hand_tb(path, raw, tau_cart):
    out = [" written on 01Jan2026 at 00:00:00"]
    out += ["  " + "  ".join(f"{x:.16f}" for x in row) for row in LAT_ANG]
    out += ["           2", f"          {len(R_LIST)}"]
    degs = [DEG[R] for R in R_LIST]
    out += ["".join(f"{d:5d}" for d in degs[:15]), "".join(f"{d:5d}" for d in degs[15:])]
    for R in R_LIST:
        out += ["", "".join(f"{r:5d}" for r in R)]
        for j in range(2):
            for i in range(2):
                h = raw[R][i, j]
                out.append(f"{i + 1:5d}{j + 1:5d}   {h.real:15.8E} {h.imag:15.8E}")
    rng = np.random.default_rng(7)
    for R in R_LIST:
        out += ["", "".join(f"{r:5d}" for r in R)]
        for j in range(2):
            for i in range(2):
                if R == (0, 0, 0) and i == j:  # raw r(0) = N_deg(0) × centre
                    xyz = DEG[R] * tau_cart[i] + 0j
                else:
                    xyz = rng.normal(size=3) * 0.01 + 1j * rng.normal(size=3) * 0.01
                out.append(f"{i + 1:5d}{j + 1:5d}   " + " ".join(f"{c.real:15.8E} {c.imag:15.8E}" for c in xyz))
    path.write_text("\n".join(out) + "\n")
    return path


def expected_model(raw, convention="I", shifts=None):
    hops = []
    for R, m in raw.items():
        for i in range(2):
            for j in range(2):
                ts = (shifts or {}).get((R, i, j), [(0, 0, 0)])
                for T in ts:
                    hops.append((tuple(r + s for r, s in zip(R, T)), i, j, m[i, j] / DEG[R] / len(ts)))
    return TightBindingModel("expected", LAT_ANG, TAU_FRAC, hops, convention=convention)


def test_degeneracy_weights_divide_hoppings(tmp_path):
    raw = raw_hoppings()
    path = write_hand_hr(tmp_path / "hand_hr.dat", raw)
    got = read_hr(path, lattice=LAT_ANG, length_unit="angstrom")
    ref = expected_model(raw)
    k = random_k(ref)
    assert_same_model(ref, got, k)
    undivided = TightBindingModel("raw", LAT_ANG, TAU_FRAC,
                                  [(R, i, j, m[i, j]) for R, m in raw.items() for i in range(2) for j in range(2)],
                                  convention="I")
    with pytest.raises(AssertionError):
        assert_same_model(undivided, got, k, order=0)


def test_tb_dat_matches_hr_dat(tmp_path):
    raw = raw_hoppings()
    hr = read_hr(write_hand_hr(tmp_path / "hand_hr.dat", raw), lattice=LAT_ANG, length_unit="angstrom")
    tb_path = write_hand_tb(tmp_path / "hand_tb.dat", raw, TAU_FRAC @ LAT_ANG)
    tb_i = read_tb(tb_path, convention="I", length_unit="angstrom")
    k = random_k(hr)
    assert_same_model(hr, tb_i, k, atol=1e-11)
    # centres from the diagonal of r(R=0) give convention II by default
    tb_ii = read_tb(tb_path, length_unit="angstrom")
    assert "convention II" in tb_ii.convention
    assert_same_model(expected_model(raw, "II"), tb_ii, k, atol=1e-11)
    hr_ii = read_hr(tmp_path / "hand_hr.dat", lattice=LAT_ANG, positions=TAU_FRAC, length_unit="angstrom")
    assert_same_model(hr_ii, tb_ii, k, atol=1e-11)
    # default length unit nm: lattice scaled by 1/10
    np.testing.assert_allclose(read_tb(tb_path).lattice, LAT_ANG / 10)


def test_centres_xyz_beside_hr_enable_convention_ii(tmp_path):
    raw = raw_hoppings()
    path = write_hand_hr(tmp_path / "hand_hr.dat", raw)
    cart = TAU_FRAC @ LAT_ANG
    (tmp_path / "hand_centres.xyz").write_text(
        "4\n Wannier centres, written by Wannier90\n"
        + "".join(f"X {c[0]:.10f} {c[1]:.10f} {c[2]:.10f}\n" for c in cart) + "C 0 0 0\nC 1 1 1\n")
    got = read_hr(path, lattice=LAT_ANG, length_unit="angstrom")
    assert "convention II" in got.convention
    assert_same_model(expected_model(raw, "II"), got, random_k(got), atol=1e-9)


def test_final_centres_of_wout_enable_convention_ii(tmp_path):
    """No _centres.xyz: the last 'Final State' block of seedname.wout gives the centres (convention II)."""
    raw = raw_hoppings()
    path = write_hand_hr(tmp_path / "hand_hr.dat", raw)
    cart = TAU_FRAC @ LAT_ANG

    def block(cs):
        return [" Final State"] + [f"  WF centre and spread{i + 1:5d}  ({c[0]:11.6f},{c[1]:11.6f},{c[2]:11.6f} )"
                                   f"{1.5:15.8f}" for i, c in enumerate(cs)] + ["  Sum of centres and spreads ( ... )"]

    lines = ["  Wannier90 output"] + block(cart + 0.3) + [" Iter  Delta Spread"] + block(cart) + [" All done"]
    (tmp_path / "hand.wout").write_text("\n".join(lines) + "\n")
    got = read_hr(path, lattice=LAT_ANG, length_unit="angstrom")
    assert "convention II" in got.convention
    assert_same_model(expected_model(raw, "II"), got, random_k(got), atol=1e-5)  # 6 printed decimals


WS_SHIFTS = {((1, 0, 0), 0, 1): [(0, 0, 0), (-1, 0, 0)], ((-1, 0, 0), 1, 0): [(0, 0, 0), (1, 0, 0)],
             ((0, 1, 1), 1, 1): [(0, -1, 0), (0, 0, -1), (0, -1, -1)],
             ((0, -1, -1), 1, 1): [(0, 1, 0), (0, 0, 1), (0, 1, 1)]}


def write_wsvec(path, shifts):
    out = ["## written on 01Jan2026 with use_ws_distance=.true."]
    for R in R_LIST:
        for i in range(2):
            for j in range(2):
                ts = shifts.get((R, i, j), [(0, 0, 0)])
                out += [f"{R[0]:5d}{R[1]:5d}{R[2]:5d}{i + 1:5d}{j + 1:5d}", f"{len(ts):5d}"]
                out += ["".join(f"{t:5d}" for t in T) for T in ts]
    path.write_text("\n".join(out) + "\n")
    return path


def test_wsvec_shifts_split_hoppings(tmp_path):
    raw = raw_hoppings()
    hr_path = write_hand_hr(tmp_path / "hand_hr.dat", raw)
    tb_path = write_hand_tb(tmp_path / "hand_tb.dat", raw, TAU_FRAC @ LAT_ANG)
    ref = expected_model(raw, shifts=WS_SHIFTS)
    plain = expected_model(raw)
    k = random_k(ref)
    with pytest.raises(AssertionError):  # the shifts change H(k)
        assert_same_model(ref, plain, k, order=0)
    ws = write_wsvec(tmp_path / "other_wsvec.dat", WS_SHIFTS)
    assert_same_model(ref, read_hr(hr_path, lattice=LAT_ANG, wsvec=ws, length_unit="angstrom"), k)
    assert_same_model(ref, read_tb(tb_path, wsvec=ws, convention="I", length_unit="angstrom"), k, atol=1e-11)
    # picked up beside the file; wsvec=False ignores it
    write_wsvec(tmp_path / "hand_wsvec.dat", WS_SHIFTS)
    assert_same_model(ref, read_hr(hr_path, lattice=LAT_ANG, length_unit="angstrom"), k)
    assert_same_model(plain, read_hr(hr_path, lattice=LAT_ANG, wsvec=False, length_unit="angstrom"), k)
    ref_ii = expected_model(raw, "II", shifts=WS_SHIFTS)
    assert_same_model(ref_ii, read_tb(tb_path, length_unit="angstrom"), k, atol=1e-11)


# -- PythTB and TBmodels ---------------------------------------------------------------------------

def pythtb_haldane(pythtb, t1, t2, phi, mass):
    lat = [[1.0, 0.0], [0.5, np.sqrt(3) / 2]]
    orb = [[0.0, 0.0], [1 / 3, 1 / 3]]
    m = pythtb.tb_model(2, 2, lat, orb)
    m.set_onsite([mass, -mass])
    for R in [(0, 0), (-1, 0), (0, -1)]:
        m.set_hop(t1, 0, 1, list(R))
    for R in [(1, 0), (-1, 1), (0, -1)]:
        m.set_hop(t2 * np.exp(1j * phi), 0, 0, list(R))
        m.set_hop(t2 * np.exp(-1j * phi), 1, 1, list(R))
    return m


def reduced(model, k):
    return k @ model.lattice.T / (2 * np.pi)


def test_pythtb_haldane_equals_builtin():
    pythtb = pytest.importorskip("pythtb")
    ref = haldane(**HALDANE)
    ptb = pythtb_haldane(pythtb, **HALDANE)
    got = from_pythtb(ptb, name="haldane_pythtb")
    assert "convention II" in got.convention
    k = random_k(ref)
    assert_same_model(ref, got, k)
    for kk in k:
        kr = reduced(ref, kk)
        np.testing.assert_allclose(got.derivatives(kk[None], 0)[0][0], ptb._gen_ham(kr), atol=1e-12)
        np.testing.assert_allclose(np.linalg.eigvalsh(ref.derivatives(kk[None], 0)[0][0]), ptb.solve_one(kr),
                                   atol=1e-12)


def test_pythtb_spinful():
    pythtb = pytest.importorskip("pythtb")
    rng = np.random.default_rng(5)
    m = pythtb.tb_model(2, 2, [[1.0, 0.0], [0.3, 1.2]], [[0.0, 0.0], [0.4, 0.6]], nspin=2)
    m.set_onsite([[0.1, 0.0, 0.0, 0.3], [-0.2, 0.1, 0.0, 0.0]])  # [s0, sx, sy, sz] form
    for i, j, R in [(0, 1, [0, 0]), (0, 1, [1, 0]), (0, 0, [0, 1]), (1, 1, [1, 1])]:
        mat = rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2))
        m.set_hop(mat, i, j, R)
    got = from_pythtb(m)
    assert got.nbands == 4 and got.spin.shape == (3, 4, 4)
    for kk in random_k(got, 6):
        np.testing.assert_allclose(got.derivatives(kk[None], 0)[0][0],
                                   m._gen_ham(reduced(got, kk)).reshape(4, 4), atol=1e-12)


def test_tbmodels_haldane_equals_builtin():
    tbmodels = pytest.importorskip("tbmodels")
    ref = haldane(**HALDANE)
    t1, t2, phi, mass = (HALDANE[x] for x in ("t1", "t2", "phi", "mass"))
    tbm = tbmodels.Model(on_site=[mass, -mass], pos=HALDANE_POS, uc=ref.lattice, occ=1)
    for R in [(0, 0), (-1, 0), (0, -1)]:
        tbm.add_hop(t1, 0, 1, R)
    for R in [(1, 0), (-1, 1), (0, -1)]:
        tbm.add_hop(t2 * np.exp(1j * phi), 0, 0, R)
        tbm.add_hop(t2 * np.exp(-1j * phi), 1, 1, R)
    got = from_tbmodels(tbm)
    k = random_k(ref)
    assert_same_model(ref, got, k)
    np.testing.assert_allclose(got.derivatives(k, 0)[0], tbm.hamilton(reduced(ref, k), convention=1), atol=1e-12)


def test_tbmodels_storage_layout_stand_in(monkeypatch):
    """Without tbmodels installed: a stand-in with TBmodels' storage (half the hoppings, h.c. added).

    Mirrors tbmodels.Model: ``hop[R]`` for R with positive first non-zero component plus half of
    the Hermitian on-site block at R = 0; H(k) = Σ_R hop[R] e^{2πik·R} + h.c., convention 1 adds
    the orbital positions to the phase.
    """
    class Model:
        def __init__(self, hop, pos, uc):
            self.hop, self.pos, self.uc = hop, np.asarray(pos), np.asarray(uc)

        def hamilton(self, k, convention=2):
            H = sum(np.exp(2j * np.pi * (k @ np.array(R)))[:, None, None] * m for R, m in self.hop.items())
            H = H + H.conj().transpose(0, 2, 1)
            if convention == 1:
                p = np.exp(2j * np.pi * (k @ self.pos.T))
                H = p.conj()[:, :, None] * H * p[:, None, :]
            return H

    ref = haldane(**HALDANE)
    hop = {}
    for R, m in ref.hopping_table.items():  # Hermitian full table → TBmodels' half storage
        nz = np.nonzero(R)[0]
        if not len(nz):
            hop[R] = 0.5 * m
        elif R[nz[0]] > 0:
            hop[R] = m
    stand_in = Model(hop, HALDANE_POS, ref.lattice)
    monkeypatch.setitem(sys.modules, "tbmodels", types.SimpleNamespace(Model=Model))
    got = from_tbmodels(stand_in)
    k = random_k(ref)
    np.testing.assert_allclose(stand_in.hamilton(reduced(ref, k), convention=1), ref.derivatives(k, 0)[0],
                               atol=1e-12)
    assert_same_model(ref, got, k)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pythtb", None)
    monkeypatch.setitem(sys.modules, "tbmodels", None)
    with pytest.raises(ModelError, match=r"qgtflow\[import\]"):
        from_pythtb(object())
    with pytest.raises(ModelError, match=r"qgtflow\[import\].*tbmodels|tbmodels.*qgtflow\[import\]"):
        from_tbmodels(object())


# -- malformed files -------------------------------------------------------------------------------

def small_hr_lines():
    """2 orbitals, R = −1, 0, +1 along a1; lines 5–8, 9–12, 13–16 are the three blocks."""
    out = ["small test file", "2", "3", "    1    1    1"]
    vals = {(-1, 0, 1): 0.5, (-1, 1, 0): 0.0, (0, 0, 0): 1.0, (0, 1, 1): -1.0, (0, 0, 1): 0.3, (0, 1, 0): 0.3,
            (1, 1, 0): 0.5}
    for R in (-1, 0, 1):
        for j in range(2):
            for i in range(2):
                out.append(f"{R:5d}    0    0{i + 1:5d}{j + 1:5d}{vals.get((R, i, j), 0.0):12.6f}{0.0:12.6f}")
    return out


def write_lines(tmp_path, lines, name="bad_hr.dat"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


LAT3 = np.eye(3)


def test_small_file_is_valid(tmp_path):
    model = read_hr(write_lines(tmp_path, small_hr_lines()), lattice=LAT3)
    h = model.derivatives(np.zeros((1, 3)), 0)[0][0]
    np.testing.assert_allclose(h, [[1.0, 0.8], [0.8, -1.0]])


def expect_error(path, line, *fragments, **kw):
    with pytest.raises(ModelError) as info:
        read_hr(path, lattice=LAT3, **kw)
    msg = str(info.value)
    assert path.name in msg, msg
    if line is not None:
        assert f"line {line}" in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_malformed_wrong_token_count(tmp_path):
    lines = small_hr_lines()
    lines[9] = lines[9].rsplit(None, 1)[0]  # line 10: drop Im
    expect_error(write_lines(tmp_path, lines), 10, "expected a hopping line 'R1 R2 R3 i j Re Im'", "(7 values)",
                 "got 6 values")


def test_malformed_non_numeric_token(tmp_path):
    lines = small_hr_lines()
    lines[6] = lines[6][:-12] + "      0.1x00"  # line 7
    expect_error(write_lines(tmp_path, lines), 7, "non-numeric token '0.1x00'", "real numbers Re Im")


def test_malformed_orbital_out_of_range(tmp_path):
    lines = small_hr_lines()
    lines[11] = lines[11][:20] + "    3" + lines[11][25:]  # line 12: j = 3
    expect_error(write_lines(tmp_path, lines), 12, "orbital index j = 3 out of range", "expected 1..2")


def test_malformed_early_eof(tmp_path):
    lines = small_hr_lines()[:-2]  # file ends after line 14
    expect_error(write_lines(tmp_path, lines), 15, "unexpected end of file", "block 3 of nrpts = 3")


def test_malformed_degeneracy_count(tmp_path):
    lines = small_hr_lines()
    lines[3] = "    1    1    1    1"  # line 4: four weights for nrpts = 3
    expect_error(write_lines(tmp_path, lines), 4, "degeneracy count wrong", "nrpts = 3")


def test_malformed_nrpts_inconsistent(tmp_path):
    lines = small_hr_lines()
    lines[2], lines[3] = "2", "    1    1"  # nrpts = 2 but three blocks of data
    expect_error(write_lines(tmp_path, lines), 13, "extra data", "nrpts = 2 inconsistent")
    lines = small_hr_lines()
    lines[2], lines[3] = "4", "    1    1    1    1"  # nrpts = 4 but three blocks
    expect_error(write_lines(tmp_path, lines, "bad2_hr.dat"), 17, "end of file", "block 4 of nrpts = 4")


def test_malformed_block_structure(tmp_path):
    lines = small_hr_lines()
    lines[7] = "    5" + lines[7][5:]  # line 8: R changes inside the first block
    expect_error(write_lines(tmp_path, lines), 8, "inside the block of R = (-1, 0, 0)",
                 "expected num_wann^2 = 4 consecutive lines per R")


def test_malformed_non_hermitian(tmp_path):
    lines = small_hr_lines()
    lines[14] = lines[14][:25] + f"{0.7:12.6f}{0.0:12.6f}"  # line 15: H_21(+1) = 0.7 vs conj H_12(−1) = 0.5
    msg = expect_error(write_lines(tmp_path, lines), None, "non-Hermitian", "expected H(-R) = H(R)^dagger")
    assert "line 6:" in msg and "(line 15)" in msg  # the entry and its partner
    assert "H_2,1(R=(-1, 0, 0)) = 0" in msg and "conj(H_1,2(R=(1, 0, 0))) = 0.7" in msg


def test_malformed_missing_partner_block(tmp_path):
    lines = small_hr_lines()
    for n in range(12, 16):  # R = +1 → +2: −R partner of R = −1 missing
        lines[n] = "    2" + lines[n][5:]
    expect_error(write_lines(tmp_path, lines), 5, "has no partner block", "Hermitian")


def test_missing_file_and_missing_lattice(tmp_path):
    missing = tmp_path / "nothere_hr.dat"
    with pytest.raises(ModelError, match="nothere_hr.dat"):
        read_hr(missing, lattice=LAT3)
    path = write_lines(tmp_path, small_hr_lines(), "nolat_hr.dat")
    with pytest.raises(ModelError, match=r"nolat_hr.dat.*lattice=.*nolat\.win"):
        read_hr(path)
    with pytest.raises(ModelError, match="convention II needs orbital positions"):
        read_hr(path, lattice=LAT3, convention="II")


def test_malformed_win_and_wsvec(tmp_path):
    path = write_lines(tmp_path, small_hr_lines(), "seed_hr.dat")
    (tmp_path / "seed.win").write_text("num_wann = 2\nbegin unit_cell_cart\n1 0 0\n0 1\n0 0 1\nend unit_cell_cart\n")
    with pytest.raises(ModelError, match=r"seed\.win: line 4: expected a lattice vector \(3 numbers\)"):
        read_hr(path)
    ws = tmp_path / "x_wsvec.dat"
    ws.write_text("## header\n   -1    0    0    1    1\n    1\n    0    0    0\n")
    with pytest.raises(ModelError, match=r"x_wsvec\.dat: line 5 \(end of file\): no block for R = .* expected one "
                                         r"block per hopping"):
        read_hr(path, lattice=LAT3, wsvec=ws)
    ws.write_text("## header\n   -1    0    0    1    1\n    2\n    0    0    0\n")
    with pytest.raises(ModelError, match=r"x_wsvec\.dat: line 5 \(end of file\): unexpected end of file; expected "
                                         r"a shift"):
        read_hr(path, lattice=LAT3, wsvec=ws)


def test_hostile_counts_and_lattice_vectors_are_refused_in_one_line(tmp_path):
    """A num_wann the data cannot hold is refused before its arrays are allocated (10^8 asked 497 PiB), and an R or
    a Wigner–Seitz shift beyond MAX_CELL_INDEX cells names its line (−99999999999 asked the R index for 6.6 TiB;
    int64's maximum overflowed a cast), instead of a MemoryError or ValueError traceback."""
    lines = small_hr_lines()
    path = write_lines(tmp_path, [lines[0], "100000000"] + lines[2:])
    with pytest.raises(ModelError, match=r"num_wann = 100000000 and nrpts = 3 call for \d+ numbers, but \d+ "
                                         r"characters follow the header"):
        read_hr(path, lattice=LAT3, wsvec=False)
    bad = list(lines)
    bad[4] = "-99999999999" + bad[4][5:]
    with pytest.raises(ModelError, match=r"bad_hr\.dat: line 5: R = \(-99999999999, 0, 0\) lies beyond 100000 "
                                         r"cells"):
        read_hr(write_lines(tmp_path, bad), lattice=LAT3, wsvec=False)
    path = write_lines(tmp_path, lines, "seed_hr.dat")
    ws = tmp_path / "x_wsvec.dat"
    entries = [f"{R:5d}    0    0{i:5d}{j:5d}\n    1\n    0    0    0\n" for R in (-1, 0, 1) for i in (1, 2)
               for j in (1, 2)]
    ws.write_text("## header\n" + "".join(entries).replace("    0    0    0\n", "9223372036854775807 0 0\n", 1))
    with pytest.raises(ModelError, match=r"x_wsvec\.dat: line 4: the shift T \(R = \(-1, 0, 0\), i = 1, j = 1\) = "
                                         r"\(9223372036854775807, 0, 0\) lies beyond"):
        read_hr(path, lattice=LAT3, wsvec=ws)
    (tmp_path / "seed.win").write_text("mp_grid = 100000000000000000000 1 1\n")
    with pytest.raises(ModelError, match=r"seed\.win: line 1: mp_grid \[100000000000000000000, 1, 1\]; expected three "
                                         r"positive integers up to 100000"):
        read_hr(path, lattice=LAT3, positions=np.zeros((2, 3)))
    ws.write_text("## header only\n")
    with pytest.raises(ModelError, match=r"x_wsvec\.dat: line 2 \(end of file\): no block for R"):
        read_hr(path, lattice=LAT3, wsvec=ws)


def test_far_apart_lattice_vectors_are_read_without_a_table_of_their_box(tmp_path):
    """Hoppings at R = ±(999, 999, 999) (a box of 8e9 cells, which the _wsvec.dat lookup held densely: 60 GiB)
    read with a _wsvec.dat of trivial shifts give the model read without one."""
    far = (999, 999, 999)
    out = ["far test file", "2", "3", "    1    1    1"]
    vals = {(-1, 0, 1): 0.5, (0, 0, 0): 1.0, (0, 1, 1): -1.0, (0, 0, 1): 0.3, (0, 1, 0): 0.3, (1, 1, 0): 0.5}
    for s in (-1, 0, 1):
        R = tuple(s * x for x in far)
        for j in range(2):
            for i in range(2):
                out.append("".join(f"{x:5d}" for x in R) + f"{i + 1:5d}{j + 1:5d}{vals.get((s, i, j), 0.0):12.6f}"
                           f"{0.0:12.6f}")
    path = write_lines(tmp_path, out, "far_hr.dat")
    ws = tmp_path / "far_wsvec.dat"
    ws.write_text("## header\n" + "".join("".join(f"{x:5d}" for x in (s * np.array(far))) + f"{i:5d}{j:5d}\n    1\n"
                                           "    0    0    0\n" for s in (-1, 0, 1) for i in (1, 2) for j in (1, 2)))
    plain = read_hr(path, lattice=LAT3, wsvec=False)
    assert_same_model(plain, read_hr(path, lattice=LAT3, wsvec=ws), random_k(plain))


def test_malformed_tb_missing_position_blocks(tmp_path):
    raw = raw_hoppings()
    path = write_hand_tb(tmp_path / "cut_tb.dat", raw, TAU_FRAC @ LAT_ANG)
    text = path.read_text().splitlines()
    first_pos = 1 + 3 + 2 + 2 + len(R_LIST) * (2 + 4)  # header, lattice, num_wann, nrpts, 2 deg lines, H
    path.write_text("\n".join(text[:first_pos]) + "\n")
    with pytest.raises(ModelError) as info:
        read_tb(path)
    msg = str(info.value)
    assert "cut_tb.dat" in msg and f"line {first_pos + 1} (end of file)" in msg
    assert "expected the lattice vector 'R1 R2 R3' of position-operator block 1" in msg


def test_fast_and_line_by_line_parsers_agree(tmp_path, monkeypatch):
    import qgtflow.models.wannier as w

    raw = raw_hoppings()
    hr = write_hand_hr(tmp_path / "hand_hr.dat", raw)
    tb = write_hand_tb(tmp_path / "hand_tb.dat", raw, TAU_FRAC @ LAT_ANG)
    results = []
    fast_blocks = w._fast_blocks

    def spy(*args, **kwargs):
        results.append(fast_blocks(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(w, "_fast_blocks", spy)
    fast = [read_hr(hr, lattice=LAT_ANG, positions=TAU_FRAC), read_tb(tb)]
    assert len(results) == 2 and all(r is not None for r in results)  # hr; tb Hamiltonian + positions in one pass
    monkeypatch.setattr(w, "_fast_blocks", lambda *args, **kwargs: None)
    slow = [read_hr(hr, lattice=LAT_ANG, positions=TAU_FRAC), read_tb(tb)]
    for f, s in zip(fast, slow):
        assert f.model_hash == s.model_hash
    # the vectorised path declines malformed data, so errors still come from the line-by-line parser
    lines = small_hr_lines()
    lines[6] = lines[6][:-12] + "      0.1x00"
    results.clear()
    monkeypatch.setattr(w, "_fast_blocks", spy)
    expect_error(write_lines(tmp_path, lines), 7, "non-numeric token '0.1x00'")
    assert results == [None]


# -- files as users have them ----------------------------------------------------------------------

def test_rounded_hoppings_are_symmetrised_not_refused(tmp_path, caplog):
    """A 4.7e-9 anti-Hermitian part (rounded printing) is removed with a note; H(k) is then Hermitian, so the
    model's own validation (1e-10 relative) accepts it: one Hermiticity check on the path."""
    import logging

    lines = small_hr_lines()
    lines[13] = lines[13][:25] + f"{0.5 + 4.7e-9:14.10f}{0.0:12.6f}"  # H_21(+1) vs conj H_12(−1) = 0.5
    with caplog.at_level(logging.INFO, logger="qgtflow.models.wannier"):
        model = read_hr(write_lines(tmp_path, lines, "rounded_hr.dat"), lattice=LAT3)
    assert "symmetrised" in caplog.text and "4.7e-09" in caplog.text
    model.validate()
    h = model.derivatives(random_k(model), 0)[0]
    np.testing.assert_allclose(h, np.conj(np.swapaxes(h, -1, -2)), atol=1e-15)
    np.testing.assert_allclose(model.hopping_table[(1, 0, 0)][1, 0], 0.5 + 2.35e-9, atol=1e-15)


def test_non_regular_files_are_refused_in_one_line(tmp_path):
    import os

    fifo = tmp_path / "pipe_hr.dat"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ModelError) as info:
            read_hr(path, lattice=LAT3)
        msg = str(info.value)
        assert "not a regular file" in msg and str(path) in msg and "\n" not in msg


def wigner_seitz_points(lattice, grid, search=2):
    """Wannier90's R list and degeneracies for an mp_grid (R in the Wigner–Seitz supercell, boundary shared)."""
    grid = np.asarray(grid)
    rng = np.arange(-search, search + 1)
    images = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3) * grid
    cells, deg = [], []
    span = [np.arange(-search * g, search * g + 1) for g in grid]
    for R in np.stack(np.meshgrid(*span, indexing="ij"), -1).reshape(-1, 3):
        d = np.linalg.norm((R - images) @ lattice, axis=1)
        if abs(d[len(d) // 2] - d.min()) < 1e-8:  # image n = 0 is the middle one
            cells.append(tuple(int(x) for x in R))
            deg.append(int(np.sum(np.abs(d - d.min()) < 1e-8)))
    return cells, deg


@pytest.mark.parametrize("asymmetry", [0.0, 1e-10])
def test_wigner_seitz_correction_computed_without_wsvec(tmp_path, asymmetry):
    """A short-range model with Wannier centres away from the origin, folded onto a 3×3×2 grid as Wannier90
    writes it (H(R) = Σ_T t(R + T) on the Wigner–Seitz R list, with degeneracies): read without _wsvec.dat,
    the computed correction puts every hopping back at its shortest bond and recovers the model exactly.
    ``asymmetry``: H(−R) ≠ H(R)^† by a printing-size amount (as in real files, e.g. WannierBerri's GaAs_tb.dat), so
    the reader symmetrises the table — the grid is still inferred from the file's R list and degeneracies (it
    was inferred from the symmetrised table's reordered R list, failed, and the correction was silently skipped)."""
    from qgtflow.models.wannier import infer_mp_grid
    from tests.wannier_files import write_tb

    lattice = np.array([[3.0, 0.0, 0.0], [0.4, 3.2, 0.0], [0.0, 0.3, 3.5]])
    frac = np.array([[0.05, 0.1, 0.0], [0.48, 0.52, 0.45], [0.9, 0.2, 0.6]])
    n, grid = 3, (3, 3, 2)
    rng = np.random.default_rng(11)
    tau = frac @ lattice
    true = {}
    for R in [(a, b, c) for a in range(-1, 2) for b in range(-1, 2) for c in range(-1, 2)]:
        mat = np.zeros((n, n), complex)
        for i in range(n):
            for j in range(n):
                bond = np.asarray(R) @ lattice + tau[j] - tau[i]
                if np.linalg.norm(bond) < 3.3:  # shorter than half of every supercell vector: unique image
                    mat[i, j] = np.exp(-np.linalg.norm(bond)) * (1 + 0.3j * np.sign(j - i))
        true[R] = mat
    for R in list(true):  # Hermitian
        true[R] = 0.5 * (true[R] + true[tuple(-x for x in R)].conj().T)
    cells, deg = wigner_seitz_points(lattice, grid)
    assert infer_mp_grid(cells, deg, "test") == grid
    folded = {}
    for R in cells:
        acc = np.zeros((n, n), complex)
        for T, mat in true.items():
            if all((t - r) % g == 0 for t, r, g in zip(T, R, grid)):
                acc += mat
        folded[R] = acc
    folded[(1, 0, 0)][0, 1] += asymmetry
    path = write_tb(tmp_path / "folded_tb.dat", lattice, folded, deg, centres=tau, decimals=12)
    ref_nm = TightBindingModel("true", lattice / 10, frac, [(R, i, j, m[i, j]) for R, m in true.items()
                                                            for i in range(n) for j in range(n) if m[i, j] != 0])
    got = read_tb(path)
    k = random_k(got, 8)
    assert_same_model(ref_nm, got, k, order=1, atol=1e-9)
    raw = read_tb(path, wsvec=False)
    assert np.abs(raw.derivatives(k, 0)[0] - ref_nm.derivatives(k, 0)[0]).max() > 1e-3


def ws_table_reference(table, lattice, frac, grid, search=2, tol=1e-5):
    """Wannier90's use_ws_distance, one (R, i, j) at a time: t_ij(R) split equally over the images R + T
    (T on the mp_grid supercell, |n| ≤ search) within tol of the shortest |(R + T)·A + τ_j − τ_i|."""
    tau = np.asarray(frac, float) @ lattice
    rng = range(-search, search + 1)
    shifts = [np.array([a, b, c]) * grid for a in rng for b in rng for c in rng]
    out = {}
    for R, mat in table.items():
        for i in range(len(tau)):
            for j in range(len(tau)):
                dist = [np.linalg.norm((np.asarray(R) + T) @ lattice + tau[j] - tau[i]) for T in shifts]
                best = [T for T, d in zip(shifts, dist) if d < min(dist) + tol]
                for T in best:
                    key = tuple(int(x) for x in np.asarray(R) + T)
                    out.setdefault(key, np.zeros_like(mat))[i, j] += mat[i, j] / len(best)
    return out


@pytest.mark.parametrize("lattice, frac, grid", [
    (np.eye(3) * 4.0, [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]], (1, 1, 1)),  # exact ties: 2, 4 and 8 images
    (np.eye(3) * 2.5, [[0, 0, 0], [1.0, 0.0, 0.5], [0.25, 0.5, 0.0]], (2, 2, 2)),  # ties on the supercell boundary
    (np.array([[3.0, 0.0, 0.0], [0.4, 3.2, 0.0], [0.0, 0.3, 3.5]]),
     [[0.05, 0.1, 0.0], [0.48, 0.52, 0.45], [0.9, 0.2, 0.6], [0.3, 0.7, 0.1]], (4, 1, 2)),  # anisotropic grid
    (np.array([[2.0, 0.0, 0.0], [1.0, 1.7320508075688772, 0.0], [0.0, 0.0, 6.0]]),
     [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]], (3, 3, 1)),  # hexagonal (near-ties within the tolerance)
])
def test_vectorised_ws_table_equals_reference(lattice, frac, grid):
    """The vectorised Wigner–Seitz table (image search pruned by the triangle inequality, chunked over
    (image, i, j)) places and splits every hopping exactly as the one-(R, i, j)-at-a-time reference, ties
    included, also when its chunks hold a single R (WS_CHUNK small) and with the plan shared between tables."""
    from qgtflow.models import wannier
    from qgtflow.models.wannier import ws_distance_table

    rng = np.random.default_rng(3)
    n = len(frac)
    cells, _ = wigner_seitz_points(lattice, grid)
    cells += [(0, 0, 1), (2, -1, 0)]  # R beyond the supercell too (images on both sides)
    table = {R: rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)) for R in dict.fromkeys(cells)}
    ref = ws_table_reference(table, lattice, frac, np.asarray(grid))
    plans = {}
    for chunk in (wannier.WS_CHUNK, n * n):
        old, wannier.WS_CHUNK = wannier.WS_CHUNK, chunk
        try:
            got = ws_distance_table(table, lattice, frac, grid)
            again = ws_distance_table({R: 2 * m for R, m in table.items()}, lattice, frac, grid, plans=plans)
        finally:
            wannier.WS_CHUNK = old
        assert set(got) == set(ref)
        for key, mat in ref.items():
            np.testing.assert_allclose(got[key], mat, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(again[key], 2 * mat, rtol=1e-13, atol=1e-15)
    assert len(plans) == 1


def test_compiled_number_scan_is_fromstring_bit_for_bit():
    """The compiled scan of the data section (_scan_numbers) gives np.fromstring's values bit for bit on
    Wannier90's formats (fixed, E and Fortran D exponents, signed zeros, bare integers, and the "hard" numbers the
    exact fast path leaves to Python's float: 17+ digits, exponents beyond ±22 such as E15.8's 0.1E-16), and
    refuses (-1: the reader falls back to np.fromstring) what is not a plain number."""
    from qgtflow.models.wannier import _scan_numbers

    def scan(text, room=None):
        out = np.empty(room if room is not None else len(text) // 2 + 1)
        count = _scan_numbers(np.frombuffer(text.encode(), np.uint8), out)
        return out[:count] if count >= 0 else None

    def ref(text):
        return np.fromstring(text.translate(str.maketrans("Dd", "Ee")), sep=" ")  # noqa: NPY201 - text mode

    rng = np.random.default_rng(5)
    vals = np.concatenate([rng.normal(size=400) * 10.0 ** rng.integers(-30, 30, 400), [0.0, -0.0, 1.0, -3e5]])
    toks = [t for v in vals for t in (f"{v:.6f}", f"{v:.8E}", f"{v:15.8e}".replace("e", "D"), f"{v:.12g}",
                                      f"{v:+.3f}", str(int(v)), repr(float(v)))]
    toks += ["1.", ".5", "-.25", "+7", "-0.000000", "1E-05", "0.12345678E-16", "12345678901234567890", "1e400",
             "1e-400", "0.0E-99"]
    text = "\n".join("  ".join(toks[i:i + 4]) for i in range(0, len(toks), 4)) + "\r\n\n"
    got = scan(text)
    assert got is not None and got.tobytes() == ref(text).tobytes()
    for bad in ["1.0-100", "nan", "inf", "1.0x", "1e", "-", "0x10", "1_000"]:
        assert scan(bad) is None, bad
    assert scan("0.5 1.5 2.5", room=2) is None  # more numbers than expected
    assert scan("  \n ") is not None and scan("  \n ").size == 0


def test_reader_falls_back_when_the_scan_refuses(tmp_path):
    """A _tb.dat printed at 17 significant digits (beyond the exact fast path) reads through np.fromstring to
    the same model as at 12 decimals where both agree (the fallback keeps large unusual files readable)."""
    from tests.wannier_files import write_tb

    lattice = np.eye(3) * 3.0
    rng = np.random.default_rng(2)
    blocks = {R: 0.1 * rng.normal(size=(2, 2)) for R in [(0, 0, 0), (1, 0, 0), (-1, 0, 0)]}
    blocks[(0, 0, 0)] = blocks[(0, 0, 0)] + blocks[(0, 0, 0)].T
    blocks[(-1, 0, 0)] = blocks[(1, 0, 0)].T
    assert max(np.abs(m).max() for m in blocks.values()) > 0.1  # printed with 17 digits: M ≥ 2^53, refused
    fine = read_tb(write_tb(tmp_path / "fine_tb.dat", lattice, blocks, decimals=17), wsvec=False)
    plain = read_tb(write_tb(tmp_path / "plain_tb.dat", lattice, blocks, decimals=12), wsvec=False)
    np.testing.assert_allclose(fine.matrices, plain.matrices, atol=1e-12)


def test_tb_hermiticity_error_names_lines_after_the_text_is_released(tmp_path):
    """read_tb drops the file's text once the data section is parsed; the Hermiticity error still names the
    offending lines (the text is re-read for the message)."""
    from tests.wannier_files import write_tb

    blocks = {(0, 0, 0): np.eye(2), (1, 0, 0): np.array([[0.1, 0.2], [0.0, 0.1]]),
              (-1, 0, 0): np.array([[0.1, 0.0], [0.5, 0.1]])}
    path = write_tb(tmp_path / "bad_tb.dat", np.eye(3) * 3.0, blocks)
    with pytest.raises(ModelError, match=r"line 18: non-Hermitian hopping set: .*\(line 23\)") as info:
        read_tb(path)
    assert "\n" not in str(info.value)


def test_crlf_and_lf_files_read_the_same(tmp_path):
    """ASCII files without CR are scanned from their bytes; a CRLF file takes the text path (universal
    newlines): both give the same model."""
    from tests.wannier_files import write_tb

    rng = np.random.default_rng(4)
    h = 0.1 * rng.normal(size=(3, 3))
    blocks = {(0, 0, 0): h + h.T, (1, 0, 0): 0.1 * rng.normal(size=(3, 3))}
    blocks[(-1, 0, 0)] = blocks[(1, 0, 0)].T
    lf = write_tb(tmp_path / "lf_tb.dat", np.eye(3) * 3.0, blocks, centres=rng.uniform(0, 3, (3, 3)))
    crlf = tmp_path / "crlf_tb.dat"
    crlf.write_bytes(lf.read_bytes().replace(b"\n", b"\r\n"))
    a, b = read_tb(lf, wsvec=False), read_tb(crlf, wsvec=False)
    assert a.matrices.tobytes() == b.matrices.tobytes() and np.array_equal(a.cells, b.cells)
