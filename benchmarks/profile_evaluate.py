"""Where one warm ``qgtflow.evaluate`` of a ``_tb.dat`` spends its CPU time (issue 17: "a profile of where the rest
goes").

    .venv/bin/python benchmarks/profile_evaluate.py TB --size N [--quantities ahc|all4 ...] [--real LABEL] [--top 25]

The study of ``bench_peer.py`` (2D files: its μ grid, 300 K, τ = 1 fs) or, with ``--real LABEL`` (GaAs, Te, Fe), of
``bench_wannier.py --real`` (that file's μ window, default settings, full position operator), on an N^dim grid;
one thread; ``evaluate(n_workers=0)`` as a user calls it (no workdir: the one pass of ``stages/fused.py``), once to
warm up, then once under cProfile (``time.process_time``). Printed: the CPU total, then the qgtflow functions and the
numpy calls that matter by own time (tottime, percent of the total) and the stages by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("load_study", "grid_chain", "memory_grid", "points_fields", "connection_for", "unique_derivatives",
          "eigenbasis", "external_from_eigenbasis", "geometry_eigenbasis_chunk", "geometry_chunk", "add", "finish",
          "sample_step", "model_hash")


def study_of(tb: Path, quantities: list[str], real: str | None) -> dict:
    if real:
        from benchmarks.bench_wannier import qgtflow_study
        from benchmarks.wannierberri_data import mu_grid

        return qgtflow_study(tb, None, mu_grid(real))
    from benchmarks.bench_peer import QUANTITIES, QUANTITY_SETS, qgtflow_study

    return qgtflow_study(tb, [QUANTITIES[q][0] for s in quantities for q in QUANTITY_SETS[s]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tb", type=Path)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--quantities", nargs="+", default=["ahc"], help="bench_peer.py's quantity names (2D files)")
    ap.add_argument("--real", metavar="LABEL", help="the study of bench_wannier.py --real for this file's label")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    import qgtflow

    logging.getLogger("qgtflow").setLevel(logging.ERROR)
    study = study_of(args.tb, args.quantities, args.real)
    qgtflow.evaluate(study, size=4, n_workers=0).load()  # warm-up: kernels loaded
    prof = cProfile.Profile(time.process_time)
    t0 = time.process_time()
    prof.runcall(lambda: qgtflow.evaluate(study, size=args.size, n_workers=0).load())
    total = time.process_time() - t0
    n_k = args.size ** (2 if args.real is None else 3)
    print(f"# profile_evaluate {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.tb.name}, "
          f"{', '.join(study['responses'])}, {n_k} k, one thread, load average {os.getloadavg()[0]:.1f}: "
          f"{total:.3f} s CPU ({n_k / total:.4g} k/s)")
    stats = pstats.Stats(prof).stats
    own = sorted(((v[2], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.items()
                  if "qgtflow" in k[0] or "numpy" in k[0] or k[0] == "~"), reverse=True)
    print("by own time:")
    for t, name in own[:args.top]:
        print(f"  {t:7.3f} s  {100 * t / total:5.1f} %  {name}")
    print("by cumulative time (stages):")
    cum = sorted(((v[3], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.items()
                  if "qgtflow" in k[0] and k[2] in STAGES), reverse=True)
    for t, name in cum:
        print(f"  {t:7.3f} s  {100 * t / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
