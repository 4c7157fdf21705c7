"""The blocked (μ, T) contraction and the vectorised T = 0 read-out equal straightforward reference sums."""

import math

import numpy as np
import pytest

from qgtflow.reduce.occupation import fermi_derivative
from qgtflow.reduce.simplex_moments import read_out
from qgtflow.reduce.spectral import EnergyBins, accumulate, contract, merge_bins


def _reference_contract(bins, moments, underflow, mu, kT, order):
    """I[μ, T] = Σ_b Σ_q S_q[b] f^{(order+q)}(c_b) over every bin (merged as ``contract`` merges), one (μ, T) at a
    time, + the underflow (order 0)."""
    out = np.zeros((mu.size, kT.size, moments.shape[2]))
    for t, kt in enumerate(kT):
        merged, centres, factor = moments, bins.centres, 1
        while factor * 2 * bins.width <= kt / bins.bins_per_kT and factor < bins.n_bins:
            merged, centres = merge_bins(merged, centres, bins.width * factor, 2)
            factor *= 2
        for i, m in enumerate(mu):
            for q in range(moments.shape[1]):
                out[i, t] += fermi_derivative(centres, m, kt, order + q) @ merged[:, q, :]
            if order == 0:
                out[i, t] += underflow
    return out


def _reference_zero_t(lo, w, moments, underflow, mu, order):
    """T = 0 from the Legendre projection of μ's bin (simplex_moments.zero_temperature's definition), per μ."""
    leg = np.polynomial.legendre
    K = min(moments.shape[1] - 1, 3)
    out = []
    for m in mu:
        b = min(int(math.floor((m - lo) / w)), moments.shape[0] - 1)
        t = min(max(2 * (m - (lo + (b + 0.5) * w)) / w, -1.0), 1.0)
        coef = np.array([(2 * j + 1) / w * sum(pk * (2 / w) ** k * math.factorial(k) * moments[b, k]
                                               for k, pk in enumerate(leg.leg2poly(np.eye(K + 1)[j])))
                         for j in range(K + 1)])
        if order == 0:
            out.append(underflow + moments[:b, 0].sum(axis=0) + leg.legval(t, leg.legint(coef, lbnd=-1.0)) * w / 2)
        elif order == 1:
            out.append(-leg.legval(t, coef))
        else:
            out.append(leg.legval(t, leg.legder(coef)) * 2 / w)
    return np.array(out)


@pytest.fixture(scope="module")
def histograms():
    rng = np.random.default_rng(7)
    lo_e, hi_e = -1.0, 1.0
    # μ unsorted, repeated, at the band edges ±1 and beyond them; many (μ, T) pairs
    mu = np.concatenate([rng.uniform(-1.2, 1.2, 60), [lo_e, hi_e, lo_e, 0.0, 0.0]])
    kT = np.array([0.0, 0.004, 0.01, 0.05, 0.013])
    bins = EnergyBins(mu, kT, bins_per_kT=6.0, zero_T_width=1e-3)
    energy = rng.uniform(lo_e, hi_e, (4000, 3))
    energy[:50, 0] = lo_e  # states exactly at the band edges
    energy[50:100, 2] = hi_e
    weight = rng.uniform(0.0, 1.0, 4000)
    Q = rng.normal(size=(4000, 3, 4))
    moments, underflow = bins.empty(4)
    accumulate(energy, weight, Q, bins.lo, bins.width, moments, underflow)
    return bins, moments, underflow, mu, kT


@pytest.mark.parametrize("order", [0, 1, 2])
def test_contract_equals_reference_sum(histograms, order):
    bins, moments, underflow, mu, kT = histograms
    got = read_out(bins, moments, underflow, mu, kT, order)
    warm = kT > 0
    ref = _reference_contract(bins, moments, underflow, mu, kT[warm], order)
    scale = np.abs(ref).max()
    # the reference keeps the e^{-40} tails outside μ ± 40 k_BT that the contraction drops
    assert np.abs(got[:, warm] - ref).max() <= 1e-12 * scale
    ref0 = _reference_zero_t(bins.lo, bins.width, moments, underflow, mu, order)
    assert np.abs(got[:, ~warm][:, 0] - ref0).max() <= 1e-12 * np.abs(ref0).max()


def test_contract_independent_of_mu_order_and_count(histograms):
    """Each (μ, T) entry is the same whether asked alone or among many, in any order (blocks are internal)."""
    bins, moments, underflow, mu, kT = histograms
    warm = kT[kT > 0]
    many = contract(bins, moments, underflow, mu, warm, 1)
    perm = np.random.default_rng(3).permutation(mu.size)
    assert np.allclose(contract(bins, moments, underflow, mu[perm], warm, 1), many[perm], rtol=0,
                       atol=1e-13 * np.abs(many).max())
    for i in (0, 17, mu.size - 1):
        one = contract(bins, moments, underflow, mu[i:i + 1], warm, 1)[0]
        assert np.allclose(one, many[i], rtol=0, atol=1e-13 * np.abs(many).max())
