"""Eigenbasis of a chunk by batched LAPACK/BLAS-3 calls, for models with many bands.

The per-k kernel (``kernels.geometry_chunk``) diagonalises and rotates each H(k) inside numba; from
:data:`BATCHED_MIN_BANDS` bands on it is cheaper to diagonalise a block of k-points with one batched
``numpy.linalg.eigh`` and to form the matrix elements U†∂H U as stacked matrix products (two BLAS gemm
per k-point for all slots at once). Eigenvalues and matrix elements then go to the same per-k field code
(``kernels.geometry_eigenbasis_chunk`` → ``_fields_one_k``): degenerate groups, exact derivatives and
every field are computed by one implementation for both paths.

Threads: blocks of k-points run on ``n_threads`` Python threads (LAPACK, BLAS and the numba field code
release the GIL); BLAS itself is not asked for threads: workflow jobs pin it to one (``runtime.setup_job``).
Memory: one block holds ≤ :data:`BLOCK_BYTES` of matrix elements per thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from qgtflow.geometry.kernels import geometry_eigenbasis_chunk

# Smallest band count for the batched path (benchmarks/bench_eigh.py --kernel 2000, 2026-12-06, one thread, loaded
# 2-core VM; kernel/eigh per-k → batched, all fields | AHC only): n = 8: 4.04 → 4.46 | 1.60 → 1.81; n = 16: 4.00 →
# 4.01 | 1.31 → 1.36 (a tie); n = 32: 10.4 → 8.3 | 2.69 → 1.86; n = 64: 14.6 → 8.7 | 3.22 → 1.48.
BATCHED_MIN_BANDS = 20
# With the Wannier position operator the external terms need the eigenbasis too: the batched path hands them its
# own (no second eigh and rotation of ∂H), which moves the break-even down (measured: see the commit adding it)
POSITION_BATCHED_MIN_BANDS = 1
BLOCK_BYTES = 16 * 2**20  # matrix elements of one block of k-points (per thread)
MAX_BLOCK_K = 512

OUTPUTS = ("energy", "velocity", "inverse_mass", "energy_third_derivative", "berry_curvature", "quantum_metric",
           "bcp", "berry_curvature_dipole_density", "quantum_metric_dipole_density", "bcp_dipole_density")


def use_batched(n_bands: int, gauge_seed: int, closed_form: bool, min_bands: int = BATCHED_MIN_BANDS) -> bool:
    """The automatic choice: batched from ``min_bands`` bands on (:data:`BATCHED_MIN_BANDS`;
    :data:`POSITION_BATCHED_MIN_BANDS` with the Wannier position operator), except for the Clifford closed
    form and the gauge test hook (both live in the per-k kernel)."""
    return n_bands >= min_bands and gauge_seed < 0 and not closed_form


def rotated_slots(active: np.ndarray, dim: int, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Slots taken to the eigenbasis: (full matrices: ∂H, and ∂²H from level 2; diagonals: ∂³H at level 3),
    active slots only."""
    first, full_end = 1 + dim, 1 + dim + dim * (dim + 1) // 2
    slots = np.flatnonzero(active)
    full = slots[(slots >= 1) & (slots < (first if level <= 1 else full_end))]
    diag = slots[slots >= full_end] if level >= 3 else slots[:0]
    return full, diag


def eigenbasis(H: np.ndarray, Hu: np.ndarray, full: np.ndarray, diag: np.ndarray,
               R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues E (B, n) and eigenvectors U (B, n, n) of the block H (B, n, n) (one batched eigh); writes
    U†(Hu[:, u])U into R[:, u] (full for ``full``, the diagonal for ``diag``; other entries untouched)."""
    E, U = np.linalg.eigh(H)
    B, n = E.shape
    if full.size:
        # (M U)_s stacked over the slots: one gemm per k-point; then U†M U = (M U)† U (M Hermitian)
        MU = np.matmul(Hu[:, full].reshape(B, full.size * n, n), U).reshape(B, full.size, n, n)
        MUh = np.ascontiguousarray(np.conj(MU.swapaxes(-1, -2))).reshape(B, full.size * n, n)
        R[:, full] = np.matmul(MUh, U).reshape(B, full.size, n, n)
    if diag.size:
        MU = np.matmul(Hu[:, diag].reshape(B, diag.size * n, n), U).reshape(B, diag.size, n, n)
        band = np.arange(n)
        R[:, diag[:, None], band, band] = np.einsum("bsli,bli->bsi", MU, np.conj(U))
    return E, U


def block_size(n_slots: int, n: int) -> int:
    """k-points per block: matrix elements of one block within :data:`BLOCK_BYTES`."""
    return int(max(1, min(MAX_BLOCK_K, BLOCK_BYTES // (16 * n_slots * n * n))))


def geometry_batched(Hu, i1, i2, i3, active, level, thresh, n_threads, out, extra=None) -> None:
    """Fill ``out`` (arrays of ``fields._allocate``) like ``kernels.geometry_chunk`` without closed form or
    gauge hook, the eigenbasis of each block of k-points from :func:`eigenbasis`. ``extra(lo, hi, E, U, R)``:
    called per block with its eigenbasis and rotated slots (before the field code; blocks may run on several
    threads, each with its own [lo, hi)) — the position operator's external terms use it instead of
    diagonalising again (``position.ExternalTerms``)."""
    N, n_slots, n = Hu.shape[0], Hu.shape[1], Hu.shape[2]
    full, diag = rotated_slots(active, i1.shape[0], level)
    step = block_size(n_slots, n)
    outputs = [out[name] for name in OUTPUTS]

    def run(lo: int) -> None:
        hi = min(N, lo + step)
        blk = Hu[lo:hi]
        R = np.zeros((hi - lo, n_slots, n, n), np.complex128)
        E, U = eigenbasis(blk[:, 0], blk, full, diag, R)
        if extra is not None:
            extra(lo, hi, E, U, R)
        geometry_eigenbasis_chunk(E, R, i1, i2, i3, level, thresh, *(o[lo:hi] for o in outputs))

    starts = range(0, N, step)
    if n_threads <= 1 or len(starts) == 1:
        for lo in starts:
            run(lo)
        return
    with ThreadPoolExecutor(min(n_threads, len(starts))) as pool:
        list(pool.map(run, starts))
