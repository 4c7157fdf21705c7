"""CPU seconds of the convergence stage's plots (issue 15: every CPU second of the default run's jobs counts).

For each study, the finished responses stores of a completed run (``<run>/<study>/n*/responses.zarr``, read
only) are loaded and analysed once, then ``convergence_stage.make_plots`` draws the study's PNGs into a
scratch directory; the figure printed is the CPU time (``time.process_time``) of the plots, best of
``--repeat``, with the PNG count and total size. The first round is a warm-up (imports, font cache).
Run: ``.venv/bin/python benchmarks/bench_convergence_plots.py --run /tmp/dr4 [studies ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DEFAULT_STUDIES = ("pt_toy_t09", "haldane", "ndd_two_valley", "snte_ndsc")


def analysed(run_dir: Path, study: str):
    from qgtflow.stages import convergence_stage as cs

    paths = sorted(str(p) for p in (run_dir / study).glob("n*/responses.zarr"))
    stores = cs.load_stores(paths)
    cut = cs.window_cut(stores)
    results = [cs.analyse_response(stores, r, 0.01, 0.0, cut=cut) for r in cs.response_names(stores)]
    return results, stores


def plot_cpu(results, stores, repeat: int) -> tuple[float, int, int]:
    from qgtflow.stages import convergence_stage as cs

    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.process_time()
            written = cs.make_plots(results, stores, Path(tmp))
            best = min(best, time.process_time() - t0)
            size = sum(p.stat().st_size for p in written)
    return best, len(written), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="*", default=DEFAULT_STUDIES)
    ap.add_argument("--run", default="/tmp/dr4", help="directory of a completed default run")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    run_dir = Path(args.run)
    data = {s: analysed(run_dir, s) for s in args.studies}
    plot_cpu(*data[args.studies[0]], 1)  # warm-up
    total = 0.0
    print(f"{'study':<18} {'PNGs':>4} {'CPU s':>7} {'kB':>7}")
    for s, (results, stores) in data.items():
        cpu, n, size = plot_cpu(results, stores, args.repeat)
        total += cpu
        print(f"{s:<18} {n:>4} {cpu:>7.2f} {size / 1e3:>7.0f}")
    print(f"{'total':<18} {'':>4} {total:>7.2f}")


if __name__ == "__main__":
    main()
