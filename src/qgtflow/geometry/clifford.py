"""Closed-form geometry of Clifford models H = d0·1 + Σ_μ d_μ Γ_μ ({Γ_μ, Γ_ν} = 2δ_μν).

Two-band models (Γ = Pauli matrices) and Dirac-matrix models such as the PT-symmetric toy of
001 Eq. 20 (Γ = τxσx, τxσy, τz) have two levels d0 ∓ r, r = |d|, each n/2-fold degenerate, with
projectors P∓ = (1 ∓ n̂·Γ)/2. Group traces of the QGT then follow without diagonalisation:
  per band: g_ab = ∂a n̂·∂b n̂ / 4 = (∂a d·∂b d − ∂a r ∂b r)/(4r²)
            𝒢_∓ = ∓ g / r                                   (𝒢 = 2g/(ε_n − ε_m), 001)
            Ω^ab_∓ = ± Σ c_λμν d_λ ∂a d_μ ∂b d_ν / r³,     c = Im Tr(Γ_λΓ_μΓ_ν) / (2n)
(for Pauli matrices c = ε/2: Ω = ±½ d·(∂a d × ∂b d)/r³; for 4×4 Dirac matrices c = 0, the
PT-symmetric case). ε = d0 ∓ r and all k-derivatives follow by differentiating these expressions
(exact). Where 2r is below the degeneracy threshold the generic sum over states is used.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def clifford_basis(matrices, tol: float = 1e-10):
    """Anticommuting Hermitian basis Γ (K, n, n) spanning the traceless parts of ``matrices``.

    ``matrices``: the model's coefficient matrices (any complex n×n; Hermitian and anti-Hermitian
    parts are both spanned, as Bloch sums combine them with complex phases). Returns None when
    the span has no orthonormal anticommuting basis (then the generic path is used).
    """
    mats = np.asarray(matrices, complex)
    n = mats.shape[-1]
    herm = []
    for m in mats.reshape(-1, n, n):
        m = m - np.trace(m) / n * np.eye(n)
        herm += [(m + m.conj().T) / 2, (m - m.conj().T) / 2j]
    basis = []
    for h in herm:  # Gram-Schmidt with <A, B> = Re Tr(A B) / n
        for g in basis:
            h = h - np.real(np.trace(g @ h)) / n * g
        norm = np.sqrt(max(np.real(np.trace(h @ h)) / n, 0.0))
        if norm > tol:
            basis.append(h / norm)
    if not basis or len(basis) > 2 * n:  # 2n+1 anticommuting n×n matrices cannot exist beyond
        return None
    eye = np.eye(n)
    for a, ga in enumerate(basis):
        for b, gb in enumerate(basis):
            target = 2 * eye if a == b else 0 * eye
            if np.abs(ga @ gb + gb @ ga - target).max() > 1e-8:
                return None
    return np.ascontiguousarray(np.stack(basis))


def structure_constants(gammas: np.ndarray) -> np.ndarray:
    """c_λμν = Im Tr(Γ_λ Γ_μ Γ_ν) / (2n): totally antisymmetric, zero for 4×4 PT Dirac matrices."""
    n = gammas.shape[-1]
    return np.ascontiguousarray(np.einsum("lab,mbc,nca->lmn", gammas, gammas, gammas).imag / (2 * n))


@njit(cache=True, error_model="numpy", inline="always")
def _components(M, gammas, out):
    """out[0] = Tr(M)/n, out[1 + μ] = Re Tr(Γ_μ M)/n."""
    n = M.shape[0]
    acc = 0.0
    for i in range(n):
        acc += M[i, i].real
    out[0] = acc / n
    for mu in range(gammas.shape[0]):
        acc = 0.0
        for i in range(n):
            for j in range(n):
                acc += (gammas[mu, i, j] * M[j, i]).real
        out[1 + mu] = acc / n


@njit(cache=True, error_model="numpy", inline="always")
def _bilinear(E, D, u, v):
    """Σ_μν D[u]_μ E_μν D[v]_ν on the vector parts."""
    K = E.shape[0]
    acc = 0.0
    for mu in range(K):
        row = 0.0
        for nu in range(K):
            row += E[mu, nu] * D[v, 1 + nu]
        acc += D[u, 1 + mu] * row
    return acc


def sparse_structure(structure: np.ndarray, tol: float = 1e-14):
    """Nonzero structure constants as (indices (nnz, 3) int64, values (nnz,)) for the kernel."""
    idx = np.argwhere(np.abs(structure) > tol).astype(np.int64).reshape(-1, 3)
    return np.ascontiguousarray(idx), np.ascontiguousarray(structure[tuple(idx.T)] if len(idx) else np.zeros(0))


@njit(cache=True, error_model="numpy")
def clifford_one_k(Hu, i1, i2, i3, level, gammas, c_idx, c_val, D, P, E, X, r1, r2, g, om,
                   energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp, thresh):
    """Fill one k-point; returns False (fields untouched) if the two levels touch within ``thresh``.

    ``level`` 1: energy, velocity, curvature, metric, bcp (slots of order ≤ 1 read); 2: also inverse_mass;
    3: every field (see ``kernels.geometry_chunk``).

    D (U, K+1): d0 and d of every derivative slot; P (U, U): Gram matrix of the d parts;
    E (K, K) = Σ_λ c_λμν d_λ and X (K,) scratch for the curvature contractions.
    """
    d = i1.shape[0]
    nb = Hu.shape[1]
    half = nb // 2
    n_slots = 1 + d if level <= 1 else (1 + d + d * (d + 1) // 2 if level == 2 else Hu.shape[0])
    K = gammas.shape[0]
    has_curvature = c_val.shape[0] > 0
    for u in range(n_slots):
        _components(Hu[u], gammas, D[u])
    for u in range(n_slots):
        for v in range(u, n_slots):
            acc = 0.0
            for mu in range(1, K + 1):
                acc += D[u, mu] * D[v, mu]
            P[u, v] = acc
            P[v, u] = acc
    r = np.sqrt(P[0, 0])
    if 2.0 * r < thresh:
        return False
    inv_r = 1.0 / r
    if has_curvature:
        E[:, :] = 0.0
        for t in range(c_val.shape[0]):
            E[c_idx[t, 1], c_idx[t, 2]] += c_val[t] * D[0, 1 + c_idx[t, 0]]
    for a in range(d):
        r1[a] = P[0, i1[a]] * inv_r
    for a in range(d):
        for b in range(d):
            gab = (P[i1[a], i1[b]] - r1[a] * r1[b]) * 0.25 * inv_r * inv_r
            g[a, b] = gab
            r2[a, b] = 4.0 * r * gab + P[0, i2[a, b]] * inv_r if level >= 2 else 0.0
            om[a, b] = _bilinear(E, D, i1[a], i1[b]) * inv_r ** 3 if has_curvature else 0.0
    for band in range(nb):
        s = -1.0 if band < half else 1.0  # lower level d0 − r, upper d0 + r
        energy[band] = D[0, 0] + s * r
        for a in range(d):
            velocity[band, a] = D[i1[a], 0] + s * r1[a]
            for b in range(d):
                if level >= 2:
                    inverse_mass[band, a, b] = D[i2[a, b], 0] + s * r2[a, b]
                metric[band, a, b] = g[a, b]
                curvature[band, a, b] = -s * om[a, b]
                bcp[band, a, b] = s * g[a, b] * inv_r
    for a in range(d if level >= 3 else 0):
        for b in range(d):
            ua, ub, uab = i1[a], i1[b], i2[a, b]
            num = P[ua, ub] - r1[a] * r1[b]
            if has_curvature:  # X_λ = Σ c_λμν ∂a d_μ ∂b d_ν
                X[:] = 0.0
                for t in range(c_val.shape[0]):
                    X[c_idx[t, 0]] += c_val[t] * D[ua, 1 + c_idx[t, 1]] * D[ub, 1 + c_idx[t, 2]]
            for cc in range(d):
                uc, uac, ubc, uabc = i1[cc], i2[a, cc], i2[b, cc], i3[a, b, cc]
                num_c = P[uac, ub] + P[ua, ubc] - r2[a, cc] * r1[b] - r1[a] * r2[b, cc]
                dg = 0.25 * num_c * inv_r * inv_r - 2.0 * g[a, b] * r1[cc] * inv_r
                # ∂c ∂a∂b r = ∂c[num/r] + ∂c n̂·∂a∂b d + n̂·∂a∂b∂c d, with ∂c n̂ = (∂c d − n̂ ∂c r)/r
                r3 = (num_c * inv_r - num * r1[cc] * inv_r * inv_r
                      + (P[uc, uab] - r1[cc] * P[0, uab] * inv_r) * inv_r + P[0, uabc] * inv_r)
                dom = 0.0
                if has_curvature:
                    xc = 0.0
                    for mu in range(K):
                        xc += X[mu] * D[uc, 1 + mu]
                    dom = ((xc + _bilinear(E, D, uac, ub) + _bilinear(E, D, ua, ubc)) * inv_r ** 3
                           - 3.0 * om[a, b] * r1[cc] * inv_r)
                dG = -dg * inv_r + g[a, b] * r1[cc] * inv_r * inv_r
                for band in range(nb):
                    s = -1.0 if band < half else 1.0
                    third[band, a, b, cc] = D[uabc, 0] + s * r3
                    dmetric[band, a, b, cc] = dg
                    dcurv[band, a, b, cc] = -s * dom
                    dbcp[band, a, b, cc] = -s * dG
    return True
