"""The local single-node SLURM of ../shared/slurm-local for tests marked ``slurm``.

:func:`start_cluster` runs the kit's ``start.sh`` (idempotent; installs the Debian packages on
first use, so it may take minutes) and returns a :class:`Cluster`; :meth:`Cluster.stop` runs
``stop.sh`` only if this session brought the cluster up (``stop.sh`` cancels *every* job of the
cluster, so a cluster someone else started is left running). A test is skipped only when the kit
cannot run here (:func:`unavailable_reason`): not root, no ``start.sh``, no apt-get and no SLURM
installed. Anything else that goes wrong is a failure.

Environment: ``QGTFLOW_SLURM_KIT`` (kit directory, default ``<repo>/../shared/slurm-local``, then
``/work/shared/slurm-local``),
``QGTFLOW_SLURM_KEEP=1`` (never stop the cluster), ``SLURM_LOCAL_PARTITION`` (as for the kit).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
def _find_kit() -> Path:
    """$QGTFLOW_SLURM_KIT, else ../shared/slurm-local beside the checkout, else the workspace's copy
    (/work/shared/slurm-local: CI checks out elsewhere on the same kind of machine)."""
    if os.environ.get("QGTFLOW_SLURM_KIT"):
        return Path(os.environ["QGTFLOW_SLURM_KIT"])
    for candidate in (ROOT.parent / "shared" / "slurm-local", Path("/work/shared/slurm-local")):
        if (candidate / "start.sh").is_file():
            return candidate
    return ROOT.parent / "shared" / "slurm-local"


KIT = _find_kit()
RUN_DIR = Path("/run/slurm-local")
START_TIMEOUT = 1800  # first use: apt-get update + install of ~30 packages
PARTITION = os.environ.get("SLURM_LOCAL_PARTITION", "debug")
ACCOUNT = "root"  # the kit associates root with account root


def profile_yaml(max_threads: int = 2, init_seconds: int = 2) -> str:
    """Snakemake settings for this cluster (a --workflow-profile over the repository's profiles/slurm/ one).

    Polls fast, as the kit advises (the plugin's defaults wait 40 s before the first status check).
    Note that snakemake-executor-plugin-slurm 2.8 adds 10 s to the interval after every check
    that finds no job finished (checks at 2, 14, 36, ... s after a submission with 2)."""
    return f"""\
default-resources:
  slurm_partition: {PARTITION}
  slurm_account: {ACCOUNT}
  mem_mb: 1000
  runtime: 10
slurm-init-seconds-before-status-checks: {init_seconds}
seconds-between-status-checks: 3
latency-wait: 10
max-threads: {max_threads}          # the node has 2 CPUs in CI; a job asking for more would never start
jobs: 4
retries: 0
keep-going: false
"""


def unavailable_reason() -> str | None:
    """Why the kit cannot run on this machine, or None if it can."""
    if not (KIT / "start.sh").is_file():
        return f"SLURM kit not found: {KIT / 'start.sh'} (set QGTFLOW_SLURM_KIT)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the SLURM kit must run as root (it installs packages and starts daemons)"
    if shutil.which("apt-get") is None and not Path("/usr/sbin/slurmctld").exists():
        return "no apt-get to install SLURM and no SLURM installed"
    return None


def _daemon_running(name: str) -> bool:
    pid_file = RUN_DIR / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except (OSError, ValueError):
        return False


@dataclass
class Cluster:
    started_here: bool
    start_seconds: float
    start_log: str
    stopped: bool = field(default=False)

    def stop(self) -> str:
        if self.stopped or not self.started_here or os.environ.get("QGTFLOW_SLURM_KEEP") == "1":
            return "left running"
        self.stopped = True
        proc = subprocess.run([str(KIT / "stop.sh")], check=False, capture_output=True, text=True, timeout=300)
        return proc.stdout + proc.stderr


def start_cluster() -> Cluster:
    """Run start.sh (idempotent) and return the cluster; raises with start.sh's output on failure."""
    was_up = all(_daemon_running(d) for d in ("slurmctld", "slurmd"))
    t0 = time.perf_counter()
    proc = subprocess.run([str(KIT / "start.sh")], check=False, capture_output=True, text=True, timeout=START_TIMEOUT)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{KIT / 'start.sh'} failed (exit {proc.returncode}) after {seconds:.0f} s:\n{out[-4000:]}")
    return Cluster(started_here=not was_up, start_seconds=seconds, start_log=out)


def node_cpus() -> int:
    """CPUs of the (single) node of the cluster."""
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return max(int(v) for v in proc.stdout.split())


def sacct(*args: str) -> list[dict]:
    """``sacct -a -X -P`` rows as dicts (allocations only, no steps)."""
    fields = "JobID,JobName,State,ExitCode,AllocCPUS,ReqMem,Elapsed"
    proc = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-S", "now-2days", "-o", fields, *args],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    names = fields.split(",")
    return [dict(zip(names, line.split("|"))) for line in proc.stdout.splitlines() if line.strip()]


def sacct_settled(*args: str, expect: int | None = None, timeout: float = 30.0) -> list[dict]:
    """sacct rows once none is PENDING/RUNNING (and, given ``expect``, that many are listed):
    the accounting daemon lags squeue by about a second."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sacct(*args)
        settled = rows and not any(r["State"] in ("PENDING", "RUNNING", "COMPLETING") for r in rows)
        if settled and (expect is None or len(rows) >= expect) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")


def submitted_jobs(snakemake_output: str) -> dict[str, str]:
    """{SLURM job id: rule} from the executor's "Job N has been submitted with SLURM jobid M" lines."""
    return {m.group(1): m.group(2) for m in SUBMITTED.finditer(snakemake_output)}
