"""The conventions users of Snakemake and of Python packages expect (issue 15): snakefmt-clean rule
files, a lint-clean workflow with min_version, results marked report(...) with captions, a CLI that
lists models and responses, and optional extras (the workflow stack only with qgtflow[workflow])."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from qgtflow.cli import UsageError, _need_workflow_stack, main

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]


def test_rule_files_are_snakefmt_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *map(str, SNAKEFILES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_is_lint_clean_and_pins_its_snakemake(tmp_path, snakemake_env):
    assert 'min_version("9.0")' in (ROOT / "Snakefile").read_text()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--lint",
                           "--configfile", str(ROOT / "config" / "test.yaml"), "--directory", str(tmp_path)],
                          cwd=tmp_path, env=snakemake_env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "your workflow is in a good condition" in out, out[-4000:]


@pytest.mark.slow
def test_snakemake_report_holds_the_marked_results(tiny_run_workspace):
    """`snakemake --report` of the session's tiny run: the report page and every study's convergence
    table, each with its caption."""
    ws = tiny_run_workspace
    config = ws.root / "config" / "snakemake-report.yaml"
    config.write_text(__import__("yaml").safe_dump(ws.config, sort_keys=False))
    out = ws.root / "snakemake-report.zip"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ws.root / "Snakefile"),
                           "--directory", str(ws.root), "--configfile", str(config), "--report", str(out)],
                          cwd=ws.root, env=ws.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    names = zipfile.ZipFile(out).namelist()
    assert sum(n.endswith("/convergence.csv") for n in names) == len(ws.config["studies"]), names
    assert any(n.endswith("/index.html") and "/data/raw/" in n for n in names), names


def test_models_and_responses_are_listed(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "haldane\n  params: t1=1, t2=0.1" in out and "pt_toy_4band" in out
    assert main(["responses"]) == 0
    out = capsys.readouterr().out
    assert "sigma_ahe (binned)\n  dims: mu, T, i, j\n  units (physical): 2D: S | 3D: S m-1" in out, out[:600]
    assert "formula: CATALOG: σ_ij = −(e²/ħ)" in out
    assert "with study key omega: 000 App. B Eq. 25: a_μαβ(ω) = a_μαβ(0)/(1 + iωτ)" in out  # the IFE's ω form
    for name in ("sigma_qm", "ndd_delta_n", "pockels_skew", "reflection"):
        assert f"\n{name} (" in f"\n{out}", name


def test_the_workflow_stack_is_an_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    assert "snakemake" not in core and "dask-jobqueue" not in core
    extras = project["optional-dependencies"]
    assert {d.split(">")[0] for d in extras["workflow"]} == {"snakemake", "snakemake-executor-plugin-slurm",
                                                             "dask-jobqueue"}
    assert "'.[workflow,test]'" in (ROOT / "Makefile").read_text()  # README's make run / make test: everything
    with pytest.raises(UsageError, match=r"pip install 'qgtflow\[workflow\]'"):
        _need_workflow_stack("snakemake", "qgtflow_no_such_module")
