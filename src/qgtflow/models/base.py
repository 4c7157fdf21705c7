"""The model interface every Hamiltonian implements.

A model maps a chunk of k-points ``k`` (shape ``(N, dim)``, model length units⁻¹) to the
Hamiltonian and its exact k-derivatives up to third order:

    H (N, n, n), ∂_a H (N, d, n, n), ∂_a∂_b H (N, d, d, n, n), ∂_a∂_b∂_c H (N, d, d, d, n, n)

all complex128 in model energy units (× length^order). Vectorised over the chunk: no Python
loop over k-points.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from qgtflow.errors import ModelError


# {id(model): (model, hash)} of the innermost active fixed_hashes() scope of this context, None outside any. A
# context variable, not a module-level stack: each thread (a user's ThreadPool, a Dask threads worker running two
# evaluates) has its own context, so one thread's scope neither memoises nor pops another thread's hashes.
_HASH_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("qgtflow_fixed_hashes", default=None)


@contextlib.contextmanager
def fixed_hashes():
    """Within: each model's ``model_hash`` is computed once (the JSON of its identity: 0.08 s per call for a
    64-band Wannier90 table, asked 4 times by one ``evaluate``'s plan and stores). The caller keeps the models
    unchanged meanwhile (``qgtflow.evaluate`` builds its model before and changes it nowhere after). The scope is
    the calling thread's (context's) only: other threads, in a scope or not, compute their own hashes."""
    token = _HASH_MEMO.set({})
    try:
        yield
    finally:
        _HASH_MEMO.reset(token)


@dataclass
class Model:
    """Base class: subclasses implement :meth:`derivatives`.

    Attributes
    ----------
    name: model name (built-in name or user label).
    dim: spatial dimension (1, 2, 3).
    nbands: number of bands n.
    params: the parameters the model was built from (plain numbers; for provenance).
    periodic: True for a lattice model with a periodic Brillouin zone.
    lattice: (dim, dim) real-space lattice vectors as rows (periodic models only).
    kmax: default half-width of the k·p window (continuum models only).
    sectors: labels of independent blocks summed by responses (e.g. valleys); one by default.
    """

    name: str
    dim: int
    nbands: int
    params: dict = field(default_factory=dict)
    periodic: bool = False
    lattice: np.ndarray | None = None
    kmax: float | None = None
    convention: str = "k·p (continuum; no Bloch phase)"
    spin: np.ndarray | None = None  # (3, n, n) spin operator σ^x, σ^y, σ^z (003), when the model has one
    # the basis Berry connection A^W(k) of a Wannier model (models/position.py), None: tight-binding approximation.
    # Not a dataclass field: set by the Wannier90 reader only.
    position = None
    # the crystal of a Wannier90 model's seedname.win, [[species, f1, f2, f3], ...] (models/symmetry.py), else None.
    # Not a dataclass field: set by the Wannier90 reader only.
    atoms = None

    def unique_derivatives(self, k: np.ndarray, out: np.ndarray | None = None, order: int = 3) -> np.ndarray:
        """H and its distinct derivatives up to ``order`` (≤ 3), shape (N, slot_count(dim, order), n, n)
        (see ``derivatives.py``); the kernel asks only for the orders its fields read.

        ``out``: an array of that shape to fill instead of allocating one.
        """
        raise NotImplementedError

    def derivatives(self, k: np.ndarray, order: int = 3) -> list[np.ndarray]:
        """Full arrays [H, ∂H, ∂²H, ∂³H][:order + 1] (convenient for tests and validation)."""
        from qgtflow.models.derivatives import expand

        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        return expand(self.unique_derivatives(k), self.dim)[: order + 1]

    def active_slots(self) -> np.ndarray:
        """Which distinct-derivative slots can be nonzero (bool per slot); all by default."""
        from qgtflow.models.derivatives import unique_multi_indices

        return np.ones(len(unique_multi_indices(self.dim)), bool)

    def coefficient_matrices(self) -> np.ndarray:
        """Matrices whose span contains H(k) at every k (for structure detection); (m, n, n).

        Default: an orthonormal basis of the span of H(k) sampled at random k (rank by SVD), exact
        with probability one for models whose H is a finite sum f_j(k) M_j with ≤ n² + 32 terms.
        """
        n = self.nbands
        if n > 8:  # structure detection (Clifford closed forms) only pays off for small models
            raise NotImplementedError
        rng = np.random.default_rng(20261121)
        samples = 2 * n * n + 32
        if self.periodic:
            k = rng.uniform(-0.5, 0.5, (samples, self.dim)) @ self.reciprocal_vectors
        else:
            k = rng.uniform(-1, 1, (samples, self.dim)) * (self.kmax or 1.0)
        H = self.unique_derivatives(k)[:, 0].reshape(samples, n * n)
        X = np.concatenate([H.real, H.imag], axis=1)
        _, s, vt = np.linalg.svd(X, full_matrices=False)
        rank = int(np.sum(s > 1e-10 * max(s[0], 1e-300)))
        basis = vt[:rank]
        return (basis[:, : n * n] + 1j * basis[:, n * n:]).reshape(rank, n, n)

    @property
    def clifford_gammas(self):
        """Anticommuting Hermitian basis Γ with H = d0 + Σ d_μ Γ_μ, or None (see geometry/clifford.py)."""
        if not hasattr(self, "_clifford_cache"):
            from qgtflow.geometry.clifford import clifford_basis

            try:
                self._clifford_cache = clifford_basis(self.coefficient_matrices())
            except NotImplementedError:
                self._clifford_cache = None
        return self._clifford_cache

    # -- derived ---------------------------------------------------------------------------
    @property
    def band_sector(self) -> np.ndarray:
        """Sector label per band (one sector, "all", unless a SectorModel)."""
        return np.array(["all"] * self.nbands)

    @property
    def band_weight(self) -> np.ndarray:
        """Multiplicity of each band in response sums (e.g. spin degeneracy); 1 by default."""
        return np.ones(self.nbands)

    @property
    def reciprocal_vectors(self) -> np.ndarray:
        """Rows b_i with a_i · b_j = 2π δ_ij."""
        if self.lattice is None:
            raise ModelError(f"model '{self.name}' is a continuum model and has no Brillouin zone")
        return 2 * np.pi * np.linalg.inv(np.asarray(self.lattice, float)).T

    def identity(self) -> dict:
        """JSON-serialisable description: name, parameters and structure."""
        return {"name": self.name, "dim": self.dim, "nbands": self.nbands,
                "params": {k: _plain(v) for k, v in sorted(self.params.items())},
                "periodic": self.periodic, "convention": self.convention,
                **({"spin": [np.round(self.spin.real, 14).tolist(), np.round(self.spin.imag, 14).tolist()]}
                   if self.spin is not None else {})}

    @property
    def model_hash(self) -> str:
        """Stable hash of :meth:`identity` (changes iff the model definition changes). Inside
        :func:`fixed_hashes`, computed once per model object."""
        memo = _HASH_MEMO.get()
        if memo is not None and id(self) in memo and memo[id(self)][0] is self:
            return memo[id(self)][1]
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        value = hashlib.sha256(blob).hexdigest()[:16]
        if memo is not None:
            memo[id(self)] = (self, value)  # the model held: its id is not reused while the scope lasts
        return value

    def validate(self, n_samples: int = 16, seed: int = 0, tol: float = 1e-10) -> None:
        """Refuse a malformed Hamiltonian before any compute.

        Checks shapes, finiteness and Hermiticity of H and its derivatives at random k.
        """
        for key, val in self.params.items():
            if isinstance(val, (int, float)) and not np.isfinite(float(val)):
                raise ModelError(f"model '{self.name}': parameter '{key}' is {val}; expected a finite number")
        rng = np.random.default_rng(seed)
        scale = self.kmax if self.kmax else 1.0
        if self.periodic:
            k = rng.uniform(-0.5, 0.5, (n_samples, self.dim)) @ self.reciprocal_vectors
        else:
            k = rng.uniform(-scale, scale, (n_samples, self.dim))
        mats = self.derivatives(k, order=3)
        n, d = self.nbands, self.dim
        shapes = [(n_samples, n, n), (n_samples, d, n, n), (n_samples, d, d, n, n), (n_samples, d, d, d, n, n)]
        for order, (m, shp) in enumerate(zip(mats, shapes)):
            if m.shape != shp:
                raise ModelError(f"model '{self.name}': derivative of order {order} has shape {m.shape}; expected {shp}")
            if not np.all(np.isfinite(m)):
                bad = np.argwhere(~np.isfinite(m))[0]
                what = "H(k)" if order == 0 else f"the order-{order} derivative of H(k)"
                at = ", ".join(f"{x:.4g}" for x in k[bad[0]])
                raise ModelError(f"model '{self.name}': {what} is {m[tuple(bad)]} at k = [{at}] (entry "
                                 f"{bad[-2:].tolist()}); expected finite values at every k (check the parameters, "
                                 "and expressions such as log, sqrt or fractional powers of a negative number, or an "
                                 "overflowing exp)")
            herm = np.abs(m - np.conj(np.swapaxes(m, -1, -2))).max()
            size = max(1.0, np.abs(m).max())
            if herm > tol * size:
                what = "H(k)" if order == 0 else f"the order-{order} derivative of H(k)"
                raise ModelError(f"model '{self.name}': {what} is not Hermitian "
                                 f"(max |H - H^dagger| = {herm:.3g} at random k)")


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, complex):
        return [v.real, v.imag]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


