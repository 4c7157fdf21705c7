"""Incremental reruns, proven on a real Snakemake run of a tiny two-study config.

One workspace per module: a frozen copy of the workflow (Snakefile, workflow/) and of the qgtflow
package (src/qgtflow, first on PYTHONPATH of every Snakemake and job process), run once for real.
The copy makes the per-stage source hashes (``SOURCE_HASH`` in workflow/rules/common.smk, passed as
params) independent of concurrent edits of the repository, and lets the source-edit test change
code honestly: it edits a file of the copy and lets the workflow hash it.

Which jobs a change schedules is read from the job blocks Snakemake prints (``rule X:`` with its
``wildcards:`` and ``reason:``), for dry runs and for real runs alike. tests/test_workflow.py's
test_real_run checks the job *counts* of a dry run after a mu/T change of config/test.yaml; here
every change names the exact jobs, and the T/mu and new-grid changes are executed for real, with
the untouched stores checked file by file.

The dry-run tests leave the results as they are; the two executing tests come last and move the
workspace's current config forward (``Workspace.config``).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]

STUDY = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
         "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 32},
         "mu": [0.15, 0.3], "temperature": [50.0], "responses": ["sigma_drude"]}
BASE = {"results_dir": "results", "dask": {"n_workers": 1},
        "studies": {"A": copy.deepcopy(STUDY),
                    "B": {**copy.deepcopy(STUDY), "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.2}},
                          "mu": [0.25, 0.4]}},
        "report": {"title": "rerun test", "figures": []}}
FULL_RUN = {"kgrid A n8", "geometry A n8", "reduce A n8", "convergence A",
            "kgrid B n8", "geometry B n8", "reduce B n8", "convergence B", "report", "all"}

_RULE = re.compile(r"^(?:local)?rule (\w+):\s*$")


def jobs_of(output: str) -> dict[str, str]:
    """{job label: reason} of the job blocks in Snakemake's output ('reduce A n8', 'convergence A', 'report')."""
    jobs, reason, wildcards, rule = {}, "", {}, None

    def close():
        if rule is not None:
            parts = [rule] + ([wildcards["study"]] if "study" in wildcards else []) + \
                    ([f"n{wildcards['size']}"] if "size" in wildcards else [])
            jobs[" ".join(parts)] = reason

    for line in output.splitlines():
        m = _RULE.match(line)
        if m:
            close()
            rule, reason, wildcards = m.group(1), "", {}
        elif rule is not None and line.startswith("    wildcards: "):
            wildcards = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split(", "))
        elif rule is not None and line.startswith("    reason: "):
            reason = line.split(": ", 1)[1]
    close()
    return jobs


