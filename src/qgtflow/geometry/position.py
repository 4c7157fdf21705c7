"""External (position-operator) terms of Ω, g, 𝒢 and their k-derivatives for Wannier models.

Pure functions of a chunk's compact derivatives of H (``Hu`` (N, U, n, n)) and of the basis connection A^W
(``Au`` (N, d, U, n, n), ``models/position.py``; for Ω, g, 𝒢 without dipoles only A^W and Ω^W, (N, d + P, n, n):
:func:`connection_for`); no I/O, no Dask. The geometry kernels compute the
tight-binding ("internal") fields; the external terms are added in place by :class:`ExternalTerms` (the batched
kernel's per-block callback: from its own eigenbasis and rotated ∂H, ∂²H) or :func:`add_external_terms` (the per-k
kernel: diagonalising again); both run :func:`external_from_eigenbasis`.

Method (projector form of WYSV, PRB 74, 195118 (2006) Eq. 27). The band states are U-rotations of the Bloch
sums, whose own connection is A^W; for a degenerate group D with projector P (orbital basis) the group
trace of the Berry curvature is that of the tight-binding connection plus

    Ω^ab_D,ext = Tr[P Ω^W_ab] + Tr[∂_aP A^W_b] − Tr[∂_bP A^W_a],   Ω^W_ab = ∂_aA^W_b − ∂_bA^W_a

(= Ω̄ − [D_a, Ā_b] + [D_b, Ā_a] of WYSV Eq. 27, traced over D; −i[D_a, D_b] is the internal part), and
exactly, for the dipole,

    ∂_cΩ^ab_D,ext = Tr[∂_cP Ω^W_ab] + Tr[P ∂_cΩ^W_ab] + Tr[∂_caP A^W_b] + Tr[∂_aP ∂_cA^W_b] − (a ↔ b).

In the eigenbasis (Ā = U†A^W U, V^a = U†∂_aH U, W^{ca} = U†∂_c∂_aH U, X_ij = 1/(ε̄_i − ε̄_j) between groups and
0 inside one, ε̄ the group-mean energies, S the same-group mask, V̂^a = V^a ∘ X) the projector derivatives are
(∂_aP)_{DD̄} = V̂^a_{DD̄}, and (degenerate-safe divided differences, as in ``projector.py``)
    (∂_caP)_{DD} = (V̂^cV̂^a + V̂^aV̂^c)_{DD},
    Tr[(∂_caP)_{D̄D̄} Ā] = −Σ_{r∈D} (V̂^aĀV̂^c + V̂^cĀV̂^a)_rr,
    (∂_caP)_{DD̄} = X ∘ [W^{ca} + V̂^cV^a + V̂^aV^c − X ∘ ((V^c∘S)V^a + (V^a∘S)V^c)].
Every trace is a sum of per-row terms over r ∈ D; a band's value is its group's sum divided by the group size
(band sums are group traces, as in ``kernels.py``). Cost O(d³ n³) per k in batched NumPy products.

Quantum metric and BCP (one gauge-covariant construction with the curvature). With D_aP = ∂_aP − i[A^W_a, P] the
covariant projector derivative inside the Wannier space, D_aP = −i[𝒜^a, P] with 𝒜^a = Ā^a − iV̂^a the full
interband Berry connection (A^H_nm = −iV̂^a_nm the tight-binding part), and the group QGT is

    Q^ab_D = Tr[P D_aP D_bP] = Σ_{n∈D, m∉D} 𝒜^a_nm 𝒜^b_mn,   g^ab_D = Re Q^ab_D,   Ω^ab_D = −2 Im Q^ab_D + Tr[P F^W_ab]

(F^W = Ω^W − i[A^W_a, A^W_b] the basis curvature; the Ω above is this one, the ĀĀ terms cancelling), and
the BCP 𝒢^ab_D = 2 Re Σ_{n∈D, m∉D} 𝒜^a_nm 𝒜^b_mn X_nm (001; as in WYSV the sum over m runs over the Wannier
bands: the metric of the Wannier-space projector). The external parts (Ā terms) are added per row, O(d² n²)
per k after the rotations of A^W.

Their dipoles, exact at degenerate groups (:func:`_metric_dipole_rows`): ∂_c of Tr[P D_aP D_bP] and of
2 Re Tr[P D_aP R D_bP] (R the reduced resolvent of the group) need only the DD̄ rows of D_aP and ∂_c D_aP,
O(d³ n³) per k; the Christoffel symbols are their combination (000 Eq. 16).

Which fields include the external terms: :data:`FULL_POSITION_FIELDS`, the Christoffel symbols and the
quantum-metric quadrupole (``position_quadrupole.py``); :data:`POSITION_CLASSES` sorts every catalogue field
(table: docs/position-quadrupole.md). The 003 spin QGT, spin BCP and spin current (vertex ¼{𝒱^a, σ^c} with the
full velocity 𝒱^a = ∂_aH − i[A^W_a, H]) are computed with the operator (:data:`SPIN_FULL_VELOCITY_FIELDS`,
``spin.py`` ``spin_fields_position``, docs/spin-position-operator.md). The Zeeman QGT (A^a_nm σ_mn) has no unique
full-operator form (docs/AMBIGUITIES-notes.md, "Zeeman and spin QGT with the Wannier position operator"): :func:`check_position_operator` refuses responses that read them while
the position operator is on (switch it off with ``wannier90.position_operator: false`` to
get the tight-binding approximation throughout); these are optional fields, computed (and stored) only for a
response that reads them, so no store holds them under the full operator.
"""

