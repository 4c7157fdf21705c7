"""Linear triangle (2D) / tetrahedron (3D) Brillouin-zone integration, exact in the T = 0 limit.

Band energies ε_n(k) and integrands X_n(k) known on the grid points are replaced by their linear
interpolants on a simplex decomposition of the grid cells; the Fermi-sea and Fermi-surface
integrals of the interpolants are then done exactly:

    ∫ d^dk/(2π)^d θ(E − ε_n(k)) X_n(k) ≈ Σ_{k,n} W^θ[k, n] X[k, n]          (theta_weights)
    ∫ d^dk/(2π)^d δ(E − ε_n(k)) X_n(k) ≈ Σ_{k,n} W^δ[k, n] X[k, n]          (delta_weights)

This is the linear method of Lehmann & Taut, phys. stat. sol. (b) 54, 469 (1972) and
Lambin & Vigneron, PRB 29, 3430 (1984) ("linear interpolation of both energy and integrand"), i.e.
Blöchl, Jepsen & Andersen, PRB 49, 16223 (1994) WITHOUT Blöchl's curvature correction. The weights
are exact (to rounding) whenever ε_n and X_n are linear inside every simplex; for smooth bands the
Fermi-sea (θ) error is O(h²) in the grid step h, and so is the 3D density of states; in 2D the
pointwise DOS error of a curved Fermi line also has an oscillating ~h^{3/2} part (observed).

Decomposition (Freudenthal/Kuhn, the split Blöchl et al. use): every grid cell is cut into d!
simplices of equal volume sharing one main diagonal, simplex π = (0, e_π1, e_π1+e_π2, …, 1…1) for
each permutation π of the axes — 1 segment (1D), 2 triangles (2D), 6 tetrahedra (3D). Of the 2^(d−1)
main diagonals the shortest in k-space is used (as Blöchl et al. recommend); on orthogonal grids
that is the (0…0)–(1…1) one.

Grids (see ``qgtflow.kgrid``):
  - periodic: cells also join the last and the first point of every axis (wrap-around), so the
    simplices tile the whole Brillouin zone and Σ_k W^θ = Σ_k weight = 1/V_cell per band above
    the band top;
  - window (k·p): only cells between existing points are used. The points are cell-centred, so
    the half-cell rim of the window, [−kmax, −kmax + h/2) and (kmax − h/2, kmax], is DROPPED: the
    integration region is the box spanned by the outermost points. Keep the Fermi surface (and
    anything X contributes) away from the window edge.

Conventions at degenerate points: the Fermi sea of a simplex is {ε < E}; a simplex whose vertex
energies all equal E exactly (a flat band at E) counts half occupied in θ (the T → 0 limit of
f0 = 1/2 at ε = μ) and contributes nothing to δ (its true contribution is an infinite spike in E
that no finite weight represents). E exactly at a vertex energy is handled by the case split
(denominators are never zero); W^θ is continuous in E except at such flat simplices. W^δ is
finite everywhere; where it jumps in E (a simplex face lying on the level set, e.g. an edge
with e_1 = e_2 = E in 2D, or a band extremum at a grid point in 1D) its value at the jump is the mean of the left and
right limits, like the T → 0 limit of Fermi smearing.

Bands are integrated independently (band n's energies form its own interpolant; no band sorting
or crossing logic). Cost: delta_weights only does work in the simplices that E crosses (others are
skipped after a min/max test); theta_weights also touches fully occupied simplices (a constant
per vertex). Memory: the result, O(n_E · N · nb) float64 (8 n_E N nb bytes), plus O(1) scratch
per thread and O(nb) bookkeeping — theta/delta_weights are not chunked.

Chunked energy-moment histograms (T → 0 Fermi-surface integration in the reduce stage):
``accumulate_simplex_moments`` fills the bins of ``spectral.EnergyBins`` with the EXACT moments
∫_bin dE ∫ δ(E − ε) Q (E − c_b)^q/q! of the same interpolant (and the underflow below the
histogram), cell by cell for the cells whose base vertex lies in a chunk [start, stop) — the
caller reads the chunk plus a one-plane halo, ``chunk_vertices`` — so ``spectral.contract``
gives finite-T results that converge to the T = 0 interpolant as T → 0 on a fixed grid, and
``zero_temperature`` reads the T = 0 values (θ, −δ, δ') off the moments. Cost per simplex:
O(1) if above the histogram or wholly below it (added to the underflow per cell), else
O(d² C) for the piece polynomials plus O((d + n_moments) C) per bin it spans.
"""

