"""Read time and peak memory of a generated Wannier90 ``_tb.dat`` (default ~100 MB); with ``--peer-venv``, agreement
and speed beside WannierBerri on real-like files.

    python benchmarks/bench_wannier.py [--bands 40] [--nrpts 125] [--keep FILE]
    python benchmarks/bench_wannier.py --peer-venv DIR [--sizes 8 16] [--repeat 2] [--skip-read]
    python benchmarks/bench_wannier.py --position-cost 16 [--repeat 3]
    python benchmarks/bench_wannier.py --kernel-paths [TB ...] [--generated 8 84] [--kernel-points 400] [--repeat 3]
    python benchmarks/bench_wannier.py --peer-venv DIR --real DATA [--sizes 8 12] [--skip-read]

``--real DATA`` (DATA: WannierBerri's ``tests/data``, see ``wannierberri_data.py``): its GaAs, Te, Fe and Mn3Sn
models at qgtflow's default settings beside the peer (:func:`compare_real`), timed in CPU seconds. 2026-12-06
22:26–22:42 UTC (``--sizes 8 12 --repeat 2``, loaded 2-core VM, after the real ±R Bloch sums of
``tight_binding.HermitianBlochSums``), qgtflow / peer k/s on 8³ | 12³, AHC + Drude + BCD + nonlinear Drude: GaAs
(16 bands) 577 / 189 = 3.0× | 605 / 202 = 3.0×; Te (24) 222 / 86 = 2.6× | 261 / 79 = 3.3×; Fe (18) 326 / 90 = 3.6× |
410 / 92 = 4.5× (earlier the same day: 0.9–2.4×, mostly gained with the session-26 commits; the ±R sums alone, 8³
end to end against d47b549: GaAs 1.33 → 1.14 s, Fe 2.04 → 1.63 s, Te 2.70 → 2.83 s; README "Performance"). Mn3Sn:
its archive is not in the snapshot available here. 2026-12-07 (``--sizes 8 12 16 --repeat 2``, load average 4–12), main
388e882 (its evaluate timed with a workdir) → evaluate without a workdir and the Leibniz factors once per call, ratio on
8³ | 12³ | 16³: GaAs 2.3× → 3.3× | 3.4× → 4.5× | 3.7× → 4.2×; Te 2.9× → 4.0× | 3.6× → 3.5× | 3.1× → 3.7×; Fe 3.9× →
6.6× | 4.8× → 5.3× | 3.9× → 5.9× (README "Performance").

Writes a random Hermitian hopping set with position blocks in Wannier90's format (6 decimals), then
reads it with ``qgtflow.models.wannier.read_tb`` and reports the wall time, the peak RSS increase and
the size of the arrays the model holds.

``--peer-venv DIR``: a venv with WannierBerri (the peer; e.g. another checkout's ``benchmarks/.peer-venv``, used
read-only through its python in a subprocess, as ``bench_peer.py`` does). On the Fe-like file of the tests
(``tests/data/fe_like_tb.dat``, 6 bands, centres only), the same file with random off-diagonal position elements
A(R) (``fe_like_r``) and a generated file of this script (``random``: 16 bands, random centres and A(R)), on
N × N × N grids, both codes compute the AHC, Drude (Ohmic), Berry-curvature dipole and nonlinear Drude conductivity
on the same μ grid at T, once with internal terms only (qgtflow ``position_operator: false``, the peer's
``external_terms: False``) and once with the full position operator. Printed per (file, terms, grid): the
agreement max|q − p| / max|p| of each quantity (all tensor components, μ less 8 k_BT at each end, see
``bench_peer.py``), k-points per second of each code (best of ``--repeat``, one thread, file read → result), and
qgtflow's geometry kernel alone with / without the position operator (the external-term cost).

Known (2026-12-05, WIP): the finite-T agreement is limited by the peer's smoothing of its T = 0 sums on the μ grid
(AHC 2 % at 5 meV steps, 0.4–0.8 % at 1 meV on 8³); at T → 0 (qgtflow T = 1 K against the peer's raw ``data``) the
Fe-like file with A(R) agrees to 5e-16 (AHC) and 1e-13 (BCD, nonzero only through A(R)) in the median over μ, with
and without the position operator. The generated ``random`` file disagreed in every quantity (AHC 2.6, BCD 10,
nonlinear Drude 1.8, Drude 0.43 on 8³): its R cube tiles a 3×3×3 supercell, so qgtflow's reader (no _wsvec.dat)
applies Wannier90's use_ws_distance correction for that grid, which the peer's ``from_tb_file`` never applies. Both
corrections are the same (H(k) of qgtflow's reader = the peer's after ``do_ws_dist(mp_grid=(3, 3, 3))`` to 1e-15 in
the eigenvalues): the peer is now given the grid qgtflow uses (:func:`ws_grid`), and ``random`` agrees like the
Fe-like files (2026-12-06, 8³, T = 300 K: AHC 1.5e-2, Drude 1.5e-3, BCD 1.3e-2, nonlinear Drude 1.2e-2, internal and
full). Symmetry-zero tensors (Fe-like BCD and nonlinear Drude) show noise / noise ratios.

``--position-cost N`` (2026-12-06, 16³, one thread, loaded 2-core VM, CPU s best of 3, off → on): core fields
0.127 → 0.801 (x6.3); quadrupole + Christoffel 0.309 → 2.18 (x7.0); all fields 0.362 → 2.07 (x5.7). The quadrupole with
the operator (geometry/position_quadrupole.py, batched NumPy) costs ~1.1 s of that against ~0.25 s for the
tight-binding projector kernel.

``--kernel-paths [TB ...] --generated 84`` (2026-12-06, 300 random k, one thread, loaded 2-core VM, CPU ms per k,
position operator on, automatic path; before → after the external terms took the kernel's eigenbasis,
``position.ExternalTerms``): Fe-like with A(R) (6 bands) σ_AHE fields 0.052 → 0.030, all core fields 0.222 → 0.167;
GaAs (real, 16 bands) 0.362 → 0.250, 1.610 → 1.211; generated with A(R) (84 bands) 23.2 → 14.4, 143 → 87.4 (the
operator off, unchanged code: 0.010/0.009, 0.043/0.036, 0.091/0.084, 0.42/0.41, 3.9/3.8, 35/38 in the two runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: its tests' file writers
from tests.wannier_files import write_tb  # noqa: E402


def write_random_tb(path: Path, n: int, nrpts: int, seed: int = 0, position_scale: float = 0.0) -> None:
    """Random hoppings on a cube of R; ``position_scale`` > 0 adds random position elements A(R) (Å) beyond the
    centres (r(−R) = r(R)^†, zero R = 0 diagonal)."""
    rng = np.random.default_rng(seed)
    side = int(round(nrpts ** (1 / 3)))
    half = side // 2
    Rs = [(a, b, c) for a in range(-half, side - half) for b in range(-half, side - half)
          for c in range(-half, side - half)]
    Rs = sorted(set(Rs) | {tuple(-x for x in R) for R in Rs})
    H = {R: 0.1 * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) for R in Rs}
    for R in Rs:  # Hermitian partners
        mR = tuple(-x for x in R)
        if R < mR:
            H[mR] = H[R].conj().T
    H[(0, 0, 0)] = (H[(0, 0, 0)] + H[(0, 0, 0)].conj().T) / 2
    centres = rng.uniform(0, 4, (n, 3))
    positions = random_positions(rng, Rs, n, position_scale) if position_scale else None
    write_tb(path, np.eye(3) * 4.0, H, centres=centres, positions=positions, header="generated by bench_wannier")


def random_positions(rng, Rs, n: int, scale: float) -> dict:
    """Random position blocks {R: (n, n, 3)} with r(−R) = r(R)^† (per Cartesian component), zero R = 0 diagonal."""
    r = {}
    for R in Rs:
        mR = tuple(-x for x in R)
        if mR in r:
            r[R] = np.conj(np.swapaxes(r[mR], 0, 1))
            continue
        r[R] = scale * (rng.normal(size=(n, n, 3)) + 1j * rng.normal(size=(n, n, 3)))
        if R == mR:
            r[R] = 0.5 * (r[R] + np.conj(np.swapaxes(r[R], 0, 1)))
            r[R][np.arange(n), np.arange(n)] = 0.0
    return r


# ------------------------------------------------------------------------------ beside WannierBerri (the peer)

ROOT = Path(__file__).resolve().parents[1]
FE_LIKE = ROOT / "tests" / "data" / "fe_like_tb.dat"
MU = np.linspace(-1.0, 1.0, 2001)  # eV (1 meV steps: the peer smooths its T = 0 sums on this grid; 5 meV: 2 % AHC error)
T_KELVIN = 300.0
TAU_S = 1e-15  # the peer's τ unit (1 fs): its τ-dependent results are per fs^power
KB_EV = 8.617333262e-5  # k_B in eV/K: only the peer's smoothing margin (not a qgtflow constant)
PEER_SMOOTH_KT = 8  # as bench_peer.py: μ within 8 k_BT of the grid's ends are not compared
AXES = "xyz"
# quantity → (qgtflow response, WannierBerri calculator, does the position operator enter)
QUANTITIES = {
    "ahc": ("sigma_ahe", "AHC", True),
    "drude": ("sigma_drude", "Ohmic_FermiSurf", False),
    "bcd": ("berry_curvature_dipole", "BerryDipole_FermiSea", True),
    "nl_drude": ("sigma_nonlinear_drude", "NLDrude_FermiSea", False),
}
KERNEL_CORE = ("energy", "velocity", "inverse_mass", "energy_third_derivative", "berry_curvature",
               "berry_curvature_dipole_density")  # what the four quantities read

PEER_SCRIPT = r"""
import json, os, sys, tempfile, time
import numpy as np
import wannierberri as wb
from wannierberri import calculators
from wannierberri.smoother import FermiDiracSmoother

