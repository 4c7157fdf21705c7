"""Quantum-metric quadrupole ∂_c∂_e g^ab with the Wannier position operator (derivation: docs/position-quadrupole.md).

Pure functions of a chunk's compact derivatives of H (``Hu`` (N, U, n, n)) and of the basis connection A^W
(``Au`` (N, d, U, n, n), ``models/position.py``); no I/O, no Dask. Batched NumPy products for every band count
(the per-k and batched eigenbasis paths of the core fields share this one implementation).

Method. With the covariant derivative ∇_a X = ∂_a X − i[A^W_a, X] (a derivation, Tr ∇X = ∂ Tr X) the group metric
is g^ab_D = ½ Tr[∇_aP ∇_bP] (P the group projector; ∇_aP = D_aP of ``position.py``), so (000 Eq. 15 with ∂ → ∇)

    ∂_e∂_c g^ab_D = ½ Tr[∇_e∇_c∇_aP ∇_bP + ∇_c∇_aP ∇_e∇_bP + ∇_e∇_aP ∇_c∇_bP + ∇_aP ∇_e∇_c∇_bP]

(derivatives in the written order: ∇_c∇_a ≠ ∇_a∇_c). The ordered covariant derivatives of P follow from
[H, P] = 0 and P² = P by the Leibniz rule, with the covariant derivatives 𝒱^a = ∇_aH, 𝒲^{ca} = ∇_c∇_aH,
𝒳^{eca} = ∇_e∇_c∇_aH in place of ∂H: the DD̄ block of each from the commutator (divided by ε̄_D − ε̄_j),
the DD and D̄D̄ blocks from P² = P (Gram products), so only differences of group-mean energies of different
groups are divided by (degenerate-safe, gauge-covariant; A^W = 0 gives ``projector.py``'s field).
Every block is held as one n×n matrix whose row r is row r of the block of r's group D(r) (S the same-group
mask); a band's value is its group's sum over rows divided by the group size, as in ``kernels.py``.
"""

from __future__ import annotations

import numpy as np

from qgtflow.geometry.groups import group_labels
from qgtflow.models.derivatives import index_maps

BATCH = 64  # k-points per batched product (memory ~ 4 d³ × BATCH × n² complex)


def _comm(x, y):
    return x @ y - y @ x


def _herm(x):
    return np.conj(np.swapaxes(x, -1, -2))


def _row_trace(x, y):
    """Per row r: Σ_j x_rj y_jr, (B, n)."""
    return np.einsum("brj,bjr->br", x, y)


def _row_overlap(x, y):
    """Per row r: 2 Re Σ_j x_rj conj(y_rj) (Tr[X Y] over the DD̄ and D̄D blocks of two Hermitian matrices)."""
    return 2.0 * (x * np.conj(y)).real.sum(axis=2)


class _Frame:
    """One batch of k-points in its eigenbasis: group masks, energy denominators and the rotated derivatives."""

    def __init__(self, Hu, Au, d, threshold):
        i1, i2, i3 = index_maps(d)
        E, U = np.linalg.eigh(Hu[:, 0])
        Ud = _herm(U)
        grp = group_labels(E, threshold)
        same = grp[:, :, None] == grp[:, None, :]
        self.size = same.sum(axis=2)
        ebar = np.einsum("bij,bj->bi", same, E) / self.size
        self.S = same.astype(float)
        self.X = np.where(same, 0.0, 1.0 / np.where(same, 1.0, ebar[:, :, None] - ebar[:, None, :]))
        self.delta = ebar[:, None, :] - ebar[:, :, None]  # [M, H̄]_ij = M_ij (ε̄_j − ε̄_i)

        def rot(m):
            return Ud @ m @ U

        self.V = [rot(Hu[:, i1[a]]) for a in range(d)]
        self.W = {(c, a): rot(Hu[:, i2[c, a]]) for c in range(d) for a in range(d)}
        self.T = {(e, c, a): rot(Hu[:, i3[e, c, a]]) for e in range(d) for c in range(e + 1) for a in range(d)}
        self.A = [rot(Au[:, a, 0]) for a in range(d)]
        self.dA = [[rot(Au[:, a, i1[c]]) for c in range(d)] for a in range(d)]  # dA[a][c] = U† ∂_c A_a U
        self.d2A = {(a, e, c): rot(Au[:, a, i2[e, c]]) for a in range(d) for e in range(d) for c in range(e + 1)}


