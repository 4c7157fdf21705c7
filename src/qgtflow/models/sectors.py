"""Models made of independent sectors (valleys s = ±1, spin blocks): H = ⊕_s H_s(k).

Each sector is a model of its own, evaluated on the same k (a valley's k·p window is centred on its
valley). The geometry stage computes every sector separately — bands of different sectors never
mix, even where they cross — and stacks them along ``band``; the store labels each band with its
``band_sector`` and a ``band_weight`` (e.g. a spin degeneracy g_s), and the reduce stage sums
sectors with those weights or, on request, resolves them (a ``sector`` dim).
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.base import Model, _plain


class SectorModel(Model):
    """Direct sum of sector models sharing dimension, k-space and lattice.

    ``sectors``: list of (label, model); ``weights``: multiplicity of each sector in sums
    (default 1 each: e.g. spin degeneracy g_s applies to all sectors of a spinless model).
    """

    def __init__(self, name: str, sectors: list[tuple[str, Model]], weights=None, params=None):
        if not sectors:
            raise ModelError(f"model '{name}': no sectors")
        labels = [str(lbl) for lbl, _ in sectors]
        if len(set(labels)) != len(labels):
            raise ModelError(f"model '{name}': sector labels {labels} are not unique")
        models = [m for _, m in sectors]
        first = models[0]
        for lbl, m in sectors:
            if m.dim != first.dim or m.periodic != first.periodic:
                raise ModelError(f"model '{name}': sector '{lbl}' is {m.dim}D periodic={m.periodic}; "
                                 f"sector '{labels[0]}' is {first.dim}D periodic={first.periodic}")
            if m.periodic and not np.allclose(m.lattice, first.lattice):
                raise ModelError(f"model '{name}': sector '{lbl}' has a different lattice")
        weights = np.ones(len(models)) if weights is None else np.asarray(weights, float).reshape(-1)
        if weights.shape != (len(models),) or np.any(~np.isfinite(weights)) or np.any(weights <= 0):
            raise ModelError(f"model '{name}': sector weights {weights.tolist()}; expected one positive number "
                             f"per sector ({len(models)})")
        kmaxes = [m.kmax for m in models if m.kmax]
        spins = [m.spin for m in models]
        super().__init__(name=name, dim=first.dim, nbands=sum(m.nbands for m in models),
                         params=dict(params or {}), periodic=first.periodic, lattice=first.lattice,
                         kmax=max(kmaxes) if kmaxes else None, convention=first.convention,
                         spin=_block_diag(spins) if all(s is not None for s in spins) else None)
        self.labels = labels
        self.sectors = models
        self.weights = weights

    @property
    def band_sector(self) -> np.ndarray:
        """Sector label of every band (in stacking order)."""
        return np.array([lbl for lbl, m in zip(self.labels, self.sectors) for _ in range(m.nbands)])

    @property
    def band_weight(self) -> np.ndarray:
        return np.concatenate([np.full(m.nbands, w) for w, m in zip(self.weights, self.sectors)])

    def identity(self) -> dict:
        return {"name": self.name, "params": {k: _plain(v) for k, v in sorted(self.params.items())},
                "sectors": [{"label": lbl, "weight": float(w), "model": m.identity()}
                            for lbl, w, m in zip(self.labels, self.weights, self.sectors)]}

    def active_slots(self) -> np.ndarray:
        return np.any([m.active_slots() for m in self.sectors], axis=0)

    def coefficient_matrices(self) -> np.ndarray:
        raise NotImplementedError  # sectors are treated one by one (each has its own structure)

    @property
    def clifford_gammas(self):
        return None

    def unique_derivatives(self, k: np.ndarray, out: np.ndarray | None = None, order: int = 3) -> np.ndarray:
        """Block-diagonal H and derivatives (validation and generic use; the geometry stage splits sectors)."""
        k = np.asarray(k, dtype=float).reshape(-1, self.dim)
        parts = [m.unique_derivatives(k, order=order) for m in self.sectors]
        shape = parts[0].shape[:2] + (self.nbands, self.nbands)
        out = np.zeros(shape, complex) if out is None or out.shape != shape else out
        out[...] = 0.0
        lo = 0
        for p in parts:
            n = p.shape[-1]
            out[..., lo:lo + n, lo:lo + n] = p
            lo += n
        return out

    def validate(self, n_samples: int = 16, seed: int = 0, tol: float = 1e-10) -> None:
        for lbl, m in zip(self.labels, self.sectors):
            try:
                m.validate(n_samples, seed, tol)
            except ModelError as exc:
                raise ModelError(f"model '{self.name}', sector '{lbl}': {exc}") from None


def _block_diag(mats: list[np.ndarray]) -> np.ndarray:
    n = sum(m.shape[-1] for m in mats)
    out = np.zeros((3, n, n), complex)
    lo = 0
    for m in mats:
        out[:, lo:lo + m.shape[-1], lo:lo + m.shape[-1]] = m
        lo += m.shape[-1]
    return out


def sector_blocks(model) -> list[tuple[str, Model, float]]:
    """[(label, block, weight)] of the independent blocks of ``model``: a SectorModel's sectors with their
    weights, else the model itself ("all", weight 1)."""
    if isinstance(model, SectorModel):
        return [(lbl, m, float(w)) for lbl, m, w in zip(model.labels, model.sectors, model.weights)]
    return [("all", model, 1.0)]
