"""Closed-form geometry of two-band models H = d0·1 + d·σ (no diagonalisation).

With r = |d| and primes for k-derivatives (all from the distinct derivative slots of H):
  ε± = d0 ± r;  ∂r = n̂·∂d;  ∂a∂b r = (∂a d·∂b d − ∂a r ∂b r)/r + n̂·∂a∂b d
  g_ab = (∂a d·∂b d − ∂a r ∂b r)/(4r²)          (both bands)
  Ω^ab_∓ = ±½ d·(∂a d × ∂b d)/r³                (lower band +, as A = i⟨u|∇u⟩; checked against a Berry-phase loop)
  𝒢_∓ = ∓ g/r                                    (𝒢 = 2g/(ε_n − ε_m))
and their k-derivatives by differentiating these expressions once more (exact). Where 2r is below
the degeneracy threshold the caller falls back to the generic sum-over-states kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, error_model="numpy")
def _pauli_components(M, out):
    """out[0..3] = ½ Tr(σ_μ M) for μ = 0, x, y, z (real parts; M Hermitian)."""
    out[0] = 0.5 * (M[0, 0].real + M[1, 1].real)
    out[1] = 0.5 * (M[0, 1].real + M[1, 0].real)
    out[2] = 0.5 * (M[1, 0].imag - M[0, 1].imag)
    out[3] = 0.5 * (M[0, 0].real - M[1, 1].real)


@njit(cache=True, error_model="numpy")
def _dot(a, b):
    return a[1] * b[1] + a[2] * b[2] + a[3] * b[3]


@njit(cache=True, error_model="numpy")
def _triple(a, b, c):
    """a·(b × c) on the vector parts (indices 1..3)."""
    return (a[1] * (b[2] * c[3] - b[3] * c[2]) + a[2] * (b[3] * c[1] - b[1] * c[3])
            + a[3] * (b[1] * c[2] - b[2] * c[1]))


@njit(cache=True, error_model="numpy")
def two_band_one_k(Hu, i1, i2, i3, D, r1, r2, g, om,
                   energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp, thresh):
    """Fill one k-point; returns False (fields untouched) if the bands are degenerate within ``thresh``."""
    d = i1.shape[0]
    for u in range(Hu.shape[0]):
        _pauli_components(Hu[u], D[u])
    d0 = D[0]
    r = np.sqrt(_dot(d0, d0))
    if 2.0 * r < thresh:
        return False
    inv_r = 1.0 / r
    # ∂a r, ∂a∂b r
    for a in range(d):
        r1[a] = _dot(D[0], D[i1[a]]) * inv_r
    for a in range(d):
        for b in range(d):
            gab = (_dot(D[i1[a]], D[i1[b]]) - r1[a] * r1[b]) * 0.25 * inv_r * inv_r
            g[a, b] = gab
            r2[a, b] = 4.0 * r * gab + _dot(D[0], D[i2[a, b]]) * inv_r
            om[a, b] = 0.5 * _triple(D[0], D[i1[a]], D[i1[b]]) * inv_r * inv_r * inv_r
    energy[0] = d0[0] - r
    energy[1] = d0[0] + r
    for a in range(d):
        velocity[0, a] = D[i1[a]][0] - r1[a]
        velocity[1, a] = D[i1[a]][0] + r1[a]
        for b in range(d):
            inverse_mass[0, a, b] = D[i2[a, b]][0] - r2[a, b]
            inverse_mass[1, a, b] = D[i2[a, b]][0] + r2[a, b]
            metric[0, a, b] = g[a, b]
            metric[1, a, b] = g[a, b]
            curvature[0, a, b] = om[a, b]
            curvature[1, a, b] = -om[a, b]
            bcp[0, a, b] = -g[a, b] * inv_r
            bcp[1, a, b] = g[a, b] * inv_r
            for c in range(d):
                da, db, dc = D[i1[a]], D[i1[b]], D[i1[c]]
                dac, dbc, dab = D[i2[a, c]], D[i2[b, c]], D[i2[a, b]]
                # ∂c of (∂a d·∂b d − ∂a r ∂b r)
                num_c = _dot(dac, db) + _dot(da, dbc) - r2[a, c] * r1[b] - r1[a] * r2[b, c]
                dg = 0.25 * num_c * inv_r * inv_r - 2.0 * g[a, b] * r1[c] * inv_r
                # ∂c ∂a∂b r = ∂c[num/r] + ∂c n̂·∂a∂b d + n̂·∂a∂b∂c d, ∂c n̂ = (∂c d − n̂ ∂c r)/r
                num = _dot(da, db) - r1[a] * r1[b]
                r3 = (num_c * inv_r - num * r1[c] * inv_r * inv_r
                      + (_dot(dc, dab) - r1[c] * _dot(D[0], dab) * inv_r) * inv_r
                      + _dot(D[0], D[i3[a, b, c]]) * inv_r)
                third[0, a, b, c] = D[i3[a, b, c]][0] - r3
                third[1, a, b, c] = D[i3[a, b, c]][0] + r3
                dom = (0.5 * (_triple(dc, da, db) + _triple(D[0], dac, db) + _triple(D[0], da, dbc))
                       * inv_r * inv_r * inv_r - 3.0 * om[a, b] * r1[c] * inv_r)
                dmetric[0, a, b, c] = dg
                dmetric[1, a, b, c] = dg
                dcurv[0, a, b, c] = dom
                dcurv[1, a, b, c] = -dom
                dG = -dg * inv_r + g[a, b] * r1[c] * inv_r * inv_r
                dbcp[0, a, b, c] = dG
                dbcp[1, a, b, c] = -dG
    return True
