"""H(k) and A^W(k) with their convention-II orbital phases: this checkout against another one's
``models/tight_binding.py``, interleaved in one process.

    .venv/bin/python benchmarks/bench_orbital_phases.py --against OTHER/src/qgtflow/models/tight_binding.py TB [TB ...]
                                                        [--points 1728] [--repeat 5]

On each ``_tb.dat`` (read by this checkout, position operator on): ``TightBindingModel.unique_derivatives`` of H to
third order and of the three A^W components to second order (what the four quantities of ``bench_wannier.py --real``
read) on ``--points`` random k, once with this checkout's module and once with the other file's functions (its
``_leibniz_table`` / ``_combine_orbital_phases``; the Bloch sums are the model's own), alternately; printed: CPU
seconds (best and median of ``--repeat``, one thread) and the largest difference relative to max |H|.

2026-12-07 03:47 UTC, against main at 388e882 (load average 6), 1728 k, best of 5, other → this: GaAs 0.56 → 0.38 s,
Te 1.28 → 0.68 s, Fe 0.77 → 0.54 s (equal to 1.9e-16 relative; the Leibniz factors once per call, 7cf9106, and the
sums and their combination in blocks of k-points, 7c99e8c).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tb", type=Path, nargs="+")
    ap.add_argument("--against", type=Path, required=True, help="another checkout's models/tight_binding.py")
    ap.add_argument("--points", type=int, default=1728)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from qgtflow.models import tight_binding as this
    from qgtflow.models.wannier import read_tb

    spec = importlib.util.spec_from_file_location("other_tight_binding", args.against)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    print(f"# bench_orbital_phases {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: against {args.against}, "
          f"{args.points} k, one thread, CPU s, {args.repeat} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    k = np.random.default_rng(3).uniform(-1.0, 1.0, (args.points, 3))
    for tb in args.tb:
        m = read_tb(tb, length_unit="angstrom")
        parts = [(m, 3)] + [(c, 2) for c in (m.position.components if m.position is not None else [])]
        runs = {name: (lambda mod=mod: [mod.TightBindingModel.unique_derivatives(c, k, order=o) for c, o in parts])
                for name, mod in (("other", other), ("this", this))}
        values = {name: fn() for name, fn in runs.items()}  # compiled / loaded
        times = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, fn in runs.items():
                t0 = time.process_time()
                fn()
                times[name].append(time.process_time() - t0)
        diff = max(np.abs(a - b).max() / np.abs(a).max() for a, b in zip(values["other"], values["this"]))
        print(f"{tb.name}: {m.nbands} bands, phase-free {m.phase_free}: "
              + ", ".join(f"{name} best {min(t):.3f} median {np.median(t):.3f} s" for name, t in times.items())
              + f"; max difference {diff:.1e} relative", flush=True)


if __name__ == "__main__":
    main()
