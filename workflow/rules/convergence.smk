# Stage convergence: extrapolation over the grid sizes of one study, with verdicts and plots.
# Writes convergence.csv, convergence.zarr and *.png into {results}/{study}/convergence/.


rule convergence:
    input:
        stores=response_stores,
    output:
        table=res("{study}", "convergence", "convergence.csv"),
        store=directory(res("{study}", "convergence", "convergence.zarr")),
    params:
        inputs=stage_inputs("convergence"),
        source=SOURCE_HASH["convergence"],
    conda:
        "../envs/qgtflow.yaml"
    log:
        rule_log("convergence", "{study}"),
    benchmark:
        rule_benchmark("convergence", "{study}")
    threads: rule_threads("convergence")
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    script:
        "../scripts/convergence.py"
