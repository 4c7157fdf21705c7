"""A 10⁸-k-point study end to end (kgrid → geometry → reduce) with bounded, reported peak memory.

Default: 2D massive Dirac on a 10⁴ × 10⁴ window grid, Berry curvature and Drude responses at 5 μ × 2 T,
``store_fields: required``, 2 Dask workers. Prints per stage: wall time, k-points per second per core,
peak resident memory of the whole process tree (main process + Dask workers, sampled every 0.2 s)
beside the memory estimate the workflow would request, chunk and file counts and store sizes; and the
geometry throughput as a ratio to batched ``numpy.linalg.eigh`` on the same model measured in this run.

Run: ``.venv/bin/python benchmarks/bench_scale.py`` (needs ~17 GB of free disk in --workdir; about ten
minutes on 2 cores). ``--size 2000`` for a quick look. The store is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def eigh_rate(model, n: int = 2**17) -> float:
    """k-points per second of batched numpy eigh on H(k) (one thread)."""
    k = np.random.default_rng(0).uniform(-1, 1, (n, model.dim))
    H = model.derivatives(k, order=0)[0]
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        np.linalg.eigh(H)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000, help="points per axis (default 10000: 10^8 k-points)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="where the stores go (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    from qgtflow.cluster import PeakMemory, estimate_memory_mb, histogram_mb, local_cluster, study_optional_fields
    from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
    from qgtflow.study import load_study

    study = load_study({
        "name": "scale", "units": "natural", "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
        "kgrid": {"sizes": [args.size], "kmax": 1.0}, "mu": [-0.3, 0.0, 0.15, 0.3, 0.5], "temperature": [0.01, 0.02],
        "tau": 10.0, "responses": ["sigma_ahe", "sigma_drude"], "store_fields": "required"})
    grid = study.make_grid(args.size)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="qgtflow-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    stores = {"kgrid": base / "kgrid.zarr", "geometry": base / "geometry.zarr", "reduce": base / "responses.zarr"}
    nb, dim = study.model.nbands, study.model.dim
    optional = study_optional_fields(study)
    print(f"{grid.n_points:.3g} k-points ({args.size}^2), {grid.n_chunks} chunks of {grid.chunk_size}, "
          f"{args.workers} workers; fields stored: {geometry_stage.study_fields(study)}")
    rows = []
    try:
        with local_cluster(args.workers) as client:
            for stage in ("kgrid", "geometry", "reduce"):
                with PeakMemory() as mem:
                    t0 = time.perf_counter()
                    if stage == "kgrid":
                        kgrid_stage.run(study, args.size, stores["kgrid"])
                    elif stage == "geometry":
                        geometry_stage.run(study, stores["kgrid"], stores["geometry"], client=client)
                    else:
                        ds = reduce_stage.run(study, stores["geometry"], stores["reduce"], client=client)
                    elapsed = time.perf_counter() - t0
                estimate = {"kgrid": None,
                            "geometry": estimate_memory_mb(nb, dim, grid.chunk_size, args.workers,
                                                           optional_fields=optional),
                            "reduce": estimate_memory_mb(nb, dim, grid.chunk_size, args.workers, stage="reduce",
                                                         histogram_mb=histogram_mb(study),
                                                         optional_fields=optional)}[stage]
                cores = 1 if stage == "kgrid" else args.workers
                files, size = tree_size(stores[stage])
                rows.append((stage, elapsed, grid.n_points / elapsed / cores, mem.peak_mb, estimate, files, size))
        rate_eigh = eigh_rate(study.model)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'stage':9s} {'wall s':>8s} {'k/s/core':>10s} {'peak MB':>8s} {'estimate':>9s} {'files':>6s} {'GB':>6s}")
    for stage, elapsed, rate, peak, est, files, size in rows:
        print(f"{stage:9s} {elapsed:8.1f} {rate:10.3g} {peak:8.0f} {str(est or '-'):>9s} {files:6d} {size / 1e9:6.2f}")
    geo_rate = rows[1][2]
    print(f"geometry stage / batched numpy eigh (same model, per core): {geo_rate / rate_eigh:.2f} "
          f"(eigh alone {rate_eigh:.3g} k/s)")
    print(f"total wall {sum(r[1] for r in rows):.0f} s, peak memory {max(r[3] for r in rows):.0f} MB "
          f"({max(r[3] for r in rows) / 1024:.1f} GiB)")
    ahe = ds["sigma_ahe"].sel(i="x", j="y").isel(T=0).values
    print("sigma_ahe xy at mu =", study.mu.tolist(), ":", np.array2string(ahe, precision=6))


if __name__ == "__main__":
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    main()
