"""Whether numba's on-disk cache already holds the geometry kernels (else a process compiles them).

A cold process spends tens of seconds compiling the chunk kernel before its first k-point; a warm
one loads it in well under a second. :func:`cold_kernels` tells which of the kernels a geometry
stage runs are missing from (or stale in) the cache of this process's ``NUMBA_CACHE_DIR``, so the
caller can say so before the silent wait. Reads numba's cache index only; compiles nothing.
"""

from __future__ import annotations

# seconds to compile each entry point cold on the 2-core reference VM (benchmarks/bench_first_result.py)
COMPILE_SECONDS = {"clifford_chunk": 10.0, "geometry_chunk": 30.0, "geometry_eigenbasis_chunk": 10.0,
                   "projector_chunk": 15.0, "spin_chunk": 15.0}


def geometry_kernels(model=None) -> tuple[str, ...]:
    """The geometry kernels ``fields.compute_fields`` runs for ``model`` (each sector's own choice): the closed form
    ``clifford_chunk`` for models with an anticommuting basis, the batched path's ``geometry_eigenbasis_chunk`` for
    many bands, else the per-k sum over states ``geometry_chunk`` (None: that one). A Clifford model whose two
    levels touch on the grid also compiles ``geometry_chunk`` for those k-points, which is not known in advance."""
    if model is None:
        return ("geometry_chunk",)
    from qgtflow.geometry.batched import BATCHED_MIN_BANDS, POSITION_BATCHED_MIN_BANDS, use_batched

    names = []
    for m in getattr(model, "sectors", None) or [model]:
        gammas = m.clifford_gammas
        closed = gammas is not None and gammas.shape[0] > 0 and gammas.shape[-1] == m.nbands
        fewest = POSITION_BATCHED_MIN_BANDS if getattr(m, "position", None) is not None else BATCHED_MIN_BANDS
        name = ("geometry_eigenbasis_chunk" if use_batched(m.nbands, -1, closed, fewest)
                else "clifford_chunk" if closed else "geometry_chunk")
        if name not in names:
            names.append(name)
    return tuple(names)


def _entry_points(optional=(), model=None) -> dict:
    from qgtflow.geometry import kernels
    from qgtflow.geometry.fields import SPIN_OPTIONAL_FIELDS

    points = {name: getattr(kernels, name) for name in geometry_kernels(model)}
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


MEASURED_FILE = "qgtflow_compile_seconds.json"  # in the numba cache directory: the last measured compile times


def _measured_path():
    import os
    from pathlib import Path

    root = os.environ.get("NUMBA_CACHE_DIR")
    return Path(root) / MEASURED_FILE if root else None


def measured_seconds() -> dict[str, float]:
    """{entry point: seconds} of the last compile measured with this cache ({} when none)."""
    import json

    path = _measured_path()
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()} if path else {}
    except (OSError, ValueError, AttributeError):
        return {}


def record_compiles(names) -> None:
    """Measure the next compile of each entry point in ``names`` (numba's compile events) and store its
    seconds in the cache directory, so the next cold start quotes it."""
    import json
    import time

    from numba.core import event

    path, pending = _measured_path(), set(names)
    if path is None or not pending:
        return

    def done(name: str, seconds: float) -> None:
        import os

        times = {**measured_seconds(), name: round(seconds, 1)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:  # a new file, renamed over the old: a job's copy is a hard link to the shared cache's file
            tmp.write_text(json.dumps(times))
            os.replace(tmp, path)
        except OSError:
            pass

    class _EntryTimer(event.Listener):
        def __init__(self):
            self.started = {}

        def on_start(self, ev):
            self.started.setdefault(id((ev.data or {}).get("dispatcher")), time.perf_counter())

        def on_end(self, ev):
            disp = (ev.data or {}).get("dispatcher")
            t0 = self.started.pop(id(disp), None)
            name = getattr(getattr(disp, "py_func", None), "__name__", None)
            if name in pending and t0 is not None:
                pending.discard(name)
                done(name, time.perf_counter() - t0)

    event.register("numba:compile", _EntryTimer())


def cold_kernels(optional=(), model=None) -> dict[str, float]:
    """{entry point: expected compile seconds} of the kernels a geometry stage (with the given optional fields, of
    ``model``: :func:`geometry_kernels`) would compile in this process ({} when all are cached or unknown): the last
    compile measured with this cache (:func:`record_compiles`), else the reference VM's :data:`COMPILE_SECONDS`."""
    measured = measured_seconds()
    return {name: measured.get(name, COMPILE_SECONDS.get(name, 10.0))
            for name, disp in _entry_points(optional, model).items() if _cached(disp) is False}


def cache_location() -> str:
    """Where numba caches this process's kernels (``NUMBA_CACHE_DIR`` or the package's __pycache__)."""
    from qgtflow.geometry import kernels

    try:
        return str(kernels.geometry_chunk._cache._cache_path)
    except Exception:  # noqa: BLE001
        return "numba's cache"
