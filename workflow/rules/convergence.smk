# Stage convergence: extrapolation over the grid sizes of one study, with verdicts and plots.
# Writes convergence.csv, convergence.zarr and *.png into {results}/{study}/convergence/.


rule convergence:
    input:
        stores=response_stores,
    output:
        table=report(
            res("{study}", "convergence", "convergence.csv"),
            caption="../report/convergence.rst",
            category="Convergence",
            subcategory="{study}",
            labels={"study": "{study}", "table": "convergence"},
        ),
        store=directory(res("{study}", "convergence", "convergence.zarr")),
    log:
        rule_log("convergence", "{study}"),
    benchmark:
        rule_benchmark("convergence", "{study}")
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("convergence")
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    params:
        inputs=stage_inputs("convergence"),
        source=SOURCE_HASH["convergence"],
    script:
        "../scripts/convergence.py"
