"""Why GaAs's symmetry-forbidden AHC and Berry-curvature dipole depend on ``degeneracy_threshold`` (issue 18).

WannierBerri's GaAs_tb.dat (16 spinor sp3 bands; T_d with time reversal forbids every component of σ_AHE and
of the dipole D), read with the position operator off and ``ws_distance_tol: 1e-3`` (the set-up that passes the
T_d check at ``symmetry.tolerance`` 0.1, ``real_symmetry_check.py``), on the full Γ-centred N³ grid. The sums are
done here directly on the geometry fields (``compute_fields``; Σ_k over the grid / N³, f0 at k_BT = 0.3 eV, μ
6.5, 7.2, 7.9 eV, model units eV, Å): AHC = max|Σ_n f_n Ω_n|, BCD = max|Σ_n f_n ∂Ω_n| (the sea form the
periodic default uses), Drude scale = max|Σ_n (−f') v v|, largest entries over components and μ.

Printed: (1) the residues vs degeneracy_threshold and N; (2) at the default threshold, the k-points that dominate,
the ungrouped splittings there, their time-reversal partner −k, and r = δ / (s h) of the ungrouped adjacent pairs
(δ their splitting, s = 2 ‖traceless part of the pair's 2×2 velocity block‖ the rate at which a step moves them
apart, h the grid step): r ≪ 1 means the pair is degenerate at the grid's resolution — its pointwise pair term
(f_n − f_m) Ω ≈ f' Im(v_nm v_mn) / δ samples the centre of a 1/|q| singularity, ~1/r times the average over the
grid cell around it. Run: ``.venv/bin/python benchmarks/gaas_degeneracy_residue.py DATA [N ...]`` (DATA: the
peer's ``tests/data``, see ``wannierberri_data.py``).

Measured (2026-12-07, one thread; AHC and BCD as fractions of the Drude scale (4.5–5.2 eV Å² over N); the
convergence stage's floor cannot judge these (every component is forbidden, so its scale is the residue itself):

    N    1e-6           1e-5           1e-4 (default)   1e-3            1e-2            degeneracy_threshold
    8    0.80 / 3.3e4   0.80 / 3.3e4   0.045 / 1.2e3    5.5e-4 / 9.8    2.0e-5 / 0.017  AHC / BCD
    10   0.44 / 6.4e4   0.44 / 6.4e4   0.041 / 1.5e3    4.2e-4 / 5.2    1.9e-5 / 0.022
    12   0.31 / 4.9e4   0.31 / 4.9e4   0.030 / 1.8e3    3.4e-4 / 2.3    1.4e-5 / 0.025

What dominates at the default (N = 8): points on the Γ–X (Δ) line, e.g. k = (0, 1/8, 1/8) in reduced
coordinates, where the T_d double group makes every band doubly degenerate; the file splits those pairs by
1.1e-4–2e-4 eV there (1.2e-3 at (0, 1/4, 1/4): the splitting grows along the line), just above the threshold.
Each such point carries a pair term of ~500 (AHC, same units; all other points ≲ 6). k and −k are grouped
identically (same ungrouped pairs), but their terms cancel only to ~11 % (551 vs −492) because the splitting
itself differs between the images by that much: the file breaks T_d (and θ) at the 1e-4 eV level, and a term
∝ 1/δ magnifies it. At 1e-3 the Γ–X pairs at 1/8 are grouped and the next line points (splitting 1.2e-3 at 1/4;
Γ–L at (1/8, 1/8, 1/8), 2e-3) dominate, an order of magnitude smaller; at 1e-2 nothing on the lines is left.
These pairs have r < 0.01 (r of all ungrouped pairs is a continuum: the file's smallest symmetry-line splittings
at r ~ 1e-6, genuine Dresselhaus splittings at r ~ 0.1–10; the Fe-like test model has 4 pairs of 2560 below
0.01 at N = 8, at 4 of its 512 k-points).

The geometry stage's resolution warning (``fields.unresolved_fraction``, r < 0.01 on ≤ 2048 sampled k-points,
fires above 5 % of them) at the default: N = 8, 17 % of the k-points, suggests 3.8e-3 (then AHC 3.1e-5, BCD 0.017
of Drude, silent); N = 12, 5.1 %, suggests 9.2e-4 (then 3.4e-4 / 2.3, silent: pairs at r 0.01–0.1 remain, the
file's T_d breaking reaches ~5e-3 eV, C3 moves its energies by 2.2–2.5e-4 of the bandwidth). Fe-like test model:
0.8 % (N = 8), 0.1 % (16), 0 (24) — silent. The symmetrised wedge (``symmetry:`` + ``kgrid.symmetry_reduce``)
gives the zeros exactly (real_symmetry_check.py); the full grid reports the file's breaking, magnified.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wannierberri_data import CACHE, _untar  # noqa: E402

THRESHOLDS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
MUS, KT = np.array([6.5, 7.2, 7.9]), 0.3
CORE = ("energy", "velocity", "berry_curvature", "berry_curvature_dipole_density")


def gaas_model(tb: Path):
    from qgtflow.study import load_study

    return load_study({"model": {"name": "gaas", "wannier90": {"tb": str(tb), "position_operator": False,
                                                                "ws_distance_tol": 1e-3}},
                       "units": "natural", "kgrid": {"sizes": [4]}, "mu": [7.2], "temperature": [KT],
                       "responses": ["sigma_ahe"]}).model


def sums(f: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-k AHC and BCD terms at μ = 7.2 (N, components), and the (AHC, BCD, Drude) residues over μ."""
    from qgtflow.reduce.occupation import fermi

    E, n_k = f["energy"], f["energy"].shape[0]
    out = []
    for mu in MUS:
        occ = fermi(E, mu, KT)
        a = np.einsum("kn,kn...->k...", occ, f["berry_curvature"]).reshape(n_k, -1)
        b = np.einsum("kn,kn...->k...", occ, f["berry_curvature_dipole_density"]).reshape(n_k, -1)
        fp = occ * (1 - occ) / KT
        drude = np.abs(np.einsum("kn,kni,knj->ij", fp, f["velocity"], f["velocity"])).max() / n_k
        out.append((np.abs(a.sum(0)).max() / n_k, np.abs(b.sum(0)).max() / n_k, drude, a, b))
    worst = np.array([o[:3] for o in out]).max(axis=0)
    return out[1][3], out[1][4], worst


