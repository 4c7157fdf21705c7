"""The Snakemake workflow layer: lint, dry runs, config refusal, the CLI, and (slow) a tiny real run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT)]
QGTFLOW = [sys.executable, "-m", "qgtflow.cli"]
TEST_CONFIG = ROOT / "config" / "test.yaml"
STAGE_RULES = ["kgrid", "geometry", "reduce", "convergence", "bands", "report", "all"]


def run(cmd, env, timeout=120):
    """``cmd`` from the repository, with the session's Snakemake environment (conftest.snakemake_env:
    no ~9 s wait for an absent SLURM controller at each Snakemake start)."""
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake (dry) run: {rule: count}."""
    counts = {}
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line)
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_config_files_parse():
    for name in ("config.yaml", "test.yaml"):
        cfg = yaml.safe_load((ROOT / "config" / name).read_text())
        assert {"results_dir", "dask", "studies", "report"} <= set(cfg)


# `snakemake --lint` is clean: tests/test_conventions.py::test_workflow_is_lint_clean_and_pins_its_snakemake


def test_dry_run_lists_rules(tmp_path, snakemake_env):
    proc = run(SNAKEMAKE + ["--dry-run", "--configfile", str(TEST_CONFIG), "--config", f"results_dir={tmp_path}"],
               snakemake_env)
    assert proc.returncode == 0, proc.stderr
    counts = job_counts(proc.stdout + proc.stderr)
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    n_grids = sum(len(s["kgrid"]["sizes"]) for s in cfg["studies"].values())
    assert counts == {"kgrid": n_grids, "geometry": n_grids, "reduce": n_grids,
                      "convergence": len(cfg["studies"]), "bands": len(cfg["studies"]), "report": 1, "all": 1}
    # --configfile replaces config/config.yaml: none of the default studies are scheduled
    assert "pt_toy_t05" not in proc.stdout
    assert str(tmp_path / "report" / "index.html") in proc.stdout


def write_config(tmp_path, edit) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    edit(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def refused(tmp_path, env, edit) -> str:
    path = write_config(tmp_path, edit)
    proc = run(SNAKEMAKE + ["--dry-run", "--configfile", str(path), "--config", f"results_dir={tmp_path / 'r'}"], env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("qgtflow: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_config_negative_size_refused(tmp_path, snakemake_env):
    msg = refused(tmp_path, snakemake_env, lambda c: c["studies"]["pt_toy"]["kgrid"].update(sizes=[-4, 16]))
    assert "studies.pt_toy.kgrid.sizes[0]" in msg and "-4" in msg and ">= 2" in msg


def test_config_unknown_response_refused(tmp_path, snakemake_env):
    msg = refused(tmp_path, snakemake_env,
                  lambda c: c["studies"]["haldane"].update(responses=["sigma_ahe", "sigma_nonsense"]))
    assert "studies.haldane.responses" in msg and "sigma_nonsense" in msg


def test_config_unknown_key_and_bad_figure_refused(tmp_path, snakemake_env):
    msg = refused(tmp_path, snakemake_env, lambda c: c["dask"].update(workers=3))
    assert "dask.workers" in msg and "n_workers" in msg
    msg = refused(tmp_path, snakemake_env,
                  lambda c: c["report"]["figures"][0].update(studies=["pt_toy", "nope"]))
    assert "report.figures[0].studies" in msg and "nope" in msg
    msg = refused(tmp_path, snakemake_env, lambda c: c["report"]["figures"][0].update(
        components=[{"i": "x", "j": "y", "k": "y"}, {"response": "sigma_nonsense"}]))
    assert "report.figures[0].components[1].response" in msg and "sigma_nonsense" in msg


def test_cli_user_errors_exit_2(tmp_path, snakemake_env):
    proc = run(QGTFLOW + ["evaluate", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o.zarr")], snakemake_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("qgtflow: error:")
    assert "missing.yaml" in proc.stderr
    proc = run(QGTFLOW + ["run", "--configfile", str(tmp_path / "missing.yaml"), "--dry-run"], snakemake_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("qgtflow: error: config file")
    bad = write_config(tmp_path, lambda c: c["studies"]["pt_toy"].update(tau=-1.0))
    proc = run(QGTFLOW + ["run", "--configfile", str(bad), "--dry-run"], snakemake_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "qgtflow: error: config key 'studies.pt_toy.tau'" in proc.stderr


def test_cli_run_dry_run(tmp_path, snakemake_env):
    proc = run(QGTFLOW + ["run", "--dry-run", "--configfile", str(TEST_CONFIG), "--config", f"results_dir={tmp_path}"],
               snakemake_env)
    assert proc.returncode == 0, proc.stderr
    assert set(job_counts(proc.stdout + proc.stderr)) == set(STAGE_RULES)
    from qgtflow.cli import LOCAL_JOB_RATE

    assert f"--max-jobs-per-timespan {LOCAL_JOB_RATE}" in proc.stderr  # the scheduler's timer chains thinned


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_run(tiny_run_workspace):
    """The session's real run (tests/tiny_run.py, shared with tests/test_reruns.py): every store
    opens and carries its fingerprint, logs and benchmarks per job, and `qgtflow report` rebuilds
    the page from the existing results only."""
    import xarray as xr

    from qgtflow import io

    ws = tiny_run_workspace
    results = ws.results
    assert (results / "report" / "index.html").stat().st_size > 0
    for name, study in ws.config["studies"].items():
        for size in study["kgrid"]["sizes"]:
            base = results / name / f"n{size}"
            for store in ("kgrid.zarr", "geometry.zarr", "responses.zarr"):
                xr.open_zarr(base / store).close()
                assert io.store_attrs(base / store)[io.FINGERPRINT]
            assert (base / "geometry.done.json").is_file()
            with xr.open_zarr(base / "responses.zarr") as ds:
                assert set(study["responses"]) <= set(ds.data_vars)
        assert (results / name / "convergence" / "convergence.csv").stat().st_size > 0
        assert io.store_attrs(results / name / "convergence" / "convergence.zarr")[io.FINGERPRINT]
        with io.open_store(results / name / "bands" / "bands.zarr") as bands:  # complete, checksummed
            assert bands.attrs[io.FINGERPRINT] and {"energy", "berry_curvature", "kmap_energy"} <= set(bands.data_vars)
            assert all({"units", "long_name", "formula"} <= set(bands[v].attrs) for v in bands.data_vars)
        io.verify_store(results / name / "bands" / "bands.zarr")
    for rule in ("kgrid", "geometry", "reduce", "convergence", "bands"):
        assert list((results / "logs" / rule).glob("*.log")) and list((results / "benchmarks" / rule).glob("*.tsv"))
    for log in (results / "logs").glob("*/*.log"):  # each job left through runtime.end_job: cache published, CPU logged
        assert re.search(r" job CPU \d+\.\d\d s", log.read_text().rstrip().splitlines()[-1]), log

    page = results / "report" / "index.html"
    before = page.stat().st_mtime_ns
    config = ws.root / "config" / "report.yaml"
    config.write_text(yaml.safe_dump(ws.config, sort_keys=False))
    proc = subprocess.run(QGTFLOW + ["report", "--configfile", str(config)], cwd=ws.root, capture_output=True,
                          text=True, timeout=300, env={**ws.env, "QGTFLOW_WORKFLOW_DIR": str(ws.root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert page.stat().st_mtime_ns > before
    assert "drude_xx" in page.read_text()
    assert "A/bands.png" in page.read_text() and "B/kmap.png" in page.read_text()  # read from the bands stores
