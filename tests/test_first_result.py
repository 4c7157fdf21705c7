"""Time to first result: small studies in-process, quiet Dask, one shared numba cache, a visible
compile line (issue 15). Speed figures: benchmarks/bench_first_result.py, not here."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest

import qgtflow
from qgtflow import runtime
from qgtflow.cluster import IN_PROCESS_MAX_POINTS, in_process, local_cluster
from tests.conftest import random_lattice_model

STUDY = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
         "kgrid": {"sizes": [8], "kmax": 1.0}, "mu": [0.15], "temperature": [50.0], "responses": ["sigma_drude"]}


def test_in_process_below_the_threshold_unless_workers_are_asked_for():
    assert in_process(IN_PROCESS_MAX_POINTS, None) and not in_process(IN_PROCESS_MAX_POINTS + 1, None)
    assert in_process(10**9, 0)  # 0 = in process, whatever the size
    assert not in_process(64, 2)  # an explicit worker count gets its cluster


def test_small_evaluate_starts_no_dask_cluster(caplog):
    caplog.set_level(logging.INFO)
    ds = qgtflow.evaluate(dict(STUDY))
    assert "sigma_drude" in ds
    assert "in this process" in caplog.text
    assert not any(r.name.startswith("distributed") for r in caplog.records), caplog.text


def test_local_cluster_hides_distributed_info_lines(caplog):
    import distributed  # noqa: F401 - its import sets the logger's level; restored is the level it configured

    caplog.set_level(logging.INFO)
    before = logging.getLogger("distributed").level
    with local_cluster(1) as client:
        assert client.submit(sum, [1, 2]).result() == 3
    chatter = [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert not chatter, [r.getMessage() for r in chatter][:5]
    assert logging.getLogger("distributed").level == before  # restored after the cluster closed


_THREADED = """import sys, dask, dask.array as da, dask.base, dask.threaded
from qgtflow.runtime import threaded_dask_default
from qgtflow.cluster import local_cluster
threaded_dask_default()
assert int(da.ones(8, chunks=4).sum().compute()) == 8
assert "distributed" not in sys.modules  # no probe for a Client
with local_cluster(1) as client:
    assert dask.base.get_scheduler() == client.get  # the cluster's client is the default while it is up
    assert int(da.ones(8, chunks=4).sum().compute()) == 8
assert dask.config.get("scheduler") is dask.threaded.get
print("ok")
"""


def test_jobs_compute_without_importing_distributed_until_a_cluster_starts():
    """runtime.setup_job names Dask's threaded scheduler (its choice without a Client) so an in-process job does not
    import distributed looking for a Client; local_cluster makes its client the default again while it is up."""
    proc = subprocess.run([sys.executable, "-c", _THREADED], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_cli_processes_share_one_numba_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("QGTFLOW_CACHE_DIR", str(tmp_path / "cache"))
    job = runtime.use_shared_numba_cache("evaluate")
    assert job is not None and os.environ["NUMBA_CACHE_DIR"] == str(job)
    assert job.parent == tmp_path.resolve() / "cache" / "numba" / f"src-{runtime.kernel_source_digest()}" / "jobs"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert runtime.use_shared_numba_cache("evaluate") is None  # the user's own choice is kept
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


_PROBE = ("import json, logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
          "from qgtflow.runtime import announce_compile; from qgtflow.study import load_study; "
          "model = load_study(json.loads(sys.argv[1])).model; "
          "print('estimate', announce_compile(logging.getLogger('probe'), (), model))")


def _probe(cache_dir) -> str:
    """announce_compile in a fresh process for STUDY's model (a Clifford model: its kernel is clifford_chunk)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-c", _PROBE, json.dumps(STUDY)], env=env, capture_output=True, text=True,
                          timeout=120, check=True).stdout


def test_a_cold_cache_is_announced_once_and_a_warm_one_is_silent(tmp_path):
    cold = _probe(tmp_path / "empty")  # reads numba's index only: nothing is compiled here
    assert "compiling kernels, once: ~" in cold and "clifford_chunk" in cold, cold
    qgtflow.evaluate(dict(STUDY), n_workers=0)  # this session's cache now holds the kernels
    warm = _probe(os.environ.get("NUMBA_CACHE_DIR") or tmp_path / "unset")
    if not os.environ.get("NUMBA_CACHE_DIR"):
        pytest.skip("no NUMBA_CACHE_DIR in this session (tests/conftest.py sets one)")
    assert "compiling" not in warm and "estimate 0" in warm, warm