from __future__ import annotations

import itertools
import math
from math import factorial

import numpy as np
from numba import njit, prange

from qgtflow.kgrid import KGrid

_MODE_THETA = 0
_MODE_DELTA = 1


# ----------------------------------------------------------------------------- numba kernels


@njit(cache=True, error_model="numpy")
def _det(m, n):
    """Determinant of m[:n, :n] by Gaussian elimination with partial pivoting (overwrites m)."""
    det = 1.0
    for c in range(n):
        p = c
        best = abs(m[c, c])
        for r in range(c + 1, n):
            if abs(m[r, c]) > best:
                best = abs(m[r, c])
                p = r
        if best == 0.0:
            return 0.0
        if p != c:
            for j in range(n):
                tmp = m[c, j]
                m[c, j] = m[p, j]
                m[p, j] = tmp
            det = -det
        det *= m[c, c]
        for r in range(c + 1, n):
            f = m[r, c] / m[c, c]
            for j in range(c + 1, n):
                m[r, j] -= f * m[c, j]
    return det


@njit(cache=True, error_model="numpy")
def _unit(pts, row, i, nv):
    """Barycentric row ``row`` of ``pts`` := vertex i."""
    for c in range(nv):
        pts[row, c] = 0.0
    pts[row, i] = 1.0


@njit(cache=True, error_model="numpy")
def _cut(pts, row, e, E, i, j, nv):
    """Barycentric row := the point of edge i→j where the linear ε equals E (e[i] ≠ e[j])."""
    t = (E - e[i]) / (e[j] - e[i])  # linear interpolation along the edge (Lambin & Vigneron 1984)
    for c in range(nv):
        pts[row, c] = 0.0
    pts[row, i] = 1.0 - t
    pts[row, j] = t


@njit(cache=True, error_model="numpy")
def _volume(pts, idx, nv, mat):
    """Volume of the sub-simplex with barycentric vertices pts[idx[:nv]], in units of the simplex.

    The barycentric map sends the simplex to the standard one, so the ratio is |det B| of the
    (d+1)×(d+1) matrix of barycentric rows (affine invariance of volume ratios).
    """
    for r in range(nv):
        for c in range(nv):
            mat[r, c] = pts[idx[r], c]
    return abs(_det(mat, nv))


@njit(cache=True, error_model="numpy")
def _add_sub(pts, idx, nv, factor, acc, mat):
    """acc += factor·vol/(d+1) · Σ_rows: ∫ of a linear X over a simplex = volume × vertex mean."""
    f = factor * _volume(pts, idx, nv, mat) / nv
    for r in range(nv):
        for c in range(nv):
            acc[c] += f * pts[idx[r], c]