tb, size, mu, T, names, external, reps, ws_grid = (sys.argv[1], int(sys.argv[2]), np.array(json.loads(sys.argv[3])),
                                                  float(sys.argv[4]), sys.argv[5].split(","), sys.argv[6] == "1",
                                                  int(sys.argv[7]), json.loads(sys.argv[8]))
os.chdir(tempfile.mkdtemp(prefix="bench-wannier-peer-"))
BERRY = {"AHC", "BerryDipole_FermiSea"}

def once():
    t0 = time.process_time()  # CPU seconds of this process (one thread)
    system = wb.system.System_R.from_tb_file(tb_file=tb, berry=True)
    if ws_grid:  # the Wigner–Seitz (MDRS) correction qgtflow applies: from_tb_file applies none by itself
        system.do_ws_dist(mp_grid=ws_grid)
    grid = wb.Grid(system, NK=(size, size, size), NKFFT=(min(size, 16),) * 3, use_symmetry=False)
    calcs = {name: getattr(calculators.static, name)(
        Efermi=mu, smoother=FermiDiracSmoother(mu, T), print_comment=False,
        **({"kwargs_formula": {"external_terms": external}} if name in BERRY else {})) for name in names}
    result = wb.run(system, grid=grid, calculators=calcs, parallel=False, use_irred_kpt=False, symmetrize=False,
                    print_progress_step_time=1e9, fout_name="peer")
    return time.process_time() - t0, {name: result.results[name].dataSmooth.tolist() for name in names}

