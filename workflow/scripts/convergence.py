"""Rule ``convergence``: extrapolate one study over its grid sizes (qgtflow.stages.convergence_stage)."""

from pathlib import Path


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.stages import convergence_stage
    from qgtflow.plan import stage_study

    study = stage_study("convergence", smk.params.inputs)  # its declared keys only (qgtflow.plan)
    out_dir = Path(smk.output.table).parent
    convergence_stage.run(study, [str(s) for s in smk.input.stores], str(out_dir), job=dict(smk.params.inputs))
    log.info("wrote %s", out_dir)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
