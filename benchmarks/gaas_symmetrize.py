"""WannierBerri's GaAs Wannier90 files symmetrised by ``model.wannier90.symmetrize`` (models/symmetrize.py, issue 18).

Two files of the peer's ``tests/data/GaAs_Wannier90`` (prepared into ``benchmarks/data-cache/`` as
``wannierberri_data.py`` does, from the peer's ``tests/data`` given as DATA):

- ``GaAs_sym_tb.dat``: the file the peer's own tests symmetrise (``System_R.symmetrize`` with Ga at 0, As at ¼,
  ``Ga:sp3``, ``As:sp3``, spinors in block order, ``tests/common_systems.py``): 16 spinor sp3 functions, block
  ordered (all up, then all down), centres at the sp3 hybrids' sites.
- ``GaAs_tb.dat`` (the file of README's "WannierBerri's GaAs"): its maximally localised functions no longer follow the
  projections' order (equal-centre pairs (0, 7), (1, 2), (3, 6), (4, 5) on Ga), so no projection list describes it:
  symmetrising it is refused (the change of H it would need is printed).

Printed: the relative change of H(R) and of A(R) beyond the centres; the study's symmetry check (the smallest
``symmetry.tolerance`` that passes every operation, with A(R)) before and after; AHC, Drude and the Berry-curvature
dipole on the full N³ grid (default 8; k_BT = 0.3 eV, μ 6.5–7.9 eV, τ = 1, natural units, the position operator on):
the largest |entry| among the components T_d × θ allows and among those it forbids, before and after, and on the
irreducible wedge of the symmetrised model (``kgrid.symmetry_reduce``) with its largest difference from the full grid.
With
``--peer PYTHON`` (a Python with wannierberri), the peer symmetrises the same file and the band energies of both
symmetrised models are compared at a few k-points (the peer's irrep, if not installed beside it, from the
directories of ``PEER_EXTRA_PATH``, searched after its own packages).

Run: ``.venv/bin/python benchmarks/gaas_symmetrize.py DATA [--size N] [--peer /work/peer-venv/bin/python]``.

Measured (2026-12-07, 8³, position operator on, default degeneracy_threshold 1e-4; allowed / forbidden largest
|entry| over μ, natural units):

    GaAs_tb.dat       as read: check needs 0.39 (-4z curvature); symmetrised: refused, H would change by 0.60
                      (block) / 0.44 (interlace): its functions do not follow the projections
    GaAs_sym_tb.dat   as read: check needs 0.61 (C3' curvature; energies ≤ 5.1e-3 of the bandwidth)
                      symmetrised (block): ΔH/H 0.0227, ΔA/A (beyond the centres) 0.216; check needs 1.9e-12
                      (energies ≤ 1.7e-15 of the bandwidth); interlace refused (ΔH/H 0.88)
        sigma_ahe               as read 0 / 6.7e-3      symmetrised 0 / 1.6e-13   wedge 0 / 5e-20
        sigma_drude             as read 0.3732 / 1.3e-3 symmetrised 0.3737 / 1.2e-16 (|Δ| ≤ 7e-3)
                                                        wedge − full ≤ 6.3e-15
        berry_curvature_dipole  as read 0 / 7.0         symmetrised 0 / 1.3e-8    wedge 0 / 1.8e-18
    the peer (WannierBerri 26.10, System_R.symmetrize as its tests call it, Wigner–Seitz on the 3×3×3 grid the file's
    degeneracies tile): band energies of the symmetrised models agree to 1.8e-14 eV at 4 k-points (8.9e-15 as read;
    its tests' 2×2×2 grid gives another model, 1.4 eV apart)
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
from wannierberri_data import CACHE, _untar  # noqa: E402

ATOMS = [["Ga", 0.0, 0.0, 0.0], ["As", 0.25, 0.25, 0.25]]
SPEC = {"projections": {"Ga": "sp3", "As": "sp3"}, "spinors": True, "spin_ordering": "block", "atoms": ATOMS}
RESPONSES = common.RESPONSES


def _file(data: Path, name: str) -> Path:
    out = CACHE / name.replace("_tb.dat", "") / name
    if not out.exists() and _untar(data / "GaAs_Wannier90" / f"{name}.tar.gz", name, out) is None:
        sys.exit(f"{name}: not found under {data}")
    return out


def _study(tb: Path, symmetrize, size: int, symmetry: bool = False) -> dict:
    w = {"tb": str(tb)}
    if symmetrize:
        w["symmetrize"] = symmetrize
    out = {"model": {"name": "gaas", "wannier90": w}, "units": "natural", "mu": [6.5, 7.2, 7.9],
           "temperature": [0.3], "tau": 1.0, "responses": list(RESPONSES), "integration": "points",
           "kgrid": {"sizes": [size]}}
    return {**out, "symmetry": {"atoms": ATOMS, "tolerance": 0.1}} if symmetry else out


def check(model) -> str:
    return common.check(model, ATOMS)


def responses(tb: Path, size: int, workdir: Path) -> None:
    wedge = {**_study(tb, SPEC, size, symmetry=True), "kgrid": {"sizes": [size], "symmetry_reduce": True}}
    studies = {"as read": _study(tb, False, size), "symmetrised": _study(tb, SPEC, size), "symmetrised wedge": wedge}
    common.responses(studies, _study(tb, SPEC, size, symmetry=True), workdir, size)


PEER = common.PEER_HEAD + r"""
seed, ks = sys.argv[1], json.loads(sys.argv[2])
system = System_R.from_tb_dat(seed, berry=True)
system.do_ws_dist(mp_grid=(3, 3, 3), ws_dist_tol=-1e-5)  # the grid its degeneracies tile (qgtflow infers it)
system.spin_block2interlace()
system.symmetrize(positions=np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]), atom_name=["Ga", "As"],
                  proj=["Ga:sp3", "As:sp3"], soc=True)
""" + common.PEER_TAIL


def peer(python: str, tb: Path, model) -> None:
    ks = [[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.37, 0.11, -0.23]]
    common.peer_energies(python, PEER, [str(tb)], ks, model)


def main() -> None:
    import argparse

    from qgtflow.errors import ModelError
    from qgtflow.study import load_study

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="WannierBerri's tests/data")
    parser.add_argument("--size", type=int, default=8, help="full grid N³ for the responses (0: skip)")
    parser.add_argument("--peer", default=None, help="a Python with wannierberri, to compare its symmetrisation")
    args = parser.parse_args()
    data = Path(args.data)
    for name in ("GaAs_tb.dat", "GaAs_sym_tb.dat"):
        tb = _file(data, name)
        print(f"== {name}")
        raw = load_study(_study(tb, None, 4)).model
        print(f"  as read: {check(raw)}")
        for ordering in ("block", "interlace"):
            try:
                sym = load_study(_study(tb, {**SPEC, "spin_ordering": ordering}, 4)).model
            except ModelError as exc:
                print(f"  symmetrised, spinors {ordering}: refused: {exc}")
                continue
            clause = re.search(r"symmetrized over .*?relative change of H\(R\) [^;,]+(, of A\(R\)[^;]+)?",
                               sym.convention).group(0)
            print(f"  symmetrised, spinors {ordering}: {clause}")
            print(f"    {check(sym)}")
            if ordering == "block" and args.size:
                with tempfile.TemporaryDirectory() as tmp:
                    responses(tb, args.size, Path(tmp))
            if ordering == "block" and args.peer:
                peer(args.peer, tb, sym)


if __name__ == "__main__":
    main()
