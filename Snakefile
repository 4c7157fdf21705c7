# qgtflow workflow: band quantum geometry -> converged nonlinear response tensors.
#
#   kgrid -> geometry -> reduce   (per study and grid size; kgrid -> shells -> reduce for the studies
#                                  with a model-evaluated response)
#         -> convergence          (per study, over its grid sizes)
#   bands                         (per study: bands and k-maps from the model)
#         -> report               ({results_dir}/report/index.html)
#
# `snakemake --report report.html` collects the results marked report(...) with their captions.
# Run: `qgtflow run` (local) or `qgtflow run --slurm` (see profiles/slurm/README.md);
# plain Snakemake: `snakemake --cores all [--configfile config/test.yaml]`.
# A `--configfile` given on the command line replaces config/config.yaml (it is not merged into it).


from snakemake.utils import min_version

min_version("9.0")


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/kgrid.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/reduce.smk"
include: "workflow/rules/convergence.smk"
include: "workflow/rules/bands.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/shells.smk"


rule all:
    default_target: True
    input:
        report_html(),
        convergence_tables(),
    localrule: True
