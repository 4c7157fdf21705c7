"""Rule ``shells``: the model's Fermi shells for the model-evaluated responses (qgtflow.stages.shells_stage)."""


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.plan import stage_study
    from qgtflow.stages import shells_stage

    study = stage_study("shells", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    shells_stage.run(study, smk.input.kgrid, smk.output.store, job=dict(smk.params.inputs))
    log.info("wrote %s", smk.output.store)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
