# Stage geometry: band-geometry fields per k-point and band, on a Dask LocalCluster inside the job.
#
# The output is a small manifest written after the stage returns. The store itself,
# {results}/{study}/n{size}/geometry.zarr, lives beside it undeclared, so Snakemake does not delete
# it before a rerun: an interrupted job resumes at chunk level (finished chunks are kept).


rule geometry:
    input:
        kgrid=rules.kgrid.output.store,
    output:
        manifest=res("{study}", "n{size}", "geometry.done.json"),
    log:
        rule_log("geometry"),
    benchmark:
        rule_benchmark("geometry")
    conda:
        "../envs/qgtflow.yaml"
    threads: rule_threads("geometry")
    resources:
        mem_mb=stage_mem_mb("geometry"),
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        inputs=stage_inputs("geometry"),
        source=SOURCE_HASH["geometry"],
    script:
        "../scripts/geometry.py"
