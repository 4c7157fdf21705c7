"""Rule ``geometry``: fill ``geometry.zarr`` (resumable, qgtflow.stages.geometry_stage), then write the
manifest that is the rule's declared output.

The store sits beside the manifest, undeclared, so an interrupted job resumes at chunk level. A
store left by a job with different params (config slice or qgtflow source hash) is deleted first:
the stage's own fingerprint covers the config, not code changes.
"""

import hashlib
import json
import shutil
from pathlib import Path


def main(smk):
    from qgtflow.cli import setup_job

    log, n_workers = setup_job(smk)  # before numpy/numba are imported

    from qgtflow import __version__
    from qgtflow.stages import geometry_stage
    from qgtflow.study import load_study

    name, size = smk.wildcards.study, int(smk.wildcards.size)
    study = load_study(smk.config["studies"][name], name=name)
    manifest = Path(smk.output.manifest)
    store = manifest.with_name("geometry.zarr")
    resume_key = manifest.with_name("geometry.resume.json")
    job_params = {"study": smk.params.study, "source": smk.params.source, "size": size}
    key = hashlib.sha256(json.dumps(job_params, sort_keys=True).encode()).hexdigest()[:16]

    previous = json.loads(resume_key.read_text()).get("key") if resume_key.is_file() else None
    if store.exists() and previous != key:
        log.info("removing %s: made with other params or code (key %s, now %s)", store, previous, key)
        shutil.rmtree(store)
    resume_key.write_text(json.dumps({"key": key, "params": job_params}, indent=1, sort_keys=True))

    computed = geometry_stage.run(study, smk.input.kgrid, str(store), n_workers=n_workers)

    info = {"store": store.name, "study": name, "size": size, "key": key, "qgtflow_version": __version__,
            "chunks_computed_this_run": computed, "kgrid_store": str(smk.input.kgrid)}
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(manifest)
    log.info("geometry store %s complete (%s chunks computed in this run)", store, computed)


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
