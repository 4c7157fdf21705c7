"""Extra reduce-stage CPU of the IFE's frequency form (000 App. B: a(ω) = a(0)/(1 + iωτ)) on the default study
``ife_warped`` (config/config.yaml) at one grid: the geometry store is built once, then the reduce stage runs on it
without ``omega`` and with the study's ``omega`` list, alternately, and prints the CPU time of each
(``time.process_time``, best of ``--reps``, after a warm-up reduce so numba caches are loaded) and the difference.

Run: ``.venv/bin/python benchmarks/bench_ife_omega.py [--size 256] [--reps 3]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from qgtflow.plan import grid_chain, stage_study
    from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
    from qgtflow.study import load_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["studies"]["ife_warped"]
    with_omega = {"name": "ife_warped", **copy.deepcopy(cfg)}
    with_omega.setdefault("omega", [0.0, 0.5, 1.0, 2.0])
    static = {k: v for k, v in with_omega.items() if k != "omega"}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        st = load_study(static)
        chain = grid_chain(st, (args.size, args.size))
        kgrid_stage.run(st, (args.size, args.size), base / "kgrid.zarr", job=chain["kgrid"])
        geometry_stage.run(st, base / "kgrid.zarr", base / "geometry.zarr", n_workers=0, job=chain["geometry"])
        studies = {"static": static, "omega": with_omega}
        best = {k: float("inf") for k in studies}
        reduce_stage.run(stage_study("reduce", chain["reduce"], where=st.where), base / "geometry.zarr", n_workers=0,
                         job=chain["reduce"])  # warm-up
        for _ in range(args.reps):
            for key, cfg_k in studies.items():
                s = load_study(cfg_k)
                job = grid_chain(s, (args.size, args.size))["reduce"]
                t0 = time.process_time()
                reduce_stage.run(stage_study("reduce", job, where=s.where), base / "geometry.zarr", n_workers=0,
                                 job=job)
                best[key] = min(best[key], time.process_time() - t0)
    n_omega = len(with_omega["omega"])
    print(f"ife_warped {args.size}², {len(st.mu)} mu x {len(st.temperature)} T, omega list of {n_omega}")
    print(f"reduce CPU static      {best['static']:.3f} s")
    print(f"reduce CPU with omega  {best['omega']:.3f} s")
    print(f"extra                  {best['omega'] - best['static']:+.3f} s "
          f"({100 * (best['omega'] / best['static'] - 1):+.1f} %)")


if __name__ == "__main__":
    main()
