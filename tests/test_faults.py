"""Faults: a killed Dask worker, two runs on one output, an unwritable or full results location.

(kill -9 of the geometry stage and its resume: tests/test_stages.py.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from qgtflow import io
from qgtflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
         "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 32},
         "mu": [0.15, 0.3], "temperature": [50.0], "responses": ["sigma_drude"]}


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("qgtflow: error:")]


@contextlib.contextmanager
def mounted(target: Path, *, readonly_from: Path | None = None, tmpfs_kb: int | None = None):
    """A read-only bind mount of ``readonly_from`` at ``target``, or a tmpfs of ``tmpfs_kb`` KiB (needs
    root and a mount namespace that allows it; skips the test otherwise)."""
    target.mkdir(parents=True, exist_ok=True)
    if tmpfs_kb is not None:
        cmds = [["mount", "-t", "tmpfs", "-o", f"size={tmpfs_kb}k", "tmpfs", str(target)]]
    else:
        cmds = [["mount", "--bind", str(readonly_from), str(target)],
                ["mount", "-o", "remount,bind,ro", str(target)]]
    done = 0
    try:
        for cmd in cmds:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except FileNotFoundError:
                proc = None
            if proc is None or proc.returncode != 0:
                pytest.skip(f"cannot mount here ({' '.join(cmd)}: {proc.stderr.strip() if proc else 'no mount'})")
            done += 1
        yield target
    finally:
        if done:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def workflow_copy(tmp_path: Path) -> Path:
    """The workflow (Snakefile, rules, scripts, schemas) in a directory of its own: `qgtflow run` works
    there (QGTFLOW_WORKFLOW_DIR), so .snakemake/ and its locks never touch the repository."""
    root = tmp_path / "wf"
    root.mkdir()
    shutil.copy2(ROOT / "Snakefile", root / "Snakefile")
    shutil.copytree(ROOT / "workflow", root / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "src" / "qgtflow" / "schemas", root / "src" / "qgtflow" / "schemas")
    return root


# ---------------------------------------------------------------- (a) a Dask worker dies mid-stage


def test_killed_dask_worker_is_replaced_and_result_is_bit_identical(tmp_path):
    """SIGKILL one of two worker processes of a real LocalCluster once some geometry chunks are done:
    its tasks are rerun elsewhere and every field equals an undisturbed in-process run bit for bit."""
    from qgtflow.cluster import local_cluster
    from qgtflow.stages import geometry_stage, kgrid_stage
    from qgtflow.study import load_study

    size = 96  # 64 chunks: each takes tens of ms (mostly zarr writes of every core field), so the kill lands mid-run
    st = load_study({**SMALL, "kgrid": {"sizes": [size], "kmax": 1.0, "chunk_size": 144}, "store_fields": "all"})
    kg, ref, geo = tmp_path / "kgrid.zarr", tmp_path / "ref.zarr", tmp_path / "geometry.zarr"
    kgrid_stage.run(st, size, kg)
    geometry_stage.run(st, kg, ref, n_workers=0)
    n_chunks = io.open_store(kg).sizes["chunk"]
    killed: dict = {}

    with local_cluster(2) as client:
        pids = client.run(os.getpid)

        def kill_one_worker():
            deadline = time.time() + 120
            while time.time() < deadline and not killed:
                time.sleep(0.005)
                with contextlib.suppress(Exception):  # the store is still being created
                    done = int(io.chunks_done(geo).sum())
                    if done >= n_chunks // 8:
                        victim = sorted(pids.values())[0]
                        os.kill(victim, signal.SIGKILL)
                        killed.update(pid=victim, done=done)

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        computed = geometry_stage.run(st, kg, geo, client=client)
        killer.join(10)
        assert killed and killed["done"] < n_chunks, f"the kill must land mid-run ({killed}, {n_chunks} chunks)"
        client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed worker process
        assert killed["pid"] not in client.run(os.getpid).values()
    assert computed == n_chunks
    a, b = io.open_store(ref), io.open_store(geo)
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)


# ---------------------------------------------------------------- (b) two runs on one output


@contextlib.contextmanager
def stopped_when(proc: subprocess.Popen, ready, timeout: float = 120):
    """Freeze ``proc``'s process group (SIGSTOP) as soon as ``ready()``; resume it when the block ends."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the first run ended before it could be caught holding its lock"
        assert time.time() < deadline, "the first run never took its lock"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def test_second_workflow_run_on_the_same_results_is_refused(tmp_path, snakemake_env):
    """A `qgtflow run` while another run writes the same results directory: one clear line, exit 2,
    nothing run; the first run then finishes, its store is complete and its lock is gone."""
    root = workflow_copy(tmp_path)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"results_dir": "results", "dask": {"n_workers": 1}, "studies": {"A": SMALL}}))
    env = {**snakemake_env, "QGTFLOW_WORKFLOW_DIR": str(root)}
    run = [sys.executable, "-m", "qgtflow.cli", "run", "--cores", "1", "--configfile", str(config)]
    target = "results/A/n8/kgrid.zarr"  # relative to the workflow directory, as Snakemake names outputs
    first = subprocess.Popen(run + [target], env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        with stopped_when(first, lambda: any((root / ".snakemake" / "locks").glob("*.lock"))):
            second = subprocess.run(run, env=env, cwd=root, capture_output=True, text=True, timeout=300)
        first_out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert second.returncode == 2, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    (line,) = error_lines(second.stderr)
    # refused by the results-directory lock (which also holds across checkouts), before Snakemake starts
    assert "another qgtflow run" in line and str(root / "results") in line and f"pid {first.pid}" in line, line
    assert first.returncode == 0, first_out[-3000:]
    io.open_store(root / target).close()  # complete
    assert not (root / "results" / "A" / "n8" / "geometry.done.json").exists()  # the refused run ran nothing
    assert not (root / "results" / ".qgtflow-run.lock").exists()


def test_second_evaluate_to_the_same_store_is_refused(tmp_path, capsys):
    """`qgtflow evaluate --out X` while another evaluate writes X: refused before any compute (the
    output lock), the first run completes its store, the lock file is gone afterwards."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "out.zarr"
    lock = tmp_path / "out.zarr.lock"
    first = subprocess.Popen([sys.executable, "-m", "qgtflow.cli", "evaluate", str(study), "--out", str(out),
                              "--workers", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        with stopped_when(first, lambda: lock.is_file() and lock.stat().st_size > 0):
            rc = main(["evaluate", str(study), "--out", str(out), "--workers", "0"])
        first_out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    (line,) = error_lines(err)
    assert str(out) in line and "being written by another qgtflow run" in line and f"pid {first.pid}" in line, line
    assert first.returncode == 0, first_out[-3000:]
    assert io.open_store(out).attrs["qgtflow_complete"]
    assert not lock.exists()


# ---------------------------------------------------------------- (c) unwritable or full results location


def test_read_only_results_directory_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    """`qgtflow run` and `qgtflow evaluate` with results on a read-only file system: one line naming
    the path, exit 2, nothing run, the earlier results there intact. (Tests run as root, where a
    chmod does not stop writes: a read-only bind mount does.)"""
    source = tmp_path / "earlier"
    (source / "A").mkdir(parents=True)
    (source / "A" / "earlier.txt").write_text("earlier results\n")
    with mounted(tmp_path / "ro", readonly_from=source) as ro:
        root = workflow_copy(tmp_path)
        monkeypatch.setenv("QGTFLOW_WORKFLOW_DIR", str(root))
        monkeypatch.chdir(root)  # run from there: .snakemake/ lands in the current directory
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"results_dir": str(ro / "results"), "studies": {"A": SMALL}}))
        assert main(["run", "--configfile", str(config)]) == 2
        (line,) = error_lines(capsys.readouterr().err)
        assert str(ro / "results") in line and "read-only file system" in line, line
        # --config results_dir=... overrides the file, as Snakemake does
        assert main(["run", "--configfile", str(config), "--config", f"results_dir={ro}/A"]) == 2
        assert f"{ro}/A" in error_lines(capsys.readouterr().err)[0]
        assert not (root / ".snakemake").exists()  # Snakemake never started

        study = tmp_path / "study.yaml"
        study.write_text(yaml.safe_dump(SMALL))
        assert main(["evaluate", str(study), "--out", str(ro / "A" / "out.zarr"), "--workers", "0"]) == 2
        (line,) = error_lines(capsys.readouterr().err)
        assert str(ro / "A" / "out.zarr") in line and "Read-only file system" in line, line
        assert sorted(p.name for p in (ro / "A").iterdir()) == ["earlier.txt"]
        assert (ro / "A" / "earlier.txt").read_text() == "earlier results\n"


def test_full_disk_keeps_the_earlier_store(tmp_path, capsys):
    """`qgtflow evaluate --out X` on a full file system (a tiny tmpfs, filled up): a clean error naming
    X, X keeps the earlier results, no partial store or lock left behind; with space freed it works."""
    import xarray as xr

    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(SMALL))
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump({**SMALL, "mu": [0.1, 0.15, 0.2, 0.3]}))
    with mounted(tmp_path / "small_fs", tmpfs_kb=512) as fs:
        out = fs / "responses.zarr"
        assert main(["evaluate", str(study), "--out", str(out), "--workers", "0"]) == 0
        earlier = xr.open_zarr(out).load()
        free_kb = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize // 1024
        (fs / "filler").write_bytes(b"\0" * (free_kb - 8) * 1024)  # leave 8 KiB: less than any store
        capsys.readouterr()
        assert main(["evaluate", str(bigger), "--out", str(out), "--workers", "0"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        (line,) = error_lines(err)
        assert str(out) in line and "No space left on device" in line and "earlier contents are kept" in line, line
        assert sorted(p.name for p in fs.iterdir()) == ["filler", "responses.zarr"]
        xr.testing.assert_identical(xr.open_zarr(out).load(), earlier)
        (fs / "filler").unlink()
        assert main(["evaluate", str(bigger), "--out", str(out), "--workers", "0"]) == 0
        assert list(xr.open_zarr(out)["mu"].values) == [0.1, 0.15, 0.2, 0.3]
