"""qgtflow beside WannierBerri (the peer): same _tb.dat model, grid and quantity, one thread each.

    .venv/bin/python benchmarks/bench_peer.py [--sizes 100 200] [--repeat 3] [--models haldane tilted w16 w64]
                                              [--quantities ahc bcd drude nld qm all4] [--peer-venv DIR]
                                              [--kernel-points 0]

Both codes read the same Wannier90 ``_tb.dat`` files written here (orbitals at the origin, so tight-binding
conventions I and II coincide): the Haldane model, a tilted-Dirac square-lattice model, and random 16- and
64-band hopping sets, all 2D (R_z = 0; WannierBerri on N × N × 1). WannierBerri is an optional extra,
installed on first use into its own venv (``--peer-venv``, default ``benchmarks/.peer-venv``; never a
qgtflow dependency); without it (no network) the peer columns are skipped with a message.

Quantities (``QUANTITIES``; one run of each code per ``--quantities`` entry): σ_AHE (``ahc``), Drude (``drude``),
Berry-curvature dipole (``bcd``), nonlinear Drude (``nld``), each alone or ``all4`` in one run; σ^qm (``qm``)
has no WannierBerri counterpart (qgtflow's rate only). Timed end to end inside each process in CPU seconds
(``time.process_time``: model file read → result array; imports, interpreter start and a first warm-up run
excluded; qgtflow's numba cache warm): ``qgtflow.evaluate(..., n_workers=0)`` as a user calls it (no workdir: the
one pass of ``qgtflow.stages.fused``, no store written) against ``wannierberri.run(..., parallel=False)`` on
N × N × 1 (its FFT grid the divisor of N nearest 32, ``peer_fft``, so both sample the same N² points; its k/s
from the grid it actually ran). The two codes are run alternately, ``--repeat`` times each; printed:
k-points per second of each (best run) and its CPU ms, the ratio qgtflow / peer, the agreement of each quantity
max|q − p| / max|p| over the μ grid less 8 k_BT at each end (the peer's Fermi-sea results at T: its T = 0 sums
convolved with −∂f/∂E on the μ grid, ``dataSmooth``; per volume × the cell height → the 2D sheet values; in the
gap of the Haldane model both give σ_xy = e²/h to 1e-6), and the bytes on disk per k-point of qgtflow's
geometry store (an untimed ``evaluate`` with a workdir, which keeps it). Then (``--kernel-points`` > 0) the geometry kernel alone beside a bare
batched ``numpy.linalg.eigh`` of the same H(k) (ratio of process CPU times, same run), with the eigenbasis per k
in numba ("per-k", the path before issue 17 item 4) and chosen by band count ("auto", ``geometry/batched.py``).

2026-12-06 22:26–23:00 UTC, loaded 2-core VM (load average 4–10), ``--repeat 3 --kernel-points 0 --peer-venv
/work/peer-venv``, qgtflow / peer k/s (CPU time, interleaved in one run), agreement AHC / Drude / BCD / NLD:
``--models tilted --quantities ahc all4 --sizes 200``: σ_AHE 8.9e4 / 4.4e3 = 20× (2.4e-3); all four 6.9e4 / 422 =
164× (2.4e-3 / 6.6e-3 / 2.1e-2 / 2.0e-2). ``--models w16 w64 --quantities ahc all4 --sizes 50``: w16 σ_AHE 5.5e3 /
378 = 15× (0.16), all four 2.6e3 / 35 = 74× (0.16 / 4.8e-2 / 0.84 / 0.76: a 50² grid of a dense spectrum with the
peer's T = 0 sums smoothed on the 10 meV μ grid); w64 σ_AHE 703 / 56 = 13× (0.50); w64 all four did not finish by
the session's deadline.

2026-12-07 00:56–01:40 UTC (one-pass evaluate, peer FFT grid dividing N; load average 5–9), ``--models haldane tilted
--quantities ahc --sizes 200 400 800 --repeat 3 --kernel-points 0``: Haldane σ_AHE 152× / 296× / 331× (qgtflow 80 /
155 / 598 ms CPU), tilted 179× / 227× / 335× (53 / 168 / 488 ms); before (main e6f604c, stores written): Haldane 25× / 52×.

2026-12-07 02:52–03:46 UTC (one pass; load average 7–14, one process per model side by side), ``--repeat 2
--quantities bcd nld all4 --sizes 200``: Haldane BCD 614×, nonlinear Drude 340×, all four 997× (qgtflow 96 / 95 /
102 ms CPU); tilted 541× / 323× / 863× (87 / 84 / 93 ms). ``--repeat 1 --quantities all4 --sizes 400``: Haldane
838×, tilted 734× (495 / 450 ms). The peer: BCD 6.8e2 / 8.5e2, nonlinear Drude 1.2e3 / 1.5e3, all four 3.9e2 / 5.0e2
k/s (Haldane / tilted).
2026-12-07 02:51–03:47 UTC (load average 4–12), ``--models w16 w64 --quantities ahc all4 --sizes 50 --repeat 2
--kernel-points 0``, main 388e882 → the model hash once per evaluate: w16 σ_AHE 20× → 21× (1.21e4 → 1.25e4 k/s, peer
604–610), all four 85× → 92× (4956 → 5419, peer 58–59); w64 σ_AHE 8.6× → 8.8× (865 → 981, peer 100–111); agreement
3.9e-2 (AHC), 7.6e-3 / 0.29 / 5.9e-2 (Drude / BCD / NLD). w64 all four (after only): 156 / 10.5 k/s = 15× (0.18 / 5.8e-3 / 0.99 / 0.14).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import logging  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: its tests' file writers
from tests.wannier_files import write_tb  # noqa: E402

HERE = Path(__file__).resolve().parent
C_ANGSTROM = 10.0  # cell height of the 2D models (only converts the peer's S/m to a sheet conductance)
MU = np.linspace(-1.5, 1.5, 301)  # eV; fine, as the peer smooths its T = 0 result on this grid
T_KELVIN = 300.0
KB_EV = 8.617333262e-5  # k_B in eV/K: only converts T for the peer's smoothing margin (not a qgtflow constant)
PEER_SMOOTH_KT = 8  # the peer's Fermi–Dirac smoother truncates at ±8 k_BT: μ closer to the window's ends are
# not compared (its convolution there lacks the states beyond the μ grid)

TAU_S = 1e-15  # the peer's τ unit (1 fs): its Drude and nonlinear Drude are per fs^power; qgtflow is given τ = 1 fs

# quantity → (qgtflow response, the peer's calculator or None, the peer's components of the 2D response). The peer
# works in 3D on N × N × 1 (per volume: S/m, 1, A/V²); × the cell height → qgtflow's 2D sheet values (S, m, A m/V²).
# AHC: the peer gives O_δ with σ_ab = ε_abδ O_δ, so σ_xy = O_z; both −e²/ħ ∫[dk] Ω f in its sign convention.
# BCD: D_ab = ∫ f ∂_a Ω_b in both; in 2D only Ω_z: qgtflow's (i, pseudovector = z) ↔ the peer's [:, :2, 2].
# σ^qm (001 Eq. 13, band-normalized metric 𝒢): WannierBerri 26.10 has no BCP calculator (only the plain quantum
# metric and its dipole), so its row has qgtflow's rate only.
QUANTITIES = {
    "ahc": ("sigma_ahe", "AHC", (2,)),
    "drude": ("sigma_drude", "Ohmic_FermiSurf", (slice(0, 2), slice(0, 2))),
    "bcd": ("berry_curvature_dipole", "BerryDipole_FermiSea", (slice(0, 2), slice(2, 3))),
    "nld": ("sigma_nonlinear_drude", "NLDrude_FermiSea", (slice(0, 2),) * 3),
    "qm": ("sigma_qm", None, None),
}
# what one run computes: a single quantity, or AHC + Drude + BCD + nonlinear Drude together (one pass each code)
QUANTITY_SETS = {**{q: (q,) for q in QUANTITIES}, "all4": ("ahc", "drude", "bcd", "nld")}
NEEDS_TAU = {"sigma_drude", "sigma_nonlinear_drude"}


def qgtflow_layout(response: str, ds) -> np.ndarray:
    """qgtflow's 2D response at the first T in the peer's component layout (μ, components...)."""
    da = ds[response].isel(T=0)
    if response == "sigma_ahe":
        return da.sel(i="x", j="y").values
    return da.transpose("mu", ...).values


def write_2d_tb(path: Path, lattice2d, blocks: dict[tuple[int, int], np.ndarray]) -> Path:
    """A 2D model as a Wannier90 ``_tb.dat`` (Å, eV; R_z = 0, degeneracies 1, all orbitals at the origin)."""
    lat = np.zeros((3, 3))
    lat[:2, :2] = lattice2d
    lat[2, 2] = C_ANGSTROM
    return write_tb(path, lat, {(R[0], R[1], 0): blocks[R] for R in sorted(blocks)},
                    header="written by qgtflow benchmarks/bench_peer.py", decimals=14)


def _hermitian_partners(blocks):
    for R in list(blocks):
        mR = (-R[0], -R[1])
        if mR not in blocks:
            blocks[mR] = blocks[R].conj().T
    blocks[(0, 0)] = 0.5 * (blocks[(0, 0)] + blocks[(0, 0)].conj().T)
    return blocks


def haldane_blocks(t1=-1.0, t2=0.15, phi=np.pi / 2, delta=0.2):
    """Haldane model (A, B on one site; nearest neighbours by R = 0, -a1, -a2; next-nearest with phases)."""
    blocks = {R: np.zeros((2, 2), complex) for R in [(0, 0), (1, 0), (0, 1), (1, 1), (-1, 0), (0, -1), (-1, -1)]}
    blocks[(0, 0)][0, 0], blocks[(0, 0)][1, 1] = delta, -delta
    for R in [(0, 0), (-1, 0), (0, -1)]:
        blocks[R][0, 1] += t1
    for R in [(0, 0), (1, 0), (0, 1)]:
        blocks[R][1, 0] += t1
    for R, s in [((1, 0), 1), ((0, -1), 1), ((-1, 1), 1)]:
        blocks.setdefault(R, np.zeros((2, 2), complex))
        blocks[R][0, 0] += t2 * np.exp(1j * s * phi)
        blocks[R][1, 1] += t2 * np.exp(-1j * s * phi)
        mR = (-R[0], -R[1])
        blocks.setdefault(mR, np.zeros((2, 2), complex))
        blocks[mR][0, 0] += t2 * np.exp(-1j * s * phi)
        blocks[mR][1, 1] += t2 * np.exp(1j * s * phi)
    return blocks, np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]]) * 2.46


def tilted_dirac_blocks(v=1.0, tilt=0.3, m=0.1, b=0.5):
    """Tilted massive Dirac on a square lattice: v sin kx σx + v sin ky σy + (m + 2b(2 − cos kx − cos ky)) σz
    + tilt·v sin kx σ0 (one Dirac point at Γ)."""
    s0, sx, sy, sz = np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])
    blocks = {(0, 0): (m + 4 * b) * sz + 0j}
    blocks[(1, 0)] = v / 2j * sx - b * sz + tilt * v / 2j * s0
    blocks[(0, 1)] = v / 2j * sy - b * sz
    blocks[(-1, 0)] = blocks[(1, 0)].conj().T
    blocks[(0, -1)] = blocks[(0, 1)].conj().T
    return blocks, np.eye(2) * 3.0


def random_blocks(n, seed=0, reach=2, scale=0.3):
    """Random Hermitian hopping set of ``n`` bands with |R_i| ≤ reach, decaying with |R|."""
    rng = np.random.default_rng(seed)
    blocks = {}
    for a in range(-reach, reach + 1):
        for b_ in range(-reach, reach + 1):
            if (a, b_) > (0, 0) or (a, b_) == (0, 0):
                blocks[(a, b_)] = scale * np.exp(-np.hypot(a, b_)) * (rng.normal(size=(n, n))
                                                                       + 1j * rng.normal(size=(n, n)))
    blocks[(0, 0)] += np.diag(np.linspace(-2, 2, n))
    return _hermitian_partners(blocks), np.eye(2) * 3.0


MODELS = {"haldane": haldane_blocks, "tilted": tilted_dirac_blocks,
          "w16": lambda: random_blocks(16), "w64": lambda: random_blocks(64)}


# ---------------------------------------------------------------------------------------------- the peer

PEER_SCRIPT = r"""
import json, os, sys, tempfile, time
import numpy as np
import wannierberri as wb
from wannierberri import calculators
from wannierberri.smoother import FermiDiracSmoother

