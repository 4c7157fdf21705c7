"""Lattice vectors (integer rows) looked up by int64 keys: the row of each vector in a set, and the distinct vectors
of a list — over a dense table of their bounding box when it is small (a Wannier90 file's few thousand cells), by
sorting when it is not (a file's R = ±10^5 on every axis: a dense table would need 10^16 entries)."""

from __future__ import annotations

import numpy as np

DENSE_CELLS = 1 << 22  # bounding boxes up to this many cells use a dense table (32 MB of int64)
MAX_CELL_INDEX = 10**5  # |R_i| of a lattice vector, shift or site a model file may name (Wannier90's: ~ mp_grid)


def _box(*arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest corner, cells per axis) of the bounding box of the rows of ``arrays`` (each (m, d) integer)."""
    stacked = [a for a in arrays if len(a)]
    lo = np.min([a.min(axis=0) for a in stacked], axis=0)
    hi = np.max([a.max(axis=0) for a in stacked], axis=0)
    return lo.astype(np.int64), (hi - lo + 1).astype(np.int64)


def _keys(cells: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    """C-order index of each row in the box (int64: boxes of up to 9e18 cells, bounded callers' vectors)."""
    shifted = np.asarray(cells, np.int64) - lo
    key = shifted[:, 0].copy()
    for axis in range(1, shifted.shape[1]):
        key = key * span[axis] + shifted[:, axis]
    return key


def rows_of(cells: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The row of each of ``vectors`` (m, d) in ``cells`` (n, d, distinct rows), −1 for one not there."""
    cells = np.asarray(cells, np.int64)
    vectors = np.asarray(vectors, np.int64)
    if not len(cells) or not len(vectors):
        return np.full(len(vectors), -1, np.int64)
    lo, span = _box(cells, vectors)
    keys, wanted = _keys(cells, lo, span), _keys(vectors, lo, span)
    if np.prod(span.astype(float)) <= DENSE_CELLS:
        table = np.full(int(np.prod(span)), -1, np.int64)
        table[keys] = np.arange(len(cells))
        return table[wanted]
    order = np.argsort(keys, kind="stable")
    at = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
    return np.where(keys[order][at] == wanted, order[at], -1)


def distinct(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows of ``vectors`` (m, d) in lexicographic order, the index of each row among them)."""
    vectors = np.asarray(vectors, np.int64)
    lo, span = _box(vectors)
    keys = _keys(vectors, lo, span)
    if np.prod(span.astype(float)) <= DENSE_CELLS:
        used = np.zeros(int(np.prod(span)), np.int64)
        used[keys] = 1
        codes = np.nonzero(used)[0]
        inverse = (np.cumsum(used) - 1)[keys]
    else:
        codes, inverse = np.unique(keys, return_inverse=True)
    rows = np.empty((len(codes), len(span)), np.int64)
    for axis in range(len(span) - 1, -1, -1):  # the inverse of _keys
        codes, rows[:, axis] = np.divmod(codes, span[axis])
    return rows + lo, inverse.reshape(-1)
