"""Field catalogue of the geometry stage and the chunk-level entry point.

Each field: dims (after ``kpoint``), the powers of (model energy, model length) of its unit,
a long name and its formula reference. Stored names are the CATALOG's and stay stable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from qgtflow.geometry.clifford import sparse_structure, structure_constants
from qgtflow.geometry.batched import OUTPUTS, POSITION_BATCHED_MIN_BANDS, geometry_batched, use_batched
from qgtflow.geometry.kernels import block_count, block_threads, clifford_chunk, geometry_chunk, geometry_chunk_gauge
from qgtflow.geometry.spin import SPIN_DIPOLE_INFO, SPIN_FIELD_INFO, SPIN_PAIR_INFO
from qgtflow.models.derivatives import compact, index_maps, slot_count


@dataclass(frozen=True)
class FieldSpec:
    name: str
    dims: tuple[str, ...]
    energy_power: int
    length_power: int
    long_name: str
    formula: str
    optional: bool = False  # computed (and stored) only when a requested response reads it


FIELD_SPECS = {f.name: f for f in [
    FieldSpec("energy", ("band",), 1, 0, "band energy ε_n", "eigenvalue of H(k)"),
    FieldSpec("velocity", ("band", "i"), 1, 1, "band velocity times ħ, ∂_i ε_n",
              "V^i_nn = <u_n|∂_i H|u_n> (group average over degenerate bands); CATALOG"),
    FieldSpec("inverse_mass", ("band", "i", "j"), 1, 2, "inverse-mass tensor times ħ², ∂_i∂_j ε_n",
              "W^ij_nn + 2 Re Σ_m V^i_nm V^j_mn / ε_nm; 004, 001"),
    FieldSpec("energy_third_derivative", ("band", "i", "j", "k"), 1, 3, "third derivative ∂_i∂_j∂_k ε_n",
              "∂_k of inverse_mass with exact matrix-element derivatives; 001 Eq. 11, 004 Eq. 7"),
    FieldSpec("berry_curvature", ("band", "i", "j"), 0, 2, "Berry curvature Ω^ij_n",
              "Ω^ij_n = −2 Im Σ_m A^i_nm A^j_mn; 000, 001, 004"),
    FieldSpec("quantum_metric", ("band", "i", "j"), 0, 2, "quantum metric g^ij_n",
              "g^ij_n = Re Σ_m A^i_nm A^j_mn; 000 Eq. 7, 002 Eq. 7"),
    FieldSpec("bcp", ("band", "i", "j"), -1, 2, "band-normalized quantum metric (BCP / e) 𝒢^ij_n",
              "𝒢^ij_n = 2 Re Σ_m A^i_nm A^j_mn / (ε_n − ε_m); 001 (AMBIGUITIES 001.2)"),
    FieldSpec("berry_curvature_dipole_density", ("band", "i", "j", "k"), 0, 3, "Berry-curvature dipole density ∂_k Ω^ij_n",
              "exact ∂_k of Ω^ij_n (sum over states, covariant matrix-element derivatives); 001 Eq. 12"),
    FieldSpec("quantum_metric_dipole_density", ("band", "i", "j", "k"), 0, 3, "quantum-metric dipole density ∂_k g^ij_n",
              "exact ∂_k of g^ij_n (sum over states); 002 Eq. 10"),
    FieldSpec("bcp_dipole_density", ("band", "i", "j", "k"), -1, 3, "BCP dipole density ∂_k 𝒢^ij_n",
              "exact ∂_k of 𝒢^ij_n (sum over states); 001 Eq. 13"),
    FieldSpec("quantum_metric_quadrupole_density", ("band", "i", "j", "k", "l"), 0, 4,
              "quantum-metric quadrupole density ∂_k∂_l g^ij_n",
              "exact second derivative of g^ij_n from band-projector derivatives (geometry/projector.py; covariant ones "
              "with the Wannier position operator, geometry/position_quadrupole.py); "
              "000 Eq. 15, Eq. 20 plus its missing term (AMBIGUITIES 000.1)", optional=True),
    FieldSpec("christoffel", ("band", "i", "j", "k"), 0, 3, "Christoffel symbol of the quantum metric Γ_ijk",
              "Γ_abc = ½(∂_c g_ab + ∂_b g_ac − ∂_a g_bc); 000 Eq. 16", optional=True),
]}
# 003 spin and Zeeman quantum geometry (geometry/spin.py): optional, need the model's spin operator; the
# spin component (σ^x, σ^y, σ^z) is the last dim, ``spin`` (labels x, y, z). Pair-resolved fields (dims band,
# band_m: O(n²) per k) feed the frequency-dependent 003 Eq. 7–8; for sector models they are block diagonal.
FIELD_SPECS.update({name: FieldSpec(name, dims, ep, lp, long_name, formula, optional=True)
                    for name, (dims, ep, lp, long_name, formula)
                    in {**SPIN_FIELD_INFO, **SPIN_DIPOLE_INFO, **SPIN_PAIR_INFO}.items()})
# kernel level a core field needs (kernels.geometry_chunk): 1 = H and ∂H only, 2 = also ∂²H, 3 = the exact
# k-derivatives (covariant DV, ∂³H); "compute only what is read": the kernel runs at the highest level asked
FIELD_LEVEL = {"energy": 1, "velocity": 1, "berry_curvature": 1, "quantum_metric": 1, "bcp": 1, "inverse_mass": 2,
               "energy_third_derivative": 3, "berry_curvature_dipole_density": 3, "quantum_metric_dipole_density": 3,
               "bcp_dipole_density": 3}
SPIN_OPTIONAL_FIELDS = tuple(SPIN_FIELD_INFO) + tuple(SPIN_DIPOLE_INFO) + tuple(SPIN_PAIR_INFO)
CORE_FIELDS = tuple(name for name, spec in FIELD_SPECS.items() if not spec.optional)
OPTIONAL_FIELDS = tuple(name for name, spec in FIELD_SPECS.items() if spec.optional)


NEAR_DEGENERACY_FACTOR = 10.0  # bands split by threshold ≤ Δε < this × threshold are "near-degenerate"
NEAR_DEGENERACY_FRACTION = 0.05  # warn when more than this fraction of the k-points has such a pair (crossings
# of real bands put ~1e-3–1e-2 of a grid within 1 meV; rounding-split symmetry degeneracies most or all of it)


def near_degenerate_fraction(energy, threshold: float, sectors=None) -> float:
    """Fraction of k-points where two adjacent bands are left ungrouped although split by less than
    ``NEAR_DEGENERACY_FACTOR × threshold`` (energy (N, n) sorted per k; a NumPy or Dask array).

    Symmetry degeneracies of Wannier models are exact only to the Wannierisation's accuracy (μeV); bands
    split that little but not grouped carry huge, opposite per-band Ω ∝ 1/Δε², which Fermi factors at
    finite T do not cancel (a spurious AHC of order 1/Δε). Many such points mean the threshold is too small.
    ``sectors``: sector label per band (independent blocks, each sorted on its own; pairs across sectors are
    not compared).
    """
    n = energy.shape[0]
    return float(near_degenerate_count(energy, threshold, sectors)) / n if n else 0.0


def near_degenerate_count(energy, threshold: float, sectors=None):
    """How many k-points of ``energy`` :func:`near_degenerate_fraction` counts (summed chunk by chunk when the
    energies are never stored)."""
    labels = np.zeros(energy.shape[1], int) if sectors is None else np.asarray(sectors)
    same = labels[1:] == labels[:-1]
    gap = energy[:, 1:] - energy[:, :-1]
    return ((gap >= threshold) & (gap < NEAR_DEGENERACY_FACTOR * threshold) & same).any(axis=1).sum()


def near_degeneracy_warning(fraction: float, threshold: float, label: str) -> str | None:
    """The user-facing warning for :func:`near_degenerate_fraction` (None below the reporting fraction)."""
    if fraction <= NEAR_DEGENERACY_FRACTION:
        return None
    return (f"{label}: at {100 * fraction:.3g}% of the k-points two bands split by less than "
            f"{NEAR_DEGENERACY_FACTOR:g} x degeneracy_threshold = {NEAR_DEGENERACY_FACTOR * threshold:g} (model energy "
            f"units) are treated as separate bands; if they are symmetry-degenerate bands split by rounding or "
            f"Wannierisation errors, raise degeneracy_threshold (now {threshold:g}) above that splitting")


def stored_fields(required: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Fields a geometry store holds: every core field plus the optional ones ``required`` names."""
    return list(CORE_FIELDS) + [f for f in OPTIONAL_FIELDS if f in required]


