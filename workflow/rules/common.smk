# Shared helpers of the rules: config validation (once, at parse time), result paths, each rule's
# params from the plan (qgtflow.plan: what its stage declares it reads), source hashes of the
# qgtflow code each stage runs, and the jobs' threads and memory (SLURM: --cpus-per-task, --mem).

import ast
import functools
import hashlib
import os
import re
import sys
from pathlib import Path

import qgtflow as _qgtflow
from qgtflow.cluster import (
    RULE_THREADS,
    fit_to_partition,
    job_memory_mb,
    partition_limits,
    rule_job_threads,
    rule_partition,
)
from qgtflow import gridsize
from qgtflow.plan import WorkflowPlan
from qgtflow.runtime import publish_dask_settings
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def _fail(message):
    """Print a user error as one clean line and stop before any job runs (exit code 2)."""
    from qgtflow.errors import one_line

    print(f"qgtflow: error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------- config validation


def validate_config(config):
    """Validate the whole config once: schema (fills top-level defaults), then each study's
    semantics via the plan (qgtflow.study.load_study: fills the study defaults, builds the model),
    then the report figures. Replaces each study's slice by the validated one, so params are
    deterministic plain builtins. Any user error stops the workflow with one line naming key,
    value and expectation."""
    from qgtflow.errors import QgtflowError
    from qgtflow.study import schema_error

    try:
        validate(config, "../schemas/config.schema.yaml")
    except WorkflowError as exc:
        cause = exc.__context__
        if cause is not None and hasattr(cause, "absolute_path"):
            _fail(str(schema_error(cause)))
        raise
    try:
        for name in list(config["studies"]):
            config["studies"][name] = PLAN.study(name).config
    except QgtflowError as exc:
        _fail(str(exc))
    names = set()
    for n, fig in enumerate(config["report"]["figures"]):
        key = f"report.figures[{n}]"
        if fig["name"] in names:
            _fail(f"config key '{key}.name': got {fig['name']!r}; expected a name not used by another figure")
        names.add(fig["name"])
        for study in fig["studies"]:
            if study not in config["studies"]:
                _fail(
                    f"config key '{key}.studies': got {study!r}; expected one of the studies "
                    f"{sorted(config['studies'])}"
                )
            if fig.get("kind", "curves") != "curves":
                continue
            wanted = [(f"{key}.response", fig.get("response"))] + [
                (f"{key}.components[{c}].response", comp["response"])
                for c, comp in enumerate(fig.get("components") or [])
                if "response" in comp
            ]
            for where, response in wanted:
                if response not in config["studies"][study]["responses"]:
                    _fail(
                        f"config key '{where}': got {response!r}; expected a response computed by "
                        f"study {study!r} (its responses: {config['studies'][study]['responses']})"
                    )


# One plan (qgtflow.plan): what each stage reads. The main Snakemake process validates every study
# (refusing a bad config before any job); a job's own process (SLURM) parses this file again and
# builds only the study its job reads, when its params are evaluated.
PLAN = WorkflowPlan(config)
if workflow.is_main_process:
    validate_config(config)
else:
    validate(config, "../schemas/config.schema.yaml")  # fills the top-level defaults
publish_dask_settings(config["dask"])  # how jobs run (threads, workers), not what they compute: no params

STUDIES = list(config["studies"])
RESULTS = os.path.normpath(config["results_dir"])


wildcard_constraints:
    study="|".join(re.escape(s) for s in STUDIES),
    size=r"\d+(?:x\d+){0,2}",  # qgtflow.gridsize.LABEL_PATTERN: n8, n3x3x4 (anisotropic)


# ---------------------------------------------------------------- paths


def res(*parts):
    """A path under the results directory (parts may hold {wildcards})."""
    return "/".join([RESULTS, *parts])


def rule_log(rule_name, stem="{study}_n{size}"):
    return res("logs", rule_name, f"{stem}.log")


def rule_benchmark(rule_name, stem="{study}_n{size}"):
    return res("benchmarks", rule_name, f"{stem}.tsv")


def response_stores(wildcards):
    """The responses.zarr store of every grid size of one study."""
    return [res(wildcards.study, f"n{size}", "responses.zarr") for size in PLAN.sizes(wildcards.study)]


def shells_store(wildcards):
    """The shells store of the wildcard study and grid, for a study that has a shells job (else none)."""
    if "shells" in PLAN.inputs("reduce", wildcards.study, wildcards.size)["upstream"]:
        return [res(wildcards.study, f"n{wildcards.size}", "shells.zarr")]
    return []


def all_response_stores():
    return [res(s, f"n{size}", "responses.zarr") for s in STUDIES for size in PLAN.sizes(s)]


def all_bands_stores():
    return [res(s, "bands", "bands.zarr") for s in STUDIES]


def convergence_tables():
    return [res(s, "convergence", "convergence.csv") for s in STUDIES]


def report_html():
    return res("report", "index.html")


# ---------------------------------------------------------------- params: the plan


def stage_inputs(stage):
    """Params function: everything the stage's job of the wildcard study reads (qgtflow.plan:
    its declared study keys, the model hash, derived values such as the geometry fields). The job
    builds its Study from this param only, and that Study refuses any undeclared key."""

    def get(wildcards):
        return PLAN.inputs(stage, wildcards.study, getattr(wildcards, "size", None))

    return get


def report_inputs():
    """The report's params: its config section and each study's declared keys, studies in config
    order (the page follows it; reordering the studies reruns the report, by design)."""
    return PLAN.inputs("report")


# ---------------------------------------------------------------- threads and memory

DASK_BACKEND = config["dask"]["backend"]


def on_slurm():
    """Whether jobs go to SLURM (the executor is chosen after parsing: ask when a job is sized)."""
    return getattr(workflow.executor_plugin, "name", None) == "slurm"


def slurm_limits(rule_name):
    """CPUs and memory of the largest node (sinfo) of the partition the rule's jobs go to (its
    slurm_partition resource, else the cluster's default partition), when jobs go to SLURM."""
    if not on_slurm():
        return None
    return partition_limits(rule_partition(workflow.resource_settings, rule_name))


def rule_threads(rule_name):
    """Threads of each stage (qgtflow.cluster.RULE_THREADS), on SLURM capped at the CPUs of the
    partition's largest node, with a warning (a job asking for more would pend forever). With the
    config `dask.backend = slurm` the geometry job only schedules (its workers are SLURM jobs of
    their own), so it takes 1 thread. A geometry/reduce job small enough to run in its own process (no
    Dask cluster, qgtflow.cluster.rule_job_threads) takes 1 thread too, so another job runs beside it."""
    if rule_name == "geometry" and DASK_BACKEND == "slurm":
        return 1
    if RULE_THREADS[rule_name] == 1:
        return 1

    def threads(wildcards):
        wanted = RULE_THREADS[rule_name]  # the report: no grid wildcards
        if rule_name in ("geometry", "reduce"):
            study = PLAN.study(wildcards.study)
            n_points = study.make_grid(gridsize.parse(wildcards.size)).n_points
            wanted = rule_job_threads(rule_name, n_points, config["dask"].get("n_workers"))
        return 1 if wanted == 1 else fit_to_partition(rule_name, "cpus", wanted, slurm_limits(rule_name))

    return threads


def stage_mem_mb(rule_name):
    """Resource function: mem_mb of a geometry/reduce job from the field arrays of one chunk held by
    each of its Dask workers (qgtflow.cluster.job_memory_mb), times the retry attempt; on SLURM
    capped at the memory of the partition's largest node, with a warning."""

    def mem_mb(wildcards, threads, attempt):
        study = PLAN.study(wildcards.study)
        wanted = job_memory_mb(study, gridsize.parse(wildcards.size), rule_name, threads, config["dask"]) * attempt
        return fit_to_partition(rule_name, "mem_mb", wanted, slurm_limits(rule_name))

    return mem_mb


# ---------------------------------------------------------------- params: source hashes

PKG_DIR = Path(_qgtflow.__file__).resolve().parent


def _module_file(name):
    parts = name.split(".")[1:]
    base = PKG_DIR.joinpath(*parts)
    for cand in (base / "__init__.py", base.with_suffix(".py") if parts else None):
        if cand is not None and cand.is_file():
            return cand
    return None


@functools.cache  # the stage hashes share most modules: each file is parsed once per Snakefile parse
def _imported_names(path, modname):
    """Every module name `path` imports (a tuple): at any depth in a module (lazy imports inside
    functions count: they run when the stage calls them), at top level only in a package's __init__
    (it runs on import of any submodule; its functions, e.g. the qgtflow.evaluate facade, do not)."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in tree.body if is_pkg else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = modname.split(".") if is_pkg else modname.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.append(mod)
            names.extend(f"{mod}.{alias.name}" for alias in node.names)
    return tuple(names)


def _closure(roots, exclude=()):
    """Files of the qgtflow modules reachable by imports from `roots` (parent packages included),
    leaving out the modules under the `exclude` prefixes."""
    seen, files, todo = set(), {}, list(roots)
    while todo:
        name = todo.pop()
        if name in seen or not (name == "qgtflow" or name.startswith("qgtflow.")):
            continue
        if any(name == e or name.startswith(f"{e}.") for e in exclude):
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = _module_file(name)
        if path is not None:
            files[path] = name
            todo.extend(_imported_names(path, name))
    return files


def source_hash(*roots, exclude=()):
    """Hash of the source of the qgtflow modules the given modules import (transitively), plus the
    package's schemas: a param, so editing that code reruns the stage (Snakemake does not see
    edits to an installed package by itself)."""
    files = sorted(_closure(roots, exclude)) + sorted(PKG_DIR.glob("schemas/*.yaml"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PKG_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


_STUDY = "qgtflow.study"
# qgtflow.study imports qgtflow.reduce only to check response names: leaving it out of the
# kgrid/geometry hashes keeps an edit of a response formula from rerunning the expensive stages.
_NOT_UPSTREAM = ("qgtflow.reduce",)
# each stage's hash covers its upstream stages too (the geometry script also uses it to decide
# whether an unfinished geometry store may be resumed)
SOURCE_HASH = {
    "kgrid": source_hash(_STUDY, "qgtflow.stages.kgrid_stage", exclude=_NOT_UPSTREAM),
    "geometry": source_hash(
        _STUDY, "qgtflow.stages.kgrid_stage", "qgtflow.stages.geometry_stage", exclude=_NOT_UPSTREAM
    ),
    "reduce": source_hash(_STUDY, "qgtflow.stages.reduce_stage"),
    "convergence": source_hash(_STUDY, "qgtflow.stages.convergence_stage"),
    "shells": source_hash(_STUDY, "qgtflow.stages.kgrid_stage", "qgtflow.stages.shells_stage"),
    "bands": source_hash(_STUDY, "qgtflow.stages.bands_stage", exclude=_NOT_UPSTREAM),
    "report": source_hash("qgtflow.report"),
}
PLAN.code = SOURCE_HASH  # each store's fingerprint covers the source hash of the stage that wrote it
