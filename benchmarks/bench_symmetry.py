"""Irreducible-wedge sampling (``kgrid.symmetry_reduce``) against the full grid: k-points stored and the CPU time of
the geometry + reduce stages (in process, one thread), on a magnetic Haldane layer (400², 6 operations) and the
bcc-Fe-like Wannier model (24³, 4/mm'm': 16 operations).

CPU time (time.process_time) of each stage call, full and wedge interleaved, best of ``--reps``; the speed-up is the
ratio measured in the same run. The results agree to ~1e-14 relative (printed). Also the CPU time of the check that
the declared group is one of the model's (:mod:`qgtflow.geometry.covariance`, run by study validation; best of 20):
the cases above, Fe-like with a non-magnetic crystal (96 operations) and the same checks refusing; and of the choice
of a 2D layer's 3D lifts by its spin operator (Rashba and Dresselhaus square layers); and of declared groups
(``symmetry.generators``): their closure and their check on k·p models. Run:
``.venv/bin/python benchmarks/bench_symmetry.py`` (options ``--reps N``, ``--quick`` for 120² / 12³,
``--declared-only`` for the declared groups alone).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "src" / "qgtflow" / "data"
UP = [0.0, 0.0, 1.0]
CASES = {
    "haldane": ({"name": "haldane", "params": {"t1": 1.0, "t2": 0.1, "phi": float(np.pi / 2), "mass": 0.2}},
                {"atoms": [["A", 0, 0, 0], ["B", 1 / 3, 1 / 3, 0]], "magnetic_moments": [UP, UP]}, 400, 120,
                ["sigma_ahe", "sigma_drude", "sigma_bcd", "sigma_nonlinear_drude", "sigma_qm"]),
    "fe_like": ({"name": "fe_like", "wannier90": {"tb": str(DATA / "fe_like_tb.dat")}},
                {"magnetic_moments": [[0.0, 0.0, 2.2]]}, 24, 12, ["sigma_ahe", "sigma_drude"]),
}


def study(case: str, size: int, reduce: bool):
    from qgtflow.study import load_study

    model, crystal, _, _, responses = CASES[case]
    return load_study({"model": model, "symmetry": crystal, "units": "natural", "tau": 1.0,
                       "kgrid": {"sizes": [size], "symmetry_reduce": reduce}, "mu": {"start": -1.0, "stop": 1.0,
                                                                                    "num": 21},
                       "temperature": [0.05], "responses": responses}, name=f"{case}_{'wedge' if reduce else 'full'}")


def run_once(st, size: int, tmp: Path):
    """(k-points stored, geometry CPU s, reduce CPU s, responses) of one pass through the stages."""
    from qgtflow import io
    from qgtflow.plan import grid_chain, stage_study
    from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage

    chain = grid_chain(st, size)
    kg, geo = tmp / f"{st.name}_kgrid.zarr", tmp / f"{st.name}_geometry.zarr"
    for path in (kg, geo):
        shutil.rmtree(path, ignore_errors=True)
    kgrid_stage.run(st, size, kg, job=chain["kgrid"])
    t0 = time.process_time()
    geometry_stage.run(st, kg, geo, n_workers=0, job=chain["geometry"])
    t1 = time.process_time()
    ds = reduce_stage.run(stage_study("reduce", chain["reduce"], where=st.where), geo, n_workers=0,
                          job=chain["reduce"])
    t2 = time.process_time()
    return io.open_store(kg).sizes["kpoint"], t1 - t0, t2 - t1, ds.load()


def bench(case: str, size: int, reps: int):
    full, wedge = study(case, size, False), study(case, size, True)
    best = {"full": [np.inf, np.inf], "wedge": [np.inf, np.inf]}
    points, results = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_symmetry_") as tmp:
        run_once(study(case, 8, False), 8, Path(tmp))  # compile / load the kernels outside the timings
        for _ in range(reps):
            for label, st in (("full", full), ("wedge", wedge)):
                n, t_geo, t_red, ds = run_once(st, size, Path(tmp))
                points[label] = n
                best[label] = [min(best[label][0], t_geo), min(best[label][1], t_red)]
                results[label] = ds
    nonzero = [r for r in CASES[case][4] if np.abs(results["full"][r].values).max() > 1e-9]  # natural units
    err = max(float(np.abs(results["wedge"][r].values - results["full"][r].values).max()
                    / np.abs(results["full"][r].values).max()) for r in nonzero)
    tf, tw = sum(best["full"]), sum(best["wedge"])
    dims = "x".join([str(size)] * (3 if case == "fe_like" else 2))
    print(f"{case + ' ' + dims:<18}{points['full']:>10}{points['wedge']:>10}{points['full'] / points['wedge']:>8.2f}"
          f"{best['full'][0]:>9.2f}{best['wedge'][0]:>9.2f}{best['full'][1]:>9.2f}{best['wedge'][1]:>9.2f}"
          f"{tf / tw:>9.2f}{err:>11.1e}")


def check_cost(reps: int = 20):
    """CPU ms of :func:`qgtflow.geometry.covariance.first_broken_operation` (best of ``reps``) per case."""
    from qgtflow.geometry.covariance import first_broken_operation
    from qgtflow.models.symmetry import study_operations

    haldane, fe_like = CASES["haldane"][1], CASES["fe_like"][1]
    crystals = {"haldane": [("declared", haldane), ("time reversal", {"atoms": haldane["atoms"]})],
                "fe_like": [("declared", fe_like), ("moment along x", {"magnetic_moments": [[2.2, 0, 0]]}),
                            ("non-magnetic", {})]}
    print("== the declared group verified against the Hamiltonian (study validation), CPU ms, best of "
          f"{reps} ==")
    for case, rows in crystals.items():
        model = study(case, 8, False).model
        for label, crystal in rows:
            ops = study_operations(model, crystal)
            best = np.inf
            for _ in range(reps):
                t0 = time.process_time()
                broken = first_broken_operation(model, ops, 1e-3)  # the schema's symmetry.tolerance default
                best = min(best, time.process_time() - t0)
            verdict = "passes" if broken is None else f"refused at {broken[0]}"
            print(f"{case:<10}{label:<16}{len(ops):>4} operations {1e3 * best:>8.2f} ms  {verdict}")


def lift_cost(reps: int = 20):
    """CPU ms of :func:`qgtflow.models.symmetry.lifted_operations` (best of ``reps``): the 3D lifts of a 2D
    layer's operations that its spin operator respects, chosen among the planar crystal's 32 (D4h × T) for the
    Rashba and Dresselhaus square layers of tests/test_symmetry_spin2d.py (run by plan, converge and the kgrid stage
    of a 2D study with a spin operator)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from qgtflow.models.symmetry import lifted_operations
    from qgtflow.study import load_study
    from tests.test_symmetry_spin2d import SPIN, _study

    print(f"== 2D spin: the 3D lifts the spin operator respects, CPU ms, best of {reps} ==")
    for case, spin in SPIN.items():
        st = load_study(_study(["spin_beta_lin_tau1"], spin=spin))
        best = np.inf
        for _ in range(reps):
            t0 = time.process_time()
            lifts, _ = lifted_operations(st.model, st.config["symmetry"])
            best = min(best, time.process_time() - t0)
        print(f"{case:<14}32 candidate lifts, {len(lifts)} kept {1e3 * best:>8.2f} ms")


