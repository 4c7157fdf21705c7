"""Rule ``geometry``: fill ``geometry.zarr`` (resumable, qgtflow.stages.geometry_stage), then write the
manifest that is the rule's declared output.

The store sits beside the manifest, undeclared, so an interrupted job resumes at chunk level. A
store left by a job with different params (config slice or qgtflow source hash) is deleted first:
the stage's own fingerprint covers the config, not code changes.

Workers: a Dask LocalCluster inside this job (config ``dask.backend: local``, the default), or Dask
workers in their own SLURM jobs (``dask.backend: slurm``, settings ``dask.slurm``; this job then
only schedules and writes the manifest).
"""

import hashlib
import json
import os
import shutil
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
    from qgtflow.runtime import setup_job

    log, n_workers = setup_job(smk)  # before numpy/numba are imported

    from qgtflow import __version__
    from qgtflow.plan import stage_study
    from qgtflow.runtime import dask_settings
    from qgtflow.stages import geometry_stage

    name, size = smk.wildcards.study, int(smk.wildcards.size)
    study = stage_study("geometry", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    fields = smk.params.inputs["fields"]
    manifest = Path(smk.output.manifest)
    store = manifest.with_name("geometry.zarr")
    resume_key = manifest.with_name("geometry.resume.json")
    job_params = {"inputs": smk.params.inputs, "source": smk.params.source, "size": size}
    key = hashlib.sha256(json.dumps(job_params, sort_keys=True).encode()).hexdigest()[:16]

    previous = json.loads(resume_key.read_text()).get("key") if resume_key.is_file() else None
    if store.exists() and previous != key:
        log.info("removing %s: made with other params or code (key %s, now %s)", store, previous, key)
        shutil.rmtree(store)
    resume_key.write_text(json.dumps({"key": key, "params": job_params}, indent=1, sort_keys=True))

    backend = dask_settings().get("backend", "local")
    if backend == "slurm":
        from qgtflow.cluster import slurm_cluster

        with slurm_cluster(**dask_on_slurm(smk, study, size, fields, log)) as client:
            computed = geometry_stage.run(study, smk.input.kgrid, str(store), client=client, fields=fields)
    else:
        computed = geometry_stage.run(study, smk.input.kgrid, str(store), n_workers=n_workers, fields=fields)

    info = {"store": store.name, "study": name, "size": size, "key": key, "qgtflow_version": __version__,
            "chunks_computed_this_run": computed, "kgrid_store": str(smk.input.kgrid), "dask_backend": backend}
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(manifest)
    log.info("geometry store %s complete (%s chunks computed in this run)", store, computed)


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
