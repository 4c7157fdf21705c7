"""Rule ``convergence``: extrapolate one study over its grid sizes (qgtflow.convergence_stage)."""

from pathlib import Path


def main(smk):
    from qgtflow.cli import setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow import convergence_stage
    from qgtflow.study import load_study

    name = smk.wildcards.study
    study = load_study(smk.config["studies"][name], name=name)
    out_dir = Path(smk.output.table).parent
    convergence_stage.run(study, [str(s) for s in smk.input.stores], str(out_dir))
    log.info("wrote %s", out_dir)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