times = []
for _ in range(reps):
    t, out = once()
    times.append(t)
print("PEER_JSON " + json.dumps({"times": times, "results": out}))
"""


def run_peer(python: Path, tb: Path, size: int, external: bool, reps: int, mu=MU):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    names = [q[1] for q in QUANTITIES.values()]
    out = subprocess.run([str(python), "-c", PEER_SCRIPT, str(tb), str(size), json.dumps(mu.tolist()), str(T_KELVIN),
                          ",".join(names), "1" if external else "0", str(reps), json.dumps(ws_grid(tb))],
                         capture_output=True, text=True, env=env)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PEER_JSON ")]
    if not line:
        raise RuntimeError(f"peer failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    data = json.loads(line[0][len("PEER_JSON "):])
    return data["times"], {k: np.asarray(v) for k, v in data["results"].items()}


def ws_grid(tb: Path):
    """The Monkhorst–Pack grid whose Wigner–Seitz correction qgtflow's reader applies to ``tb`` (no _wsvec.dat, no
    .win here: the grid the R vectors and degeneracies tile, ``infer_mp_grid``), None when it applies none; the peer
    is given the same grid (its _tb.dat reader never corrects: the 2026-12-05 disagreement on ``random``)."""
    from qgtflow.models.wannier import infer_mp_grid

    with open(tb) as f:
        lines = f.read().splitlines()
    n, nrpts = int(lines[4]), int(lines[5])
    deg, row = [], 6
    while len(deg) < nrpts:
        deg += [int(x) for x in lines[row].split()]
        row += 1
    cells = [tuple(int(x) for x in lines[row + 1 + r * (n * n + 2)].split()) for r in range(nrpts)]
    grid = infer_mp_grid(cells, deg, tb)
    return None if grid is None else list(grid)


def qgtflow_study(tb: Path, position_operator: bool | None, mu=MU) -> dict:
    """``position_operator`` None: the schema's default (the real files are run at default settings)."""
    w90 = {"tb": str(tb)} if position_operator is None else {"tb": str(tb), "position_operator": position_operator}
    return {"name": "bench_wannier", "model": {"name": tb.name.removesuffix("_tb.dat"), "wannier90": w90},
            "units": {"length": "angstrom"}, "kgrid": {"sizes": [4]}, "tau": TAU_S,
            "mu": {"start": float(mu[0]), "stop": float(mu[-1]), "num": len(mu)}, "temperature": [T_KELVIN],
            "responses": [q[0] for q in QUANTITIES.values()]}


