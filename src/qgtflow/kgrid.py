"""Uniform k-grids: endpoint-free periodic Brillouin-zone grids and finite k·p windows.

Periodic grid (lattice model): k = Σ_i (n_i + shift_i)/N_i b_i, n_i = 0..N_i−1 — no duplicated
endpoint (PythTB issue #67 shows the bug a duplicate causes). Weight 1/(V_cell N_total), so
Σ_k w_k F(k) = ∫ d^dk/(2π)^d F over the zone.

k·p window: cell-centred points of the box [−kmax_a, kmax_a]; weight Π_a (2 kmax_a/N_a)/(2π)^d.

Points are generated per chunk from index arithmetic, so a 10⁸-point grid never sits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qgtflow.errors import ConfigError

AXES = ("x", "y", "z")
MAX_CHUNKS = 256  # default bound on chunks per grid (zarr files per variable; Dask tasks per stage)


@dataclass(frozen=True)
class KGrid:
    """A uniform grid: ``sizes`` points per axis; ``basis`` rows span the sampled cell."""

    sizes: tuple[int, ...]
    kind: str  # "periodic" or "window"
    basis: np.ndarray = field(repr=False)  # (dim, dim): k = origin + Σ_i frac_i basis_i
    origin: np.ndarray = field(repr=False)  # (dim,)
    shift: tuple[float, ...] = ()
    chunk_size: int = 65536

    @property
    def dim(self) -> int:
        return len(self.sizes)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.sizes))

    @property
    def n_chunks(self) -> int:
        return -(-self.n_points // self.chunk_size)

    @property
    def weight(self) -> float:
        """Integration weight of every point: cell volume / (N (2π)^d)."""
        return abs(np.linalg.det(self.basis)) / self.n_points / (2 * np.pi) ** self.dim

    @property
    def spacing(self) -> float:
        """Largest step length |basis_i| / N_i (the h of convergence studies)."""
        return float(max(np.linalg.norm(self.basis[i]) / self.sizes[i] for i in range(self.dim)))

    def chunk_bounds(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.n_points)

    def points(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cartesian k-points with flat indices start..stop−1, shape (stop−start, dim)."""
        stop = self.n_points if stop is None else stop
        return self.points_at(np.arange(start, stop, dtype=np.int64))

    def points_at(self, flat: np.ndarray) -> np.ndarray:
        """Cartesian k-points at the flat indices ``flat``, shape (len(flat), dim)."""
        idx = np.stack(np.unravel_index(np.asarray(flat, np.int64), self.sizes), axis=1).astype(float)
        frac = (idx + np.asarray(self.shift)) / np.asarray(self.sizes, float)
        return self.origin + frac @ self.basis

    def indices(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Integer grid indices n_i (0..N_i−1) of the flat points start..stop−1, shape (stop−start, dim)."""
        stop = self.n_points if stop is None else stop
        return np.stack(np.unravel_index(np.arange(start, stop, dtype=np.int64), self.sizes), axis=1)

    def fractions(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Fractional coordinates (n_i + shift_i)/N_i of the points in the ``basis`` (reciprocal vectors, or
        the k·p box from its lower corner), shape (stop−start, dim)."""
        return (self.indices(start, stop) + np.asarray(self.shift)) / np.asarray(self.sizes, float)

    def chunk(self, index: int) -> np.ndarray:
        return self.points(*self.chunk_bounds(index))

    def attrs(self) -> dict:
        return {"grid_kind": self.kind, "grid_sizes": list(self.sizes), "n_kpoints": self.n_points,
                "grid_basis": np.asarray(self.basis).tolist(), "grid_origin": np.asarray(self.origin).tolist(),
                "grid_shift": list(self.shift), "grid_spacing": self.spacing, "chunk_size": self.chunk_size}


def effective_chunk_size(n_points: int, chunk_size: int, max_chunks: int | None = MAX_CHUNKS) -> int:
    """``chunk_size``, enlarged (to a multiple of 4096) when the grid would otherwise have more than
    ``max_chunks`` chunks — bounds the number of zarr chunk files (and Dask tasks) of huge grids."""
    if max_chunks is None or n_points <= chunk_size * max_chunks:
        return int(max(1, min(chunk_size, n_points)))  # never a chunk larger than the grid
    needed = -(-n_points // max_chunks)
    return int(-(-needed // 4096) * 4096)


def axis_sizes(size, dim: int) -> tuple:
    """Points per axis of one ``kgrid.sizes`` entry: an int for every axis, or the per-axis list as given."""
    return (size,) * dim if np.isscalar(size) else tuple(size)


def make_grid(model, size, *, kmax=None, shift=None, chunk_size: int = 65536, max_chunks: int | None = MAX_CHUNKS,
              key: str = "kgrid") -> KGrid:
    """Grid for ``model`` with ``size`` points per axis (int, or one int per axis).

    Periodic models sample their Brillouin zone (``shift`` in units of a step, default 0 so Γ
    is included); continuum models sample the window [−kmax, kmax]^d (``kmax`` a number or one
    per axis, default the model's own), cell-centred. Chunks hold ``chunk_size`` points, more when
    the grid would otherwise have more than ``max_chunks`` chunks (:func:`effective_chunk_size`).
    """
    dim = model.dim
    sizes = axis_sizes(size, dim)
    if len(sizes) != dim:
        raise ConfigError(f"{key}.sizes", size, f"one size or {dim} sizes for the {dim}D model '{model.name}'")
    for s in sizes:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 2:
            raise ConfigError(f"{key}.sizes", size, "integers >= 2 (points per axis)")
    if chunk_size < 1:
        raise ConfigError(f"{key}.chunk_size", chunk_size, "a positive integer")
    if max_chunks is not None and max_chunks < 1:
        raise ConfigError(f"{key}.max_chunks", max_chunks, "a positive integer")
    chunk_size = effective_chunk_size(int(np.prod(sizes)), int(chunk_size), max_chunks)
    if model.periodic:
        if kmax is not None:
            raise ConfigError(f"{key}.kmax", kmax, "no window for the periodic model "
                              f"'{model.name}' (its Brillouin zone is sampled)")
        sh = (0.0,) * dim if shift is None else ((float(shift),) * dim if np.isscalar(shift) else tuple(map(float, shift)))
        if len(sh) != dim:
            raise ConfigError(f"{key}.shift", shift, f"one number or {dim} numbers")
        return KGrid(sizes=sizes, kind="periodic", basis=model.reciprocal_vectors, origin=np.zeros(dim),
                     shift=sh, chunk_size=int(chunk_size))
    kmax = model.kmax if kmax is None else kmax
    if kmax is None:
        raise ConfigError(f"{key}.kmax", None, f"a k·p window half-width for the continuum model '{model.name}'")
    kmax_axes = np.full(dim, float(kmax)) if np.isscalar(kmax) else np.asarray(kmax, float)
    if kmax_axes.shape != (dim,) or not np.all(np.isfinite(kmax_axes)) or np.any(kmax_axes <= 0):
        raise ConfigError(f"{key}.kmax", kmax, f"a positive number or {dim} positive numbers")
    if shift is not None:
        raise ConfigError(f"{key}.shift", shift, "no shift for a k·p window (points are cell-centred)")
    return KGrid(sizes=sizes, kind="window", basis=np.diag(2 * kmax_axes), origin=-kmax_axes,
                 shift=(0.5,) * dim, chunk_size=int(chunk_size))


def grid_from_attrs(attrs: dict) -> KGrid:
    """The uniform grid described by a store's ``grid_*`` attrs (:meth:`KGrid.attrs`)."""
    return KGrid(sizes=tuple(int(n) for n in attrs["grid_sizes"]), kind=str(attrs["grid_kind"]),
                 basis=np.asarray(attrs["grid_basis"], float), origin=np.asarray(attrs["grid_origin"], float),
                 shift=tuple(float(x) for x in attrs["grid_shift"]), chunk_size=int(attrs["chunk_size"]))
