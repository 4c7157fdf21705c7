"""Exact quantum-metric quadrupole and Christoffel symbols from band-projector derivatives (numba).

Pure functions of a chunk's compact Hamiltonian derivatives ``Hu`` (N, U, n, n) (H, ∂H, ∂²H, ∂³H in
distinct slots, see ``models/derivatives.py``); no I/O, no Dask.

Fields (per k, per band; group value / group size, so that band sums are group traces, as in
``kernels.py``):
  quantum_metric                    (N, n, d, d)        [a, b]       = g^{ab}_n             (000 Eq. 7)
  quantum_metric_dipole_density     (N, n, d, d, d)     [a, b, c]    = ∂_c g^{ab}_n
  quantum_metric_quadrupole_density (N, n, d, d, d, d)  [a, b, c, e] = ∂_c ∂_e g^{ab}_n     (000 Eq. 15, 20)
  christoffel                       (N, n, d, d, d)     [a, b, c]    = Γ_abc = ½(∂_c g_ab + ∂_b g_ac − ∂_a g_bc)
                                                                       (000 Eq. 16; first kind, symmetric in b, c)
The first two repeat ``kernels.py`` by an independent route (cross-check).

Method. For a degenerate group D (bands with |ε_n − ε_m| < threshold, consecutive in the sorted
spectrum) let P = P_D be its spectral projector. Then
    g^{ab}_D = ½ Tr[∂_aP ∂_bP]                      (= Σ_{n∈D, m∉D} Re A^a_nm A^b_mn)
    ∂_c g^{ab}_D = ½ Tr[∂_acP ∂_bP + ∂_aP ∂_bcP]
    ∂_c∂_e g^{ab}_D = ½ Tr[∂_aceP ∂_bP + ∂_acP ∂_beP + ∂_aeP ∂_bcP + ∂_aP ∂_bceP].
P = (2πi)⁻¹∮_D (z − H)⁻¹ dz, and ∂(z − H)⁻¹ = G ∂H G, so ∂^B P (B a multiset of directions) is a sum
over ordered set partitions (B1, …, Bm) of B of chains ∂^{B1}H ∂^{B2}H … ∂^{Bm}H whose eigenbasis
element (i, k1, …, j) is weighted by the divided difference f[λ_i, λ_k1, …, λ_j] of the indicator f
of D, i.e. the residue at x_D of Π_p 1/(z − λ_p). All eigenvalues of a group are replaced by the
group mean (exactly gauge-covariant under rotations inside any group); with r nodes in D and
s_q = 1/(x_D − λ_q) for the others, the weight is 0 if r = 0 or (r = m + 1 ≥ 2), else
(−1)^{r−1} Π_q s_q h_{r−1}(s) (h_j: complete homogeneous symmetric polynomial). No division by a
difference of two eigenvalues of one group ever occurs (degenerate-safe).
Only the blocks that enter the traces are formed: ∂_bP is block off-diagonal (D×D̄ and D̄×D), so
∂³P is needed on the D×D̄ block only, and every trace is a sum over rows i ∈ D; with
P1^x = V^x_{D,:} S (S = diag s, zero on D), Gm^{xy} = P1^x P1^y† and
    (∂_ab P)_{DD} = −(Gm^{ab} + Gm^{ba}),  (∂_ab P)_{D̄D̄} = P1^a†P1^b + P1^b†P1^a,
    (∂_ab P)_{DD̄} = S-weighted W^{ab} + P1^a V^b + P1^b V^a − s_j (V^a_{DD} V^b_{D:} + (a↔b)),
the traces of products of the D̄D̄ blocks reduce to traces of |D|×|D| Gram products. The third-order
term Tr[∂^{ace}P ∂_bP] is contracted before the last matrix product (matrices Θ = M S^r V^b_{D:}†).
Total cost ~ O(d³ n³) per k (summed over groups), memory O(d² n²) per thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from qgtflow.geometry.eigh import eigh_small_ws
from qgtflow.geometry.kernels import _groups, _random_gauge, _rotate, block_count
from qgtflow.models.derivatives import index_maps, unique_multi_indices

QUADRUPOLE_FIELDS = ("quantum_metric", "quantum_metric_dipole_density", "quantum_metric_quadrupole_density",
                     "christoffel")


@njit(cache=True, error_model="numpy")
def _pair_index(i2, d, a, b):
    return i2[a, b] - 1 - d


@njit(cache=True, error_model="numpy")
def _group_fields(R, d, npair, i2, i3, pairs, trips, p0, p1, s, inD,
                  P1, Gm, Do2, K0, K1, K2, ThV, ThW, T21, T22, T3, g_out, dg_out, q_out):
    """Group traces g_D (d,d), ∂g_D (d,d,d), ∂∂g_D (d,d,d,d) of the group occupying rows p0:p1."""
    n = R.shape[1]
    nD = p1 - p0
    o2 = 1 + d  # first second-derivative slot
    o3 = 1 + d + npair  # first third-derivative slot
    ntrip = trips.shape[0]
    # P1^x[r, j] = V^x_{ij} s_j (i = p0 + r)  (= (∂_x P)_{ij}, D×D̄ block)
    for x in range(d):
        V = R[1 + x]
        for r in range(nD):
            for j in range(n):
                P1[x, r, j] = V[p0 + r, j] * s[j]
    # Gram matrices Gm^{xy} = P1^x P1^y†  (|D|×|D|)
    for x in range(d):
        for y in range(d):
            for r in range(nD):
                for rr in range(nD):
                    acc = 0j
                    for j in range(n):
                        acc += P1[x, r, j] * np.conj(P1[y, rr, j])
                    Gm[x, y, r, rr] = acc
    for a in range(d):
        for b in range(d):
            acc = 0.0
            for r in range(nD):
                acc += Gm[a, b, r, r].real
            g_out[a, b] = acc
    # second-order D×D̄ blocks
    for p in range(npair):
        a = pairs[p, 0]
        b = pairs[p, 1]
        W = R[o2 + p]
        Va = R[1 + a]
        Vb = R[1 + b]
        for r in range(nD):
            i = p0 + r
            for j in range(n):
                if inD[j]:
                    Do2[p, r, j] = 0.0
                    continue
                acc = W[i, j]
                acc2 = 0j
                for k in range(n):
                    acc += P1[a, r, k] * Vb[k, j] + P1[b, r, k] * Va[k, j]
                    if inD[k]:
                        acc2 += Va[i, k] * Vb[k, j] + Vb[i, k] * Va[k, j]
                Do2[p, r, j] = s[j] * (acc - s[j] * acc2)
    # T21[p, b] = Tr[∂^p P ∂_b P] = 2 Re Σ Do2 conj(P1)
    for p in range(npair):
        for b in range(d):
            acc = 0.0
            for r in range(nD):
                for j in range(n):
                    acc += (Do2[p, r, j] * np.conj(P1[b, r, j])).real
            T21[p, b] = 2.0 * acc
    for a in range(d):
        for b in range(d):
            for c in range(d):
                dg_out[a, b, c] = 0.5 * (T21[_pair_index(i2, d, a, c), b] + T21[_pair_index(i2, d, b, c), a])
    # T22[p, q] = Tr[∂^p P ∂^q P] = Tr(DD DD) + 2 Re Σ Do2_p conj(Do2_q) + Tr(D̄D̄ D̄D̄)
    for a in range(d):
        for b in range(a, d):
            p = _pair_index(i2, d, a, b)
            for c in range(d):
                for e in range(c, d):
                    q = _pair_index(i2, d, c, e)
                    if q < p:
                        continue
                    acc = 0.0
                    for r in range(nD):
                        for j in range(n):
                            acc += 2.0 * (Do2[p, r, j] * np.conj(Do2[q, r, j])).real
                    tr = 0j
                    for r in range(nD):
                        for rr in range(nD):
                            # DD_p = −(Gm^{ab} + Gm^{ba}), DD_q likewise
                            tr += (Gm[a, b, r, rr] + Gm[b, a, r, rr]) * (Gm[c, e, rr, r] + Gm[e, c, rr, r])
                            tr += (Gm[b, c, r, rr] * Gm[e, a, rr, r] + Gm[b, e, r, rr] * Gm[c, a, rr, r]
                                   + Gm[a, c, r, rr] * Gm[e, b, rr, r] + Gm[a, e, r, rr] * Gm[c, b, rr, r])
                    T22[p, q] = acc + tr.real
                    T22[q, p] = T22[p, q]
    # Θ_V[r, z, b] = V^z S^{r+2} V^b_{D:}†  (n×|D|),  Θ_W[r, p, b] = W^p S^{r+2} V^b_{D:}†
    for z in range(d):
        Vz = R[1 + z]
        for b in range(d):
            Vb = R[1 + b]
            for k in range(n):
                for rr in range(nD):
                    a0 = 0j
                    a1 = 0j
                    a2 = 0j
                    for j in range(n):
                        if inD[j]:
                            continue
                        t = Vz[k, j] * np.conj(Vb[p0 + rr, j]) * s[j] * s[j]
                        a0 += t
                        t = t * s[j]
                        a1 += t
                        a2 += t * s[j]
                    ThV[0, z, b, k, rr] = a0
                    ThV[1, z, b, k, rr] = a1
                    ThV[2, z, b, k, rr] = a2
    for p in range(npair):
        W = R[o2 + p]
        for b in range(d):
            Vb = R[1 + b]
            for k in range(n):
                for rr in range(nD):
                    a0 = 0j
                    a1 = 0j
                    for j in range(n):
                        if inD[j]:
                            continue
                        t = W[k, j] * np.conj(Vb[p0 + rr, j]) * s[j] * s[j]
                        a0 += t
                        a1 += t * s[j]
                    ThW[0, p, b, k, rr] = a0
                    ThW[1, p, b, k, rr] = a1
    # K matrices per pair p = {x, y}: sums over both chain orders (x, y) and (y, x) of
    #   L0 = B_P P,  L1 = B_P S + B_S P,  L2 = −B_P S² − B_S2 P + B_S S
    # with B_P = V^x_{DD} V^y_{D:}, B_S = P1^x V^y, B_S2 = P1^x S V^y; plus the W-chain parts
    #   K0 += W^p_{D:} S,  K1 += W^p_{D:} P
    for p in range(npair):
        W = R[o2 + p]
        for r in range(nD):
            for j in range(n):
                if inD[j]:
                    K0[p, r, j] = 0.0
                    K1[p, r, j] = W[p0 + r, j]
                else:
                    K0[p, r, j] = W[p0 + r, j] * s[j]
                    K1[p, r, j] = 0.0
                K2[p, r, j] = 0.0
    for x in range(d):
        Vx = R[1 + x]
        for y in range(d):
            Vy = R[1 + y]
            p = _pair_index(i2, d, x, y)
            for r in range(nD):
                i = p0 + r
                for j in range(n):
                    bp = 0j
                    bs = 0j
                    bs2 = 0j
                    for k in range(n):
                        if inD[k]:
                            bp += Vx[i, k] * Vy[k, j]
                        else:
                            t = P1[x, r, k] * Vy[k, j]
                            bs += t
                            bs2 += t * s[k]
                    if x == y:  # both orders of the two labelled derivatives give this chain
                        bp *= 2.0
                        bs *= 2.0
                        bs2 *= 2.0
                    if inD[j]:
                        K2[p, r, j] += bp
                        K1[p, r, j] += bs
                        K0[p, r, j] -= bs2
                    else:
                        sj = s[j]
                        K1[p, r, j] += bp * sj
                        K0[p, r, j] += bs * sj - bp * sj * sj
    # T3[t, b] = Tr[∂^t P ∂_b P] for every distinct third-order multi-index t
    for t in range(ntrip):
        X = R[o3 + t]
        for b in range(d):
            Vb = R[1 + b]
            acc = 0j
            for r in range(nD):
                for j in range(n):
                    if not inD[j]:
                        acc += np.conj(Vb[p0 + r, j]) * s[j] * s[j] * X[p0 + r, j]
            for pos in range(3):
                z = trips[t, pos]
                o1 = trips[t, (pos + 1) % 3]
                o2_ = trips[t, (pos + 2) % 3]
                p = _pair_index(i2, d, o1, o2_)
                for r in range(nD):
                    for k in range(n):
                        acc += P1[z, r, k] * ThW[0, p, b, k, r]
                        acc += K0[p, r, k] * ThV[0, z, b, k, r]
                        acc -= K1[p, r, k] * ThV[1, z, b, k, r]
                        if inD[k]:
                            acc -= R[1 + z][p0 + r, k] * ThW[1, p, b, k, r]
                            acc += K2[p, r, k] * ThV[2, z, b, k, r]
            T3[t, b] = 2.0 * acc.real
    for a in range(d):
        for b in range(a, d):
            for c in range(d):
                for e in range(c, d):
                    v = 0.5 * (T3[i3[a, c, e] - o3, b] + T3[i3[b, c, e] - o3, a]
                               + T22[_pair_index(i2, d, a, c), _pair_index(i2, d, b, e)]
                               + T22[_pair_index(i2, d, a, e), _pair_index(i2, d, b, c)])
                    q_out[a, b, c, e] = v
                    q_out[b, a, c, e] = v
                    q_out[a, b, e, c] = v
                    q_out[b, a, e, c] = v


@njit(cache=True, error_model="numpy")
def _projector_one_k(Hu, i2, i3, pairs, trips, active, thresh, gauge_seed,
                     E, U, grp, R, s, inD, xg, gstart, scratch, work,
                     P1, Gm, Do2, K0, K1, K2, ThV, ThW, T21, T22, T3, gD, dgD, qD,
                     metric, dmetric, quad, christoffel):
    n = Hu.shape[1]
    d = i2.shape[0]
    npair = d * (d + 1) // 2
    eigh_small_ws(Hu[0], E, U, work)
    ngroups = _groups(E, thresh, grp)
    if gauge_seed >= 0:
        _random_gauge(U, grp, ngroups)
    for u in range(1, Hu.shape[0]):
        if active[u]:
            _rotate(U, Hu[u], R[u], scratch)
    # groups are consecutive in the sorted spectrum: boundaries and mean energies
    g = 0
    gstart[0] = 0
    for i in range(1, n):
        if grp[i] != grp[i - 1]:
            g += 1
            gstart[g] = i
    gstart[ngroups] = n
    for gi in range(ngroups):
        acc = 0.0
        for i in range(gstart[gi], gstart[gi + 1]):
            acc += E[i]
        xg[gi] = acc / (gstart[gi + 1] - gstart[gi])
    for gi in range(ngroups):
        p0 = gstart[gi]
        p1 = gstart[gi + 1]
        for j in range(n):
            inD[j] = grp[j] == gi
            s[j] = 0.0 if inD[j] else 1.0 / (xg[gi] - xg[grp[j]])
        _group_fields(R, d, npair, i2, i3, pairs, trips, p0, p1, s, inD,
                      P1, Gm, Do2, K0, K1, K2, ThV, ThW, T21, T22, T3, gD, dgD, qD)
        w = 1.0 / (p1 - p0)
        for i in range(p0, p1):
            for a in range(d):
                for b in range(d):
                    metric[i, a, b] = gD[a, b] * w
                    for c in range(d):
                        dmetric[i, a, b, c] = dgD[a, b, c] * w
                        # Γ_abc = ½(∂_c g_ab + ∂_b g_ac − ∂_a g_bc)   (000 Eq. 16)
                        christoffel[i, a, b, c] = 0.5 * w * (dgD[a, b, c] + dgD[a, c, b] - dgD[b, c, a])
                        for e in range(d):
                            quad[i, a, b, c, e] = qD[a, b, c, e] * w


@njit(parallel=True, cache=True, error_model="numpy")
def projector_chunk(Hu, i2, i3, pairs, trips, active, thresh, gauge_seed, n_blocks, metric, dmetric, quad, christoffel):
    """Fill metric (N,n,d,d), dmetric (N,n,d,d,d), quad (N,n,d,d,d,d), christoffel (N,n,d,d,d) for a chunk.

    Hu (N, U, n, n): compact derivatives; i2/i3: slot maps; pairs (npair, 2) / trips (ntrip, 3):
    the sorted second/third-order multi-indices in slot order; active[u] False for slots that vanish on the chunk.
    ``gauge_seed`` ≥ 0 applies random unitaries inside degenerate groups (test hook).
    """
    N = Hu.shape[0]
    n_slots = Hu.shape[1]
    n = Hu.shape[2]
    d = i2.shape[0]
    npair = d * (d + 1) // 2
    ntrip = trips.shape[0]
    per = (N + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        if gauge_seed >= 0:
            np.random.seed(gauge_seed + blk)
        E = np.empty(n)
        U = np.empty((n, n), np.complex128)
        grp = np.empty(n, np.int64)
        R = np.zeros((n_slots, n, n), np.complex128)
        s = np.empty(n)
        inD = np.empty(n, np.bool_)
        xg = np.empty(n)
        gstart = np.empty(n + 1, np.int64)
        scratch = np.empty((n, n), np.complex128)
        work = np.empty((n, n), np.complex128)
        P1 = np.empty((d, n, n), np.complex128)
        Gm = np.empty((d, d, n, n), np.complex128)
        Do2 = np.empty((npair, n, n), np.complex128)
        K0 = np.empty((npair, n, n), np.complex128)
        K1 = np.empty((npair, n, n), np.complex128)
        K2 = np.empty((npair, n, n), np.complex128)
        ThV = np.empty((3, d, d, n, n), np.complex128)
        ThW = np.empty((2, npair, d, n, n), np.complex128)
        T21 = np.empty((npair, d))
        T22 = np.empty((npair, npair))
        T3 = np.empty((max(ntrip, 1), d))
        gD = np.empty((d, d))
        dgD = np.empty((d, d, d))
        qD = np.empty((d, d, d, d))
        for kk in range(blk * per, min(N, (blk + 1) * per)):
            _projector_one_k(Hu[kk], i2, i3, pairs, trips, active, thresh, gauge_seed,
                             E, U, grp, R, s, inD, xg, gstart, scratch, work,
                             P1, Gm, Do2, K0, K1, K2, ThV, ThW, T21, T22, T3, gD, dgD, qD,
                             metric[kk], dmetric[kk], quad[kk], christoffel[kk])


def _allocate(N: int, n: int, d: int) -> dict[str, np.ndarray]:
    return {
        "quantum_metric": np.empty((N, n, d, d)),
        "quantum_metric_dipole_density": np.empty((N, n, d, d, d)),
        "quantum_metric_quadrupole_density": np.empty((N, n, d, d, d, d)),
        "christoffel": np.empty((N, n, d, d, d)),
    }


def quadrupole_fields(Hu: np.ndarray, dim: int, degeneracy_threshold: float = 1e-6, n_threads: int | None = None,
                      active=None, gauge_seed: int = -1, out: dict | None = None) -> dict[str, np.ndarray]:
    """Exact g, ∂g, ∂∂g and Christoffel symbols from the compact derivative array Hu (N, U, n, n).

    Returns {name: array} with the layouts of the module docstring (k first, then band, then the
    Cartesian indices; derivative indices last). ``active``: bool per derivative slot, False where
    the slot vanishes identically (rotation skipped; default all True). ``gauge_seed`` ≥ 0: random
    unitaries inside degenerate groups (test hook). ``out``: preallocated arrays of those shapes.
    """
    Hu = np.ascontiguousarray(Hu, dtype=complex)
    N, n = Hu.shape[0], Hu.shape[2]
    d = int(dim)
    if Hu.shape[1] != len(unique_multi_indices(d)):
        raise ValueError(f"Hu has {Hu.shape[1]} derivative slots; dimension {d} needs {len(unique_multi_indices(d))}")
    out = _allocate(N, n, d) if out is None else out
    if N == 0:
        return out
    n_blocks = block_count(N, n_threads)
    _i1, i2, i3 = index_maps(d)
    pairs = np.array([a for a in unique_multi_indices(d) if len(a) == 2], np.int64).reshape(-1, 2)
    trips = np.array([a for a in unique_multi_indices(d) if len(a) == 3], np.int64).reshape(-1, 3)
    active = np.ones(Hu.shape[1], bool) if active is None else np.asarray(active, bool)
    projector_chunk(Hu, i2, i3, pairs, trips, active, float(degeneracy_threshold), int(gauge_seed), n_blocks,
                    out["quantum_metric"], out["quantum_metric_dipole_density"],
                    out["quantum_metric_quadrupole_density"], out["christoffel"])
    return out


def compute_quadrupole_fields(model, k: np.ndarray, degeneracy_threshold: float = 1e-6, n_threads: int | None = None,
                              gauge_seed: int = -1) -> dict[str, np.ndarray]:
    """:func:`quadrupole_fields` of ``model`` at k-points ``k`` (N, dim)."""
    k = np.ascontiguousarray(np.asarray(k, float).reshape(-1, model.dim))
    return quadrupole_fields(model.unique_derivatives(k), model.dim, degeneracy_threshold, n_threads,
                             active=model.active_slots(), gauge_seed=gauge_seed)
