"""Incremental reruns, proven on the session's one real Snakemake run of a tiny two-study config
(tests/tiny_run.py, fixture ``tiny_run_workspace`` in conftest.py).

Every change names the exact jobs it schedules; the T/mu and new-grid changes are executed for
real, with the untouched stores checked file by file. Every key of the study schema is checked by
an in-process dry run against the stages' declarations (qgtflow.plan).

The dry-run tests leave the results as they are; the two executing tests come last and move the
workspace's current config forward (``Workspace.config``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from tests import tiny_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = tiny_run.ROOT
STUDY, BASE, FULL_RUN = tiny_run.STUDY, tiny_run.BASE, tiny_run.FULL_RUN
snapshot = tiny_run.snapshot


@pytest.fixture(scope="module")
def ws(tiny_run_workspace) -> tiny_run.Workspace:
    return tiny_run_workspace


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
    assert set(jobs) == {"kgrid A n8", "geometry A n8", "reduce A n8", "convergence A", "bands A", "report", "all"}
    assert "Params have changed" in jobs["kgrid A n8"], jobs


# (e) code edits. Each stage's params carry a hash of the qgtflow source it runs (its module and
# everything it imports, upstream stages included); a rule's own script is Snakemake's `code`
# trigger. An edit is a comment appended to a file of the frozen copy: the hash covers the text, so
# even a comment counts. {file: (jobs scheduled, the first of them, its reason)}
SOURCE_EDITS = {
    "src/qgtflow/stages/reduce_stage.py": (
        {"reduce A n8", "reduce B n8", "convergence A", "convergence B", "report", "all"}, "reduce A n8",
        "Params have changed"),
    "src/qgtflow/stages/kgrid_stage.py": (FULL_RUN - {"bands A", "bands B"}, "kgrid A n8", "Params have changed"),
    # the bands stage reads the model only: its edit reruns it and the report
    "src/qgtflow/stages/bands_stage.py": ({"bands A", "bands B", "report", "all"}, "bands A", "Params have changed"),
    "src/qgtflow/report/figures.py": ({"report", "all"}, "report", "Params have changed"),
    # the papers' claims the report checks: a declared report input (its digest, qgtflow.plan.report_inputs)
    "src/qgtflow/data/claims.yaml": ({"report", "all"}, "report", "Params have changed"),
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
    "kgrid.sizes": [8, [10, 12]],  # an anisotropic grid: jobs and directories n10x12
    "kgrid.kmax": 1.2,
    "kgrid.shift": 0.5,
    "kgrid.refine": {"factor": 2},
    "mu": [0.1, 0.3],
    "temperature": [50.0, 70.0],
    "energy_resolution": 1.0e-3,
    "omega": [0.2],
    "impurities": {"density": 1.0e-5, "potential": 10.0, "born_tau": True},  # a new shells job (plan.shell_products)
    "electro_optics": {"e_dc": [1.0e4]},
    "broadening": 0.01,
    "responses": ["sigma_drude", "sigma_bcd"],
    "convergence.atol": 1.0e-9,
    "limits.memory_fraction": 0.5,  # preflight ceilings: read before any compute, by no stage
    "limits.disk_fraction": 0.5,
    # the crystal's forbidden components: a derived value of the convergence contract (and `qgtflow converge`)
    "symmetry": {"atoms": [["C", 0.0, 0.0, 0.0], ["C", 1 / 3, 1 / 3, 0.0]],
                 "magnetic_moments": [[0, 0, 1.0], [0, 0, 1.0]]},
    "bands.path": [["G", [0.0, 0.0]], ["X", [1.0, 0.0]]],  # the bands stage and the report only
    "bands.fields": ["berry_curvature", "bcp"],
    "bands.kmap": {"points": 11, "fields": ["quantum_metric"]},
}
# keys valid only together with another: the case sets those too (omega needs a response with a frequency form)
COMPANIONS = {"omega": {"responses": ["sigma_drude", "sigma_optical"]},
              # a crystal needs a periodic model (the base study's massive Dirac cone is a k·p model)
              "symmetry": {"model": {"name": "haldane", "params": {"t1": 1.0, "t2": 0.1}},
                           "kgrid": {"sizes": [8], "chunk_size": 32}},
              # the irreducible wedge needs the crystal (a periodic model) and responses with a symmetry action
              "kgrid.symmetry_reduce": {"model": {"name": "haldane", "params": {"t1": 1.0, "t2": 0.1}},
                                        "symmetry": {"atoms": [["C", 0.0, 0.0, 0.0], ["C", 1 / 3, 1 / 3, 0.0]],
                                                     "magnetic_moments": [[0, 0, 1.0], [0, 0, 1.0]]},
                                        "kgrid": {"sizes": [8], "chunk_size": 32}}}
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


def _set_case(study_cfg: dict, key: str, value) -> None:
    """Apply one case: the key, and the keys it needs to be valid (COMPANIONS)."""
    for other, companion in COMPANIONS.get(key, {}).items():
        _set(study_cfg, other, copy.deepcopy(companion))
    _set(study_cfg, key, copy.deepcopy(value))


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


def package_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yaml"):
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def expected_jobs(config: dict, study: str, key: str, value) -> set[str]:
    """The jobs a change of ``key`` of ``study`` must schedule, from the stages' declarations
    (qgtflow.plan): those whose declared inputs change, new ones, and everything downstream of them."""
    from qgtflow import plan

    new = edited(config, lambda c: _set_case(c["studies"][study], key, value))
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
    if package_digest(ws.root / "src" / "qgtflow") != package_digest(ROOT / "src" / "qgtflow"):
        # in process, the Snakefile hashes the repository's package, the real run hashed the copy
        pytest.skip("qgtflow sources were edited during the test session; the rerun checks cannot be judged")
    cases = schema_cases()
    pairs = [cases[i:i + 2] for i in range(0, len(cases), 2)]
    wrong = []
    for pair in pairs:
        config, expected = copy.deepcopy(ws.config), set()
        for study, (key, value) in zip("AB", pair):
            expected |= expected_jobs(ws.config, study, key, value)
            _set_case(config["studies"][study], key, value)
        jobs = set(ws.dry_run(config)) - {"all"}
        if jobs != expected:
            wrong.append(f"{[k for k, _ in pair]}: scheduled {sorted(jobs)}, declared {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- executed reruns (in file order)


def test_temperature_or_mu_change_reruns_reduce_and_later_only(ws):
    """(b) T of study A and mu of study B change: their reduce jobs rerun for real, kgrid and
    geometry stores stay untouched file by file, the new responses carry the new coordinates.

    The tiny run's studies are Fermi-surface-only (sigma_drude): their geometry reads the Fermi window (the plan's
    ``fermi_window``), which a lower T and a mu between the old ones leave alone; a higher T or a mu beyond them
    moves it and reruns the geometry too."""
    import xarray as xr

    moved = edited(ws.config, lambda c: (c["studies"]["A"].update(temperature=[50.0, 80.0]),
                                         c["studies"]["B"].update(mu=[0.2, 0.3, 0.4])))
    assert {"geometry A n8", "geometry B n8"} <= ws.dry_run(moved)
    new = edited(ws.config, lambda c: (c["studies"]["A"].update(temperature=[30.0, 50.0]),
                                       c["studies"]["B"].update(mu=[0.25, 0.3, 0.4])))
    upstream = [ws.results / s / "n8" / f for s in "AB" for f in ("kgrid.zarr", "geometry.zarr")]
    before = snapshot(*upstream)
    manifests = {s: (ws.results / s / "n8" / "geometry.done.json").read_text() for s in "AB"}
    ran, _ = ws.snakemake(new, dry=False)
    assert set(ran) == {"reduce A n8", "reduce B n8", "convergence A", "convergence B", "report", "all"}
    assert snapshot(*upstream) == before
    assert {s: (ws.results / s / "n8" / "geometry.done.json").read_text() for s in "AB"} == manifests
    with xr.open_zarr(ws.results / "A" / "n8" / "responses.zarr") as a, \
            xr.open_zarr(ws.results / "B" / "n8" / "responses.zarr") as b:
        assert list(a["T"].values) == [30.0, 50.0] and list(b["mu"].values) == [0.25, 0.3, 0.4]
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
