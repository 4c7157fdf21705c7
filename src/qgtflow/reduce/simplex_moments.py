"""Exact energy-moment histograms of the linear triangle / tetrahedron interpolant (reduce stage, T → 0).

``accumulate_simplex_moments`` fills the bins of ``spectral.EnergyBins`` with the EXACT moments
∫_bin dE ∫ δ(E − ε) Q (E − c_b)^q/q! of the same interpolant (and the underflow below the
histogram), cell by cell for the cells whose base vertex lies in a chunk [start, stop) — the
caller reads the chunk plus a one-plane halo, ``chunk_vertices`` — so ``spectral.contract``
gives finite-T results that converge to the T = 0 interpolant as T → 0 on a fixed grid, and
``zero_temperature`` reads the T = 0 values (θ, −δ, δ') off the moments. Cost per simplex:
O(1) if above the histogram or wholly below it (added to the underflow per cell), else
O(d² C) for the piece polynomials plus O((d + n_moments) C) per bin it spans.

The simplex decomposition and the cross-section weights are those of :mod:`qgtflow.reduce.tetrahedron`.
"""

from __future__ import annotations

import itertools
import math
from math import factorial

import numpy as np
from numba import njit

from qgtflow.kgrid import KGrid
from qgtflow.reduce.tetrahedron import sort_vertex_energies, simplex_offsets


# ============================================================================ energy-moment histograms
#
# Exact bin moments of the linear interpolant (chunked, for the reduce stage's spectral histograms).
#
# Derivation. Inside one simplex σ (volume V, vertex energies sorted e_0 ≤ … ≤ e_d, a linear
# integrand Q) the distribution ρ_σ(E) = ∫_σ d^dk/(2π)^d δ(E − ε(k)) Q(k) is the E-derivative of
# the cumulative F_σ(E) = ∫_σ θ(E − ε) Q, the linear-tetrahedron Fermi-sea integral of Lehmann &
# Taut (1972), Lambin & Vigneron (1984) and Blöchl et al. (1994). Between consecutive vertex energies
# F_σ is a polynomial of degree ≤ d + 1 in E: the occupied polytope is cut by the level set along the
# simplex edges at points linear in E, its volume is a polynomial of degree d and its centroid
# (where the linear Q is evaluated) is linear in E. (Equivalently: with barycentric coordinates λ
# uniform on the simplex, ε = Σ λ_i e_i has the B-spline density M(E; e_0..e_d) of degree d − 1,
# and the weight λ_i doubles knot e_i — Hermite–Genocchi / Curry–Schoenberg — so the pieces of ρ_σ
# are polynomials of degree ≤ d with breaks only at the vertex energies.) Hence on every piece
# [e_m, e_{m+1}] ρ_σ is a polynomial of degree ≤ d. We evaluate it exactly at d + 1 interior
# Chebyshev nodes of the piece with the Lambin–Vigneron/Blöchl cross-section weights of
# ``_delta_simplex`` (the colleague's exact geometry), interpolate (Lagrange, exact for degree d),
# and integrate ρ_σ(E) (E − c_b)^q / q! over every piece ∩ bin with p-point Gauss–Legendre,
# p = ⌈(d + n_moments)/2⌉ (exact for the degree d + n_moments − 1 integrand). The part of a piece
# below the histogram's lower edge goes to ``underflow`` by the same quadrature (q = 0). All of
# this is exact to rounding; the divided-difference (B-spline) closed form is NOT used because it
# cancels catastrophically for nearly equal vertex energies, whereas here the vertex energies are
# shifted by e_0 first and every node lies strictly inside its piece (no case switch, no 1/0).
#
# A flat simplex (e_0 = e_d) is a point mass V·mean(Q) at e_0 and is put, exactly, into the bin
# floor((e_0 − lo)/w) like a point sample (underflow if e_0 < lo). States above lo + n_bins·w are
# dropped, like ``spectral.accumulate`` does.