def test_the_announced_kernels_are_the_ones_the_model_runs():
    """A Clifford model (every two-band one) compiles the closed form only; a generic few-band model the per-k sum
    over states; many bands or the Wannier position operator the batched path's field kernel."""
    from qgtflow.geometry.batched import BATCHED_MIN_BANDS
    from qgtflow.geometry.kernel_cache import geometry_kernels
    from qgtflow.models.builtin import build_model

    assert geometry_kernels(build_model("haldane")) == ("clifford_chunk",)
    assert geometry_kernels(build_model("bilayer_graphene_gapped")) == ("clifford_chunk",)  # per sector
    assert geometry_kernels(random_lattice_model()) == ("geometry_chunk",)
    assert geometry_kernels(random_lattice_model(nbands=BATCHED_MIN_BANDS)) == ("geometry_eigenbasis_chunk",)
    assert geometry_kernels() == ("geometry_chunk",)


def test_a_job_links_the_shared_numba_cache_and_publishes_only_what_it_compiled(tmp_path):
    """A job's cache holds hard links to the shared files (no copy per job); numba's rename-on-save
    leaves the shared file alone, and the newly compiled index and data are published back at exit."""
    root = tmp_path / "numba"
    ours = runtime.kernel_cache_subdirs()[0]
    kernel = root / "shared" / ours
    kernel.mkdir(parents=True)
    (kernel / "f-1.py311.nbi").write_bytes(b"index v1")
    (kernel / "f-1.py311.1.nbc").write_bytes(b"data v1")
    job = runtime._job_numba_cache(root, "geometry-a-8")
    linked = job / ours / "f-1.py311.nbi"
    assert linked.read_bytes() == b"index v1" and os.path.samefile(linked, kernel / "f-1.py311.nbi")
    for name, data in (("f-1.py311.2.nbc", b"data v2"), ("f-1.py311.nbi", b"index v2")):  # as numba saves
        tmp = job / ours / f"{name}.tmp"
        tmp.write_bytes(data)
        os.utime(tmp, (linked.stat().st_mtime + 5,) * 2)
        os.replace(tmp, job / ours / name)
    assert (kernel / "f-1.py311.nbi").read_bytes() == b"index v1"  # untouched until published
    runtime._publish_numba_cache(job, root / "shared", root / "shared.lock")
    assert (kernel / "f-1.py311.nbi").read_bytes() == b"index v2"
    assert sorted(p.name for p in kernel.glob("*.nbc")) == ["f-1.py311.1.nbc", "f-1.py311.2.nbc"]
    assert not job.exists()


def test_a_jobs_measured_compile_times_reach_the_shared_cache(tmp_path, monkeypatch):
    """qgtflow_compile_seconds.json is linked into a job like the kernels: the job replaces its copy (never writes
    the shared file in place through the link) and publishing copies a newer one back, a first one too."""
    from qgtflow.geometry import kernel_cache

    root = tmp_path / "numba"
    (root / "shared").mkdir(parents=True)
    measured = root / "shared" / kernel_cache.MEASURED_FILE
    measured.write_text('{"geometry_chunk": 20.0}')
    job = runtime._job_numba_cache(root, "geometry-a-8")
    assert os.path.samefile(job / kernel_cache.MEASURED_FILE, measured)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(job))
    new = job / "new.tmp"  # as kernel_cache.record_compiles saves a measured time: a new file renamed over
    new.write_text('{"geometry_chunk": 31.5}')
    os.utime(new, (measured.stat().st_mtime + 5,) * 2)
    os.replace(new, job / kernel_cache.MEASURED_FILE)
    assert measured.read_text() == '{"geometry_chunk": 20.0}'  # the shared file untouched until published
    assert kernel_cache.measured_seconds() == {"geometry_chunk": 31.5}
    runtime._publish_numba_cache(job, root / "shared", root / "shared.lock")
    assert measured.read_text() == '{"geometry_chunk": 31.5}'
    measured.unlink()
    job = runtime._job_numba_cache(root, "geometry-a-16")
    (job / kernel_cache.MEASURED_FILE).write_text('{"spin_chunk": 9.0}')  # the first measurement
    runtime._publish_numba_cache(job, root / "shared", root / "shared.lock")
    assert measured.read_text() == '{"spin_chunk": 9.0}'


