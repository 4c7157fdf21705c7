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
    original = path.read_bytes()
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
    finally:
        path.write_bytes(original)
    if file.endswith("reduce_stage.py"):  # the hash follows the content: reverting the edit reverts the rerun
        assert ws.snakemake(ws.config)[0] == {}


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
