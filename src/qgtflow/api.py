"""``evaluate``: one study at one grid density, without the workflow engine."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path


from qgtflow import gridsize
from qgtflow.study import load_study

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "qgtflow-scratch-"


def evaluate(study, size: int | None = None, out: str | None = None, n_workers: int | None = None,
             workdir: str | None = None):
    """Run kgrid → geometry (→ shells) → reduce for ``study`` at one grid density and return the responses.

    The stages talk through their stores as in the workflow: the shells stage (only for a study with a
    model-evaluated response) diagonalises the model at the Fermi shells, and reduce runs on the study its
    contract gives it (:func:`qgtflow.plan.stage_study`: its declared keys, no model).

    study: dict, YAML path or :class:`qgtflow.study.Study` (validated before any compute).
    size: points per axis, or one number per axis for an anisotropic Monkhorst–Pack grid such as
        (3, 3, 4) (default: the largest of ``kgrid.sizes``).
    out: optional path of the responses zarr store to write; reserved before any compute
        (:func:`qgtflow.io.output_lock`: refused if it cannot be written, is not a zarr store, or
        another run is writing it).
    n_workers: Dask workers; 0 runs in this process; default: in this process for the one pass (below) at any
        size (numba's threads use every core; a LocalCluster's start and its workers' kernel loading cost more than
        they save: Haldane 1024², four responses, 2.4–2.8 s in process vs 5.0–6.1 s on a default cluster), and for the
        stage path up to :data:`qgtflow.cluster.IN_PROCESS_MAX_POINTS` k-points, else one worker per visible core.
    workdir: where the intermediate kgrid/geometry stores go (default: a temporary directory). Without it and with
        point sampling, the geometry fields are reduced chunk by chunk as they are computed and never stored
        (:mod:`qgtflow.stages.fused`; in this process the same responses, bitwise; on Dask workers each task returns
        its partial sums, equal to rounding), and a plain uniform grid's k-points are made in memory (no kgrid store
        either); pass ``workdir`` to keep the stores.
    """
    from qgtflow import io
    from qgtflow.cluster import IN_PROCESS_MAX_POINTS, in_process, local_cluster, single_threaded_blas
    from qgtflow.models.base import fixed_hashes
    from qgtflow.plan import grid_chain, stage_study
    from qgtflow.runtime import announce_compile
    from qgtflow.stages import fused, geometry_stage, kgrid_stage, reduce_stage, shells_stage

    st = load_study(study)
    size = gridsize.normalise(st.sizes[-1] if size is None else size)  # the finest grid by default
    label = gridsize.label(size)
    reserved = io.output_lock(out) if out is not None else contextlib.nullcontext()
    # scratch named by pid: a later evaluate removes it if this process is killed (qgtflow.safety.sweep_scratch)
    scratch = contextlib.nullcontext(workdir) if workdir else _scratch_dir()
    with reserved, scratch as tmp, single_threaded_blas(), fixed_hashes():
        base = Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        kgrid_store = base / f"{st.name}_n{label}_kgrid.zarr"
        geometry_store = base / f"{st.name}_n{label}_geometry.zarr"
        chain = grid_chain(st, size)  # each store's fingerprint, as the workflow plans them
        shells_store = base / f"{st.name}_n{label}_shells.zarr" if "shells" in chain else None
        reduce_study = stage_study("reduce", chain["reduce"], where=st.where)  # reads no model
        grid = kgrid_stage.memory_grid(st, size, chain["kgrid"]) \
            if not workdir and shells_store is None and fused.applies(st) else None
        if grid is not None:  # one pass, no store at all
            announce_compile(log, tuple(chain["geometry"]["fields"]), st.model)
            if not n_workers:  # None or 0: numba's threads in this process (docstring)
                log.info("evaluate %s: %d k-points, in this process, one pass (no store)", st.name, grid.n_points)
                return fused.run(st, reduce_study, grid, chain["geometry"], chain["reduce"], out).load()
            log.info("evaluate %s: %d k-points, one pass on Dask workers (no store)", st.name, grid.n_points)
            with local_cluster(n_workers) as client:
                return fused.run(st, reduce_study, grid, chain["geometry"], chain["reduce"], out,
                                 client=client).load()
        kgrid_stage.run(st, size, kgrid_store, job=chain["kgrid"])
        if shells_store is not None:
            shells_stage.run(st, kgrid_store, shells_store, job=chain["shells"])
        n_points = int(io.store_attrs(kgrid_store)["n_kpoints"])
        one_pass = not workdir and fused.applies(st)  # no store kept: none written
        if (one_pass and not n_workers) or in_process(n_points, n_workers):  # the one pass's policy as above
            log.info("evaluate %s: %d k-points, in this process (%s; n_workers for a Dask cluster)", st.name,
                     n_points, "one pass" if one_pass else f"no Dask cluster up to {IN_PROCESS_MAX_POINTS}")
            n_workers = 0
        announce_compile(log, tuple(chain["geometry"]["fields"]), st.model)
        if n_workers == 0 and one_pass:
            ds = fused.run(st, reduce_study, kgrid_store, chain["geometry"], chain["reduce"], out, shells_store)
        elif one_pass:  # on Dask workers, each returning its partial sums: no store
            with local_cluster(n_workers) as client:
                ds = fused.run(st, reduce_study, kgrid_store, chain["geometry"], chain["reduce"], out, shells_store,
                               client=client)
        elif n_workers == 0:
            geometry_stage.run(st, kgrid_store, geometry_store, n_workers=0, job=chain["geometry"])
            ds = reduce_stage.run(reduce_study, geometry_store, out, n_workers=0, job=chain["reduce"],
                                  shells_store=shells_store)
        else:
            with local_cluster(n_workers) as client:
                geometry_stage.run(st, kgrid_store, geometry_store, client=client, job=chain["geometry"])
                ds = reduce_stage.run(reduce_study, geometry_store, out, client=client, job=chain["reduce"],
                                      shells_store=shells_store)
        return ds.load()


@contextlib.contextmanager
def _scratch_dir(quiet_s: float = 1.0, limit_s: float = 10.0):
    """A private temporary directory, removed on exit. Leaving by an exception (a signal), a store writer's I/O
    thread (zarr's event loop) or a Dask pool thread may still finish a chunk and recreate the directory after it
    was removed (seen in the suite on a loaded machine): removal is repeated until the directory stayed absent
    ``quiet_s`` (at most ``limit_s``); anything left is swept by the next evaluate
    (:func:`qgtflow.safety.sweep_scratch`)."""
    path = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
    clean = False
    try:
        yield path
        clean = True
    finally:
        deadline, absent_since = time.monotonic() + (limit_s if not clean else 2.0), None
        while time.monotonic() < deadline:
            shutil.rmtree(path, ignore_errors=True)
            if os.path.exists(path):
                absent_since = None
            elif clean:
                break
            elif absent_since is None:
                absent_since = time.monotonic()
            elif time.monotonic() - absent_since >= quiet_s:
                break
            time.sleep(0.05)
