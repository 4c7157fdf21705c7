"""CPU of the shells stage's Kubo product (002 Eq. 11, reduce/dispersive_kubo.py) for study ndd_kubo of
config/config.yaml, with the responses it requests (every q direction: sigma_nonlocal) and with Δn alone
(q = z only). Prints the best-of-repeat CPU seconds of shells_dataset (one process, one thread; the first call
also pays lazy imports).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shells_kubo.py [--size 16] [--repeat 2]
"""

import argparse
import time
from pathlib import Path

from qgtflow import yamlio
from qgtflow.plan import grid_chain
from qgtflow.stages.shells_stage import shells_dataset
from qgtflow.study import load_study

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def cpu(cfg: dict, size: int, repeat: int) -> tuple[float, list]:
    study = load_study(cfg)
    job = grid_chain(study, size)["shells"]
    grid = study.make_grid(size)
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        shells_dataset(study, grid, job["products"], job)
        best = min(best, time.process_time() - t)
    return best, job["kubo_inputs"]["q"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    study = {**yamlio.load(CONFIG.read_text())["studies"]["ndd_kubo"], "name": "ndd_kubo"}
    for label, responses in (("as configured", study["responses"]), ("Δn alone", ["ndd_delta_n_kubo"])):
        seconds, q = cpu({**study, "responses": responses}, args.size, args.repeat)
        print(f"ndd_kubo {args.size}^3 {label:14s} q = {','.join(q):6s} shells CPU {seconds:6.2f} s")


if __name__ == "__main__":
    main()