def run_qgtflow(tb: Path, size: int, position_operator: bool | None, reps: int, mu=MU):
    import qgtflow

    times, ds = [], None
    for _ in range(reps):  # as a user calls it (no workdir: the one pass of stages/fused.py, as bench_peer.py)
        t0 = time.process_time()  # CPU seconds of this process (n_workers=0: no worker processes)
        ds = qgtflow.evaluate(qgtflow_study(tb, position_operator, mu), size=size, n_workers=0).load()
        times.append(time.process_time() - t0)
    return times, ds


def as_peer_layout(name: str, ds) -> np.ndarray:
    """qgtflow's response in the peer's layout (μ, components...): the AHC as the pseudovector O_δ with
    σ_ab = ε_abδ O_δ; the others component by component (BCD D_ab = ∫ f ∂_a Ω_b in both)."""
    da = ds[name].isel(T=0)
    if name == "sigma_ahe":
        return np.stack([da.sel(i=AXES[(d + 1) % 3], j=AXES[(d + 2) % 3]).values for d in range(3)], axis=-1)
    return da.transpose("mu", ...).values


def agreement(q: np.ndarray, p: np.ndarray, mu=MU) -> float:
    inner = np.abs(mu - mu.mean()) <= 0.5 * np.ptp(mu) - PEER_SMOOTH_KT * KB_EV * T_KELVIN
    return float(np.max(np.abs(q - p)[inner]) / max(np.max(np.abs(p[inner])), 1e-300))


