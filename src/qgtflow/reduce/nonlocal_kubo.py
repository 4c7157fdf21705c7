"""002 Eq. 11: the spatially dispersive (non-local) Kubo conductivity, any number of bands, degenerate-safe.

    σ_ij(ω, q) = −(e²/iω) Σ_{m,n} ∫[dk] (f_{m,k−q} − f_{n,k}) M_ij / (ε_{m,k−q} − ε_{n,k} + ω + iη),
    M_ij = ⟨u_{m,k−q}| v̂_i |u_{n,k}⟩⟨u_{n,k}| v̂_j |u_{m,k−q}⟩                            (002 Eq. 11)

with ħ = e = 1 (ω, η in model energy units, v̂ = ∂_k H), ω → z = ω + iη also in the prefactor (so a term iD/z
with D real, e.g. the diamagnetic one Eq. 11 omits, drops out of Δn), the velocity vertex at the midpoint k − q/2
(exact for H at most quadratic in k). σ_ijl = ∂σ_ij/∂q_l (002 Eq. 2) is the symmetric difference of the exact
Eq. 11 at q = ±h, ±2h, Richardson-extrapolated: [4 D(h) − D(2h)]/3, D(h) = [σ(h ê_l) − σ(−h ê_l)]/(2h), error O(h⁴).

Gauge and degeneracy: the weight of a pair (m, n) depends only on the energies, so summing M over the states of
degenerate groups gives Tr[P_G(k−q) v̂_i P_G'(k) v̂_j] — the sum is gauge invariant and needs no special handling
at degeneracies. Parts (``PARTS``): ``interband`` pairs (m, n) in different degenerate groups of H(k) (band indices
sorted by energy, groups within ``threshold``), ``intraband`` pairs inside one group — at linear order in q the
latter is Σ_G ∫ ∂_lε_G Tr[P_G v̂_i P_G v̂_j] f0'(ε_G) / (i z²), which 002 Eq. 12 does not contain (its two-band
A, B, C terms are the interband part; docs/ndd-kubo-design.md finding 1).

Sector models (valleys) are diagonalised sector by sector and summed with their weights, or kept apart.
"""

from __future__ import annotations

import numpy as np

from qgtflow.geometry.groups import group_labels
from qgtflow.models.sectors import sector_blocks
from qgtflow.reduce.occupation import fermi

PARTS = ("interband", "intraband")
AXES = "xyz"


def _hamiltonian(model, k):
    """H at k: (N, n, n) (the model fills only its order-0 slot)."""
    return model.unique_derivatives(k, order=0)[:, 0]


def _velocity(model, k):
    """∂_a H at k: (N, d, n, n) (slots 1…d of the compact order-1 array, models/derivatives.py)."""
    return model.unique_derivatives(k, order=1)[:, 1:1 + model.dim]


def pair_sum(energy_a, states_a, energy_b, states_b, vertex, same_group, weight, mu, kT, z):
    """Σ_k w_k Σ_{m,n} (f(ε^a_m) − f(ε^b_n)) M^ij_mn / (ε^a_m − ε^b_n + z), split into (interband, intraband).

    a: the states at k − q (energies (N, n), eigenvectors as columns (N, n, n)); b: the states at k.
    M^ij_mn = ⟨a_m| v_i |b_n⟩⟨b_n| v_j |a_m⟩ with the vertices ``vertex`` (N, d, n, n); ``same_group`` (N, n, n)
    bool marks the intraband pairs. Returns (2, W, μ, T, d, d) complex (without the −1/(iz) of Eq. 11)."""
    N, d, n, _ = vertex.shape
    ab = np.conj(np.swapaxes(states_a, -1, -2))[:, None] @ vertex @ states_b[:, None]  # [i, m, n] = ⟨a_m|v_i|b_n⟩
    ba = np.conj(np.swapaxes(ab, -1, -2))  # [j, n, m] = ⟨b_n|v_j|a_m⟩ (v Hermitian), as [j, m, n]
    M = ab[:, :, None] * np.swapaxes(ba, -1, -2)[:, None, :] * weight[:, None, None, None, None]  # (N, i, j, m, n)
    M = np.moveaxis(M, (1, 2), (0, 1))  # (i, j, N, m, n)
    resolvent = 1.0 / ((energy_a[:, :, None] - energy_b[:, None, :])[..., None] + z)  # (N, m, n, W)
    out = np.zeros((2, z.size, mu.size, kT.size, d, d), complex)
    parts = [np.where(mask, M, 0.0).reshape(d * d, N * n * n) for mask in (~same_group, same_group)]
    for a, m_ in enumerate(mu):
        for b, t in enumerate(kT):
            occupation = fermi(energy_a, m_, t)[:, :, None] - fermi(energy_b, m_, t)[:, None, :]
            G = (occupation[..., None] * resolvent).reshape(N * n * n, z.size)
            for p, Mp in enumerate(parts):
                out[p, :, a, b] = (Mp @ G).T.reshape(z.size, d, d)
    return out


