"""Fuzz the input path: random perturbations of valid study files through validation and preflight.

    python benchmarks/fuzz_inputs.py [--cases 1000] [--seed 0] [--seconds 600] [--evaluate 20]

Each case takes one of a few valid studies, applies 1-3 random perturbations (a key set to a hostile
value: NaN, inf, huge, negative, boolean, fractional, wrong type, expression bombs, path names; a
key removed or duplicated in the YAML text; random bytes) and runs what ``qgtflow evaluate`` runs
before any compute (YAML loading, schema, semantics, model construction, preflight) in this process,
each case under a time limit. Outcomes:

- accepted / refused: a QgtflowError with one line (``qgtflow: error: ...`` at the command line);
- traceback: any other exception (a bug: a user error must be one line);
- hang: a case over ``--case-seconds``;
- silently wrong: an accepted study holding a non-finite number, or a YAML text with a duplicate key
  accepted, or (in the evaluate sample) responses that are not finite or a store failing verification;
- crash: an evaluate-sample subprocess killed by a signal.

``--evaluate N`` runs N accepted cases (on tiny grids) through ``qgtflow evaluate`` in subprocesses.
Prints the counts as JSON; exit status 1 if any traceback, hang, crash or silently wrong result.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

BASES = [
    {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
     "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 64}, "mu": [0.1, 0.2], "temperature": [300.0],
     "responses": ["sigma_drude"]},
    {"model": {"name": "haldane"}, "kgrid": {"sizes": [6, 8]}, "mu": {"start": -0.5, "stop": 0.5, "num": 3},
     "temperature": [300.0], "responses": ["sigma_ahe", "sigma_qm"], "tau": 1e-13},
    {"model": {"name": "mine", "params": {"m": 0.1, "v": 1.0},
               "hamiltonian": {"terms": [["m", "sigma_z"], ["v*kx", "sigma_x"], ["v*ky", "sigma_y"]]}},
     "kgrid": {"sizes": [8], "kmax": 1.0}, "mu": [0.2], "temperature": [0.05], "units": "natural", "tau": 10.0,
     "responses": ["sigma_drude", "sigma_bcd"]},
    {"model": {"name": "tb", "tight_binding": {"lattice": [[1.0, 0.0], [0.0, 1.0]], "onsite": [0.5, -0.5],
                                               "hoppings": [[[1, 0], 0, 1, 0.3], [[0, 1], 0, 1, [0.0, 0.2]]]}},
     "kgrid": {"sizes": [8]}, "mu": [0.0], "temperature": [300.0], "responses": ["sigma_drude"]},
]

HOSTILE = [float("nan"), float("inf"), -float("inf"), 0, -1, 1e308, 1e300, -1e300, 10**30, 2**63, True, False,
           1.5, 0.5, "x", "", [], {}, None, [float("nan")], [1e999], {"start": 0, "stop": 1, "num": 10**9},
           "9**9**9", "(kx+ky+m)**400", "1e999999999", "Abs(kx)", "m/kx", "..", "a/b", "__import__('os')",
           10**9, 100000, [100000], [2, 10**6], -0.0, 1e-320, "sigma_z", [[1.5, 0], 0, 0, 1.0],
           [[True, 0], 0, 0, 1.0], [[1, 0], 0.5, 0, 1.0], [[1, 0], 0, 7, 1.0], {"factor": 1000},
           {"factor": 4, "levels": 2}, "nan", "inf", "tetrahedron", 10**400, -10**400]  # ints beyond float64

KEYS = ["tau", "broadening", "degeneracy_threshold", "energy_bins_per_kT", "mu", "temperature", "omega",
        "kgrid.sizes", "kgrid.kmax", "kgrid.shift", "kgrid.chunk_size", "kgrid.max_chunks", "kgrid.refine",
        "kgrid.sizes[0]", "mu[0]", "temperature[0]", "model.params.v", "model.params.mass", "model.params.m",
        "model.hamiltonian.terms[0][0]", "model.hamiltonian.terms[1][0]", "model.tight_binding.hoppings[0]",
        "model.tight_binding.onsite[0]", "model.tight_binding.lattice[0][0]", "convergence.rtol",
        "convergence.atol", "impurities", "name", "integration", "units", "responses", "limits.max_kpoints",
        "limits.memory_fraction", "energy_resolution", "store_fields", "fermi_form", "model.kmax", "model.dim"]


def _set(cfg, dotted: str, value) -> None:
    parts = []
    for token in dotted.replace("]", "").split("."):
        name, *idx = token.split("[")
        parts.append(name)
        parts += [int(i) for i in idx]
    node = cfg
    for part in parts[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return
            node = node[part]
        else:
            if not isinstance(node, dict):
                return
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value


def _has_nonfinite(obj) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_nonfinite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_nonfinite(v) for v in obj)
    return False


def make_case(rng: random.Random) -> tuple[str, str]:
    """(YAML text, kind) of one perturbed study."""
    cfg = copy.deepcopy(rng.choice(BASES))
    kinds = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.75:
            key, value = rng.choice(KEYS), copy.deepcopy(rng.choice(HOSTILE))
            _set(cfg, key, value)
            kinds.append(f"set {key}")
        elif r < 0.85:
            top = rng.choice(list(cfg))
            cfg.pop(top)
            kinds.append(f"drop {top}")
        else:
            kinds.append("duplicate")
    text = yaml.safe_dump(cfg, allow_unicode=True)
    if "duplicate" in kinds:
        line = rng.choice([ln for ln in text.splitlines() if ln and not ln.startswith(" ")])
        text += line + "\n" if ":" in line else ""
    if rng.random() < 0.03:
        raw = bytearray(text.encode())
        for _ in range(rng.randint(1, 5)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        text = raw.decode(errors="replace")
        kinds.append("bytes")
    return text, ", ".join(kinds)


class Hang(Exception):
    pass


def check_case(text: str, folder: Path, seconds: float) -> tuple[str, str]:
    """Validation and preflight of one study text: (outcome, detail)."""
    from qgtflow import preflight
    from qgtflow.errors import QgtflowError
    from qgtflow.study import load_study

    path = folder / "study.yaml"
    path.write_text(text)

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        study = load_study(str(path))
        preflight.check(study, [max(study.sizes)], workers=1, disk_dir=folder, what="fuzz")
    except Hang:
        return "hang", text[:200]
    except QgtflowError as exc:
        line = str(exc)
        return ("refused", line) if "\n" not in line.strip() else ("traceback", f"multi-line error: {line[:300]}")
    except Exception:  # noqa: BLE001 - that is the point
        return "traceback", traceback.format_exc(limit=4)[-800:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if _has_nonfinite(study.config):
        return "silently_wrong", f"accepted a non-finite number: {text[:200]}"
    duplicated = [ln for ln in text.splitlines() if ln and not ln.startswith((" ", "-"))]
    if len({ln.split(":")[0] for ln in duplicated}) < len(duplicated):
        return "silently_wrong", f"accepted a duplicate key: {text[:200]}"
    return "accepted", ""


def evaluate_case(text: str, folder: Path, timeout: float) -> tuple[str, str]:
    """One accepted case through `qgtflow evaluate` (tiny grid) in a subprocess."""
    import xarray as xr
    import numpy as np

    cfg = yaml.safe_load(text)
    kg = cfg.setdefault("kgrid", {}) if isinstance(cfg.get("kgrid", {}), dict) else {}
    kg["sizes"] = [6]
    kg.pop("refine", None)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = folder / "out.zarr"
    try:
        proc = subprocess.run([sys.executable, "-m", "qgtflow.cli", "evaluate", str(path), "--out", str(out),
                               "--workers", "0"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", text[:200]
    if proc.returncode < 0:
        return "crash", f"signal {-proc.returncode}: {proc.stderr[-500:]}"
    if "Traceback" in proc.stderr:
        return "traceback", proc.stderr[-800:]
    if proc.returncode == 2:
        return "refused", proc.stderr.strip().splitlines()[-1]
    if proc.returncode != 0:
        return "traceback", f"exit {proc.returncode}: {proc.stderr[-500:]}"
    from qgtflow import io

    io.verify_store(out)
    ds = xr.open_zarr(out)
    bad = [name for name, var in ds.data_vars.items() if var.dtype.kind in "fc" and not np.isfinite(var.values).all()
           and name not in ("tau_model",)]
    if bad:
        return "silently_wrong", f"non-finite responses {bad}: {text[:200]}"
    return "accepted", ""


def run(cases: int, seed: int, seconds: float, case_seconds: float, n_evaluate: int) -> dict:
    rng = random.Random(seed)
    counts = {"cases": 0, "accepted": 0, "refused": 0, "traceback": 0, "hang": 0, "crash": 0, "silently_wrong": 0}
    problems = []
    accepted = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qgtflow-fuzz-") as tmp:
        folder = Path(tmp)
        for i in range(cases):
            if time.perf_counter() - t0 > seconds:
                break
            text, kind = make_case(rng)
            outcome, detail = check_case(text, folder, case_seconds)
            counts["cases"] += 1
            counts[outcome] += 1
            if outcome == "accepted":
                accepted.append(text)
            elif outcome not in ("refused",):
                problems.append({"case": i, "kind": kind, "outcome": outcome, "detail": detail})
        sample = rng.sample(accepted, min(n_evaluate, len(accepted)))
        ev = {"cases": 0, "accepted": 0, "refused": 0, "traceback": 0, "hang": 0, "crash": 0, "silently_wrong": 0}
        for text in sample:
            if time.perf_counter() - t0 > seconds:
                break
            outcome, detail = evaluate_case(text, folder, 300.0)
            ev["cases"] += 1
            ev[outcome] += 1
            if outcome not in ("accepted", "refused"):
                problems.append({"evaluate": True, "outcome": outcome, "detail": detail})
    return {"seed": seed, "seconds": round(time.perf_counter() - t0, 1), "validation": counts, "evaluate": ev,
            "problems": problems[:20]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=600.0, help="bound on the whole run")
    parser.add_argument("--case-seconds", type=float, default=20.0, help="a case longer than this is a hang")
    parser.add_argument("--evaluate", type=int, default=0, help="accepted cases run through evaluate")
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "qgtflow-numba"))
    import logging

    logging.disable(logging.WARNING)
    result = run(args.cases, args.seed, args.seconds, args.case_seconds, args.evaluate)
    print(json.dumps(result, indent=1))
    bad = sum(result[part][k] for part in ("validation", "evaluate") for k in ("traceback", "hang", "crash",
                                                                                   "silently_wrong"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