def kernel_cost(tb: Path, n_points: int, reps: int, core=KERNEL_CORE, optional=(), k=None, clock=time.perf_counter,
                n_threads=None) -> dict:
    """Geometry kernel alone on ``n_points`` random k (or the points ``k``; ``core``: default the fields the four
    quantities read; ``optional``: optional fields as well): seconds of ``clock`` with and without the position
    operator (best of interleaved repeats)."""
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models.wannier import read_tb

    models = {"on": read_tb(tb, length_unit="angstrom"),
              "off": read_tb(tb, length_unit="angstrom", position_operator=False)}
    k = np.random.default_rng(1).uniform(-1.0, 1.0, (n_points, 3)) if k is None else k
    for m in models.values():
        compute_fields(m, k[:2], core=core, optional=optional, n_threads=n_threads)  # compiled / loaded
    best = {name: np.inf for name in models}
    for _ in range(reps):
        for name, m in models.items():
            t0 = clock()
            compute_fields(m, k, core=core, optional=optional, n_threads=n_threads)
            best[name] = min(best[name], clock() - t0)
    return best


def position_cost(size: int, reps: int) -> None:
    """CPU time (one thread) of the geometry fields on the Fe-like file with A(R) on a size³ grid of its cell, with
    and without the position operator: the core fields, the quadrupole and Christoffel symbols, and all of them."""
    from qgtflow.geometry.fields import CORE_FIELDS

    with tempfile.TemporaryDirectory(prefix="bench-wannier-") as tmp:
        tb = comparison_files(Path(tmp))["fe_like_r"]
        from tests.data.make_fe_like import LATTICE

        frac = np.stack(np.meshgrid(*[np.arange(size) / size] * 3, indexing="ij"), -1).reshape(-1, 3)
        k = frac @ (2 * np.pi * np.linalg.inv(LATTICE).T)
        print(f"# bench_wannier --position-cost {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
              f"{platform.node()}: Fe-like with A(R), {size}^3 = {len(k)} k, one thread, CPU s (best of {reps})",
              flush=True)
        metric_optional = ("quantum_metric_quadrupole_density", "christoffel")
        for label, core, optional in (("core fields", CORE_FIELDS, ()),
                                      ("quadrupole + christoffel", ("energy",), metric_optional),
                                      ("all fields", CORE_FIELDS, metric_optional)):
            t = kernel_cost(tb, len(k), reps, core, optional, k, time.process_time, n_threads=1)
            print(f"{label}: position operator off {t['off']:.3g} s, on {t['on']:.3g} s (x{t['on'] / t['off']:.3g})",
                  flush=True)


def kernel_paths(files: list[Path], n_points: int, reps: int, generated_bands: list[int]) -> None:
    """ms per k-point (CPU, one thread, best of interleaved repeats) of the geometry kernel on each ``_tb.dat`` (and
    on generated files of ``generated_bands`` bands with A(R)): the σ_AHE fields and all core fields, position
    operator off, on by the per-k kernel plus its own eigh for the external terms (``batched=False``), and on by
    the automatic path (with the operator: the batched eigenbasis shared with the external terms)."""
    from qgtflow.geometry.fields import CORE_FIELDS, compute_fields
    from qgtflow.models.wannier import read_tb

    from benchmarks.bench_peer import AHC_CORE

    with tempfile.TemporaryDirectory(prefix="bench-wannier-") as tmp:
        for n in generated_bands:
            path = Path(tmp) / f"generated{n}_tb.dat"
            write_random_tb(path, n, 125, position_scale=0.05)
            files = files + [path]
        print(f"# bench_wannier --kernel-paths {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
              f"{platform.node()}: {n_points} random k, one thread, CPU ms per k-point (best of {reps})", flush=True)
        k = np.random.default_rng(1).uniform(-1.0, 1.0, (n_points, 3))
        for tb in files:
            on = read_tb(tb, length_unit="angstrom")
            off = read_tb(tb, length_unit="angstrom", position_operator=False)
            for label, core in (("AHC fields", AHC_CORE), ("all core fields", CORE_FIELDS)):
                runs = {"off": (off, None), "on, per-k": (on, False), "on, auto": (on, None)}
                for m, batched in runs.values():
                    compute_fields(m, k[:2], core=core, n_threads=1, batched=batched)  # compiled / loaded
                best = {name: np.inf for name in runs}
                for _ in range(reps):
                    for name, (m, batched) in runs.items():
                        t0 = time.process_time()
                        compute_fields(m, k, core=core, n_threads=1, batched=batched)
                        best[name] = min(best[name], time.process_time() - t0)
                print(f"{tb.name} ({on.nbands} bands) {label}: " + ", ".join(
                    f"{name} {1e3 * t / n_points:.3f}" for name, t in best.items()), flush=True)