@njit(cache=True, error_model="numpy")
def _theta_simplex(e, E, d, pts, idx, mat, acc):
    """Vertex weights of ∫_simplex θ(E − ε) X, in units of the simplex volume, e sorted ascending.

    Lehmann & Taut (1972) / Blöchl et al. PRB 49, 16223 (1994) without the curvature
    correction (same weights), here derived by cutting the occupied polytope {ε < E} into sub-simplices
    whose vertices lie on vertices/edges of the simplex; X is linear, so each sub-simplex gives
    volume × (mean of its vertices' barycentric rows).
    """
    nv = d + 1
    for c in range(nv):
        acc[c] = 0.0
    m = 0  # number of vertices strictly below E
    for c in range(nv):
        if e[c] < E:
            m += 1
    if m == 0:
        if e[d] == E:  # flat simplex exactly at E: half occupied (f0(μ) = 1/2)
            for c in range(nv):
                acc[c] = 0.5 / nv
        return
    if m == nv:
        for c in range(nv):
            acc[c] = 1.0 / nv
        return
    if m == 1:
        # occupied corner at vertex 0: e0 < E ≤ e1 ≤ …, cuts on edges 0→j (all e[j] > e[0])
        _unit(pts, 0, 0, nv)
        for j in range(1, nv):
            _cut(pts, j, e, E, 0, j, nv)
            idx[j] = j
        idx[0] = 0
        _add_sub(pts, idx, nv, 1.0, acc, mat)
        return
    if m == d:
        # all but the top vertex occupied: full simplex minus the empty corner at vertex d
        for c in range(nv):
            acc[c] = 1.0 / nv
        _unit(pts, 0, d, nv)
        idx[0] = 0
        for j in range(d):
            _cut(pts, j + 1, e, E, d, j, nv)
            idx[j + 1] = j + 1
        _add_sub(pts, idx, nv, -1.0, acc, mat)
        return
    # d = 3, m = 2 (e0 ≤ e1 < E ≤ e2 ≤ e3): the occupied part is a wedge with triangles
    # (v0, P02, P03) and (v1, P12, P13) joined by the edges v0v1, P02P12, P03P13; all its faces are
    # planar, so it splits into the 3 tetrahedra of a triangular prism.
    _unit(pts, 0, 0, nv)
    _cut(pts, 1, e, E, 0, 2, nv)
    _cut(pts, 2, e, E, 0, 3, nv)
    _unit(pts, 3, 1, nv)
    _cut(pts, 4, e, E, 1, 2, nv)
    _cut(pts, 5, e, E, 1, 3, nv)
    for first in range(3):  # (0,1,2,3), (1,2,3,4), (2,3,4,5)
        for r in range(4):
            idx[r] = first + r
        _add_sub(pts, idx, nv, 1.0, acc, mat)


@njit(cache=True, error_model="numpy")
def _cone_add(pts, idx, nv, inv_dist, acc, mat):
    """Add a piece of the Fermi-surface cross-section: pts[idx[1:nv]] (a (d−1)-simplex S), apex pts[idx[0]].

    ∫_S X dS/|∇ε| = (area(S)/|∇ε|) · mean_S X, and area(S)/|∇ε| = d·vol(cone)/|E − e_apex| (the
    cone from a vertex at energy e_apex over S has height |E − e_apex|/|∇ε|), so the vertex weights
    (per simplex volume, per energy) are vol(cone)/|E − e_apex| · Σ_{r∈S} B_r.
    """
    f = _volume(pts, idx, nv, mat) * inv_dist
    for r in range(1, nv):
        for c in range(nv):
            acc[c] += f * pts[idx[r], c]