def snapshot(*dirs: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file under the given directories."""
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


class Workspace:
    def __init__(self, root: Path, env: dict):
        self.root = root
        self.results = root / "results"
        self.env = {**env, "PYTHONPATH": os.pathsep.join(
            [str(root / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))}
        self.config = copy.deepcopy(BASE)  # the config the results currently reflect
        self._n = 0

    def snakemake(self, config: dict, *extra: str, dry: bool = True) -> tuple[dict[str, str], str]:
        self._n += 1
        path = self.root / "config" / f"config{self._n}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(self.root / "Snakefile"), "--directory",
               str(self.root), "--cores", "2", "--set-threads", "geometry=1", "reduce=1", "--configfile", str(path),
               *(["--dry-run"] if dry else []), *extra]
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-6000:]
        return jobs_of(output), output

    def dry_run(self, config: dict) -> set[str]:
        """The jobs a dry run of ``config`` schedules, in this process (Snakemake API): ~1 s, no
        interpreter start-up. The job labels are read from Snakemake's job-info log records."""
        import logging

        from snakemake.api import SnakemakeApi
        from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

        self._n += 1
        path = self.root / "config" / f"config{self._n}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        jobs = set()

        class JobInfo(logging.Filter):  # a filter: Snakemake replaces the handlers of its logger
            def filter(self, record):
                if str(getattr(getattr(record, "event", None), "value", "")) == "job_info":
                    w = record.wildcards or {}
                    jobs.add(" ".join([record.rule_name] + ([w["study"]] if "study" in w else [])
                                      + ([f"n{w['size']}"] if "size" in w else [])))
                return True

        logger, catch = logging.getLogger("snakemake.logging"), JobInfo()
        logger.addFilter(catch)
        try:
            with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
                workflow = api.workflow(resource_settings=ResourceSettings(cores=2),
                                        config_settings=ConfigSettings(configfiles=[path]),
                                        snakefile=self.root / "Snakefile", workdir=self.root)
                workflow.dag().execute_workflow(executor="dryrun")
        finally:
            logger.removeFilter(catch)
        return jobs


@pytest.fixture(scope="module")
def ws(tmp_path_factory, snakemake_env) -> Workspace:
    root = tmp_path_factory.mktemp("reruns")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copy2(ROOT / "Snakefile", root / "Snakefile")
    shutil.copytree(ROOT / "workflow", root / "workflow", ignore=ignore)
    shutil.copytree(ROOT / "src" / "qgtflow", root / "src" / "qgtflow", ignore=ignore)
    w = Workspace(root, snakemake_env)
    where = subprocess.run([sys.executable, "-c", "import qgtflow; print(qgtflow.__file__)"], env=w.env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(root)), f"the workflow would not run the frozen copy: {where}"
    ran, _ = w.snakemake(BASE, dry=False)
    assert set(ran) == FULL_RUN
    return w


def edited(config: dict, edit) -> dict:
    new = copy.deepcopy(config)
    edit(new)
    return new


def reorder(value, key=None):
    """The same config with the keys of every mapping in reverse order, except the order of the
    studies (the report page follows it: reordering them reruns the report, by design)."""
    if isinstance(value, dict):
        keys = list(value) if key == "studies" else list(reversed(list(value)))
        return {k: reorder(value[k], k) for k in keys}
    return value


# ---------------------------------------------------------------- dry runs (results untouched)


def test_noop_rerun_runs_nothing(ws):
    """(a) Nothing to do, also for the same config written with its keys in another order (params
    are canonical), and a real run then writes nothing under the results directory."""
    jobs, _ = ws.snakemake(reorder(ws.config))
    assert jobs == {}
    before = snapshot(ws.results)
    jobs, output = ws.snakemake(ws.config, dry=False)
    assert jobs == {} and "Nothing to be done" in output
    assert snapshot(ws.results) == before


def test_model_parameter_change_reruns_that_study_only(ws):
    """(d) A model parameter of study A: every stage of A, nothing of B."""
    jobs, _ = ws.snakemake(edited(ws.config, lambda c: c["studies"]["A"]["model"]["params"].update(mass=0.12)))
    assert set(jobs) == {"kgrid A n8", "geometry A n8", "reduce A n8", "convergence A", "report", "all"}
    assert "Params have changed" in jobs["kgrid A n8"], jobs


# (e) code edits. Each stage's params carry a hash of the qgtflow source it runs (its module and
# everything it imports, upstream stages included); a rule's own script is Snakemake's `code`
# trigger. An edit is a comment appended to a file of the frozen copy: the hash covers the text, so
# even a comment counts. {file: (jobs scheduled, the first of them, its reason)}
SOURCE_EDITS = {
    "src/qgtflow/stages/reduce_stage.py": (
        {"reduce A n8", "reduce B n8", "convergence A", "convergence B", "report", "all"}, "reduce A n8",
        "Params have changed"),
    "src/qgtflow/stages/kgrid_stage.py": (FULL_RUN, "kgrid A n8", "Params have changed"),
    "src/qgtflow/report.py": ({"report", "all"}, "report", "Params have changed"),
    # the command line: no stage runs it (the rule scripts use only setup_job, which is not hashed)
    "src/qgtflow/cli.py": (set(), None, None),
    "workflow/scripts/reduce.py": (
        {"reduce A n8", "reduce B n8", "convergence A", "convergence B", "report", "all"}, "reduce A n8",
        "Code has changed"),
}


@pytest.mark.parametrize("file", list(SOURCE_EDITS))
def test_source_edit_reruns_the_stages_that_run_it(ws, file):
    path = ws.root / file
    original, stat = path.read_bytes(), path.stat()
    expected, first, reason = SOURCE_EDITS[file]
    try:
        path.write_bytes(original + b"\n# edited by tests/test_reruns.py\n")
        jobs, _ = ws.snakemake(ws.config)
        assert set(jobs) == expected, jobs
        if first:
            assert reason in jobs[first], jobs
        if file.endswith("reduce_stage.py"):
            # documented in the README: without the params trigger, code edits of the package go unseen
            jobs, _ = ws.snakemake(ws.config, "--rerun-triggers", "mtime", "input", "code", "software-env")
            assert jobs == {}
    finally:  # the file as it was, its time too (Snakemake's code trigger also reads a script's mtime)
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    if file.endswith("reduce_stage.py"):  # the hash follows the content: reverting the edit reverts the rerun
        assert ws.snakemake(ws.config)[0] == {}


# ---------------------------------------------------------------- every schema key (in-process dry runs)
#
# Generated from the study schema: every key (every sub-key of the objects the base study holds,
# the whole object for those it lacks) gets a new value, written into study A or B of the real
# run's config, and an in-process Snakemake dry run must schedule exactly the stages whose declared
# inputs (qgtflow.plan) change, and the stages downstream of them: no fewer (a stale result), no
# more (a needless rerun). Two keys per dry run, one per study.

# values for the keys the generic rule (enum: another member, boolean: flipped, number: doubled)
# cannot produce; a new schema key without a rule here fails test_every_schema_key_has_a_case
NEW_VALUES = {
    "description": "changed",
    "model.params": {"v": 1.0, "mass": 0.13},
    "units": {"energy": "eV", "length": "angstrom"},
    "kgrid.sizes": [8, 10],
    "kgrid.kmax": 1.2,
    "kgrid.shift": 0.5,
    "kgrid.refine": {"factor": 2},
    "mu": [0.1, 0.3],
    "temperature": [50.0, 70.0],
    "energy_resolution": 1.0e-3,
    "omega": [0.2],
    "impurities": {"density": 1.0e-5, "potential": 10.0},
    "electro_optics": {"e_dc": [1.0e4]},
    "broadening": 0.01,
    "responses": ["sigma_drude", "sigma_bcd"],
    "convergence.atol": 1.0e-9,
}
# keys no case changes: the study's name is its key under `studies` (a new name is a new study)
NOT_CHANGED = {"name": "the study's key under `studies`"}
# the keys of the stale-report bug: each must rerun reduce (not only the report)
STALE_BEFORE = ("omega", "resolve_sectors", "integration", "broadening", "energy_resolution", "impurities",
                "electro_optics")


def _schema_keys():
    """(dotted key, its schema) of every key a case changes: top-level keys, and the sub-keys of the
    objects present in the base study (the model by its representative `params`)."""
    from qgtflow.study import study_schema

    schema = study_schema()
    keys = []
    for key, sub in schema["properties"].items():
        if key in NOT_CHANGED:
            continue
        if key == "model":
            keys.append(("model.params", sub["properties"]["params"]))
        elif sub.get("type") == "object" and "default" in sub:  # present in every study (defaults)
            keys += [(f"{key}.{k}", s) for k, s in sub["properties"].items()]
        else:
            keys.append((key, sub))
    return keys


def _current(cfg: dict, key: str):
    for part in key.split("."):
        cfg = (cfg or {}).get(part)
    return cfg


def _new_value(key: str, sub: dict, current):
    if key in NEW_VALUES:
        return copy.deepcopy(NEW_VALUES[key])
    if "enum" in sub:
        return next(v for v in sub["enum"] if v != current)
    if sub.get("type") == "boolean":
        return not current
    if sub.get("type") in ("number", "integer") and current:
        return current * 2
    raise AssertionError(f"no new value for study key {key!r}: add one to NEW_VALUES")


def _set(cfg: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        cfg = cfg.setdefault(part, {})
    cfg[last] = value


def schema_cases() -> list[tuple[str, object]]:
    """(key, new value) per schema key, against the validated base study A."""
    from qgtflow.study import load_study

    validated = load_study(copy.deepcopy(STUDY), name="A").config
    return [(key, _new_value(key, sub, _current(validated, key))) for key, sub in _schema_keys()]


def test_every_schema_key_has_a_case():
    from qgtflow.study import study_schema

    cases = dict(schema_cases())
    top = {k.split(".")[0] for k in cases} | set(NOT_CHANGED)
    assert top == set(study_schema()["properties"])
    assert set(STALE_BEFORE) <= set(cases)


def expected_jobs(config: dict, study: str, key: str, value) -> set[str]:
    """The jobs a change of ``key`` of ``study`` must schedule, from the stages' declarations
    (qgtflow.plan): those whose declared inputs change, new ones, and everything downstream of them."""
    from qgtflow import plan

    new = edited(config, lambda c: _set(c["studies"][study], key, copy.deepcopy(value)))
    old_plan, new_plan = plan.WorkflowPlan(config), plan.WorkflowPlan(new)
    old_jobs = set(old_plan.jobs())
    changed = {job for job in new_plan.jobs()
               if job not in old_jobs or new_plan.job_params(job) != old_plan.job_params(job)}
    return plan.downstream_jobs(new_plan, changed)


def test_stale_report_keys_rerun_reduce():
    """The issue's bug as a statement about the declarations: each key reruns reduce (and later)."""
    cases = dict(schema_cases())
    for key in STALE_BEFORE:
        jobs = expected_jobs(BASE, "A", key, cases[key])
        assert {"reduce A n8", "convergence A", "report"} <= jobs, (key, jobs)


def test_every_schema_key_reruns_exactly_its_readers(ws, monkeypatch):
    """An in-process dry run per pair of keys (one in A, one in B) schedules exactly the declared jobs."""
    monkeypatch.setenv("PATH", ws.env["PATH"])
    cases = schema_cases()
    pairs = [cases[i:i + 2] for i in range(0, len(cases), 2)]
    wrong = []
    for pair in pairs:
        config, expected = copy.deepcopy(ws.config), set()
        for study, (key, value) in zip("AB", pair):
            expected |= expected_jobs(ws.config, study, key, value)
            _set(config["studies"][study], key, copy.deepcopy(value))
        jobs = set(ws.dry_run(config)) - {"all"}
        if jobs != expected:
            wrong.append(f"{[k for k, _ in pair]}: scheduled {sorted(jobs)}, declared {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- executed reruns (in file order)


def test_temperature_or_mu_change_reruns_reduce_and_later_only(ws):
    """(b) T of study A and mu of study B change: their reduce jobs rerun for real, kgrid and
    geometry stores stay untouched file by file, the new responses carry the new coordinates."""
    import xarray as xr

    new = edited(ws.config, lambda c: (c["studies"]["A"].update(temperature=[50.0, 80.0]),
                                       c["studies"]["B"].update(mu=[0.2, 0.3, 0.4])))
    upstream = [ws.results / s / "n8" / f for s in "AB" for f in ("kgrid.zarr", "geometry.zarr")]
    before = snapshot(*upstream)
    manifests = {s: (ws.results / s / "n8" / "geometry.done.json").read_text() for s in "AB"}
    ran, _ = ws.snakemake(new, dry=False)
    assert set(ran) == {"reduce A n8", "reduce B n8", "convergence A", "convergence B", "report", "all"}
    assert snapshot(*upstream) == before
    assert {s: (ws.results / s / "n8" / "geometry.done.json").read_text() for s in "AB"} == manifests
    with xr.open_zarr(ws.results / "A" / "n8" / "responses.zarr") as a, \
            xr.open_zarr(ws.results / "B" / "n8" / "responses.zarr") as b:
        assert list(a["T"].values) == [50.0, 80.0] and list(b["mu"].values) == [0.2, 0.3, 0.4]
    ws.config = new
    assert ws.snakemake(ws.config)[0] == {}


def test_new_grid_density_computes_only_the_new_grid(ws):
    """(c) A third grid density of study A: only its kgrid/geometry/reduce (+ A's convergence and
    the report) run; the existing grid's stores and all of B stay untouched."""
    new = edited(ws.config, lambda c: c["studies"]["A"]["kgrid"].update(sizes=[8, 12]))
    kept = [ws.results / "A" / "n8", ws.results / "B"]
    before = snapshot(*kept)
    ran, _ = ws.snakemake(new, dry=False)
    assert set(ran) == {"kgrid A n12", "geometry A n12", "reduce A n12", "convergence A", "report", "all"}
    assert snapshot(*kept) == before
    assert (ws.results / "A" / "n12" / "responses.zarr" / "zarr.json").is_file()
    ws.config = new
    assert ws.snakemake(ws.config)[0] == {}
