"""Eigendecomposition of one small Hermitian matrix inside compiled kernels.

``eigh_small(H, E, U)`` writes ascending eigenvalues into E and orthonormal eigenvectors as the
columns of U (``U[:, i]`` belongs to ``E[i]``). It is meant to be called once per k-point from
other numba code, so it avoids LAPACK's per-call overhead for tiny matrices:

* n == 1: trivial.
* n == 2: closed form (stable eigenvector construction chosen by the sign of the diagonal
  splitting; exactly diagonal input, including multiples of the identity, gives exact
  permutation/identity eigenvectors).
* 3 <= n <= ``JACOBI_MAX_N``: cyclic complex Jacobi, run to (past) machine precision, then an
  insertion sort of the eigenpairs. Eigenvectors are a product of plane rotations, so they stay
  orthonormal to rounding even for exactly degenerate spectra.
* larger n: LAPACK through numba's ``np.linalg.eigh``.

Only the Hermitian part of H is used: the off-diagonal entries are taken as
``(H[i, j] + conj(H[j, i])) / 2`` and the imaginary part of the diagonal is ignored (the LAPACK
fallback reads the lower triangle). The small paths scale the matrix by an exact power of two so
that the whole double-precision range is handled without overflow/underflow.
The Jacobi path allocates one n×n complex work array per call; ``eigh_small_ws`` takes it from
the caller instead.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Largest n handled by the Jacobi path (measured crossover vs per-matrix LAPACK, see
# benchmarks/bench_eigh.py).
JACOBI_MAX_N = 8

_EPS = 2.220446049250313e-16
# skip a rotation when |a_pq|^2 <= _TOL2 * |a_pp a_qq| (relative) or <= _FLOOR2 (absolute, the
# matrix being scaled to max |entry| in [0.5, 1))
_TOL2 = _EPS * _EPS
_FLOOR2 = (1e-3 * _EPS) ** 2
_MAX_SWEEPS = 60
# FMA contraction only (no reassociation / finite-math assumptions)
_FM = {"contract"}


@njit(cache=True)
def _pow2_scale(s):
    """Power of two p with s * p in [0.5, 1) for s > 0, clamped to 2**±1020 so that p and 1/p
    are both finite normal numbers (then s * p < 16 near overflow, and s * p >= 2**-54 for
    subnormal s, which only makes the absolute rotation floor relatively looser)."""
    _m, e = math.frexp(s)
    return math.ldexp(1.0, min(max(-e, -1020), 1020))


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _eigh2(H, E, U):
    a = H[0, 0].real
    d = H[1, 1].real
    br = 0.5 * H[0, 1].real + 0.5 * H[1, 0].real
    bi = 0.5 * H[0, 1].imag - 0.5 * H[1, 0].imag
    if br == 0.0 and bi == 0.0:
        # exactly diagonal (includes degenerate / identity): exact eigenvectors
        if a <= d:
            E[0] = a
            E[1] = d
            U[0, 0] = 1.0
            U[0, 1] = 0.0
            U[1, 0] = 0.0
            U[1, 1] = 1.0
        else:
            E[0] = d
            E[1] = a
            U[0, 0] = 0.0
            U[0, 1] = 1.0
            U[1, 0] = 1.0
            U[1, 1] = 0.0
        return
    # eigenvectors depend only on (h, b) = ((a - d)/2, H01): scale those by an exact power of
    # two so that neither the squares below nor the eigenvalue splitting under/overflow
    m = 0.5 * a + 0.5 * d
    h = 0.5 * a - 0.5 * d
    sc = _pow2_scale(max(abs(h), abs(br), abs(bi)))
    h *= sc
    br *= sc
    bi *= sc
    bb = br * br + bi * bi
    r = math.sqrt(h * h + bb)
    rr = r / sc
    E[0] = m - rr
    E[1] = m + rr
    if h >= 0.0:
        # upper eigenvector (h + r, conj b), h + r >= r > 0
        x = h + r
        inv = 1.0 / math.sqrt(x * x + bb)
        x *= inv
        br *= inv
        bi *= inv
        U[0, 1] = x
        U[1, 1] = complex(br, -bi)
        U[0, 0] = complex(-br, -bi)
        U[1, 0] = x
    else:
        # lower eigenvector (r - h, -conj b), r - h >= r > 0
        x = r - h
        inv = 1.0 / math.sqrt(x * x + bb)
        x *= inv
        br *= inv
        bi *= inv
        U[0, 0] = x
        U[1, 0] = complex(-br, bi)
        U[0, 1] = complex(br, bi)
        U[1, 1] = x


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _eigh_jacobi(H, E, U, A):
    """Cyclic complex Jacobi; A is an (n, n) complex work array (only its upper triangle is used)."""
    n = H.shape[0]
    # scale (exact power of two) so that max |Re|,|Im| of the entries lies in [0.5, 1)
    s = 0.0
    for i in range(n):
        s = max(s, abs(H[i, i].real))
        for j in range(i + 1, n):
            s = max(s, abs(H[i, j].real), abs(H[i, j].imag),
                    abs(H[j, i].real), abs(H[j, i].imag))
    for i in range(n):
        for j in range(n):
            U[i, j] = 0.0
        U[i, i] = 1.0
    if s == 0.0:
        for i in range(n):
            E[i] = 0.0
        return
    sc = _pow2_scale(s)
    hs = 0.5 * sc
    # strictly upper triangle of A holds the off-diagonal part; the diagonal lives in E
    for i in range(n):
        E[i] = H[i, i].real * sc
        for j in range(i + 1, n):
            A[i, j] = complex(hs * H[i, j].real + hs * H[j, i].real,
                              hs * H[i, j].imag - hs * H[j, i].imag)
    # round-robin ("tournament") pair ordering: consecutive rotations act on disjoint index
    # pairs, so their dependency chains overlap in the CPU (measurably faster than row order)
    m = n + (n & 1)
    m1 = m - 1
    for _sweep in range(_MAX_SWEEPS):
        rotated = False
        for rnd in range(m1):
            for i in range(m // 2):
                if i == 0:
                    if m1 >= n:  # odd n: this player sits out the round
                        continue
                    p = rnd
                    q = m1
                else:
                    a = rnd + i
                    if a >= m1:
                        a -= m1
                    b = rnd - i
                    if b < 0:
                        b += m1
                    p = min(a, b)
                    q = max(a, b)
                apq = A[p, q]
                xr = apq.real
                xi = apq.imag
                r2 = xr * xr + xi * xi
                app = E[p]
                aqq = E[q]
                if r2 <= _FLOOR2 or r2 <= _TOL2 * abs(app * aqq):
                    continue
                rotated = True
                # rotation G = [[c, se], [-conj(se), c]] on columns (p, q) that annihilates a_pq:
                # t = tan(phi) = sign(d) 2r / (|d| + D), D = sqrt(d^2 + 4r^2), d = a_qq - a_pp,
                # c = cos(phi), se = sin(phi) a_pq / r, and a_pp -= t r, a_qq += t r.
                d = aqq - app
                d2 = d * d
                if r2 < 1e-6 * d2:
                    # small rotation: series in y = r^2/d^2 (truncation < 1e-18), one division
                    inv_d = 1.0 / d
                    y = r2 * (inv_d * inv_d)
                    tor = inv_d * (1.0 - y + 2.0 * y * y)  # t / r
                    tt = y * (1.0 - y) * (1.0 - y)  # t^2 to O(y^3)
                    c = 1.0 - 0.5 * tt + 0.375 * tt * tt
                    f = c * tor
                    tr = r2 * tor
                else:
                    D = math.sqrt(d2 + 4.0 * r2)
                    w = abs(d) + D
                    g = 1.0 / math.sqrt(2.0 * D * w)  # 2 D w = w^2 + 4 r^2
                    c = w * g
                    f = 2.0 * g
                    tr = 2.0 * r2 / w
                    if d < 0.0:
                        f = -f
                        tr = -tr
                E[p] = app - tr
                E[q] = aqq + tr
                A[p, q] = 0.0
                se = complex(f * xr, f * xi)
                sec = se.conjugate()
                for k in range(p):
                    x = A[k, p]
                    y_ = A[k, q]
                    A[k, p] = c * x - sec * y_
                    A[k, q] = se * x + c * y_
                for k in range(p + 1, q):
                    x = A[p, k]
                    y_ = A[k, q]
                    A[p, k] = c * x - se * y_.conjugate()
                    A[k, q] = se * x.conjugate() + c * y_
                for k in range(q + 1, n):
                    x = A[p, k]
                    y_ = A[q, k]
                    A[p, k] = c * x - se * y_
                    A[q, k] = sec * x + c * y_
                for k in range(n):
                    x = U[k, p]
                    y_ = U[k, q]
                    U[k, p] = c * x - sec * y_
                    U[k, q] = se * x + c * y_
        if not rotated:
            break
    inv_sc = 1.0 / sc
    for i in range(n):
        E[i] *= inv_sc
    # insertion sort of the eigenpairs (ascending)
    for i in range(1, n):
        j = i
        while j > 0 and E[j - 1] > E[j]:
            tmp = E[j]
            E[j] = E[j - 1]
            E[j - 1] = tmp
            for k in range(n):
                z = U[k, j]
                U[k, j] = U[k, j - 1]
                U[k, j - 1] = z
            j -= 1


@njit(cache=True)
def eigh_small_ws(H, E, U, work):
    """``eigh_small`` with a caller-provided complex128 work array of shape >= (n, n).

    Saves the per-call allocation (~10 % for n = 3, 4) when called in a loop: allocate ``work``
    once per thread/block and reuse it. Paths other than Jacobi ignore it.
    """
    n = H.shape[0]
    if n == 1:
        E[0] = H[0, 0].real
        U[0, 0] = 1.0
    elif n == 2:
        _eigh2(H, E, U)
    elif n <= JACOBI_MAX_N:
        _eigh_jacobi(H, E, U, work)
    else:
        w, v = np.linalg.eigh(H)
        # element loops, not E[:] = w: numba compiles a slice assignment of arrays with a formatted shape-mismatch
        # error (unicode formatting, ~3-5 s of every cold generic kernel's compile)
        for i in range(n):
            E[i] = w[i]
            for j in range(n):
                U[i, j] = v[i, j]


@njit(cache=True)
def eigh_small(H, E, U):
    """Eigen-decompose one Hermitian (n, n) complex128 matrix into preallocated E (n,), U (n, n).

    E receives ascending eigenvalues; the columns of U are the orthonormal eigenvectors.
    """
    n = H.shape[0]
    eigh_small_ws(H, E, U, np.empty((n, n), np.complex128))
