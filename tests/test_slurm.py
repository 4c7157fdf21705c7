"""SLURM: the workflow through the Snakemake SLURM executor, and the geometry stage on
dask-jobqueue workers, on the real single-node cluster of ../shared/slurm-local
(tests/slurm_kit.py); plus offline checks of the job sizing (memory estimate, CPUs, job script).

The ``slurm`` tests are skipped only when the kit cannot run here (not root, no kit, no
apt-get/SLURM); a cluster that fails to start is an error. The cluster is stopped at the end if
this session started it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests import slurm_kit
from tests.numba_seed import seed_numba_cache

ROOT = slurm_kit.ROOT
TEST_CONFIG = ROOT / "config" / "test.yaml"

# one small study, tiny grids, several chunks per grid (pt_toy of config/test.yaml, shrunk)
STUDY = {
    "description": "001 Eq. 20, t/v = 0.5 (SLURM test)",
    "model": {"name": "pt_toy_4band", "params": {"v": 1.0, "m": 0.1, "b": 1.0, "t": 0.5}},
    "units": "physical",
    "kgrid": {"sizes": [12, 16], "kmax": 1.2, "chunk_size": 64},
    "mu": {"start": 0.0, "stop": 0.4, "num": 5},
    "temperature": [50.0, 100.0],
    "responses": ["sigma_qm", "sigma_drude"],
}
STAGE_RULES = ("kgrid", "geometry", "reduce", "convergence")  # submitted to SLURM (report, all: local)
# first status check 5 s after a submission: snakemake-executor-plugin-slurm 2.8 then adds 10 s per
# check that finds nothing finished (5, 20, 45 s), and these jobs take 11-20 s here (mostly
# Snakemake starting inside the job); with the kit's 2 s (2, 14, 36 s) the runs took 20-30 % longer
INIT_SECONDS = 5


@pytest.fixture(scope="session")
def slurm_cluster_up():
    reason = slurm_kit.unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = slurm_kit.start_cluster()
    print(f"\n[slurm] start.sh took {cluster.start_seconds:.1f} s "
          f"({'started here' if cluster.started_here else 'was already running'})")
    yield cluster
    print(f"\n[slurm] stop: {cluster.stop().strip()[-300:]}")


@pytest.fixture(scope="session")
def warm_numba(tmp_path_factory):
    """Compile (or load) the study's kernels in this process, then seed the workflow's shared numba
    cache from this session's NUMBA_CACHE_DIR (tests/conftest.py), so no SLURM job compiles."""
    import qgtflow

    t0 = time.perf_counter()
    qgtflow.evaluate(copy.deepcopy(STUDY), size=8, n_workers=0, workdir=str(tmp_path_factory.mktemp("warm")))
    copied = seed_numba_cache(os.environ.get("NUMBA_CACHE_DIR"))
    print(f"\n[slurm] kernels ready in {time.perf_counter() - t0:.1f} s; {copied} cache index file(s) seeded")
    return os.environ.get("NUMBA_CACHE_DIR")


# ---------------------------------------------------------------- offline: job sizing


def test_field_bytes_match_the_kernel_arrays():
    """The memory estimate counts exactly the arrays the geometry kernel allocates per k-point."""
    from qgtflow.cluster import field_bytes_per_kpoint, hamiltonian_bytes_per_kpoint, optional_field_bytes_per_kpoint
    from qgtflow.geometry.fields import OPTIONAL_FIELDS, _allocate

    for n, d in ((2, 2), (4, 2), (4, 3)):
        assert field_bytes_per_kpoint(n, d) == sum(a.nbytes for a in _allocate(1, n, d).values())
        n_slots = 1 + d + d * (d + 1) // 2 + d * (d + 1) * (d + 2) // 6  # H, ∂H, ∂²H, ∂³H (distinct)
        assert hamiltonian_bytes_per_kpoint(n, d) == 16 * n * n * n_slots
    assert optional_field_bytes_per_kpoint(2, 3, ()) == 0
    assert optional_field_bytes_per_kpoint(2, 3, OPTIONAL_FIELDS) > 8 * 2 * 3**3