def comparison_files(workdir: Path) -> dict[str, Path]:
    from tests.data.make_fe_like import LATTICE, blocks

    fe = blocks()
    Rs = sorted(fe)
    n = next(iter(fe.values())).shape[0]
    fe_r = workdir / "fe_like_r_tb.dat"
    write_tb(fe_r, LATTICE, {R: fe[R] for R in Rs}, positions=random_positions(np.random.default_rng(2), Rs, n, 0.05),
             header="Fe-like model with random position elements A(R), by bench_wannier")
    rnd = workdir / "random_tb.dat"
    write_random_tb(rnd, 16, 27, seed=3, position_scale=0.05)
    return {"fe_like": FE_LIKE, "fe_like_r": fe_r, "random": rnd}


def compare(python: Path, sizes: list[int], reps: int, kernel_points: int) -> list[dict]:
    import logging

    from qgtflow.geometry.fields import CORE_FIELDS

    logging.getLogger("qgtflow").setLevel(logging.ERROR)  # sampling warnings of coarse grids
    print(f"# bench_wannier vs WannierBerri {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
          f"{platform.node()} ({os.cpu_count()} cores visible, one thread per code), best of {reps}, T = {T_KELVIN} K, "
          f"{len(MU)} μ in [{MU[0]}, {MU[-1]}] eV", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-wannier-") as tmp:
        files = comparison_files(Path(tmp))
        for label, tb in files.items():
            run_qgtflow(tb, 4, True, 1)  # warm-up: kernels compiled / cache loaded
            for terms, position in (("internal", False), ("full", True)):
                for size in sizes:
                    tq, tp, ds, peer = [], [], None, None
                    for _ in range(reps):  # interleaved
                        t, ds = run_qgtflow(tb, size, position, 1)
                        tq += t
                        t, peer = run_peer(python, tb, size, position, 1)
                        tp += t
                    nk = size**3
                    row = {"file": label, "terms": terms, "grid": f"{size}^3", "qgtflow_kps": nk / min(tq),
                           "peer_kps": nk / min(tp)}
                    for q, (response, peer_name, _) in QUANTITIES.items():
                        row[q] = agreement(as_peer_layout(response, ds), peer[peer_name])
                    rows.append(row)
                    print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                          flush=True)
            for fields, core in (("four quantities", KERNEL_CORE), ("all core fields", CORE_FIELDS)):
                t = kernel_cost(tb, kernel_points, reps, core)
                print(f"kernel file={label} fields={fields} points={kernel_points} without position operator "
                      f"{kernel_points / t['off']:.4g} k/s, with {kernel_points / t['on']:.4g} k/s: external terms "
                      f"cost x{t['on'] / t['off']:.3g}", flush=True)
    return rows


