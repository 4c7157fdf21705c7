"""The default run's real-material study ``fe_like_ahc`` (config/config.yaml): convergence verdicts of σ_xy and
σ_drude per ladder of grid densities, and the CPU time of each density.

Why the study converged nowhere on 12/16/20³: at 300 K point sampling needs the grid's energy step |v|·h below
k_B T = 26 meV (the preflight warned "~17-35x denser"), and σ_xy is a Fermi-sea sum of a Berry curvature that peaks
(|Ω| up to 1e4 Å²) at the λ = 0.06 eV spin–orbit anticrossings. The study now samples the irreducible wedge of
4/mm'm' (16 operations) at 192/240/320³. This script evaluates the study's config (in process) at every size of
``--sizes`` (uniform grids, wedge or not: ``--full``), prints the CPU time of each evaluate and then the verdict
counts (qgtflow.convergence.assess at the study's rtol) of σ_xy (41 μ) and σ_drude (xx, zz: 82) for every ladder of
three sizes, the config's ladder marked, and the μ the config's ladder leaves unconverged.

Run: ``.venv/bin/python benchmarks/bench_fe_like_ahc.py`` (~3 min on 2 cores: 160 192 224 240 256 288 320);
``--sizes 12 16 20 --full`` for the old design (seconds); ``--quick`` for 96 128 160 (~30 s).
Measured 2026-12-07 (2 shared cores): old 12/16/20³ 0/41 σ_xy and 2/82 σ_drude converged; the config's
192/240/320³ wedge 37/41 and 82/82 (other ladders of three from 160–320³ ending at 288 or 320: 23–35/41).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def study_config(full: bool) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["studies"]["fe_like_ahc"]
    cfg = {**cfg, "name": "fe_like_ahc"}
    if full:
        cfg["kgrid"] = {k: v for k, v in cfg["kgrid"].items() if k != "symmetry_reduce"}
    return cfg


def main() -> None:
    from qgtflow.api import evaluate
    from qgtflow.convergence import CONVERGED, assess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 192, 224, 240, 256, 288, 320])
    ap.add_argument("--full", action="store_true", help="the full grid (no kgrid.symmetry_reduce)")
    ap.add_argument("--quick", action="store_true", help="sizes 96 128 160")
    args = ap.parse_args()
    sizes = [96, 128, 160] if args.quick else sorted(args.sizes)
    cfg = study_config(args.full)
    rtol = float(cfg.get("convergence", {}).get("rtol", 1e-2))
    ladder = tuple(cfg["kgrid"]["sizes"])
    ahe, drude = {}, {}
    for n in sizes:
        t0, c0 = time.perf_counter(), time.process_time()
        ds = evaluate({**cfg, "kgrid": {**cfg["kgrid"], "sizes": [n]}}, n_workers=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ahe[n] = ds["sigma_ahe"].values[:, 0, 0, 1]
        drude[n] = ds["sigma_drude"].values[:, 0, [0, 2], [0, 2]]
        mu = ds["mu"].values
        print(f"{n:4d}³ {'full' if args.full else 'wedge'}: {ds.attrs['n_kpoints']:9d} grid points, "
              f"evaluate {wall:6.1f} s wall, {cpu:6.1f} s CPU", flush=True)
    print(f"\nverdicts at rtol {rtol:g} (σ_xy: {mu.size} μ; σ_drude: xx and zz at {mu.size} μ)")
    for tri in itertools.combinations(sizes, 3):
        h = 1.0 / np.asarray(tri, float)
        a = assess(h, np.array([ahe[n] for n in tri]), rtol=rtol)
        d = assess(h, np.array([drude[n] for n in tri]), rtol=rtol)
        mark = "  <- config" if tri == ladder else ""
        print(f"  {tri}: σ_xy {int((a.verdict == CONVERGED).sum()):2d}/{a.verdict.size}, "
              f"σ_drude {int((d.verdict == CONVERGED).sum()):2d}/{d.verdict.size}{mark}")
        if tri == ladder:
            bad = a.verdict != CONVERGED
            rel = a.result.error / np.abs(a.result.value)
            print("      not converged: " + ", ".join(f"μ = {m:+.1f} eV ({r:.1%})" for m, r in zip(mu[bad], rel[bad])))


if __name__ == "__main__":
    main()
