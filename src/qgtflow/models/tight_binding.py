"""Tight-binding models: H(k) = Σ_d M_d e^{ik·d}, exact derivatives ∂^α H = Σ_d (i d)^α M_d e^{ik·d}.

Each hopping t from orbital j in cell R to orbital i in cell 0 contributes to H_ij(k) with the
phase e^{ik·d}. Convention II (default, "orbital positions in the phase") uses d = R + τ_j − τ_i;
convention I uses d = R. The chosen convention is recorded in every store's attrs.
Evaluation over a chunk is one (N, n_d) @ (n_d, n²) product per derivative multi-index.
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.base import Model
from qgtflow.models.derivatives import unique_multi_indices


class TightBindingModel(Model):
    """Lattice model from hoppings.

    Parameters
    ----------
    lattice: (dim, dim) lattice vectors as rows (model length units).
    positions: (n, dim) orbital positions in fractional (reduced) coordinates.
    hoppings: iterable of (R (dim ints), i, j, t) meaning <i, 0|H|j, R> = t. Hermitian
        partners are *not* added automatically; list both or use :meth:`add_hermitian`.
    onsite: length-n on-site energies.
    convention: "II" (phase uses orbital positions) or "I" (phase uses R only).
    """

    def __init__(self, name, lattice, positions, hoppings, onsite=None, params=None, convention="II"):
        lattice = np.asarray(lattice, float)
        dim = lattice.shape[0]
        if lattice.shape != (dim, dim) or abs(np.linalg.det(lattice)) < 1e-12:
            raise ModelError(f"model '{name}': lattice vectors {lattice.tolist()} must be a non-singular dim×dim matrix")
        positions = np.asarray(positions, float).reshape(-1, dim)
        nb = positions.shape[0]
        if convention not in ("I", "II"):
            raise ModelError(f"model '{name}': convention {convention!r}; expected 'I' or 'II'")
        label = ("tight-binding, convention II: H_ij(k) = sum_R t_ij(R) exp(i k.(R + tau_j - tau_i))"
                 if convention == "II" else "tight-binding, convention I: H_ij(k) = sum_R t_ij(R) exp(i k.R)")
        super().__init__(name=name, dim=dim, nbands=nb, params=dict(params or {}), periodic=True,
                         lattice=lattice, convention=label)
        cart_pos = positions @ lattice
        table: dict[tuple, np.ndarray] = {}
        # integer-R hopping table <i, 0|H|j, R> (on-site at R = 0), convention independent;
        # used by exporters (qgtflow.models.wannier.write_hr)
        self.hopping_table: dict[tuple, np.ndarray] = {}
        entries = [((0,) * dim, i, i, e) for i, e in enumerate(onsite if onsite is not None else np.zeros(nb))]
        entries += [(tuple(int(r) for r in R), int(i), int(j), t) for R, i, j, t in hoppings]
        for R, i, j, t in entries:
            if not (0 <= i < nb and 0 <= j < nb):
                raise ModelError(f"model '{name}': hopping ({R}, {i}, {j}) names an orbital outside 0..{nb - 1}")
            d = np.asarray(R, float) @ lattice
            if convention == "II":
                d = d + cart_pos[j] - cart_pos[i]
            key = tuple(np.round(d, 12))  # merges equal bonds; the phase keeps the unrounded vector
            _, mat = table.setdefault(key, (d, np.zeros((nb, nb), complex)))
            mat[i, j] += t
            if R not in self.hopping_table:
                self.hopping_table[R] = np.zeros((nb, nb), complex)
            self.hopping_table[R][i, j] += t
        self.displacements = np.array([d for d, _ in table.values()], float).reshape(-1, dim)
        self.matrices = np.stack([m for _, m in table.values()]).reshape(len(table), nb * nb)

    def identity(self) -> dict:
        ident = super().identity()
        ident["lattice"] = np.round(self.lattice, 12).tolist()
        order = np.lexsort(self.displacements.T[::-1])
        ident["hoppings"] = [[np.round(self.displacements[o], 12).tolist(),
                              np.round(self.matrices[o].real, 14).tolist(),
                              np.round(self.matrices[o].imag, 14).tolist()] for o in order]
        return ident

    def coefficient_matrices(self) -> np.ndarray:
        return self.matrices.reshape(-1, self.nbands, self.nbands)

    def unique_derivatives(self, k: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        n, N = self.nbands, k.shape[0]
        phases = np.exp(1j * (k @ self.displacements.T))  # (N, n_d)
        idisp = 1j * self.displacements  # (n_d, dim)
        alphas = unique_multi_indices(self.dim)
        shape = (N, len(alphas), n, n)
        out = np.empty(shape, complex) if out is None or out.shape != shape else out
        for u, alpha in enumerate(alphas):
            factor = np.ones(len(self.displacements), complex)
            for a in alpha:
                factor = factor * idisp[:, a]
            out[:, u] = (phases @ (factor[:, None] * self.matrices)).reshape(N, n, n)
        return out
