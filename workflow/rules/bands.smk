# Stage bands: band energies and band-resolved geometry along a k-path and on a k-plane, from the model
# alone (no grid). Writes {results}/{study}/bands/bands.zarr, which the report's bands and k-map figures read.
# Runs on the submitting machine (about a second per study).


rule bands:
    output:
        store=directory(res("{study}", "bands", "bands.zarr")),
    log:
        rule_log("bands", "{study}"),
    benchmark:
        rule_benchmark("bands", "{study}")
    localrule: True
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("bands")
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        inputs=stage_inputs("bands"),
        source=SOURCE_HASH["bands"],
    script:
        "../scripts/bands.py"
