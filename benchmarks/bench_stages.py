"""Throughput of the geometry and reduce stages, beside bare batched numpy.linalg.eigh.

Prints k-points per second per core and *ratios measured in the same run* (absolute times on
shared machines are noise); then peak memory of the geometry stage versus grid size, each grid
in a fresh process; then the geometry stage of a Fermi-surface request with and without the Fermi window
(``--fermi-window``: only that); then the geometry stage of an AHC-only study with ``store_fields: all`` vs
``required`` (the default), CPU time and store size on disk (``--store-fields``: only that). Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_stages.py``.
Options: ``--points N`` (k-points per timing, default 2**17), ``--quick``.
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

import numpy as np  # noqa: E402

MODELS = [("massive_dirac", {}, "2-band k·p"), ("haldane", {"mass": 0.2}, "2-band tight-binding"),
          ("pt_toy_4band", {"t": 0.5}, "4-band k·p (degenerate)")]


def best_of(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_kernels(n_points: int, reps: int):
    from qgtflow.geometry.fields import fields_from_unique
    from qgtflow.models import build_model

    print(f"\n== geometry kernels, one thread, {n_points} k-points (best of {reps}) ==")
    print(f"{'model':<32}{'eigh k/s':>12}{'H+dH k/s':>12}{'fields k/s':>12}{'geometry k/s':>14}{'geometry/eigh':>15}"
          f"{'generic/eigh':>16}")
    rows = []
    for name, params, label in MODELS:
        model = build_model(name, params)
        lo, hi = (-0.5, 0.5) if model.periodic else (-1.0, 1.0)
        frac = np.random.default_rng(0).uniform(lo, hi, (n_points, model.dim))
        k = frac @ model.reciprocal_vectors if model.periodic else frac
        gammas = model.clifford_gammas  # closed form where the model allows it, as in the geometry stage
        fields_from_unique(model.unique_derivatives(k[:8]), model.dim, n_threads=1, gammas=gammas)  # compile
        Hu = model.unique_derivatives(k)
        H = np.ascontiguousarray(Hu[:, 0])
        t_eigh = best_of(lambda: np.linalg.eigh(H), reps)
        t_ham = best_of(lambda: model.unique_derivatives(k), reps)
        t_fields = best_of(lambda: fields_from_unique(Hu, model.dim, n_threads=1, gammas=gammas), reps)
        t_generic = best_of(lambda: fields_from_unique(Hu, model.dim, n_threads=1), reps)
        t_geo = t_ham + t_fields
        rows.append({"model": name, "eigh_kps": n_points / t_eigh, "geometry_kps": n_points / t_geo,
                     "time_ratio_geometry_over_eigh": t_geo / t_eigh,
                     "generic_time_ratio_over_eigh": (t_ham + t_generic) / t_eigh})
        print(f"{name + ' (' + label + ')':<32}{n_points / t_eigh:12.3g}{n_points / t_ham:12.3g}"
              f"{n_points / t_fields:12.3g}{n_points / t_geo:14.3g}{t_geo / t_eigh:15.2f}"
              f"{(t_ham + t_generic) / t_eigh:16.2f}")
    print("(geometry = all ten fields incl. exact ∂Ω, ∂g, ∂𝒢 and ∂³ε, closed form where the model is a Clifford")
    print(" model; 'generic' = the sum-over-states path on the same points; eigh = eigenvalues+vectors only)")
    print("reference: WannierBerri loops over k in Python, a few 10³ k/s per core on 2-band models")
    return rows


def bench_stages(size: int, workers: int):
    import qgtflow  # noqa: F401
    from qgtflow.cluster import local_cluster
    from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
    from qgtflow.study import load_study

    print(f"\n== stages through zarr on a Dask LocalCluster ({workers} workers), {size}x{size} grid ==")
    study = load_study({"name": "bench", "model": {"name": "pt_toy_4band", "params": {"t": 0.5}},
                        "kgrid": {"sizes": [size], "kmax": 1.2},
                        "mu": {"start": 0.0, "stop": 0.5, "num": 100}, "temperature": [5.0, 10.0, 30.0, 100.0, 300.0],
                        "responses": ["sigma_qm", "sigma_qm_variant", "sigma_bcd", "sigma_nonlinear_drude",
                                      "sigma_drude", "berry_curvature_dipole"]})
    with tempfile.TemporaryDirectory() as tmp, local_cluster(workers) as client:
        kg = os.path.join(tmp, "kgrid.zarr")
        kgrid_stage.run(study, size, kg)
        timings = []
        for attempt in range(2):  # first pass: workers load the compiled kernels; second: warm
            geo = os.path.join(tmp, f"geometry{attempt}.zarr")
            t0 = time.perf_counter()
            geometry_stage.run(study, kg, geo, client=client)
            t_geo = time.perf_counter() - t0
            t0 = time.perf_counter()
            reduce_stage.run(study, geo, os.path.join(tmp, f"responses{attempt}.zarr"), client=client)
            timings.append((t_geo, time.perf_counter() - t0))
    n = size * size
    (cold_geo, cold_red), (t_geo, t_red) = timings
    print(f"geometry stage (warm workers): {n / t_geo:.3g} k/s total ({n / t_geo / workers:.3g} per worker), "
          f"incl. zarr writes; first pass {cold_geo - t_geo:+.1f} s for loading kernels in the workers")
    print(f"reduce stage (100 mu x 5 T, 6 responses, 54 components): {n / t_red:.3g} k/s; "
          f"reduce/geometry time = {t_red / t_geo:.2f}")
    return {"geometry_kps": n / t_geo, "reduce_kps": n / t_red, "reduce_over_geometry": t_red / t_geo,
            "worker_warmup_s": cold_geo - t_geo}


FERMI_SURFACE = ["sigma_drude", "sigma_bcd", "sigma_nonlinear_drude"]


def fermi_window_studies(tmp: str, quick: bool):
    """(label, study config, grid size) of the Fermi-window benchmark: the tilted-Dirac square-lattice model of
    bench_peer (a _tb.dat) on 400², the bcc-Fe-like Wannier90 model on 16³, each at room and at low T."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_peer import tilted_dirac_blocks, write_2d_tb
    from pathlib import Path

    tb = write_2d_tb(Path(tmp) / "tilted_tb.dat", tilted_dirac_blocks()[1], tilted_dirac_blocks()[0])
    tilted = {"name": "tilted_tb", "wannier90": {"tb": str(tb), "dim": 2}}
    fe = {"name": "fe_like", "wannier90": {"tb": "qgtflow:fe_like_tb.dat"}}
    out = []
    for label, model, size, mu in [("tilted Dirac lattice", tilted, 100 if quick else 400, [0.2, 0.3]),
                                   ("Fe-like (6 bands, 3D)", fe, 8 if quick else 16, [0.0])]:
        for T in (300.0, 30.0):
            out.append((f"{label}, T = {T:g} K", {"name": "fw", "model": model, "units": {"length": "angstrom"},
                                                    "mu": mu, "temperature": [T], "responses": FERMI_SURFACE,
                                                    "fermi_form": "surface"}, size))
    return out


