"""Cost of the 003 spin fields with the Wannier position operator (geometry/spin.py spin_fields_position).

For random 2D Wannier-like lattice models of n bands (tests/conftest.py ``random_lattice_model``) with a random
Hermitian spin triple and a random Hermitian A^W_a(k) per direction (lattice models of the same shape), prints
per k-point, in process CPU ms (one thread, best of 5 interleaved repeats; H(k) and A^W(k) construction excluded
from the kernel columns, timed on their own):

  tb        spin_fields(Hu)                    tight-binding velocity ∂_aH (the refused route before session 26)
  full      spin_fields_position(Hu, Au)       full velocity ∂_aH − i[A^W_a, H], same kernel
  slots     full_velocity_slots alone          the 2·d n×n products per k that 'full' adds
  A(k)      model of A^W at order 0            building A^W(k) (the caller's cost; the core fields' external
                                               terms build it to order 1–2 anyway)
  full/tb   ratio
  dv        spin_velocity_derivative_position  the exact ∂_b v^{a;c}_nn (batched NumPy, own eigh; only when a
                                               response reads spin_velocity_derivative: Eq. 4 surface form)
  dip       spin_dipoles_position              the three exact spin dipoles (batched NumPy; only when a response
                                               reads one: Eq. 9, 11, 13 sea forms); tb_dip = the kernel with
                                               dipoles=True minus tb, for comparison

Band fields only (dipoles are refused with the operator on); pairs off.

Usage: NUMBA_CACHE_DIR=/tmp/numba-cache-spinpos python benchmarks/bench_spin_position.py [points] [n ...]
(default 1000 points, n = 4 8 16 32)

Measured 2026-12-06 (2-core VM shared with three other jobs, 1000 points; timings vary by ~±15% run to run):
     n        tb      full     slots      A(k)  full/tb        dv
     8    0.0452    0.0486    0.0027    0.0055     1.08    0.0490
    16    0.2201    0.2326    0.0135    0.0205     1.06    0.2365
    32    1.1201    1.2956    0.0654    0.0968     1.16    1.3864
(earlier runs: full/tb 1.07 / 1.09 / 1.17 best of 5, 1.21 / 1.28 / 1.30 best of 3, for n = 8 / 16 / 32). The slots
cost ~6% of the kernel; the rest of the gap is the Hu copy, the NaN fill of the refused fields, and noise. The
exact ∂_b v^{a;c}_nn (dv) costs about one more kernel; compute_fields builds it only when a response reads it.
Spin dipoles (500 points, best of 5): NumPy dip 0.358 / 1.540 ms per k vs the kernel's own dipoles (tb_dip, no
position operator) 0.072 / 0.486 for n = 8 / 16 — the NumPy route is 3–5× the kernel's (a per-(a, b, c, e) loop of
n×n products over batches; a numba port of these terms is the obvious next step if Eq. 9/11/13 sea forms matter).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
from numba import set_num_threads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qgtflow.geometry.spin import (  # noqa: E402
    full_velocity_slots,
    spin_fields,
    spin_fields_position,
    spin_dipoles_position,
    spin_velocity_derivative_position,
)
from tests.conftest import random_lattice_model  # noqa: E402


def _cpu(fn, *args, **kw):
    t = time.process_time()
    fn(*args, **kw)
    return time.process_time() - t


def case(points: int, n: int, rng) -> tuple[float, ...]:
    model = random_lattice_model(seed=3, nbands=n)
    comps = [random_lattice_model(seed=10 + a, nbands=n, hopping=0.05) for a in range(2)]
    spin = np.stack([(m + m.conj().T) / 2 for m in rng.normal(size=(3, n, n)) + 1j * rng.normal(size=(3, n, n))])
    k = rng.uniform(-np.pi, np.pi, (points, 2))
    Hu = model.unique_derivatives(k)
    Au = np.stack([c.unique_derivatives(k, order=0) for c in comps], axis=1)
    Au1 = np.stack([c.unique_derivatives(k, order=1) for c in comps], axis=1)
    kw = dict(dipoles=False, n_threads=1)
    spin_fields(Hu[:2], 2, spin, **kw)  # compile / load the cache
    spin_fields_position(Hu[:2], Au[:2], 2, spin, **kw)
    best = [np.inf] * 7
    for _ in range(5):
        best[0] = min(best[0], _cpu(spin_fields, Hu, 2, spin, **kw))
        best[1] = min(best[1], _cpu(spin_fields_position, Hu, Au, 2, spin, **kw))
        best[2] = min(best[2], _cpu(full_velocity_slots, Hu, Au[:, :, 0], 2))
        best[3] = min(best[3], _cpu(lambda: [c.unique_derivatives(k, order=0) for c in comps]))
        best[4] = min(best[4], _cpu(spin_velocity_derivative_position, Hu, Au1, 2, spin))
        best[5] = min(best[5], _cpu(spin_dipoles_position, Hu, Au1, 2, spin))
        best[6] = min(best[6], _cpu(spin_fields, Hu, 2, spin, dipoles=True, n_threads=1))
    return tuple(1e3 * b / points for b in best)


def main(argv):
    set_num_threads(1)
    points = int(argv[0]) if argv else 1000
    sizes = [int(a) for a in argv[1:]] or [4, 8, 16, 32]
    rng = np.random.default_rng(0)
    print(f"{points} k-points, ms per k-point (process CPU, one thread, best of 5)")
    print(f"{'n':>4} {'tb':>9} {'full':>9} {'slots':>9} {'A(k)':>9} {'full/tb':>8} {'dv':>9} {'dip':>9} {'tb_dip':>9}")
    for n in sizes:
        tb, full, slots, ak, dv, dip, tbd = case(points, n, rng)
        print(f"{n:>4} {tb:9.4f} {full:9.4f} {slots:9.4f} {ak:9.4f} {full / tb:8.2f} {dv:9.4f} {dip:9.4f} "
              f"{tbd - tb:9.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