from __future__ import annotations

import numpy as np

from qgtflow.geometry import qmd
from qgtflow.geometry.groups import group_labels

from qgtflow.models.derivatives import index_maps

METRIC_DIPOLES = ("quantum_metric_dipole_density", "bcp_dipole_density")
FULL_POSITION_FIELDS = ("berry_curvature", "berry_curvature_dipole_density", "quantum_metric", "bcp") + METRIC_DIPOLES
# optional fields with the position operator: Γ from the full ∂g, ∂∂g from position_quadrupole.py
FULL_POSITION_OPTIONAL = ("christoffel", "quantum_metric_quadrupole_density")
# fields whose definition contains the interband Berry connection A^a_nm (or the interband velocity) but whose
# continuation to the full position operator is not unique (docs/AMBIGUITIES-notes.md, docs/spin-position-operator.md
# §5): refused while it is on, with the reason of their family. Zeeman: 003 Eq. 3 pairs A with σ, and Eq. 3 and its
# fn. 82 form ∂_a<σ^b>_n differ by <∇_aσ^b>_nn = −i<[A^W_a, σ^b]>_nn.
ZEEMAN_REFUSED = ("zeeman_qgt_metric", "zeeman_qgt_curvature", "zeeman_bcp", "zeeman_hspace_bcp",
                  "zeeman_nonlinear_sea", "zeeman_qgt_curvature_dipole", "zeeman_bcp_dipole",
                  "zeeman_hspace_bcp_dipole", "zeeman_qgt_metric_pair", "zeeman_qgt_curvature_pair")
# the spin-current family (formerly SPIN_CURRENT_REFUSED): reads only the full velocity 𝒱^a = ∂_aH − i[A^W_a, H]
# (and ∂𝒱) and σ, computed with the position operator (geometry/spin.py spin_fields_position; vertex ¼{𝒱^a, σ^c},
# docs/spin-position-operator.md)
SPIN_FULL_VELOCITY_FIELDS = ("spin_velocity", "spin_velocity_derivative", "spin_qgt_metric", "spin_qgt_curvature",
                             "spin_qgt_metric_x_gap", "spin_bcp", "spin_nonlinear_sea", "spin_qgt_metric_x_gap_dipole",
                             "spin_qgt_curvature_dipole", "spin_bcp_dipole", "spin_qgt_metric_pair",
                             "spin_qgt_curvature_pair")