tb, size, mu, T, names, reps, fft = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4]), \
    sys.argv[5].split(","), int(sys.argv[6]), int(sys.argv[7])
mu = np.array(mu)
os.chdir(tempfile.mkdtemp(prefix="bench-peer-"))

def once():
    t0 = time.process_time()  # CPU seconds of this process (one thread): robust to the shared machine's load
    system = wb.system.System_R.from_tb_file(tb_file=tb, berry=True)
    grid = wb.Grid(system, NK=(size, size, 1), NKFFT=(fft, fft, 1), use_symmetry=False)
    calcs = {name: getattr(calculators.static, name)(Efermi=mu, smoother=FermiDiracSmoother(mu, T),
                                                      print_comment=False) for name in names}
    result = wb.run(system, grid=grid, calculators=calcs, parallel=False, use_irred_kpt=False, symmetrize=False,
                    print_progress_step_time=1e9, fout_name="peer")
    t = time.process_time() - t0
    return t, {name: result.results[name].dataSmooth.tolist() for name in names}, int(np.prod(grid.dense))

times = []
for r in range(reps):
    t, out, nk = once()
    times.append(t)
print("PEER_JSON " + json.dumps({"times": times, "results": out, "n_kpoints": nk}))
"""


def peer_python(venv: Path) -> Path | None:
    """The peer venv's python (created, WannierBerri installed, on first use); None with a message if impossible."""
    python = venv / "bin" / "python"
    probe = [python, "-c", "import wannierberri, numba, fortio"]  # fortio: the peer's reader of Wannier90 .chk files
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing WannierBerri into {venv} (optional extra, not a qgtflow dependency) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "wannierberri", "numba", "fortio"], check=True,
                       capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"SKIP peer: cannot install WannierBerri ({type(exc).__name__}); qgtflow columns only")
        return None
    return python