def _covariant_hamiltonian(f: _Frame, d: int):
    """𝒱^a = ∇_aH, 𝒲^{ca} = ∇_c∇_aH (all ordered pairs), 𝒳^{eca} = ∇_e∇_c∇_aH (c ≤ e) in the eigenbasis, with
    the group-mean H̄ in the commutators ([M, H̄] = M ∘ Δ)."""
    A, dA, V, W, dl = f.A, f.dA, f.V, f.W, f.delta
    cv = [V[a] - 1j * A[a] * dl for a in range(d)]
    cw = {(c, a): W[c, a] - 1j * dA[a][c] * dl - 1j * _comm(A[a], V[c]) - 1j * _comm(A[c], V[a])
          - _comm(A[c], A[a] * dl) for c in range(d) for a in range(d)}
    cx = {}
    for (e, c, a), t in f.T.items():
        de_w = (t - 1j * f.d2A[a, e, c] * dl - 1j * _comm(dA[a][c], V[e]) - 1j * _comm(dA[a][e], V[c])
                - 1j * _comm(A[a], W[e, c]) - 1j * _comm(dA[c][e], V[a]) - 1j * _comm(A[c], W[e, a])
                - _comm(dA[c][e], A[a] * dl) - _comm(A[c], dA[a][e] * dl) - _comm(A[c], _comm(A[a], V[e])))
        cx[e, c, a] = de_w - 1j * _comm(A[e], cw[c, a])
    return cv, cw, cx


def _batch(Hu, Au, d, threshold):
    f = _Frame(Hu, Au, d, threshold)
    S, X = f.S, f.X
    cv, cw, cx = _covariant_hamiltonian(f, d)
    D1 = [v * X for v in cv]  # (∇_aP)_{DD̄} rows
    D1h = [_herm(x) for x in D1]
    G = {(x, y): (D1[x] @ D1h[y]) * S for x in range(d) for y in range(d)}  # Gram 𝔇^x 𝔇^y† on D×D

    def comm_first(m, a):
        """[M, ∇_aP], DD̄ rows (unmasked)."""
        return (m * S) @ D1[a] - D1[a] @ m

    # ∇_c∇_aP: DD̄ rows, DD block (D̄D̄ = 𝔇^c†𝔇^a + 𝔇^a†𝔇^c implicit)
    Y2 = {(c, a): X * (cw[c, a] - comm_first(cv[c], a) - comm_first(cv[a], c)) for c in range(d) for a in range(d)}
    DD2 = {(c, a): -(G[c, a] + G[a, c]) for c in range(d) for a in range(d)}

    def comm_second(m, p):
        """[M, ∇_x∇_yP], DD̄ rows (unmasked), p = (x, y)."""
        x, y = p
        md = m @ D1h[x] * S @ D1[y] + m @ D1h[y] * S @ D1[x]  # through the D̄D̄ block
        return (m * S) @ Y2[p] + md - DD2[p] @ m - Y2[p] @ m

    Y3 = {}
    for (e, c, a), t in cx.items():
        rhs = (t - comm_first(cw[e, c], a) - comm_first(cw[e, a], c) - comm_first(cw[c, a], e)
               - comm_second(cv[e], (c, a)) - comm_second(cv[c], (e, a)) - comm_second(cv[a], (e, c)))
        Y3[e, c, a] = X * rhs

    def second_pair(p, q):
        """Per row: Tr[∇∇_pP ∇∇_qP] (DD, DD̄ + D̄D and D̄D̄ blocks)."""
        dbar = sum(_row_trace(G[p1, q0], G[q1, p0]) for p0, p1 in (p, p[::-1]) for q0, q1 in (q, q[::-1]))
        return (_row_trace(DD2[p], DD2[q]) + dbar).real + _row_overlap(Y2[p], Y2[q])

    B, n = Hu.shape[0], Hu.shape[2]
    quad = np.empty((B, n, d, d, d, d))
    for e in range(d):
        for c in range(e + 1):
            for a in range(d):
                for b in range(a, d):
                    v = 0.5 * (_row_overlap(Y3[e, c, a], D1[b]) + second_pair((c, a), (e, b))
                               + second_pair((e, a), (c, b)) + _row_overlap(Y3[e, c, b], D1[a]))
                    quad[:, :, a, b, c, e] = quad[:, :, b, a, c, e] = v
                    quad[:, :, a, b, e, c] = quad[:, :, b, a, e, c] = v
    avg = S / f.size[:, :, None]  # band value = group trace / group size
    return np.einsum("kij,kj...->ki...", avg, quad)


def quadrupole_with_position(Hu: np.ndarray, Au: np.ndarray, dim: int, threshold: float) -> np.ndarray:
    """∂_c∂_e g^ab per band with the basis connection A^W: (N, n, d, d, d, d) [a, b, c, e] (the layout of
    ``projector.py``'s quantum_metric_quadrupole_density)."""
    N, n = Hu.shape[0], Hu.shape[2]
    out = np.empty((N, n) + (dim,) * 4)
    for lo in range(0, N, BATCH):
        hi = min(N, lo + BATCH)
        out[lo:hi] = _batch(Hu[lo:hi], Au[lo:hi], dim, threshold)
    return out