def test_estimate_memory_mb():
    from qgtflow.cluster import MAIN_BASE_MB, PROCESS_BASE_MB, estimate_memory_mb

    one = estimate_memory_mb(4, 2, 65536, 1)
    assert one % 100 == 0 and one >= MAIN_BASE_MB + PROCESS_BASE_MB + 1.5 * 65536 * 4192 / 2**20
    assert estimate_memory_mb(4, 2, 65536, 2) > one > estimate_memory_mb(4, 2, 16384, 1)
    assert estimate_memory_mb(4, 2, 262144, 1) > estimate_memory_mb(2, 2, 262144, 1)
    assert estimate_memory_mb(4, 2, 65536, 0) == MAIN_BASE_MB  # a Dask-on-SLURM geometry job only schedules
    assert estimate_memory_mb(4, 2, 65536, 1, client=False) == one - MAIN_BASE_MB
    assert estimate_memory_mb(4, 2, 65536, 1, stage="reduce") < one  # reads fields, no Hamiltonian
    assert estimate_memory_mb(4, 2, 65536, 1, stage="reduce", histogram_mb=100) >= \
        estimate_memory_mb(4, 2, 65536, 1, stage="reduce") + 400


def test_job_cpus_takes_the_smaller_of_threads_and_affinity():
    from qgtflow.cluster import cpu_affinity, job_cpus

    n_cpus = len(cpu_affinity())
    big = job_cpus(n_cpus + 6)
    assert big["usable"] == n_cpus and big["n_workers"] == n_cpus and big["numba_threads"] == 1
    one = job_cpus(1, requested_workers=4)
    assert (one["usable"], one["n_workers"], one["numba_threads"]) == (1, 1, 1)
    if n_cpus >= 2:
        two = job_cpus(2, requested_workers=1)
        assert (two["n_workers"], two["numba_threads"]) == (1, 2)


def test_slurm_worker_job_script(tmp_path):
    """The worker jobs' sbatch directives and environment (no SLURM needed to write them)."""
    from qgtflow.cluster import make_slurm_cluster

    cluster = make_slurm_cluster(cores=2, memory=700, walltime="00:20:00", partition="p1", account="a1",
                                 job_extra_directives=["--qos=q1"], interface="lo", job_name="jn",
                                 numba_cache_dir=str(tmp_path / "nc"), log_directory=str(tmp_path / "logs"))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -J jn", "#SBATCH -p p1", "#SBATCH -A a1", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=700M",
                 "#SBATCH -t 00:20:00", "#SBATCH --qos=q1", "export OMP_NUM_THREADS=1", "export NUMBA_NUM_THREADS=1",
                 f"export NUMBA_CACHE_DIR={tmp_path / 'nc'}", "export DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE=False"):
        assert line in script, (line, script)
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script and "--nthreads 1" in script
    assert "--nworkers 2" in script, script


