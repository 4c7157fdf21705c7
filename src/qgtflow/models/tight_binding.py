"""Tight-binding models: H(k) = Σ_d M_d e^{ik·d}, exact derivatives ∂^α H = Σ_d (i d)^α M_d e^{ik·d}.

Each hopping t from orbital j in cell R to orbital i in cell 0 contributes to H_ij(k) with the
phase e^{ik·d}. Convention II (default, "orbital positions in the phase") uses d = R + τ_j − τ_i;
convention I uses d = R. The chosen convention is recorded in every store's attrs.
Storage is one n×n matrix per lattice vector R. Evaluation over a chunk is one (N, n_R) @ (n_R, n²)
product per distinct derivative multi-index β (G_β = Σ_R (iR)^β t(R) e^{ik·R}); convention II
multiplies elementwise by E_ij = e^{ik·(τ_j − τ_i)} and combines the G_β by the Leibniz rule.
Hermitian tables (t(−R) = t(R)^†, every Wannier90 model after the reader's symmetrisation) of
≥ :data:`PAIRED_MIN_BANDS` bands take real products over the ±R pairs and the upper triangles instead
(:class:`HermitianBlochSums`: a quarter of the multiply-adds; equal to rounding).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit, prange

from qgtflow.errors import ModelError
from qgtflow.models.base import Model
from qgtflow.models.derivatives import slot_count, unique_multi_indices


CELL_SUM_BLOCK_BYTES = 8 << 20  # k-points per block of the phase-free path: its G_β temporaries stay near cache size


HASH_INLINE_ENTRIES = 1 << 20  # hopping entries up to which the identity lists them (above: a digest)
HASH_ROWS = 64  # R blocks rounded per step of the digest (memory: a few blocks, not a copy of the table)


def table_digest(cells: np.ndarray, matrices: np.ndarray) -> str:
    """blake2b of the R vectors (int64) and the hoppings rounded to 14 decimals (real, imaginary float64 parts
    in this order): a function of exactly the values the inline identity lists (distinct
    floats, −0.0 and 0.0 included, give distinct bytes as they give distinct JSON)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((cells.shape, matrices.shape)).encode())
    h.update(np.ascontiguousarray(cells, np.int64).tobytes())
    for part in (matrices.real, matrices.imag):  # all real parts, then all imaginary (HASH_ROWS does not enter)
        for lo in range(0, len(part), HASH_ROWS):
            h.update(np.round(part[lo:lo + HASH_ROWS], 14).astype(np.float64).tobytes())
    return h.hexdigest()


# a table counts as Hermitian-paired when max |t(−R) − t(R)^†| ≤ this × max |t| (the lower triangles, taken as the
# conjugate of the upper, then differ from the complex sums by ≤ n_R × this, relative: the reader's symmetrised
# tables are paired exactly; its Wigner–Seitz images leave ~1e-34 residues)
HERMITIAN_PAIR_TOL = 1e-15
PAIRED_MIN_BANDS = 8  # from this band count on, Hermitian-paired tables take the real ±R sums (HermitianBlochSums)
# k-points per product of the real ±R sums: enough rows that the product is not bound by reading its (2K, n²) right
# side (84 bands, 343 R: 20 MB per table; the complex path's cache-sized blocks held 12-18 k-points)
PAIRED_BLOCK_K = 128


