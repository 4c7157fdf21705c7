"""Whether numba's on-disk cache already holds the geometry kernels (else a process compiles them).

A cold process spends tens of seconds compiling the chunk kernel before its first k-point; a warm
one loads it in well under a second. :func:`cold_kernels` tells which of the kernels a geometry
stage runs are missing from (or stale in) the cache of this process's ``NUMBA_CACHE_DIR``, so the
caller can say so before the silent wait. Reads numba's cache index only; compiles nothing.
"""

from __future__ import annotations

# seconds to compile each entry point cold on the 2-core reference VM (benchmarks/bench_first_result.py)
COMPILE_SECONDS = {"geometry_chunk": 20.0, "projector_chunk": 15.0, "spin_chunk": 15.0}


def _entry_points(optional=()) -> dict:
    from qgtflow.geometry import kernels
    from qgtflow.geometry.fields import SPIN_OPTIONAL_FIELDS

    points = {"geometry_chunk": kernels.geometry_chunk}
    if any(name in optional for name in ("quantum_metric_quadrupole_density", "christoffel")):
        from qgtflow.geometry import projector

        points["projector_chunk"] = projector.projector_chunk
    if any(name in SPIN_OPTIONAL_FIELDS for name in optional):
        from qgtflow.geometry import spin

        points["spin_chunk"] = spin.spin_chunk
    return points


def _cached(dispatcher) -> bool | None:
    """True when the cache index holds a compiled version for the current source (None: unknown)."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())  # numba checks the source stamp
    except Exception:  # noqa: BLE001 - private numba API: a probe only, never fail for it
        return None


def cold_kernels(optional=()) -> dict[str, float]:
    """{entry point: estimated compile seconds} of the kernels a geometry stage (with the given
    optional fields) would compile in this process; {} when all are cached (or unknown)."""
    return {name: COMPILE_SECONDS.get(name, 10.0) for name, disp in _entry_points(optional).items()
            if _cached(disp) is False}


def cache_location() -> str:
    """Where numba caches this process's kernels (``NUMBA_CACHE_DIR`` or the package's __pycache__)."""
    from qgtflow.geometry import kernels

    try:
        return str(kernels.geometry_chunk._cache._cache_path)
    except Exception:  # noqa: BLE001
        return "numba's cache"