def declared_cost(reps: int = 20):
    """CPU ms (best of ``reps``) of a declared point group (``symmetry.generators``): its closure from the
    generators (:func:`qgtflow.models.symmetry.closed_group`) and its check on a k·p model inside the window, spin
    operator included (massive Dirac with 42'2', the Rashba k·p layer of tests/test_symmetry_declared.py with
    C4v × T), as study validation runs them."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from qgtflow.geometry.covariance import operation_checks
    from qgtflow.models.symmetry import closed_group
    from qgtflow.study import load_study
    from tests.test_symmetry_declared import _dirac, _rashba_kp

    def best_of(call):
        best = np.inf
        for _ in range(reps):
            t0 = time.process_time()
            out = call()
            best = min(best, time.process_time() - t0)
        return out, 1e3 * best

    print(f"== declared point groups: closure and check on a k·p model, CPU ms, best of {reps} ==")
    for gens in (["C4z", "C2x'"], ["C4z", "Mx", "T"], ["C6z", "Mx", "T"], ["C3[1, 1, 1]", "C4z", "I", "T"]):
        ops, ms = best_of(lambda: closed_group(gens))
        print(f"closure {str(gens):<32}{len(ops):>4} operations {ms:>8.2f} ms")
    for label, cfg in (("massive Dirac 42'2'", _dirac(["C4z", "C2x'"])),
                       ("Rashba k·p C4v × T", _rashba_kp(["C4z", "Mx", "T"], ["sigma_drude"]))):
        st = load_study(cfg)
        ops = closed_group(cfg["symmetry"]["generators"])
        _, ms = best_of(lambda: operation_checks(st.model, ops, spin=True))
        print(f"check   {label:<32}{len(ops):>4} operations {ms:>8.2f} ms (energies, curvature, spin)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--declared-only", action="store_true", help="only the declared groups' closure and check")
    args = parser.parse_args()
    if args.declared_only:
        declared_cost()
        return
    print(f"== kgrid.symmetry_reduce: full grid vs irreducible wedge, CPU s (best of {args.reps}, interleaved) ==")
    print(f"{'case':<18}{'k full':>10}{'k wedge':>10}{'ratio':>8}{'geo f':>9}{'geo w':>9}{'red f':>9}{'red w':>9}"
          f"{'speedup':>9}{'max rel':>11}")
    for case, (_, _, size, quick, _) in CASES.items():
        bench(case, quick if args.quick else size, args.reps)
    print("(speedup = (geometry + reduce) CPU time full / wedge; max rel = largest |wedge − full| / max|full| over "
          "the nonzero responses)")
    check_cost()
    lift_cost()
    declared_cost()


if __name__ == "__main__":
    main()
