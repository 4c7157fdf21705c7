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

``--ws-distance-tol X`` reads the file with ``model.wannier90.ws_distance_tol: X`` (Å); ``--responses N`` adds AHC,
Drude and BCD on the wedge and the full N³ grid (position operator off, ``--tolerance``, default 0.1;
``--degeneracy-threshold``). Measured (2026-12-06): at the default 1e-5 Å the correction leaves 820 bond images up
to 1.04e-4 Å longer than a tie (centres symmetric to 5.4e-5 Å); without A(R) refused by -4z's curvature (0.032) up
to 0.03 and by C3's energies (0.02 of the bandwidth, needs 0.2) at 0.1, the refusal suggesting ws_distance_tol
1e-3. At 1e-3 no near ties: C3 moves the energies by 2.2–2.5e-4 of the bandwidth, refused at 0.05 (m[1, 0, 1]
curvature, needs 0.06), accepted at 0.1; with A(R) still refused by -4z (0.32). ``--responses 8`` at 1e-3 (k_BT =
0.3, μ 6.5–7.9, τ = 1, natural units; largest |entry| allowed / forbidden by T_d + θ):

    degeneracy_threshold 1e-4 (default)  full           wedge          full at ws_distance_tol 1e-5
    sigma_ahe                            0 / 4.4e-3     0 / 5.2e-20    0 / 2.6e-4
    sigma_drude                          0.0987 / 1.1e-6  0.0987 / 2.5e-20  0.113 / 6.3e-7   (|wedge − full| 3e-5)
    berry_curvature_dipole               0 / 120        0 / 1.1e-16    0 / 1.6
    degeneracy_threshold 1e-2
    sigma_ahe                            0 / 1.9e-6     0 / 9.1e-21    0 / 3.2e-6
    sigma_drude                          0.0986 / 3.3e-7  0.0986 / 2.5e-20  0.113 / 1.2e-5   (|wedge − full| 2.1e-5)
    berry_curvature_dipole               0 / 1.7e-3     0 / 7.4e-20    0 / 0.034

The full grid's forbidden residues fall with the degeneracy threshold (near-degenerate pairs kept apart by it), not
with the tie tolerance; the wedge's are rounding.
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


def _wannier(tb: Path, position: bool, ws_tol: float | None) -> dict:
    w = {"tb": str(tb), "position_operator": position}
    return w if ws_tol is None else {**w, "ws_distance_tol": ws_tol}


def report(tb: Path, position: bool, ws_tol: float | None = None) -> None:
    from qgtflow.geometry import covariance as cv
    from qgtflow.models.symmetry import study_operations
    from qgtflow.study import load_study

    model = load_study({"model": {"name": "gaas", "wannier90": _wannier(tb, position, ws_tol)},
                        "units": "natural", "kgrid": {"sizes": [4]}, "mu": [7.9], "temperature": [0.01],
                        "responses": ["sigma_ahe"]}).model
    ops = study_operations(model, GAAS)
    near = model.ws_near_ties
    print(f"== GaAs, position operator {'on' if position else 'off'}, ws_distance_tol "
          f"{'1e-05 (default)' if ws_tol is None else f'{ws_tol:g}'} Å: {len(ops)} operations; Wigner–Seitz near ties "
          + ("none" if near is None else f"{near[0]} bond images, up to {near[1]:.2g} Å beyond the shortest"))
    for tol in (1e-3, 1e-2, 3e-2, 5e-2, 0.1):
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


RESPONSES = ("sigma_ahe", "sigma_drude", "berry_curvature_dipole")


