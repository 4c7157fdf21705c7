"""Skew-scattering kernel (qgtflow.reduce.skew): pair throughput, cost vs Fermi-contour size, factorised vs
pairs, 1 vs 2 Dask workers. Prints figures (not a test). Keep it short: the machine is shared.

    /work/main/.venv/bin/python benchmarks/bench_skew.py
"""

from __future__ import annotations

import os
import time

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np

from qgtflow.kgrid import make_grid
from qgtflow.models.builtin import bilayer_graphene_gapped
from qgtflow.reduce import skew
from qgtflow.reduce.tetrahedron import delta_weights

NI, V0, MU = 1e-5, 10.0, 0.065  # 004 Fig. 1 in nm / eV units


def random_shell(n, nband=2, d=2, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, nband)) + 1j * rng.normal(size=(n, nband))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return skew._Shell(u, rng.random(n), rng.normal(size=(n, d)), rng.normal(size=(n, d, d)))


def bench_pair_rate():
    skew._pair_sums(random_shell(16), tile=8)  # compile
    for n in (2000, 4000):
        sh = random_shell(n)
        t0 = time.perf_counter()
        skew._pair_sums(sh, tile=4096)
        dt = time.perf_counter() - t0
        print(f"pair kernel: N_F = {n:5d}: {n * n / dt / 1e6:7.1f} M pairs/s ({dt:.3f} s, 1 thread, in-process)")


def bench_grids():
    model = bilayer_graphene_gapped()
    sub = model.sectors[0]
    print("\nbilayer graphene, one valley, T = 0 (one shell at mu; exact d/dE of the traces):")
    print(f"{'N':>6} {'N_F(mu)':>8} {'factorised s':>13} {'pairs s':>9} {'pairs/fact':>10}  S1_yyy (eV^2 nm)")
    rows = []
    for N in (200, 400, 800, 1200):
        grid = make_grid(sub, N)
        eb = skew.band_energies(sub, grid)
        (sh,) = skew._sector_shells(sub, grid, [MU], eband=eb, delta_weights=delta_weights, deg_tol=1e-9)
        t0 = time.perf_counter()
        a = skew.skew_tensors(sub, grid, MU, 0.0, NI, V0, method="factorised")
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        skew.skew_tensors(sub, grid, MU, 0.0, NI, V0, method="pairs")
        tp = time.perf_counter() - t0
        rows.append((sh.size, tf, tp))
        print(f"{N:6d} {sh.size:8d} {tf:13.3f} {tp:9.3f} {tp / tf:10.2f}  {a['S1'][1, 1, 1]:.6e}")
    # pair-sum part alone: isolate the O(N_F^2) cost
    print("pair-sum cost alone (21 shells) vs N_F:")
    x = np.linspace(-1.0, 1.0, 21)
    for N in (400, 800, 1200):
        grid = make_grid(sub, N)
        eb = skew.band_energies(sub, grid)
        h = 8 * 0.2 * grid.spacing  # 21 energies within 8 cells (|v| ~ 0.2 eV nm)
        shells = skew._sector_shells(sub, grid, MU + h * x, eband=eb,
                                     delta_weights=delta_weights, deg_tol=1e-9)
        t0 = time.perf_counter()
        for s in shells:
            skew._traces_pairs(s)
        tp = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in shells:
            skew._traces_factorised(s)
        tf = time.perf_counter() - t0
        nf = shells[len(shells) // 2].size
        print(f"  N = {N:5d}: N_F = {nf:5d}  pairs {tp:.3f} s   shell-matrix traces {tf:.4f} s   ratio {tp / tf:.0f}")


def bench_s2_convergence():
    """S^(2) (exact d/dE of the shell traces) vs S^(1) with the grid: BLG one valley, kmax 0.35, T = 0."""
    sub = bilayer_graphene_gapped().sectors[0]
    print("\nS^(2) vs S^(1) with the grid (BLG one valley, kmax 0.35 nm^-1, mu = 65 meV, T = 0), yyy, eV^2 nm:")
    rows = {}
    for N in (128, 192, 256, 384, 512, 768, 1024):
        out = skew.skew_tensors(sub, make_grid(sub, N, kmax=0.35), MU, 0.0, NI, V0)
        rows[N] = (out["S1"][1, 1, 1], out["S2"][1, 1, 1])
    ref = rows[1024]
    for N, (s1, s2) in rows.items():
        print(f"  N = {N:5d}: S1 {s1:.8e} ({s1 / ref[0] - 1:+.2e})   S2 {s2:.8e} ({s2 / ref[1] - 1:+.2e})")


def bench_dask():
    from distributed import Client, LocalCluster

    sh = random_shell(6000, seed=1)
    skew._pair_sums(random_shell(16), tile=8)
    t0 = time.perf_counter()
    ref = skew._pair_sums(sh, tile=1500)
    t_local = time.perf_counter() - t0
    print(f"\nDask (N_F = 6000, tile 1500 -> 16 tiles): in-process {t_local:.2f} s")
    times = {}
    for nw in (1, 2):
        with LocalCluster(n_workers=nw, threads_per_worker=1, dashboard_address=None) as lc, Client(lc) as client:
            skew._pair_sums(random_shell(64), tile=32, client=client)  # compile on the workers
            t0 = time.perf_counter()
            out = skew._pair_sums(sh, tile=1500, client=client)
            times[nw] = time.perf_counter() - t0
            assert np.allclose(out[0], ref[0], rtol=1e-12, atol=1e-12 * np.abs(ref[0]).max())
        print(f"  {nw} worker(s): {times[nw]:.2f} s")
    print(f"  speed-up 2 vs 1 workers: {times[1] / times[2]:.2f}x (2 cores shared with other jobs)")


if __name__ == "__main__":
    t0 = time.perf_counter()
    bench_pair_rate()
    bench_grids()
    bench_s2_convergence()
    bench_dask()
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
