"""Interband (two-band transition) responses at finite frequency: direct sums over k and band pairs.

These do not factor into an energy histogram of one band (they depend on the pair energy ω_mn and on
ω), so they are accumulated straight from the geometry fields, chunk by chunk, for all (ω, μ, T).

``ndd_delta_n`` — 002 Eq. 12: nonreciprocal directional dichroism of light along z polarised along x,
    Δn = −(e²cμ0/2ħ) Σ_{m≠n ∈ {c,v}} ∫[dk] [A (G_zxx,m f'_m + G_zxx,n f'_n) + B (G_zxx,m + G_zxx,n)
                                           + C (G_xxz,m + G_xxz,n)],
    G_ijk,m = ∂_iε_m g^jk_m (the quantum-metric dipole of 002 Eq. 10, v = ∂ε/∂k), ω_mn = ε_m − ε_n and
    A = ω_mn²/(ω_mn² − ω²) + iπω δ(ω + ω_mn),
    B = −2Δf_mn ω_mn³/(ω_mn² − ω²)² + iπ (Δf_mn ω_mn²/ω) δ'(ω + ω_mn),
    C = 2Δf_mn ω_mn/(ω_mn² − ω²) − 2iπ Δf_mn δ(ω + ω_mn).
Broadening η: the real (principal) parts are evaluated at ω + iη, δ and δ' become a Lorentzian of
half-width η and its derivative — the printed formula exactly as η → 0. Pairs are the two bands of
every two-band sector (each valley of ``ndd_two_valley``); ħ = 1 inside (ω in model energy units).

T = 0 (``integration: tetrahedron``). Per band the bracket is a Fermi-sea plus a Fermi-surface integral,
    Σ_{(m,n)} [A(ω_mn)(G_m f'_m + G_n f'_n) + (B̃(ω_mn) Gs_zxx + C̃(ω_mn) Gs_xxz) Δf_mn]
      = Σ_m ∫ [f_m Σ_n (T_mn − T_nm) + f'_m G_zxx,m Σ_n (A(ω_mn) + A(ω_nm))],
with B = B̃ Δf, C = C̃ Δf, Gs = G_m + G_n and T_mn = B̃(ω_mn) Gs_zxx + C̃(ω_mn) Gs_xxz (a relabelling of the sum,
exact). Those per-vertex integrands go through the linear-tetrahedron moment histograms of
``simplex_moments``: at T = 0, f → θ(μ − ε) (Fermi sea of the interpolant) and f' → −δ(ε − μ) (its Fermi
surface), exactly; at T > 0 the same histograms are contracted with f0, f0'.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# per (pair, ω) components of the tetrahedron integrands: Fermi sea (re, im), Fermi surface (re, im), ⟨G⟩ sea
SEA_RE, SEA_IM, SURF_RE, SURF_IM, AVG_SEA = range(5)
N_PARTS = 5


def two_band_pairs(band_sector: np.ndarray) -> np.ndarray:
    """(P, 2) band indices of the two bands of each sector; every sector must have exactly two bands."""
    pairs = []
    for label in dict.fromkeys(band_sector.tolist()):
        idx = np.flatnonzero(band_sector == label)
        if idx.size != 2:
            raise ValueError(f"sector '{label}' has {idx.size} bands; two-band transitions (002 Eq. 12) need "
                             "exactly two bands per sector")
        pairs.append(idx)
    return np.array(pairs, np.int64).reshape(-1, 2)


@njit(cache=True, error_model="numpy")
def _fermi_pair(e, mu, kT):
    x = (e - mu) / kT
    if x > 0:
        t = math.exp(-x)
        f = t / (1.0 + t)
    else:
        f = 1.0 / (1.0 + math.exp(x))
    return f, -f * (1.0 - f) / kT


PAIR_ROWS = 1024  # rows (k-point, order, occupation factor) per matrix product in ndd_accumulate


@njit(cache=True, error_model="numpy")
def ndd_accumulate(energy, velocity, metric, weight, band_weight, pairs, mu, kT, omega, eta, out, average):
    """out[p, ω, μ, T] += Σ_k w_k Σ_{(m,n) ordered in pair p} [A(...) + B(...) + C(...)] (see module doc).

    velocity (N, nb, 3) = ∂ε; metric (N, nb, 3, 3) = g; out complex (P, n_ω, n_μ, n_T).
    ``average`` (P, n_ω, n_μ, n_T) real accumulates 002's ⟨G_zxx,m + G_zxx,n⟩(λ = −ω) =
    Σ ∫ (G_zxx,m + G_zxx,n) Δf_mn ω_mn² δ(ω_mn + ω) (text under Eq. 13; Fig. 4a), δ → Lorentzian.
    Each term is (a function of ω_mn and ω) × (a function of ε_m, ε_n, μ and T): A × (G_m f'_m + G_n f'_n) and
    (B/Δf G_zxx + C/Δf G_xxz, Gs ω_mn² δ) × Δf_mn — so the ω factors are built once per k-point and order, the
    (μ, T) factors once per k-point, and the sum over k is a matrix product of the two (blocks of PAIR_ROWS rows).
    """
    N = energy.shape[0]
    _, n_w, n_mu, n_T = out.shape
    n_f = n_mu * n_T
    inv_pi = 1.0 / math.pi
    for p in range(pairs.shape[0]):
        omega_side = np.zeros((3 * n_w, PAIR_ROWS))  # rows Re, Im of the bracket, ⟨G⟩; a column per (k, order, factor)
        occupation_side = np.zeros((PAIR_ROWS, n_f))  # G_m f'_m + G_n f'_n, or Δf_mn, at every (μ, T)
        total = np.zeros((3 * n_w, n_f))
        q = 0
        while q < N:
            r = 0
            while q < N and r < PAIR_ROWS:
                w = weight[q]
                if w != 0.0:
                    for order in range(2):
                        m = pairs[p, order]
                        n = pairs[p, 1 - order]
                        bw = w * band_weight[m]
                        wmn = energy[q, m] - energy[q, n]
                        g_zxx = velocity[q, m, 2] * metric[q, m, 0, 0] + velocity[q, n, 2] * metric[q, n, 0, 0]
                        g_xxz = velocity[q, m, 0] * metric[q, m, 0, 2] + velocity[q, n, 0] * metric[q, n, 0, 2]
                        gm_zxx = velocity[q, m, 2] * metric[q, m, 0, 0]
                        gn_zxx = velocity[q, n, 2] * metric[q, n, 0, 0]
                        for iw in range(n_w):
                            om = omega[iw]
                            z = complex(om, eta)
                            den = wmn * wmn - z * z
                            x = om + wmn
                            lor = eta * inv_pi / (x * x + eta * eta)
                            dlor = -2.0 * eta * inv_pi * x / ((x * x + eta * eta) ** 2)
                            a = (wmn * wmn / den).real + 1j * math.pi * om * lor
                            b = (-2.0 * wmn ** 3 / (den * den)).real + 1j * math.pi * wmn * wmn / om * dlor
                            c = (2.0 * wmn / den).real - 2j * math.pi * lor
                            bc = b * g_zxx + c * g_xxz
                            omega_side[iw, r] = bw * a.real
                            omega_side[n_w + iw, r] = bw * a.imag
                            omega_side[2 * n_w + iw, r] = 0.0
                            omega_side[iw, r + 1] = bw * bc.real
                            omega_side[n_w + iw, r + 1] = bw * bc.imag
                            omega_side[2 * n_w + iw, r + 1] = bw * g_zxx * wmn * wmn * lor
                        for im in range(n_mu):
                            for it in range(n_T):
                                fm, dfm = _fermi_pair(energy[q, m], mu[im], kT[it])
                                fn, dfn = _fermi_pair(energy[q, n], mu[im], kT[it])
                                occupation_side[r, im * n_T + it] = gm_zxx * dfm + gn_zxx * dfn
                                occupation_side[r + 1, im * n_T + it] = fm - fn
                        r += 2
                q += 1
            occupation_side[r:, :] = 0.0  # a last, partial block: its stale columns multiply zeros
            total += np.dot(omega_side, occupation_side)
        for iw in range(n_w):
            for im in range(n_mu):
                for it in range(n_T):
                    j = im * n_T + it
                    out[p, iw, im, it] += complex(total[iw, j], total[n_w + iw, j])
                    average[p, iw, im, it] += total[2 * n_w + iw, j]


def _spectral_coefficients(x, omega, eta):
    """A, B̃ = B/Δf, C̃ = C/Δf of 002 Eq. 12 and x² δ_η(ω + x) at pair energies ``x`` (…, 1) and photon energies
    ``omega`` (W,): complex (…, W) each (the ⟨G⟩ weight real), δ → Lorentzian of half-width η as in ndd_accumulate."""
    z = omega + 1j * eta
    den = x * x - z * z
    s = omega + x
    lor = eta / math.pi / (s * s + eta * eta)
    dlor = -2.0 * eta / math.pi * s / (s * s + eta * eta) ** 2
    a = (x * x / den).real + 1j * math.pi * omega * lor
    b = (-2.0 * x ** 3 / (den * den)).real + 1j * math.pi * x * x / omega * dlor
    c = (2.0 * x / den).real - 2j * math.pi * lor
    return a, b, c, x * x * lor


def ndd_vertex_integrands(energy, velocity, metric, band_weight, pairs, omega, eta):
    """Per-vertex integrands Q (N, nb, P·W·N_PARTS) of the T = 0 form (module doc): component
    ((p·W + w)·N_PARTS + part); band m's Fermi-sea parts Σ_n bw_m T_mn − bw_n T_nm, its Fermi-surface parts
    G_zxx,m (bw_m A(ω_mn) + bw_n A(ω_nm)) and its ⟨G⟩ part (bw_m S(ω_mn) − bw_n S(ω_nm)) Gs_zxx, S(x) = x² δ_η(ω+x).
    Zero outside the pair's bands, so each pair (sector) keeps its own components."""
    N, nb = energy.shape
    W = omega.size
    Q = np.zeros((N, nb, pairs.shape[0], W, N_PARTS))
    g_zxx = velocity[:, :, 2] * metric[:, :, 0, 0]
    g_xxz = velocity[:, :, 0] * metric[:, :, 0, 2]
    for p, (u, v) in enumerate(pairs):
        gs_zxx = (g_zxx[:, u] + g_zxx[:, v])[:, None]
        gs_xxz = (g_xxz[:, u] + g_xxz[:, v])[:, None]
        for m, n in ((u, v), (v, u)):
            a_mn, b_mn, c_mn, s_mn = _spectral_coefficients((energy[:, m] - energy[:, n])[:, None], omega, eta)
            a_nm, b_nm, c_nm, s_nm = _spectral_coefficients((energy[:, n] - energy[:, m])[:, None], omega, eta)
            bm, bn = band_weight[m], band_weight[n]
            sea = bm * (b_mn * gs_zxx + c_mn * gs_xxz) - bn * (b_nm * gs_zxx + c_nm * gs_xxz)
            surf = g_zxx[:, m, None] * (bm * a_mn + bn * a_nm)
            Q[:, m, p, :, SEA_RE] = sea.real
            Q[:, m, p, :, SEA_IM] = sea.imag
            Q[:, m, p, :, SURF_RE] = surf.real
            Q[:, m, p, :, SURF_IM] = surf.imag
            Q[:, m, p, :, AVG_SEA] = (bm * s_mn - bn * s_nm) * gs_zxx
    return Q.reshape(N, nb, -1)


def ndd_from_histograms(sea, surface, n_pairs, n_omega):
    """(bracket complex, ⟨G⟩ real), each (P, W, μ, T), from the read-outs ``sea`` = Σ∫ Q f0 and ``surface`` =
    Σ∫ Q f0' of :func:`ndd_vertex_integrands` (μ, T, P·W·N_PARTS)."""
    shape = sea.shape[:2] + (n_pairs, n_omega, N_PARTS)
    sea, surface = sea.reshape(shape), surface.reshape(shape)
    bracket = (sea[..., SEA_RE] + surface[..., SURF_RE]) + 1j * (sea[..., SEA_IM] + surface[..., SURF_IM])
    return np.moveaxis(bracket, (0, 1), (2, 3)), np.moveaxis(sea[..., AVG_SEA], (0, 1), (2, 3))
