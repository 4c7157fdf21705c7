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

The chunked energy-moment histograms of the same interpolant (the reduce stage's T → 0 integration) are
in :mod:`qgtflow.reduce.simplex_moments`.
"""

from __future__ import annotations

import itertools
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
def sort_vertex_energies(energy, rows, n, e, perm):
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
                            sort_vertex_energies(energy, vidx, n, e, perm)
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
