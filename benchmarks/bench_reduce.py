"""Reduce-stage cost versus the number of (μ, T) pairs, beside the geometry stage of the same study.

For each model, grid and response kind the geometry store is built once (CPU time of the geometry stage, in
process, one thread); then the reduce stage runs in a fresh process per (μ × T) count, after a 1 μ × 1 T warm-up
run in that process (numba caches loaded), and prints its CPU time (``time.process_time``, best of ``--reps``),
its peak-RSS increment over the warm process (``ru_maxrss``, MiB), reduce/geometry and the ratio to the smallest
(μ × T) count. ``--compare SRC`` also runs every reduce with ``PYTHONPATH=SRC`` (e.g. an export of an older
``src/``), interleaved with the current code, so before/after ratios come from the same run.
``--scaling`` prints the wall-time speed-up of the reduce stage on 2 Dask workers versus 1 (grid ≥ 512²).

Run: ``.venv/bin/python benchmarks/bench_reduce.py [--quick] [--compare /tmp/old/src] [--scaling]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# model → (μ range (model energy units), label); temperatures span T_RANGE (K)
MODELS = {"haldane": ((-1.0, 1.0), "2-band tight-binding"),
          "tilted_dirac": ((-0.3, 0.3), "2-band k·p"),
          "pt_toy_4band": ((0.0, 0.5), "4-band k·p")}
T_RANGE = (10.0, 300.0)
KINDS = {  # name → (responses, extra study keys)
    "sea": (["sigma_ahe"], {}),
    "surface": (["sigma_drude", "berry_curvature_dipole", "sigma_nonlinear_drude"], {}),
    "qm": (["sigma_qm"], {}),
    "many": (["sigma_ahe", "sigma_qm", "sigma_qm_variant", "sigma_bcd", "sigma_nonlinear_drude", "sigma_drude",
              "berry_curvature_dipole"], {}),
    "tetrahedron": (["sigma_ahe", "sigma_drude"], {"integration": "tetrahedron"}),  # T includes 0
}
PAIRS = [(5, 2), (100, 5), (2000, 20)]


def study_config(model: str, size: int, kind: str, n_mu: int, n_t: int) -> dict:
    responses, extra = KINDS[kind]
    lo, hi = MODELS[model][0]
    t_lo = 0.0 if extra.get("integration") == "tetrahedron" else T_RANGE[0]
    return {"name": f"bench_{kind}", "model": {"name": model}, "kgrid": {"sizes": [size]},
            "mu": {"start": lo, "stop": hi, "num": n_mu},
            "temperature": {"start": t_lo, "stop": T_RANGE[1], "num": n_t} if n_t > 1 else [T_RANGE[1]],
            "responses": responses, **extra}


CHILD = """
import json, os, resource, sys, time
from qgtflow.stages import reduce_stage
from qgtflow.study import load_study
args = json.loads(sys.argv[1])
reduce_stage.run(load_study(args["warm"]), args["geometry"], None, n_workers=0)  # load the numba caches
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
study = load_study(args["config"])
best = []
for _ in range(args["reps"]):
    t0 = time.process_time()
    reduce_stage.run(study, args["geometry"], None, n_workers=0)
    best.append(time.process_time() - t0)
