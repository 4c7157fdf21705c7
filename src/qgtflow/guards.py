"""Finite-value checks at stage boundaries: nothing non-finite reaches a numba kernel.

A NaN or inf energy would become a bin index (``int(nan)``) in the reduce kernels and a weight
or field would silently poison every sum, so values are checked where they enter a stage:
- the geometry stage checks the fields of every chunk of the actual grid (a pole of a symbolic
  H on a grid point is found wherever it is, not only at random sample points) and names the k-point;
- the reduce stage checks what it reads from the geometry store (a damaged chunk, a NaN fill
  value of a chunk that was never written) and names store, variable and k-point.
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ModelError, StoreError

MAX_MAGNITUDE = 1e100  # every config and model-file number: finite, |x| <= this (1e308 overflows k-ranges, sums)


def _first_bad(arrays: dict) -> tuple[str, int, object] | None:
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.kind not in "fc":
            continue
        finite = np.isfinite(arr)
        if not finite.all():
            idx = np.unravel_index(int(np.argmin(finite.ravel())), arr.shape)
            return name, int(idx[0]) if idx else 0, arr[idx]
    return None


def require_finite_fields(model, k: np.ndarray, fields: dict, start: int = 0) -> None:
    """ModelError naming the first k-point of a chunk (offset ``start``) where H(k) gave non-finite fields."""
    bad = _first_bad(fields)
    if bad is None:
        return
    name, i, value = bad
    kvec = ", ".join(f"{x:.6g}" for x in np.asarray(k)[i])
    raise ModelError(f"model '{model.name}': H(k) or its k-derivatives are not finite at k = ({kvec}) (k-point "
                     f"{start + i} of the grid; {name} = {value}): a pole or NaN of the Hamiltonian on a grid "
                     "point; shift the grid (kgrid.shift, kgrid.kmax, kgrid.sizes) or regularise the model")


def require_finite(store, start: int, arrays: dict, kpoints=None) -> None:
    """StoreError naming store, variable and k-point of the first non-finite value read (row i is k-point
    ``start + i``, or ``kpoints[i]`` when given)."""
    bad = _first_bad(arrays)
    if bad is None:
        return
    name, i, value = bad
    kpoint = int(kpoints[i]) if kpoints is not None else start + i
    raise StoreError(f"store {store}: variable '{name}' is {value} at k-point {kpoint}: the store is damaged or "
                     "incomplete; rerun its stage (or `qgtflow verify` it)")
