"""The Wannier position operator of a tight-binding model: the basis Berry connection A^W(k).

Wang, Yates, Souza, Vanderbilt, PRB 74, 195118 (2006) (WYSV) Eq. 23, 31: the Bloch sums |χ_m(k)⟩ of the
Wannier functions carry a connection of their own, A^W_nm(k) = i⟨u^W_n|∂_k u^W_m⟩, from the position matrix
elements r_nm(R) = ⟨0n|r|Rm⟩ (Wannier90's ``_tb.dat``). In the model's phase convention (II: the Bloch sum
has the phase e^{ik·(R+τ_m)}; I: τ = 0)

    A^W_nm(k) = Σ_R e^{ik·(R + τ_m − τ_n)} [r_nm(R) − τ_m δ_nm δ_R0]

(a derivation in one line: ∂_k of e^{−ik·r} e^{ik·(R+τ_m)} brings down i(R + τ_m − r)). With τ the Wannier
centres (r_mm(0)) the R = 0 diagonal vanishes: A^W is the part of the position operator that the
tight-binding approximation drops. It has exactly the structure of a hopping table (r(−R) = r(R)^†), so each
Cartesian component is a :class:`TightBindingModel` of the same lattice, positions and convention, and its
k-derivatives are exact like those of H.
"""

from __future__ import annotations

import hashlib

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.tight_binding import (CELL_SUM_BLOCK_BYTES, PAIRED_BLOCK_K, PAIRED_MIN_BANDS,
                                         HermitianBlochSums, TightBindingModel)

FORMULA = "Wang, Yates, Souza, Vanderbilt, PRB 74, 195118 (2006) Eq. 27 (projector form: geometry/position.py)"
LABEL_ON = ("position operator: full, Wannier matrix elements A(R) = <0m|r|Rn> beyond the centres included in "
            "berry_curvature, quantum_metric, bcp, their dipoles, the Christoffel symbols and the metric quadrupole ("
            + FORMULA + "), and in the 003 spin-current fields (vertex ¼{𝒱^a, σ^c}, 𝒱^a = ∂_aH − i[A^W_a, H]: "
            "docs/spin-position-operator.md)")
LABEL_OFF = "position operator: tight-binding approximation (Wannier centres only; A(R) of the file not used)"