TB_ONLY_FIELDS = ZEEMAN_REFUSED
# fields the position operator does not enter at all: band energies and their k-derivatives (functions of H(k)
# only), and the on-site spin expectation Tr[P σ] (σ constant in the basis |χ_m(k)>, models/w90spin.py)
TB_INDEPENDENT_FIELDS = ("energy", "velocity", "inverse_mass", "energy_third_derivative", "spin_expectation")
# every field of the geometry catalogue (fields.FIELD_SPECS) and the bands stage's Λ (from velocity and 𝒢), by
# how the position operator enters it (table: docs/position-quadrupole.md)
POSITION_CLASSES = {"full operator": FULL_POSITION_FIELDS + FULL_POSITION_OPTIONAL + (qmd.NAME,)
                                     + SPIN_FULL_VELOCITY_FIELDS,
                    "independent of it": TB_INDEPENDENT_FIELDS, "refused": TB_ONLY_FIELDS}
WHY_REFUSED = {
    "zeeman": ("003 Eq. 3 with the full Berry connection and its fn. 82 form ∂_a<σ^b>_n differ by "
               "<∇_aσ^b>_nn = −i<[A^W_a, σ^b]>_nn"),
}
NOTE = "docs/AMBIGUITIES-notes.md, 'Zeeman and spin QGT with the Wannier position operator'; docs/spin-position-operator.md"
HOW_TO_GET = "set model.wannier90.position_operator: false (tight-binding approximation throughout)"


def why_refused(names) -> str:
    """Why the refused fields ``names`` are not defined with the position operator (one clause per family)."""
    families = [f for f, members in (("zeeman", ZEEMAN_REFUSED),)
                if set(names) & set(members)]
    reasons = "; ".join(WHY_REFUSED[f] for f in families)
    return f"are not defined with the Wannier position operator ({reasons} — {NOTE})"


BATCH = 256  # k-points per batched product (memory ~ d² × BATCH × n² complex)


def position_operator_on(model) -> bool:
    """Whether ``model`` (or one of its sectors) carries the Wannier position operator."""
    return any(getattr(m, "position", None) is not None for m in (getattr(model, "sectors", None) or [model]))


def check_position_fields(model, names, key: str) -> None:
    """Refuse (one line) the fields ``names`` of the settings ``key`` that do not include the position operator
    while it is on (the bands stage's path and map fields)."""
    bad = sorted(set(names) & set(TB_ONLY_FIELDS)) if position_operator_on(model) else []
    if bad:
        from qgtflow.errors import ModelError

        raise ModelError(f"{key}: {bad} {why_refused(bad)}; expected fields of {list(FULL_POSITION_FIELDS)} or the "
                         f"others of the catalogue, or {HOW_TO_GET}")


def check_position_operator(model, responses, fields_of) -> None:
    """Refuse (one line) responses reading fields that do not include the position operator while it is on.

    ``fields_of(response)``: the geometry fields one response reads."""
    if not position_operator_on(model):
        return
    for r in responses:
        bad = sorted(set(fields_of(r)) & set(TB_ONLY_FIELDS))
        if bad:
            from qgtflow.errors import ModelError

            raise ModelError(f"response {r!r} reads {bad}, which {why_refused(bad)}; expected responses of the "
                             f"other fields, or {HOW_TO_GET}")


def rotate(U: np.ndarray, M: np.ndarray) -> np.ndarray:
    """U†M_s U of Hermitian matrices M (B, s, n, n) stacked over s (U (B, n, n)): (M U)_s as one gemm per k-point,
    then U†M U = (M U)† U — BLAS-3 over the batch, as ``batched.eigenbasis``."""
    B, s, n = M.shape[0], M.shape[1], M.shape[-1]
    MU = np.matmul(np.ascontiguousarray(M).reshape(B, s * n, n), U).reshape(B, s, n, n)
    MUh = np.ascontiguousarray(np.conj(MU.swapaxes(-1, -2))).reshape(B, s * n, n)
    return np.matmul(MUh, U).reshape(B, s, n, n)