class HermitianBlochSums:
    """Bloch sums G_β(k) = Σ_R (iR)^β t_s(R) e^{ik·R} of s stacked n×n tables that are exactly Hermitian-paired,
    t_s(−R) = t_s(R)^† bit for bit (Wannier90 tables after the reader's symmetrisation; the position blocks A(R) and
    i(R_aA_b − R_bA_a)), from one half of the R set and the upper triangles only, by real products. Both t(R) and
    t(−R) enter as they are; only the lower triangle assumes the pairing (within :data:`HERMITIAN_PAIR_TOL`).

    With P = t_ij(R), Q = t_ij(−R) = conj t_ji(R), c = cos k·R, s = sin k·R, C = P + Q, D = i(P − Q) (C = P, D = 0
    at R = 0) the pair ±R gives, per upper entry i ≤ j,

        even |β|: w_β (C c + D s),   odd |β|: w_β (D c − C s),   w_β = (−1)^⌊|β|/2⌋ Π_{a∈β} R_a (real),

    so every β is one real product (N, 2K) @ (2K, 2m) of [w c | w s] with [C; D] (even) or [D; −C] (odd) seen as
    real pairs (K the half R set, m = s n(n+1)/2): a quarter of the real multiply-adds of the complex
    (N, n_R) @ (n_R, s n²) product; the lower triangle is the conjugate (G_β is Hermitian for such a table).
    Equal to the complex sums to rounding (~2e-15 relative on 84 bands), not bit for bit."""

    def __init__(self, displacements: np.ndarray, upper: np.ndarray, lower_src: np.ndarray, s: int, n: int):
        self.displacements = displacements  # Cartesian R of the half set (K, d)
        self.s, self.n = s, n
        iu0, iu1 = np.triu_indices(n)
        base = (np.arange(s) * n * n)[:, None]
        self.upper_flat = (base + iu0 * n + iu1).ravel()  # columns of the (s n²) flat layout
        self.lower_flat = (base + iu1 * n + iu0).ravel()
        P, Q = upper, lower_src  # (K, m): t_ij(R), t_ij(−R) on the upper entries
        C = P + Q
        D = 1j * (P - Q)
        zero = ~np.any(displacements != 0, axis=1)
        C[zero], D[zero] = P[zero], 0.0
        # per stacked table (2K, 2 n(n+1)/2) real views, so that a product's temporaries stay one table wide
        cols = [slice(t * C.shape[1] // s, (t + 1) * C.shape[1] // s) for t in range(s)]
        self.even = [np.ascontiguousarray(np.concatenate([C[:, c], D[:, c]])).view(float) for c in cols]
        self.odd = [np.ascontiguousarray(np.concatenate([D[:, c], -C[:, c]])).view(float) for c in cols]
        self.upper_flat = self.upper_flat.reshape(s, -1)
        self.lower_flat = self.lower_flat.reshape(s, -1)

    @classmethod
    def of(cls, cells: np.ndarray, displacements: np.ndarray, blocks: np.ndarray) -> "HermitianBlochSums | None":
        """The sums of ``blocks`` (n_R, s, n, n) on the R list ``cells`` (n_R, d) if every t_s(−R) is present and
        equal to t_s(R)^† (within :data:`HERMITIAN_PAIR_TOL`); None otherwise (the caller keeps its complex
        product)."""
        n_R, s, n = blocks.shape[0], blocks.shape[1], blocks.shape[-1]
        row = {tuple(R): r for r, R in enumerate(cells.tolist())}
        minus = np.array([row.get(tuple(-x for x in R), -1) for R in cells.tolist()], np.int64)
        if np.any(minus < 0) or (np.abs(blocks[minus] - np.conj(np.swapaxes(blocks, -1, -2))).max()
                                 > HERMITIAN_PAIR_TOL * np.abs(blocks).max()):
            return None
        half = np.array([r for r, R in enumerate(cells.tolist()) if tuple(R) >= (0,) * len(R)], np.int64)
        iu0, iu1 = np.triu_indices(n)
        upper = blocks[half][:, :, iu0, iu1].reshape(half.size, -1)
        lower_src = blocks[minus[half]][:, :, iu0, iu1].reshape(half.size, -1)
        return cls(displacements[half], upper, lower_src, s, n)

    def fill(self, k: np.ndarray, betas, out: np.ndarray) -> None:
        """out[q, u] (N, len(betas), s n²) flat ← G_β(k) for β = betas[u] (multi-indices of Cartesian axes)."""
        theta = k @ self.displacements.T
        cs = np.concatenate([np.cos(theta), np.sin(theta)], axis=1)  # (N, 2K): [c | s]
        K = self.displacements.shape[0]
        for u, beta in enumerate(betas):
            w = np.ones(K)
            for a in beta:
                w = w * self.displacements[:, a]
            if (len(beta) // 2) % 2:
                w = -w
            left = cs if not beta else cs * np.concatenate([w, w])
            target = out[:, u]
            for t, right in enumerate(self.odd if len(beta) % 2 else self.even):
                res = (left @ right).view(complex)  # (N, n(n+1)/2)
                target[:, self.lower_flat[t]] = np.conj(res)
                target[:, self.upper_flat[t]] = res  # the diagonal last: its own value


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
        # integer-R hopping table <i, 0|H|j, R> (on-site at R = 0), convention independent;
        # used by exporters (qgtflow.models.wannier.write_hr)
        self.hopping_table: dict[tuple, np.ndarray] = {}
        entries = [((0,) * dim, i, i, e) for i, e in enumerate(onsite if onsite is not None else np.zeros(nb))]
        entries += [(tuple(int(r) for r in R), int(i), int(j), t) for R, i, j, t in hoppings]
        for R, i, j, t in entries:
            if not (0 <= i < nb and 0 <= j < nb):
                raise ModelError(f"model '{name}': hopping ({R}, {i}, {j}) names an orbital outside 0..{nb - 1}")
            if len(R) != dim:
                raise ModelError(f"model '{name}': hopping R = {list(R)} has {len(R)} components; the lattice is {dim}D")
            if R not in self.hopping_table:
                self.hopping_table[R] = np.zeros((nb, nb), complex)
            self.hopping_table[R][i, j] += t
        self._set_table(self.hopping_table)
        # convention II: H_ij(k) = e^{ik·(τ_j − τ_i)} Σ_R t_ij(R) e^{ik·R}; the orbital phase is a
        # k-dependent elementwise factor, so storage and cost stay per R (not per bond vector)
        self.orbital_offsets = (cart_pos[None, :, :] - cart_pos[:, None, :]) if convention == "II" else None
        # Wannier position matrix elements beyond the centres (models/position.py), None: tight-binding approximation
        self.position = None

    def _set_table(self, table: dict) -> None:
        """Storage (cells, Cartesian displacements, flattened matrices) from {R: (n, n)}; ``hopping_table`` keeps
        the table's R order with its blocks as views of ``matrices`` (one copy of the hoppings, not two: 84-band
        Wannier models hold ~80 MB per operator)."""
        keys = sorted(table)
        nb = self.nbands
        self.cells = np.array(keys, np.int64).reshape(-1, self.dim)
        self.displacements = self.cells @ self.lattice  # Cartesian R (n_R, dim)
        self.matrices = np.stack([table[R] for R in keys]).reshape(len(keys), nb * nb)
        row = {R: b for b, R in enumerate(keys)}
        self.hopping_table = {R: self.matrices[row[R]].reshape(nb, nb) for R in table}

    @classmethod
    def from_table(cls, name, lattice, positions, table: dict, params=None, convention="II") -> "TightBindingModel":
        """The model of a hopping table {R (dim ints): (n, n) matrix <i, 0|H|j, R>} — no per-entry Python
        loop (large Wannier90 models). Hermitian partners are not added."""
        model = cls(name, lattice, positions, [], params=params, convention=convention)
        nb, dim = model.nbands, model.dim
        full = dict(model.hopping_table)  # the R = 0 block (zeros)
        for R, mat in table.items():
            key = tuple(int(r) for r in R)
            mat = np.asarray(mat, complex)
            if len(key) != dim or mat.shape != (nb, nb):
                raise ModelError(f"model '{name}': hopping block R = {list(key)} of shape {mat.shape}; expected "
                                 f"{dim} components and ({nb}, {nb})")
            full[key] = full[key] + mat if key in full else mat  # _set_table copies (no alias of the caller's)
        model._set_table(full)
        return model

    def identity(self) -> dict:
        ident = super().identity()
        ident["lattice"] = np.round(self.lattice, 12).tolist()
        if self.orbital_offsets is not None:  # Cartesian τ_j − τ_1 fix the convention-II phases
            ident["orbital_offsets"] = np.round(self.orbital_offsets[0], 12).tolist()
        if self.matrices.size <= HASH_INLINE_ENTRIES:  # small tables inline (the hashes stores already carry)
            ident["hoppings"] = [[R.tolist(), np.round(m.real, 14).tolist(), np.round(m.imag, 14).tolist()]
                                 for R, m in zip(self.cells, self.matrices)]
        else:  # the same content as a digest of the bytes: the JSON of millions of floats took seconds
            ident["hoppings"] = {"blake2b": table_digest(self.cells, self.matrices)}
        if self.position is not None:
            ident["position_operator"] = self.position.identity()
        return ident

    def coefficient_matrices(self) -> np.ndarray:
        if self.orbital_offsets is None:
            return self.matrices.reshape(-1, self.nbands, self.nbands)
        return super().coefficient_matrices()  # the orbital phases mix the per-R matrices: sample H(k)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_hermitian_sums", None)  # derived from the table: rebuilt where it is used
        return state

    def hermitian_sums(self) -> "HermitianBlochSums | None":
        """The real ±R Bloch sums of the table (:class:`HermitianBlochSums`) from :data:`PAIRED_MIN_BANDS` bands on
        when it is exactly Hermitian-paired; None otherwise (the complex product). Built once, on first use."""
        if "_hermitian_sums" not in self.__dict__:
            n = self.nbands
            self._hermitian_sums = (HermitianBlochSums.of(self.cells, self.displacements,
                                                          self.matrices.reshape(-1, 1, n, n))
                                    if n >= PAIRED_MIN_BANDS else None)
        return self._hermitian_sums

    @property
    def phase_free(self) -> bool:
        """True when no orbital phase enters H(k): convention I, or every orbital offset τ_j − τ_i zero."""
        return self.orbital_offsets is None or not np.any(self.orbital_offsets)

    def _cell_sums(self, k: np.ndarray, order: int = 3) -> np.ndarray:
        """G_β(k) = Σ_R Π_{a∈β} (iR_a) t(R) e^{ik·R} for every distinct multi-index β of order ≤ ``order``:
        (U, N, n, n), one (N, n_R) @ (n_R, n²) product per β (the monomial on the phase side)."""
        n, N = self.nbands, k.shape[0]
        alphas = unique_multi_indices(self.dim, order)
        G = np.empty((len(alphas), N, n * n), complex)
        paired = self.hermitian_sums()
        if paired is not None:  # Hermitian table: real products on half the R set and the upper triangles
            paired.fill(k, alphas, G.swapaxes(0, 1))
            return G.reshape(len(alphas), N, n, n)
        phases = np.exp(1j * (k @ self.displacements.T))  # (N, n_R)
        iR = 1j * self.displacements
        for u, alpha in enumerate(alphas):
            weighted = phases
            for a in alpha:
                weighted = weighted * iR[:, a]
            np.matmul(weighted, self.matrices, out=G[u])
        return G.reshape(len(alphas), N, n, n)

    def unique_derivatives(self, k: np.ndarray, out: np.ndarray | None = None, order: int = 3) -> np.ndarray:
        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        n, N = self.nbands, k.shape[0]
        slots = slot_count(self.dim, order)
        shape = (N, slots, n, n)
        out = np.empty(shape, complex) if out is None or out.shape != shape else out
        if self.phase_free:  # no orbital phase (or all offsets zero): ∂^α H = G_α, in cache-sized blocks of k
            paired = self.hermitian_sums()
            step = PAIRED_BLOCK_K if paired is not None else max(8, CELL_SUM_BLOCK_BYTES // (16 * slots * n * n))
            for lo in range(0, N, step):
                blk = out[lo:lo + step]
                if paired is not None and blk.flags.c_contiguous:  # straight into ``out``, no moveaxis copy
                    paired.fill(k[lo:lo + step], unique_multi_indices(self.dim, order),
                                blk.reshape(blk.shape[0], slots, n * n))
                else:
                    blk[...] = np.moveaxis(self._cell_sums(k[lo:lo + step], order), 0, 1)
            return out
        # Leibniz: ∂^α (E ⊙ G) = Σ_{β ⊆ α} (Π_{a ∈ α∖β} iΔτ_a) ⊙ E ⊙ ∂^β G, E_ij = e^{ik·(τ_j − τ_i)}
        # E_ij = f_i* f_j, f_j = e^{ik·(τ_j − τ_0)}: n exponentials per k-point, not n² (84 bands, 200 k: 40 → 4 ms)
        f = np.exp(1j * (k @ self.orbital_offsets[0].T))
        beta_slot, comp_slot = _leibniz_table(self.dim)
        factors = _leibniz_factors(self.orbital_offsets, self.dim, order)
        # in the blocks of k-points of the phase-free path: G_β of a block is combined while in cache (the whole
        # chunk's G was 180 MB for Fe's 18 bands on 12³, written by the sums and read back by the combination)
        step = PAIRED_BLOCK_K if self.hermitian_sums() is not None else \
            max(8, CELL_SUM_BLOCK_BYTES // (16 * slots * n * n))
        for lo in range(0, N, step):
            hi = min(N, lo + step)
            G = self._cell_sums(k[lo:hi], order)
            E = np.conj(f[lo:hi])[:, :, None] * f[lo:hi, None, :]
            _combine_orbital_phases(G, E, factors, beta_slot[:slots], comp_slot[:slots], out[lo:hi])
        return out


def _leibniz_table(dim: int):
    """For every slot α: the slots of its sub-multi-indices β (by position subsets) and of α∖β (padded −1)."""
    alphas = unique_multi_indices(dim)
    slot = {alpha: u for u, alpha in enumerate(alphas)}
    beta_slot = -np.ones((len(alphas), 8), np.int64)
    comp_slot = -np.ones((len(alphas), 8), np.int64)
    for u, alpha in enumerate(alphas):
        for mask in range(1 << len(alpha)):
            beta_slot[u, mask] = slot[tuple(sorted(a for p, a in enumerate(alpha) if mask >> p & 1))]
            comp_slot[u, mask] = slot[tuple(a for p, a in enumerate(alpha) if not mask >> p & 1)]  # α sorted
    return beta_slot, comp_slot


def _leibniz_factors(offsets: np.ndarray, dim: int, order: int) -> np.ndarray:
    """F_γ = Π_{a∈γ} i Δτ_a (elementwise, in the order of γ) for every distinct multi-index γ of order ≤ ``order``:
    (slots, n, n) — the Leibniz factors, computed once per call instead of per k-point and entry."""
    alphas = unique_multi_indices(dim, order)
    out = np.empty((len(alphas),) + offsets.shape[:2], complex)
    for u, gamma in enumerate(alphas):
        f = np.ones(offsets.shape[:2], complex)
        for a in gamma:
            f = f * (1j * offsets[:, :, a])
        out[u] = f
    return out


@njit(parallel=True, cache=True)
def _combine_orbital_phases(G, E, factors, beta_slot, comp_slot, out):
    """out[q, u] = E[q] ⊙ Σ_m factors[comp_slot[u, m]] ⊙ G[beta_slot[u, m], q] (m in subset order, as the sum of the
    Leibniz rule; contiguous (n, n) rows in the inner loops)."""
    U, N, n, _ = G.shape
    for q in prange(N):
        for u in range(U):
            o = out[q, u]
            for i in range(n):
                for j in range(n):
                    o[i, j] = 0j
            for m in range(8):
                b = beta_slot[u, m]
                if b < 0:
                    break
                F = factors[comp_slot[u, m]]
                g = G[b, q]
                for i in range(n):
                    for j in range(n):
                        o[i, j] += F[i, j] * g[i, j]
            e = E[q]
            for i in range(n):
                for j in range(n):
                    o[i, j] = e[i, j] * o[i, j]
