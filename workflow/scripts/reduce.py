"""Rule ``reduce``: responses over every (mu, T) from the geometry store (qgtflow.stages.reduce_stage)."""

import json
from pathlib import Path


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, n_workers = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.plan import stage_study
    from qgtflow.stages import reduce_stage

    study = stage_study("reduce", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    manifest = Path(smk.input.geometry)
    store = manifest.parent / json.loads(manifest.read_text())["store"]
    from qgtflow.io import store_attrs
    from qgtflow.runtime import stage_workers

    n_workers = stage_workers(log, int(store_attrs(store)["n_kpoints"]), n_workers)
    shells = smk.input.shells  # a study with a shells job has its store here (else an empty list)
    shells = shells if isinstance(shells, str) else (shells[0] if len(shells) else None)
    reduce_stage.run(study, str(store), smk.output.store, n_workers=n_workers, job=dict(smk.params.inputs),
                     shells_store=shells)
    log.info("wrote %s", smk.output.store)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
