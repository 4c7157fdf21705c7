"""Skew-scattering Pockels effect (004 Eq. 6) with the third-order Born skew rate (AMBIGUITIES 004.5).

Physics
-------
Rate from k′ to k (AMBIGUITIES 004.5; Sinitsyn 2007), intravalley (each sector of a
:class:`~qgtflow.models.sectors.SectorModel` on its own, sectors then summed with ``model.weights``):

    w^A_{kk′} = C δ(ε_k − ε_k′) Σ_{k″} δ(ε_k″ − ε_k) Im[⟨u_k|u_k′⟩⟨u_k′|u_k″⟩⟨u_k″|u_k⟩],
    C = −(4π²/ħ) n_i V0³,

Σ_k = ∫d^dk/(2π)^d. The product of overlaps is Tr[P_k P_k′ P_k″] with band projectors P (gauge
invariant). With the *energy-shell matrices* (n×n, one per sector, summed over the sector's bands)

    X(E) = Σ_k Σ_n δ(ε_kn − E) x_n(k) P_kn,    B = X[x=1], V_a = X[v_a], M_ab = X[∂_a∂_b ε], W_ab = X[v_a v_b]

(v = ∂ε/∂k), w^A_{kk′} = C δ(ε_k − ε_k′) Im Tr[P_k P_k′ B(ε_k)]. Antisymmetry w^A_{k′k} = −w^A_{kk′} follows
from Tr[P_k P_k′ B]* = Tr[P_k′ P_k B], and Σ_{k′} w^A_{k′k} = C Im Tr[B P_k B] = 0 (checked numerically by
:func:`skew_rate_sums`).

004 Eq. 6 (ħ = 1 below):

    S^(1)_{αβγ} = −Σ_k ∂_αε ∂_β G_γ(k),  G_γ(k) = Σ_k′ w^A_{kk′} ∂_γ f0(k′) = Σ_k′ w^A_{kk′} f0′(ε_k′) v_γ(k′),
    S^(2)_{αβγ} = −Σ_k ∂_αε Σ_k′ w^A_{kk′} ∂_β∂_γ f0(k′),  ∂_β∂_γ f0 = f0″ v_β v_γ + f0′ ∂_β∂_γ ε.

S^(1): integrate by parts in k (G is localised at the Fermi surface, no boundary term):
S^(1) = +Σ_k ∂_α∂_βε G_γ(k). Insert 1 = ∫dE δ(ε_k′ − E); the rate's δ(ε_k − ε_k′) puts k on the same
shell, and the sums over k and k′ become shell matrices:

    S^(1)_{αβγ} = +C ∫dE f0′(E) Im Tr[M_αβ(E) V_γ(E) B(E)],
    S^(2)_{αβγ} = −C ∫dE { f0″(E) Im Tr[V_α W_βγ B] + f0′(E) Im Tr[V_α M_βγ B] }.

(The trace order is the one of Tr[P_k P_k′ B]: the *outer* sum (over k, carrying the α index and, for S^(1),
∂_α∂_βε) first, the inner one (k′) second.) At T = 0, f0′ = −δ(E − μ) and ∫ f0″ g = +g′(μ):

    S^(1) = −C Im Tr[M_αβ V_γ B](μ),
    S^(2) = −C { d/dE Im Tr[V_α W_βγ B]|_μ − Im Tr[V_α M_βγ B](μ) },

and at any T, by parts, S^(2) = −C ∫dE f0′(E) { Im Tr[V_α M_βγ B] − d/dE Im Tr[V_α W_βγ B] },

with the exact energy derivative of the traces: product rule over the three shell matrices, and for each the
derivative of a shell integral as a shell integral (coarea formula: the level set ε = E moves with velocity
∇ε/|∇ε|², so d/dE ∫δ(ε − E) F = ∫δ(ε − E) ∇·(F v/|v|²)):

    X′(E) = Σ_k Σ_n δ(ε_kn − E) [∇·(x_n s_n) P_kn + x_n (s_n·∇)P_kn],  s = v/|v|²,
    ∇·s = Tr ∂²ε/|v|² − 2 v·∂²ε·v/|v|⁴,  ∂_a x from ∂_a v_b = ∂_a∂_b ε,
    (s·∇)P_n = |c_n⟩⟨u_n| + |u_n⟩⟨c_n|,  c_n = Σ_a s_a Σ_{m∉g(n)} |u_m⟩⟨u_m|∂_aH|u_n⟩/(ε_n − ε_m).

One shell at μ, no energy step: the integrands are smooth, so S^(2) converges with the grid like S^(1)
(a slope fitted to shell traces at nearby energies, or the E-derivative of the linear-triangle δ weights,
inherits the interpolant's oscillating energy dependence; tests/test_skew.py). Needs v ≠ 0 on the shell.

Finite T: trapezoid rule on a uniform energy grid μ ± ``window``·k_BT (f0′ from occupation.py).

Two independent implementations:

* ``method="factorised"`` (production, O(N_k)): shell matrices per energy, traces of 3 matrices.
* ``method="pairs"``: explicit pair sums over shell vertices i, j (grid points with nonzero δ weight W):
  G_i[y] = Σ_j W_j w_ij y_j with w_ij = Im[⟨u_i|u_j⟩⟨u_j|B|u_i⟩], in (i-block, j-block) tiles of a numba
  kernel (memory O(tile·n)), tiles run in-process or on a Dask ``distributed.Client``; then
  Im Tr[X Y B] = Σ_i W_i x_i G_i[y]. This is the O(N_F²) route and also gives Σ_j w^A_ji W_j per vertex.

Energy-shell weights: :func:`qgtflow.reduce.tetrahedron.delta_weights` (linear triangle/tetrahedron
method); eigenvectors are computed only at k-points with nonzero weight.

Degenerate bands (AMBIGUITIES "General"): bands whose energies differ by less than ``deg_tol`` at a k-point
form a group; v and ∂²ε are group averages (∂²ε with the sum over states *outside* the group), and every
member is a shell vertex carrying the group's v, ∂²ε. Because Tr[P_k P_k′ B] is linear in each projector,
the sum over members equals the trace with the group projector P_g = Σ_{m∈g} |m⟩⟨m|: U(N_g)-gauge invariant.

Units (model units, ħ = 1 internally; energies eV, k nm⁻¹, n_i nm⁻², V0 eV·nm^d for the SI helpers):
C = −4π² n_i V0³ [eV³ nm^(2d)]; B [nm^-d eV^-1], V_a [nm^(1−d)], M_ab [nm^(2−d)], W_ab [eV nm^(2−d)];
S^(1), S^(2) are returned in eV²·nm^(3−d) (eV²·nm for d = 2). The physical tensor of 004 Eq. 6 is
S_phys = S / ħ² (nm/s² for d = 2, ħ in eV·s): see :func:`skew_tensors_si`. P^skew = (e³/ħ²)·{…}
multiplies a DC field E to give a sheet conductance (2D), so it is in A·m/V² (:func:`pockels_skew_si`).
Time convention of 004: e^{+iωt}, τ_ω = τ/(1 + iωτ) (AMBIGUITIES 004.4).
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from qgtflow.geometry.groups import group_labels
from qgtflow.models.sectors import sector_blocks
from qgtflow.reduce.occupation import fermi_derivative
from qgtflow.units import E_CHARGE, HBAR_EV_S

FORMULA = "004 Eq. 6 with w^A of AMBIGUITIES 004.5 (third-order Born, δ-correlated impurities)"

__all__ = [
    "pockels_skew",
    "pockels_skew_si",
    "skew_prefactor",
    "skew_rate_sums",
    "skew_tensors",
    "skew_tensors_si",
    "tau_omega",
    "transport_time",
]


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def skew_prefactor(n_i: float, V0: float) -> float:
    """C = −4π² n_i V0³ (ħ = 1): model units eV³·nm^(2d) for n_i in nm^-d, V0 in eV·nm^d."""
    return -4.0 * math.pi**2 * float(n_i) * float(V0) ** 3


def tau_omega(tau, omega):
    """τ_ω = τ/(1 + iωτ) (004 Eq. 4, e^{+iωt} convention)."""
    tau = np.asarray(tau, float)
    return tau / (1.0 + 1j * np.asarray(omega, float) * tau)


def _grid_points(grid, flat: np.ndarray) -> np.ndarray:
    """Cartesian k of arbitrary flat indices (same formula as KGrid.points)."""
    idx = np.stack(np.unravel_index(np.asarray(flat, np.int64), grid.sizes), axis=1).astype(float)
    frac = (idx + np.asarray(grid.shift)) / np.asarray(grid.sizes, float)
    return grid.origin + frac @ grid.basis


def band_energies(sub, grid) -> np.ndarray:
    """ε_n(k) on the whole grid, (N, nb), chunk by chunk (eigvalsh of H only)."""
    out = np.empty((grid.n_points, sub.nbands))
    for c in range(grid.n_chunks):
        lo, hi = grid.chunk_bounds(c)
        H = sub.unique_derivatives(grid.points(lo, hi))[:, 0]
        out[lo:hi] = np.linalg.eigvalsh(H)
    return out


def _default_delta_weights():
    from qgtflow.reduce.tetrahedron import (
        delta_weights,  # the linear triangle/tetrahedron method
    )

    return delta_weights


def _band_data(sub, k: np.ndarray, deg_tol: float, rng=None):
    """Eigenvectors U (Nk, n, n) (columns), group-averaged v (Nk, n, d) and ∂²ε (Nk, n, d, d), and the
    interband part of ∂_a u_n, D (Nk, d, n, n): D[k, a, :, n] = Σ_{m∉g(n)} u_m ⟨u_m|∂_aH|u_n⟩/(ε_n − ε_m).

    ``rng``: apply a random gauge (U(1) phase per band, random unitary inside degenerate groups) — tests only.
    """
    H, dH, d2H = sub.derivatives(k, order=2)
    eps, U = np.linalg.eigh(H)
    nk, n = eps.shape
    scale = max(1.0, float(np.max(np.abs(eps)))) if eps.size else 1.0
    group = group_labels(eps, deg_tol * scale)  # (nk, n)
    same = group[:, :, None] == group[:, None, :]  # (nk, n, n)
    samef = same.astype(float)
    if rng is not None:
        U = U * np.exp(2j * np.pi * rng.random((nk, 1, n)))
        for q in np.nonzero(group[:, -1] < n - 1)[0]:  # spectra with a degenerate group
            for g in np.unique(group[q]):
                cols = np.nonzero(group[q] == g)[0]
                if len(cols) > 1:
                    z = rng.normal(size=(len(cols), len(cols))) + 1j * rng.normal(size=(len(cols), len(cols)))
                    Q, _ = np.linalg.qr(z)
                    U[q][:, cols] = U[q][:, cols] @ Q
    Ud = np.conj(U)
    dHe = np.einsum("kmi,kamn,knj->kaij", Ud, dH, U, optimize=True)  # (nk, d, n, n)
    d2 = np.einsum("kmi,kabmn,kni->kiab", Ud, d2H, U, optimize=True).real  # (nk, n, d, d)
    counts = same.sum(axis=2)  # group size per band
    # group-averaged velocity: Tr[P_g ∂H]/n_g
    vdiag = np.einsum("kaii->kia", dHe).real  # (nk, n, d)
    v = np.einsum("kij,kja->kia", samef, vdiag) / counts[:, :, None]
    # ∂_a∂_b ε_i = <i|∂a∂bH|i> + 2 Re Σ_{m∉g(i)} <i|∂aH|m><m|∂bH|i>/(ε_i − ε_m), then group average
    de = eps[:, :, None] - eps[:, None, :]
    inv = np.where(same, 0.0, 1.0 / np.where(same, 1.0, de))  # (nk, i, m)
    M = d2 + 2.0 * np.einsum("kaim,kbmi,kim->kiab", dHe, dHe, inv, optimize=True).real
    M = np.einsum("kij,kjab->kiab", samef, M) / counts[:, :, None, None]
    D = np.einsum("kpm,kamn,knm->kapn", U, dHe, inv, optimize=True)
    return eps, U, v, M, D


class _Shell:
    """Vertices (k, n) of one sector with nonzero δ weight at one energy."""

    __slots__ = ("D", "M", "W", "u", "v")

    def __init__(self, u, W, v, M, D=None):
        self.u, self.W, self.v, self.M = u, W, v, M  # (Nv, n) complex, (Nv,), (Nv, d), (Nv, d, d)
        self.D = D  # (Nv, d, n) interband part of ∂_a u (see _band_data), or None

    @property
    def size(self):
        return len(self.W)

    def permuted(self, p):
        return _Shell(self.u[p], self.W[p], self.v[p], self.M[p], None if self.D is None else self.D[p])

    def matrices(self):
        """B, V_a, M_ab, W_ab (shell matrices, n×n)."""
        d = self.v.shape[1]
        x = np.concatenate([np.ones((self.size, 1)), self.v, self.M.reshape(self.size, d * d),
                            (self.v[:, :, None] * self.v[:, None, :]).reshape(self.size, d * d)], axis=1)
        X = np.einsum("iq,im,in->qmn", x * self.W[:, None], self.u, np.conj(self.u), optimize=True)
        B = X[0]
        V = X[1:1 + d]
        Mm = X[1 + d:1 + d + d * d].reshape(d, d, *B.shape)
        Wm = X[1 + d + d * d:].reshape(d, d, *B.shape)
        return B, V, Mm, Wm

    def energy_derivatives(self):
        """dB/dE, dV_a/dE, dW_ab/dE of the shell matrices (coarea formula, module docstring; needs ``D``)."""
        d = self.v.shape[1]
        v, M = self.v, self.M
        v2 = np.einsum("ia,ia->i", v, v)
        s = v / v2[:, None]  # v/|v|²
        Ms = np.einsum("iab,ib->ia", M, s)  # ∂_a v_b s_b: the change of v along s
        q = np.einsum("iaa->i", M) / v2 - 2.0 * np.einsum("ia,ia->i", v, Ms) / v2  # ∇·s
        vv = v[:, :, None] * v[:, None, :]
        # ∇·(x s) for x = 1, v_c, v_b v_c
        div = np.concatenate([q[:, None], Ms + v * q[:, None],
                              (Ms[:, :, None] * v[:, None, :] + v[:, :, None] * Ms[:, None, :]
                               + vv * q[:, None, None]).reshape(self.size, d * d)], axis=1)
        x = np.concatenate([np.ones((self.size, 1)), v, vv.reshape(self.size, d * d)], axis=1)
        c = np.einsum("ia,iap->ip", s, self.D)  # (s·∇)P = |c⟩⟨u| + |u⟩⟨c|
        uc = np.einsum("im,in->imn", c, np.conj(self.u))
        dX = (np.einsum("iq,im,in->qmn", div * self.W[:, None], self.u, np.conj(self.u), optimize=True)
              + np.einsum("iq,imn->qmn", x * self.W[:, None], uc + np.conj(np.swapaxes(uc, 1, 2)), optimize=True))
        return dX[0], dX[1:1 + d], dX[1 + d:].reshape(d, d, *dX.shape[1:])


def _sector_shells(sub, grid, energies, *, eband, delta_weights, deg_tol, rng=None, batch_elems=2_000_000):
    """One _Shell per energy for sector model ``sub`` (eigenvectors only at shell k-points)."""
    energies = np.atleast_1d(np.asarray(energies, float))
    N, nb = eband.shape
    per = []
    step = max(1, batch_elems // max(1, N * nb))
    for s in range(0, len(energies), step):
        Eb = energies[s:s + step]
        Wb = np.asarray(delta_weights(eband, grid, Eb)).reshape(len(Eb), N, nb)
        for e in range(len(Eb)):
            kk, nn = np.nonzero(Wb[e])
            per.append((kk, nn, Wb[e][kk, nn]))
    allk = np.unique(np.concatenate([p[0] for p in per])) if per else np.zeros(0, np.int64)
    if len(allk):
        _, U, v, M, D = _band_data(sub, _grid_points(grid, allk), deg_tol, rng)
    d = grid.dim
    shells = []
    for kk, nn, w in per:
        if len(kk) == 0:
            shells.append(_Shell(np.zeros((0, nb), complex), np.zeros(0), np.zeros((0, d)), np.zeros((0, d, d)),
                                 np.zeros((0, d, nb), complex)))
            continue
        pos = np.searchsorted(allk, kk)
        u = U[pos, :, nn]  # eigenvector of band nn at k: column nn
        sh = _Shell(np.ascontiguousarray(u), w, v[pos, nn], M[pos, nn], D[pos, :, :, nn])
        if rng is not None:  # random vertex order
            sh = sh.permuted(rng.permutation(sh.size))
        shells.append(sh)
    return shells


# ---------------------------------------------------------------------------------------------
# traces per energy: factorised and pair routes
# ---------------------------------------------------------------------------------------------
def _vwb(V, W, B):
    """Im Tr[V_α W_βγ B] (αβγ)."""
    BV = np.einsum("mn,anl->aml", B, V)  # B V_α
    return np.einsum("bcmn,anm->abc", W, BV).imag


def _traces_factorised(shell):
    """t1[αβγ] = Im Tr[M_αβ V_γ B], t2[αβγ] = Im Tr[V_α M_βγ B], t3[αβγ] = Im Tr[V_α W_βγ B]."""
    d = shell.v.shape[1]
    if shell.size == 0:
        z = np.zeros((d, d, d))
        return z, z.copy(), z.copy()
    B, V, M, W = shell.matrices()
    VB = np.einsum("cmn,nl->cml", V, B)  # V_γ B
    t1 = np.einsum("abmn,cnm->abc", M, VB).imag
    BV = np.einsum("mn,anl->aml", B, V)  # B V_α
    t2 = np.einsum("bcmn,anm->abc", M, BV).imag  # Tr[M_βγ B V_α] = Tr[V_α M_βγ B]
    t3 = np.einsum("bcmn,anm->abc", W, BV).imag
    return t1, t2, t3


def _trace_derivative(shell):
    """d/dE Im Tr[V_α W_βγ B] (exact: product rule with the coarea E-derivatives of the shell matrices)."""
    d = shell.v.shape[1]
    if shell.size == 0:
        return np.zeros((d, d, d))
    B, V, _, W = shell.matrices()
    dB, dV, dW = shell.energy_derivatives()
    return _vwb(dV, W, B) + _vwb(V, dW, B) + _vwb(V, W, dB)


@njit(cache=True, fastmath=False)
def _pair_tile(u_i, b_i, u_j, b_j, W_j, y_j, G, G_abs, G_rev):
    """Accumulate, for every i of the tile, over the j of the tile:

    G[i, q] += W_j w_ij y_j[q],  G_abs[i] += W_j |w_ij|,  G_rev[i] += W_j w_ji,
    w_ij = Im[<u_i|u_j><u_j|B|u_i>] (rate from j to i / C), w_ji computed literally as Im[<u_j|u_i><u_i|B|u_j>].
    """
    ni, n = u_i.shape
    nj = u_j.shape[0]
    nq = y_j.shape[1]
    for a in range(ni):
        for c in range(nj):
            sr = 0.0
            si = 0.0
            tr = 0.0
            ti = 0.0
            rr = 0.0
            ri = 0.0
            for m in range(n):
                ua = u_i[a, m]
                uc = u_j[c, m]
                # s = <u_i|u_j> = Σ conj(ua) uc
                sr += ua.real * uc.real + ua.imag * uc.imag
                si += ua.real * uc.imag - ua.imag * uc.real
                # t = <u_j|B|u_i> = Σ conj(uc) b_i
                ba = b_i[a, m]
                tr += uc.real * ba.real + uc.imag * ba.imag
                ti += uc.real * ba.imag - uc.imag * ba.real
                # r = <u_i|B|u_j> = Σ conj(ua) b_j
                bc = b_j[c, m]
                rr += ua.real * bc.real + ua.imag * bc.imag
                ri += ua.real * bc.imag - ua.imag * bc.real
            w = sr * ti + si * tr  # Im(s t)
            wr = sr * ri - si * rr  # Im(conj(s) r) = Im(<u_j|u_i><u_i|B|u_j>)
            ww = W_j[c] * w
            for q in range(nq):
                G[a, q] += ww * y_j[c, q]
            G_abs[a] += W_j[c] * abs(w)
            G_rev[a] += W_j[c] * wr


def _tile_task(u, b, W, y, i0, i1, j0, j1):
    ni = i1 - i0
    G = np.zeros((ni, y.shape[1]))
    Ga = np.zeros(ni)
    Gr = np.zeros(ni)
    _pair_tile(u[i0:i1], b[i0:i1], u[j0:j1], b[j0:j1], W[j0:j1], y[j0:j1], G, Ga, Gr)
    return i0, G, Ga, Gr


def _pair_observables(shell):
    d = shell.v.shape[1]
    n = shell.size
    return np.ascontiguousarray(np.concatenate(
        [np.ones((n, 1)), shell.v, (shell.v[:, :, None] * shell.v[:, None, :]).reshape(n, d * d),
         shell.M.reshape(n, d * d)], axis=1))


def _pair_sums(shell, *, client=None, tile=4096):
    """G (Nv, nq), G_abs (Nv,), G_rev (Nv,) for one shell; tiles in-process or on a Dask client."""
    n = shell.size
    y = _pair_observables(shell)
    G = np.zeros((n, y.shape[1]))
    Ga = np.zeros(n)
    Gr = np.zeros(n)
    if n == 0:
        return G, Ga, Gr
    B = np.einsum("i,im,in->mn", shell.W, shell.u, np.conj(shell.u))
    b = np.ascontiguousarray(shell.u @ B.T)  # b_i = B u_i
    u = np.ascontiguousarray(shell.u)
    W = np.ascontiguousarray(shell.W)
    tile = max(1, int(tile))
    blocks = [(lo, min(lo + tile, n)) for lo in range(0, n, tile)]
    if client is None:
        for i0, i1 in blocks:
            for j0, j1 in blocks:
                _, g, ga, gr = _tile_task(u, b, W, y, i0, i1, j0, j1)
                G[i0:i1] += g
                Ga[i0:i1] += ga
                Gr[i0:i1] += gr
        return G, Ga, Gr
    fu, fb, fW, fy = client.scatter([u, b, W, y], broadcast=True, hash=False)  # fresh keys per call
    futs = [client.submit(_tile_task, fu, fb, fW, fy, i0, i1, j0, j1, pure=False)
            for i0, i1 in blocks for j0, j1 in blocks]
    for i0, g, ga, gr in client.gather(futs):
        G[i0:i0 + len(ga)] += g
        Ga[i0:i0 + len(ga)] += ga
        Gr[i0:i0 + len(ga)] += gr
    return G, Ga, Gr


def _traces_pairs(shell, *, client=None, tile=4096):
    """Same traces as _traces_factorised, from the explicit pair sums."""
    d = shell.v.shape[1]
    G, _, _ = _pair_sums(shell, client=client, tile=tile)
    Wi = shell.W
    Gv = G[:, 1:1 + d]
    Gvv = G[:, 1 + d:1 + d + d * d].reshape(-1, d, d)
    GM = G[:, 1 + d + d * d:].reshape(-1, d, d)
    t1 = np.einsum("i,iab,ic->abc", Wi, shell.M, Gv)
    t2 = np.einsum("i,ia,ibc->abc", Wi, shell.v, GM)
    t3 = np.einsum("i,ia,ibc->abc", Wi, shell.v, Gvv)
    return t1, t2, t3


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def _energy_grid(mu, kT, window, step):
    """Shell energies: μ + k_BT·[−window, window] (step·k_BT apart) at T > 0; μ alone at T = 0."""
    if kT > 0:
        return mu + kT * np.arange(-window, window + 0.5 * step, step)
    return np.array([float(mu)])


def skew_tensors(model, grid, mu, kT, n_i, V0, *, method: str = "factorised", client=None, tile: int = 4096,
                 window: float = 15.0, step: float = 0.25, deg_tol: float = 1e-9, per_sector: bool = False,
                 delta_weights=None, gauge_seed=None):
    """S^(1), S^(2) of 004 Eq. 6 with w^A of AMBIGUITIES 004.5 (see module docstring for derivation/units).

    Parameters
    ----------
    model: a Model or SectorModel (sectors = valleys: intravalley scattering only, summed with ``model.weights``).
    grid: KGrid (k·p window or periodic zone) on which the δ-shells are taken (tetrahedron weights).
    mu, kT: chemical potential(s) and k_BT(s) in model energy units (scalars or 1D arrays; kT = 0 allowed).
    n_i, V0: impurity density (length^-d) and strength (energy·length^d) in model units.
    method: "factorised" (shell matrices, O(N_k)) or "pairs" (tiled O(N_F²) pair sums).
    client: dask.distributed Client for the pair tiles (method="pairs"); None runs tiles in-process.
    tile: pair tile edge (vertices per block).
    window, step: finite-T energy grid μ + k_BT·[−window, window] with spacing step·k_BT (trapezoid rule).
    per_sector: also return per-sector tensors (keys S1_sector, S2_sector with a leading sector axis).
    delta_weights: override the δ-weight function (default tetrahedron.delta_weights).
    gauge_seed: apply a random gauge and vertex ordering (testing of gauge invariance).

    Returns
    -------
    dict with S1, S2 of shape (n_mu, n_T, d, d, d) (or (d, d, d) when mu and kT are both scalars), in
    [energy]²·[length]^(3−d) (eV²·nm for d = 2; model units with ħ = 1 — divide by ħ² for the physical
    tensor, see skew_tensors_si), summed over sectors with ``model.weights``; plus "labels", "weights",
    "units", "formula", "convention", "C" entries.
    """
    if method not in ("factorised", "pairs"):
        raise ValueError(f"method must be 'factorised' or 'pairs', not {method!r}")
    scalar = np.ndim(mu) == 0 and np.ndim(kT) == 0
    mus = np.atleast_1d(np.asarray(mu, float))
    kTs = np.atleast_1d(np.asarray(kT, float))
    if np.any(kTs < 0):
        raise ValueError("kT must be >= 0")
    dw = delta_weights or _default_delta_weights()
    C = skew_prefactor(n_i, V0)
    d = grid.dim
    secs = sector_blocks(model)
    S1 = np.zeros((len(secs), len(mus), len(kTs), d, d, d))
    S2 = np.zeros_like(S1)
    rng = np.random.default_rng(gauge_seed) if gauge_seed is not None else None
    for s, (_lbl, sub, _w) in enumerate(secs):
        eband = band_energies(sub, grid)
        for a, m in enumerate(mus):
            for t, T in enumerate(kTs):
                E = _energy_grid(m, T, window, step)
                shells = _sector_shells(sub, grid, E, eband=eband, delta_weights=dw, deg_tol=deg_tol, rng=rng)
                if method == "factorised":
                    tr = [_traces_factorised(sh) for sh in shells]
                else:
                    tr = [_traces_pairs(sh, client=client, tile=tile) for sh in shells]
                t1 = np.array([x[0] for x in tr])
                t2 = np.array([x[1] for x in tr])
                dt3 = np.array([_trace_derivative(sh) for sh in shells])  # d/dE Im Tr[V W B], exact
                if T > 0:
                    f1 = fermi_derivative(E, m, T, 1)
                    dE = E[1] - E[0]
                    wq = np.full(len(E), dE)
                    wq[0] = wq[-1] = 0.5 * dE
                    S1[s, a, t] = C * np.einsum("e,eabc->abc", wq * f1, t1)
                    # ∫ f0″ t3 = −∫ f0′ t3′ (by parts; f0′ ~ e^-window at the ends)
                    S2[s, a, t] = -C * np.einsum("e,eabc->abc", wq * f1, t2 - dt3)
                else:  # one shell at μ: f0′ = −δ(E − μ)
                    S1[s, a, t] = -C * t1[0]
                    S2[s, a, t] = -C * (dt3[0] - t2[0])
    weights = np.array([w for _, _, w in secs])
    out_S1 = np.einsum("s,s...->...", weights, S1)
    out_S2 = np.einsum("s,s...->...", weights, S2)
    if scalar:
        out_S1, out_S2 = out_S1[0, 0], out_S2[0, 0]
    res = {"S1": out_S1, "S2": out_S2, "mu": mus, "kT": kTs, "labels": [lbl for lbl, _, _ in secs],
           "weights": weights, "method": method, "formula": FORMULA, "C": C,
           "units": "model units, hbar=1: [energy]^2 [length]^(3-d) (eV^2 nm for d=2); physical S = S/hbar^2",
           "convention": "S1_abc = -(1/hbar) Σ_k d_a eps d_b Σ_k' w^A_kk' d_c f0(k'); "
                         "S2_abc = -(1/hbar) Σ_k d_a eps Σ_k' w^A_kk' d_b d_c f0(k') (004 Eq. 6)",
           }
    if per_sector:
        res["S1_sector"] = S1[:, 0, 0] if scalar else S1
        res["S2_sector"] = S2[:, 0, 0] if scalar else S2
    return res


def skew_rate_sums(model, grid, E, n_i, V0, *, client=None, tile=4096, deg_tol=1e-9, delta_weights=None,
                   gauge_seed=None):
    """Per shell vertex i (for every sector at energy E), with the pair kernel:

    out[i] = Σ_j w^A_{ji} W_j   (total skew rate out of state i; must vanish, AMBIGUITIES 004.5),
    abs[i] = Σ_j |w^A_{ji}| W_j, fwd[i] = Σ_j w^A_{ij} W_j (= −out[i] by antisymmetry), W[i] (δ weight).

    Returns a list (one dict per sector) of arrays in model units (energy, ħ = 1).
    """
    dw = delta_weights or _default_delta_weights()
    C = skew_prefactor(n_i, V0)
    rng = np.random.default_rng(gauge_seed) if gauge_seed is not None else None
    res = []
    for lbl, sub, _ in sector_blocks(model):
        eband = band_energies(sub, grid)
        (sh,) = _sector_shells(sub, grid, [E], eband=eband, delta_weights=dw, deg_tol=deg_tol, rng=rng)
        G, Ga, Gr = _pair_sums(sh, client=client, tile=tile)
        res.append({"label": lbl, "out": C * Gr, "abs": abs(C) * Ga, "fwd": C * G[:, 0], "W": sh.W})
    return res


def transport_time(model, grid, mu, kT, n_i, V0, *, window: float = 15.0, step: float = 0.25,
                   deg_tol: float = 1e-9, delta_weights=None):
    """Born transport time from the symmetric rate (004 text under Eq. 4):

    w^S_{kk′} = 2π n_i V0² |⟨u_k|u_k′⟩|² δ(ε_k − ε_k′) (ħ = 1),  1/τ_k = Σ_k′ w^S_{k′k} (1 − cos θ_kk′),
    θ the angle between v(k) and v(k′); intravalley (per sector). Factorised: with shell matrices
    B and V̂_a = shell(v_a/|v|),  1/τ_k = 2π n_i V0² (⟨u_k|B|u_k⟩ − v̂_k·⟨u_k|V̂|u_k⟩).

    Fermi-surface averages with weight −f0′ (δ(E − μ) at kT = 0) and the δ-shell weights (all sectors,
    ``model.weights``): ``rate`` = ⟨1/τ_k⟩ (energy units), ``tau`` = 1/⟨1/τ_k⟩, ``tau_mean`` = ⟨τ_k⟩,
    ``tau_transport`` = ⟨|v|² τ_k⟩/⟨|v|²⟩ (all in 1/energy, ħ = 1); ``*_s`` the same in seconds for eV units.
    """
    dw = delta_weights or _default_delta_weights()
    pref = 2 * math.pi * float(n_i) * float(V0) ** 2
    E = np.array([mu]) if kT == 0 else mu + kT * np.arange(-window, window + 0.5 * step, step)
    if kT == 0:
        wE = np.array([1.0])
    else:
        wE = -fermi_derivative(E, mu, kT, 1) * (E[1] - E[0])
        wE[0] *= 0.5
        wE[-1] *= 0.5
    acc = {"norm": 0.0, "rate": 0.0, "tau": 0.0, "v2": 0.0, "v2tau": 0.0}
    for _lbl, sub, wsec in sector_blocks(model):
        eband = band_energies(sub, grid)
        shells = _sector_shells(sub, grid, E, eband=eband, delta_weights=dw, deg_tol=deg_tol)
        for we, sh in zip(wE, shells):
            if sh.size == 0:
                continue
            speed = np.linalg.norm(sh.v, axis=1)
            vhat = sh.v / np.where(speed > 0, speed, 1.0)[:, None]
            B = np.einsum("i,im,in->mn", sh.W, sh.u, np.conj(sh.u))
            Vh = np.einsum("i,ia,im,in->amn", sh.W, vhat, sh.u, np.conj(sh.u))
            uBu = np.einsum("im,mn,in->i", np.conj(sh.u), B, sh.u).real
            uVu = np.einsum("im,amn,in->ia", np.conj(sh.u), Vh, sh.u).real
            rate = pref * (uBu - np.einsum("ia,ia->i", vhat, uVu))
            wt = wsec * we * sh.W
            acc["norm"] += wt.sum()
            acc["rate"] += (wt * rate).sum()
            acc["tau"] += (wt / rate).sum()
            acc["v2"] += (wt * speed**2).sum()
            acc["v2tau"] += (wt * speed**2 / rate).sum()
    rate = acc["rate"] / acc["norm"]
    out = {"rate": rate, "tau": 1.0 / rate, "tau_mean": acc["tau"] / acc["norm"],
           "tau_transport": acc["v2tau"] / acc["v2"], "dos": acc["norm"],
           "formula": "004 text under Eq. 4: 1/tau = Σ_k' w^S (1 - cos θ), Born w^S = 2π n_i V0² |<u|u'>|² δ"}
    for key in ("tau", "tau_mean", "tau_transport"):
        out[key + "_s"] = out[key] * HBAR_EV_S
    return out


def pockels_skew(S1, S2, tau, omega, *, prefactor: float = 1.0):
    """004 Eq. 6: P_αβγ = prefactor·{τ_ω³ S1_αγβ + τ_ω τ² S1_αβγ + τ_ω²(τ_ω + τ) S2_αβγ}, τ_ω = τ/(1 + iωτ).

    ``prefactor`` = e³/ħ² (1 in natural units e = ħ = 1). S1, S2 (..., d, d, d); tau and omega scalars or
    arrays broadcast against the leading axes (give them trailing singleton axes, e.g. omega[:, None, None, None]).
    Time convention e^{+iωt} (AMBIGUITIES 004.4).
    """
    S1 = np.asarray(S1)
    S2 = np.asarray(S2)
    tw = tau_omega(tau, omega)
    tau = np.asarray(tau, float)
    return prefactor * (tw**3 * np.swapaxes(S1, -1, -2) + tw * tau**2 * S1 + tw**2 * (tw + tau) * S2)


def skew_tensors_si(S, *, length_unit_m: float = 1e-9):
    """Model-unit S (eV²·nm for d = 2, ħ = 1) → physical S/ħ² in SI (m/s² for d = 2).

    S_phys = S [eV² L^(3−d)] / ħ² [eV² s²] × (length_unit_m)^(3−d). Valid for energies in eV.
    """
    S = np.asarray(S)
    d = S.shape[-1]
    return S / HBAR_EV_S**2 * length_unit_m ** (3 - d)


def pockels_skew_si(S1, S2, tau_s, omega_rad_s, *, length_unit_m: float = 1e-9):
    """P^skew in SI from model-unit S1, S2 (eV, nm; ħ = 1): A·m/V² for d = 2 (δσ_sheet = P·E, σ in A/V, E in V/m).

    P = (e³/ħ²)·{τ_ω³ S1_αγβ + τ_ω τ² S1_αβγ + τ_ω²(τ_ω + τ) S2_αβγ} with S in m/s², e in C, ħ in J·s, τ in s.
    """
    hbar_js = HBAR_EV_S * E_CHARGE
    pref = E_CHARGE**3 / hbar_js**2
    return pockels_skew(skew_tensors_si(S1, length_unit_m=length_unit_m),
                        skew_tensors_si(S2, length_unit_m=length_unit_m), tau_s, omega_rad_s, prefactor=pref)


def time_pairs(n: int, nband: int = 2, d: int = 2, tile: int = 4096, seed: int = 0) -> tuple[float, int]:
    """Benchmark helper: seconds for the full n×n pair sum on a random shell of n vertices (in-process)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, nband)) + 1j * rng.normal(size=(n, nband))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    sh = _Shell(u, rng.random(n), rng.normal(size=(n, d)), rng.normal(size=(n, d, d)))
    _pair_sums(_Shell(u[:8], sh.W[:8], sh.v[:8], sh.M[:8]), tile=tile)  # compile
    t0 = time.perf_counter()
    _pair_sums(sh, tile=tile)
    return time.perf_counter() - t0, n * n