def test_dask_slurm_option_merges_settings_and_sizes_jobs(tmp_path, snakemake_env):
    """`qgtflow run --dask-slurm` merges profiles/slurm/dask.yaml over the config: the geometry job takes
    1 thread and the scheduler's memory only; the worker jobs' memory is printed before submission."""
    cmd = [sys.executable, "-m", "qgtflow.cli", "run", "--dask-slurm", "--dry-run", "--configfile",
           str(TEST_CONFIG), "--config", f"results_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=snakemake_env, check=False, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "profiles/slurm/dask.yaml" in out and "pt_toy geometry (1 thread): n16 400 MB" in out, out[:3000]
    assert "pt_toy dask-slurm worker job (4 CPUs)" in out, out[:3000]
    geometry_jobs = [block for block in out.split("rule ")[1:] if block.startswith("geometry:")]
    assert geometry_jobs and all("mem_mb=400," in block for block in geometry_jobs), out[-3000:]


def test_bad_dask_slurm_setting_refused(tmp_path, snakemake_env):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["dask"] = {"backend": "slurm", "slurm": {"walltime": "2h"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "qgtflow.cli", "run", "--dry-run", "--configfile", str(path),
                           "--config", f"results_dir={tmp_path}"], cwd=ROOT, env=snakemake_env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "dask.slurm.walltime" in proc.stderr and "2h" in proc.stderr, proc.stderr[-3000:]


# ---------------------------------------------------------------- dask-jobqueue


@pytest.mark.slurm
@pytest.mark.timeout(2400)
def test_geometry_on_slurmcluster_matches_localcluster(slurm_cluster_up, warm_numba, tmp_path):
    """The geometry stage on 2 Dask workers in 2 SLURM jobs: complete store, bit-identical to a
    LocalCluster's, and the worker jobs are in sacct."""
    import xarray as xr

    from qgtflow import io
    from qgtflow.cluster import slurm_cluster, slurm_worker_memory_mb
    from qgtflow.stages import geometry_stage, kgrid_stage
    from qgtflow.study import load_study

    study = load_study({**copy.deepcopy(STUDY), "store_fields": "all"}, name="pt_toy")  # every core field moved
    size = 24  # 576 k-points: 9 chunks
    kgrid = tmp_path / "kgrid.zarr"
    kgrid_stage.run(study, size, kgrid)
    job_name = f"qgtflow-test-dask-{uuid.uuid4().hex[:8]}"
    memory = slurm_worker_memory_mb(study, size, cores=1)

    n_jobs = min(2, slurm_kit.node_cpus())
    t0 = time.perf_counter()
    with slurm_cluster(jobs=n_jobs, cores=1, memory=memory, walltime="00:10:00", partition=slurm_kit.PARTITION,
                       account=slurm_kit.ACCOUNT, interface="lo", log_directory=str(tmp_path / "dask-logs"),
                       job_name=job_name, numba_cache_dir=warm_numba, worker_start_timeout=300) as client:
        client.wait_for_workers(n_jobs, timeout=300)
        worker_jobs = set(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values())
        worker_env = client.run(lambda: (os.environ.get("OMP_NUM_THREADS"), os.environ.get("NUMBA_CACHE_DIR")))
        computed = geometry_stage.run(study, kgrid, tmp_path / "slurm.zarr", client=client)
    t_slurm = time.perf_counter() - t0
    geometry_stage.run(study, kgrid, tmp_path / "local.zarr", n_workers=2)
    print(f"\n[slurm] geometry on SLURMCluster incl. worker start-up: {t_slurm:.1f} s; worker jobs {worker_jobs}")

    assert computed == 9
    assert None not in worker_jobs and len(worker_jobs) == n_jobs, worker_jobs
    assert all(env == ("1", warm_numba) for env in worker_env.values()), worker_env
    assert io.store_attrs(tmp_path / "slurm.zarr")[io.COMPLETE] and io.chunks_done(tmp_path / "slurm.zarr").all()
    with io.open_store(tmp_path / "slurm.zarr") as a, io.open_store(tmp_path / "local.zarr") as b:
        assert set(a.data_vars) == set(b.data_vars) and len(a.data_vars) >= 10
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name, strict=True)
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())

    rows = slurm_kit.sacct_settled("--name", job_name, expect=n_jobs)
    assert {r["JobID"] for r in rows} == worker_jobs, rows
    # closing the cluster scancels the worker jobs; none may have failed before that
    assert all(r["State"] in ("CANCELLED", "COMPLETED") or r["State"].startswith("CANCELLED") for r in rows), rows
    assert all(r["AllocCPUS"] == "1" and mem_mb(r["ReqMem"]) >= memory for r in rows), (rows, memory)


