"""CPU ms per k-point of building the Wannier position operator's A^W(k) and its derivatives, beside H(k), and of the
σ_AHE fields with the operator on (issues 17/18).

    .venv/bin/python benchmarks/bench_position_build.py [--bands 16 84] [--points 300] [--repeat 3]

On generated ``_tb.dat`` files (``bench_wannier.write_random_tb``: 125 R vectors, random position elements A(R)),
one thread, ``--points`` random k: H and ∂H from the R blocks; A^W with all nine ∂_aA^W_b
(``PositionOperator.unique_derivatives(order=1)``, what the σ_AHE fields built before); A^W and Ω^W only
(``connection_curvature``, what they build now; absent in older code); the kernel's σ_AHE fields (energy, velocity,
Berry curvature) with the operator on (automatic path). Per piece: min / median / max over ``--repeat`` runs, so
the spread on a loaded machine shows. Run the same script against an older checkout (``PYTHONPATH=OLD/src``) in
alternation to compare.

2026-12-06, loaded 2-core VM, 300 k, 3 rounds alternating before (0d207a6, ``unique_derivatives(order=1)``) and
after (``connection_curvature``), min of 3 repeats per round, ms/k, the three rounds' values: 16 bands, A^W build
0.26–0.30 (all ∂A) → 0.11–0.13 (A, Ω^W), σ_AHE fields 0.50–0.56 → 0.33–0.46; 84 bands, A^W build 6.1–8.6 → 4.2–4.5
(H, ∂H 2.0–2.3), σ_AHE fields 12.2–15.7 → 10.9–12.3. Same day, ``bench_wannier.py --kernel-paths --generated 16``
(300 k, 3 alternating rounds, ``NUMBA_NUM_THREADS=1`` set: a cold numba cache otherwise stops it with "Cannot set
NUMBA_NUM_THREADS to a different value"): σ_AHE fields with the operator, automatic path 0.84–0.90 → 0.51–0.62,
per-k 0.90–1.00 → 0.58–0.68; all core fields (dipoles: full ∂A^W, ∂²A^W as before) 2.8–3.5 either way.

Hermitian tables (``tight_binding.HermitianBlochSums``, real products over the ±R pairs and the upper triangles): the
script times both, interleaved in one process ("complex products" / "real ±R sums", min / median / max of 3 repeats).
2026-12-06 22:24 UTC, loaded 2-core VM, 300 k, ms/k, min, complex → real: 16 bands H, ∂H 0.094 → 0.049, A with all
∂A 0.290 → 0.164, A and Ω^W 0.116 → 0.063, σ_AHE fields 0.403 → 0.308; 84 bands H, ∂H 2.05 → 1.33, A with all ∂A
8.04 → 4.84, A and Ω^W 3.90 → 1.19, σ_AHE fields 11.0 → 5.7 (equal to 2e-15 relative: tests/test_bloch_sums.py).
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    import qgtflow
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models.wannier import read_tb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", type=int, nargs="+", default=[16, 84])
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"# bench_position_build {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, qgtflow from "
          f"{Path(qgtflow.__file__).parents[1]}: {args.points} random k, one thread, CPU ms per k-point "
          f"(min / median / max of {args.repeat})", flush=True)
    k = np.random.default_rng(1).uniform(-1.0, 1.0, (args.points, 3))
    with tempfile.TemporaryDirectory(prefix="bench-position-") as tmp:
        for n in args.bands:
            path = Path(tmp) / f"generated{n}_tb.dat"
            write_random_tb(path, n, 125, position_scale=0.05)
            on = read_tb(path, length_unit="angstrom")
            pos = on.position
            pieces = {"H, dH": lambda: on.unique_derivatives(k, order=1),
                      "A, all dA": lambda: pos.unique_derivatives(k, order=1)}
            if hasattr(pos, "connection_curvature"):
                pieces["A, Omega^W"] = lambda: pos.connection_curvature(k)
            pieces["sigma_AHE fields, operator on"] = lambda: compute_fields(on, k, core=AHC_CORE, n_threads=1)
            compute_fields(on, k[:2], core=AHC_CORE, n_threads=1)  # compiled / loaded
            modes = {"": None}
            if hasattr(on, "hermitian_sums"):  # the real ±R sums (and the complex products, interleaved)
                tables = [on] + pos.components
                built = ([m.hermitian_sums() for m in tables], pos.paired_sums())
                modes = {"complex products, ": ([None] * len(tables), None), "real ±R sums, ": built}
            times = {(mode, name): [] for mode in modes for name in pieces}
            for _ in range(args.repeat):
                for mode, caches in modes.items():
                    if caches is not None:
                        for m, c in zip(tables, caches[0]):
                            m._hermitian_sums = c
                        pos._paired = caches[1]
                    for name, fn in pieces.items():
                        t0 = time.process_time()
                        fn()
                        times[mode, name].append(1e3 * (time.process_time() - t0) / args.points)
            for (mode, name), ts in times.items():
                print(f"{n} bands, {mode}{name}: {min(ts):.3f} / {np.median(ts):.3f} / {max(ts):.3f}", flush=True)


if __name__ == "__main__":
    main()
