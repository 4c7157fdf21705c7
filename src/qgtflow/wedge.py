"""Irreducible-wedge sampling (``kgrid.symmetry_reduce``): which studies can use it, the point group the kgrid
store carries forward to the reduce stage, and the symmetrisation reduce applies to the wedge sums.

The kgrid stage keeps one k-point per orbit of the point group G (:func:`qgtflow.models.symmetry.irreducible_wedge`)
with weight m_k w (m_k = orbit size) and writes G into its attrs (:data:`ROTATIONS`, :data:`TIME_REVERSAL`, with
the ``grid_`` prefix the geometry stage copies, so reduce reads G from the store it reads, not from the model).
A 2D model with a spin operator stores the 3D lifts that operator respects (3 × 3, :func:`wedge_operations`):
their in-plane blocks act on k, the whole on the spin index; a lifted group also visits each orbit point |G|/m_k
times (each in-plane operation has the same number of kept lifts), so the identity below holds for it.

Why Σ_BZ F = P Σ_IBZ m_k F(k), P = (1/|G|) Σ_g D(g): every integrand is covariant, F(gk) = D(g) F(k) (energies are
invariant, the tensor transforms with its kind's signs), and Σ_g visits each of the m_k points of k's orbit
|G|/m_k times, so Σ_orbit F = (m_k/|G|) Σ_g D(g) F(k); P is linear and acts on the Cartesian indices only, so it
commutes with the energy histograms and the (μ, T) read-out and is applied once, to the reduced tensors.
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ConfigError
from qgtflow.kgrid import axis_sizes
from qgtflow.models.symmetry import (TENSOR_KINDS, classified, grid_invariance_problem, lifted_operations,
                                     schema_tolerance, study_operations, tensor_action)

ROTATIONS = "grid_symmetry_rotations"  # Cartesian R of every operation (model length basis)
TIME_REVERSAL = "grid_symmetry_time_reversal"  # θ of every operation (1: the operation includes time reversal)
N_FULL = "grid_n_full_kpoints"  # points of the full grid the wedge stands for
CART_DIMS = ("i", "j", "k", "l", "pseudovector", "spin")  # the responses' Cartesian dims (qgtflow.reduce.responses)


def requested(kgrid: dict) -> bool:
    """Whether the study's ``kgrid`` section asks for the irreducible wedge."""
    return bool((kgrid or {}).get("symmetry_reduce"))


def check_study(cfg: dict, model, key: str, operations=None) -> None:
    """Refuse (ConfigError naming the key) a study whose wedge sums cannot be symmetrised into the full-zone ones;
    ``cfg`` validated with defaults, ``key`` the study's prefix ('studies.A.' or ''), ``operations`` the crystal's
    point group if the caller has it (already checked against the model: :func:`check_operations`)."""
    kgrid = cfg["kgrid"]
    if not requested(kgrid):
        return
    here = f"{key}kgrid.symmetry_reduce"
    if not model.periodic:
        raise ConfigError(here, True, f"a periodic model with a `symmetry` crystal or generators (the k·p model "
                          f"{model.name!r} samples a window, which has no wedge; declare no symmetry_reduce for it: "
                          "its symmetry.generators still give the symmetry zeros)")
    if cfg.get("symmetry") is None:
        raise ConfigError(here, True, "a `symmetry` block (atoms and magnetic_moments, or generators): the wedge "
                          "is that of its point group")
    if cfg.get("integration") == "tetrahedron":
        raise ConfigError(here, True, "`integration: points` (tetrahedra need the whole uniform grid)")
    if kgrid.get("refine"):
        raise ConfigError(here, True, "no kgrid.refine (the refined grid is not built on the wedge)")
    if np.any(np.asarray(kgrid.get("shift") or 0.0, float) != 0):
        raise ConfigError(f"{key}kgrid.shift", kgrid.get("shift"), "0 with kgrid.symmetry_reduce (a Γ-centred grid)")
    if cfg.get("resolve_sectors"):
        raise ConfigError(here, True, "resolve_sectors: false (operations may map one sector onto another)")
    ac = cfg.get("omega") is not None
    lifted = False
    spin = spin_responses(cfg["responses"])
    if model.dim == 2 and spin:  # their symmetrisation needs the lifts the model's spin operator respects
        lifts, why = lifted_operations(model, cfg["symmetry"], f"{key}symmetry")
        if lifts is None:
            raise ConfigError(f"{key}responses", spin, f"with kgrid.symmetry_reduce, 2D spin responses whose "
                              f"operations act on the model's spin operator as 3D lifts ({why})")
        lifted = True
    other = [r for r in cfg["responses"] if not classified(r, model.dim, ac, lifted)]
    if other:
        known = sorted(r for r in TENSOR_KINDS if classified(r, model.dim, ac, lifted))
        raise ConfigError(f"{key}responses", other, "with kgrid.symmetry_reduce only responses with a classified "
                          f"symmetry action {known} (pair sums, model-evaluated and derived responses need the full "
                          "grid; 003's spin responses in 2D through the 3D lifts of the operations, the AC "
                          "forms of spin_sigma_lin_tau0 and spin_beta_lin_tau0 for their zeros only)")
    ops = operations if operations is not None else study_operations(model, cfg["symmetry"], f"{key}symmetry")
    for size in kgrid["sizes"]:
        problem = grid_invariance_problem(ops, model.reciprocal_vectors, axis_sizes(size, model.dim))
        if problem:
            raise ConfigError(f"{key}kgrid.sizes", size, f"a grid the point group maps onto itself ({problem})")


