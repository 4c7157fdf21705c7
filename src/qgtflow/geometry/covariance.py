"""Whether declared point-group operations are symmetries of a Hamiltonian (the irreducible wedge trusts them).

Every operation g = (R, θ) (R Cartesian, θ = 1 for an antiunitary one, which sends k → −R k) is checked on a few
deterministic k-points: a generic set, Γ and a zone-boundary point (for a k·p model, generic points at a fraction of
its window's half-width, whose images under any orthogonal operation stay inside the window, and k = 0). Two
gauge-invariant quantities must transform as the wedge's symmetrisation assumes:

- the band energies, E_n(g·k) = E_n(k) with g·k = (−1)^θ R k;
- the Berry curvature summed over the bands below each gap of the spectrum at k (a pseudovector, T-odd:
  Ω(g·k) = (−1)^θ R Ω(k) Rᵀ for the antisymmetric tensor Ω^ab, i.e. (−1)^θ det R R ω for its vector ω; CATALOG
  Ω^ab_n = −2 Im Σ_{m≠n} ∂_aH_nm ∂_bH_mn / (ε_n − ε_m)², plus the Wannier position-operator terms when the model
  carries them, as the geometry stage computes it). The energies do not see magnetic moments (a declared time
  reversal or a wrongly oriented moment keeps them invariant in many models); the curvature does.

With ``spin`` (a study with 003 spin responses, whose symmetry zeros and wedge treat the spin index as an axial,
T-odd vector), also the model's spin operator: ⟨σ^c⟩ summed over the bands below each gap,
S(g·k) = (−1)^θ det R R S(k) (held like the curvature; a spin operator in another frame than the orbitals fails).
A 2D model's operation given as its 3D lift R₃ acts on k and Ω by its in-plane block and on S by R₃ whole
(models/symmetry.py ``lifted_operations`` keeps the lifts whose spin error passes).

Below a gap the sum over the bands is independent of the gauge and of degeneracies inside the set (the pair terms
between two bands of the set cancel), so no band-resolved quantity is compared. Tolerances are relative: the
energies to the bandwidth at the test points, the curvature to its own size at that gap and point, or to the
typical curvature where it is smaller (:data:`CURVATURE_FLOOR` times the median over the compared gap-checks): where
Ω vanishes by symmetry (Γ, time-reversal-invariant points) a model symmetric to an accuracy η carries Ω ~ (η/Δ) ×
the typical size, and is judged on the same footing as elsewhere instead of against its own rounding.

Which gaps are compared (:data:`GAP_OVER_MISMATCH`): the curvature summed below a gap Δ is the curvature of the
projector P onto the bands below it, and a symmetry-breaking part δH of the Hamiltonian rotates P by ~‖δH‖/Δ (first
order, Davis–Kahan); Ω = i Tr P[∂_aP, ∂_bP] is trilinear in P, so it changes by up to ~3‖δH‖/Δ of its size. Below a
gap comparable with the breaking the sum is not robust (a Kramers pair split by 1e-3 of the bandwidth in a Wannier
model whose energies are symmetric to a few tenths of that changes by O(1)), and its change says nothing about
whether the declared group is the model's. The breaking is measured by the operation's energy mismatch, η = max
over the test points and bands of |E_n(g·k) − E_n(k)| (≤ ‖δH‖; the largest over the points, not the one at the
k-pair: the energies see only the part of δH along the band, which can vanish at one point while it rotates P
there — measured: ε cos kx σz on a narrow-gap Qi–Wu–Zhang layer changed Ω by 0.52 of its size at a point whose own
mismatch was 1/42 of the gap). A gap is compared only when Δ ≥ K η with K = 3 / 0.1 = 30 (0.1 the schema's largest
tolerance), so the expected change 3η/Δ at a compared gap stays within an allowed tolerance: a model symmetric to its
Wannierisation accuracy can pass, while a wrong group (an O(1) change, in a model whose energies keep the operation)
is still refused at every tolerance. For an exactly symmetric operation η is rounding and every gap is compared. The
refusal and a log line state how many gap-checks were compared and how many skipped.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)

# Fractions of the reciprocal basis (or of the k·p half-width) of the generic test points: deterministic, distinct
# along every axis and off the mirror planes and rotation axes of the common lattices (no rational pattern).
GENERIC_FRACTIONS = np.array([[0.1319, 0.3771, 0.2237], [0.4123, 0.0877, 0.3391], [0.2713, 0.4459, 0.0613],
                              [0.3607, 0.2281, 0.4187]])
ENERGY_SHARE = 0.1  # |E_n(g·k) − E_n(k)| / bandwidth is held to this fraction of the tolerance
# (|Ω(g·k) − (−1)^θ R Ω(k) Rᵀ| / |Ω| at one gap and point to the tolerance itself)
CURVATURE_FLOOR = 1.0  # of the typical (median) summed curvature at the compared gap-checks: the scale of a
# vanishing one (module doc; the same share for the spin operator's ⟨σ⟩)
ROUNDING = 1e-6  # of the largest summed curvature: a sum this small vanishes (not part of the typical size)
VANISHING = 1e-5  # of the natural scale (1/|k|² of the test points for Ω, the spin matrices' norm for ⟨σ⟩): a
# summed quantity this small everywhere is zero, compared as such (C2z × T forces Ω ≡ 0 in a 2D layer, e.g. a
# Rashba one, and I × T in a 3D crystal, e.g. diamond: their rounding, 1e-16 to 2e-10 of the scale where pair terms
# ∝ 1/Δ² cancel, is no typical size to judge by; 1e-8 refused an exactly symmetric diamond s;p + SOC model at 0.018)
GAP_OVER_MISMATCH = 30.0  # a gap is compared only if ≥ this times the operation's largest energy mismatch: 3 / 0.1, the
# schema's largest symmetry.tolerance (module doc)
GAP_FRACTION = 1e-3  # a gap is a spacing of at least this fraction of the bandwidth between neighbouring bands
GROUP_FRACTION = 1e-6  # of the bandwidth: bands this close are one degenerate group in the position-operator terms
# (:func:`energies_and_curvature`; measured on WannierBerri's GaAs: grouping its ~10 meV Kramers-split pairs at
# GAP_FRACTION put Ω summed below 0.3 eV gaps 2.0e-4 off the peer's (group-mean energies), 9.4e-12 at this fraction)


def test_points(model, kmax=None) -> np.ndarray:
    """The deterministic six test k-points (P, dim) of ``model``: generic ones, Γ (k = 0) and, for a lattice model,
    the zone-boundary point b_1/2; for a k·p model (window half-width ``kmax``, a number or one per axis; default
    the model's) four generic points within 0.41 r of Γ per axis and one at 0.8 r (r the smallest half-width), so
    that every orthogonal operation maps them into the window (|R k| = |k| < r), and Γ."""
    d = model.dim
    generic = GENERIC_FRACTIONS[:, :d]
    if model.periodic:
        B = model.reciprocal_vectors
        frac = np.concatenate([generic, np.zeros((1, d)), 0.5 * np.eye(d)[:1]])
        return frac @ B
    if kmax is None:
        kmax = model.kmax if model.kmax is not None else 1.0
    r = float(np.min(np.asarray(kmax, float)))
    inner = (2 * generic - 0.5) * r
    outer = inner[1] / np.linalg.norm(inner[1]) * 0.8 * r  # the higher-order terms of a k·p model matter here
    return np.concatenate([inner, outer[None], np.zeros((1, d))])


def images(points: np.ndarray, operations) -> np.ndarray:
    """g·k = (−1)^θ R k of every test point under every operation: (G, P, dim) (R's in-plane block for a 3D lift
    of a 2D operation)."""
    d = points.shape[1]
    return np.stack([(-1.0 if t else 1.0) * points @ np.asarray(R, float)[:d, :d].T for R, t in operations])


def energies_and_curvature(model, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(E (N, n) ascending, Ω^ab per band (N, n, d, d), gap) at ``k``: ``gap`` = :data:`GAP_FRACTION` of the
    bandwidth at ``k``; pairs closer than it in energy are left out of the tight-binding Ω (their terms are
    antisymmetric in the pair and cancel exactly in every sum over the bands below a wider gap). The position-operator
    terms group only bands closer than :data:`GROUP_FRACTION` of the bandwidth (true degeneracies): a group's
    derivative of its projector uses its mean energy, so grouping a split pair is not exact for the sum (it moved
    GaAs's summed Ω by 2e-4); split pairs' large per-band terms cancel in the sum to rounding."""
    from qgtflow.models.derivatives import index_maps

    Hu = model.unique_derivatives(k, order=1)
    i1 = index_maps(model.dim)[0]
    E, U = np.linalg.eigh(Hu[:, 0])
    gap = GAP_FRACTION * float(E.max() - E.min())
    Ud = np.conj(np.swapaxes(U, -1, -2))
    V = np.stack([Ud @ Hu[:, i1[a]] @ U for a in range(model.dim)], axis=1)  # (N, d, n, n) ⟨n|∂_aH|m⟩
    diff = E[:, :, None] - E[:, None, :]
    apart = np.abs(diff) > gap
    inv2 = np.where(apart, 1.0 / np.where(apart, diff, 1.0) ** 2, 0.0)
    # CATALOG: Ω^ab_n = −2 Im Σ_m V^a_nm V^b_mn / ε_nm²
    curv = -2.0 * np.einsum("kanm,kbmn,knm->knab", V, V, inv2).imag
    if getattr(model, "position", None) is not None:  # the Wannier basis connection's terms (geometry/position.py)
        from qgtflow.geometry.position import connection_for, external_terms

        group = GROUP_FRACTION * float(E.max() - E.min())
        curv += external_terms(Hu, connection_for(model.position, k, 0), model.dim, group,
                               dipole=False)["berry_curvature"]
    return E, curv, gap


def spin_below(model, k: np.ndarray) -> np.ndarray:
    """⟨σ^c⟩ of the model's spin operator summed over the bands 0..c at ``k``: (N, n − 1, 3) (gauge invariant
    below a gap; the on-site spin matrix is the same in either Bloch convention)."""
    Hu = model.unique_derivatives(k, order=0)
    _, U = np.linalg.eigh(Hu[:, 0])
    per_band = np.einsum("kin,cij,kjn->knc", np.conj(U), np.asarray(model.spin), U).real
    return np.cumsum(per_band, axis=1)[:, :-1]


def _typical(F0, used, axes, scale: float) -> float:
    """:data:`CURVATURE_FLOOR` × the median size (norm over ``axes``) of the summed quantity ``F0`` (P, n − 1, ...)
    over the base-point gaps compared for any operation (``used`` (G, P, n − 1)), leaving out the sums that vanish
    to rounding (below :data:`ROUNDING` of the largest: all bands of a set, flat atomic bands), which would pull the
    median to zero; at least :data:`VANISHING` × ``scale`` (the quantity's natural size), so a quantity that
    vanishes everywhere (Ω of a C2z × T layer) is compared as zero, not as rounding against rounding."""
    size = np.abs(F0).max(axis=axes)[used.any(axis=0)]
    size = size[size > ROUNDING * size.max(initial=0.0)]
    typical = float(np.median(size)) if size.size else 0.0
    return max(CURVATURE_FLOOR * typical, VANISHING * scale, 1e-300)


def _relative_error(F0, Fg, expect, cuts, floor, axes) -> float:
    """max over the cuts of |Fg − expect| / max(|F0|, |Fg|, floor), the norms over ``axes``."""
    size = np.maximum(np.maximum(np.abs(F0).max(axis=axes), np.abs(Fg).max(axis=axes)), floor)
    err = np.abs(Fg - expect).max(axis=axes) / size
    return float(np.where(cuts, err, 0.0).max(initial=0.0))


MAX_LABEL_ORDER = 120  # rotation orders named C<n>^<k> (as models/symmetry.MAX_GROUP_ORDER's C_n, n ≤ 120)


def _turn(angle: float) -> str:
    """``<n>`` or ``<n>^<k>`` of a rotation angle 2πk/n in [0, π] (k, n coprime, k ≤ n/2: the sense is not
    named), or ``(<degrees>°)`` when the angle is no such fraction of a turn with n ≤ :data:`MAX_LABEL_ORDER`."""
    turns = abs(float(angle)) / (2 * np.pi)
    f = Fraction(turns).limit_denominator(MAX_LABEL_ORDER)
    if f.numerator == 0 or abs(turns - float(f)) > 1e-5:
        return f"({np.degrees(abs(float(angle))):.6g}°)"
    return f"{f.denominator}" + (f"^{f.numerator}" if f.numerator > 1 else "")


def operation_label(R, time_reversal: int) -> str:
    """A short name of a point operation: 1, -1, C<n> (rotation by 2π/n), C<n>^<k> (by 2πk/n, k > 1 coprime
    to n, e.g. C5^2), m (normal [..]), -<n> / -<n>^<k> (rotoinversion), with ' for time reversal, e.g.
    "C3[0, 0, 1]", "C5^2[0, 0, 1]", "m[1, 0]'". The sense of a rotation is not named (C3 stands for C3 and its
    inverse); a named C<n>[..] / C<n>^<k>[..] reads back through ``models.symmetry.named_operation`` as the
    rotation in the positive sense about the named axis."""
    R = np.asarray(R, float)
    det = np.linalg.det(R)
    proper = R * np.sign(det)
    d = len(R)
    prime = "'" if time_reversal else ""
    if np.allclose(proper, np.eye(d), atol=1e-8):
        return ("1" if det > 0 else "-1") + prime
    if d == 2:
        if det > 0:
            return f"C{_turn(np.arctan2(R[1, 0], R[0, 0]))}{prime}"
        w, v = np.linalg.eig(R)
        return f"m{_axis(v[:, np.argmin(w.real)])}{prime}"
    w, v = np.linalg.eig(proper)
    axis = _axis(v[:, np.argmin(np.abs(w - 1))])
    # the angle from cos and |sin| (the antisymmetric part's axial vector): accurate at every angle, unlike arccos
    sin = 0.5 * np.linalg.norm([proper[2, 1] - proper[1, 2], proper[0, 2] - proper[2, 0], proper[1, 0] - proper[0, 1]])
    turn = _turn(np.arctan2(sin, (np.trace(proper) - 1) / 2))
    if det > 0:
        return f"C{turn}{axis}{prime}"
    return (f"m{axis}" if turn == "2" else f"-{turn}{axis}") + prime


def _axis(v) -> str:
    v = np.real(v)
    v = np.round(v / v[np.argmax(np.abs(v))], 6)
    return "[" + ", ".join(f"{x:.3g}" for x in v + 0.0) + "]"


class OperationCheck(NamedTuple):
    """One operation's verdict (:func:`operation_checks`): its name, the errors of the three checks (relative to
    the bandwidth for the energies, to |Ω| and |S| for the curvature and the spin operator; 0 when not checked) and
    the counts of compared and skipped gap-checks (shared by all operations)."""

    label: str
    energy: float
    curvature: float
    spin: float
    counts: str

    @property
    def needed(self) -> float:
        """The smallest ``symmetry.tolerance`` at which this operation passes all its checks."""
        return max(self.energy / ENERGY_SHARE, self.curvature, self.spin)

    def why(self, tolerance: float) -> str | None:
        """What the operation breaks at ``tolerance`` and by how much (the first failing check), None if nothing."""
        e_tol = ENERGY_SHARE * tolerance
        if self.energy > e_tol:
            return (f"it changes the band energies by {self.energy:.2g} of the bandwidth (held to {e_tol:.2g}, a "
                    "tenth of the tolerance): E_n(g·k) ≠ E_n(k)")
        if self.curvature > tolerance:
            return (f"it does not map the Berry curvature as a T-odd pseudovector: |Ω(g·k) − (−1)^θ det R R Ω(k)| "
                    f"is {self.curvature:.2g} of |Ω| (held to {tolerance:.2g}; {self.counts})")
        if self.spin > tolerance:
            return (f"it does not map the model's spin operator as a T-odd axial vector (the spin responses' "
                    f"symmetry zeros and wedge assume it): |S(g·k) − (−1)^θ det R R S(k)| is {self.spin:.2g} of "
                    f"|S| (held to {tolerance:.2g}; {self.counts}); check the model's spin matrices")
        return None


def operation_checks(model, operations, spin: bool = False, kmax=None) -> list[OperationCheck]:
    """Every operation's errors on the band energies, the summed Berry curvature and (``spin``) the summed spin
    operator at the test points (module doc). The curvature (and spin) are compared only below gaps ≥
    max(:data:`GAP_FRACTION` of the bandwidth, :data:`GAP_OVER_MISMATCH` × the operation's largest energy mismatch
    at the test points); the counts of compared and skipped gap-checks are logged. An operation of a 2D model may
    be given as its 3D lift (3 × 3, the plane kept): k and Ω see its in-plane block, the spin operator (three
    components in every dimension) the whole of it; ``spin`` in 2D needs the lifts. ``kmax``: a k·p model's window
    half-width (:func:`test_points`; default the model's)."""
    points = test_points(model, kmax)
    d = points.shape[1]
    if spin and any(np.shape(R) != (3, 3) for R, _ in operations):
        raise ValueError("operation_checks: the spin operator's check needs every operation's 3D action (3 × 3)")
    moved = images(points, operations)
    P = len(points)
    E, curv, gap = energies_and_curvature(model, np.concatenate([points, moved.reshape(-1, d)]))
    width = max(gap / GAP_FRACTION, 1e-300)
    E0, Eg = E[:P], E[P:].reshape(len(operations), P, -1)
    gaps = np.diff(E0, axis=-1)  # (P, n − 1): the spacing above band c at the base point
    cuts = gaps > gap
    mismatch = np.abs(Eg - E0).max(axis=(-1, -2))  # (G,): the operation's energy mismatch η (module doc)
    used = cuts & (gaps >= GAP_OVER_MISMATCH * mismatch[:, None, None])  # (G, P, n − 1): the compared gap-checks
    n_used, n_skipped = int(used.sum()), int((cuts[None] & ~used).sum())
    counts = (f"compared below {n_used} of {n_used + n_skipped} gap-checks, {n_skipped} skipped where the gap is "
              f"< {GAP_OVER_MISMATCH:g}× the operation's largest energy mismatch")
    below = np.cumsum(curv, axis=1)[:, :-1]  # (N, n − 1, d, d): Ω summed over the bands 0..c
    F0, Fg = below[:P], below[P:].reshape(len(operations), P, *below.shape[1:])
    floor = _typical(F0, used, (-1, -2), 1.0 / max(float((points ** 2).sum(axis=-1).max()), 1e-300))
    if spin:
        S = spin_below(model, np.concatenate([points, moved.reshape(-1, d)]))
        S0, Sg = S[:P], S[P:].reshape(len(operations), P, *S.shape[1:])
        s_floor = _typical(S0, used, -1, float(np.abs(np.linalg.eigvalsh(np.asarray(model.spin))).max()))
    unchecked = list(dict.fromkeys(operation_label(R, t) for (R, t), u in zip(operations, used) if not u.any()))
    log.info("symmetry check of %d operations on %s: curvature%s %s%s", len(operations), model.name,
             " and spin" if spin else "", counts,
             f"; no gap wide enough for {unchecked} (their curvature is not compared)" if unchecked else "")
    out = []
    for index, (R, t) in enumerate(operations):
        R = np.asarray(R, float)
        Rk = R[:d, :d]
        e_err = float(np.abs(Eg[index] - E0).max()) / width
        expect = (-1.0 if t else 1.0) * np.einsum("ai,pcij,bj->pcab", Rk, F0, Rk)
        c_err = _relative_error(F0, Fg[index], expect, used[index], floor, (-1, -2))
        s_err = 0.0
        if spin:
            expect = (-1.0 if t else 1.0) * np.linalg.det(R) * np.einsum("ab,pcb->pca", R, S0)
            s_err = _relative_error(S0, Sg[index], expect, used[index], s_floor, -1)
        out.append(OperationCheck(operation_label(R, t), e_err, c_err, s_err, counts))
    return out


def broken_operations(model, operations, tolerance: float, spin: bool = False) -> list[tuple[str, str, float]]:
    """[(name (:func:`operation_label`), what it breaks and by how much, the smallest tolerance that passes it)]
    of every operation that is not a symmetry of ``model`` to ``tolerance`` (the study's ``symmetry.tolerance``;
    the energies to :data:`ENERGY_SHARE` of it), in the operations' order (:func:`operation_checks`)."""
    out = []
    for check in operation_checks(model, operations, spin):
        why = check.why(tolerance)
        if why is not None:
            out.append((check.label, why, check.needed))
    return out


def first_broken_operation(model, operations, tolerance: float, spin: bool = False) -> tuple[str, str, float] | None:
    """The first of :func:`broken_operations` (name, what it breaks, the smallest tolerance that would pass it), or
    None when every operation passes its checks to ``tolerance``."""
    broken = broken_operations(model, operations, tolerance, spin)
    return broken[0] if broken else None