print(json.dumps({"cpu": min(best), "peak_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base}))
"""


def run_reduce(config: dict, warm: dict, geometry: str, reps: int, src: str | None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    payload = json.dumps({"config": config, "warm": warm, "geometry": geometry, "reps": reps})
    res = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def build_geometry(config: dict, size: int, tmp: str) -> tuple[str, float]:
    """The study's kgrid and geometry stores; CPU time of the geometry stage (in process, one thread)."""
    from qgtflow.stages import geometry_stage, kgrid_stage
    from qgtflow.study import load_study

    study = load_study(config)
    tag = f"{config['model']['name']}_{config['name']}_{size}"
    kg, geo = os.path.join(tmp, tag + "_k.zarr"), os.path.join(tmp, tag + "_g.zarr")
    kgrid_stage.run(study, size, kg)
    t0 = time.process_time()
    geometry_stage.run(study, kg, geo, n_workers=0)
    return geo, time.process_time() - t0


def warm_up_geometry(tmp: str):
    """Load the geometry kernels' numba caches before timing (a 16² grid of every model)."""
    for model in MODELS:
        build_geometry(study_config(model, 16, "many", 1, 1), 16, os.path.join(tmp, "warm"))


def bench_pairs(models, sizes, kinds, pairs, reps: int, compare: str | None) -> list[dict]:
    rows = []
    versions = [("after", None)] + ([("before", compare)] if compare else [])
    print(f"{'model':<14}{'grid':>6}{'kind':>12}{'mu x T':>10}{'code':>8}{'reduce s':>10}{'/geometry':>11}"
          f"{'/smallest':>11}{'peak MiB':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        warm_up_geometry(tmp)
        for model in models:
            for size in sizes:
                for kind in kinds:
                    geo, t_geo = build_geometry(study_config(model, size, kind, 1, 1), size, tmp)
                    warm = study_config(model, size, kind, 1, 1)
                    first = {}
                    for n_mu, n_t in pairs:
                        cfg = study_config(model, size, kind, n_mu, n_t)
                        for label, src in versions:  # interleaved: before/after see the same machine load
                            r = run_reduce(cfg, warm, geo, reps, src)
                            first.setdefault(label, r["cpu"])
                            row = {"model": model, "grid": size, "kind": kind, "n_mu": n_mu, "n_T": n_t, "code": label,
                                   "reduce_cpu_s": r["cpu"], "geometry_cpu_s": t_geo,
                                   "reduce_over_geometry": r["cpu"] / t_geo,
                                   "over_smallest": r["cpu"] / first[label], "peak_MiB": r["peak_MiB"]}
                            rows.append(row)
                            print(f"{model:<14}{size:>6}{kind:>12}{f'{n_mu}x{n_t}':>10}{label:>8}{r['cpu']:10.2f}"
                                  f"{row['reduce_over_geometry']:11.3f}{row['over_smallest']:11.2f}"
                                  f"{r['peak_MiB']:10.0f}", flush=True)
                    print(f"{'':<14}{size:>6}{'geometry':>12}{'':>10}{'':>8}{t_geo:10.2f}")
    return rows


def bench_scaling(size: int, reps: int) -> dict:
    """Wall time of the reduce stage on 1 and 2 Dask workers (interleaved, best of ``reps``)."""
    from qgtflow.cluster import local_cluster
    from qgtflow.stages import reduce_stage
    from qgtflow.study import load_study

    cfg = study_config("haldane", size, "surface", 100, 5)
    study = load_study(cfg)
    best = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        geo, _ = build_geometry(cfg, size, tmp)
        with local_cluster(1) as one, local_cluster(2) as two:
            for client in (one, two):  # warm-up: workers load the kernels
                reduce_stage.run(study, geo, None, client=client)
            for _ in range(reps):
                for n, client in ((1, one), (2, two)):
                    t0 = time.perf_counter()
                    reduce_stage.run(study, geo, None, client=client)
                    best[n].append(time.perf_counter() - t0)
    t1, t2 = min(best[1]), min(best[2])
    print(f"\n== reduce on Dask workers, haldane {size}x{size}, surface kinds, 100 mu x 5 T (wall, best of {reps}) ==")
    print(f"1 worker {t1:.2f} s, 2 workers {t2:.2f} s: speed-up {t1 / t2:.2f}x (goal >= 1.8x; "
          f"{os.cpu_count()} cores on this machine)")
    return {"grid": size, "one_worker_s": t1, "two_workers_s": t2, "speedup": t1 / t2}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="haldane 128² only, sea and surface kinds")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--sizes", nargs="*", type=int, default=[128, 256])
    parser.add_argument("--kinds", nargs="*", default=list(KINDS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compare", help="another qgtflow src/ directory to time beside this one (before/after)")
    parser.add_argument("--scaling", action="store_true", help="also 2 Dask workers versus 1 on a 512² grid")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.models, args.sizes, args.kinds = ["haldane"], [128], ["sea", "surface"]
    result = {"pairs": bench_pairs(args.models, args.sizes, args.kinds, PAIRS, args.reps, args.compare)}
    if args.scaling:
        result["scaling"] = bench_scaling(512, args.reps)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
