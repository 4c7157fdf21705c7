"""Preflight: k-points, memory and disk of a computation, estimated before it starts and compared with
the study's ceilings (``limits`` in the study schema) and with what the machine (or the SLURM
allocation) has. A computation that cannot fit is refused with the estimate in the message, instead
of running until memory or disk runs out.

Also the point-sampling rule of the README: point sampling needs k_BT above the grid's energy step
|v|·h; below it the histograms see a few k-points per k_BT and responses are wrong by tens of percent.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qgtflow import gridsize
from qgtflow.errors import PreflightError, QgtflowError  # noqa: F401 - PreflightError: raised here

log = logging.getLogger(__name__)

GB = 1e9


@dataclass
class Estimate:
    study: str
    size: object  # points per axis, or a tuple (one number per axis)
    n_kpoints: int
    memory_mb: int  # peak of one job (geometry or reduce), all its workers
    disk_bytes: int  # kgrid + geometry stores (the responses store is small; a wedge's points only)

    def text(self) -> str:
        return (f"study '{self.study}' at {gridsize.label(self.size)} points per axis: {self.n_kpoints:.3g} k-points, "
                f"~{self.memory_mb / 1024:.3g} GiB memory, ~{self.disk_bytes / GB:.3g} GB disk")


def estimate(study, size: int, workers: int) -> Estimate:
    """What ``study`` needs at ``size`` points per axis with ``workers`` Dask workers per job."""
    from qgtflow.cluster import field_bytes_per_kpoint, job_memory_mb, optional_field_bytes_per_kpoint
    from qgtflow.geometry.fields import OPTIONAL_FIELDS

    size = gridsize.normalise(size)
    grid = study.make_grid(size)
    n = int(grid.n_points)
    nb, dim = study.model.nbands, study.model.dim
    try:
        from qgtflow.study import geometry_fields

        optional = [f for f in geometry_fields(study) if f in OPTIONAL_FIELDS]
    except QgtflowError:
        optional = []
    per_k = field_bytes_per_kpoint(nb, dim) + optional_field_bytes_per_kpoint(nb, dim, optional) + 2 * 8 * (dim + 1)
    dask = {"n_workers": workers}
    memory = max(job_memory_mb(study, size, rule, workers, dask) for rule in ("geometry", "reduce"))
    from qgtflow.wedge import stored_points

    stored, _ = stored_points(study, grid)  # the irreducible wedge only with kgrid.symmetry_reduce
    return Estimate(study.name, size, n, int(memory), int(stored * per_k))


def machine_memory_mb() -> int:
    """Memory this process may use: the smallest of physical memory, the cgroup limit and the SLURM allocation."""
    limits = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20]
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text) / 2**20)
    for var in ("SLURM_MEM_PER_NODE",):
        if os.environ.get(var, "").isdigit():
            limits.append(float(os.environ[var]))
    return int(min(limits))


def free_disk_bytes(path: Path) -> int:
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free)
    except OSError:
        return 1 << 62


def check(study, sizes, *, workers: int, disk_dir: Path, what: str, machine_memory: bool = True) -> list[Estimate]:
    """Refuse (PreflightError, one line with the estimate) when any grid of ``sizes`` exceeds the study's
    ``limits`` or the machine; ``disk_dir``: where the stores go (their total must fit its free space)."""
    limits = study.config["limits"]  # validated: the schema's defaults filled in
    max_k = int(limits["max_kpoints"])
    mem_fraction = float(limits["memory_fraction"])
    disk_fraction = float(limits["disk_fraction"])
    where = study.where or ""
    try:
        estimates = [estimate(study, s, workers) for s in sizes]
    except (OverflowError, ValueError, MemoryError) as exc:  # e.g. a temperature so high the histogram is inf
        raise PreflightError(f"{what}: study '{study.name}': cannot estimate its size ({exc}); check the magnitudes "
                             f"of {where}temperature, {where}mu and the model parameters") from None
    for est in estimates:
        if est.n_kpoints > max_k:
            raise PreflightError(f"{what}: {est.text()}: more k-points than {where}limits.max_kpoints = {max_k}; "
                                 "use a smaller grid (kgrid.sizes / --size) or raise the limit")
    if machine_memory:
        have = machine_memory_mb()
        for est in estimates:
            if est.memory_mb > mem_fraction * have:
                raise PreflightError(f"{what}: {est.text()}: more memory than {mem_fraction:g} of the "
                                     f"{have / 1024:.3g} GiB this machine has ({where}limits.memory_fraction); use "
                                     "fewer workers, a smaller kgrid.chunk_size or grid, or a larger machine")
    need = sum(est.disk_bytes for est in estimates)
    free = free_disk_bytes(disk_dir)
    if need > disk_fraction * free:
        raise PreflightError(f"{what}: study '{study.name}' needs ~{need / GB:.3g} GB of stores in {disk_dir} "
                             f"({', '.join(e.text() for e in estimates[-1:])}); only {free / GB:.3g} GB are free "
                             f"({where}limits.disk_fraction = {disk_fraction:g}); free space or use smaller grids")
    for est in estimates:
        log.info("preflight %s: %s", what, est.text())
    return estimates


# ---------------------------------------------------------------- point sampling vs the grid's energy step


def sampling_rows(n_k: int, chunk: int, max_points: int = 1 << 16) -> np.ndarray:
    """The k-points :func:`sampling_step` looks at: a few whole chunks (at most 8, spread over the grid), strided
    down to about ``max_points``."""
    n_chunks = -(-n_k // chunk)
    picks = np.unique(np.linspace(0, n_chunks - 1, min(n_chunks, 8)).astype(int))  # a few whole chunks
    rows = np.concatenate([np.arange(c * chunk, min(n_k, (c + 1) * chunk)) for c in picks])
    return rows[:: max(1, rows.size // max_points)]


def sampling_step(study, geo, max_points: int = 1 << 16) -> float | None:
    """The median energy step |v|·h of the states within the Fermi window of the requested μ, from a
    strided sample of the geometry store (None: no such state in the sample, or not point sampling)."""
    if study.integration != "points" or "velocity" not in geo or "grid_spacing" not in geo.attrs:
        return None
    n_k = geo.sizes["kpoint"]
    rows = sampling_rows(n_k, int(geo.attrs.get("chunk_size", n_k)), max_points)
    if "in_fermi_window" in geo:  # a Fermi-surface-only store: no velocity where no state reaches the window
        rows = rows[np.asarray(geo["in_fermi_window"].isel(kpoint=rows).values, bool)]
    try:
        sample = geo[["energy", "velocity"]].isel(kpoint=rows).load()
    except ValueError:  # a damaged chunk: the reduce stage's own reads name it (qgtflow.io.read_rows)
        return None
    return sample_step(study, geo.attrs, sample["energy"].values, sample["velocity"].values)


def sample_step(study, grid_attrs, energy, velocity) -> float | None:
    """:func:`sampling_step` of a sample already read: ``energy`` (k, band), ``velocity`` (k, band, axis) at the
    rows of :func:`sampling_rows` (those in the Fermi window, for a Fermi-surface-only grid); ``grid_attrs`` the
    store's attrs (grid spacing)."""
    if not (np.isfinite(energy).all() and np.isfinite(velocity).all()):
        return None  # refused, naming the k-point, by the reduce stage's finite checks
    h = float(grid_attrs.get("grid_spacing_refined", grid_attrs["grid_spacing"]))
    energy = np.asarray(energy)
    speed = np.linalg.norm(np.asarray(velocity), axis=-1)  # (k, band)
    kT = float(np.min(study.kT)) if np.size(study.kT) else 0.0
    step = speed * h
    window = np.maximum(10.0 * kT, 2.0 * step)
    near = nearest_distance(energy, study.mu) < window  # |ε − μ| < window for some μ
    if not near.any():
        return None
    return float(np.median(step[near]))


