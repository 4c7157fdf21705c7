"""Compact storage of Hamiltonian derivatives: one slot per *distinct* derivative.

Derivatives commute, so ∂_a∂_bH = ∂_b∂_aH: of the 1 + d + d² + d³ matrices up to third order
only U = 1 + d + d(d+1)/2 + d(d+1)(d+2)/6 differ (10 in 2D, 20 in 3D). Models fill an array
Hu (N, U, n, n); the index maps send an ordered multi-index to its slot. Slots are ordered by
derivative order, so a model asked for ``order`` < 3 fills only the first ``slot_count(dim, order)``.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations_with_replacement

import numpy as np


@lru_cache(maxsize=None)
def unique_multi_indices(dim: int, order: int = 3) -> tuple[tuple[int, ...], ...]:
    """Sorted multi-indices (), (0,), (1,), (0, 0), … in slot order."""
    out = []
    for o in range(order + 1):
        out.extend(combinations_with_replacement(range(dim), o))
    return tuple(out)


@lru_cache(maxsize=None)
def slot_count(dim: int, order: int = 3) -> int:
    """Number of distinct derivatives of orders 0..order: the first slots of the compact array."""
    return len(unique_multi_indices(dim, order))


@lru_cache(maxsize=None)
def index_maps(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slot of ∂_a H (d,), ∂_a∂_b H (d, d), ∂_a∂_b∂_c H (d, d, d)."""
    slot = {alpha: u for u, alpha in enumerate(unique_multi_indices(dim))}
    i1 = np.array([slot[(a,)] for a in range(dim)], np.int64)
    i2 = np.array([[slot[tuple(sorted((a, b)))] for b in range(dim)] for a in range(dim)], np.int64)
    i3 = np.array([[[slot[tuple(sorted((a, b, c)))] for c in range(dim)] for b in range(dim)] for a in range(dim)],
                  np.int64)
    return i1, i2, i3


def expand(Hu: np.ndarray, dim: int) -> list[np.ndarray]:
    """Full arrays [H, ∂H (N,d,n,n), ∂²H (N,d,d,n,n), ∂³H (N,d,d,d,n,n)] from the compact form."""
    i1, i2, i3 = index_maps(dim)
    return [Hu[:, 0], Hu[:, i1], Hu[:, i2], Hu[:, i3]]


def compact(H, dH, d2H, d3H) -> np.ndarray:
    """The compact form of full derivative arrays (inverse of :func:`expand`)."""
    dim = dH.shape[1]
    Hu = np.empty((H.shape[0], len(unique_multi_indices(dim))) + H.shape[1:], dtype=complex)
    for u, alpha in enumerate(unique_multi_indices(dim)):
        src = [H, dH, d2H, d3H][len(alpha)]
        Hu[:, u] = src[(slice(None),) + alpha]
    return Hu
