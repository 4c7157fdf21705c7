"""The k-resolved quantum-metric dipole Λ of 001 (its Eq. 14 integrand), from stored band fields."""

from __future__ import annotations

import numpy as np

NAME = "quantum_metric_dipole_lambda"
LONG_NAME = "quantum-metric dipole Λ^ijk_n"
FORMULA = "001 Eq. 14: Λ^ijk_n = v^i_n 𝒢^jk_n − ½(v^j_n 𝒢^ik_n + v^k_n 𝒢^ij_n), v = ∂ε/∂k (CATALOG dipoles)"
ENERGY_POWER, LENGTH_POWER = 0, 3  # (energy·length) × (length²/energy)
NEEDS = ("velocity", "bcp")


def quantum_metric_dipole_lambda(velocity: np.ndarray, bcp: np.ndarray) -> np.ndarray:
    """Λ (N, n, i, j, k) from the velocity ∂ε (N, n, i) and band-normalized metric 𝒢 (N, n, i, j)."""
    vg = velocity[:, :, :, None, None] * bcp[:, :, None, :, :]  # [i, j, k] = v^i 𝒢^jk
    return vg - 0.5 * (vg.transpose(0, 1, 3, 2, 4) + vg.transpose(0, 1, 3, 4, 2))