def stored_points(study, grid) -> tuple[int, int]:
    """(k-points, points per chunk) of the kgrid store of ``study``'s uniform ``grid`` (:func:`qgtflow.kgrid.make_grid`
    of its size): the grid itself, or with ``kgrid.symmetry_reduce`` an upper estimate of its irreducible wedge for the
    preflight and the jobs' memory (not counted: 6 s at 320³): N/|G| orbits of the |G| distinct k-actions plus
    2 N^((d−1)/d) for the points on mirror planes and axes, whose orbits are smaller (Burnside: the wedge has
    (1/|G|) Σ_g |Fix g| points; fe_like at 288³: 1 519 129 points, N/|G| = 1 492 992, the estimate 1 658 880)."""
    from qgtflow.kgrid import effective_chunk_size
    from qgtflow.models.symmetry import fractional_actions

    n = int(grid.n_points)
    if not requested(study.kgrid):
        return n, min(int(grid.chunk_size), n)
    actions = {tuple(np.round(M, 6).ravel()) for M in fractional_actions(wedge_operations(study),
                                                                         study.model.reciprocal_vectors)}
    d = len(grid.sizes)
    wedge = min(n, -(-n // len(actions)) + 2 * int(np.ceil(n ** ((d - 1) / d))))
    kg = study.kgrid
    return wedge, effective_chunk_size(wedge, int(kg["chunk_size"]), kg.get("max_chunks"))


def spin_responses(responses) -> list[str]:
    """The 003 spin responses among ``responses`` (their spin index needs a 2D model's 3D lifts)."""
    return [r for r in responses if r in TENSOR_KINDS and TENSOR_KINDS[r].spin]


def wedge_operations(study) -> list:
    """The point group the kgrid stage samples the wedge with and writes into the store: the crystal's operations,
    as their 3D lifts for a 2D model with a spin operator that has them
    (:func:`qgtflow.models.symmetry.lifted_operations`; a spin response without them is refused by
    :func:`check_study`), whose in-plane blocks act on k. They depend on the model and the crystal alone, the keys
    the kgrid store follows, not on the responses: a spin response added later reads a store that has them (the
    other kinds' symmetrisation is the same with the lifts)."""
    where = f"{study.where}symmetry"
    if study.model.dim == 2 and getattr(study.model, "spin", None) is not None:
        lifts, _ = lifted_operations(study.model, study.config["symmetry"], where)
        if lifts is not None:
            return lifts
    return study_operations(study.model, study.config["symmetry"], where)


def check_operations(model, operations, key: str, tolerance: float, spin: bool = False, kmax=None,
                     generators=None) -> None:
    """Refuse (ConfigError naming ``key``.tolerance and its value) a point group that is not one of the model to
    ``tolerance`` (the study's ``symmetry.tolerance``): its symmetry zeros and the wedge's symmetrised sums would be
    silently wrong (the band energies and the Berry curvature at a few k-points,
    :func:`qgtflow.geometry.covariance.broken_operations`; ``spin``: the model's spin operator too, for a
    study with classified 003 spin responses); run for every study with a ``symmetry`` block. The refusal says
    what the first broken operation breaks and the tolerance every broken operation needs. A declared group
    (``generators``, the study's ``symmetry.generators``) is refused naming that key and its value instead;
    ``kmax``: a k·p model's window half-width, inside which the test points and their images lie."""
    from qgtflow.geometry.covariance import operation_checks

    checks = operation_checks(model, operations, spin, kmax)
    every = [(c.label, c.why(tolerance), c.needed) for c in checks if c.why(tolerance) is not None]
    if every:
        broken = every[0]
        label, why, _ = broken
        largest = float(schema_tolerance()["maximum"])
        if generators is not None:
            raise ConfigError(f"{key}.generators", list(generators), f"generators of a point group of the model "
                              f"{model.name!r} to {key}.tolerance {tolerance:g} (its symmetry zeros rely on it); "
                              f"operation {label}: {why}; check the generators "
                              f"({_tolerance_fix(every, key, largest)})")
        raise ConfigError(f"{key}.tolerance", tolerance, f"a crystal whose point-group operations are symmetries of "
                          f"the model {model.name!r} to that tolerance, which its symmetry zeros and "
                          f"kgrid.symmetry_reduce rely on; operation {label}: {why}; "
                          + _position_operator_hint(model, operations, key, tolerance, spin, largest, broken)
                          + _ws_tie_hint(model, key, tolerance, max(c.energy for c in checks))
                          + f"check the atoms and magnetic_moments, {_tolerance_fix(every, key, largest)} (or drop "
                          "the symmetry block)")


def _tolerance_fix(broken: list, key: str, largest: float) -> str:
    """The tolerance that would pass every broken operation of ``broken`` ((label, why, needed), in order), with
    what each needs, grouped by that need (two digits) in increasing order, e.g. "raise symmetry.tolerance to 0.2 or
    more … (needed: 0.032 -4[0, 0, 1]; 0.2 C3[1, 1, 1], C3[1, 1, -1])"; or how many are beyond the schema's
    ``largest``."""
    per_label: dict[str, float] = {}  # C4 and C4⁻¹ share a label: the larger need
    for label, _, needed in broken:
        per_label[label] = max(needed, per_label.get(label, 0.0))
    groups: dict[str, list[str]] = {}
    for label, needed in sorted(per_label.items(), key=lambda item: item[1]):
        groups.setdefault(f"{needed:.2g}", []).append(label)
    needs = "; ".join(f"{value} {', '.join(labels)}" for value, labels in groups.items())
    worst = max(per_label.values())
    if worst <= largest:
        return (f"raise {key}.tolerance to {worst:.2g} or more if the model is symmetric only to its Wannierisation "
                f"accuracy (needed: {needs})")
    beyond = sum(needed > largest for needed in per_label.values())
    return (f"{beyond} of the {len(per_label)} broken operations are beyond the largest tolerance {largest:g} "
            f"(needed: {needs})")


def _study_prefix(key: str) -> str:
    """The study's key prefix ('studies.x.') of its ``…symmetry`` key, for naming a sibling key in a hint."""
    return key[: -len("symmetry")] if key.endswith("symmetry") else ""


POSITION_HINT_SYMMETRISE = ("symmetrise the Wannier model: model.wannier90.symmetrize with its projections, as "
                            "WannierBerri's System_R.symmetrize does")


def _position_operator_hint(model, operations, key: str, tolerance: float, spin: bool, largest: float,
                            broken: tuple) -> str:
    """For a Wannier model carrying the position operator A(R), refused with ``broken``: the check's verdict on the
    same model without it, so the refusal says whether A(R) alone carry the breaking (WannierBerri's GaAs_tb.dat: its
    A(R) keep only m[1, 1, 0] of T_d while H keeps the D2d half, benchmarks/gaas_peer_pointwise.py) and what to do;
    "" for any other model, or when the verdict is the same without A(R) (the energies, which A(R) do not enter)."""
    import copy

    from qgtflow.geometry.covariance import first_broken_operation

    if getattr(model, "position", None) is None:
        return ""
    bare = copy.copy(model)  # shallow: the same Hamiltonian, the position operator left out
    bare.position = None
    prefix = _study_prefix(key)
    switch = f"{prefix}model.wannier90.position_operator"
    without = first_broken_operation(bare, operations, tolerance, spin)
    if without is not None and without[:2] == broken[:2]:  # the same breaking (its needed tolerance may differ)
        return ""
    if without is None:
        return (f"without its Wannier position operator the model passes at this tolerance: the file's position "
                f"matrix elements A(R) carry the breaking (set {switch}: false for the tight-binding curvature, "
                f"or {POSITION_HINT_SYMMETRISE}); ")
    label, _, needed = without
    reach = f"needs {needed:.2g}" if needed <= largest else f"needs {needed:.2g}, beyond {largest:g}"
    return (f"without its position operator ({switch}: false) it is still refused, by {label} ({reach}): the "
            f"Hamiltonian itself does not have the group, A(R) are not the only cause (a wrong crystal, or "
            f"{POSITION_HINT_SYMMETRISE}); ")


def _ws_tie_hint(model, key: str, tolerance: float, eta: float) -> str:
    """For a Wannier model whose computed Wigner–Seitz correction left near ties (bonds longer than the shortest by
    1–100× ``ws_distance_tol``, ``model.ws_near_ties`` of models/wannier.py) and whose energies break an operation
    beyond the check's energy tolerance at the test points (``eta``: the largest energy error of the operations,
    a share of the bandwidth, :class:`qgtflow.geometry.covariance.OperationCheck`): the suggestion to raise
    model.wannier90.ws_distance_tol (centres symmetric only to the Wannierisation's accuracy split their ties
    asymmetrically: WannierBerri's GaAs_tb.dat, README "Symmetry"); "" otherwise."""
    from qgtflow.geometry import covariance as cv
    from qgtflow.schema import study_schema

    near = getattr(model, "ws_near_ties", None)
    if not near:
        return ""
    count, gap, tol = near
    if eta <= cv.ENERGY_SHARE * tolerance:
        return ""
    wannier = study_schema()["properties"]["model"]["properties"]["wannier90"]["properties"]
    top = float(wannier["ws_distance_tol"]["maximum"])
    suggest = min(10.0 ** np.ceil(np.log10(2 * gap)), top)
    prefix = _study_prefix(key)
    return (f"the energies move by {eta:.2g} of the bandwidth and the Wigner–Seitz correction left {count} bond images "
            f"within {gap:.2g} Å of the shortest (beyond ws_distance_tol {tol:g} Å): Wannier centres symmetric only to "
            f"that accuracy split equivalent bonds unequally, so set {prefix}model.wannier90.ws_distance_tol: "
            f"{suggest:g} (Å) if the crystal is right; ")


def operation_attrs(operations) -> dict:
    """The store attrs carrying the point group forward (plain lists)."""
    return {ROTATIONS: [np.asarray(R, float).tolist() for R, _ in operations],
            TIME_REVERSAL: [int(t) for _, t in operations]}


def stored_operations(attrs) -> list | None:
    """[(R_cart, θ)] of a wedge store's attrs (:func:`operation_attrs`), None for a full grid."""
    if ROTATIONS not in attrs:
        return None
    return [(np.asarray(R, float), int(t)) for R, t in zip(attrs[ROTATIONS], attrs[TIME_REVERSAL])]


def symmetrise(ds, operations, dim: int):
    """``ds`` with every classified response tensor replaced by P T (:func:`tensor_action`; its Cartesian dims
    last, as the reduce stage stores them); attrs kept."""
    out = {}
    for name, var in ds.data_vars.items():
        if name not in TENSOR_KINDS:
            continue
        if "phase" in var.dims and TENSOR_KINDS[name].static_only:  # check_study refuses these studies
            raise ValueError(f"symmetrise: {name} has an AC phase dim; its AC form is not classified")
        cart = [d for d in var.dims if d in CART_DIMS]
        if tuple(var.dims[len(var.dims) - len(cart):]) != tuple(cart):
            raise ValueError(f"symmetrise: {name} dims {var.dims}; expected the Cartesian dims last")
        sizes = [var.sizes[d] for d in cart]
        P = tensor_action(name, operations, dim, sizes)
        values = np.asarray(var.values)
        flat = values.reshape(values.shape[:values.ndim - len(cart)] + (-1,))
        out[name] = var.copy(data=(flat @ P.T).reshape(values.shape))
    return ds.assign(out)
