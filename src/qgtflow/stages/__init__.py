"""Workflow stages: each reads the previous stage's zarr store and writes its own.

kgrid → geometry → reduce (→ convergence, report). Each ``run`` is what a Snakemake rule's
script calls; :func:`qgtflow.api.evaluate` chains them for one study without Snakemake.
"""