def unshifted_states(model, k, threshold=1e-8) -> list:
    """Per sector: (energies, eigenvectors, intraband-pair mask) at the k-points themselves — the side of every
    q-shifted pair sum that does not move with q, computed once for all the ±h, ±2h and directions of a derivative."""
    k = np.asarray(k, float)
    out = []
    for _, block, _ in sector_blocks(model):
        energy, states = np.linalg.eigh(_hamiltonian(block, k))
        labels = group_labels(energy, threshold)
        out.append((energy, states, labels[:, :, None] == labels[:, None, :]))
    return out


def sigma_at_q(model, k, weight, q, mu, kT, omega, eta, threshold=1e-8, sectors=False, unshifted=None):
    """002 Eq. 11 at wave vector ``q`` (d,) on k-points ``k`` (N, d) with weights ``weight`` (N,) (the [dk]
    measure): σ_ij complex, (part, W, μ, T, i, j), or (sector, part, W, μ, T, i, j) with ``sectors``.
    ``unshifted``: :func:`unshifted_states` of ``k`` (default: computed here)."""
    k = np.asarray(k, float)
    q = np.asarray(q, float)
    mu, kT, omega = (np.atleast_1d(np.asarray(x, float)) for x in (mu, kT, omega))
    z = omega + 1j * eta
    if unshifted is None:
        unshifted = unshifted_states(model, k, threshold)
    out = []
    for (_, block, w), (energy_b, states_b, same) in zip(sector_blocks(model), unshifted):
        energy_a, states_a = np.linalg.eigh(_hamiltonian(block, k - q))
        s = pair_sum(energy_a, states_a, energy_b, states_b, _velocity(block, k - 0.5 * q), same, weight, mu, kT, z)
        out.append(-w * s / (1j * z[:, None, None, None, None]))
    out = np.stack(out)
    return out if sectors else out.sum(axis=0)


def sigma_q_derivative(model, k, weight, l, mu, kT, omega, eta, h, threshold=1e-8, sectors=False, unshifted=None):
    """σ_ijl = ∂σ_ij/∂q_l at q = 0 (002 Eq. 2) from Eq. 11 at q = ±h ê_l, ±2h ê_l, Richardson-extrapolated:
    (…, W, μ, T, i, j) as :func:`sigma_at_q`."""
    unit = np.zeros(model.dim)
    unit[l] = 1.0
    if unshifted is None:
        unshifted = unshifted_states(model, k, threshold)

    def difference(step):
        plus = sigma_at_q(model, k, weight, step * unit, mu, kT, omega, eta, threshold, sectors, unshifted)
        minus = sigma_at_q(model, k, weight, -step * unit, mu, kT, omega, eta, threshold, sectors, unshifted)
        return (plus - minus) / (2 * step)

    return (4 * difference(h) - difference(2 * h)) / 3


def sigma_tensor(model, k, weight, mu, kT, omega, eta, h, threshold=1e-8, sectors=False, axes=None):
    """σ_ijl (…, W, μ, T, i, j, l) of 002 Eq. 2 from Eq. 11 (one Richardson derivative per l) for the q directions
    ``axes`` (indices, in that order; default every axis: the full tensor)."""
    axes = range(model.dim) if axes is None else axes
    unshifted = unshifted_states(model, k, threshold)
    return np.stack([sigma_q_derivative(model, k, weight, l, mu, kT, omega, eta, h, threshold, sectors, unshifted)
                     for l in axes], axis=-1)


def delta_n(sigma_xxz_plus, sigma_xxz_minus):
    """002 Eq. 4 in units of e²cμ0/ħ: Δn = ½ i [σ_xxz(ω + iη) − σ*_xxz(−ω + iη)], from σ_xxz evaluated at +ω and
    at −ω (same η) — the real-D terms iD/z cancel."""
    return 0.5j * (sigma_xxz_plus - np.conj(sigma_xxz_minus))


def step_size(model, k, eta, kT, relative=1e-2):
    """h = relative · min(η, k_BT) / max|∂_k H| on the grid: the q-shift of the pair energies stays a small
    fraction of the narrowest scale (Lorentzian width, thermal width) of the Eq. 11 integrand."""
    vmax = max(np.abs(_velocity(block, k)).max() for _, block, _ in sector_blocks(model))
    return relative * min(eta, float(np.min(kT))) / max(vmax, 1e-300)