class PositionOperator:
    """A^W_a(k) for a = 0..dim−1 and its exact k-derivatives, as :meth:`unique_derivatives` (N, d, U, n, n)."""

    def __init__(self, name, lattice, positions, tables: list[dict], convention: str):
        self.components = [TightBindingModel.from_table(f"{name}[r_{'xyz'[a]}]", lattice, positions, tab,
                                                        convention=convention)
                           for a, tab in enumerate(tables)]
        if len(self.components) != self.components[0].dim:
            raise ModelError(f"model '{name}': {len(tables)} position components for a "
                             f"{self.components[0].dim}D lattice; expected one per direction")
        if any(not np.array_equal(c.cells, self.components[0].cells) for c in self.components):
            raise ModelError(f"model '{name}': position components with {[len(c.cells) for c in self.components]} R "
                             f"vectors; expected one R set for every component")
        self.pairs = [(a, b) for a in range(self.dim) for b in range(a + 1, self.dim)]
        self._curvature = None  # B_ab(R) blocks, built on first use (:meth:`curvature_blocks`), not pickled
        self._paired = False  # the real ±R sums of A^W and Ω^W (:meth:`paired_sums`): False = not built yet

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_curvature"] = None  # derived from the components: rebuilt where it is used
        state["_paired"] = False
        return state

    def paired_sums(self) -> HermitianBlochSums | None:
        """The d components' blocks and the P pairs' :meth:`curvature_blocks` as one stack of Hermitian tables
        (real ±R products of ``tight_binding.HermitianBlochSums``: one product for A^W and Ω^W together), from
        ``PAIRED_MIN_BANDS`` bands on when the tables are Hermitian-paired; None: the complex products."""
        if self._paired is False:
            first = self.components[0]
            n, P = first.nbands, len(self.pairs)
            self._paired = None
            if n >= PAIRED_MIN_BANDS:
                blocks = np.concatenate([c.matrices for c in self.components] + ([self.curvature_blocks()] if P else []),
                                        axis=1).reshape(-1, self.dim + P, n, n)
                self._paired = HermitianBlochSums.of(first.cells, first.displacements, blocks)
        return self._paired

    def curvature_blocks(self) -> np.ndarray:
        """(n_R, P n²): per pair a < b (P = d(d−1)/2) B_ab(R) = i(R_a A_b(R) − R_b A_a(R)), the R-space blocks of
        the basis curvature Ω^W_ab = ∂_aA^W_b − ∂_bA^W_a (phase-free part); built once, only by the fields that
        read Ω^W alone (runs of the dipoles never hold it)."""
        if self._curvature is None:
            R = self.components[0].displacements  # Cartesian R, (n_R, d)
            A = [c.matrices for c in self.components]
            self._curvature = np.concatenate([1j * (R[:, a, None] * A[b] - R[:, b, None] * A[a])
                                              for a, b in self.pairs], axis=1) if self.pairs else \
                np.zeros((R.shape[0], 0), complex)
        return self._curvature

    @property
    def dim(self) -> int:
        return len(self.components)

    def connection_curvature(self, k: np.ndarray) -> np.ndarray:
        """A^W_a (a < d) and Ω^W_ab = ∂_aA^W_b − ∂_bA^W_a (pairs a < b, in :attr:`pairs` order) at ``k``:
        (N, d + P, n, n), all that the external terms of Ω, g and 𝒢 read (their dipoles need
        :meth:`unique_derivatives`). Products (N, n_R) @ (n_R, n²) of the phases e^{ik·R} with the d components'
        blocks and one with the P pairs' :meth:`curvature_blocks`, per block of k-points, written in place: 2d
        Bloch sums' worth instead of the 4d of ``unique_derivatives(order=1)``;
        convention II multiplies by E_ij = e^{ik·(τ_j − τ_i)} after adding the phase's own derivative,
        Ω^W_ab = E ⊙ (G^B_ab + iΔ_a ⊙ G_b − iΔ_b ⊙ G_a), Δ = τ_j − τ_i, G the cell sums of the blocks."""
        first = self.components[0]
        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        N, n, d, P = k.shape[0], first.nbands, self.dim, len(self.pairs)
        out = np.empty((N, d + P, n, n), complex)
        flat = out.reshape(N, -1)
        offsets = None if first.phase_free else first.orbital_offsets
        B, n2 = self.curvature_blocks(), n * n
        paired = self.paired_sums()
        step = PAIRED_BLOCK_K if paired is not None else max(8, CELL_SUM_BLOCK_BYTES // (16 * (d + P) * n2))
        for lo in range(0, N, step):
            hi = min(N, lo + step)
            if paired is not None:  # Hermitian tables: one real product over half the R set, upper triangles
                paired.fill(k[lo:hi], [()], flat[lo:hi, None])
            else:
                phases = np.exp(1j * (k[lo:hi] @ first.displacements.T))
                for a, c in enumerate(self.components):  # into the component's columns of ``out``
                    np.matmul(phases, c.matrices, out=flat[lo:hi, a * n2:(a + 1) * n2])
                if P:
                    np.matmul(phases, B, out=flat[lo:hi, d * n2:])
            if offsets is None:
                continue
            G = out[lo:hi]
            for p, (a, b) in enumerate(self.pairs):
                G[:, d + p] += 1j * (offsets[:, :, a] * G[:, b] - offsets[:, :, b] * G[:, a])
            f = np.exp(1j * (k[lo:hi] @ offsets[0].T))  # e^{ik·(τ_j − τ_0)}: E_ij = f_i* f_j, n exponentials, not n²
            G *= (np.conj(f)[:, :, None] * f[:, None, :])[:, None]
        return out

    def unique_derivatives(self, k: np.ndarray, order: int = 3) -> np.ndarray:
        """A^W_a and its distinct derivatives up to ``order`` (slots of ``models/derivatives.py``):
        (N, d, U, n, n); a is the Cartesian component of A. A view of one (d, N, U, n, n) array that each
        component fills in place (no stacking copy: ~2 ms per k-point at 84 bands)."""
        from qgtflow.models.derivatives import slot_count

        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        n = self.components[0].nbands
        out = np.empty((self.dim, k.shape[0], slot_count(self.dim, order), n, n), complex)
        for a, c in enumerate(self.components):
            c.unique_derivatives(k, out=out[a], order=order)
        return np.moveaxis(out, 0, 1)

    def identity(self) -> str:
        """A digest of the tables (in the model's identity: switching the operator on or off changes the hash)."""
        h = hashlib.sha256()
        for c in self.components:
            h.update(np.ascontiguousarray(c.cells).tobytes())
            h.update(np.round(c.matrices, 14).tobytes())
        return h.hexdigest()[:16]


def attach(model: TightBindingModel, tables: list[dict] | None, frac: np.ndarray, enabled: bool) -> TightBindingModel:
    """Give ``model`` its position operator (``tables``: per Cartesian component {R: (n, n)} in model length
    units, already relative to the phase positions, see :func:`relative_tables`; ``frac``: the fractional
    orbital positions of the phase), or record that it was left out; the model's convention label (stored in
    every store's attrs) says which."""
    has_terms = tables is not None and any(np.any(m) for tab in tables for m in tab.values())
    model.position = None
    if not has_terms:
        return model
    if enabled:
        conv = "II" if model.orbital_offsets is not None else "I"
        model.position = PositionOperator(model.name, model.lattice, frac, tables, conv)
        model.convention = f"{model.convention}; {LABEL_ON}"
    else:
        model.convention = f"{model.convention}; {LABEL_OFF}"
    return model


def relative_tables(rtab: dict, tau_cart: np.ndarray, dim: int) -> list[dict]:
    """{R: (n, n, 3)} position blocks (model length units) → per component a < dim {R: (n, n)} of
    r_nm(R) − τ_m δ_nm δ_R0 (τ: Cartesian positions of the phase, zero for convention I)."""
    out = []
    for a in range(dim):
        tab = {R: np.array(m[..., a]) for R, m in rtab.items()}
        zero = (0,) * len(next(iter(rtab)))
        if zero in tab:
            tab[zero] = tab[zero] - np.diag(tau_cart[:, a])
        out.append(tab)
    return out
