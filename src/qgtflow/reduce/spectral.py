"""Energy-resolved moment histograms: one pass over k for all (μ, T).

For integrands Q_n(k) the reduce stage needs I(μ, T) = Σ_k w_k Σ_n Q_n(k) f^{(p)}(ε_n(k); μ, T).
Energies are binned on a fine grid (width δ ≤ k_BT_min / bins_per_kT) and, per bin b with centre
c_b, the moments S_q[b] = Σ w Q (ε − c_b)^q / q! are accumulated for q = 0..Q−1. Then

    I = Σ_b Σ_q S_q[b] f^{(p+q)}(c_b)   (Taylor expansion of f inside each bin, error O((δ/kT)^Q)),

plus, for p = 0, the exactly occupied states below the window (f = 1 to e^{-40}).
Cost: O(N_k n_bands n_comp Q) for the pass, O(n_μ n_T · 80 bins_per_kT · n_comp Q) for the contraction
(bins merged exactly to ~k_BT/6 per temperature, each μ over its own μ ± 40 k_BT) — linear in k-points
and nearly independent of how many (μ, T) pairs are asked for.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numba import njit

from qgtflow.reduce.occupation import FERMI_POLYNOMIALS

log = logging.getLogger(__name__)

WINDOW_KT = 40.0  # f, f' below e^{-40} outside μ ± 40 k_BT
MAX_BINS = 1 << 16


class EnergyBins:
    """The fine energy grid shared by every chunk of one reduction."""

    def __init__(self, mu: np.ndarray, kT: np.ndarray, bins_per_kT: float = 6.0, n_moments: int = 5,
                 zero_T_width: float | None = None):
        """``zero_T_width``: bin width when ``kT`` contains 0 (T = 0 read-out of exact tetrahedron histograms)."""
        kT = np.asarray(kT, float)
        widths = [float(np.min(kT[kT > 0])) / bins_per_kT] if np.any(kT > 0) else []
        if np.any(kT == 0):
            if zero_T_width is None:
                raise ValueError("T = 0 needs zero_T_width (tetrahedron integration)")
            widths.append(float(zero_T_width))
        width = min(widths)
        margin = max(WINDOW_KT * float(np.max(kT)), 8 * width)
        self.lo = float(np.min(mu) - margin)
        hi = float(np.max(mu) + margin)
        n = int(math.ceil((hi - self.lo) / width))
        if n > MAX_BINS:
            width = (hi - self.lo) / MAX_BINS
            n = MAX_BINS
            log.warning("energy histogram capped at %d bins: bin width %.3g", n, width)
        self.width = width
        self.bins_per_kT = bins_per_kT
        self.n_bins = max(n, 1)
        self.n_moments = n_moments

    @property
    def centres(self) -> np.ndarray:
        return self.lo + (np.arange(self.n_bins) + 0.5) * self.width

    def empty(self, n_comp: int):
        return np.zeros((self.n_bins, self.n_moments, n_comp)), np.zeros(n_comp)


@njit(cache=True, error_model="numpy")
def accumulate(energy, weight, Q, lo, width, moments, underflow):
    """Add one chunk: energy (N, nb), weight (N,), Q (N, nb, nc) into moments (nbins, nq, nc).

    Raises ValueError for a non-finite energy or weight, or mismatched shapes: a bin index is only
    ever taken from a finite position inside [0, nbins), never from int(nan) or an overflow.
    """
    N, nb = energy.shape
    nc = Q.shape[2]
    nbins, nq, _ = moments.shape
    if weight.shape[0] != N or Q.shape[0] != N or Q.shape[1] != nb or underflow.shape[0] != nc \
            or moments.shape[2] != nc:
        raise ValueError("accumulate: energy, weight, Q, moments and underflow shapes do not match")
    if not (math.isfinite(lo) and math.isfinite(width) and width > 0.0):
        raise ValueError("accumulate: histogram origin and bin width must be finite, width > 0")
    xpow = np.empty(nq)
    for kk in range(N):
        w = weight[kk]
        if not math.isfinite(w):
            raise ValueError("accumulate: non-finite k-point weight")
        if w == 0.0:
            continue
        for n in range(nb):
            e = energy[kk, n]
            if not math.isfinite(e):
                raise ValueError("accumulate: non-finite band energy")
            pos = (e - lo) / width
            if pos < 0.0:
                for c in range(nc):
                    underflow[c] += w * Q[kk, n, c]
                continue
            if pos >= nbins:
                continue
            b = min(int(pos), nbins - 1)
            x = e - (lo + (b + 0.5) * width)
            xpow[0] = w
            for q in range(1, nq):
                xpow[q] = xpow[q - 1] * x / q
            for q in range(nq):  # innermost loop contiguous in the component index
                xq = xpow[q]
                for c in range(nc):
                    moments[b, q, c] += xq * Q[kk, n, c]


def merge_bins(moments: np.ndarray, centres: np.ndarray, width: float, factor: int):
    """Merge groups of ``factor`` adjacent bins exactly, re-centring the moments.

    With x' = x + (c − c'), S'_q = Σ_{j≤q} S_j (c − c')^{q−j}/(q−j)! (binomial shift of x^q/q!).
    """
    if factor == 1:
        return moments, centres
    n_bins, nq, nc = moments.shape
    pad = (-n_bins) % factor
    if pad:
        moments = np.concatenate([moments, np.zeros((pad, nq, nc))])
        centres = np.concatenate([centres, centres[-1] + width * np.arange(1, pad + 1)])
    groups = moments.reshape(-1, factor, nq, nc)
    new_centres = centres.reshape(-1, factor).mean(axis=1)
    shift = (np.arange(factor) - (factor - 1) / 2) * width  # c − c', the same in every group
    merged = np.zeros((groups.shape[0], nq, nc))
    for q in range(nq):
        for j in range(q + 1):
            coef = shift ** (q - j) / math.factorial(q - j)  # (factor,)
            for member in range(factor):  # strided axpys: no copies of the moment array
                merged[:, q] += coef[member] * groups[:, member, j]
    return merged, new_centres


MU_BLOCK = 128  # chemical potentials per block of the contraction (bounds its temporaries)
MU_BLOCK_SPAN_KT = 20.0  # a block spans at most this many k_BT of μ: its bin window stays ≲ 1.25 × one μ's


RESYNC = 8  # bins between exact exponentials in fermi_derivative_table (drift ≤ 8 roundings)


@njit(cache=True, error_model="numpy")
def contract_block(centres, step, mu, kt, order, polys, tops, moments, out):
    """out[c, i] += Σ_b Σ_q moments[b, q, c] f^{(order+q)}(centres[b]; mu[i], kt) for a block of μ.

    f = 1/(e^x + 1), x = (ε − μ)/k_BT, with e^x carried from bin to bin by the factor e^{step/k_BT} of the
    uniform bin spacing ``step`` (recomputed exactly every RESYNC bins); the derivatives are the polynomials
    in f of FERMI_POLYNOMIALS (``polys`` zero-padded rows, ``tops`` their degrees) over k_BT^n, evaluated by
    Horner's rule vectorised over μ. Equal to ``occupation.fermi_derivative`` up to rounding. Every out[c, i] is
    summed over (b, q) in one fixed order: bit-identical wherever the arrays sit in memory (no BLAS blocking).
    """
    nb, nq, nc = moments.shape
    m = mu.shape[0]
    ex = np.empty(m)
    f = np.empty(m)
    v = np.empty(m)
    ratio = math.exp(step / kt)
    for b in range(nb):
        if b % RESYNC == 0:
            for i in range(m):
                ex[i] = math.exp((centres[b] - mu[i]) / kt)
        else:
            for i in range(m):
                ex[i] *= ratio
        for i in range(m):
            f[i] = 1.0 / (ex[i] + 1.0)
        for q in range(nq):
            n = order + q
            top = tops[n]
            scale = 1.0 / kt ** n
            for i in range(m):
                v[i] = polys[n, top]
            for k in range(top - 1, -1, -1):
                c = polys[n, k]
                for i in range(m):
                    v[i] = c + v[i] * f[i]
            for i in range(m):
                v[i] *= scale
            for c in range(nc):
                s = moments[b, q, c]
                for i in range(m):
                    out[c, i] += s * v[i]


_POLY_TABLE = np.zeros((len(FERMI_POLYNOMIALS), max(p.size for p in FERMI_POLYNOMIALS)))
for _n, _p in enumerate(FERMI_POLYNOMIALS):
    _POLY_TABLE[_n, :_p.size] = _p
_POLY_TOPS = np.array([max(int(np.flatnonzero(p)[-1]), 0) for p in FERMI_POLYNOMIALS], np.int64)


def mu_blocks(mu_sorted: np.ndarray, kt: float):
    """Slices of sorted μ, each at most MU_BLOCK long and MU_BLOCK_SPAN_KT·k_BT wide (at least one μ)."""
    start = 0
    n = mu_sorted.size
    while start < n:
        stop = min(n, start + MU_BLOCK, int(np.searchsorted(mu_sorted, mu_sorted[start] + MU_BLOCK_SPAN_KT * kt,
                                                              side="right")))
        yield slice(start, max(stop, start + 1))
        start = max(stop, start + 1)


def contract(bins: EnergyBins, moments: np.ndarray, underflow: np.ndarray, mu: np.ndarray, kT: np.ndarray,
             order: int) -> np.ndarray:
    """I[μ, T, comp] = Σ_b Σ_q S_q[b] f^{(order+q)}(c_b; μ, T) (+ underflow for order 0).

    Per T: the fine bins are merged (exactly) to a width ≤ k_BT / bins_per_kT; for each block of nearby μ
    (:func:`mu_blocks`) only the bins within [μ_min − 40 k_BT, μ_max + 40 k_BT] of the block enter (f = 1 below
    them, every derivative 0 above), summed by :func:`contract_block`.
    Cost O(n_μ n_T · 80·bins_per_kT · n_moments · n_comp) and memory O(MU_BLOCK · n_comp) besides
    the output and the merged histograms: nearly independent of how many (μ, T) pairs are asked for.
    """
    nq = moments.shape[1]
    nc = moments.shape[2]
    if order + nq > len(FERMI_POLYNOMIALS):
        raise ValueError(f"occupation order {order} with {nq} moments exceeds the Fermi polynomials")
    mu = np.asarray(mu, float)
    order_mu = np.argsort(mu, kind="stable")
    mu_sorted = np.ascontiguousarray(mu[order_mu])
    out = np.zeros((mu.size, kT.size, nc))
    levels = {1: (moments, bins.centres)}  # merge factor → (moments, centres), built by pairwise merges
    for t, kt in enumerate(kT):
        factor = 1
        while factor * 2 * bins.width <= kt / bins.bins_per_kT and factor < bins.n_bins:
            factor *= 2
            if factor not in levels:
                prev, prev_centres = levels[factor // 2]
                levels[factor] = merge_bins(prev, prev_centres, bins.width * (factor // 2), 2)
        merged, centres = levels[factor]
        below = None
        if order == 0:  # fully occupied: the states below a block's window and below the histogram
            below = np.concatenate([np.zeros((1, nc)), np.cumsum(merged[:, 0, :], axis=0)]) + underflow
        acc = np.zeros((mu.size, nc))
        for blk in mu_blocks(mu_sorted, kt):
            m = mu_sorted[blk]
            b0 = int(np.searchsorted(centres, m[0] - WINDOW_KT * kt))
            b1 = int(np.searchsorted(centres, m[-1] + WINDOW_KT * kt))
            if b1 > b0:
                part = np.zeros((nc, m.size))
                contract_block(np.ascontiguousarray(centres[b0:b1]), centres[1] - centres[0], m, float(kt), order,
                               _POLY_TABLE, _POLY_TOPS, np.ascontiguousarray(merged[b0:b1]), part)
                acc[blk] = part.T
            if below is not None:
                acc[blk] += below[b0]
        out[order_mu, t] = acc
    return out
