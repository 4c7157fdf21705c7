"""Rule ``kgrid``: write the k-points and weights of one grid density (qgtflow.stages.kgrid_stage)."""


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.gridsize import parse
    from qgtflow.plan import stage_study
    from qgtflow.stages import kgrid_stage

    size = parse(smk.wildcards.size)  # n8 or n3x3x4
    study = stage_study("kgrid", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    kgrid_stage.run(study, size, smk.output.store, job=dict(smk.params.inputs))
    log.info("wrote %s", smk.output.store)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
