"""k·p models: H(k) = Σ_e C_e k^e, a polynomial in k with matrix coefficients.

Derivatives are exact: ∂^α k^e = Π_i e_i!/(e_i−α_i)! k_i^(e_i−α_i). A compiled loop evaluates
all distinct derivatives for a whole chunk of k-points.
"""

from __future__ import annotations

from math import factorial

import numpy as np
from numba import njit, prange

from qgtflow.errors import ModelError
from qgtflow.models.base import Model
from qgtflow.models.derivatives import slot_count, unique_multi_indices


@njit(parallel=True, cache=True)
def _evaluate(k, factor, power, coefficients, out):
    """out[q, u] = Σ_m factor[u, m] Π_i k[q, i]^power[u, m, i] coefficients[m]."""
    N, dim = k.shape
    U, M = factor.shape
    n = coefficients.shape[1]
    for q in prange(N):
        for u in range(U):
            for a in range(n):
                for b in range(n):
                    out[q, u, a, b] = 0.0
            for m in range(M):
                c = factor[u, m]
                if c == 0.0:
                    continue
                for i in range(dim):
                    for _ in range(power[u, m, i]):
                        c *= k[q, i]
                for a in range(n):
                    for b in range(n):
                        out[q, u, a, b] += c * coefficients[m, a, b]


class PolynomialModel(Model):
    """A continuum model given by {exponent tuple: n×n coefficient matrix}."""

    def __init__(self, name, dim, terms: dict, params=None, kmax=None):
        mats = {}
        nb = None
        for expo, mat in terms.items():
            expo = tuple(int(e) for e in expo)
            if len(expo) != dim or min(expo, default=0) < 0:
                raise ModelError(f"model '{name}': monomial exponent {expo} does not fit dimension {dim}")
            mat = np.asarray(mat, dtype=complex)
            if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
                raise ModelError(f"model '{name}': coefficient of k^{expo} has shape {mat.shape}; expected square")
            if nb is None:
                nb = mat.shape[0]
            elif mat.shape[0] != nb:
                raise ModelError(f"model '{name}': coefficient of k^{expo} is {mat.shape[0]}x{mat.shape[0]}; "
                                 f"other terms are {nb}x{nb}")
            mats[expo] = mats.get(expo, 0) + mat
        if nb is None:
            raise ModelError(f"model '{name}': no terms")
        super().__init__(name=name, dim=dim, nbands=nb, params=dict(params or {}), periodic=False, kmax=kmax)
        self.exponents = np.array(sorted(mats), dtype=np.int64).reshape(-1, dim)
        self.coefficients = np.ascontiguousarray(np.stack([mats[tuple(e)] for e in self.exponents]))
        alphas = unique_multi_indices(dim)
        self._factor = np.zeros((len(alphas), len(self.exponents)))
        self._power = np.zeros((len(alphas), len(self.exponents), dim), np.int64)
        for u, alpha in enumerate(alphas):
            counts = np.bincount(np.asarray(alpha, np.int64), minlength=dim) if alpha else np.zeros(dim, np.int64)
            for m, expo in enumerate(self.exponents):
                if np.all(counts <= expo):
                    self._factor[u, m] = np.prod([factorial(e) / factorial(e - c) for e, c in zip(expo, counts)])
                    self._power[u, m] = expo - counts

    def identity(self) -> dict:
        ident = super().identity()
        ident["terms"] = {",".join(map(str, e)): [c.real.round(15).tolist(), c.imag.round(15).tolist()]
                          for e, c in zip(self.exponents.tolist(), self.coefficients)}
        return ident

    def active_slots(self) -> np.ndarray:
        """A derivative slot vanishes identically when no monomial survives it (e.g. ∂³ of a quadratic)."""
        return np.any(self._factor != 0.0, axis=1)

    def coefficient_matrices(self) -> np.ndarray:
        return self.coefficients

    def unique_derivatives(self, k: np.ndarray, out: np.ndarray | None = None, order: int = 3) -> np.ndarray:
        k = np.ascontiguousarray(np.asarray(k, dtype=float).reshape(-1, self.dim))
        slots = slot_count(self.dim, order)
        shape = (k.shape[0], slots, self.nbands, self.nbands)
        out = np.empty(shape, complex) if out is None or out.shape != shape else out
        _evaluate(k, self._factor[:slots], self._power[:slots], self.coefficients, out)
        return out
