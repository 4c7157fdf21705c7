"""Cost of evaluating H(k) and its distinct derivatives up to third order vs diagonalising H(k).

For every model a chunk of k-points is evaluated with ``model.unique_derivatives`` (H, ∂H, ∂²H,
∂³H: 10 matrices per k in 2D, 20 in 3D) and diagonalised with batched ``numpy.linalg.eigh`` on
the same chunk (eigenvalues and eigenvectors). Ratio = eval / eigh (< 1: evaluating the model
with all its derivatives is cheaper than one diagonalisation). Process CPU time, best of
``repeats`` interleaved runs, one numba/BLAS thread (per-core figures).

Models: 2-band k·p (hand-coded polynomial and the same model written symbolically), the 4-band
PT toy (001 Eq. 20), and random tight-binding models with 16 and 64 orbitals (3D, all hoppings to
the 26 neighbouring cells + on-site: 27 R vectors, dense n×n blocks).

Usage: python benchmarks/bench_models.py [n_k]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import set_num_threads  # noqa: E402

from qgtflow.models import build_model  # noqa: E402
from qgtflow.models.config import model_from_config  # noqa: E402
from qgtflow.models.presets import symbolic_preset  # noqa: E402
from qgtflow.models.tight_binding import TightBindingModel  # noqa: E402


def random_tight_binding(n: int, seed: int = 0) -> TightBindingModel:
    rng = np.random.default_rng(seed)
    hops = []
    cells = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    for R in cells:
        if R < (0, 0, 0):
            continue
        block = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * 0.1
        if R == (0, 0, 0):
            block = block + block.conj().T
        for i in range(n):
            for j in range(n):
                hops.append((R, i, j, block[i, j]))
                if R != (0, 0, 0):
                    hops.append((tuple(-r for r in R), j, i, np.conj(block[i, j])))
    return TightBindingModel(f"random_tb_{n}", np.eye(3), rng.uniform(0, 1, (n, 3)), hops)


def cpu_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(n_k: int = 16384, repeats: int = 3) -> None:
    set_num_threads(1)
    rng = np.random.default_rng(1)
    models = [
        ("massive_dirac (2, poly)", build_model("massive_dirac"), n_k),
        ("massive_dirac (2, symbolic)", model_from_config(symbolic_preset("massive_dirac")), n_k),
        ("pt_toy_4band (4, poly)", build_model("pt_toy_4band"), n_k),
        ("pt_toy_4band (4, symbolic)", model_from_config(symbolic_preset("pt_toy_4band")), n_k),
        ("haldane (2, TB)", build_model("haldane"), n_k),
        ("random TB 3D (16)", random_tight_binding(16), max(256, n_k // 8)),
        ("random TB 3D (64)", random_tight_binding(64), max(64, n_k // 64)),
    ]
    print(f"{'model (bands, kind)':30s} {'k-points':>9s} {'U':>3s} {'eval/eigh':>10s} {'eval k/s':>10s} "
          f"{'eigh k/s':>10s}")
    for label, model, n in models:
        k = rng.uniform(-1, 1, (n, model.dim)) * (model.kmax or 1.0)
        if model.periodic:
            k = rng.uniform(-0.5, 0.5, (n, model.dim)) @ model.reciprocal_vectors
        out = model.unique_derivatives(k)  # compile / warm up
        H = np.ascontiguousarray(out[:, 0])
        np.linalg.eigh(H[:4])
        t_eval = cpu_time(lambda: model.unique_derivatives(k, out=out), repeats)
        t_eigh = cpu_time(lambda: np.linalg.eigh(H), repeats)
        print(f"{label:30s} {n:9d} {out.shape[1]:3d} {t_eval / t_eigh:10.3f} {n / t_eval:10.3g} {n / t_eigh:10.3g}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
