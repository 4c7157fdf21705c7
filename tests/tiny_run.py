"""The one real tiny workflow run of a test session (fixture ``tiny_run`` in conftest.py), shared
by tests/test_reruns.py and tests/test_workflow.py.

A workspace: a frozen copy of the workflow (Snakefile, workflow/) and of the qgtflow package
(src/qgtflow, first on PYTHONPATH of every Snakemake and job process), run once for real on a
two-study config (``BASE``). The copy makes the per-stage source hashes (``SOURCE_HASH`` in
workflow/rules/common.smk, passed as params) independent of concurrent edits of the repository,
and lets the source-edit tests change code honestly: they edit a file of the copy.

Which jobs a change schedules is read from the job blocks Snakemake prints (``rule X:`` with its
``wildcards:`` and ``reason:``), or, for in-process dry runs (:meth:`Workspace.dry_run`, ~1 s),
from Snakemake's job-info log records.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

STUDY = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
         "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 32},
         "mu": [0.15, 0.3], "temperature": [50.0], "responses": ["sigma_drude"]}
BASE = {"results_dir": "results", "dask": {"n_workers": 1},
        "studies": {"A": copy.deepcopy(STUDY),
                    "B": {**copy.deepcopy(STUDY), "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.2}},
                          "mu": [0.25, 0.4]}},
        "report": {"title": "tiny run", "figures": [{"name": "drude_xx", "response": "sigma_drude",
                                                     "component": {"i": "x", "j": "x"}, "studies": ["A", "B"],
                                                     "x": "mu"}]}}
FULL_RUN = {"kgrid A n8", "geometry A n8", "reduce A n8", "convergence A", "bands A",
            "kgrid B n8", "geometry B n8", "reduce B n8", "convergence B", "bands B", "report", "all"}

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


def warm_kernels(frozen: Path) -> None:
    """The kernels ``BASE``'s jobs run, compiled (or loaded) in this process and filed for the frozen
    copy in the jobs' shared numba cache (tests/numba_seed.py): the copy's path is new every session,
    so its jobs would otherwise compile them cold, two jobs at a time."""
    import qgtflow
    from tests.numba_seed import seed_numba_cache

    qgtflow.evaluate(copy.deepcopy(STUDY), n_workers=0)
    seed_numba_cache(os.environ.get("NUMBA_CACHE_DIR"), relocate=(ROOT / "src" / "qgtflow", frozen))


def start(tmp_path_factory, snakemake_env) -> Workspace:
    """Copy the workflow and package, run ``BASE`` for real (every job), return the workspace."""
    root = tmp_path_factory.mktemp("tiny-run")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copy2(ROOT / "Snakefile", root / "Snakefile")
    shutil.copytree(ROOT / "workflow", root / "workflow", ignore=ignore)
    shutil.copytree(ROOT / "src" / "qgtflow", root / "src" / "qgtflow", ignore=ignore)
    w = Workspace(root, snakemake_env)
    where = subprocess.run([sys.executable, "-c", "import qgtflow; print(qgtflow.__file__)"], env=w.env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(root)), f"the workflow would not run the frozen copy: {where}"
    warm_kernels(root / "src" / "qgtflow")
    ran, _ = w.snakemake(BASE, dry=False)
    assert set(ran) == FULL_RUN, ran
    return w
