"""Degenerate groups of sorted spectra for the NumPy routes (the numba kernels' twin is ``kernels._groups``)."""

from __future__ import annotations

import numpy as np


def group_labels(E: np.ndarray, threshold) -> np.ndarray:
    """Labels (..., n) of sorted eigenvalues E (..., n): neighbours closer than ``threshold`` (a scalar, or one
    per spectrum shaped (..., 1)) share a group; labels count up from 0 along each spectrum."""
    split = np.diff(E, axis=-1) >= threshold
    return np.concatenate([np.zeros(E.shape[:-1] + (1,), np.int64), np.cumsum(split, axis=-1)], axis=-1)
