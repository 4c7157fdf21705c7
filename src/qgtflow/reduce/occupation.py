"""Fermi–Dirac occupation and its energy derivatives.

With x = (ε − μ)/k_BT and f = 1/(e^x + 1), df/dx = f² − f, so d^n f/dε^n = (k_BT)^{-n} P_n(f)
with P_0(f) = f and P_{n+1}(f) = P_n'(f) (f² − f): exact polynomials in f, evaluated stably.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import polynomial as P


def _fermi_polynomials(order: int) -> list[np.ndarray]:
    polys = [np.array([0.0, 1.0])]  # P_0(f) = f
    step = np.array([0.0, -1.0, 1.0])  # f² − f
    for _ in range(order):
        polys.append(P.polymul(P.polyder(polys[-1]), step))
    return polys


FERMI_POLYNOMIALS = _fermi_polynomials(8)


def fermi(energy, mu, kT):
    """f0(ε) = 1/(exp((ε − μ)/k_BT) + 1), overflow-free."""
    return 0.5 * (1.0 - np.tanh(0.5 * (np.asarray(energy) - mu) / kT))


def fermi_derivative(energy, mu, kT, order: int):
    """d^order f0 / dε^order at ``energy`` (model energy units)."""
    f = fermi(energy, mu, kT)
    return P.polyval(f, FERMI_POLYNOMIALS[order]) / kT**order