def peer_fft(size: int) -> int:
    """The peer's FFT grid per axis: the divisor of ``size`` nearest 32 (its NK is NKFFT × round(NK / NKFFT): with
    NKFFT = 32 a 200² request ran on 192², 8 % fewer points than qgtflow's), else min(size, 32)."""
    divisors = [d for d in range(16, 65) if size % d == 0]
    return min(divisors, key=lambda d: (abs(d - 32), d)) if divisors else min(size, 32)


def run_peer(python: Path, tb: Path, size: int, names: list[str], reps: int):
    """(CPU times, results, the peer's k-point count: its actual grid, NKdiv × NKFFT per axis)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([python, "-c", PEER_SCRIPT, str(tb), str(size), json.dumps(MU.tolist()), str(T_KELVIN),
                          ",".join(names), str(reps), str(peer_fft(size))], capture_output=True, text=True, env=env)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PEER_JSON ")]
    if not line:
        raise RuntimeError(f"peer failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    data = json.loads(line[0][len("PEER_JSON "):])
    return data["times"], {k: np.asarray(v) for k, v in data["results"].items()}, data["n_kpoints"]


# ---------------------------------------------------------------------------------------------- qgtflow

STORE_FIELDS = {}  # e.g. {"store_fields": "required"} (--store-fields)


def qgtflow_study(tb: Path, responses: list[str]) -> dict:
    return {**STORE_FIELDS, "name": "bench_peer", "model": {"name": tb.stem, "wannier90": {"tb": str(tb), "dim": 2}},
            "units": {"length": "angstrom"}, "kgrid": {"sizes": [8]},
            "mu": {"start": float(MU[0]), "stop": float(MU[-1]), "num": len(MU)}, "temperature": [T_KELVIN],
            "responses": responses, **({"tau": TAU_S} if NEEDS_TAU & set(responses) else {})}


def run_qgtflow(tb: Path, size: int, responses: list[str], reps: int):
    """CPU times of ``evaluate`` as a user calls it (no workdir: one pass, no store written) and its result."""
    import qgtflow

    times, ds = [], None
    for _ in range(reps):
        t0 = time.process_time()  # CPU seconds of this process (n_workers=0: no worker processes)
        ds = qgtflow.evaluate(qgtflow_study(tb, responses), size=size, n_workers=0)
        ds = ds.load()
        times.append(time.process_time() - t0)
    return times, ds


def geometry_bytes_per_k(tb: Path, size: int, responses: list[str]) -> float:
    """Bytes on disk per k-point of the geometry store an ``evaluate`` with a workdir keeps (untimed run)."""
    import qgtflow

    with tempfile.TemporaryDirectory(prefix="bench-peer-q-") as work:
        qgtflow.evaluate(qgtflow_study(tb, responses), size=size, n_workers=0, workdir=work)
        geometry = next(Path(work).glob("*_geometry.zarr"))
        return sum(f.stat().st_size for f in geometry.rglob("*") if f.is_file()) / (size * size)


def agreement(q: np.ndarray, p: np.ndarray) -> float:
    """max|q − p| / max|p| over μ less PEER_SMOOTH_KT k_BT at each end (all components)."""
    inner = np.abs(MU - MU.mean()) <= 0.5 * np.ptp(MU) - PEER_SMOOTH_KT * KB_EV * T_KELVIN
    return float(np.max(np.abs(q - p)[inner]) / max(np.max(np.abs(p[inner])), 1e-300))


AHC_CORE = ("energy", "velocity", "berry_curvature")  # what sigma_ahe reads


EIGENBASIS = {"per-k": False, "batched": True, "auto": None}  # compute_fields(batched=...): forced or by band count


def kernel_vs_eigh(tb: Path, n_points: int, reps: int, paths=("auto",)):
    """Geometry kernel alone (all core fields; only AHC's), per eigenbasis path (``EIGENBASIS``) / bare batched
    numpy.linalg.eigh of the same H(k): best process-CPU times of interleaved repeats, same run (one thread)."""
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.study import load_study

    model = load_study(qgtflow_study(tb, ["sigma_ahe"])).model
    k = np.random.default_rng(1).uniform(-np.pi, np.pi, (n_points, model.dim)) / 3.0
    H = model.unique_derivatives(k)[:, 0].copy()
    variants = {f"{fields}/{path}": (core, EIGENBASIS[path])
                for fields, core in [("all", None), ("ahc", AHC_CORE)] for path in paths}
    for core, batched in variants.values():
        compute_fields(model, k[:2], core=core, batched=batched)  # compiled / loaded
    times = {name: [] for name in [*variants, "eigh"]}
    for _ in range(reps):  # interleaved
        for name, (core, batched) in variants.items():
            t0 = time.process_time()
            compute_fields(model, k, reuse_buffers=True, core=core, batched=batched)
            times[name].append(time.process_time() - t0)
        t0 = time.process_time()
        np.linalg.eigh(H)
        times["eigh"].append(time.process_time() - t0)
    return {name: min(t) for name, t in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--quantities", nargs="+", default=["ahc"], choices=list(QUANTITY_SETS),
                    help="one run per entry; all4 = AHC, Drude, BCD and nonlinear Drude in one run of each code")
    ap.add_argument("--peer-venv", type=Path, default=HERE / ".peer-venv")
    ap.add_argument("--kernel-points", type=int, default=20000, help="0: skip the kernel-versus-eigh figures")
    ap.add_argument("--store-fields", choices=["all", "required"], help="qgtflow's store_fields (default: the schema's)")
    args = ap.parse_args(argv)
    if args.store_fields:
        STORE_FIELDS["store_fields"] = args.store_fields
    logging.getLogger("qgtflow").setLevel(logging.ERROR)  # the sampling warnings of coarse grids
    import platform

    print(f"# bench_peer {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
          f"({os.cpu_count()} cores visible, one thread per code), best of {args.repeat}, interleaved, "
          f"store_fields={args.store_fields or 'default'}")
    python = peer_python(args.peer_venv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    rows = []
    for name in args.models:
        blocks, lat = MODELS[name]()
        tb = write_2d_tb(workdir / f"{name}_tb.dat", lat, blocks)
        nb = next(iter(blocks.values())).shape[0]
        for qset in args.quantities:
            quantities = QUANTITY_SETS[qset]
            responses = [QUANTITIES[q][0] for q in quantities]
            peer_names = [QUANTITIES[q][1] for q in quantities if QUANTITIES[q][1]]
            run_qgtflow(tb, 8, responses, 1)  # warm-up: kernels compiled / cache loaded
            for size in args.sizes:
                tq, tp, dsq, resp, peer_nk = [], [], None, None, None
                for _ in range(args.repeat):  # interleaved: one run of each, repeated
                    t, dsq = run_qgtflow(tb, size, responses, 1)
                    tq += t
                    if python is not None and peer_names:
                        t, resp, peer_nk = run_peer(python, tb, size, peer_names, 1)
                        tp += t
                nk = size * size
                row = {"model": name, "bands": nb, "quantity": qset, "grid": f"{size}²",
                       "qgtflow_kps": nk / min(tq), "qgtflow_ms": 1e3 * min(tq),
                       "geometry_bytes_per_k": geometry_bytes_per_k(tb, size, responses)}
                if tp:
                    peer_kps = peer_nk / min(tp)  # its actual grid (peer_fft)
                    row.update(peer_kps=peer_kps, peer_ms=1e3 * min(tp), peer_kpoints=peer_nk,
                               ratio=row["qgtflow_kps"] / peer_kps)
                    for q in quantities:
                        response, peer_name, comp = QUANTITIES[q]
                        if peer_name:
                            peer_2d = resp[peer_name][(slice(None), *comp)] * C_ANGSTROM * 1e-10  # per area
                            row[f"agreement_{q}"] = agreement(qgtflow_layout(response, dsq), peer_2d)
                rows.append(row)
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
        if args.kernel_points <= 0:
            continue
        t = kernel_vs_eigh(tb, args.kernel_points, args.repeat, ("per-k", "auto"))
        print(f"kernel model={name} bands={nb} points={args.kernel_points} "
              + " ".join(f"{v}/eigh={t[v] / t['eigh']:.3g}" for v in t if v != "eigh")
              + f" qgtflow_kps(ahc/per-k)={args.kernel_points / t['ahc/per-k']:.4g}"
              + f" qgtflow_kps(ahc/auto)={args.kernel_points / t['ahc/auto']:.4g}"
              + f" (eigh {args.kernel_points / t['eigh']:.4g} k/s; H(k) and all derivatives included)", flush=True)
    return rows


if __name__ == "__main__":
    main()