def rotate_diag(U: np.ndarray, M: np.ndarray) -> np.ndarray:
    """diag(U†M_s U) (B, s, n) of M (B, s, n, n): one gemm per k-point and a row sum."""
    B, s, n = M.shape[0], M.shape[1], M.shape[-1]
    MU = np.matmul(np.ascontiguousarray(M).reshape(B, s * n, n), U).reshape(B, s, n, n)
    return np.einsum("bsli,bli->bsi", MU, np.conj(U))


def _row_trace(A, B):
    """Per row r: Σ_j A_rj B_jr, (B, n)."""
    return np.einsum("brj,bjr->br", A, B)


def connection_for(position, k: np.ndarray, order: int) -> np.ndarray:
    """What the external terms read of ``position`` (a ``PositionOperator``) at ``k``: for ``order`` ≥ 1 A^W and
    all its derivatives to that order, (N, d, U, n, n) (2: the dipoles, the quadrupole; 1: every ∂_aA^W_b, the
    spin fields that read ∂𝒱); for 0 A^W and the antisymmetric Ω^W_ab = ∂_aA^W_b − ∂_bA^W_a only, (N, d + P, n, n),
    all that Ω, g and 𝒢 read, half the Bloch sums of order 1 (:func:`external_from_eigenbasis` takes either)."""
    return position.unique_derivatives(k, order=order) if order else position.connection_curvature(k)


def external_terms(Hu: np.ndarray, Au: np.ndarray, dim: int, threshold: float, dipole: bool = True,
                   metric: bool = False, metric_dipole: bool = False):
    """External terms per band: {"berry_curvature": (N, n, d, d) [a, b], "berry_curvature_dipole_density":
    (N, n, d, d, d) [a, b, c] = ∂_c Ω^ab (``dipole``), "quantum_metric", "bcp": (N, n, d, d) (``metric``),
    "quantum_metric_dipole_density", "bcp_dipole_density": (N, n, d, d, d) [a, b, c] = ∂_c g^ab, ∂_c 𝒢^ab
    (``metric_dipole``)}. Diagonalises H itself; the geometry kernel's batched path reuses its own eigenbasis
    instead (:func:`external_from_eigenbasis`, :class:`ExternalTerms`)."""
    N, n = Hu.shape[0], Hu.shape[2]
    out = {name: np.zeros((N, n) + shape) for name, shape in _shapes(dim, dipole, metric, metric_dipole).items()}
    for lo in range(0, N, BATCH):
        hi = min(N, lo + BATCH)
        for name, value in _batch(Hu[lo:hi], Au[lo:hi], dim, threshold, dipole, metric, metric_dipole).items():
            out[name][lo:hi] = value
    return out


def _shapes(d, dipole, metric, metric_dipole) -> dict:
    """Per-band shapes (after kpoint, band) of the external terms asked for."""
    shapes = {"berry_curvature": (d, d)}
    if dipole:
        shapes["berry_curvature_dipole_density"] = (d, d, d)
    if metric:
        shapes.update({"quantum_metric": (d, d), "bcp": (d, d)})
    if metric_dipole:
        shapes.update({name: (d, d, d) for name in METRIC_DIPOLES})
    return shapes


def _second_projector_rows(W, V, Vh, X, S, c, a):
    """(∂_c∂_aP)_{DD̄} rows of every band's group (the last formula of the module docstring)."""
    return X * (W + Vh[c] @ V[a] + Vh[a] @ V[c] - X * ((V[c] * S) @ V[a] + (V[a] * S) @ V[c]))