def bench_fermi_window(reps: int, quick: bool):
    """Geometry stage (in process, one thread, zarr writes included) of a Fermi-surface request with and without
    the Fermi window (qgtflow.geometry.fermi_window): k-points per CPU second, interleaved runs, best of ``reps``."""
    import copy

    from qgtflow import io
    from qgtflow.geometry.fermi_window import FLAG
    from qgtflow.plan import grid_chain
    from qgtflow.stages import geometry_stage, kgrid_stage
    from qgtflow.study import load_study

    print(f"\n== geometry stage, Fermi-surface request {FERMI_SURFACE}: all k-points vs the Fermi window "
          f"(CPU time, one thread, interleaved, best of {reps}) ==")
    print(f"{'':<32}{'':>9}{'':>18}{'':>8}{'-- stage k/s (CPU) --':>26}{'-- compute k/s (CPU) --':>26}")
    print(f"{'case':<32}{'grid':>9}{'window (eV)':>18}{'skipped':>8}{'all':>10}{'window':>10}{'ratio':>6}"
          f"{'all':>10}{'window':>10}{'ratio':>6}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, cfg, size in fermi_window_studies(tmp, quick):
            study = load_study(cfg)
            chain = grid_chain(study, size)
            kg = os.path.join(tmp, f"kgrid_{study.model.name}_{size}.zarr")
            if not os.path.exists(kg):
                kgrid_stage.run(study, size, kg, job=chain["kgrid"])
            jobs = {"all": copy.deepcopy(chain["geometry"]), "window": chain["geometry"]}
            jobs["all"]["fermi_window"] = None
            times = {name: [] for name in jobs}
            skipped = None
            for attempt in range(reps + 1):  # the first round warms the kernels' cache; not timed
                for name, job in jobs.items():
                    geo = os.path.join(tmp, f"geometry_{name}_{attempt}.zarr")
                    t0 = time.process_time()
                    geometry_stage.run(study, kg, geo, n_workers=0, job=job)
                    if attempt:
                        times[name].append(time.process_time() - t0)
                    if name == "window" and skipped is None:
                        skipped = 1.0 - float(io.open_store(geo)[FLAG].values.mean())
            n = int(np.prod(io.store_attrs(kg)["grid_sizes"]))
            best = {name: min(t) for name, t in times.items()}
            kernel = chunk_compute_times(study, chain["geometry"], reps)
            lo, hi = chain["geometry"]["fermi_window"]["energy"]
            row = {"case": label, "k_points": n, "window_eV": [lo, hi], "skipped_fraction": skipped,
                   "stage_all_kps": n / best["all"], "stage_window_kps": n / best["window"],
                   "stage_speedup": best["all"] / best["window"], "compute_all_kps": n / kernel["all"],
                   "compute_window_kps": n / kernel["window"], "compute_speedup": kernel["all"] / kernel["window"]}
            rows.append(row)
            grid = "x".join(str(s) for s in io.store_attrs(kg)["grid_sizes"])
            print(f"{label:<32}{grid:>9}{f'[{lo:.3f}, {hi:.3f}]':>18}{skipped:8.1%}{row['stage_all_kps']:10.3g}"
                  f"{row['stage_window_kps']:10.3g}{row['stage_speedup']:6.2f}{row['compute_all_kps']:10.3g}"
                  f"{row['compute_window_kps']:10.3g}{row['compute_speedup']:6.2f}", flush=True)
    print("(stage: geometry_stage.run in process incl. the zarr template and writes; compute: the chunk work alone, "
          "H(k) and derivatives, eigenbasis, fields — the window adds the band energies everywhere; window = the "
          "reduce stage's energy histogram, μ ± 40 k_BT)")
    return rows


def chunk_compute_times(study, job: dict, reps: int) -> dict:
    """Best CPU seconds of the geometry chunks' compute over the whole grid, all k-points vs the Fermi window
    (interleaved), as geometry_stage._geometry_chunk runs it."""
    from qgtflow.geometry.fermi_window import fields_in_window
    from qgtflow.geometry.fields import CORE_FIELDS, compute_fields

    grid = study.make_grid(job["size"])
    names = list(job["fields"])
    core = tuple(name for name in names if name in CORE_FIELDS)

    def compute(points):
        return compute_fields(study.model, points, study.degeneracy_threshold, reuse_buffers=True, core=core)

    def whole(window):
        for i in range(grid.n_chunks):
            start, stop = grid.chunk_bounds(i)
            k = grid.points(start, stop)
            if window is None:
                compute(k)
            else:
                fields_in_window(study.model, k, window, compute, names, study.degeneracy_threshold, grid, start)

    times = {"all": [], "window": []}
    for _ in range(reps):
        for name, window in (("all", None), ("window", job["fermi_window"])):
            t0 = time.process_time()
            whole(window)
            times[name].append(time.process_time() - t0)
    return {name: min(t) for name, t in times.items()}


AHC_STORE_FIELDS = ["sigma_ahe"]


def store_fields_studies(quick: bool):
    """(label, study config, grid size) of the store_fields benchmark: Haldane on 400² and the shipped bcc-Fe-like
    Wannier90 model on 16³ with and without the position operator, σ_AHE only."""
    fe = {"tb": "qgtflow:fe_like_tb.dat"}
    haldane = {"name": "haldane", "params": {"mass": 0.2}}
    cases = [("Haldane", haldane, 100 if quick else 400),
             ("Fe-like, position operator", {"name": "fe_like", "wannier90": fe}, 8 if quick else 16),
             ("Fe-like, tight-binding", {"name": "fe_like", "wannier90": {**fe, "position_operator": False}},
              8 if quick else 16)]
    return [(label, {"name": "sf", "model": model, "units": {"length": "angstrom"}, "mu": [0.0],
                     "temperature": [300.0], "responses": AHC_STORE_FIELDS}, size) for label, model, size in cases]


def store_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def bench_store_fields(reps: int, quick: bool):
    """Geometry stage (in process, one thread, zarr writes included) of a σ_AHE-only study, ``store_fields: all``
    vs ``required``: CPU seconds (interleaved, best of ``reps``), fields stored and bytes on disk."""
    from qgtflow import io
    from qgtflow.plan import grid_chain
    from qgtflow.stages import geometry_stage, kgrid_stage
    from qgtflow.study import load_study

    print(f"\n== geometry stage, {AHC_STORE_FIELDS} only: store_fields all vs required "
          f"(CPU time, one thread, interleaved, best of {reps}) ==")
    print(f"{'case':<30}{'grid':>9}{'fields all/req':>16}{'CPU s all':>11}{'CPU s req':>11}{'ratio':>7}"
          f"{'MB all':>9}{'MB req':>9}{'ratio':>7}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, cfg, size in store_fields_studies(quick):
            studies = {mode: load_study({**cfg, "store_fields": mode}) for mode in ("all", "required")}
            chains = {mode: grid_chain(st, size) for mode, st in studies.items()}
            kg = os.path.join(tmp, f"kgrid_{label.replace(' ', '_')}.zarr")
            kgrid_stage.run(studies["all"], size, kg, job=chains["all"]["kgrid"])
            times = {mode: [] for mode in studies}
            sizes = {}
            for attempt in range(reps + 1):  # the first round warms the kernels' cache; not timed
                for mode, st in studies.items():
                    geo = os.path.join(tmp, f"geometry_{mode}_{attempt}.zarr")
                    t0 = time.process_time()
                    geometry_stage.run(st, kg, geo, n_workers=0, job=chains[mode]["geometry"])
                    if attempt:
                        times[mode].append(time.process_time() - t0)
                    sizes[mode] = store_bytes(geo)
            best = {mode: min(t) for mode, t in times.items()}
            n_fields = {mode: len(chains[mode]["geometry"]["fields"]) for mode in studies}
            grid = "x".join(str(s) for s in io.store_attrs(kg)["grid_sizes"])
            row = {"case": label, "grid": grid, "fields_all": chains["all"]["geometry"]["fields"],
                   "fields_required": chains["required"]["geometry"]["fields"], "cpu_s_all": best["all"],
                   "cpu_s_required": best["required"], "cpu_ratio": best["all"] / best["required"],
                   "bytes_all": sizes["all"], "bytes_required": sizes["required"],
                   "bytes_ratio": sizes["all"] / sizes["required"]}
            rows.append(row)
            counts = f"{n_fields['all']}/{n_fields['required']}"
            print(f"{label:<30}{grid:>9}{counts:>16}{best['all']:11.2f}"
                  f"{best['required']:11.2f}{row['cpu_ratio']:7.1f}{sizes['all'] / 1e6:9.1f}"
                  f"{sizes['required'] / 1e6:9.1f}{row['bytes_ratio']:7.1f}", flush=True)
    print("(in-process geometry_stage.run incl. the zarr template and writes; required = what σ_AHE reads, plus energy "
          "and velocity)")
    return rows


PEAK_SCRIPT = """
import os, resource, sys, tempfile
from qgtflow.study import load_study
from qgtflow.stages import geometry_stage, kgrid_stage
size = int(sys.argv[1])
study = load_study({"name": "mem", "model": {"name": "pt_toy_4band"}, "kgrid": {"sizes": [size], "kmax": 1.2},
                    "mu": [0.2], "temperature": [10.0], "responses": ["sigma_qm"]})
with tempfile.TemporaryDirectory() as tmp:
    kgrid_stage.run(study, size, tmp + "/k.zarr")
    geometry_stage.run(study, tmp + "/k.zarr", tmp + "/g.zarr", n_workers=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bench_memory(sizes):
    print("\n== peak memory of the geometry stage vs grid size (fresh process each, 4-band model) ==")
    out = []
    for size in sizes:
        res = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(size)], capture_output=True, text=True, check=True)
        peak = float(res.stdout.strip().splitlines()[-1])
        out.append({"grid": f"{size}x{size}", "k_points": size * size, "peak_MiB": peak})
        print(f"{size:>5}x{size:<5} {size * size:>10} k-points   peak RSS {peak:8.0f} MiB")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1 << 17)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--fermi-window", action="store_true", help="only the Fermi-window before/after")
    parser.add_argument("--store-fields", action="store_true",
                        help="only the σ_AHE geometry stage, store_fields all vs required")
    args = parser.parse_args()
    reps = 2 if args.quick else 3
    if args.fermi_window or args.store_fields:
        result = {"fermi_window": bench_fermi_window(reps, args.quick)} if args.fermi_window else {}
        if args.store_fields:
            result["store_fields"] = bench_store_fields(reps, args.quick)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=2)
        return
    result = {"kernels": bench_kernels(args.points if not args.quick else 1 << 14, reps)}
    result["stages"] = bench_stages(128 if args.quick else 768, 2)
    result["memory"] = bench_memory([64, 128] if args.quick else [128, 256, 512, 1024])
    result["fermi_window"] = bench_fermi_window(reps, args.quick)
    result["store_fields"] = bench_store_fields(reps, args.quick)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
