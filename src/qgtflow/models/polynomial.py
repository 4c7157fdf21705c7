"""k·p models: H(k) = Σ_e C_e k^e, a polynomial in k with matrix coefficients.

Derivatives are exact: ∂^α k^e = Π_i e_i!/(e_i-α_i)! k_i^(e_i-α_i). Evaluation over a chunk is
one (N, n_monomials) @ (n_monomials, n²) product per derivative multi-index.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.base import Model, derivative_multi_indices


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
        self.coefficients = np.stack([mats[tuple(e)] for e in self.exponents]).reshape(len(self.exponents), -1)

    def identity(self) -> dict:
        ident = super().identity()
        ident["terms"] = {",".join(map(str, e)): [c.real.round(15).tolist(), c.imag.round(15).tolist()]
                          for e, c in zip(self.exponents.tolist(), self.coefficients)}
        return ident

    def _monomials(self, k: np.ndarray, alpha: tuple) -> np.ndarray:
        """Values of ∂^alpha k^e for every monomial e: shape (N, n_monomials)."""
        counts = np.bincount(np.asarray(alpha, dtype=np.int64), minlength=self.dim) if alpha else np.zeros(self.dim, int)
        out = np.ones((k.shape[0], len(self.exponents)))
        for m, expo in enumerate(self.exponents):
            coef = 1.0
            for i in range(self.dim):
                if counts[i] > expo[i]:
                    coef = 0.0
                    break
                coef *= factorial(expo[i]) / factorial(expo[i] - counts[i])
            if coef == 0.0:
                out[:, m] = 0.0
                continue
            val = np.full(k.shape[0], coef)
            for i in range(self.dim):
                p = expo[i] - counts[i]
                if p:
                    val = val * k[:, i] ** p
            out[:, m] = val
        return out

    def derivatives(self, k: np.ndarray, order: int = 3) -> list[np.ndarray]:
        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        n, d, N = self.nbands, self.dim, k.shape[0]
        result = []
        for o in range(order + 1):
            out = np.empty((N,) + (d,) * o + (n, n), dtype=complex)
            for alpha in derivative_multi_indices(d, o):
                sorted_alpha = tuple(sorted(alpha))
                if sorted_alpha != alpha:  # symmetric in derivative indices
                    out[(slice(None),) + alpha] = out[(slice(None),) + sorted_alpha]
                    continue
                out[(slice(None),) + alpha] = (self._monomials(k, alpha) @ self.coefficients).reshape(N, n, n)
            result.append(out)
        return result