def _hamiltonian_slots(d: int, second: bool) -> np.ndarray:
    """Slots of the compact derivative array the external terms read in the eigenbasis: ∂H, and ∂²H for dipoles."""
    end = 1 + d + (d * (d + 1) // 2 if second else 0)
    return np.arange(1, end)


def _batch(Hu, Au, d, threshold, dipole, metric=False, metric_dipole=False):
    """One batch diagonalised here: eigenbasis, U†∂H U (and U†∂²H U for dipoles), then the shared terms."""
    E, U = np.linalg.eigh(Hu[:, 0])
    slots = _hamiltonian_slots(d, dipole or metric_dipole)
    R = np.zeros((Hu.shape[0], slots[-1] + 1) + Hu.shape[2:], np.complex128)
    R[:, slots] = rotate(U, Hu[:, slots])
    return external_from_eigenbasis(E, U, R, Au, d, threshold, dipole, metric, metric_dipole)


def external_from_eigenbasis(E, U, R, Au, d, threshold, dipole=True, metric=False, metric_dipole=False) -> dict:
    """The external terms per band (as :func:`external_terms`) of a batch already in its eigenbasis: E (B, n)
    ascending, U (B, n, n) the eigenvectors, R (B, ≥ U, n, n) the matrix elements U†∂H U in the slots of the
    compact derivative array (full matrices of ∂H, and of ∂²H for the dipoles: ``batched.eigenbasis`` fills
    them); Au (B, d, U, n, n) the derivatives of A^W, or without the dipoles (B, d + P, n, n), A^W and Ω^W of
    ``PositionOperator.connection_curvature`` (all that Ω, g and 𝒢 read: :func:`connection_for`). A^W, ∂A^W go
    to the eigenbasis by :func:`rotate` / :func:`rotate_diag` (stacked products over the batch)."""
    i1, i2, _ = index_maps(d)
    B, n = E.shape
    curvature_form = Au.ndim == 4  # (B, d + P, n, n): A^W_a, then Ω^W_ab for a < b
    if curvature_form and (dipole or metric_dipole):
        raise ValueError("the dipoles read every ∂_aA^W_b and ∂²A^W: pass PositionOperator.unique_derivatives(k, 2)")
    grp = group_labels(E, threshold)
    same = grp[:, :, None] == grp[:, None, :]
    size = same.sum(axis=2)
    Ebar = np.einsum("bij,bj->bi", same, E) / size
    gap = Ebar[:, :, None] - Ebar[:, None, :]
    X = np.where(same, 0.0, 1.0 / np.where(same, 1.0, gap))
    S = same.astype(float)
    V = [R[:, i1[a]] for a in range(d)]
    Vh = [v * X for v in V]  # V̂^a = V^a ∘ X: (∂_aP)_{DD̄} rows
    if curvature_form:  # one gemm per k-point over A^W and Ω^W ((B, d + P, n, n) contiguous: no copy), then U†A U
        MU = np.matmul(Au.reshape(B, -1, n), U).reshape(Au.shape)
        MUh = np.ascontiguousarray(np.conj(MU[:, :d].swapaxes(-1, -2))).reshape(B, d * n, n)
        Abar = list(np.moveaxis(np.matmul(MUh, U).reshape(B, d, n, n), 1, 0))
    else:
        Abar = list(np.moveaxis(rotate(U, Au[:, :, 0]), 1, 0))
    dA = None
    if dipole or metric_dipole:  # the dipoles read U† ∂_a A_b U whole
        rot = rotate(U, Au[:, :, i1].reshape((B, d * d) + Au.shape[-2:])).reshape(B, d, d, n, n)
        dA = [[rot[:, b, a] for a in range(d)] for b in range(d)]  # dA[b][a] = U† ∂_a A_b U
        omega_diag = {(a, b): np.einsum("bii->bi", dA[b][a] - dA[a][b]).real
                      for a in range(d) for b in range(a + 1, d)}
    else:  # Ω, g, 𝒢 only the diagonal of Ū†Ω^W_ab U (a < b): one product per k and pair
        pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
        if curvature_form:  # diag(U†Ω^W U) from the product above
            diag = np.einsum("bsli,bli->bsi", MU[:, d:], np.conj(U)).real
        else:
            omega = np.stack([Au[:, b, i1[a]] - Au[:, a, i1[b]] for a, b in pairs], axis=1)
            diag = rotate_diag(U, omega).real if pairs else None
        omega_diag = dict(zip(pairs, np.moveaxis(diag, 1, 0))) if pairs else {}
    # Tr[∂_aP A_b] per row: 2 Re Σ_j V̂^a_rj Ā_b,jr
    t2 = np.array([[2.0 * _row_trace(Vh[a], Abar[b]).real for b in range(d)] for a in range(d)])  # (a, b, B, n)
    curv = np.empty((B, n, d, d))
    for a in range(d):
        for b in range(d):
            # diag Ū†Ω^W_ab U (antisymmetric in a, b) + the projector terms
            w = omega_diag[(a, b)] if a < b else -omega_diag[(b, a)] if a > b else 0.0
            curv[:, :, a, b] = w + t2[a, b] - t2[b, a]
    Q = {}
    if dipole or metric_dipole:
        for c in range(d):
            for a in range(c, d):
                Q[(c, a)] = Q[(a, c)] = _second_projector_rows(R[:, i2[c, a]], V, Vh, X, S, c, a)
    dcurv = None
    if dipole:
        dcurv = np.empty((B, n, d, d, d))
        # diag U†∂_c∂_a A_b U for the (b, slot of (c, a)) with a ≠ b that ∂_cΩ^W_ab reads: 15 of the 18 in 3D
        # (∂_b∂_b A_b never enters Ω^W_ab)
        read = sorted({(b, int(i2[c, a])) for a in range(d) for b in range(d) if a != b for c in range(d)})
        where = {pair: r for r, pair in enumerate(read)}
        rows = np.array([b for b, _ in read]), np.array([u for _, u in read])
        d2A = rotate_diag(U, Au[:, rows[0], rows[1]]).real  # (B, len(read), n)
        VA = [[Vh[a] @ Abar[b] for b in range(d)] for a in range(d)]  # diag(V̂^a Ā_b V̂^c) = row traces of VA, V̂^c
        # Tr[∂_caP A_b] per row, for every (c, a) pair (symmetric) and b
        t3 = np.empty((d, d, d, B, n))
        for c in range(d):
            for a in range(c, d):
                M = (Vh[c] @ Vh[a] + Vh[a] @ Vh[c]) * S
                for b in range(d):
                    dd = _row_trace(M, Abar[b])
                    bb = -(_row_trace(VA[a][b], Vh[c]) + _row_trace(VA[c][b], Vh[a]))
                    od = 2.0 * _row_trace(Q[(c, a)], Abar[b]).real
                    t3[c, a, b] = t3[a, c, b] = (dd + bb).real + od
        for a in range(d):
            for b in range(d):
                if a == b:
                    dcurv[:, :, a, b, :] = 0.0
                    continue
                omega_w = dA[b][a] - dA[a][b]
                for c in range(d):
                    # ∂_c Ω^W_ab = ∂_c∂_a A_b − ∂_c∂_b A_a (diagonal in the eigenbasis only)
                    d2 = d2A[:, where[b, int(i2[c, a])]] - d2A[:, where[a, int(i2[c, b])]]
                    val = 2.0 * _row_trace(Vh[c], omega_w).real + d2
                    val += t3[c, a, b] + 2.0 * _row_trace(Vh[a], dA[b][c]).real
                    val -= t3[c, b, a] + 2.0 * _row_trace(Vh[b], dA[a][c]).real
                    dcurv[:, :, a, b, c] = val
    out = {"berry_curvature": curv}
    if dipole:
        out["berry_curvature_dipole_density"] = dcurv
    if metric:
        out.update(_metric_rows(Abar, Vh, X, S, d))
    if metric_dipole:
        full = _metric_dipole_rows(Abar, dA, V, Vh, Q, X, S, d)
        tight_binding = _metric_dipole_rows(None, None, V, Vh, Q, X, S, d)
        out.update({name: full[name] - tight_binding[name] for name in METRIC_DIPOLES})
    # band value = group trace / group size (one product per k-point over all components)
    avg = S / size[:, :, None]
    return {name: np.matmul(avg, value.reshape(B, n, -1)).reshape(value.shape) for name, value in out.items()}


class ExternalTerms:
    """The external terms of one chunk computed from the geometry kernel's eigenbasis (the ``extra`` callback of
    ``batched.geometry_batched``: called per block of k-points with its E, U and rotated ∂H, ∂²H), then added to
    the kernel's fields by :meth:`add_to`. ``Au``: A^W derivatives at the chunk's k (to second order for a
    dipole); ``core``: the fields the caller keeps."""

    def __init__(self, Au: np.ndarray, dim: int, threshold: float, core=FULL_POSITION_FIELDS):
        wanted = set(core)
        self.dipole = "berry_curvature_dipole_density" in wanted
        self.metric = bool(wanted & {"quantum_metric", "bcp"})
        self.metric_dipole = bool(wanted & set(METRIC_DIPOLES))
        self.Au, self.dim, self.threshold, self.wanted = Au, dim, float(threshold), wanted
        N, n = Au.shape[0], Au.shape[-1]
        self.out = {name: np.zeros((N, n) + shape)
                    for name, shape in _shapes(dim, self.dipole, self.metric, self.metric_dipole).items()}

    def __call__(self, lo: int, hi: int, E: np.ndarray, U: np.ndarray, R: np.ndarray) -> None:
        for name, value in external_from_eigenbasis(E, U, R, self.Au[lo:hi], self.dim, self.threshold, self.dipole,
                                                    self.metric, self.metric_dipole).items():
            self.out[name][lo:hi] = value

    def add_to(self, fields: dict) -> None:
        for name, value in self.out.items():
            if name in self.wanted:
                fields[name] += value


def _metric_rows(Abar, Vh, X, S, d):
    """External rows of g and 𝒢: Re Σ_m (𝒜^a_rm 𝒜^b_mr − A^{H,a}_rm A^{H,b}_mr) (× 2 X_rm for 𝒢), 𝒜 = Āo − iV̂,
    Āo = Ā off the group blocks (Q^ab_D above, minus the tight-binding part the kernel computed)."""
    B, n = X.shape[0], X.shape[1]
    Ao = [a * (1.0 - S) for a in Abar]
    g = np.empty((B, n, d, d))
    bcp = np.empty((B, n, d, d))
    for a in range(d):
        for b in range(a, d):
            # 𝒜^a_rm 𝒜^b_mr − (−iV̂^a_rm)(−iV̂^b_mr): the ĀĀ and the two Ā·V̂ cross terms
            p = (Ao[a] * np.swapaxes(Ao[b], 1, 2) - 1j * Ao[a] * np.swapaxes(Vh[b], 1, 2)
                 - 1j * Vh[a] * np.swapaxes(Ao[b], 1, 2)).real
            g[:, :, a, b] = g[:, :, b, a] = p.sum(axis=2)
            bcp[:, :, a, b] = bcp[:, :, b, a] = 2.0 * (p * X).sum(axis=2)
    return {"quantum_metric": g, "bcp": bcp}


def _metric_dipole_rows(Abar, dA, V, Vh, Q, X, S, d):
    """Per-row ∂_c g^ab and ∂_c 𝒢^ab of the group QGT Q^ab_D = Tr[P D_aP D_bP] (module docstring), [a, b, c];
    ``Abar is None``: the same construction without the basis connection (the tight-binding part).

    With the rows of every band's group r ∈ D, j ∉ D: 𝔇^a_rj = (D_aP)_rj = V̂^a_rj + iĀ^a_rj and
    Y^ca_rj = (∂_c D_aP)_rj = (∂_caP)_rj + i(∂_cĀ^a)_rj − i((Ā^a∘S)V̂^c − V̂^cĀ^a)_rj (D_aP, ∂_c D_aP Hermitian;
    Tr[∂_cP D_aP D_bP] = 0, a product of three block-off-diagonal matrices), so
        ∂_c g^ab_D = Re Σ_{r∈D, j} (Y^ca_rj 𝔇^b*_rj + 𝔇^a_rj Y^cb*_rj),
    and with 𝒢^ab_D = 2 Re Tr[P D_aP R D_bP], R = Σ_{m∉D} |m⟩⟨m| / (ε̄_D − ε̄_m) (R_jj = X_rj), whose D̄D̄ block
    of ∂_cR = −∂_cP R − R ∂_cP + R (∂_cH − ∂_c ε̄_D) R is R (V^c − ∂_c ε̄_D) R,
        ∂_c 𝒢^ab_D = 2 Re Σ_{r∈D} [Σ_j X_rj (Y^ca_rj 𝔇^b*_rj + 𝔇^a_rj Y^cb*_rj) + (Z^a V^c Z^b†)_rr
                                    − ∂_c ε̄_D Σ_j X_rj Z^a_rj 𝔇^b*_rj],   Z^a = 𝔇^a ∘ X."""
    B, n = X.shape[0], X.shape[1]
    off = 1.0 - S
    size = S.sum(axis=2)
    if Abar is None:
        Dr = list(Vh)
        Y = {(c, a): Q[(c, a)] for c in range(d) for a in range(d)}
    else:
        Dr = [Vh[a] + 1j * Abar[a] * off for a in range(d)]
        Y = {(c, a): Q[(c, a)] + 1j * off * (dA[a][c] - (Abar[a] * S) @ Vh[c] + Vh[c] @ Abar[a])
             for c in range(d) for a in range(d)}
    Z = [x * X for x in Dr]
    dg = np.empty((B, n, d, d, d))
    dbcp = np.empty((B, n, d, d, d))
    for c in range(d):
        dE = np.einsum("bij,bjj->bi", S, V[c]).real / size  # ∂_c ε̄_D per row
        for a in range(d):
            ZV = Z[a] @ V[c]
            for b in range(a, d):
                pair = Y[(c, a)] * np.conj(Dr[b]) + Dr[a] * np.conj(Y[(c, b)])
                dg[:, :, a, b, c] = dg[:, :, b, a, c] = pair.real.sum(axis=2)
                resolvent = (ZV * np.conj(Z[b])).sum(axis=2) - dE * (Z[a] * np.conj(Dr[b]) * X).sum(axis=2)
                dbcp[:, :, a, b, c] = dbcp[:, :, b, a, c] = 2.0 * ((pair * X).sum(axis=2) + resolvent).real
    return {"quantum_metric_dipole_density": dg, "bcp_dipole_density": dbcp}


def christoffel_symbols(metric_dipole: np.ndarray) -> np.ndarray:
    """Γ_abc = ½(∂_c g_ab + ∂_b g_ac − ∂_a g_bc) (000 Eq. 16) from ∂_c g^ab [..., a, b, c] (here the full-operator
    one); (N, n, d, d, d) [a, b, c]."""
    return 0.5 * (metric_dipole + np.swapaxes(metric_dipole, -1, -2)
                  - np.moveaxis(metric_dipole, -1, -3))


def add_external_terms(fields: dict, model, k: np.ndarray, Hu: np.ndarray, threshold: float,
                       core=FULL_POSITION_FIELDS, Au: np.ndarray | None = None) -> None:
    """Add the external terms of ``model.position`` to the computed fields (in place) that include them;
    ``core``: the fields the caller keeps (the others are left as the kernel gave them); ``Au``: the derivatives
    of A^W at ``k`` if the caller has them (to second order when a dipole is kept)."""
    wanted = set(core)
    dipole, metric_dipole = "berry_curvature_dipole_density" in wanted, bool(wanted & set(METRIC_DIPOLES))
    # Ω, g, 𝒢 read A and ∂A; their dipoles also ∂²A (and H to the same orders: ``Hu`` holds at least those)
    if Au is None:
        Au = connection_for(model.position, k, 2 if dipole or metric_dipole else 0)
    ext = external_terms(Hu, Au, model.dim, threshold, dipole=dipole, metric=bool(wanted & {"quantum_metric", "bcp"}),
                         metric_dipole=metric_dipole)
    for name, value in ext.items():
        if name in wanted:
            fields[name] += value
