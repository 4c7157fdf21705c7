"""Rule ``geometry``: fill ``geometry.zarr`` (resumable, qgtflow.stages.geometry_stage), then write the
manifest that is the rule's declared output.

The store sits beside the manifest, undeclared, so an interrupted job resumes at chunk level: the
stage resumes a store only when its fingerprint (qgtflow.plan: declared inputs, kgrid store,
source hash) is this job's, and rewrites it otherwise.

Workers: a Dask LocalCluster inside this job (config ``dask.backend: local``, the default), or Dask
workers in their own SLURM jobs (``dask.backend: slurm``, settings ``dask.slurm``; this job then
only schedules and writes the manifest).
"""

import json
import os
from pathlib import Path


def dask_on_slurm(smk, study, size, fields, log):
    """The SLURMCluster settings of this job: ``dask.slurm`` with memory and log directory filled in."""
    from qgtflow.cluster import slurm_settings, slurm_worker_memory_mb
    from qgtflow.runtime import dask_settings

    settings = slurm_settings(dask_settings())
    if settings["memory"] is None:
        from qgtflow.io import store_attrs

        chunk = int(store_attrs(smk.input.kgrid)["chunk_size"])
        settings["memory"] = slurm_worker_memory_mb(study, size, settings["cores"], fields=fields, chunk_size=chunk)
        log.info("Dask-on-SLURM worker job memory: %s MB (estimate for %d worker(s) of one chunk each)",
                 settings["memory"], settings["cores"])
    if settings["log_directory"] is None:
        settings["log_directory"] = str(Path(smk.log[0]).parent.parent / "dask-slurm")
    settings["numba_cache_dir"] = os.environ["NUMBA_CACHE_DIR"]  # set by setup_job; on the shared filesystem
    return settings


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, n_workers = setup_job(smk)  # before numpy/numba are imported

    from qgtflow import __version__
    from qgtflow.gridsize import parse
    from qgtflow.plan import stage_study
    from qgtflow.runtime import dask_settings
    from qgtflow.stages import geometry_stage

    name, size = smk.wildcards.study, parse(smk.wildcards.size)  # n8 or n3x3x4
    study = stage_study("geometry", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    job = dict(smk.params.inputs)  # this job's inputs and fingerprints (qgtflow.plan.job_inputs)
    fields = job["fields"]
    manifest = Path(smk.output.manifest)
    store = manifest.with_name("geometry.zarr")
    backend = dask_settings().get("backend", "local")
    if backend == "slurm":
        from qgtflow.cluster import slurm_cluster
        from qgtflow.runtime import announce_compile

        announce_compile(log, tuple(fields), study.model)

        with slurm_cluster(**dask_on_slurm(smk, study, size, fields, log)) as client:
            computed = geometry_stage.run(study, smk.input.kgrid, str(store), client=client, job=job)
    else:
        from qgtflow.io import store_attrs
        from qgtflow.runtime import announce_compile, stage_workers

        n_workers = stage_workers(log, int(store_attrs(smk.input.kgrid)["n_kpoints"]), n_workers)
        announce_compile(log, tuple(fields), study.model)
        computed = geometry_stage.run(study, smk.input.kgrid, str(store), n_workers=n_workers, job=job)

    info = {"store": store.name, "study": name, "size": size, "fingerprint": job["fingerprint"],
            "qgtflow_version": __version__, "chunks_computed_this_run": computed, "kgrid_store": str(smk.input.kgrid), "dask_backend": backend}
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(manifest)
    log.info("geometry store %s complete (%s chunks computed in this run)", store, computed)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
