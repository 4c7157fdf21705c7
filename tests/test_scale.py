"""Scaled-down version of benchmarks/bench_scale.py (10⁸ k-points): a large grid is cut into at most
``kgrid.max_chunks`` chunks (bounded zarr file count), gives the same responses as fine chunking, and the
memory the run adds stays below the estimate the workflow requests."""

from pathlib import Path

import numpy as np

from qgtflow.api import evaluate
from qgtflow.cluster import PeakMemory, estimate_memory_mb
from qgtflow.kgrid import effective_chunk_size
from qgtflow.study import load_study

STUDY = {"name": "scale", "units": "natural", "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
         "kgrid": {"sizes": [1200], "kmax": 1.0}, "mu": [-0.3, 0.0, 0.3], "temperature": [0.02], "tau": 10.0,
         "responses": ["sigma_ahe", "sigma_drude"], "store_fields": "required"}


def test_effective_chunk_size():
    assert effective_chunk_size(10**6, 65536) == 65536  # 16 chunks: unchanged
    big = effective_chunk_size(10**8, 65536)
    assert big % 4096 == 0 and -(-10**8 // big) <= 256 and big >= 10**8 / 256
    assert effective_chunk_size(10**8, 65536, None) == 65536


def files_per_variable(store: Path) -> dict:
    return {p.name: sum(1 for f in (p / "c").rglob("*") if f.is_file()) for p in store.iterdir()
            if p.is_dir() and (p / "c").exists()}


def test_large_grid_few_chunks_same_result_bounded_memory(tmp_path):
    coarse = {**STUDY, "kgrid": {**STUDY["kgrid"], "max_chunks": 6}}
    study = load_study(coarse)
    grid = study.make_grid(1200)
    assert grid.n_chunks == 6 and grid.chunk_size > 65536
    with PeakMemory(interval=0.05) as mem:
        few = evaluate(coarse, n_workers=2, workdir=tmp_path / "few")
    files = files_per_variable(tmp_path / "few" / "scale_n1200_geometry.zarr")
    assert files and max(files.values()) <= 6, files
    estimate = estimate_memory_mb(2, 2, grid.chunk_size, 2)
    added = mem.peak_mb - mem.baseline_mb
    print(f"{grid.n_points} k-points in {grid.n_chunks} chunks: run added {added:.0f} MB (estimate {estimate} MB)")
    assert 0 < added < estimate
    many = evaluate(STUDY, n_workers=2, workdir=tmp_path / "many")
    assert max(files_per_variable(tmp_path / "many" / "scale_n1200_geometry.zarr").values()) == 22
    for name in STUDY["responses"]:
        scale = np.abs(many[name].values).max()
        assert scale > 0
        np.testing.assert_allclose(few[name].values, many[name].values, rtol=1e-12, atol=1e-14 * scale)
