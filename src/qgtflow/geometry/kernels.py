"""Compiled band-geometry kernels (numba), one call per chunk of k-points.

Everything here is a pure function of the Hamiltonian derivatives of a chunk; no I/O, no Dask.

Method (CATALOG conventions; ħ absorbed so "velocity" = ∂ε/∂k):
  In the eigenbasis, V^a = U†∂_aH U, W^{ab} = U†∂_a∂_bH U, X^{abc} = (U†∂_a∂_b∂_cH U)_nn, all
  read from the compact slot array R of distinct derivatives.
  Bands are grouped into degenerate groups D(n) (|ε_n − ε_m| < threshold); interband sums run
  over m ∉ D(n), and every per-band field is averaged over its group, so that the band sum of
  any field is the U(N)-invariant group trace.
  - ∂_aε_n = V^a_nn;  ∂_a∂_bε_n = W^{ab}_nn + 2 Re Σ_m V^a_nm V^b_mn / ε_nm
  - T^{ab}_n = Σ_m V^a_nm V^b_mn / ε_nm²   (= Σ A^a_nm A^b_mn, 003 Eq. 1)
    g = Re T (000 Eq. 7), Ω = −2 Im T, 𝒢^{ab}_n = 2 Re Σ_m V^a_nm V^b_mn / ε_nm³ (001, AMBIGUITIES 001.2)
  - exact k-derivatives from the covariant derivative of the matrix elements
      ∂_c V^a_nm = W^{ac}_nm + Σ_{l∉D(n)} V^c_nl V^a_lm / ε_nl + Σ_{l∉D(m)} V^a_nl V^c_lm / ε_ml
    (first-order perturbation theory for |∂_c u_m⟩; the intra-group connection terms cancel in
    the group trace), and ∂_c ε_nm = v^c_n − v^c_m taken as group blocks: where a degenerate group
    splits linearly (TRIM of crystals without inversion, Weyl-like touchings) its bands move with
    the eigenvalues of V^c restricted to the group (degenerate perturbation theory), so
      Σ_{n∈D} p_nm ∂_cε_n → Tr_D[V^c_DD (V^a_{:m} V^b_{m:})_DD]   (likewise for the group of m),
    which is basis independent and exact for the group trace; group-averaged velocities are not.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from qgtflow.geometry.eigh import eigh_small_ws
from qgtflow.geometry.clifford import clifford_one_k


def block_threads(n_threads: int | None = None) -> int:
    """Threads a chunk's kernel runs on: ``n_threads``, else numba's (the job's NUMBA_NUM_THREADS)."""
    import numba

    return n_threads or numba.get_num_threads()


def block_count(n_k: int, n_threads: int | None = None) -> int:
    """Blocks a chunk of ``n_k`` k-points is split into for the prange kernels (4 per numba thread)."""
    return max(1, min(n_k, 4 * block_threads(n_threads)))


@njit(cache=True, error_model="numpy")
def _groups(E, thresh, group):
    """Label consecutive (sorted) eigenvalues closer than ``thresh`` with a common group id."""
    n = E.shape[0]
    g = 0
    group[0] = 0
    for i in range(1, n):
        if E[i] - E[i - 1] >= thresh:
            g += 1
        group[i] = g
    return g + 1


@njit(cache=True, error_model="numpy")
def _group_bounds(grp, lo, hi):
    """Band i's degenerate group is the consecutive range lo[i]:hi[i] of the sorted spectrum."""
    n = grp.shape[0]
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and grp[stop] == grp[start]:
            stop += 1
        for i in range(start, stop):
            lo[i] = start
            hi[i] = stop
        start = stop


@njit(cache=True, error_model="numpy")
def _random_gauge(U, group, ngroups):
    """Multiply eigenvectors by a random unitary inside every degenerate group (test hook)."""
    n = U.shape[0]
    for gi in range(ngroups):
        idx = np.empty(n, np.int64)
        d = 0
        for i in range(n):
            if group[i] == gi:
                idx[d] = i
                d += 1
        A = np.empty((d, d), np.complex128)
        for i in range(d):
            for j in range(d):
                A[i, j] = np.random.standard_normal() + 1j * np.random.standard_normal()
        Q, R = np.linalg.qr(A)
        sub = np.empty((n, d), np.complex128)
        for r in range(n):
            for j in range(d):
                acc = 0j
                for i in range(d):
                    acc += U[r, idx[i]] * Q[i, j]
                sub[r, j] = acc
        for r in range(n):
            for j in range(d):
                U[r, idx[j]] = sub[r, j]


@njit(cache=True, error_model="numpy")
def _rotate(U, M, out, tmp):
    """out = U† M U for one n×n matrix (tmp: n×n scratch)."""
    n = U.shape[0]
    for i in range(n):
        for j in range(n):
            acc = 0j
            for l in range(n):
                acc += M[i, l] * U[l, j]
            tmp[i, j] = acc
    for i in range(n):
        for j in range(i, n):  # Hermitian result: upper triangle, mirror the lower
            acc = 0j
            for l in range(n):
                acc += np.conj(U[l, i]) * tmp[l, j]
            out[i, j] = acc
            if j != i:
                out[j, i] = np.conj(acc)


@njit(cache=True, error_model="numpy")
def _rotate_diag_into(U, M, out):
    """out[i, i] = (U† M U)_ii (off-diagonal entries untouched)."""
    n = U.shape[0]
    for i in range(n):
        acc = 0j
        for l in range(n):
            s = 0j
            for m in range(n):
                s += M[l, m] * U[m, i]
            acc += np.conj(U[l, i]) * s
        out[i, i] = acc


@njit(cache=True, error_model="numpy")
def _geometry_one_k(Hu, i1, i2, i3, active, n_full, level, thresh,
                    E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch, work,
                    energy, velocity, inverse_mass, third, curvature, metric, bcp,
                    dcurv, dmetric, dbcp):
    eigh_small_ws(Hu[0], E, U, work)
    _groups(E, thresh, grp)
    _eigenbasis_fields(Hu, i1, i2, i3, active, n_full, level, E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch,
                       energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp)


@njit(cache=True, error_model="numpy")
def _geometry_one_k_gauge(Hu, i1, i2, i3, active, n_full, level, thresh,
                          E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch, work,
                          energy, velocity, inverse_mass, third, curvature, metric, bcp,
                          dcurv, dmetric, dbcp):
    """:func:`_geometry_one_k` with the eigenvectors rotated by random unitaries inside every degenerate group
    (the gauge test hook)."""
    eigh_small_ws(Hu[0], E, U, work)
    ngroups = _groups(E, thresh, grp)
    _random_gauge(U, grp, ngroups)
    _eigenbasis_fields(Hu, i1, i2, i3, active, n_full, level, E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch,
                       energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp)


@njit(cache=True, error_model="numpy")
def _eigenbasis_fields(Hu, i1, i2, i3, active, n_full, level, E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch,
                       energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    """Rotate the distinct derivatives into the eigenbasis U (full matrices up to second order, diagonals only for
    third order) and fill every field of one k-point."""
    for u in range(1, Hu.shape[0]):
        if not active[u]:  # slot zero on the whole chunk: R[u] stays zero
            continue
        if u < n_full:
            _rotate(U, Hu[u], R[u], scratch)
        else:
            _rotate_diag_into(U, Hu[u], R[u])
    _fields_one_k(i1, i2, i3, level, E, grp, glo, ghi, R, inv, DV, tmpd,
                  energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp)


@njit(cache=True, error_model="numpy")
def _fields_one_k(i1, i2, i3, level, E, grp, glo, ghi, R, inv, DV, tmpd,
                  energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    """Every field of one k-point from its eigenvalues E (ascending), degenerate-group labels ``grp`` and the
    eigenbasis matrix elements R (slots as Hu: full matrices up to second order, diagonals of the third;
    R[0] unread); glo, ghi, inv, DV, tmpd are scratch."""
    n = E.shape[0]
    d = i1.shape[0]
    _group_bounds(grp, glo, ghi)
    V = R[i1[0]:i1[0] + d]  # ∂_a H slots are contiguous (slots 1..d)
    # inverse energy differences, zero inside a degenerate group
    for i in range(n):
        for j in range(n):
            inv[i, j] = 0.0 if grp[i] == grp[j] else 1.0 / (E[i] - E[j])
    # covariant derivatives DV[c, a] of the velocity matrix elements (between groups): level 3 only
    for c in range(d if level >= 3 else 0):
        for a in range(d):
            for i in range(n):
                for j in range(n):
                    if grp[i] == grp[j]:
                        DV[c, a, i, j] = 0.0
                        continue
                    acc = R[i2[a, c], i, j]
                    for l in range(n):
                        if grp[l] != grp[i]:
                            acc += V[c, i, l] * V[a, l, j] * inv[i, l]
                        if grp[l] != grp[j]:
                            acc += V[a, i, l] * V[c, l, j] * inv[j, l]
                    DV[c, a, i, j] = acc
    # band velocities (group averages are taken at the end)
    for i in range(n):
        energy[i] = E[i]
        for a in range(d):
            tmpd[i, a] = V[a, i, i].real
    # group-average velocities first: energy-difference derivatives use them
    for i in range(n):
        for a in range(d):
            s = 0.0
            cnt = 0
            for j in range(n):
                if grp[j] == grp[i]:
                    s += tmpd[j, a]
                    cnt += 1
            velocity[i, a] = s / cnt
    for i in range(n):
        for a in range(d):
            for b in range(a, d):  # every tensor is (anti)symmetric in (a, b): fill b < a by mirror
                t_re = 0.0
                t_im = 0.0
                g_bcp = 0.0
                m2 = R[i2[a, b], i, i].real if level >= 2 else 0.0  # order-2 slots exist from level 2
                for m in range(n):
                    if grp[m] == grp[i]:
                        continue
                    p = V[a, i, m] * V[b, m, i]
                    x = inv[i, m]
                    t_re += p.real * x * x
                    t_im += p.imag * x * x
                    g_bcp += 2.0 * p.real * x * x * x
                    m2 += 2.0 * p.real * x
                metric[i, a, b] = t_re
                metric[i, b, a] = t_re
                curvature[i, a, b] = -2.0 * t_im
                curvature[i, b, a] = 2.0 * t_im
                bcp[i, a, b] = g_bcp
                bcp[i, b, a] = g_bcp
                inverse_mass[i, a, b] = m2
                inverse_mass[i, b, a] = m2
                for c in range(d if level >= 3 else 0):
                    # ∂_c of W^{ab}_nn (group trace)
                    m3 = R[i3[a, b, c], i, i].real
                    for l in range(n):
                        if grp[l] != grp[i]:
                            m3 += 2.0 * (V[c, i, l] * R[i2[a, b], l, i]).real * inv[i, l]
                    dT_re = 0.0
                    dT_im = 0.0
                    dG = 0.0
                    for m in range(n):
                        if grp[m] == grp[i]:
                            continue
                        x = inv[i, m]
                        dp = DV[c, a, i, m] * V[b, m, i] + V[a, i, m] * DV[c, b, m, i]
                        # p ∂_cε_nm as group blocks (degenerate perturbation theory): the bands of a
                        # group split with the eigenvalues of V^c restricted to it, so Σ_{n∈D} p_nm ∂_cε_n
                        # = Tr_D[V^c_DD (V^a_{:m} V^b_{m:})_DD]; likewise for m's group
                        pdE = 0j
                        for l in range(glo[i], ghi[i]):
                            pdE += V[a, i, m] * V[b, m, l] * V[c, l, i]
                        for l in range(glo[m], ghi[m]):
                            pdE -= V[a, i, m] * V[c, m, l] * V[b, l, i]
                        # ∂_c [p / ε²]
                        q = dp * x * x - 2.0 * pdE * x * x * x
                        dT_re += q.real
                        dT_im += q.imag
                        # ∂_c [2 Re p / ε³]
                        dG += 2.0 * (dp.real * x * x * x - 3.0 * pdE.real * x * x * x * x)
                        # ∂_c [2 Re p / ε]
                        m3 += 2.0 * (dp.real * x - pdE.real * x * x)
                    dmetric[i, a, b, c] = dT_re
                    dmetric[i, b, a, c] = dT_re
                    dcurv[i, a, b, c] = -2.0 * dT_im
                    dcurv[i, b, a, c] = 2.0 * dT_im
                    dbcp[i, a, b, c] = dG
                    dbcp[i, b, a, c] = dG
                    third[i, a, b, c] = m3
                    third[i, b, a, c] = m3
    _group_average(grp, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp)


@njit(cache=True, error_model="numpy")
def _avg2(grp, F):
    """Replace every band's entries by the average over its degenerate group (in place)."""
    n = F.shape[0]
    flat = F.reshape(n, -1)
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and grp[stop] == grp[start]:
            stop += 1
        if stop - start > 1:
            for j in range(flat.shape[1]):
                acc = 0.0
                for i in range(start, stop):
                    acc += flat[i, j]
                acc /= stop - start
                for i in range(start, stop):
                    flat[i, j] = acc
        start = stop


@njit(cache=True, error_model="numpy")
def _group_average(grp, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    n = grp.shape[0]
    degenerate = False
    for i in range(1, n):
        if grp[i] == grp[i - 1]:
            degenerate = True
    if not degenerate:
        return
    _avg2(grp, inverse_mass)
    _avg2(grp, third)
    _avg2(grp, curvature)
    _avg2(grp, metric)
    _avg2(grp, bcp)
    _avg2(grp, dcurv)
    _avg2(grp, dmetric)
    _avg2(grp, dbcp)


@njit(parallel=True, cache=True, error_model="numpy")
def clifford_chunk(Hu, i1, i2, i3, level, thresh, n_blocks, gammas, c_idx, c_val, done,
                   energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    """The closed form of ``clifford.py`` for a whole chunk (parallel over blocks of k), for models with an
    anticommuting basis ``gammas`` (K, n, n) (K ≥ 1) and the nonzero structure constants Im Tr(ΓΓΓ)/(2n)
    (c_idx, c_val). ``done[k]`` is set False where the two levels touch (2r < ``thresh``; that k-point's fields
    are left as they were): the caller runs :func:`geometry_chunk` on those. Arguments and outputs as
    :func:`geometry_chunk`. A kernel of its own so that a cold process of a Clifford model (every two-band
    model) compiles neither the eigensolver nor the sum over states unless a k-point needs them."""
    N = Hu.shape[0]
    n_slots = Hu.shape[1]
    d = i1.shape[0]
    K = gammas.shape[0]
    per = (N + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        D = np.empty((n_slots, K + 1))
        P = np.empty((n_slots, n_slots))
        Ec = np.empty((K, K))
        Xc = np.empty(K)
        r1 = np.empty(d)
        r2 = np.empty((d, d))
        g2 = np.empty((d, d))
        om2 = np.empty((d, d))
        for kk in range(blk * per, min(N, (blk + 1) * per)):
            done[kk] = clifford_one_k(Hu[kk], i1, i2, i3, level, gammas, c_idx, c_val, D, P, Ec, Xc, r1, r2, g2, om2,
                                      energy[kk], velocity[kk], inverse_mass[kk], third[kk], curvature[kk],
                                      metric[kk], bcp[kk], dcurv[kk], dmetric[kk], dbcp[kk], thresh)


@njit(cache=True, error_model="numpy")
def _workspace(n_slots, n, d):
    """Scratch arrays of one block of the per-k kernels."""
    return (np.empty(n), np.empty((n, n), np.complex128), np.empty(n, np.int64), np.empty(n, np.int64),
            np.empty(n, np.int64), np.zeros((n_slots, n, n), np.complex128), np.empty((n, n)),
            np.empty((d, d, n, n), np.complex128), np.empty((n, d)), np.empty((n, n), np.complex128),
            np.empty((n, n), np.complex128))


@njit(parallel=True, cache=True, error_model="numpy")
def geometry_chunk(Hu, ks, i1, i2, i3, active, level, thresh, n_blocks,
                   energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    """Fill the per-k, per-band field arrays at the k-points ``ks`` (int64 indices into the chunk; all of them
    for the generic path, the touching points after :func:`clifford_chunk`) by the sum over states (parallel
    over blocks of ``ks``).

    ``level`` (see :data:`qgtflow.geometry.fields.FIELD_LEVEL`): 1 fills energy, velocity, curvature,
    metric, bcp only (slots of order ≤ 1 read); 2 also inverse_mass (order 2); 3 every field (the
    covariant derivatives DV and order-3 slots). Arrays of fields above the level are left as they were.
    One compiled kernel for every level: the branches cost nothing measurable and keep the cold compile
    at one kernel. (An extra per-k matrix input — e.g. a position-operator term of the Berry connection
    — is one more (N, …) argument here and in ``_geometry_one_k``, rotated like the ∂H slots.)

    Hu (N, U, n, n): H and its distinct derivatives (slot maps i1, i2, i3; see
    ``models/derivatives.py``), at least the slots of the orders ``level`` reads (U = 1 + d at level 1). Outputs: energy (N,n), velocity (N,n,d), inverse_mass/curvature/
    metric/bcp (N,n,d,d), third/dcurv/dmetric/dbcp (N,n,d,d,d) with the derivative index last.
    ``active[u]`` is False for slots that vanish on the whole chunk (their rotation is skipped).
    The gauge test hook is :func:`geometry_chunk_gauge` (a kernel of its own: a study never compiles it).
    """
    M = ks.shape[0]
    n = Hu.shape[2]
    d = i1.shape[0]
    n_full = 1 + d + d * (d + 1) // 2
    per = (M + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch, work = _workspace(Hu.shape[1], n, d)
        for j in range(blk * per, min(M, (blk + 1) * per)):
            kk = ks[j]
            _geometry_one_k(Hu[kk], i1, i2, i3, active, n_full, level, thresh,
                            E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch, work,
                            energy[kk], velocity[kk], inverse_mass[kk], third[kk], curvature[kk],
                            metric[kk], bcp[kk], dcurv[kk], dmetric[kk], dbcp[kk])


@njit(parallel=True, cache=True, error_model="numpy")
def geometry_chunk_gauge(Hu, ks, i1, i2, i3, active, level, thresh, gauge_seed, n_blocks,
                         energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    """:func:`geometry_chunk` with the gauge test hook: random unitaries inside every degenerate group (random
    phases for simple bands), seeded ``gauge_seed`` + block. Kept apart so that the kernel every study runs does
    not compile the hook's QR and random numbers (~2-3 s cold)."""
    M = ks.shape[0]
    n = Hu.shape[2]
    d = i1.shape[0]
    n_full = 1 + d + d * (d + 1) // 2
    per = (M + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        np.random.seed(gauge_seed + blk)
        E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch, work = _workspace(Hu.shape[1], n, d)
        for j in range(blk * per, min(M, (blk + 1) * per)):
            kk = ks[j]
            _geometry_one_k_gauge(Hu[kk], i1, i2, i3, active, n_full, level, thresh,
                                  E, U, grp, glo, ghi, R, inv, DV, tmpd, scratch, work,
                                  energy[kk], velocity[kk], inverse_mass[kk], third[kk], curvature[kk],
                                  metric[kk], bcp[kk], dcurv[kk], dmetric[kk], dbcp[kk])


@njit(cache=True, nogil=True, error_model="numpy")
def geometry_eigenbasis_chunk(E, R, i1, i2, i3, level, thresh,
                              energy, velocity, inverse_mass, third, curvature, metric, bcp, dcurv, dmetric, dbcp):
    """The fields of k-points already taken to the eigenbasis (``geometry/batched.py``): E (N, n) ascending
    eigenvalues, R (N, U, n, n) the matrix elements U†∂H U in the slots of Hu (full up to second order,
    diagonals of the third). Same per-k code and outputs as :func:`geometry_chunk` (without the Clifford
    closed form and the gauge test hook); serial and releasing the GIL, so that threads run blocks of k."""
    N = E.shape[0]
    n = E.shape[1]
    d = i1.shape[0]
    grp = np.empty(n, np.int64)
    glo = np.empty(n, np.int64)
    ghi = np.empty(n, np.int64)
    inv = np.empty((n, n))
    DV = np.empty((d, d, n, n), np.complex128)
    tmpd = np.empty((n, d))
    for kk in range(N):
        _groups(E[kk], thresh, grp)
        _fields_one_k(i1, i2, i3, level, E[kk], grp, glo, ghi, R[kk], inv, DV, tmpd,
                      energy[kk], velocity[kk], inverse_mass[kk], third[kk], curvature[kk], metric[kk], bcp[kk],
                      dcurv[kk], dmetric[kk], dbcp[kk])