def mem_mb(req_mem: str) -> float:
    """sacct ReqMem ('800M', '2G', '1000Mn') in MB."""
    value = req_mem.rstrip("nc")
    return float(value[:-1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[value[-1]]


# ---------------------------------------------------------------- Snakemake SLURM executor


def write_config(tmp_path: Path, results: Path, **dask) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["studies"] = {"pt_toy": copy.deepcopy(STUDY)}
    cfg["results_dir"] = str(results)
    cfg["dask"] = {"n_workers": None, **dask}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_profile(tmp_path: Path, **settings) -> Path:
    profile = tmp_path / "test-profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(slurm_kit.profile_yaml(**settings))
    return profile


@pytest.mark.slurm
@pytest.mark.timeout(2400)
def test_workflow_through_slurm_executor(slurm_cluster_up, warm_numba, tmp_path):
    """`qgtflow run --slurm` (the repository's profiles/slurm/ profile, plus a --workflow-profile for the
    local cluster) on one tiny study: outputs, per-rule SLURM jobs COMPLETED in sacct, and the jobs'
    own logs (threads, CPU affinity, SLURM job id) and benchmarks.

    max-threads 1: the two grid sizes' jobs run side by side on the 2-CPU node (2-CPU jobs are
    covered by test_rule_threads_are_capped_by_the_partition)."""
    import xarray as xr

    from qgtflow.cluster import job_memory_mb
    from qgtflow.study import load_study

    results = tmp_path / "results"
    config = write_config(tmp_path, results)
    cmd = [sys.executable, "-m", "qgtflow.cli", "run", "--slurm", "--configfile", str(config),
           "--workflow-profile", str(write_profile(tmp_path, max_threads=1, init_seconds=INIT_SECONDS))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    print(f"\n[slurm] workflow through the SLURM executor: {elapsed:.1f} s")

    # outputs
    sizes = STUDY["kgrid"]["sizes"]
    for size in sizes:
        base = results / "pt_toy" / f"n{size}"
        for store in ("kgrid.zarr", "geometry.zarr", "responses.zarr"):
            xr.open_zarr(base / store).close()
        with xr.open_zarr(base / "responses.zarr") as ds:
            assert set(STUDY["responses"]) <= set(ds.data_vars)
    assert (results / "pt_toy" / "convergence" / "convergence.csv").stat().st_size > 0
    assert (results / "report" / "index.html").stat().st_size > 0

    # the memory estimate was printed before submission
    study = load_study(copy.deepcopy(STUDY), name="pt_toy")
    expected = {(rule, size): job_memory_mb(study, size, rule, 1, {"n_workers": None})
                for rule in ("geometry", "reduce") for size in sizes}
    assert "memory estimate per job" in out, out[:3000]
    assert f"pt_toy geometry (1 thread): n12 {expected['geometry', 12]} MB" in out, out[:3000]

    # every stage job went through SLURM and completed
    run_id = slurm_kit.RUN_ID.search(out)
    assert run_id, out[-5000:]
    jobs = slurm_kit.submitted_jobs(out)
    rules = sorted(jobs.values())
    assert rules == sorted([r for r in STAGE_RULES for _ in (sizes if r != "convergence" else [0])]), rules
    rows = slurm_kit.sacct_settled("--name", run_id.group(1), expect=len(jobs))
    print("[slurm] sacct:\n" + "\n".join(f"  {r['JobID']:>5} {jobs.get(r['JobID'], '?'):12} {r['State']:10} "
                                           f"cpus={r['AllocCPUS']} mem={r['ReqMem']} {r['Elapsed']}" for r in rows))
    assert {r["JobID"] for r in rows} == set(jobs), (rows, jobs)
    assert all(r["State"] == "COMPLETED" and r["ExitCode"] == "0:0" for r in rows), rows
    by_rule = {rule: [r for r in rows if jobs[r["JobID"]] == rule] for rule in STAGE_RULES}
    assert all(r["AllocCPUS"] == "1" for r in rows), rows  # geometry 8 and reduce 4 capped by max-threads
    for rule in ("geometry", "reduce"):  # --mem is the estimate
        assert sorted(mem_mb(r["ReqMem"]) for r in by_rule[rule]) == sorted(expected[rule, s] for s in sizes), rows

    # observability: each job logged its threads, affinity and SLURM job; benchmarks per rule
    for rule in STAGE_RULES:
        logs = list((results / "logs" / rule).glob("*.log"))
        assert logs and list((results / "benchmarks" / rule).glob("*.tsv")), rule
        for log in logs:
            text = log.read_text()
            assert "thread(s) given, CPU affinity" in text, text[:2000]
            job_ids = {row["JobID"] for row in by_rule[rule]}
            assert any(f"SLURM job {j} " in text for j in job_ids), (rule, job_ids, text[:2000])
    geometry_log = (results / "logs" / "geometry" / f"pt_toy_n{sizes[-1]}.log").read_text()
    assert "1 thread(s) given" in geometry_log and "1 Dask worker(s)" in geometry_log, geometry_log[:2000]
    assert "4/4 done (" in geometry_log  # batch-mode progress lines (qgtflow.stages.tasks.run_tasks)


@pytest.mark.slurm
@pytest.mark.timeout(2400)
def test_workflow_geometry_on_dask_slurm_workers(slurm_cluster_up, warm_numba, tmp_path):
    """`qgtflow run --slurm --dask-slurm F`: the geometry job (1 CPU) submits its Dask workers as
    SLURM jobs of their own (dask.backend: slurm); its store equals a LocalCluster's.

    One grid size: on a 2-CPU node, two geometry jobs waiting for their workers would fill it."""
    import xarray as xr

    from qgtflow import io
    from qgtflow.cluster import job_memory_mb, slurm_worker_memory_mb
    from qgtflow.plan import grid_chain
    from qgtflow.stages import geometry_stage
    from qgtflow.study import load_study

    if slurm_kit.node_cpus() < 2:
        pytest.skip("needs a SLURM node with 2 CPUs: the geometry job and its worker job run side by side")

    results = tmp_path / "results"
    config = write_config(tmp_path, results)
    cfg = yaml.safe_load(config.read_text())
    cfg["studies"]["pt_toy"]["kgrid"]["sizes"] = [16]
    config.write_text(yaml.safe_dump(cfg))
    job_name = f"qgtflow-test-wf-dask-{uuid.uuid4().hex[:8]}"
    dask_file = tmp_path / "dask.yaml"
    dask_file.write_text(yaml.safe_dump({"dask": {"backend": "slurm", "slurm": {
        "jobs": 1, "cores": 1, "walltime": "00:10:00", "partition": slurm_kit.PARTITION,
        "account": slurm_kit.ACCOUNT, "interface": "lo", "job_name": job_name, "worker_start_timeout": 300}}}))
    cmd = [sys.executable, "-m", "qgtflow.cli", "run", "--slurm", "--configfile", str(config), "--dask-slurm",
           str(dask_file), "--workflow-profile", str(write_profile(tmp_path, max_threads=2, init_seconds=INIT_SECONDS))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    print(f"\n[slurm] workflow with Dask-on-SLURM geometry: {elapsed:.1f} s")
    study = load_study(copy.deepcopy(cfg["studies"]["pt_toy"]), name="pt_toy")
    mem = {"geometry": job_memory_mb(study, 16, "geometry", 1, {"backend": "slurm"}),
           "reduce": job_memory_mb(study, 16, "reduce", 1, {"n_workers": None}),  # in-process: 1 thread
           "worker": slurm_worker_memory_mb(study, 16, cores=1)}
    assert f"pt_toy geometry (1 thread): n16 {mem['geometry']} MB" in out, out[:3000]
    assert f"pt_toy dask-slurm worker job (1 CPU): n16 {mem['worker']} MB" in out, out[:3000]

    jobs = slurm_kit.submitted_jobs(out)
    assert sorted(jobs.values()) == sorted(STAGE_RULES), jobs
    rows = slurm_kit.sacct_settled("--name", slurm_kit.RUN_ID.search(out).group(1), expect=len(jobs))
    assert all(r["State"] == "COMPLETED" for r in rows), rows
    geometry_job = next(r for r in rows if jobs[r["JobID"]] == "geometry")
    assert geometry_job["AllocCPUS"] == "1" and mem_mb(geometry_job["ReqMem"]) == mem["geometry"], geometry_job
    reduce_job = next(r for r in rows if jobs[r["JobID"]] == "reduce")
    assert reduce_job["AllocCPUS"] == "1" and mem_mb(reduce_job["ReqMem"]) == mem["reduce"], reduce_job
    workers = slurm_kit.sacct_settled("--name", job_name, expect=1)
    print("[slurm] sacct:\n" + "\n".join(f"  {r['JobID']:>5} {jobs.get(r['JobID'], r['JobName']):20} {r['State']:10} "
                                           f"cpus={r['AllocCPUS']} mem={r['ReqMem']} {r['Elapsed']}"
                                           for r in rows + workers))
    assert len(workers) == 1 and workers[0]["State"].startswith(("CANCELLED", "COMPLETED")), workers
    assert workers[0]["AllocCPUS"] == "1" and mem_mb(workers[0]["ReqMem"]) >= mem["worker"], workers
    assert int(workers[0]["JobID"]) > int(geometry_job["JobID"])  # submitted from inside the geometry job

    base = results / "pt_toy" / "n16"
    log = (results / "logs" / "geometry" / "pt_toy_n16.log").read_text()
    assert "Dask on SLURM: 1 worker(s) connected" in log, log[:3000]
    reduce_log = (results / "logs" / "reduce" / "pt_toy_n16.log").read_text()
    # 256 k-points are reduced in the job's own process: it asks SLURM for the one CPU it uses
    assert "1 thread(s) given, CPU affinity" in reduce_log and "computed in this process" in reduce_log, \
        reduce_log[:2000]
    assert f"SLURM job {reduce_job['JobID']} (cpus-per-task 1" in reduce_log, reduce_log[:2000]
    assert list((results / "logs" / "dask-slurm").glob(f"*{workers[0]['JobID']}*")), "no worker job log"
    assert json.loads((base / "geometry.done.json").read_text())["dask_backend"] == "slurm"
    job = grid_chain(study, 16)["geometry"]  # the workflow's kgrid store (its fingerprint hashes the workflow's code)
    job["upstream"] = {"kgrid": io.store_attrs(base / "kgrid.zarr")[io.FINGERPRINT]}
    geometry_stage.run(study, base / "kgrid.zarr", tmp_path / "local.zarr", n_workers=1, job=job)
    with io.open_store(base / "geometry.zarr") as a, io.open_store(tmp_path / "local.zarr") as b:
        for name in b.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name, strict=True)
    with xr.open_zarr(base / "responses.zarr") as ds:
        assert set(STUDY["responses"]) <= set(ds.data_vars)


def test_parse_sinfo_picks_the_partition_and_its_largest_node():
    from qgtflow.cluster import parse_sinfo

    text = "debug* 2 21694\ndebug* 4+ 8000\nbig 64 512000\nbroken x y\n"
    assert parse_sinfo(text) == {"partition": "debug", "cpus": 4, "mem_mb": 21694}
    assert parse_sinfo(text, "big") == {"partition": "big", "cpus": 64, "mem_mb": 512000}
    assert parse_sinfo(text, "none") is None and parse_sinfo("") is None


def test_fit_to_partition_caps_and_warns_once(caplog):
    from qgtflow.cluster import fit_to_partition

    limits = {"partition": "p", "cpus": 2, "mem_mb": 1000}
    assert fit_to_partition("r-test", "cpus", 1, limits) == 1 and fit_to_partition("r-test", "cpus", 8, None) == 8
    assert not caplog.records
    assert fit_to_partition("r-test", "cpus", 8, limits) == 2 and fit_to_partition("r-test", "cpus", 8, limits) == 2
    assert fit_to_partition("r-test", "mem_mb", 5000, limits) == 1000
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert "partition p offers at most 2 CPUs" in warnings[0] and "ask for 8, capped to 2" in warnings[0]


@pytest.mark.slurm
@pytest.mark.timeout(1200)
def test_rule_threads_are_capped_by_the_partition(slurm_cluster_up, warm_numba, tmp_path):
    """Without max-threads, a geometry job on Dask workers asks for 8 CPUs: on the 2-CPU node it would pend
    forever. The rules ask sinfo and cap it (with a warning); the job runs with the node's CPUs. (n_workers: 2, so
    the tiny grid runs on a Dask cluster: an in-process job asks for 1 thread and is never capped.)"""
    from qgtflow.cluster import partition_limits

    limits = partition_limits()
    assert limits and limits["cpus"] == slurm_kit.node_cpus(), limits
    results = tmp_path / "results"
    config = write_config(tmp_path, results, n_workers=2)
    target = str(results / "pt_toy" / f"n{STUDY['kgrid']['sizes'][0]}" / "geometry.done.json")
    cmd = [sys.executable, "-m", "qgtflow.cli", "run", "--slurm", "--configfile", str(config), target,
           "--workflow-profile", str(write_profile(tmp_path, max_threads=64, init_seconds=INIT_SECONDS))]
    proc = subprocess.run(cmd, cwd=tmp_path, check=False, capture_output=True, text=True, timeout=1100)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert f"offers at most {limits['cpus']} CPUs per node: geometry jobs ask for 8, capped to {limits['cpus']}" \
        in out, out[:3000]
    jobs = slurm_kit.submitted_jobs(out)
    rows = slurm_kit.sacct_settled("--name", slurm_kit.RUN_ID.search(out).group(1), expect=len(jobs))
    geometry = [r for r in rows if jobs.get(r["JobID"]) == "geometry"]
    assert geometry and all(r["AllocCPUS"] == str(limits["cpus"]) and r["State"] == "COMPLETED"
                            for r in geometry), rows


def test_rule_partition_from_snakemake_resource_settings():
    """The cap follows the partition a rule's jobs go to: set-resources, else default-resources, else None."""
    from snakemake.resources import Resources
    from snakemake.settings.types import ResourceSettings

    from qgtflow.cluster import rule_partition

    def parsed(*args):
        return Resources.parse(list(args), allow_expressions=True)

    settings = ResourceSettings(overwrite_resources={"geometry": parsed("slurm_partition='big'")},
                                default_resources=parsed("slurm_partition=debug", "mem_mb=2000"))
    assert rule_partition(settings, "geometry") == "big"
    assert rule_partition(settings, "reduce") == "debug"
    assert rule_partition(ResourceSettings(), "reduce") is None
    expression = ResourceSettings(default_resources=parsed("slurm_partition='a' if attempt > 1 else 'b'"))
    assert rule_partition(expression, "geometry") is None  # decided per job: no cap from here