def field_units(spec: FieldSpec, units) -> str:
    """Unit string of a field in the study's model units."""
    return units.model_units(spec.energy_power, spec.length_power)


def compute_fields(model, k: np.ndarray, degeneracy_threshold: float = 1e-6, gauge_seed: int = -1,
                   n_threads: int | None = None, closed_form: bool = True, reuse_buffers: bool = False,
                   optional: tuple[str, ...] = (), core: tuple[str, ...] | None = None,
                   batched: bool | None = None) -> dict[str, np.ndarray]:
    """All geometry fields of ``model`` at k-points ``k`` (N, dim), as {name: array (N, ...)}.

    ``core``: the core fields wanted (default all); the kernel runs at the lowest :data:`FIELD_LEVEL` that
    gives them and only they are returned (identical values to a full run).
    ``closed_form``: use the Clifford-model formulas when the model has an anticommuting basis
    (all two-band models, Dirac-matrix models such as 001 Eq. 20); else the sum over states.
    ``reuse_buffers``: write into per-thread arrays kept between calls of the same shape (the
    returned arrays are overwritten by the next call) — saves page faults on large chunks.

    ``gauge_seed`` ≥ 0 rotates eigenvectors by random unitaries inside degenerate groups
    (random phases for simple bands) — a test hook for gauge invariance.
    ``optional``: names of optional fields (see :data:`OPTIONAL_FIELDS`) to compute as well.
    ``batched``: eigenbasis by batched LAPACK/BLAS (``geometry/batched.py``) or per k in numba; None chooses
    by band count (:func:`qgtflow.geometry.batched.use_batched`). Same values either way; True always runs the
    sum over states (no Clifford closed form).
    """
    k = np.ascontiguousarray(np.asarray(k, float).reshape(-1, model.dim))
    unknown = sorted(set(optional) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(f"unknown optional fields {unknown}; available: {list(OPTIONAL_FIELDS)}")
    check_spin_operator(model, optional)
    core = CORE_FIELDS if core is None else tuple(core)
    position = getattr(model, "position", None) is not None
    if position:  # no field without a full-operator form is computed in the tight-binding approximation silently
        from qgtflow.geometry.position import check_position_fields

        check_position_fields(model, optional, "optional")
    # the full-operator Christoffel symbols come from the full ∂g (geometry/position.py)
    work = core + (("quantum_metric_dipole_density",) if position and "christoffel" in optional
                   and "quantum_metric_dipole_density" not in core else ())
    level = max((FIELD_LEVEL[name] for name in work), default=1)
    if getattr(model, "sectors", None):  # ⊕ of independent blocks: each on its own, stacked along band
        parts = [compute_fields(m, k, degeneracy_threshold, gauge_seed, n_threads, closed_form, optional=optional,
                                core=core, batched=batched)
                 for m in model.sectors]
        return {name: _block_diagonal([p[name] for p in parts]) if name in SPIN_PAIR_INFO
                else np.concatenate([p[name] for p in parts], axis=1) for name in parts[0]}
    gammas = model.clifford_gammas if closed_form else None
    # derivative orders the model builds: the kernel level (the position operator's external terms read H to the
    # same orders, geometry/position.py), all three for the optional fields, which read the full array
    order = 3 if optional else level
    extra = None
    if position:  # Wannier position operator: external terms of Ω, g, 𝒢 and their dipoles
        from qgtflow.geometry.position import ExternalTerms, connection_for

        # A^W to the order the kept fields read: ∂²A for the dipoles and the quadrupole, every ∂A for the spin
        # fields that read ∂𝒱, otherwise A^W and Ω^W only (connection_for: Ω, g, 𝒢 read no other ∂A)
        quadrupole = "quantum_metric_quadrupole_density" in optional
        spin_derivatives = bool(set(optional) & ({"spin_velocity_derivative"} | set(SPIN_DIPOLE_INFO)))
        Au = connection_for(model.position, k, 2 if level >= 3 or quadrupole else 1 if spin_derivatives else 0)
        closed = gammas is not None and gammas.shape[0] > 0 and gammas.shape[-1] == model.nbands
        if (use_batched(model.nbands, gauge_seed, closed, POSITION_BATCHED_MIN_BANDS) if batched is None
                else batched):  # the external terms from the kernel's own eigenbasis (no second eigh, rotation)
            extra, batched = ExternalTerms(Au, model.dim, degeneracy_threshold, work), True
    if reuse_buffers:
        out = _buffers(k.shape[0], model.nbands, model.dim)
        Hu = model.unique_derivatives(k, out=out.get("_hamiltonian"), order=order)
        out["_hamiltonian"] = Hu
        fields = fields_from_unique(Hu, model.dim, degeneracy_threshold, gauge_seed, n_threads, gammas, out,
                                    model.active_slots(), level, batched, extra)
    else:
        Hu = model.unique_derivatives(k, order=order)
        fields = fields_from_unique(Hu, model.dim, degeneracy_threshold, gauge_seed, n_threads, gammas,
                                    active=model.active_slots(), level=level, batched=batched, extra=extra)
    if extra is not None:
        extra.add_to(fields)
    elif position:  # per-k kernel: the external terms diagonalise on their own
        from qgtflow.geometry.position import add_external_terms

        add_external_terms(fields, model, k, Hu, degeneracy_threshold, work, Au)
    metric_dipole = fields.get("quantum_metric_dipole_density")
    fields = {name: fields[name] for name in core}
    quad = [name for name in optional if name not in SPIN_OPTIONAL_FIELDS]
    spin = [name for name in optional if name in SPIN_OPTIONAL_FIELDS]
    if quad and position:  # the full-operator Γ and ∂∂g (geometry/position.py, position_quadrupole.py)
        from qgtflow.geometry.position import christoffel_symbols
        from qgtflow.geometry.position_quadrupole import quadrupole_with_position

        if "christoffel" in quad:
            fields["christoffel"] = christoffel_symbols(metric_dipole)
        if "quantum_metric_quadrupole_density" in quad:
            fields["quantum_metric_quadrupole_density"] = quadrupole_with_position(Hu, Au, model.dim,
                                                                                   degeneracy_threshold)
    elif quad:
        from qgtflow.geometry.projector import quadrupole_fields

        extra = quadrupole_fields(Hu, model.dim, degeneracy_threshold, n_threads, model.active_slots(), gauge_seed)
        fields.update({name: extra[name] for name in quad})
    if spin:
        from qgtflow.geometry.spin import spin_fields, spin_fields_position

        check_spin_operator(model, spin)
        flags = dict(dipoles=any(name in SPIN_DIPOLE_INFO for name in spin),
                     pairs=any(name in SPIN_PAIR_INFO for name in spin), active=model.active_slots())
        if position:  # full velocity ∂_aH − i[A^W_a, H]; the fields without that form were refused above
            # ∂A^W only when ∂_b v^{a;c}_nn or a spin dipole is read (NumPy routes, each about one more kernel)
            derivatives = "spin_velocity_derivative" in spin or any(name in SPIN_DIPOLE_INFO for name in spin)
            Aw = Au if derivatives else Au[:, :model.dim, None] if Au.ndim == 4 else Au[:, :, :1]
            extra = spin_fields_position(Hu, Aw, model.dim, model.spin, degeneracy_threshold, n_threads, gauge_seed,
                                         **flags)
        else:
            extra = spin_fields(Hu, model.dim, model.spin, degeneracy_threshold, n_threads, gauge_seed, **flags)
        fields.update({name: extra[name] for name in spin})
    return fields


def _block_diagonal(parts: list[np.ndarray]) -> np.ndarray:
    """Pair fields (N, n_s, n_s, …) of independent sectors → (N, n, n, …), zero between sectors."""
    n = sum(p.shape[1] for p in parts)
    out = np.zeros((parts[0].shape[0], n, n) + parts[0].shape[3:])
    lo = 0
    for p in parts:
        hi = lo + p.shape[1]
        out[:, lo:hi, lo:hi] = p
        lo = hi
    return out


def check_spin_operator(model, names) -> None:
    """Refuse spin fields (003) for a model without a spin operator (``Model.spin``), sector by sector."""
    needed = [name for name in names if name in SPIN_OPTIONAL_FIELDS]
    if not needed:
        return
    models = getattr(model, "sectors", None) or [model]
    if any(getattr(m, "spin", None) is None for m in models):
        from qgtflow.errors import ModelError

        raise ModelError(f"model '{model.name}' has no spin operator, but the spin fields {needed} (003 spin and "
                         "Zeeman quantum geometry, read by the spin_* responses) need one: give the model a "
                         "`spin:` entry (three matrices σ^x, σ^y, σ^z; built in for massive_dirac and "
                         "snte_surface_dirac)")


# per thread: two chunks computed at once in one process (two evaluates in a user's ThreadPool, a Dask threads
# worker) would otherwise write each other's fields into the same arrays
_BUFFER_CACHE = threading.local()


def _buffers(N: int, n: int, d: int) -> dict[str, np.ndarray]:
    """The calling thread's reused arrays for chunks of N k-points, n bands, dim d (one shape kept per thread)."""
    key = (N, n, d)
    held = getattr(_BUFFER_CACHE, "held", None)
    if held is None or held[0] != key:
        _BUFFER_CACHE.held = held = (key, _allocate(N, n, d))  # keep one shape only (the chunk size)
    return held[1]


def _allocate(N: int, n: int, d: int) -> dict[str, np.ndarray]:
    return {
        "energy": np.empty((N, n)),
        "velocity": np.empty((N, n, d)),
        "inverse_mass": np.empty((N, n, d, d)),
        "energy_third_derivative": np.empty((N, n, d, d, d)),
        "berry_curvature": np.empty((N, n, d, d)),
        "quantum_metric": np.empty((N, n, d, d)),
        "bcp": np.empty((N, n, d, d)),
        "berry_curvature_dipole_density": np.empty((N, n, d, d, d)),
        "quantum_metric_dipole_density": np.empty((N, n, d, d, d)),
        "bcp_dipole_density": np.empty((N, n, d, d, d)),
    }


def fields_from_derivatives(H, dH, d2H, d3H, degeneracy_threshold=1e-6, gauge_seed=-1, n_threads=None):
    """The kernel on full derivative arrays H (N,n,n), ∂H (N,d,n,n), ∂²H, ∂³H."""
    return fields_from_unique(compact(H, dH, d2H, d3H), dH.shape[1], degeneracy_threshold, gauge_seed, n_threads)


def fields_from_unique(Hu, dim, degeneracy_threshold=1e-6, gauge_seed=-1, n_threads=None, gammas=None, out=None,
                       active=None, level=3, batched=None, extra=None):
    """The kernel call on the compact derivative array Hu (N, U, n, n) (see :func:`compute_fields`).

    ``gammas``: anticommuting basis of the model (``Model.clifford_gammas``) for the closed form;
    None runs the generic sum over states. ``out``: preallocated arrays (see ``_allocate``).
    ``active``: bool per derivative slot, False where the slot vanishes identically (its rotation is
    skipped); default all True. ``level``: kernel level (:data:`FIELD_LEVEL`); the fields above it are
    left unfilled (the caller drops them). ``batched``: see :func:`compute_fields`. ``extra``: the batched
    path's per-block callback (``batched.geometry_batched``); only with ``batched=True``.
    """
    N, n = Hu.shape[0], Hu.shape[2]
    d = dim
    out = _allocate(N, n, d) if out is None else out
    if N == 0:
        return out
    n_blocks = block_count(N, n_threads)
    i1, i2, i3 = index_maps(d)
    needed = slot_count(d, level)
    if Hu.shape[1] < needed:
        raise ValueError(f"derivative array has {Hu.shape[1]} slots; kernel level {level} reads {needed}")
    active = np.ones(Hu.shape[1], bool) if active is None else np.array(active, bool)[:Hu.shape[1]]
    active[(1 + d if level <= 1 else 1 + d + d * (d + 1) // 2 if level == 2 else Hu.shape[1]):] = False
    closed_form = gammas is not None and gammas.shape[0] > 0 and gammas.shape[-1] == n
    if extra is not None and batched is not True:
        raise ValueError("fields_from_unique: extra (a per-block callback of the batched eigenbasis) needs "
                         "batched=True")
    if use_batched(n, gauge_seed, closed_form) if batched is None else batched:
        if gauge_seed >= 0:
            raise ValueError("the batched eigenbasis has no gauge test hook (gauge_seed): use batched=False")
        geometry_batched(np.ascontiguousarray(Hu), i1, i2, i3, active, int(level), float(degeneracy_threshold),
                         block_threads(n_threads), out, extra)
        return out
    outputs = [out[name] for name in OUTPUTS]
    Hu = np.ascontiguousarray(Hu)
    if closed_form and gauge_seed < 0:  # the closed form; the sum over states only where the two levels touch
        c_idx, c_val = sparse_structure(structure_constants(gammas))
        done = np.empty(N, np.bool_)
        clifford_chunk(Hu, i1, i2, i3, int(level), float(degeneracy_threshold), n_blocks,
                       np.ascontiguousarray(gammas), c_idx, c_val, done, *outputs)
        ks = np.flatnonzero(~done)
        if ks.size == 0:
            return out
        n_blocks = block_count(ks.size, n_threads)
    else:
        ks = np.arange(N)
    if gauge_seed >= 0:
        geometry_chunk_gauge(Hu, ks.astype(np.int64), i1, i2, i3, active, int(level), float(degeneracy_threshold),
                             int(gauge_seed), n_blocks, *outputs)
    else:
        geometry_chunk(Hu, ks.astype(np.int64), i1, i2, i3, active, int(level), float(degeneracy_threshold), n_blocks,
                       *outputs)
    return out

