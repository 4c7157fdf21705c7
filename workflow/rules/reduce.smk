# Stage reduce: Fermi-sea / Fermi-surface integrals over every (mu, T) in one pass over k.
# Changing mu, temperature, tau, responses or fermi_form reruns this stage (and later) only.


rule reduce:
    input:
        geometry=rules.geometry.output.manifest,
    output:
        store=directory(res("{study}", "n{size}", "responses.zarr")),
    params:
        study=study_slice(
            "model",
            "units",
            "kgrid",
            "degeneracy_threshold",
            "mu",
            "temperature",
            "tau",
            "responses",
            "fermi_form",
            "energy_bins_per_kT",
        ),
        source=SOURCE_HASH["reduce"],
    conda:
        "../envs/qgtflow.yaml"
    log:
        rule_log("reduce"),
    benchmark:
        rule_benchmark("reduce")
    threads: rule_threads("reduce")
    resources:
        mem_mb=stage_mem_mb("reduce"),
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/reduce.py"
