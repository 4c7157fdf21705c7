"""Whether a real Wannier90 model passes the check of its declared crystal (``symmetry.tolerance``,
:mod:`qgtflow.geometry.covariance`): WannierBerri's GaAs (16 spinor sp3 orbitals, zincblende: Ga at 0, As at 1/4,
non-magnetic, 48 operations with time reversal), with and without the Wannier position operator A(R).

Printed per tolerance (1e-3 … 0.1, the schema's range): the first operation refused, what it breaks and the
tolerance that would pass it, or "accepted"; then, per operation, its energy mismatch (fraction of the bandwidth)
and its worst curvature mismatch (as the check measures it) at the gap-checks the current rule compares. Run:
``.venv/bin/python benchmarks/real_symmetry_check.py DATA`` (DATA: the peer's ``tests/data``, see
``wannierberri_data.py``).

Measured (2026-12-06, the cached GaAs_tb.dat, no .win beside it; main's check before the gap rule in
parentheses): with A(R), refused at every tolerance by -4[0, 0, 1]: curvature 0.39 of |Ω| (1.5). The D2d half of the
group (-4z, C2 about the cubic axes, m[1, −1, 0], with and without θ) keeps the energies to ≤ 1.1e-5 of the 21.4 eV
bandwidth, so every gap is compared, and its curvature is off by 0.35–0.39 at gaps of 0.09–2.5 eV, not at the
Kramers-split ones; m[1, 1, 0] and time reversal pass (0.028–0.034, 0.012). Without A(R) the same operations pass at
0.1 (≤ 0.051): the position-operator terms carry the breaking, and they are the file's: WannierBerri evaluates the
same curvature pointwise (to 7e-12 below gaps > 0.3 eV) and breaks the same operations by the same amount
(``gaas_peer_pointwise.py``, issue 18); the file's A(R) keep only m[1, 1, 0] of the D2d half. The C3 half moves the energies by 0.02–0.033 of the bandwidth (needs
0.2–0.33, beyond 0.1), with or without A(R), so their curvature is compared at no gap (< 30 × η everywhere).
What the refusal protects: with the check bypassed (a throwaway script, not kept), AHC + Drude on 8³ at k_BT = 0.3 eV,
μ 6.5–7.9 eV: the wedge (29 points) Drude differs from the full grid's (512) by 18 % of its largest entry, and the
full grid's AHC (2.3e-3 of the Drude scale, nonzero only through the breaking) is set to zero by the symmetrisation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wannierberri_data import CACHE, _untar  # noqa: E402

GAAS = {"atoms": [["Ga", 0, 0, 0], ["As", 0.25, 0.25, 0.25]]}


def report(tb: Path, position: bool) -> None:
    from qgtflow.geometry import covariance as cv
    from qgtflow.models.symmetry import study_operations
    from qgtflow.study import load_study

    model = load_study({"model": {"name": "gaas", "wannier90": {"tb": str(tb), "position_operator": position}},
                        "units": "natural", "kgrid": {"sizes": [4]}, "mu": [7.9], "temperature": [0.01],
                        "responses": ["sigma_ahe"]}).model
    ops = study_operations(model, GAAS)
    print(f"== GaAs, position operator {'on' if position else 'off'}: {len(ops)} operations")
    for tol in (1e-3, 1e-2, 3e-2, 0.1):
        broken = cv.first_broken_operation(model, ops, tol)
        print(f"  tolerance {tol:g}: " + ("accepted" if broken is None else
                                          f"refused by {broken[0]} (needs {broken[2]:.2g}): {broken[1]}"))
    points = cv.test_points(model)
    moved = cv.images(points, ops)
    P, d = points.shape
    E, curv, gap = cv.energies_and_curvature(model, np.concatenate([points, moved.reshape(-1, d)]))
    width = gap / cv.GAP_FRACTION
    E0, Eg = E[:P], E[P:].reshape(len(ops), P, -1)
    gaps = np.diff(E0, axis=-1)
    below = np.cumsum(curv, axis=1)[:, :-1]
    F0, Fg = below[:P], below[P:].reshape(len(ops), P, *below.shape[1:])
    eta = np.abs(Eg - E0).max(axis=(-1, -2))
    used = (gaps > gap)[None] & (gaps[None] >= cv.GAP_OVER_MISMATCH * eta[:, None, None])
    floor = cv._typical(F0, used, (-1, -2))
    for g, (R, t) in enumerate(ops):
        R = np.asarray(R, float)
        expect = (-1.0 if t else 1.0) * np.einsum("ai,pcij,bj->pcab", R, F0, R)
        err = np.abs(Fg[g] - expect).max(axis=(-1, -2))
        size = np.maximum(np.abs(F0).max(axis=(-1, -2)), np.abs(Fg[g]).max(axis=(-1, -2)))
        rel = np.where(used[g], err / np.maximum(size, floor), 0.0)
        p, c = np.unravel_index(np.argmax(rel), rel.shape)
        print(f"  {cv.operation_label(R, t):>16}: energies {eta[g] / width:.2g} of the bandwidth; {int(used[g].sum())} "
              f"gap-checks compared, worst curvature mismatch {rel[p, c]:.2g} (gap {gaps[p, c]:.3g} above band {c})")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: real_symmetry_check.py DATA (WannierBerri's tests/data)")
    tb = CACHE / "GaAs" / "GaAs_tb.dat"
    archive = Path(sys.argv[1]) / "GaAs_Wannier90" / "GaAs_tb.dat.tar.gz"
    if not tb.exists() and _untar(archive, "GaAs_tb.dat", tb) is None:
        sys.exit(f"GaAs: not found under {sys.argv[1]}")
    for position in (True, False):
        report(tb, position)


if __name__ == "__main__":
    main()