@njit(cache=True, error_model="numpy")
def _delta_simplex(e, E, d, pts, idx, mat, acc):
    """Vertex weights of ∫_simplex δ(E − ε) X, in units of simplex volume per energy, e sorted.

    Lambin & Vigneron, PRB 29, 3430 (1984) / Blöchl et al. PRB 49, 16223 (1994) (dθ/dE, no
    curvature correction): the cross-section ε = E is a point (1D), a segment (2D) or a
    triangle/quadrilateral (3D) with vertices on the simplex edges; X is linear on it.
    The section moves continuously for e_0 < E < e_d; at E = e_0 or E = e_d it may be a whole
    face of the simplex (tied vertex energies) or a vertex, and the one-sided limit there is
    halved, so a face or vertex shared with the neighbouring simplex counts ½(left + right).
    """
    nv = d + 1
    for c in range(nv):
        acc[c] = 0.0
    if E < e[0] or E > e[d] or e[0] == e[d]:
        return
    m = 0
    if E == e[0]:  # right limit: tied lowest vertices count as below
        for c in range(nv):
            if e[c] <= E:
                m += 1
    else:  # interior, or left limit at E = e_d
        for c in range(nv):
            if e[c] < E:
                m += 1
    # apex: the extreme vertex farther from the level set (|E − e_apex| ≥ (e_d − e_0)/2 > 0)
    apex = 0 if (E - e[0]) >= (e[d] - E) else d
    inv_dist = 1.0 / abs(E - e[apex])
    if E == e[0] or E == e[d]:
        inv_dist *= 0.5
    _unit(pts, 0, apex, nv)
    idx[0] = 0
    if m == 1:
        for j in range(1, nv):  # section vertices on edges 0→j
            _cut(pts, j, e, E, 0, j, nv)
            idx[j] = j
        _cone_add(pts, idx, nv, inv_dist, acc, mat)
        return
    if m == d:
        for j in range(d):  # section vertices on edges d→j
            _cut(pts, j + 1, e, E, d, j, nv)
            idx[j + 1] = j + 1
        _cone_add(pts, idx, nv, inv_dist, acc, mat)
        return
    # d = 3, m = 2: quadrilateral P02, P03, P13, P12 (cyclic: consecutive ones share a face),
    # split along the diagonal P02–P13 into two triangles.
    _cut(pts, 1, e, E, 0, 2, nv)
    _cut(pts, 2, e, E, 0, 3, nv)
    _cut(pts, 3, e, E, 1, 3, nv)
    _cut(pts, 4, e, E, 1, 2, nv)
    idx[1] = 1
    idx[2] = 2
    idx[3] = 3
    _cone_add(pts, idx, nv, inv_dist, acc, mat)
    idx[2] = 3
    idx[3] = 4
    _cone_add(pts, idx, nv, inv_dist, acc, mat)


@njit(cache=True, error_model="numpy")
def _sort_vertex_energies(energy, rows, n, e, perm):
    """Insertion sort of band n's energies at the simplex vertices: e ascending, perm[j] = vertex of e[j]
    (``rows[v]``: row of vertex v in ``energy``)."""
    for v in range(rows.shape[0]):
        x_e = energy[rows[v], n]
        j = v
        while j > 0 and e[j - 1] > x_e:
            e[j] = e[j - 1]
            perm[j] = perm[j - 1]
            j -= 1
        e[j] = x_e
        perm[j] = v


@njit(parallel=True, cache=True, error_model="numpy")
def _accumulate(energy, energies_E, sizes, cells, offsets, rows, active, mode, out):
    """out[iE, k, n] += simplex weights (units of simplex volume) for the cells with first index in ``rows``.

    Rows are processed in parallel; a row c0 writes only points with first index c0 and c0+1
    (mod N0), so the caller passes rows that never share points.
    """
    d = sizes.shape[0]
    nv = d + 1
    n_simplex = offsets.shape[0]
    nb = energy.shape[1]
    n_e = energies_E.shape[0]
    strides = np.empty(d, np.int64)
    strides[d - 1] = 1
    for a in range(d - 2, -1, -1):
        strides[a] = strides[a + 1] * sizes[a + 1]
    n_inner = 1
    for a in range(1, d):
        n_inner *= cells[a]
    full = 1.0 / nv
    for ri in prange(rows.shape[0]):
        cidx = np.empty(d, np.int64)
        vidx = np.empty(nv, np.int64)
        e = np.empty(nv)
        perm = np.empty(nv, np.int64)
        pts = np.empty((8, nv))
        idx = np.empty(nv, np.int64)
        mat = np.empty((nv, nv))
        acc = np.empty(nv)
        cidx[0] = rows[ri]
        for r in range(n_inner):
            rem = r
            for a in range(d - 1, 0, -1):
                cidx[a] = rem % cells[a]
                rem //= cells[a]
            for s in range(n_simplex):
                for v in range(nv):
                    flat = 0
                    for a in range(d):
                        x = cidx[a] + offsets[s, v, a]
                        if x >= sizes[a]:
                            x -= sizes[a]  # periodic wrap (window grids never reach it)
                        flat += x * strides[a]
                    vidx[v] = flat
                for n in range(nb):
                    if not active[n]:
                        continue
                    lo = energy[vidx[0], n]
                    hi = lo
                    for v in range(1, nv):
                        x_e = energy[vidx[v], n]
                        if x_e < lo:
                            lo = x_e
                        if x_e > hi:
                            hi = x_e
                    is_sorted = False
                    for iE in range(n_e):
                        E = energies_E[iE]
                        if mode == 1:
                            if E < lo or E > hi or lo == hi:
                                continue  # not crossed (or flat): no work
                        else:
                            if E < lo:
                                continue
                            if E > hi:
                                for v in range(nv):
                                    out[iE, vidx[v], n] += full
                                continue
                        if not is_sorted:
                            _sort_vertex_energies(energy, vidx, n, e, perm)
                            is_sorted = True
                        if mode == 1:
                            _delta_simplex(e, E, d, pts, idx, mat, acc)
                        else:
                            _theta_simplex(e, E, d, pts, idx, mat, acc)
                        for v in range(nv):
                            out[iE, vidx[perm[v]], n] += acc[v]


