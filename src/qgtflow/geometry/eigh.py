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
The Jacobi path allocates one n×n complex work array per call.
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


@njit(cache=True, inline="always")
def _pow2_scale(s):
    """Power of two p with s * p in [0.5, 1) (s > 0, finite)."""
    m, e = math.frexp(s)
    return math.ldexp(1.0, -e)


@njit(cache=True)
def _eigh2(H, E, U):
    a = H[0, 0].real
    d = H[1, 1].real
    br = 0.5 * (H[0, 1].real + H[1, 0].real)
    bi = 0.5 * (H[0, 1].imag - H[1, 0].imag)
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
    s = max(abs(a), abs(d), abs(br), abs(bi))
    sc = _pow2_scale(s)
    inv_sc = 1.0 / sc
    a *= sc
    d *= sc
    br *= sc
    bi *= sc
    m = 0.5 * (a + d)
    h = 0.5 * (a - d)
    bb = br * br + bi * bi
    r = math.sqrt(h * h + bb)
    E[0] = (m - r) * inv_sc
    E[1] = (m + r) * inv_sc
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


@njit(cache=True)
def _eigh_jacobi(H, E, U):
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
    # A: strictly upper triangle holds the off-diagonal part; diagonal lives in E
    A = np.empty((n, n), np.complex128)
    for i in range(n):
        E[i] = H[i, i].real * sc
        for j in range(i + 1, n):
            A[i, j] = complex(hs * (H[i, j].real + H[j, i].real),
                              hs * (H[i, j].imag - H[j, i].imag))
    for _sweep in range(_MAX_SWEEPS):
        rotated = False
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = A[p, q]
                xr = apq.real
                xi = apq.imag
                r2 = xr * xr + xi * xi
                app = E[p]
                aqq = E[q]
                if r2 <= _FLOOR2 or r2 <= _TOL2 * abs(app * aqq):
                    continue
                rotated = True
                r = math.sqrt(r2)
                inv_r = 1.0 / r
                theta = 0.5 * (aqq - app) * inv_r
                if abs(theta) > 1e150:
                    t = 0.5 / theta
                else:
                    t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                    if theta < 0.0:
                        t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                sn = t * c
                tr = t * r
                E[p] = app - tr
                E[q] = aqq + tr
                A[p, q] = 0.0
                # G = [[c, se], [-conj(se), c]] on columns (p, q), se = s * a_pq / |a_pq|
                se = complex(sn * xr * inv_r, sn * xi * inv_r)
                sec = se.conjugate()
                for k in range(p):
                    x = A[k, p]
                    y = A[k, q]
                    A[k, p] = c * x - sec * y
                    A[k, q] = se * x + c * y
                for k in range(p + 1, q):
                    x = A[p, k]
                    y = A[k, q]
                    A[p, k] = c * x - se * y.conjugate()
                    A[k, q] = se * x.conjugate() + c * y
                for k in range(q + 1, n):
                    x = A[p, k]
                    y = A[q, k]
                    A[p, k] = c * x - se * y
                    A[q, k] = sec * x + c * y
                for k in range(n):
                    x = U[k, p]
                    y = U[k, q]
                    U[k, p] = c * x - sec * y
                    U[k, q] = se * x + c * y
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
def eigh_small(H, E, U):
    """Eigen-decompose one Hermitian (n, n) complex128 matrix into preallocated E (n,), U (n, n).

    E receives ascending eigenvalues; the columns of U are the orthonormal eigenvectors.
    """
    n = H.shape[0]
    if n == 1:
        E[0] = H[0, 0].real
        U[0, 0] = 1.0
    elif n == 2:
        _eigh2(H, E, U)
    elif n <= JACOBI_MAX_N:
        _eigh_jacobi(H, E, U)
    else:
        w, v = np.linalg.eigh(H)
        E[:] = w
        U[:, :] = v
