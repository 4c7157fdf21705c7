"""Energy-resolved moment histograms: one pass over k for all (μ, T).

For integrands Q_n(k) the reduce stage needs I(μ, T) = Σ_k w_k Σ_n Q_n(k) f^{(p)}(ε_n(k); μ, T).
Energies are binned on a fine grid (width δ ≤ k_BT_min / bins_per_kT) and, per bin b with centre
c_b, the moments S_q[b] = Σ w Q (ε − c_b)^q / q! are accumulated for q = 0..Q−1. Then

    I = Σ_b Σ_q S_q[b] f^{(p+q)}(c_b)   (Taylor expansion of f inside each bin, error O((δ/kT)^Q)),

plus, for p = 0, the exactly occupied states below the window (f = 1 to e^{-40}).
Cost: O(N_k n_bands n_comp Q) for the pass, O(n_μ n_T n_window n_comp Q) for the contraction —
linear in k-points and nearly independent of how many (μ, T) pairs are asked for.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numba import njit

from qgtflow.reduce.occupation import fermi_derivative

log = logging.getLogger(__name__)

WINDOW_KT = 40.0  # f, f' below e^{-40} outside μ ± 40 k_BT
MAX_BINS = 1 << 16


class EnergyBins:
    """The fine energy grid shared by every chunk of one reduction."""

    def __init__(self, mu: np.ndarray, kT: np.ndarray, bins_per_kT: float = 6.0, n_moments: int = 5):
        self.lo = float(np.min(mu) - WINDOW_KT * np.max(kT))
        hi = float(np.max(mu) + WINDOW_KT * np.max(kT))
        width = float(np.min(kT)) / bins_per_kT
        n = int(math.ceil((hi - self.lo) / width))
        if n > MAX_BINS:
            width = (hi - self.lo) / MAX_BINS
            n = MAX_BINS
            log.warning("energy histogram capped at %d bins: bin width %.3g = %.3g kT_min", n, width,
                        width / float(np.min(kT)))
        self.width = width
        self.n_bins = max(n, 1)
        self.n_moments = n_moments

    @property
    def centres(self) -> np.ndarray:
        return self.lo + (np.arange(self.n_bins) + 0.5) * self.width

    def empty(self, n_comp: int):
        return np.zeros((self.n_bins, self.n_moments, n_comp)), np.zeros(n_comp)


@njit(cache=True)
def accumulate(energy, weight, Q, lo, width, moments, underflow):
    """Add one chunk: energy (N, nb), weight (N,), Q (N, nb, nc) into moments (nbins, nq, nc)."""
    N, nb = energy.shape
    nc = Q.shape[2]
    nbins, nq, _ = moments.shape
    xpow = np.empty(nq)
    for kk in range(N):
        w = weight[kk]
        if w == 0.0:
            continue
        for n in range(nb):
            e = energy[kk, n]
            pos = (e - lo) / width
            if pos < 0.0:
                for c in range(nc):
                    underflow[c] += w * Q[kk, n, c]
                continue
            b = int(pos)
            if b >= nbins:
                continue
            x = e - (lo + (b + 0.5) * width)
            xpow[0] = w
            for q in range(1, nq):
                xpow[q] = xpow[q - 1] * x / q
            for c in range(nc):
                v = Q[kk, n, c]
                for q in range(nq):
                    moments[b, q, c] += xpow[q] * v


def contract(bins: EnergyBins, moments: np.ndarray, underflow: np.ndarray, mu: np.ndarray, kT: np.ndarray,
             order: int) -> np.ndarray:
    """I[μ, T, comp] = Σ_b Σ_q S_q[b] f^{(order+q)}(c_b; μ, T) (+ underflow for order 0)."""
    centres = bins.centres
    nq = moments.shape[1]
    out = np.zeros((mu.size, kT.size, moments.shape[2]))
    cumulative = np.cumsum(moments[:, 0, :], axis=0) if order == 0 else None
    for t, kt in enumerate(kT):
        half = int(math.ceil(WINDOW_KT * kt / bins.width)) + 1
        for m, mu_val in enumerate(mu):
            centre_bin = int((mu_val - bins.lo) / bins.width)
            b0, b1 = max(0, centre_bin - half), min(bins.n_bins, centre_bin + half + 1)
            acc = np.zeros(moments.shape[2])
            for q in range(nq if b1 > b0 else 0):
                fq = fermi_derivative(centres[b0:b1], mu_val, kt, order + q)
                acc += fq @ moments[b0:b1, q, :]
            if order == 0:
                acc += underflow
                if b0 > 0:
                    acc += cumulative[min(b0, bins.n_bins) - 1]
            out[m, t] = acc
    return out