def test_a_job_links_only_this_installations_kernels(tmp_path):
    """The shared cache also holds the kernels of other checkouts and package copies (numba files them by
    source directory path): a job links the subdirectories of this installation and the top-level files only."""
    from qgtflow.geometry import kernels
    from qgtflow.reduce import tetrahedron

    ours = runtime.kernel_cache_subdirs()
    for module in (kernels, tetrahedron):  # the names numba itself files this package's kernels under
        assert os.path.basename(runtime._numba_subdir(os.path.dirname(module.__file__))) in ours
    if os.environ.get("NUMBA_CACHE_DIR"):
        assert os.path.basename(kernels.geometry_chunk._cache._cache_path) in ours
    root = tmp_path / "numba"
    shared = root / "shared"
    for name in (ours[1], "geometry_" + "0" * 40, "reduce_" + "1" * 40):
        (shared / name).mkdir(parents=True)
        (shared / name / "f-1.py311.nbi").write_bytes(b"index")
    (shared / "qgtflow_compile_seconds.json").write_text("{}")
    job = runtime._job_numba_cache(root, "kgrid-a-8")
    assert sorted(p.name for p in job.iterdir()) == sorted([ours[1], "qgtflow_compile_seconds.json"])
    assert os.path.samefile(job / ours[1] / "f-1.py311.nbi", shared / ours[1] / "f-1.py311.nbi")


def test_a_job_that_runs_in_its_own_process_asks_for_one_thread():
    """A geometry/reduce job without a Dask cluster holds one core, so the scheduler runs another beside it."""
    from qgtflow.cluster import RULE_THREADS, rule_job_threads

    assert rule_job_threads("geometry", IN_PROCESS_MAX_POINTS, None) == 1
    assert rule_job_threads("reduce", 384**2, None) == 1
    assert rule_job_threads("geometry", IN_PROCESS_MAX_POINTS + 1, None) == RULE_THREADS["geometry"]
    assert rule_job_threads("reduce", 64, 2) == RULE_THREADS["reduce"]  # dask.n_workers asks for a cluster
    assert rule_job_threads("geometry", 10**9, 0) == 1


_END_JOB = """import logging, sys
from pathlib import Path
from qgtflow import runtime
root = Path(sys.argv[1])
job = runtime._job_numba_cache(root, "kgrid-a-8")
(job / "mod").mkdir()
(job / "mod" / "f-1.py311.1.nbc").write_bytes(b"data")
(job / "mod" / "f-1.py311.nbi").write_bytes(b"index")
logging.basicConfig(level=logging.INFO, format=runtime.LOG_FORMAT, filename=sys.argv[2])
print("before", flush=False)
runtime.end_job(logging.getLogger("probe"))
print("never reached")
"""


def test_end_job_publishes_the_cache_logs_its_cpu_and_exits_0(tmp_path):
    """os._exit skips atexit: end_job publishes the job's numba cache itself, and its log line and stdout
    are written before the process leaves."""
    log = tmp_path / "job.log"
    proc = subprocess.run([sys.executable, "-c", _END_JOB, str(tmp_path / "numba"), str(log)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "before\n"
    assert (tmp_path / "numba" / "shared" / "mod" / "f-1.py311.nbi").read_bytes() == b"index"
    assert not list((tmp_path / "numba" / "jobs").iterdir())  # the job's copy removed once published
    last = log.read_text().rstrip().splitlines()[-1]
    assert re.search(r"job CPU \d+\.\d\d s \(self \d+\.\d\d s, children \d+\.\d\d s; process wall [\d.]+ s\)$", last)


def test_the_numba_cache_is_keyed_by_every_kernel_source(tmp_path):
    """numba checks only the stamp of a kernel's own file: a change to a module whose @njit function another
    kernel inlines must select another cache (numba_cache_root's src-<digest>), a change elsewhere must not."""
    package = tmp_path / "pkg"
    (package / "geometry").mkdir(parents=True)
    (package / "geometry" / "eigh.py").write_text("from numba import njit\n\n@njit\ndef f(x):\n    return x\n")
    (package / "api.py").write_text("def g():\n    return 1\n")
    before = runtime.source_digest(package)
    (package / "api.py").write_text("def g():\n    return 2\n")
    assert runtime.source_digest(package) == before
    (package / "geometry" / "eigh.py").write_text("from numba import njit\n\n@njit\ndef f(x):\n    return -x\n")
    assert runtime.source_digest(package) != before
    assert runtime.numba_cache_root().name == f"src-{runtime.kernel_source_digest()}"
