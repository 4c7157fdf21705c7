# Stage shells: the model's Fermi shells on the grid for the model-evaluated responses (pockels_skew,
# impurities.born_tau): a job only for the studies that request one (qgtflow.plan.shell_products). It
# reads the keys qgtflow.plan declares for it (model, kgrid, mu, T, impurities, ...), and the reduce
# stage reads its store instead of building the model.


rule shells:
    input:
        kgrid=rules.kgrid.output.store,
    output:
        store=directory(res("{study}", "n{size}", "shells.zarr")),
    log:
        rule_log("shells"),
    benchmark:
        rule_benchmark("shells")
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("shells")
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        inputs=stage_inputs("shells"),
        source=SOURCE_HASH["shells"],
    script:
        "../scripts/shells.py"
