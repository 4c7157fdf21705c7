# Stage kgrid: k-points and integration weights of one grid density (zarr store).


rule kgrid:
    output:
        store=directory(res("{study}", "n{size}", "kgrid.zarr")),
    log:
        rule_log("kgrid"),
    benchmark:
        rule_benchmark("kgrid")
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("kgrid")
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        inputs=stage_inputs("kgrid"),
        source=SOURCE_HASH["kgrid"],
    script:
        "../scripts/kgrid.py"
