"""Rule ``kgrid``: write the k-points and weights of one grid density (qgtflow.stages.kgrid_stage)."""


def main(smk):
    from qgtflow.cli import setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.stages import kgrid_stage
    from qgtflow.study import load_study

    name, size = smk.wildcards.study, int(smk.wildcards.size)
    study = load_study(smk.config["studies"][name], name=name)
    kgrid_stage.run(study, size, smk.output.store)
    log.info("wrote %s", smk.output.store)


if __name__ == "__main__":  # guard: Dask worker processes re-import this file
    main(snakemake)  # noqa: F821 - injected by Snakemake
