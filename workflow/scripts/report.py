"""Rule ``report``: the HTML report of every study (qgtflow.report.build_report)."""


def main(smk):
    from qgtflow.runtime import end_job, setup_job

    log, _ = setup_job(smk)  # before numpy/numba are imported

    from qgtflow.report import build_report

    build_report(smk.params.inputs, smk.params.results_dir, smk.output.html, processes=smk.threads)
    log.info("wrote %s", smk.output.html)
    end_job(log)  # publishes the numba cache, logs the job's CPU, exits without interpreter teardown


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