def wedge_vs_full(tb: Path, ws_tol: float | None, size: int, tolerance: float, workdir: Path,
                  degeneracy: float | None = None) -> None:
    """AHC, Drude and the Berry-curvature dipole on the wedge and on the full size³ grid (position operator off),
    k_BT = 0.3 eV, μ 6.5–7.9 eV, τ = 1 (natural units): per response, the largest full-grid entry among the
    components T_d with time reversal allows and among those it forbids (the symmetry zeros the convergence stage
    reports), the wedge's largest forbidden entry (its symmetrised sums) and |wedge − full| over the allowed ones;
    with ``ws_tol``, also the full grid read at the default tie tolerance (no symmetry block: it is refused);
    ``degeneracy``: the studies' degeneracy_threshold (default: the schema's)."""
    import time

    from qgtflow import evaluate
    from qgtflow.models.symmetry import study_symmetry_zeros
    from qgtflow.study import load_study

    base = {"units": "natural", "mu": [6.5, 7.2, 7.9], "temperature": [0.3], "tau": 1.0,
            "responses": list(RESPONSES), "integration": "points", "kgrid": {"sizes": [size]}}
    if degeneracy is not None:
        base["degeneracy_threshold"] = degeneracy
    runs = {"full": (ws_tol, False), "wedge": (ws_tol, True)}
    if ws_tol is not None:
        runs["full, default ws_distance_tol"] = (None, None)
    out = {}
    for label, (tol, wedge) in runs.items():
        study = {**base, "model": {"name": "gaas", "wannier90": _wannier(tb, False, tol)}}
        if wedge is not None:
            study.update(symmetry={**GAAS, "tolerance": tolerance}, kgrid={"sizes": [size], "symmetry_reduce": wedge})
        start = time.perf_counter()
        out[label] = evaluate(study, n_workers=0, workdir=str(workdir / label.replace(" ", "_")))
        print(f"  {label} {size}³: {time.perf_counter() - start:.0f} s (kernels compiled on the first)")
    st = load_study({**base, "model": {"name": "gaas", "wannier90": _wannier(tb, False, ws_tol)},
                     "symmetry": {**GAAS, "tolerance": tolerance}})
    zeros = study_symmetry_zeros(st.model, st.config["symmetry"], st.responses)
    print(f"  largest |entry| over μ (natural units); allowed / forbidden by T_d + θ (forbidden: {zeros})")
    for name in RESPONSES:
        ref = out["full"][name]
        cart = [d for d in ref.dims if d in ("i", "j", "k", "l", "pseudovector")]
        shape = [ref.sizes[d] for d in cart]
        labels = ["".join(str(ref[d].values[i]) for d, i in zip(cart, idx)) for idx in np.ndindex(*shape)]
        forbidden = np.array([lab in zeros.get(name, []) for lab in labels])

        def split(ds):
            per = np.abs(ds[name].transpose(*cart, ...).values).reshape(len(labels), -1).max(axis=1)
            return (float(per[~forbidden].max(initial=0.0)), float(per[forbidden].max(initial=0.0)))

        diff = np.abs(out["wedge"][name].transpose(*cart, ...).values - ref.transpose(*cart, ...).values)
        diff = float(diff.reshape(len(labels), -1)[~forbidden].max(initial=0.0))
        row = "; ".join(f"{label} {a:.3g} / {f:.2g}" for label, (a, f) in ((k, split(v)) for k, v in out.items()))
        print(f"  {name}: {row}; |wedge − full| on the allowed ≤ {diff:.2g}")


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="WannierBerri's tests/data")
    parser.add_argument("--ws-distance-tol", type=float, default=None,
                        help="model.wannier90.ws_distance_tol (Å; default: absent, Wannier90's 1e-5)")
    parser.add_argument("--position-off-only", action="store_true", help="skip the position-operator-on report")
    parser.add_argument("--responses", type=int, default=0, metavar="N",
                        help="also compare AHC, Drude and BCD on the wedge and the full N³ grid (position operator "
                             "off; needs --tolerance the check passes)")
    parser.add_argument("--tolerance", type=float, default=0.1, help="symmetry.tolerance of --responses")
    parser.add_argument("--degeneracy-threshold", type=float, default=None,
                        help="degeneracy_threshold (eV) of --responses (default: the schema's)")
    args = parser.parse_args()
    tb = CACHE / "GaAs" / "GaAs_tb.dat"
    archive = Path(args.data) / "GaAs_Wannier90" / "GaAs_tb.dat.tar.gz"
    if not tb.exists() and _untar(archive, "GaAs_tb.dat", tb) is None:
        sys.exit(f"GaAs: not found under {args.data}")
    for position in ((False,) if args.position_off_only else (True, False)):
        report(tb, position, args.ws_distance_tol)
    if args.responses:
        print(f"== wedge vs full grid, ws_distance_tol {args.ws_distance_tol}, symmetry.tolerance {args.tolerance}, "
              f"degeneracy_threshold {args.degeneracy_threshold or 'default'}")
        with tempfile.TemporaryDirectory() as tmp:
            wedge_vs_full(tb, args.ws_distance_tol, args.responses, args.tolerance, Path(tmp),
                          args.degeneracy_threshold)


if __name__ == "__main__":
    main()
