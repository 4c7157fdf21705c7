"""Throughput of eigh_small vs LAPACK for batches of small random Hermitian matrices.

Columns (matrices per second, single thread for the numba loops):
  numpy     numpy.linalg.eigh on the whole (N, n, n) batch
  lapack1   np.linalg.eigh called per matrix inside a numba loop (the previous eigh_small)
  small     eigh_small per matrix inside a numba loop
  jacobi    the Jacobi path forced with a reused work array (also beyond the cutoff; used to
            choose JACOBI_MAX_N)
Timings are process CPU time (robust on a shared machine), best of 3 interleaved repeats.
Ratios are small/numpy and small/lapack1 (> 1 means eigh_small is faster).

Row "4pt": 4x4 PT-symmetric matrices (all levels doubly degenerate).

Usage: NUMBA_CACHE_DIR=/tmp/numba-cache-eigh python benchmarks/bench_eigh.py [N] [n|4pt ...]

Kernel mode (band-count scaling of the whole geometry kernel, issue 17 item 4):

    python benchmarks/bench_eigh.py --kernel [points] [n ...]      (default 4000 points, n = 2 4 8 12 16 32 64)

prints, for random 2D Wannier models of n bands (bench_peer.py's ``random_blocks``), the geometry kernel's process
CPU time (H(k) and its derivatives included) / a bare batched numpy.linalg.eigh of the same H(k), with the
eigenbasis per k in numba ("per-k"), forced batched ("batched") and chosen by band count ("auto",
``geometry/batched.py``), all core fields and AHC's only; best of 3 interleaved repeats, one thread.
``BATCHED_MIN_BANDS`` is the smallest n at which batched/per-k < 1 in both columns.
Measured 2026-12-06 (2-core shared VM, one thread), kernel/eigh:
    see the table in geometry/batched.py's BATCHED_MIN_BANDS comment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread: the kernel and the bare eigh alike

import numpy as np
from numba import njit, set_num_threads

from qgtflow.geometry.eigh import JACOBI_MAX_N, _eigh_jacobi, eigh_small


@njit(cache=True)
def _loop_small(H, E, U):
    for k in range(H.shape[0]):
        eigh_small(H[k], E[k], U[k])


@njit(cache=True)
def _loop_jacobi(H, E, U):
    n = H.shape[1]
    A = np.empty((n, n), np.complex128)  # work array reused (no per-call allocation)
    for k in range(H.shape[0]):
        _eigh_jacobi(H[k], E[k], U[k], A)


@njit(cache=True)
def _loop_lapack(H, E, U):
    for k in range(H.shape[0]):
        w, v = np.linalg.eigh(H[k])
        E[k] = w
        U[k] = v


def _random_batch(N, n, rng):
    A = rng.standard_normal((N, n, n)) + 1j * rng.standard_normal((N, n, n))
    return np.ascontiguousarray(0.5 * (A + np.conj(np.swapaxes(A, 1, 2))))


def _pt_batch(N, rng):
    """4x4 PT-symmetric d0 + d.Gamma (five anticommuting Dirac matrices): every level doubly
    degenerate, as in the pt_toy_4band model."""
    s0 = np.eye(2)
    sx = np.array([[0, 1], [1, 0]], complex)
    sy = np.array([[0, -1j], [1j, 0]])
    sz = np.diag([1.0, -1.0]).astype(complex)
    gam = np.array([np.kron(sx, sx), np.kron(sx, sy), np.kron(sx, sz), np.kron(sy, s0),
                    np.kron(sz, s0), np.eye(4)])
    return np.ascontiguousarray(np.einsum("ki,iab->kab", rng.standard_normal((N, 6)), gam))


def _rates(fns, N, repeat):
    """Best-of-``repeat`` rates (matrices per CPU second), the methods interleaved per repeat."""
    best = {k: np.inf for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.process_time()
            fn()
            best[k] = min(best[k], time.process_time() - t0)
    return {k: N / t for k, t in best.items()}


def main(argv):
    N = int(argv[1]) if len(argv) > 1 else 200_000
    repeat = 3
    sizes = argv[2:] or ["2", "3", "4", "4pt", "6", "8"]
    set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"N = {N} matrices per size, JACOBI_MAX_N = {JACOBI_MAX_N}; rates in matrices/s")
    hdr = f"{'n':>3} {'numpy':>11} {'lapack1':>11} {'small':>11} {'jacobi':>11} {'small/numpy':>12} {'small/lapack1':>14}"
    print(hdr)
    print("-" * len(hdr))
    for label in sizes:
        if label == "4pt":
            n = 4
            H = _pt_batch(N, rng)
        else:
            n = int(label)
            H = _random_batch(N, n, rng)
        E = np.empty((N, n))
        U = np.empty((N, n, n), np.complex128)
        # warm-up / compile on a small slice
        _loop_small(H[:10], E[:10], U[:10])
        _loop_lapack(H[:10], E[:10], U[:10])
        _loop_jacobi(H[:10], E[:10], U[:10])
        fns = {"numpy": lambda: np.linalg.eigh(H), "lapack1": lambda: _loop_lapack(H, E, U)}
        if n >= 3:
            fns["jacobi"] = lambda: _loop_jacobi(H, E, U)
        fns["small"] = lambda: _loop_small(H, E, U)
        r = _rates(fns, N, repeat)
        r_np, r_lp, r_sm = r["numpy"], r["lapack1"], r["small"]
        r_jc = r.get("jacobi", float("nan"))
        # sanity: residual of the last run
        w = np.linalg.eigvalsh(H[:1000])
        err = np.abs(E[:1000] - w).max()
        print(f"{label:>3} {r_np:>11.3g} {r_lp:>11.3g} {r_sm:>11.3g} {r_jc:>11.3g} "
              f"{r_sm / r_np:>12.2f} {r_sm / r_lp:>14.2f}   (max |dE| {err:.1e})")


def kernel_scaling(argv):
    """Kernel mode (see the module docstring)."""
    import logging
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_peer import kernel_vs_eigh, random_blocks, write_2d_tb

    from qgtflow.geometry.batched import BATCHED_MIN_BANDS

    logging.getLogger("qgtflow").setLevel(logging.ERROR)
    points = int(argv[0]) if argv else 4000
    sizes = [int(a) for a in argv[1:]] or [2, 4, 8, 12, 16, 32, 64]
    work = Path(tempfile.mkdtemp(prefix="bench-eigh-"))
    print(f"kernel / batched eigh, {points} k-points, BATCHED_MIN_BANDS = {BATCHED_MIN_BANDS}, best of 3, one thread")
    cols = [f"{f}/{p}" for f in ("all", "ahc") for p in ("per-k", "batched", "auto")]
    print(f"{'n':>3} " + " ".join(f"{c:>13}" for c in cols) + f" {'eigh k/s':>10}")
    for n in sizes:
        blocks, lat = random_blocks(n)
        tb = write_2d_tb(work / f"w{n}_tb.dat", lat, blocks)
        t = kernel_vs_eigh(tb, points, 3, ("per-k", "batched", "auto"))
        print(f"{n:>3} " + " ".join(f"{t[c] / t['eigh']:>13.3g}" for c in cols) + f" {points / t['eigh']:>10.4g}",
              flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--kernel"]:
        kernel_scaling(sys.argv[2:])
    else:
        main(sys.argv)
