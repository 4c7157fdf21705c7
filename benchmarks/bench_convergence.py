"""k-points needed for relative accuracies 1e-2 … 1e-4: linear tetrahedra and adaptive refinement versus a plain
uniform Fermi–Dirac sum.

Issue target (convergence, item 5): ≥ 10× fewer k-points than point sampling for
  (a) σ^qm (001 Eq. 14, Fermi-surface form) of the PT-symmetric 4-band toy (001 Eq. 20, t/v = 0.5) at T = 1 K,
  (b) the Berry-curvature dipole D_xz of the tilted massive Dirac model at T = 0 (tetrahedra; the uniform sum runs
      at k_BT = 1e-3 in model units, whose Sommerfeld bias (π²/6)(k_BT)² D''/D is below 1e-5 here).
Protocol: reference = tetrahedra on the finest grid (``--ref``; its own uncertainty is printed: the change from the
previous ladder grid); for each method the grids of the ladder are run in order and, per accuracy level, the
k-points of the first grid whose largest relative deviation over the chosen entries (|value| above 1e-3 of the
largest) is within it *and stays within it on every finer grid of the ladder* are reported (errors of linear
interpolation oscillate: a lucky coarse grid does not count); a method that never gets there reports "> N" (a
lower bound on its need).
Methods: ``tetrahedron`` (linear triangles, uniform grid), ``points`` (uniform Fermi–Dirac sum), ``refined``
(point sampling on a grid refined around the Fermi surfaces: factor 4, two levels).
Run: ``.venv/bin/python benchmarks/bench_convergence.py [--quick]``; prints figures, a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

LEVELS = (1e-2, 1e-3, 1e-4)
REFINE = {"factor": 4, "levels": 2}

CASES = {
    "sigma_qm pt_toy_4band (t/v = 0.5), T = 1 K": dict(
        study={"units": "physical", "model": {"name": "pt_toy_4band", "params": {"v": 1.0, "m": 0.1, "b": 1.0,
                                                                               "t": 0.5}},
               "kgrid": {"kmax": 0.7}, "mu": [0.15, 0.25, 0.35], "responses": ["sigma_qm"]},
        T_points=[1.0], T_tetra=[1.0], response="sigma_qm"),
    "BCD D_xz tilted Dirac (tilt 0.3, m 0.1), T = 0": dict(
        study={"units": "natural", "model": {"name": "tilted_dirac", "params": {"v": 1.0, "tilt": 0.3, "mass": 0.1}},
               "kgrid": {"kmax": 1.5}, "mu": [0.2, 0.3, 0.45], "responses": ["berry_curvature_dipole"]},
        T_points=[1e-3], T_tetra=[0.0], response="berry_curvature_dipole"),
}


def run(case: dict, size: int, method: str) -> tuple[np.ndarray, float, int]:
    from qgtflow.api import evaluate

    kgrid = {**case["study"]["kgrid"], "sizes": [size], **({"refine": REFINE} if method == "refined" else {})}
    study = {**case["study"], "name": "bench", "kgrid": kgrid,
             "temperature": case["T_tetra"] if method == "tetrahedron" else case["T_points"],
             "integration": "tetrahedron" if method == "tetrahedron" else "points"}
    t0 = time.perf_counter()
    ds = evaluate(study, n_workers=0)
    return np.asarray(ds[case["response"]].values, float), time.perf_counter() - t0, int(ds.attrs["n_kpoints"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter ladders (a smoke run)")
    ap.add_argument("--ref", type=int, default=3072, help="reference grid (tetrahedra), points per axis")
    args = ap.parse_args()
    ladder = [64, 128, 256, 512] if args.quick else [64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
    ref_size = 768 if args.quick else args.ref
    for title, case in CASES.items():
        ref, t_ref, _ = run(case, ref_size, "tetrahedron")
        below = max(n for n in ladder if n < ref_size)
        prev, _, _ = run(case, below, "tetrahedron")
        mask = np.abs(ref) > 1e-3 * np.abs(ref).max()
        ref_err = float(np.max(np.abs(prev[mask] / ref[mask] - 1)))
        print(f"\n{title}: reference tetrahedra {ref_size}² ({t_ref:.0f} s), {int(mask.sum())} entries; "
              f"change from {below}²: {ref_err:.1e}")
        need = {}
        for method in ("tetrahedron", "refined", "points"):
            errors, points = [], []
            for n in ladder:
                if n >= ref_size:
                    break
                values, t, n_k = run(case, n, method)
                err = float(np.max(np.abs(values[mask] / ref[mask] - 1)))
                errors.append(err)
                points.append(n_k)
                print(f"  {method:11s} {n:5d}² base, {n_k:9d} k-points: max relative deviation {err:.2e} ({t:.1f} s)")
            need[method] = {"largest": points[-1]}
            for level in LEVELS:
                ok = [i for i in range(len(errors)) if max(errors[i:]) <= level]
                if ok:
                    need[method][level] = points[ok[0]]
        for level in LEVELS:
            cells = {m: need[m].get(level) for m in need}
            text = {m: (f"{v}" if v else f"> {need[m]['largest']}") for m, v in cells.items()}
            best = min((v for m, v in cells.items() if v and m != "points"), default=None)
            if best and cells["points"]:
                ratio = f"{cells['points'] / best:.0f}× fewer"
            elif best:
                ratio = f"> {need['points']['largest'] / best:.0f}× fewer (uniform sum never got there)"
            else:
                ratio = "not reached on the ladder"
            print(f"  {level:g}: tetrahedra {text['tetrahedron']}, refined {text['refined']}, uniform Fermi–Dirac sum "
                  f"{text['points']} k-points -> {ratio}")


if __name__ == "__main__":
    main()
