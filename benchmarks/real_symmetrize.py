"""WannierBerri's bcc Fe Wannier90 files symmetrised by ``model.wannier90.symmetrize`` (models/symmetrize.py, issue 18).

The projections of both files are ``Fe: sp3d2;dxy;dxz;dyz`` with spinors (18 functions: Wannier90 orders them
sp3d2-1..6, dxz, dyz, dxy, each up then down); QE noncollinear with the moment along z, so the magnetic group is
4/mm'm' (16 operations; the sign of the moment does not change the group), declared as the study's
``symmetry: {magnetic_moments: [[0, 0, 2.2]]}``. Each file's H(R) and A(R) are built by the peer from its checkpoint
(``System_R.from_wannierdata``, Wigner–Seitz images applied; ``wannierberri_data.py``'s conversion) into
``benchmarks/data-cache/<label>/<label>_tb.dat``, and its ``.win`` is copied beside it without ``mp_grid`` (the R list
already carries the images, so qgtflow's reader does not correct again):

- ``Fe`` (``Fe_Wannier90``, the file of README's real-file comparisons): maximally localised (``num_iter = 2000``).
- ``Fe_sym`` (``Fe_sym_Wannier90``, the file the peer's own tests symmetrise, ``proj=['Fe:sp3d2;t2g']``): only
  disentangled (``num_iter = 0``), so its functions are still the projections'.

Printed: the Wannier centres' distances from the atom against the projections' (sp3d2 hybrids off the atom, t2g on
it); the relative change of H(R) and of A(R) beyond the centres, or the refusal; the study's symmetry check (the
smallest ``symmetry.tolerance`` that passes every operation, with A(R)) before and after; AHC, Drude and the Berry-
curvature dipole on the full N³ grid (default 8; k_BT = 0.3 eV, μ 17.5–18.5 eV, τ = 1, natural units, the position
operator on): the largest |entry| among the components 4/mm'm' allows and among those it forbids, before and after,
and on the irreducible wedge (``kgrid.symmetry_reduce``) with its largest difference from the full grid. With
``--peer PYTHON`` (a Python with wannierberri) the peer symmetrises the same file as its tests do and the band
energies are compared at a few k-points.

Run: ``.venv/bin/python benchmarks/real_symmetrize.py DATA [--label Fe_sym|Fe] [--size N] [--peer PYTHON]``, DATA
the peer's ``tests/data`` holding ``<label>_Wannier90`` (Fe_sym_Wannier90 is not in every extract of it).

Measured (2026-12-07, 8³, position operator on, default degeneracy_threshold 1e-4; allowed / forbidden largest
|entry| over μ, natural units):

    Fe_sym_tb.dat   centres: the 12 sp3d2 spinor functions 0.63–0.68 Å off the atom, the 6 t2g on it, as projected
                    as read: check needs 1.5 (C2[0, 1, 0]' curvature; energies ≤ 0.024 of the bandwidth)
                    symmetrised (16 operations of 4/mm'm'): ΔH/H 0.0533, ΔA/A (beyond the centres) 0.455; check needs
                    2.9e-12 (energies ≤ 2.1e-15 of the bandwidth)
        sigma_ahe               as read 0.0259 / 0.035   symmetrised 0.0723 / 2.4e-14   wedge 0.0723 / 1.2e-19
                                                         (|Δ| ≤ 0.058; wedge − full ≤ 3.8e-14)
        sigma_drude             as read 0.1707 / 4.5e-3  symmetrised 0.1827 / 1.2e-16   wedge 0.1827 / 4.8e-20
                                                         (|Δ| ≤ 0.026; wedge − full ≤ 1.1e-15)
        berry_curvature_dipole  as read 0 / 3.4          symmetrised 0 / 2.7e-10        wedge 0 / 0
        the peer (WannierBerri 26.10, System_R.symmetrize as its tests call it, irrep from PEER_EXTRA_PATH): band
        energies of the symmetrised models agree to 5.3e-14 eV at 4 k-points (bandwidth 36.9 eV; the file as read is
        1.12 eV from the peer's symmetrised model)
    Fe_tb.dat       refused: ΔH/H would be 0.317 (either spin ordering, either moment sign). Its maximally localised
                    functions (num_iter = 2000) are no longer the projections': functions 2, 3, 8, 9 (two spinor
                    pairs that should be sp3d2 hybrids) sit on the atom (0.01 Å) and the 8 remaining off-site ones
                    lie 1.2–1.6 Å away in directions of no symmetry, spin partners apart (1.18 / 1.34 Å); no kind
                    list describes them. Each single operation of 4/mm'm' moves H by 36–50 %.
                    as read: check needs 0.87 (C2[1, 0, 0]'; energies ≤ 0.087 of the bandwidth)
        sigma_ahe 0.0261 / 0.024, sigma_drude 0.2063 / 8.4e-3, berry_curvature_dipole 0 / 1.9 (as read)
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import symmetrize_common as common  # noqa: E402
from symmetrize_common import RESPONSES  # noqa: E402
from wannierberri_data import CACHE, _convert, _untar  # noqa: E402

ATOMS = [["Fe", 0.0, 0.0, 0.0]]
MOMENTS = [[0.0, 0.0, 2.2]]
SPEC = {"magnetic_moments": MOMENTS}  # projections, spinors (interlaced) and atoms from the .win
SYMMETRY = {"atoms": ATOMS, "magnetic_moments": MOMENTS}
MU = [17.5, 18.0, 18.5]


def prepare(data: Path, label: str, peer_python: str) -> Path:
    """``<label>_tb.dat`` in the cache (converted by the peer once) with its .win beside it, without mp_grid."""
    out = CACHE / label / f"{label}_tb.dat"
    src = data / f"{label}_Wannier90"
    if not out.exists():
        work = CACHE / f"{label}_Wannier90"
        work.mkdir(parents=True, exist_ok=True)
        for name in (f"{label}.chk", f"{label}.eig"):
            if not (work / name).exists():
                (work / name).write_bytes((src / name).read_bytes())
        if not (work / f"{label}.mmn").exists():
            _untar(src / f"{label}.mmn.tar.gz", f"{label}.mmn", work / f"{label}.mmn")
        if _convert(Path(peer_python), "w90", work / label, out) is None:
            sys.exit(f"{label}: the peer could not convert {src}")
    win = out.with_name(f"{label}.win")
    if not win.exists():
        keep, skip = [], False
        for line in (src / f"{label}.win").read_text().splitlines():
            low = line.strip().lower()
            skip = skip or low.startswith("begin kpoint")
            if not skip and not low.startswith("mp_grid"):
                keep.append(line)
            skip = skip and not low.startswith("end kpoint")
        win.write_text("\n".join(keep) + "\n")
    return out


def _study(tb: Path, symmetrize, size: int, wedge: bool = False) -> dict:
    w = {"tb": str(tb), "symmetrize": symmetrize}
    out = {"model": {"name": "fe", "wannier90": w}, "units": "natural", "mu": MU, "temperature": [0.3], "tau": 1.0,
           "responses": list(RESPONSES), "integration": "points",
           "kgrid": {"sizes": [size], **({"symmetry_reduce": True} if wedge else {})}}
    return {**out, "symmetry": {**SYMMETRY, "tolerance": 0.1}} if wedge else out


def check(model) -> str:
    return common.check(model, SYMMETRY)


def file_centres(tb: Path) -> np.ndarray:
    """The Wannier centres (Å, Cartesian): the diagonal of the _tb.dat's r(R = 0) block."""
    lines = tb.read_text().splitlines()
    n, nrpts = int(lines[4]), int(lines[5])
    i = 6 + -(-nrpts // 15)  # past the degeneracies, 15 a line
    blocks, out = 0, None
    while i < len(lines):
        words = lines[i].split()
        if len(words) == 3:  # an R line: its block follows (H blocks first, then r blocks)
            blocks += 1
            if blocks > nrpts and words == ["0", "0", "0"]:
                rows = np.array([lines[i + 1 + k].split() for k in range(n * n)], float)
                out = rows[rows[:, 0] == rows[:, 1]][:, 2::2]
                break
            i += n * n
        i += 1
    return out


def centres(tb: Path) -> str:
    """The Wannier centres' distances (Å) from the atom (at the origin), in the file's order, against the
    projections' shape (sp3d2 hybrids off the atom, t2g on it; interlaced spinors)."""
    from qgtflow.models.symmetrize import parse_kinds

    d = np.linalg.norm(file_centres(tb), axis=1)
    kinds = parse_kinds("sp3d2;dxy;dxz;dyz").functions
    expect = "".join("h" if l < 0 else "o" for l, _ in kinds for _ in range(2))
    seen = "".join("h" if x > 0.1 else "o" for x in d)
    return (f"centres' distance from the atom (Å): {np.round(d, 2).tolist()}; off (h) / on (o) the atom: {seen} "
            f"(the projections': {expect})")


def responses(tb: Path, size: int, workdir: Path, symmetrised: bool) -> None:
    runs = {"as read": _study(tb, False, size)}
    if symmetrised:
        runs["symmetrised"] = _study(tb, SPEC, size)
        runs["symmetrised wedge"] = _study(tb, SPEC, size, wedge=True)
    common.responses(runs, {**_study(tb, False, size), "symmetry": SYMMETRY}, workdir, size)


PEER = common.PEER_HEAD + r"""
seed, ks = sys.argv[1], json.loads(sys.argv[2])
system = System_R.from_tb_dat(seed, berry=True)  # its R list carries the Wigner–Seitz images already
system.symmetrize(proj=["Fe:sp3d2;t2g"], atom_name=["Fe"], positions=np.array([[0.0, 0.0, 0.0]]),
                  magmom=[[0.0, 0.0, -2.2]], soc=True)
""" + common.PEER_TAIL
KS = [[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.37, 0.11, -0.23]]


def peer(python: str, tb: Path, model) -> None:
    common.peer_energies(python, PEER, [str(tb)], KS, model)


def main() -> None:
    import argparse

    from qgtflow.errors import ModelError
    from qgtflow.study import load_study

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="WannierBerri's tests/data (with <label>_Wannier90)")
    parser.add_argument("--label", default="Fe_sym", choices=("Fe_sym", "Fe"))
    parser.add_argument("--size", type=int, default=8, help="full grid N³ for the responses (0: skip)")
    parser.add_argument("--peer", default="/work/peer-venv/bin/python",
                        help="a Python with wannierberri (converts the checkpoint; compares its symmetrisation)")
    parser.add_argument("--no-compare", action="store_true", help="skip the peer's symmetrisation")
    args = parser.parse_args()
    tb = prepare(Path(args.data), args.label, args.peer)
    print(f"== {tb.name}")
    raw = load_study(_study(tb, False, 4)).model
    print(f"  {centres(tb)}")
    print(f"  as read: {check(raw)}")
    ok = True
    try:
        sym = load_study(_study(tb, SPEC, 4)).model
        clause = re.search(r"symmetrized over .*?relative change of H\(R\) [^;,]+(, of A\(R\)[^;]+)?",
                           sym.convention).group(0)
        print(f"  symmetrised: {clause}")
        print(f"    {check(sym)}")
    except ModelError as exc:
        ok = False
        print(f"  symmetrised: refused: {exc}")
    if args.size:
        with tempfile.TemporaryDirectory() as tmp:
            responses(tb, args.size, Path(tmp), ok)
    if not args.no_compare:
        if ok:
            peer(args.peer, tb, sym)
        else:
            print("  peer: not compared (refused here)")


if __name__ == "__main__":
    main()