def nearest_distance(energy, mu) -> np.ndarray:
    """min over ``mu`` of |energy − μ|, elementwise, by bisection in the sorted μ (O((n_ε + n_μ) log n_μ) instead of
    n_ε × n_μ; the same floating-point values: fl(ε − μ) is monotone in μ, so the minimum is at a neighbour)."""
    mu = np.sort(np.atleast_1d(np.asarray(mu, float)))
    energy = np.asarray(energy, float)
    if mu.size == 0:
        return np.full(energy.shape, np.inf)
    i = np.searchsorted(mu, energy)
    above = np.abs(energy - mu[np.minimum(i, mu.size - 1)])
    below = np.abs(energy - mu[np.maximum(i - 1, 0)])
    return np.minimum(above, below)


def sampling_warning(study, geo) -> str | None:
    """A loud warning (also stored in the responses attrs) when k_BT_min is below the grid's energy step."""
    return sampling_message(study, sampling_step(study, geo))


def sampling_message(study, step: float | None) -> str | None:
    """:func:`sampling_warning` of an energy step already estimated (:func:`sampling_step`, :func:`sample_step`)."""
    if step is None or not np.size(study.kT):
        return None
    kT = float(np.min(study.kT))
    if kT >= step:
        return None
    message = (f"study '{study.name}': point sampling with k_BT = {kT:.3g} below the grid's energy step |v|·h ~ "
               f"{step:.3g} at the Fermi level: responses may be off by tens of percent; use `integration: "
               f"tetrahedron`, `kgrid.refine`, or a grid about {math.ceil(step / kT):d}x denser per axis")
    log.warning("%s", message)
    return message
