"""Real Wannier90 models from WannierBerri's test data, as ``_tb.dat`` files both codes read (for bench_wannier.py).

``DATA`` is a directory holding the peer repository's ``tests/data`` (wannier-berri/wannier-berri: a clone, or the
folders below extracted from one); the files are prepared once into ``benchmarks/data-cache/`` (git-ignored, never
committed: the Te and Fe files are 4–5 MB):

- GaAs: ``GaAs_Wannier90/GaAs_tb.dat.tar.gz`` as Wannier90 wrote it (16 spinor sp3 orbitals, 19 R on the 2×2×2
  Wigner–Seitz cell). No ``.win`` is copied beside it: qgtflow infers the 2×2×2 grid from the R list and applies
  Wannier90's use_ws_distance correction, the peer is given the same grid (``ws_grid``, as its own tests do).
- Te: ``Te_qe/system`` (the peer's saved real-space matrices, legacy npz layout: 24 spinor orbitals, 65 R), written
  as ``_tb.dat`` by the peer (``System_R.to_tb_file``; its R list already carries the Wigner–Seitz images, all
  degeneracies 1, so neither code corrects again).
- Fe: ``Fe_Wannier90`` (Fe.chk, Fe.eig, Fe.mmn from its .tar.gz: 18 spinor orbitals), H(R) and A(R) built by the
  peer from the checkpoint (``System_R.from_wannierdata``, Wigner–Seitz images applied), written as ``_tb.dat``.
- Mn3Sn: ``Mn3Sn_Wannier90/Mn3Sn_tb.dat.tar.gz`` (84 bands) when it is a real gzip file (not an LFS pointer).

μ windows (eV, 2 eV wide around the peer tests' Fermi levels, ``tests/common_systems.py``): the responses are
compared over each.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / "data-cache"
# label → (bands, μ window in eV)
REAL_FILES = {"GaAs": (16, (6.9, 8.9)), "Te": (24, (4.8, 6.8)), "Fe": (18, (17.0, 19.0)), "Mn3Sn": (84, (1.5, 3.5))}

CONVERT_SCRIPT = r"""
import sys
from wannierberri.system.system_R import System_R
kind, src, out = sys.argv[1:4]
if kind == "npz":  # the peer's saved system (legacy layout: matrices (n, n, nR))
    system = System_R.from_npz(src, legacy=True)
else:  # a Wannier90 checkpoint with its .eig and .mmn
    from wannierberri.w90files.wandata import WannierData
    data = WannierData.from_w90_files(seedname=src, files=("chk", "eig", "mmn"), readnnkp=False)
    system = System_R.from_wannierdata(wandata=data, berry=True, ws_dist_tol=1e-5)
system.to_tb_file(out)
print("CONVERTED", system.num_wann, system.rvec.nRvec)
"""


def _untar(archive: Path, member_suffix: str, out: Path) -> Path | None:
    """Extract the member ending in ``member_suffix`` of a .tar.gz to ``out``; None (with a message) if the archive
    is absent or not a gzip file (a Git LFS pointer, or a blob the snapshot lacks)."""
    if not archive.exists():
        print(f"SKIP {archive}: absent")
        return None
    if archive.read_bytes()[:2] != b"\x1f\x8b":
        print(f"SKIP {archive}: not a gzip file (an LFS pointer?)")
        return None
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(member_suffix))
        out.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(member) as src, open(out, "wb") as dst:
            dst.write(src.read())
    return out


def _convert(python: Path, kind: str, src: Path, out: Path) -> Path | None:
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(python), "-c", CONVERT_SCRIPT, kind, str(src), str(out)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if "CONVERTED" not in done.stdout:
        print(f"SKIP {src}: the peer could not convert it:\n{done.stderr[-1500:]}")
        return None
    return out


def prepare(data: Path, python: Path, cache: Path = CACHE) -> dict[str, Path]:
    """{label: _tb.dat path} of the real files available under ``data`` (prepared once into ``cache``)."""
    files = {}
    for label in REAL_FILES:
        out = cache / label / f"{label}_tb.dat"
        if out.exists():
            files[label] = out
            continue
        if label in ("GaAs", "Mn3Sn"):
            got = _untar(data / f"{label}_Wannier90" / f"{label}_tb.dat.tar.gz", f"{label}_tb.dat", out)
        elif label == "Te":
            got = _convert(python, "npz", data / "Te_qe" / "system", out)
        else:  # Fe: the checkpoint beside its unpacked .mmn
            work = cache / "Fe_Wannier90"
            work.mkdir(parents=True, exist_ok=True)
            src = data / "Fe_Wannier90"
            for name in ("Fe.chk", "Fe.eig"):
                if (src / name).exists() and not (work / name).exists():
                    (work / name).write_bytes((src / name).read_bytes())
            mmn = _untar(src / "Fe.mmn.tar.gz", "Fe.mmn", work / "Fe.mmn") if not (work / "Fe.mmn").exists() else True
            got = _convert(python, "w90", work / "Fe", out) if mmn and (work / "Fe.chk").exists() else None
        if got is not None:
            files[label] = got
    return files


def mu_grid(label: str, step: float = 1e-3) -> np.ndarray:
    """The μ grid (eV) of a real file: its window in ``step`` steps (1 meV: the peer smooths its T = 0 sums on it)."""
    lo, hi = REAL_FILES[label][1]
    return np.linspace(lo, hi, int(round((hi - lo) / step)) + 1)
