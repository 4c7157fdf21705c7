"""Shared by the real-file symmetrisation benchmarks (gaas_, te_, real_ (Fe), mn3sn_like_symmetrize.py): the study's
symmetry check as the smallest passing tolerance, the responses' largest allowed and forbidden entries on full and wedge
grids, and the peer's band energies of its own symmetrisation against ours."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

RESPONSES = ("sigma_ahe", "sigma_drude", "berry_curvature_dipole")
# the peer's side of peer_energies: a script is PEER_HEAD + lines making its symmetrised ``system`` (from the
# arguments; ``ks`` the last) + PEER_TAIL, which prints its band energies at ks
PEER_HEAD = r"""
import json, os, sys
sys.path += [p for p in os.environ.get("PEER_EXTRA_PATH", "").split(":") if p]  # after its own site-packages
import numpy as np
from wannierberri.system.system_R import System_R
"""
PEER_TAIL = r"""
H = system.Ham_R  # (nR, n, n)
R = system.rvec.iRvec
out = []
for k in ks:
    Hk = np.einsum("r,rij->ij", np.exp(2j * np.pi * R @ np.array(k)), H)
    out.append(np.linalg.eigvalsh(Hk).tolist())
print("RESULT" + json.dumps(out))
"""


def check(model, atoms) -> str:
    """The smallest ``symmetry.tolerance`` that passes every operation of the crystal ``atoms`` (a list of atoms,
    or a study's ``symmetry`` mapping with ``atoms`` and ``magnetic_moments``), and by what."""
    from qgtflow.geometry import covariance as cv
    from qgtflow.models.symmetry import study_operations

    crystal = atoms if isinstance(atoms, dict) else {"atoms": atoms}
    checks = cv.operation_checks(model, study_operations(model, crystal))
    worst = max(checks, key=lambda c: c.needed)
    energy, curvature = max(c.energy for c in checks), max(c.curvature for c in checks)
    return (f"{len(checks)} operations; needs symmetry.tolerance {worst.needed:.2g} ({worst.label}; energies ≤ "
            f"{energy:.2g} of the bandwidth, "
            f"curvature ≤ {curvature:.2g})")


def responses(studies: dict, zeros_study: dict, workdir: Path, size: int) -> None:
    """Evaluate ``studies`` {label: study dict} ("as read" first, then "symmetrised" and "symmetrised wedge") and
    print, per response, the largest |entry| among the components the crystal of ``zeros_study`` (a study with its
    ``symmetry``) allows and among those it forbids, and (when both are there) the symmetrised − as read and wedge −
    full differences."""
    from qgtflow import evaluate
    from qgtflow.models.symmetry import study_symmetry_zeros
    from qgtflow.study import load_study

    st = load_study({k: v for k, v in zeros_study.items() if k != "symmetry"})  # the zeros need the group only
    zeros = study_symmetry_zeros(st.model, zeros_study["symmetry"], st.responses)
    out = {}
    for label, study in studies.items():
        start = time.perf_counter()
        out[label] = evaluate(study, n_workers=0, workdir=str(workdir / label.replace(" ", "_")))
        print(f"  {label} {size}³: {time.perf_counter() - start:.0f} s")
    for name in RESPONSES:
        ref = out["as read"][name]
        cart = [d for d in ref.dims if d in ("i", "j", "k", "l", "pseudovector")]
        labels = ["".join(str(ref[d].values[i]) for d, i in zip(cart, idx))
                  for idx in np.ndindex(*[ref.sizes[d] for d in cart])]
        forbidden = np.array([lab in zeros.get(name, []) for lab in labels])
        row = []
        for label, ds in out.items():
            per = np.abs(ds[name].transpose(*cart, ...).values).reshape(len(labels), -1).max(axis=1)
            row.append(f"{label} {per[~forbidden].max(initial=0.0):.4g} / {per[forbidden].max(initial=0.0):.2g}")
        if "symmetrised wedge" in out:
            a, b, c = (out[k][name].transpose(*cart, ...).values
                       for k in ("as read", "symmetrised", "symmetrised wedge"))
            row.append(f"|symmetrised − as read| ≤ {np.abs(a - b).max():.2g}, |wedge − full| ≤ "
                       f"{np.abs(c - b).max():.2g}")
        print(f"  {name} (allowed / forbidden; forbidden {sorted(zeros.get(name, []))}): " + "; ".join(row))


def peer_energies(python: str, script: str, args: list[str], ks: list, model, what: str = "both symmetrised") -> None:
    """Run ``script`` (printing ``RESULT`` + JSON band energies at the fractional ``ks``) with the peer's Python and
    print the largest difference from ``model``'s energies there (``what``: how both models were made)."""
    try:
        run = subprocess.run([python, "-c", script, *args, json.dumps(ks)], capture_output=True, text=True,
                             timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  peer: not run ({exc})")
        return
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        print(f"  peer: failed: {run.stderr.strip().splitlines()[-3:]}")
        return
    theirs = np.array(json.loads(line[0][6:]))
    kc = np.array(ks) @ model.reciprocal_vectors
    ours = np.linalg.eigvalsh(model.unique_derivatives(kc, order=0)[:, 0])
    print(f"  band energies at {len(ks)} k-points, qgtflow vs the peer ({what}): max |ΔE| = "
          f"{np.abs(ours - theirs).max():.3g} eV (bandwidth {ours.max() - ours.min():.3g} eV)")