def pair_ratios(model, k: np.ndarray, h: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(δ, r) of the adjacent pairs (N, n − 1) ungrouped at ``threshold`` (others NaN)."""
    Hu = model.unique_derivatives(k, order=1)
    E, U = np.linalg.eigh(Hu[:, 0])
    V = np.einsum("kin,kaij,kjm->kanm", U.conj(), Hu[:, 1:1 + model.dim], U)
    lo, hi = np.arange(E.shape[1] - 1), np.arange(1, E.shape[1])
    half = (V[:, :, lo, lo].real - V[:, :, hi, hi].real) / 2
    s = 2 * np.sqrt((half ** 2 + np.abs(V[:, :, lo, hi]) ** 2).sum(axis=1))
    d = np.diff(E, axis=1)
    keep = d >= threshold
    return np.where(keep, d, np.nan), np.where(keep, d / np.maximum(s * h, 1e-300), np.nan)


def residues(model, N: int, default: float = 1e-4) -> None:
    from qgtflow.geometry.fields import compute_fields
    from qgtflow.kgrid import make_grid

    grid = make_grid(model, N)
    k, frac = grid.points(), grid.fractions()
    for thr in THRESHOLDS:
        start = time.perf_counter()
        f = compute_fields(model, k, thr, core=CORE)
        a, b, (ahc, bcd, drude) = sums(f)
        print(f"N={N:3d} threshold {thr:6.0e}: AHC {ahc:.3g} ({ahc / drude:.2g} of Drude {drude:.3g}), "
              f"BCD {bcd:.3g} ({bcd / drude:.2g}) [{time.perf_counter() - start:.0f} s]", flush=True)
        if thr != default:
            continue
        d, r = pair_ratios(model, k, grid.spacing, thr)
        per_a = np.abs(a).max(axis=1)
        minus = np.array([np.argmin(np.abs((frac - np.mod(-x, 1.0) + 0.5) % 1 - 0.5).sum(axis=1)) for x in frac])
        print(f"  Σ_k |per-k AHC| {per_a.sum():.3g} vs |Σ_k| {np.abs(a.sum(0)).max():.3g}; dominant k (μ = 7.2):")
        for i in np.argsort(per_a)[::-1][:6]:
            small = np.sort(d[i][np.isfinite(d[i])])[:3]
            print(f"    k = {np.round(frac[i], 3)}: AHC term {per_a[i]:.3g}, −k {np.abs(a[minus[i]]).max():.3g}, "
                  f"k + (−k) {np.abs(a[i] + a[minus[i]]).max():.3g}; smallest ungrouped splittings {small}, "
                  f"min r {np.nanmin(r[i]):.2g}")
        fin = r[np.isfinite(r)]
        print("  r of the ungrouped pairs, counts per decade 1e-6 … 1e2:",
              np.histogram(np.log10(fin), bins=np.arange(-6, 3))[0].tolist(),
              f"; k-points with r < 0.01: {int((np.nan_to_num(r, nan=1.0) < 0.01).any(axis=1).sum())} of {len(k)}")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[-2])
    tb = CACHE / "GaAs" / "GaAs_tb.dat"
    if not tb.exists() and _untar(Path(sys.argv[1]) / "GaAs_Wannier90" / "GaAs_tb.dat.tar.gz", "GaAs_tb.dat",
                                  tb) is None:
        sys.exit(f"GaAs: not found under {sys.argv[1]}")
    model = gaas_model(tb)
    for N in [int(x) for x in sys.argv[2:]] or [8]:
        residues(model, N)


if __name__ == "__main__":
    main()