def compare_real(python: Path, data: Path, sizes: list[int], reps: int) -> list[dict]:
    """WannierBerri's real test models (``wannierberri_data.py``) at qgtflow's DEFAULT settings (full position
    operator; the peer with its external terms): per file and N × N × N grid, the agreement of each quantity, the
    largest |value| of each code over the window (GaAs: AHC and BCD vanish by symmetry, T_d with time reversal;
    the largest |value| is then the symmetry-breaking noise of the file and grid) and k-points per second (CPU
    time, one thread, best of ``reps`` interleaved)."""
    import logging

    from benchmarks.wannierberri_data import REAL_FILES, mu_grid, prepare

    logging.getLogger("qgtflow").setLevel(logging.ERROR)
    files = prepare(data, python)
    print(f"# bench_wannier real files {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: "
          f"{', '.join(files) or 'none'} (of {', '.join(REAL_FILES)}), T = {T_KELVIN} K, CPU time, best of {reps}",
          flush=True)
    rows = []
    for label, tb in files.items():
        mu = mu_grid(label)
        run_qgtflow(tb, 4, None, 1, mu)  # warm-up: kernels compiled / cache loaded
        for size in sizes:
            tq, tp, ds, peer = [], [], None, None
            for _ in range(reps):  # interleaved
                t, ds = run_qgtflow(tb, size, None, 1, mu)
                tq += t
                t, peer = run_peer(python, tb, size, True, 1, mu)
                tp += t
            row = {"file": label, "bands": REAL_FILES[label][0], "grid": f"{size}^3",
                   "qgtflow_kps": size**3 / min(tq), "peer_kps": size**3 / min(tp), "ratio": min(tp) / min(tq)}
            for q, (response, peer_name, _) in QUANTITIES.items():
                q_val, p_val = as_peer_layout(response, ds), peer[peer_name]
                row[q] = agreement(q_val, p_val, mu)
                row[f"max|{q}|"] = f"{np.max(np.abs(q_val)):.3g}/{np.max(np.abs(p_val)):.3g}"
            rows.append(row)
            print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bands", type=int, default=40)
    ap.add_argument("--nrpts", type=int, default=125)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--peer-venv", type=Path, help="venv with WannierBerri: also compare with it (see the docstring)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16], help="N of the N^3 comparison grids")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--kernel-points", type=int, default=4000)
    ap.add_argument("--skip-read", action="store_true", help="skip the large-file read benchmark")
    ap.add_argument("--position-cost", type=int, metavar="N", help="CPU cost of the position operator on N^3 k "
                    "(Fe-like with A(R), all geometry fields; see position_cost) instead of the read benchmark")
    ap.add_argument("--real", type=Path, metavar="DATA", help="WannierBerri's tests/data directory: compare on its "
                    "GaAs, Te, Fe and Mn3Sn models instead of the generated files (needs --peer-venv)")
    ap.add_argument("--kernel-paths", type=Path, nargs="*", metavar="TB", help="ms per k of the geometry kernel on "
                    "these _tb.dat files (and --generated sizes) with the position operator off / per-k / automatic")
    ap.add_argument("--generated", type=int, nargs="*", default=[], metavar="BANDS",
                    help="with --kernel-paths: also generated files with A(R) of these band counts")
    args = ap.parse_args()
    if args.kernel_paths is not None:
        kernel_paths(args.kernel_paths, args.kernel_points, args.repeat, args.generated)
        return
    if args.position_cost:
        position_cost(args.position_cost, args.repeat)
        return
    if args.peer_venv and args.real:
        from benchmarks.bench_peer import peer_python

        python = peer_python(args.peer_venv)
        if python is not None:
            compare_real(python, args.real, args.sizes, args.repeat)
    elif args.peer_venv:
        from benchmarks.bench_peer import peer_python

        python = peer_python(args.peer_venv)
        if python is not None:
            compare(python, args.sizes, args.repeat, args.kernel_points)
    if args.skip_read:
        return
    from qgtflow.models.wannier import read_tb

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench_tb.dat"
        if not path.exists():
            write_random_tb(path, args.bands, args.nrpts)
        size = path.stat().st_size
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        model = read_tb(path)
        dt = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        arrays = model.matrices.nbytes
        print(f"_tb.dat {size / 1e6:.0f} MB, {model.nbands} bands, {len(model.cells)} R: read in {dt:.2f} s, "
              f"peak RSS +{peak / 1024:.0f} MB (file text {size / 1e6:.0f} MB, hopping arrays {arrays / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
