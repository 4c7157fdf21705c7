"""WannierBerri's tellurium model symmetrised by ``model.wannier90.symmetrize`` from its .win's site projections
(models/symmetrize.py, issue 18).

The peer's ``tests/data/Te_qe`` (DATA: its ``tests/data``): ``system`` (its saved real-space matrices: 24 spinor s, p
functions, 65 R already carrying the Wigner–Seitz images, all degeneracies 1) written as ``Te_tb.dat`` by the peer
(``wannierberri_data.py``), and ``tellurium.win`` copied beside it as ``Te.win`` without its ``mp_grid`` line (with
it the reader would apply the Wigner–Seitz images a second time). The .win gives the projections by site, s on
each of the three Te sites, then p on each (``f=0.274,0.274,0: s`` …, one atom's functions not contiguous), spinors,
and the atoms (P3_121 with time reversal: 12 operations, non-magnetic). The model was made by the peer's
symmetry-adapted Wannierisation (``wannierise_Te.py``: sites at x = 0.27, the second and third at −0.27, i.e. one
lattice vector from the .win's 0.726) and symmetrised there (``symmetrize2``): its functions are labelled by the
cells of their centres, which qgtflow takes from the centres (``symmetrize.home_cells``).

Printed: the relative change of H(R) and of A(R) beyond the centres; the study's symmetry check (the smallest
``symmetry.tolerance`` that passes, with A(R)) before and after; AHC, Drude and the Berry-curvature dipole on the
full N³ grid (default 8; k_BT = 0.3 eV, μ 5.0–6.6 eV, τ = 1, natural units, position operator on): the largest
|entry| among the components the crystal allows and among those it forbids (AHC: all, by T), before and after, and
on the irreducible wedge of the symmetrised model with its largest difference from the full grid. With ``--peer
PYTHON`` the peer symmetrises the same file (``System_R.symmetrize``, ``Te:s``, ``Te:p``, the .win's atoms; its irrep
from ``PEER_EXTRA_PATH`` if not installed beside it) and the band energies of both are compared.

Run: ``.venv/bin/python benchmarks/te_symmetrize.py DATA [--size N] [--peer /work/peer-venv/bin/python]``.

Measured (2026-12-07, 8³, position operator on, default degeneracy_threshold 1e-4; allowed / forbidden largest
|entry| over μ, natural units):

    P3_121 (152) × θ, 12 operations; the file was already symmetrised by the peer (in its own labelling)
    as read       check needs 0.046 (C2' curvature, with A(R); energies ≤ 5e-10 of the bandwidth)
    symmetrised   ΔH/H 6.5e-10, ΔA/A (beyond the centres) 0.0274; check needs 3e-11 (energies ≤ 1e-14)
                  (before the functions' cells were taken from their centres: refused, ΔH/H 0.44 — the bonds of
                  the second and third sites' functions were mapped as if at 0.726, one lattice vector away)
        sigma_ahe               (all forbidden by T)  as read 0 / 5.8e-15  symmetrised 0 / 2e-14  wedge 0 / 1.9e-31
        sigma_drude             as read 0.3231 / 4.2e-10   symmetrised 0.3231 / 8.8e-15   wedge − full ≤ 8.8e-15
        berry_curvature_dipole  (D3: xx, yy, zz allowed)   as read 1.267 / 1.3e-3   symmetrised 1.267 / 8.4e-8
                                wedge − full ≤ 8.4e-8; the forbidden residual follows degeneracy_threshold
                                (2.8e-8 at 1e-6, 9.0e-7 at 1e-3): the near-degenerate groups, not the average
    the peer (WannierBerri 26.10): as read, the same band energies to 1.4e-14 eV at 4 k-points; its
    System_R.symmetrize (Te:s, Te:p) with the .win's atoms is 4.11 eV off ours (it takes every function in its
    atom's cell), with the atoms in the functions' cells (−0.274, as the QE input lists them) it agrees to 2.5e-14 eV
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import symmetrize_common as common  # noqa: E402
from wannierberri_data import CACHE, _convert  # noqa: E402

MU = [5.0, 5.8, 6.6]


def prepare(data: Path, python: Path) -> tuple[Path, list]:
    """(Te_tb.dat, the .win's atoms) in the cache, converted and copied once."""
    from qgtflow.models.wannier import read_win_atoms

    out = CACHE / "Te" / "Te_tb.dat"
    if not out.exists() and _convert(python, "npz", data / "Te_qe" / "system", out) is None:
        sys.exit(f"Te_qe/system: the peer ({python}) could not convert it")
    win = out.with_name("Te.win")
    if not win.exists():
        text = (data / "Te_qe" / "tellurium.win").read_text()
        win.write_text("".join(ln for ln in text.splitlines(True) if not ln.strip().lower().startswith("mp_grid")))
    return out, read_win_atoms(win)


def _study(tb: Path, symmetrize, size: int, atoms=None, wedge: bool = False) -> dict:
    out = {"model": {"name": "te", "wannier90": {"tb": str(tb), "symmetrize": symmetrize}}, "units": "natural",
           "mu": MU, "temperature": [0.3], "tau": 1.0, "responses": list(common.RESPONSES), "integration": "points",
           "kgrid": {"sizes": [size], "symmetry_reduce": wedge}}
    return {**out, "symmetry": {"atoms": atoms, "tolerance": 0.1}} if atoms is not None else out


PEER = common.PEER_HEAD + r"""
seed, atoms, ks = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
system = System_R.from_tb_dat(seed, berry=True)
system.symmetrize(positions=np.array([a[1:] for a in atoms]), atom_name=[a[0] for a in atoms], proj=["Te:s", "Te:p"],
                  soc=True)
""" + common.PEER_TAIL


def main() -> None:
    import argparse
    import json

    from qgtflow.study import load_study

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="WannierBerri's tests/data")
    parser.add_argument("--size", type=int, default=8, help="full grid N³ for the responses (0: skip)")
    parser.add_argument("--peer", default=None, help="a Python with wannierberri (converts the file; compares)")
    args = parser.parse_args()
    tb, atoms = prepare(Path(args.data), Path(args.peer or "/work/peer-venv/bin/python"))
    print(f"== {tb.name} (atoms {atoms})")
    raw = load_study(_study(tb, False, 4)).model
    print(f"  as read: {common.check(raw, atoms)}")
    sym = load_study(_study(tb, True, 4)).model
    clause = re.search(r"symmetrized over .*?relative change of H\(R\) [^;,]+(, of A\(R\)[^;]+)?", sym.convention)
    print(f"  symmetrised (the .win's site projections): {clause.group(0)}")
    print(f"    {common.check(sym, atoms)}")
    if args.size:
        studies = {"as read": _study(tb, False, args.size), "symmetrised": _study(tb, True, args.size),
                   "symmetrised wedge": _study(tb, True, args.size, atoms, wedge=True)}
        with tempfile.TemporaryDirectory() as tmp:
            common.responses(studies, _study(tb, True, args.size, atoms), Path(tmp), args.size)
    if args.peer:
        ks = [[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.37, 0.11, -0.23]]
        print("  the peer as read (no symmetrisation), against qgtflow as read:")
        common.peer_energies(args.peer, PEER.replace("system.symmetrize(", "0 and system.symmetrize("),
                             [str(tb), json.dumps(atoms)], ks, raw, "both as read")
        # the atoms in the cells of the functions (the QE input's −0.274): the peer takes each function in its
        # atom's cell; with the .win's 0.726 it averages another model
        moved = [[a[0], *(x - 1 if x > 0.5 else x for x in a[1:])] for a in atoms]
        for label, given in (("the .win's atoms", atoms), ("the atoms in the functions' cells", moved)):
            print(f"  the peer symmetrising with {label} {given}:")
            common.peer_energies(args.peer, PEER, [str(tb), json.dumps(given)], ks, sym)


if __name__ == "__main__":
    main()
