"""Results where the user is (issue 15): `qgtflow init DIR` writes a runnable project, a relative
results_dir resolves against the current directory, the wheel carries the workflow."""

from __future__ import annotations

import glob
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qgtflow import __version__
from qgtflow.cli import INIT_FILES, _results_dir, main, slurm_profile, workflow_root

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"qgtflow {__version__}"


def test_init_writes_a_project_and_refuses_a_directory_in_use(tmp_path, capsys):
    project = tmp_path / "proj"
    assert main(["init", str(project)]) == 0
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == sorted(INIT_FILES)
    assert (project / "config" / "config.yaml").read_text() == (ROOT / "config" / "config.yaml").read_text()
    assert main(["init", str(project)]) == 2  # not empty: never written into
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("qgtflow: error:")]
    assert str(project) in line and "not empty" in line and "new or empty directory" in line, line


def test_relative_results_dir_and_profile_resolve_in_the_current_directory(tmp_path, monkeypatch):
    root = workflow_root()
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("results_dir: out/here\n")
    assert _results_dir(root, [config], []) == tmp_path / "out" / "here"
    assert _results_dir(root, [config], ["--config", "results_dir=elsewhere"]) == tmp_path / "elsewhere"
    assert slurm_profile(root) == root / "profiles" / "slurm"  # no project profile here
    assert main(["init", str(tmp_path / "p")]) == 0
    monkeypatch.chdir(tmp_path / "p")
    assert slurm_profile(root) == tmp_path / "p" / "profiles" / "slurm"  # the project's own (site settings)


def test_dry_run_in_an_initialised_project_writes_only_there(tmp_path, snakemake_env):
    project = tmp_path / "proj"
    assert main(["init", str(project)]) == 0
    proc = subprocess.run([sys.executable, "-m", "qgtflow.cli", "run", "-n"], cwd=project, env=snakemake_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(project / "config" / "config.yaml") in proc.stderr  # the project's config, not the checkout's
    assert (project / ".snakemake").is_dir()


def test_the_wheel_ships_every_workflow_file():
    """Every tracked file the workflow needs is in pyproject's data-files (-> <prefix>/share/qgtflow,
    one of the places workflow_root() looks)."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {f for patterns in spec.values() for pattern in patterns for f in glob.glob(pattern, root_dir=ROOT)}
    needed = {str(p.relative_to(ROOT)) for d in ("workflow", "profiles") for p in (ROOT / d).rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    needed |= {"Snakefile", "config/config.yaml"} | set(INIT_FILES)
    assert needed <= shipped, sorted(needed - shipped)
    for target, patterns in spec.items():  # the layout under share/qgtflow mirrors the checkout
        for pattern in patterns:
            assert target == str(Path("share/qgtflow") / Path(pattern).parent).rstrip("/.") or \
                target == "share/qgtflow" and "/" not in pattern, (target, pattern)
