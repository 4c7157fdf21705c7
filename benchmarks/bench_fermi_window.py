"""When is a Fermi-surface-only chunk worth its window test? (``geometry/fermi_window.py`` MIN_SKIPPABLE)

    .venv/bin/python benchmarks/bench_fermi_window.py [--tb FILE] [--points 2048] [--repeat 3]

On a chunk of ``--points`` random k of a Wannier90 model (default the Fe-like test file; ``--tb`` e.g. a real
``_tb.dat``, position operator on as the file gives it), one thread, process CPU time, best of interleaved repeats:
for the fields of each kernel level (1: what σ_AHE reads, 2: + inverse mass, 3: + dipoles) and windows around the
middle of the spectrum of growing width, the skippable fraction of the chunk and the ms per k-point of
``fields_in_window`` forced through the window (``min_skippable`` 0) against the fields at every point. The
break-even skippable fraction per level is where the two meet; the automatic choice (the module's thresholds)
is timed as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LEVEL_FIELDS = {1: ("energy", "velocity", "berry_curvature"),
                2: ("energy", "velocity", "berry_curvature", "inverse_mass"),
                3: ("energy", "velocity", "berry_curvature", "inverse_mass", "berry_curvature_dipole_density")}


def main() -> None:
    from qgtflow.geometry import fermi_window
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models.wannier import read_tb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tb", type=Path, default=ROOT / "tests" / "data" / "fe_like_tb.dat")
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--widths", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.4, 0.8],
                    help="half-widths of the windows as fractions of the spectrum's span")
    args = ap.parse_args()
    model = read_tb(args.tb, length_unit="angstrom")
    k = np.random.default_rng(2).uniform(-1.0, 1.0, (args.points, model.dim))
    energy = fermi_window.band_energies(model, k)
    mid, span = float(np.median(energy)), float(np.ptp(energy))
    threshold = 1e-6
    print(f"# bench_fermi_window {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.tb.name}, "
          f"{model.nbands} bands, {args.points} k, one thread, CPU ms per k-point (best of {args.repeat}); "
          f"thresholds {fermi_window.MIN_SKIPPABLE}")
    for level, names in LEVEL_FIELDS.items():
        def compute(points, names=names):
            return compute_fields(model, points, threshold, core=names, n_threads=1)

        compute(k[:4])  # compiled
        for width in args.widths:
            window = [mid - width * span, mid + width * span]
            skippable = 1.0 - fermi_window.needed_points(energy, window, threshold).mean()
            runs = {"window": lambda w=window: fermi_window.fields_in_window(
                        model, k, {"energy": w, "min_skippable": 0.0}, compute, names, threshold),
                    "every point": lambda: compute(k),
                    "automatic": lambda w=window: fermi_window.fields_in_window(
                        model, k, {"energy": w}, compute, names, threshold)}
            best = {name: np.inf for name in runs}
            for _ in range(args.repeat):
                for name, fn in runs.items():
                    t0 = time.process_time()
                    fn()
                    best[name] = min(best[name], time.process_time() - t0)
            print(f"level {level}, skippable {100 * skippable:5.1f} %: " + ", ".join(
                f"{name} {1e3 * t / args.points:.4f}" for name, t in best.items()), flush=True)


if __name__ == "__main__":
    main()
