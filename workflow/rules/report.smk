# Stage report: one HTML page with the comparison figures of `report.figures` and every study's
# convergence verdicts. Runs on the submitting machine (small job).


rule report:
    input:
        tables=convergence_tables(),
        stores=all_response_stores(),
        bands=all_bands_stores(),
    output:
        html=report(report_html(), caption="../report/report.rst", category="Report", labels={"page": "qgtflow report"}),
    log:
        res("logs", "report", "report.log"),
    benchmark:
        res("benchmarks", "report", "report.tsv")
    localrule: True
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("report")
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    params:
        inputs=lambda wildcards: report_inputs(),
        results_dir=lambda wildcards, output: str(Path(output.html).parent.parent),
        source=SOURCE_HASH["report"],
    script:
        "../scripts/report.py"
