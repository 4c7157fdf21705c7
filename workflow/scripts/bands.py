"""Rule ``bands``: band energies and fields along a k-path and on a k-plane (qgtflow.stages.bands_stage)."""


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.plan import stage_study
    from qgtflow.stages import bands_stage

    study = stage_study("bands", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    bands_stage.run(study, smk.output.store, job=dict(smk.params.inputs))
    log.info("wrote %s", smk.output.store)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
