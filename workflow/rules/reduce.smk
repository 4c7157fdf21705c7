# Stage reduce: Fermi-sea / Fermi-surface integrals over every (mu, T) in one pass over k.
# It reads the keys qgtflow.plan declares for it (mu, T, tau, responses, omega, ...): changing one
# reruns this stage and the later ones only. A study with a model-evaluated response also reads its
# shells store (rule shells): reduce builds no model.


rule reduce:
    input:
        geometry=rules.geometry.output.manifest,
        shells=shells_store,
    output:
        store=directory(res("{study}", "n{size}", "responses.zarr")),
    log:
        rule_log("reduce"),
    benchmark:
        rule_benchmark("reduce")
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("reduce")
    resources:
        mem_mb=stage_mem_mb("reduce"),
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        inputs=stage_inputs("reduce"),
        source=SOURCE_HASH["reduce"],
    script:
        "../scripts/reduce.py"