# ----------------------------------------------------------------------------- Python driver


def simplex_offsets(grid: KGrid) -> np.ndarray:
    """Corner offsets (d!, d+1, d) of the d! simplices of one cell (Kuhn split, shortest diagonal).

    The simplices share the main diagonal (0…0)–(1…1) of the cell after reflecting the flagged
    axes (offset o → 1 − o); the diagonal kept is the shortest of the 2^(d−1) in k-space
    (Blöchl et al., PRB 49, 16223 (1994)), ties keeping the unreflected one.
    """
    d = grid.dim
    steps = np.asarray(grid.basis, float) / np.asarray(grid.sizes, float)[:, None]
    best_flip, best_len = (0,) * d, None
    for flip in itertools.product((0, 1), repeat=d - 1):
        flip = (0,) + flip
        diag = sum((-1.0 if f else 1.0) * steps[a] for a, f in enumerate(flip))
        length = float(np.linalg.norm(diag))
        if best_len is None or length < best_len * (1 - 1e-9):
            best_flip, best_len = flip, length
    simplices = []
    for order in itertools.permutations(range(d)):
        corner = np.zeros(d, np.int64)
        verts = [corner.copy()]
        for a in order:
            corner[a] = 1
            verts.append(corner.copy())
        simplices.append(verts)
    off = np.array(simplices, np.int64)
    for a, f in enumerate(best_flip):
        if f:
            off[..., a] = 1 - off[..., a]
    return off


def _row_phases(n_rows: int, periodic: bool) -> list[np.ndarray]:
    """Groups of cell rows (first cell index) whose cells share no grid point (parallel-safe)."""
    even = np.arange(0, n_rows, 2, dtype=np.int64)
    odd = np.arange(1, n_rows, 2, dtype=np.int64)
    phases = [even, odd]
    if periodic and n_rows > 1 and n_rows % 2 == 1:  # last row wraps onto row 0's points
        phases = [even[:-1], odd, even[-1:]]
    return [p for p in phases if p.size]


