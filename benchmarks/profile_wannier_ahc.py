"""Where qgtflow's time goes for the AHC of a many-band Wannier90 model (issue 18 item 3).

    .venv/bin/python benchmarks/profile_wannier_ahc.py [--tb FILE] [--bands 84] [--nrpts 125] [--points 2000]
                                                        [--size 12] [--repeat 3]

On a ``_tb.dat`` (default: a generated 84-band file with random position elements A(R), as large as Mn3Sn's
84 Wannier functions; ``--tb`` a real one), one thread, process CPU time, best of ``--repeat`` interleaved runs:
the file read; on ``--points`` random k the pieces of the geometry kernel for what σ_AHE reads (energy, velocity,
Berry curvature): H(k) and its derivatives built from the R blocks (to first order, and to third, which the
position operator asks for), a bare batched ``numpy.linalg.eigh``, the whole kernel without and with the position
operator (its external terms); then ``qgtflow.evaluate`` of σ_AHE end to end on a ``--size``³ grid under cProfile
(no workdir, as a user calls it: the one pass of ``stages/fused.py``), cumulative time by function.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_peer import AHC_CORE  # noqa: E402
from benchmarks.bench_wannier import write_random_tb  # noqa: E402


def cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def kernel_pieces(tb: Path, n_points: int, repeat: int):
    """CPU seconds of each piece on the ``n_points`` k (best of interleaved repeats), the file's read time, its
    band and R counts."""
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models.wannier import read_tb

    t0 = time.process_time()
    on = read_tb(tb, length_unit="angstrom")
    read = time.process_time() - t0
    off = read_tb(tb, length_unit="angstrom", position_operator=False)
    k = np.random.default_rng(1).uniform(-1.0, 1.0, (n_points, 3))
    H = off.unique_derivatives(k, order=1)[:, 0].copy()
    pieces = {
        "H, dH (order 1)": lambda: off.unique_derivatives(k, order=1),
        "H .. d3H (order 3)": lambda: off.unique_derivatives(k, order=3),
        "eigh (batched numpy)": lambda: np.linalg.eigh(H),
        "kernel, no position operator": lambda: compute_fields(off, k, core=AHC_CORE),
        "kernel, position operator": lambda: compute_fields(on, k, core=AHC_CORE),
    }
    for m in (on, off):
        compute_fields(m, k[:2], core=AHC_CORE)  # compiled / loaded
    best = {name: np.inf for name in pieces}
    for _ in range(repeat):  # interleaved
        for name, fn in pieces.items():
            best[name] = min(best[name], cpu_seconds(fn))
    return best, read, on.nbands, len(on.cells)


def profile_evaluate(tb: Path, size: int, top: int = 12) -> None:
    import logging

    import qgtflow

    logging.getLogger("qgtflow").setLevel(logging.ERROR)  # the sampling warnings of coarse grids

    study = {"name": "profile", "model": {"name": "m", "wannier90": {"tb": str(tb)}}, "units": {"length": "angstrom"},
             "kgrid": {"sizes": [4]}, "mu": {"start": -0.5, "stop": 0.5, "num": 101}, "temperature": [300.0],
             "responses": ["sigma_ahe"]}
    qgtflow.evaluate(study, size=4, n_workers=0)  # warm-up
    prof = cProfile.Profile(time.process_time)
    t0 = time.process_time()
    prof.runcall(qgtflow.evaluate, study, size=size, n_workers=0)  # as a user calls it: one pass, no store
    total = time.process_time() - t0
    stats = pstats.Stats(prof)
    print(f"evaluate σ_AHE {size}^3 = {size**3} k: {total:.2f} s CPU ({size**3 / total:.4g} k/s); "
          "cumulative by function:")
    rows = sorted(((v[3], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.stats.items()
                   if "qgtflow" in k[0] or k[2] in ("eigh", "<method 'reduce' of 'numpy.ufunc' objects>")),
                  reverse=True)
    for cum, name in rows[:top]:
        print(f"  {cum:7.2f} s  {100 * cum / total:5.1f} %  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tb", type=Path)
    ap.add_argument("--bands", type=int, default=84)
    ap.add_argument("--nrpts", type=int, default=125)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tb = args.tb
        if tb is None:
            tb = Path(tmp) / "generated_tb.dat"
            write_random_tb(tb, args.bands, args.nrpts, position_scale=0.05)
        pieces, read, nb, ncells = kernel_pieces(tb, args.points, args.repeat)
        print(f"# profile_wannier_ahc {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {tb.name}, {nb} bands, "
              f"{ncells} R, {args.points} k, one thread, CPU time, best of {args.repeat}; file read {read:.2f} s")
        for name, t in pieces.items():
            print(f"  {name:32s} {1e3 * t / args.points:8.3f} ms per k-point")
        profile_evaluate(tb, args.size)


if __name__ == "__main__":
    main()
