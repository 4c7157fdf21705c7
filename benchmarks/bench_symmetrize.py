"""Time of the real-space symmetrisation (models/symmetrize.py) against bands, R vectors and group size.

Random Hermitian-paired tables (H and the position table A, as a Wannier90 _tb.dat gives) on crystals of the
tests' Slater–Koster family (tests/symmetric_models.py's fcc lattice): zincblende sp3 spinors (16 bands, T_d × θ, 48
operations), diamond s;p;d spinors (36 bands, O_h × θ, 96) and the same on R lists of growing size. Printed: bands,
R vectors in and out, operations, seconds for H alone and for H + A. Run: ``.venv/bin/python
benchmarks/bench_symmetrize.py``.

Measured (2026-12-07, one thread, loaded 2-core VM):

                     crystal bands  R in R out  ops    H s  H+A s
       zincblende sp3 + spin    16    27    87   48   0.39   0.21
       zincblende sp3 + spin    16   343   847   48   0.42   1.31
        diamond s;p;d + spin    36    27    87   96   0.37   1.09
        diamond s;p;d + spin    36   343   847   96   3.00  15.22

Before the per-block products became batched matmuls (three-operand einsum, O(nR n⁴)): diamond 36 bands at 343 R
took 90.6 s for H and 328 s for H + A.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qgtflow.models.symmetrize import orbital_layout, space_operations, symmetrize_tables  # noqa: E402
from tests.symmetric_models import A_FCC  # noqa: E402


def random_table(n: int, reach: int, rng, vector: bool = False) -> dict:
    shape = (n, n, 3) if vector else (n, n)
    out = {}
    rr = range(-reach, reach + 1)
    for R in [(i, j, k) for i in rr for j in rr for k in rr]:
        mR = tuple(-r for r in R)
        if R in out:
            continue
        m = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        out[R] = m
        out[mR] = np.conj(np.swapaxes(m, 0, 1)) if R != mR else m
    if vector:
        out[(0, 0, 0)] = (out[(0, 0, 0)] + np.conj(np.swapaxes(out[(0, 0, 0)], 0, 1))) / 2
    else:
        out[(0, 0, 0)] = (out[(0, 0, 0)] + out[(0, 0, 0)].conj().T) / 2
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    cases = [("zincblende sp3 + spin", [["Ga", 0, 0, 0], ["As", 0.25, 0.25, 0.25]], {"Ga": "sp3", "As": "sp3"}),
             ("diamond s;p;d + spin", [["C", 0, 0, 0], ["C", 0.25, 0.25, 0.25]], {"C": "s;p;d"})]
    print(f"{'crystal':>24} {'bands':>5} {'R in':>5} {'R out':>5} {'ops':>4} {'H s':>6} {'H+A s':>6}")
    for label, atoms, proj in cases:
        ops = space_operations(A_FCC, atoms)
        for reach in (1, 2, 3):
            n = {"Ga": 16, "C": 36}[atoms[0][0]]
            layout = orbital_layout(atoms, proj, n, spinors=True)
            H, r = random_table(n, reach, rng), random_table(n, reach, rng, vector=True)
            start = time.perf_counter()
            res = symmetrize_tables(A_FCC, atoms, layout, H, np.zeros((n, 3)), operations=ops)
            t_h = time.perf_counter() - start
            start = time.perf_counter()
            symmetrize_tables(A_FCC, atoms, layout, H, np.zeros((n, 3)), r, operations=ops)
            t_ha = time.perf_counter() - start
            print(f"{label:>24} {n:5d} {len(H):5d} {len(res.table):5d} {len(ops):4d} {t_h:6.2f} {t_ha:6.2f}")


if __name__ == "__main__":
    main()