def _gauss_nodes(dim: int, n_moments: int):
    """Gauss–Legendre rule exact to degree dim + n_moments − 1, the d+1 interior Chebyshev nodes
    of [−1, 1] and the inverse of their Vandermonde matrix (nodal values → monomial coefficients)."""
    p = max(1, -(-(dim + n_moments) // 2))
    gx, gw = np.polynomial.legendre.leggauss(p)
    j = np.arange(dim + 1)
    cheb = np.cos((2 * j + 1) * np.pi / (2 * (dim + 1)))
    vinv = np.linalg.inv(np.vander(cheb, increasing=True))
    return gx, gw, cheb, np.ascontiguousarray(vinv)


@njit(cache=True, error_model="numpy")
def _delta_piece(e, E, d, below, acc):
    """``_delta_simplex`` inside a piece, in closed form: e sorted, e[below−1] < E < e[below].

    Same cross-section and cone decomposition as ``_delta_simplex`` (apex v_0 for the lower cases,
    v_d for the top one), with the cone volumes |det| written out for the barycentric rows of the
    edge points P_ij = (1 − t_ij) v_i + t_ij v_j, t_ij = (E − e_i)/(e_j − e_i) ∈ (0, 1). The 1/|E − e_apex|
    of the cone height cancels against one t factor, so only differences e_j − e_i ≥ the piece width
    are divided by: no cancellation for nearly equal vertex energies.
      below = 1 (e_0 < E < e_1): section P_01…P_0d, f = Π_{j<d} t_0j/(e_d − e_0);
      below = d (e_{d−1} < E < e_d): section P_d0…P_d,d−1, f = Π_{0<j<d} t_dj/(e_d − e_0);
      d = 3, below = 2: quadrilateral P02 P03 P13 P12, triangles (P02, P03, P13) and (P02, P13, P12)
        from apex v_0: f_1 = t03 (1 − t13)/(e_2 − e_0), f_2 = t13 (1 − t12)/(e_2 − e_0).
    acc[v] += f · Σ_(section vertices) (barycentric coordinate v).
    """
    nv = d + 1
    for v in range(nv):
        acc[v] = 0.0
    if below == 1:
        f = 1.0 / (e[d] - e[0])
        for j in range(1, d):
            f *= (E - e[0]) / (e[j] - e[0])
        for j in range(1, nv):
            t = (E - e[0]) / (e[j] - e[0])
            acc[0] += f * (1.0 - t)
            acc[j] = f * t
        return
    if below == d:
        f = 1.0 / (e[d] - e[0])
        for j in range(1, d):
            f *= (e[d] - E) / (e[d] - e[j])
        for j in range(d):
            t = (e[d] - E) / (e[d] - e[j])
            acc[d] += f * (1.0 - t)
            acc[j] = f * t
        return
    t02 = (E - e[0]) / (e[2] - e[0])
    t03 = (E - e[0]) / (e[3] - e[0])
    t12 = (E - e[1]) / (e[2] - e[1])
    t13 = (E - e[1]) / (e[3] - e[1])
    f1 = t03 * (1.0 - t13) / (e[2] - e[0])
    f2 = t13 * (1.0 - t12) / (e[2] - e[0])
    acc[0] = f1 * ((1.0 - t02) + (1.0 - t03)) + f2 * (1.0 - t02)
    acc[1] = f1 * (1.0 - t13) + f2 * ((1.0 - t13) + (1.0 - t12))
    acc[2] = f1 * t02 + f2 * (t02 + t12)
    acc[3] = f1 * (t03 + t13) + f2 * t13


@njit(cache=True, error_model="numpy")
def _add_interval(l, r, pm, ph, coef, gx, gw, wscale, cshift, nq, nc, out_row, rho, xpow, moments, b):
    """∫_l^r ρ(E) (E − c)^q/q! dE by Gauss–Legendre, ρ(E) = Σ_k coef[k] s^k, s = (E − pm)/ph
    (shifted energies, c = cshift). b ≥ 0: moments[b, q, :] += …; b < 0: out_row += ∫ρ."""
    deg = coef.shape[0] - 1
    half = 0.5 * (r - l)
    mid = 0.5 * (r + l)
    for g in range(gx.shape[0]):
        E = mid + half * gx[g]
        s = (E - pm) / ph
        wg = wscale * half * gw[g]
        for c in range(nc):
            acc = coef[deg, c]
            for k in range(deg - 1, -1, -1):
                acc = acc * s + coef[k, c]
            rho[c] = acc * wg
        if b < 0:
            for c in range(nc):
                out_row[c] += rho[c]
            continue
        x = E - cshift
        xpow[0] = 1.0
        for q in range(1, nq):
            xpow[q] = xpow[q - 1] * x / q
        for q in range(nq):
            xq = xpow[q]
            for c in range(nc):
                moments[b, q, c] += xq * rho[c]


@njit(cache=True, error_model="numpy")
def _add_full_bin(sb, hw, coef, binom, table, wscale, nq, nc, taylor, moments, b):
    """Closed-form moments of a bin lying inside one piece: with s_b the bin centre and hw = w/(2 ph)
    its half-width in the piece variable s, ρ = Σ_j r_j (s − s_b)^j (Taylor shift of coef) and
    ∫_bin ρ x^q/q! dx = Σ_j r_j hw^j table[j, q], table[j, q] = 2 (w/2)^{q+1}/((j+q+1) q!) for even
    j + q, 0 for odd (x = E − c_b = ph (s − s_b) over [−w/2, w/2])."""
    nn = coef.shape[0]
    for j in range(nn):
        for c in range(nc):
            taylor[j, c] = 0.0
    for k in range(nn):  # r_j = Σ_{k≥j} C(k, j) coef_k s_b^{k−j}
        sp = 1.0
        for j in range(k, -1, -1):
            f = binom[k, j] * sp
            for c in range(nc):
                taylor[j, c] += f * coef[k, c]
            sp *= sb
    hp = wscale
    for j in range(nn):
        for c in range(nc):
            taylor[j, c] *= hp
        hp *= hw
    for q in range(nq):
        for j in range((q % 2), nn, 2):  # only even j + q survive the symmetric bin
            t = table[j, q]
            for c in range(nc):
                moments[b, q, c] += t * taylor[j, c]


@njit(cache=True, error_model="numpy")
def _simplex_moments(sizes, periodic, start, stop, simplex_corners, corner_bits, corner_weight, vertex_index,
                     energy, Q, lo, width, scale, gx, gw, cheb, vinv, moments, underflow):
    """Add the exact bin moments of every simplex of the cells with base index in [start, stop).

    Returns the number of simplices that needed the piecewise quadrature (≥ 0), or −1 − flat of the
    first grid point missing from ``vertex_index``.
    """
    d = sizes.shape[0]
    nv = d + 1
    n_corner = corner_bits.shape[0]
    n_simplex = simplex_corners.shape[0]
    nb = energy.shape[1]
    nc = Q.shape[2]
    nbins, nq, _ = moments.shape
    hi = lo + nbins * width
    n_vertex = vertex_index.shape[0]
    strides = np.empty(d, np.int64)
    strides[d - 1] = 1
    for a in range(d - 2, -1, -1):
        strides[a] = strides[a + 1] * sizes[a + 1]
    cidx = np.empty(d, np.int64)
    corner_local = np.empty(n_corner, np.int64)
    srows = np.empty(nv, np.int64)
    e = np.empty(nv)
    es = np.empty(nv)
    perm = np.empty(nv, np.int64)
    acc = np.empty(nv)
    rho_nodes = np.empty((nv, nc))
    coef = np.empty((nv, nc))
    taylor = np.empty((nv, nc))
    binom = np.zeros((nv, nv))
    for k in range(nv):
        binom[k, 0] = 1.0
        for j in range(1, k + 1):
            binom[k, j] = binom[k - 1, j - 1] + (binom[k - 1, j] if j < k else 0.0)
    table = np.zeros((nv, nq))
    qfact = 1.0
    for q in range(nq):
        if q > 0:
            qfact *= q
        for j in range(nv):
            if (j + q) % 2 == 0:
                table[j, q] = 2.0 * (0.5 * width) ** (q + 1) / ((j + q + 1) * qfact)
    rho = np.empty(nc)
    xpow = np.empty(nq)
    if not (math.isfinite(lo) and math.isfinite(width) and width > 0.0) or moments.shape[2] != nc \
            or Q.shape[0] != energy.shape[0] or Q.shape[1] != nb or underflow.shape[0] != nc:
        raise ValueError("_simplex_moments: bad histogram (origin, width) or mismatched shapes")
    for i in range(energy.shape[0]):  # bin indices come from energies: refuse NaN/inf before any
        for n in range(nb):
            if not math.isfinite(energy[i, n]):
                raise ValueError("_simplex_moments: non-finite band energy")
    for base in range(start, stop):  # check every corner first: fail before touching the outputs
        rem = base
        valid = True
        for a in range(d - 1, -1, -1):
            cidx[a] = rem % sizes[a]
            rem //= sizes[a]
            if not periodic and cidx[a] >= sizes[a] - 1:
                valid = False
        if not valid:
            continue
        for cb in range(n_corner):
            flat = 0
            for a in range(d):
                x = cidx[a] + corner_bits[cb, a]
                if x >= sizes[a]:
                    x -= sizes[a]
                flat += x * strides[a]
            j = np.searchsorted(vertex_index, flat)
            if j >= n_vertex or vertex_index[j] != flat:
                return -1 - flat
    n_done = 0
    for base in range(start, stop):
        rem = base
        valid = True
        for a in range(d - 1, -1, -1):
            cidx[a] = rem % sizes[a]
            rem //= sizes[a]
            if not periodic and cidx[a] >= sizes[a] - 1:
                valid = False  # window grids: no cell past the last point of an axis
        if not valid:
            continue
        for cb in range(n_corner):
            flat = 0
            for a in range(d):
                x = cidx[a] + corner_bits[cb, a]
                if x >= sizes[a]:
                    x -= sizes[a]  # periodic wrap
                flat += x * strides[a]
            corner_local[cb] = np.searchsorted(vertex_index, flat)
        for n in range(nb):
            cmin = energy[corner_local[0], n]
            cmax = cmin
            for cb in range(1, n_corner):
                x_e = energy[corner_local[cb], n]
                cmin = min(cmin, x_e)
                cmax = max(cmax, x_e)
            if cmin >= hi:
                continue  # the whole cell is above the histogram
            if cmax < lo:  # the whole cell is below: ∫_cell Q = V Σ_corner (#simplices ∋ corner)/(d+1) Q
                for cb in range(n_corner):
                    wq = scale * corner_weight[cb]
                    for c in range(nc):
                        underflow[c] += wq * Q[corner_local[cb], n, c]
                continue
            for s in range(n_simplex):
                for v in range(nv):
                    srows[v] = corner_local[simplex_corners[s, v]]
                sort_vertex_energies(energy, srows, n, e, perm)  # perm → simplex vertex
                e0 = e[0]
                if e0 >= hi:
                    continue
                if e0 == e[d] or e[d] < lo:
                    # flat simplex (a point mass at e0) or entirely below the histogram
                    f = scale / nv
                    for c in range(nc):
                        rho[c] = 0.0
                        for v in range(nv):
                            rho[c] += Q[corner_local[simplex_corners[s, v]], n, c]
                        rho[c] *= f
                    pos = (e0 - lo) / width
                    if e[d] < lo or pos < 0.0:
                        for c in range(nc):
                            underflow[c] += rho[c]
                        continue
                    if pos >= nbins:
                        continue
                    b = min(int(pos), nbins - 1)
                    x = e0 - (lo + (b + 0.5) * width)
                    xpow[0] = 1.0
                    for q in range(1, nq):
                        xpow[q] = xpow[q - 1] * x / q
                    for q in range(nq):
                        for c in range(nc):
                            moments[b, q, c] += xpow[q] * rho[c]
                    continue
                n_done += 1
                for v in range(nv):
                    es[v] = e[v] - e0  # shifted energies: relative accuracy for nearly flat simplices
                lo_s = lo - e0
                hi_s = hi - e0
                for m in range(d):
                    A = es[m]
                    B = es[m + 1]
                    if B <= A:
                        continue
                    if A >= hi_s:
                        break
                    pm = 0.5 * (A + B)
                    ph = 0.5 * (B - A)
                    for j in range(nv):  # ρ at the d+1 Chebyshev nodes of the piece (exact cross-section weights)
                        _delta_piece(es, pm + ph * cheb[j], d, m + 1, acc)
                        for c in range(nc):
                            rho_nodes[j, c] = 0.0
                        for v in range(nv):
                            av = acc[v]
                            kv = corner_local[simplex_corners[s, perm[v]]]
                            for c in range(nc):
                                rho_nodes[j, c] += av * Q[kv, n, c]
                    for k in range(nv):  # monomial coefficients in s = (E − pm)/ph
                        for c in range(nc):
                            acc_c = 0.0
                            for j in range(nv):
                                acc_c += vinv[k, j] * rho_nodes[j, c]
                            coef[k, c] = acc_c
                    if A < lo_s:
                        _add_interval(A, min(B, lo_s), pm, ph, coef, gx, gw, scale, 0.0, nq, nc, underflow, rho,
                                      xpow, moments, -1)
                    l0 = max(A, lo_s)
                    r0 = min(B, hi_s)
                    if r0 <= l0:
                        continue
                    b_first = max(int((l0 - lo_s) / width) - 1, 0)
                    b_last = min(int((r0 - lo_s) / width) + 1, nbins - 1)
                    hw = 0.5 * width / ph
                    for b in range(b_first, b_last + 1):
                        # bin edges written exactly as lo_s and hi_s are, so pieces tile without gaps
                        el = (lo + b * width) - e0
                        er = (lo + (b + 1) * width) - e0
                        left = max(A, el)
                        right = min(B, er)
                        if right <= left:
                            continue
                        cshift = (lo + (b + 0.5) * width) - e0
                        if left == el and right == er:  # the whole bin inside the piece: closed form
                            _add_full_bin((cshift - pm) / ph, hw, coef, binom, table, scale, nq, nc, taylor,
                                          moments, b)
                        else:
                            _add_interval(left, right, pm, ph, coef, gx, gw, scale, cshift, nq, nc, underflow,
                                          rho, xpow, moments, b)
    return n_done


def _cell_tables(grid: KGrid):
    """Corner bit table (2^d, d), simplex → corner id (d!, d+1), and (#simplices ∋ corner)/(d+1)."""
    d = grid.dim
    off = simplex_offsets(grid)
    shifts = (1 << np.arange(d - 1, -1, -1)).astype(np.int64)
    corner_bits = ((np.arange(1 << d)[:, None] >> np.arange(d - 1, -1, -1)[None, :]) & 1).astype(np.int64)
    simplex_corners = np.ascontiguousarray((off * shifts).sum(axis=2), dtype=np.int64)
    corner_weight = np.bincount(simplex_corners.ravel(), minlength=1 << d) / (d + 1.0)
    return corner_bits, simplex_corners, corner_weight


def _check_grid(grid: KGrid):
    if grid.kind not in ("periodic", "window"):
        raise ValueError(f"grid.kind must be 'periodic' or 'window', got {grid.kind!r}")
    if not 1 <= grid.dim <= 3:
        raise ValueError(f"linear simplex integration is implemented for 1D–3D grids, got {grid.dim}D")


def _check_range(grid: KGrid, start: int, stop: int) -> tuple[int, int]:
    start, stop = int(start), int(stop)
    if not 0 <= start <= stop <= grid.n_points:
        raise ValueError(f"need 0 <= start <= stop <= {grid.n_points}, got [{start}, {stop})")
    return start, stop


def chunk_vertices(grid: KGrid, start: int, stop: int) -> np.ndarray:
    """Sorted unique flat indices (int64) of all corners of the cells whose base vertex is in [start, stop).

    The base vertex of a cell is its lowest-index corner (offset 0…0). Periodic grids wrap (the
    cells of the last row/plane use points of the first); window grids have no cell whose base lies
    on the last point of any axis. The result is the chunk's own cell bases plus a halo of about one
    row (2D) / plane (3D) beyond ``stop`` (and, periodic, the first row/plane for the last one).
    Memory O(2^d (stop − start)) int64.
    """
    _check_grid(grid)
    start, stop = _check_range(grid, start, stop)
    sizes = np.asarray(grid.sizes, np.int64)
    base = np.unravel_index(np.arange(start, stop, dtype=np.int64), grid.sizes)
    if grid.kind == "window":
        keep = np.all([b < s - 1 for b, s in zip(base, sizes)], axis=0)
        base = tuple(b[keep] for b in base)
    d = grid.dim
    if base[0].size == 0:
        return np.zeros(0, np.int64)
    parts = []
    for corner in itertools.product((0, 1), repeat=d):
        parts.append(np.ravel_multi_index(tuple(b + o for b, o in zip(base, corner)), grid.sizes, mode="wrap"))
    return np.unique(np.concatenate(parts)).astype(np.int64)


def accumulate_simplex_moments(grid: KGrid, start: int, stop: int, vertex_index: np.ndarray, energy: np.ndarray,
                               Q: np.ndarray, lo: float, width: float, moments: np.ndarray,
                               underflow: np.ndarray) -> int:
    """Add the exact energy-bin moments of the linear interpolant of the cells with base index in [start, stop).

    For every simplex σ of those cells (Kuhn split of :func:`simplex_offsets`), every band n and
    every component c, with ε_n and Q_{n,c} linear inside σ (their vertex values):

        moments[b, q, c] += ∫_{lo+b·w}^{lo+(b+1)·w} dE ∫_σ d^dk/(2π)^d δ(E − ε_n(k)) Q_{n,c}(k) (E − c_b)^q / q!
        underflow[c]     += ∫_σ d^dk/(2π)^d θ(lo − ε_n(k)) Q_{n,c}(k)

    c_b = lo + (b + ½)·w, q = 0..n_moments − 1, bands summed — the layout of
    ``spectral.EnergyBins.empty(C)``, so ``spectral.contract`` applies unchanged (the histograms
    then hold the interpolant's spectral distribution instead of point samples). States above
    lo + n_bins·w are dropped. Exact to rounding (piecewise-polynomial ρ_σ(E), see the derivation
    above ``_gauss_nodes``); a flat simplex is a point mass at its energy.

    Arguments:
      vertex_index (M,) int64, sorted ascending: flat indices at which ``energy`` (M, nb) and ``Q``
        (M, nb, C) are given; must contain :func:`chunk_vertices` (grid, start, stop) (a superset
        is fine).
      moments (n_bins, n_moments, C), underflow (C,): float64, C-contiguous, updated in place.
    Every cell has exactly one base vertex, so summing over chunks [start, stop) that partition
    [0, N) counts every cell once. Runs serially in the calling thread (Dask parallelises chunks).
    Returns the number of simplices that needed the piecewise quadrature (the rest were skipped
    above the histogram or added in one go to the underflow).
    """
    _check_grid(grid)
    start, stop = _check_range(grid, start, stop)
    vertex_index = np.ascontiguousarray(vertex_index, dtype=np.int64)
    energy = np.ascontiguousarray(energy, dtype=np.float64)
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    M = vertex_index.shape[0]
    if vertex_index.ndim != 1 or (M > 1 and np.any(np.diff(vertex_index) <= 0)):
        raise ValueError("vertex_index must be a 1D strictly increasing array of flat indices")
    if energy.ndim != 2 or energy.shape[0] != M:
        raise ValueError(f"energy must have shape ({M}, n_bands), got {energy.shape}")
    if Q.ndim != 3 or Q.shape[:2] != energy.shape:
        raise ValueError(f"Q must have shape ({M}, {energy.shape[1]}, n_comp), got {Q.shape}")
    if moments.ndim != 3 or moments.shape[2] != Q.shape[2] or moments.dtype != np.float64 \
            or not moments.flags.c_contiguous:
        raise ValueError(f"moments must be C-contiguous float64 (n_bins, n_moments, {Q.shape[2]}), "
                         f"got {moments.dtype} {moments.shape}")
    if underflow.shape != (Q.shape[2],) or underflow.dtype != np.float64 or not underflow.flags.c_contiguous:
        raise ValueError(f"underflow must be float64 ({Q.shape[2]},), got {underflow.dtype} {underflow.shape}")
    if not (np.isfinite(lo) and np.isfinite(width) and width > 0):
        raise ValueError(f"need finite lo and width > 0, got lo={lo!r}, width={width!r}")
    if not np.all(np.isfinite(energy)):
        raise ValueError("energy contains NaN or inf")
    if stop == start or energy.shape[1] == 0 or moments.shape[0] == 0 or moments.shape[1] == 0:
        return 0
    corner_bits, simplex_corners, corner_weight = _cell_tables(grid)
    gx, gw, cheb, vinv = _gauss_nodes(grid.dim, moments.shape[1])
    scale = grid.weight / factorial(grid.dim)  # simplex volume / (2π)^d
    res = _simplex_moments(np.asarray(grid.sizes, np.int64), grid.kind == "periodic", start, stop, simplex_corners,
                           corner_bits, corner_weight, vertex_index, energy, Q, float(lo), float(width), scale, gx,
                           gw, cheb, vinv, moments, underflow)
    if res < 0:
        raise ValueError(f"grid point {-1 - res} is a cell corner of [{start}, {stop}) but not in vertex_index "
                         "(use chunk_vertices)")
    return int(res)


def zero_temperature(bins_lo: float, width: float, moments: np.ndarray, underflow: np.ndarray, mu,
                     order: int) -> np.ndarray:
    """T = 0 values I[μ, c] = Σ_n ∫ Q_{n,c} f0^{(order)}(ε_n) of the histograms, shape (n_mu, C).

    With ρ_c(E) = Σ_n ∫ δ(E − ε_n) Q_{n,c} (what the moments hold) and spectral.py's convention
    f^{(p)} = ∂^p f0/∂ε^p, at T = 0 (f0 = θ(μ − ε)):
      order 0:  ∫_{−∞}^{μ} ρ_c        (Fermi sea: underflow + bins below μ + part of μ's bin)
      order 1: −ρ_c(μ)                (f0' = −δ(ε − μ))
      order 2: +ρ_c'(μ)               (∫ρ f0'' = −∫ρ' f0' = ρ'(μ))
    Inside μ's bin, ρ is reconstructed as the Legendre projection of degree K = min(n_moments − 1, 3)
    fixed by the bin's moments S_0..S_K (m_j = ∫_bin ρ P_j(2(E − c_b)/w) is a combination of
    the S_i, ρ ≈ Σ_j (2j+1)/w m_j P_j).

    Accuracy. For moments from :func:`accumulate_simplex_moments`, ρ is piecewise polynomial of
    degree ≤ d with breaks only at vertex energies, so the reconstruction is EXACT (to rounding)
    whenever no vertex energy lies inside μ's bin and K ≥ d (n_moments ≥ d + 1). At a vertex energy
    κ the interpolant's ρ is only C^(d−2) (B-spline of degree d with a double knot: ρ'^(d−1) jumps;
    in 1D ρ itself jumps, in 2D ρ' jumps, in 3D ρ''), and with κ inside μ's bin the error of order
    p is O(w^(d−p) · jump) — measured: 2D w², w¹; 3D w³, w², w¹ for p = 0, 1, 2. This is the
    best any linear read-out of bin moments can do (the moments depend smoothly on κ, the exact
    value does not). A tied edge along the level set (equal vertex energies, e.g. mirror-symmetric
    grids) is a jump of ρ: O(w) for p = 0, O(1) for p = 1 at that energy. For a density smooth on
    the scale w (many vertex energies per bin) the projection error is O(w^(K+1)) in ρ, i.e.
    O(w^(K+2)), O(w^(K+1)), O(w^K) for p = 0, 1, 2 plus the sub-bin wiggles of the interpolant.
    Rounding: order 2 loses ~ε·max|S|/w² (10⁻⁹ relative at w ~ 10⁻⁴ of the bandwidth).
    μ must lie in [bins_lo, bins_lo + n_bins·w]; μ on an inner bin edge uses the upper bin.
    """
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
    moments = np.asarray(moments, float)
    underflow = np.asarray(underflow, float)
    n_bins, nq, nc = moments.shape
    mu = np.atleast_1d(np.asarray(mu, float)).ravel()
    hi = bins_lo + n_bins * width
    if np.any(~np.isfinite(mu)) or np.any(mu < bins_lo) or np.any(mu > hi):
        raise ValueError(f"mu must lie inside the histogram [{bins_lo}, {hi}]")
    b = np.minimum(np.floor((mu - bins_lo) / width).astype(np.int64), n_bins - 1)
    t = np.clip(2 * (mu - (bins_lo + (b + 0.5) * width)) / width, -1.0, 1.0)  # position in the bin, [−1, 1]
    K = min(nq - 1, 3)
    rows = np.einsum("ij,jk->ik", _legendre_read_out(t, K, order, width), _legendre_projection(K, width))
    out = np.einsum("ik,ikc->ic", rows, moments[b, :K + 1, :])  # one μ's bin each: O(n_μ K C), no loop over μ
    if order == 0:
        below = np.concatenate([np.zeros((1, nc)), np.cumsum(moments[:, 0, :], axis=0)])  # Σ_{b' < b} S_0[b']
        out += underflow + below[b]
    return out


def _legendre_projection(K: int, width: float) -> np.ndarray:
    """(K+1, K+1) map from a bin's moments S_0..S_K to the Legendre coefficients of ρ in t = 2(E − c_b)/w:
    c_j = (2j+1)/w · m_j, m_j = ∫_bin ρ P_j = Σ_k [t^k of P_j] (2/w)^k k! S_k."""
    leg = np.polynomial.legendre
    proj = np.zeros((K + 1, K + 1))
    for j in range(K + 1):
        pj = leg.leg2poly(np.eye(K + 1)[j])  # monomial coefficients of P_j(t)
        for k in range(pj.size):
            proj[j, k] = (2 * j + 1) / width * pj[k] * (2.0 / width) ** k * math.factorial(k)
    return proj


def _legendre_read_out(t: np.ndarray, K: int, order: int, width: float) -> np.ndarray:
    """(n_μ, K+1) rows: the order-0 (∫_{−1}^{t} ρ · w/2), order-1 (−ρ(t)) or order-2 (ρ'(t) · 2/w) value of the
    Legendre series Σ_j c_j P_j, as a linear map of its coefficients c_0..c_K at every position t."""
    leg = np.polynomial.legendre
    basis = np.eye(K + 1)
    if order == 0:
        series, scale = [leg.legint(e, lbnd=-1.0) for e in basis], width / 2
    elif order == 1:
        series, scale = list(basis), -1.0
    else:
        series, scale = [leg.legder(e) for e in basis], 2.0 / width
    return scale * np.stack([leg.legval(t, c) for c in series], axis=1)


def read_out(bins, moments: np.ndarray, underflow: np.ndarray, mu, kT, order: int) -> np.ndarray:
    """I[μ, T, c] of the histograms for every T: ``spectral.contract`` for T > 0, :func:`zero_temperature` for T = 0."""
    from qgtflow.reduce.spectral import contract

    kT = np.asarray(kT, float)
    out = np.zeros((np.size(mu), kT.size, moments.shape[2]))
    warm = np.flatnonzero(kT > 0)
    if warm.size:
        out[:, warm] = contract(bins, moments, underflow, np.asarray(mu, float), kT[warm], order)
    for t in np.flatnonzero(kT == 0):
        out[:, t] = zero_temperature(bins.lo, bins.width, moments, underflow, mu, order)
    return out
