"""Read + model set-up of a large generated Wannier90 ``_tb.dat`` (issue 18 item 4): before / after figures.

    .venv/bin/python benchmarks/bench_wannier_setup.py [--bands 84] [--nrpts 343] [--position-scale 0.01] [--keep FILE]

Writes (or reuses ``--keep``) a random Hermitian ``_tb.dat`` (``bench_wannier.write_random_tb``: an R cube, so the
reader infers its Monkhorst–Pack grid and computes the Wigner–Seitz correction), then prints, wall seconds on this
machine:

* ``read_tb`` as a whole, and the peak RSS increase beside the size of the model's hopping arrays;
* the Wigner–Seitz table of the Hamiltonian: the per-R loop over all (2·WS_SEARCH + 1)³ images (the code before
  the vectorisation, kept here as :func:`ws_table_per_r`) against ``ws_distance_table`` (identical result checked);
* ``model_hash`` with the hoppings as inline JSON lists (before) and as a blake2b digest (after).

Measured 2026-12-06 (84 bands, 343 R, 324 MB file, loaded 2-core VM shared with other jobs, wall s, one run each;
"before" = main at 0d207a6):

* centres only: read_tb 54.8 (under cProfile; WS tables 44 of it) → 3.2, peak RSS +1.24 GB → +0.90 GB;
  model_hash 2.2-4.2 → 0.13;
* with random A(R) (scale 0.01), as the pieces landed: read_tb 55 → 16-20 (vectorised WS tables of H and the three
  position components, 44 → 1.5) → 7.5 (compiled number scan: np.fromstring ~10 → ~1.6) → 5.8 (one copy of the
  hoppings per model, text released before the tables are assembled; peak RSS +1.97 GB → +1.14 GB, model arrays
  676 → 347 MB = 4 × 82 MB); model_hash 2.7-8.1 → 0.5-0.8 (~0.4 of it the position operator's sha256 digest,
  left as it was to keep those hashes);
* WS table of H alone (this script): per-R loop 9.4-17.9 → vectorised 0.34-0.76 (bit-identical);
* 118 MB file (``--nrpts 125``, A(R)), main → this branch, one process each: read_tb 25.2 → 2.25, model_hash
  1.47 → 0.28, process max RSS 954 → 682 MB.

Not reached: the ≤ 2 s target. What remains at 84 bands (profile, A(R)): reading + decoding the text ~0.7 s, the
scan ~1.7 s, numba's cache load ~0.65 s (once per process), the table assembly in ``_fast_blocks`` ~0.9 s, WS ~0.7 s.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: the benchmarks' file writers
from benchmarks.bench_wannier import write_random_tb  # noqa: E402


def ws_table_per_r(table: dict, lattice_ang, frac, mp_grid, search: int = 2, tol: float = 1e-5) -> dict:
    """The Wigner–Seitz table as computed before (one R at a time, every supercell image)."""
    A = np.asarray(lattice_ang, float)
    tau = np.asarray(frac, float) @ A
    dtau = tau[None, :, :] - tau[:, None, :]
    rng = np.arange(-search, search + 1)
    images = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3) * np.asarray(mp_grid)
    out: dict[tuple, np.ndarray] = {}
    for R, mat in table.items():
        shifted = np.asarray(R) + images
        dist = np.linalg.norm((shifted @ A)[:, None, None, :] + dtau[None], axis=-1)
        eq = dist < dist.min(axis=0) + tol
        share = mat / eq.sum(axis=0)
        for m in np.flatnonzero(eq.any(axis=(1, 2))):
            key = tuple(int(x) for x in shifted[m])
            part = np.where(eq[m], share, 0)
            out[key] = out[key] + part if key in out else part
    return out


def wall(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", type=int, default=84)
    ap.add_argument("--nrpts", type=int, default=343)
    ap.add_argument("--position-scale", type=float, default=0.01, help="random A(R) (Å); 0: centres only")
    ap.add_argument("--keep", type=Path, help="the _tb.dat to use (written there if missing)")
    args = ap.parse_args()

    from qgtflow.models import tight_binding
    from qgtflow.models.wannier import infer_mp_grid, read_tb, ws_distance_table

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench_tb.dat"
        if not path.exists():
            write_random_tb(path, args.bands, args.nrpts, position_scale=args.position_scale)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t_read, model = wall(lambda: read_tb(path))
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(f"_tb.dat {path.stat().st_size / 1e6:.0f} MB, {model.nbands} bands, {args.nrpts} R in the file, "
              f"{len(model.cells)} R after the WS correction: read_tb {t_read:.2f} s, peak RSS +{peak:.0f} MB "
              f"(hopping arrays {model.matrices.nbytes / 1e6:.0f} MB)")

        raw = read_tb(path, wsvec=False)  # the file's hoppings at their R, for the WS table alone
        table = dict(raw.hopping_table)
        grid = infer_mp_grid(list(table), np.ones(len(table)), path)
        lattice_ang = raw.lattice * 10.0  # model lengths nm → Å
        frac = (raw.orbital_offsets[0] * 10.0) @ np.linalg.inv(lattice_ang)  # τ_j − τ_1: only differences enter
        t_new, new = wall(lambda: ws_distance_table(table, lattice_ang, frac, grid))
        t_old, old = wall(lambda: ws_table_per_r(table, lattice_ang, frac, grid))
        same = set(new) == set(old) and all(np.array_equal(new[R], old[R]) for R in old)
        print(f"WS table of H ({len(table)} R, mp_grid {grid}): per-R loop {t_old:.2f} s → vectorised {t_new:.2f} s "
              f"(x{t_old / t_new:.0f}; bit-identical: {same})")

        t_digest, _ = wall(lambda: model.model_hash)
        inline = tight_binding.HASH_INLINE_ENTRIES
        tight_binding.HASH_INLINE_ENTRIES = model.matrices.size
        try:
            t_json, _ = wall(lambda: model.model_hash)
        finally:
            tight_binding.HASH_INLINE_ENTRIES = inline
        print(f"model_hash ({model.matrices.size / 1e6:.1f} M hopping entries): inline JSON {t_json:.2f} s → "
              f"blake2b digest {t_digest:.2f} s")


if __name__ == "__main__":
    main()