def _weights(energy, grid: KGrid, E, mode: int) -> np.ndarray:
    if grid.kind not in ("periodic", "window"):
        raise ValueError(f"grid.kind must be 'periodic' or 'window', got {grid.kind!r}")
    d = grid.dim
    if not 1 <= d <= 3:
        raise ValueError(f"linear simplex integration is implemented for 1D–3D grids, got {d}D")
    energy = np.ascontiguousarray(energy, dtype=np.float64)
    if energy.ndim == 1:
        raise ValueError("energy must have shape (n_points, n_bands); use energy[:, None] for one band")
    if energy.ndim != 2 or energy.shape[0] != grid.n_points:
        raise ValueError(f"energy must have shape ({grid.n_points}, n_bands), got {energy.shape}")
    if not np.all(np.isfinite(energy)):
        raise ValueError("energy contains NaN or inf")
    scalar = np.ndim(E) == 0
    e_values = np.atleast_1d(np.asarray(E, dtype=np.float64)).ravel()
    if not np.all(np.isfinite(e_values)):
        raise ValueError(f"E must be finite, got {E!r}")
    nb = energy.shape[1]
    out = np.zeros((e_values.size, grid.n_points, nb))
    sizes = np.asarray(grid.sizes, np.int64)
    periodic = grid.kind == "periodic"
    cells = sizes.copy() if periodic else sizes - 1
    if energy.size and np.all(cells > 0) and e_values.size:
        offsets = simplex_offsets(grid)
        if mode == _MODE_DELTA:
            lo, hi = energy.min(axis=0), energy.max(axis=0)
            active = np.any((e_values[:, None] >= lo) & (e_values[:, None] <= hi), axis=0) & (lo < hi)
        else:
            active = np.ones(nb, dtype=np.bool_)
        for rows in _row_phases(int(cells[0]), periodic):
            _accumulate(energy, e_values, sizes, cells, offsets, rows, active, mode, out)
        out *= grid.weight / factorial(d)  # simplex volume = cell volume / d!
    return out[0] if scalar else out


def theta_weights(energy: np.ndarray, grid: KGrid, E: float | np.ndarray) -> np.ndarray:
    """Weights W with Σ_{k,n} W[k,n] X[k,n] = ∫ d^dk/(2π)^d θ(E − ε_n(k)) X_n(k) (Fermi sea, T = 0).

    ``energy`` is (N, nb) on the flat C-order grid; the result is (N, nb) for a scalar ``E`` and
    (len(E), N, nb) for an array. Exact for ε, X linear in every simplex (linear tetrahedron
    method, Blöchl, Jepsen, Andersen PRB 49, 16223 (1994) without the curvature correction).
    Window grids drop the half-cell rim outside the outermost points (see the module docstring).
    A simplex whose energies all equal E counts half occupied. Memory O(len(E)·N·nb).
    """
    return _weights(energy, grid, E, _MODE_THETA)


def delta_weights(energy: np.ndarray, grid: KGrid, E: float | np.ndarray) -> np.ndarray:
    """Weights W with Σ_{k,n} W[k,n] X[k,n] = ∫ d^dk/(2π)^d δ(E − ε_n(k)) X_n(k) (Fermi surface).

    Shapes as in :func:`theta_weights`; W = ∂W^θ/∂E. Exact for ε, X linear in every simplex
    (Lambin & Vigneron, PRB 29, 3430 (1984); Blöchl et al. PRB 49, 16223 (1994), no curvature
    correction). Only simplices that E crosses are worked on. A simplex whose energies all equal E
    contributes zero (its δ is not a finite weight). Window grids drop the half-cell rim.
    Memory O(len(E)·N·nb).
    """
    return _weights(energy, grid, E, _MODE_DELTA)


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
                _sort_vertex_energies(energy, srows, n, e, perm)  # perm → simplex vertex
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
    leg = np.polynomial.legendre
    out = np.zeros((mu.size, nc))
    below = np.concatenate([np.zeros((1, nc)), np.cumsum(moments[:, 0, :], axis=0)])  # Σ_{b' < b} S_0[b']
    for i in range(mu.size):
        S = moments[b[i]]  # (nq, nc)
        coef = np.zeros((K + 1, nc))  # Legendre coefficients of ρ in t
        for j in range(K + 1):
            pj = leg.leg2poly(np.eye(K + 1)[j])  # monomial coefficients of P_j(t)
            m_j = sum(pj[k] * (2.0 / width) ** k * math.factorial(k) * S[k] for k in range(pj.size))
            coef[j] = (2 * j + 1) / width * m_j
        if order == 0:
            part = leg.legval(t[i], leg.legint(coef, lbnd=-1.0)) * (width / 2)
            out[i] = underflow + below[b[i]] + part
        elif order == 1:
            out[i] = -leg.legval(t[i], coef)
        else:
            out[i] = leg.legval(t[i], leg.legder(coef)) * (2.0 / width)
    return out
