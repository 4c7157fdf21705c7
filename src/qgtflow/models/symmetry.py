"""Crystal, magnetic and declared point groups and the tensor components they forbid.

The group comes from the crystal the user declares (atoms with species and fractional positions in the model's
lattice, optional magnetic moments per atom, Cartesian): spglib's space group, or its magnetic space group when
moments are given; only the point-group part (rotation R, time reversal θ ∈ {0, 1}) matters for k-integrated
responses. Rotations are turned Cartesian, R_cart = Aᵀ R_frac A⁻ᵀ (lattice vectors A as rows). Or, for any model
(k·p ones, which have no crystal), the group is declared by named generators in the model's Cartesian frame
(``symmetry.generators``: :func:`named_operation`, closed by :func:`closed_group`), always as 3D operations: a 2D
model's declared operations are their 3D lifts (below), so its spin responses are classified without choosing.

A response tensor T of rank r transforms under (R, θ) as T' = s · R⊗…⊗R · T, with s = det R for axial tensors and
an extra (−1)^θ for time-odd ones. The components every invariant tensor has zero are those outside the range of
the group average P = (1/|G|) Σ_g D(g) (a projector onto the invariant tensors): component c is forbidden iff
row c of P vanishes. Time parity of the conductivities J = σ E^n ∝ τ^p (Boltzmann, CATALOG): (−1)^{p+1}
(Drude, BCD: even; AHE, nonlinear Drude, intrinsic σ^qm: odd), which is exact for the parts they hold (the
AHE is the antisymmetric, T-odd part of σ; Onsager's transposition leaves it its sign).

003's spin responses: the spin index c of σ̂^c is an axial vector and T-odd. A spin current J_{a;c}
(velocity ⊗ spin) is T-even, a spin magnetization M_a (spin) T-odd, so for J ∝ τ^p E^n the time parity is (−1)^p
for the spin currents and (−1)^(p+1) for the magnetizations (intrinsic spin Hall σ^(0): even; Edelstein β^(1):
even; magnetic spin Hall σ^(1) and Zeeman QM β^(0): odd). In 2D the spin index keeps its three components, which a
plane-keeping operation restricted to the plane does not act on: there each operation needs its 3D lift (the 3 × 3
operation of the embedded crystal, :func:`lifted_operations`), whose in-plane block acts on k and the polar indices
and whose whole acts on the spin. A planar crystal has two lifts of every in-plane operation, R and m_z R (C2z and
the inversion for k → −k; a mirror containing z and the in-plane C2 axis for a line mirror), which act alike on k but
oppositely on the in-plane spin components; the model's spin operator tells which it has (a Rashba layer keeps C2z
and the vertical mirrors, not the inversion nor m_z): the lifts kept are those it maps as a T-odd axial vector.
When an operation has no such lift the 2D spin responses stay unclassified (a warning says which). The AC
forms of the two intrinsic ones (σ^(0)_{ab;c}, β^(0)_{ab} with ``omega``: a ``phase`` dim whose sin ωt part has the
opposite time parity, t → −t, and whose broadened parts need not have one parity) are classified for their zeros only: a
component vanishes in both parities exactly when it vanishes under the unitary subgroup (the operations without
θ), so those are its zeros; no wedge symmetrises them.
"""

from __future__ import annotations

import logging
import re
from itertools import product
from typing import NamedTuple

import numpy as np

from qgtflow.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


class TensorKind(NamedTuple):
    """How a response tensor transforms: ``indices`` one letter per stored Cartesian index, in the stored order,
    'p' polar (a k, v, E or current index) or 'a' axial (a pseudovector index: Ω_b, the induced moment; stored as
    its one z component in 2D); ``time_odd`` its parity under time reversal."""

    indices: str
    time_odd: bool
    spin: bool = False  # has 003's spin index (three components in every dimension): needs 3D lifts in 2D
    static_only: bool = False  # its AC form (``omega``: a cos/sin ``phase`` dim) has zeros, no wedge (module doc)

    @property
    def rank(self) -> int:
        return len(self.indices)

    @property
    def axial(self) -> bool:
        """det R once per axial index (the Levi-Civita symbols inside 004's Pockels tensor leave it polar)."""
        return self.indices.count("a") % 2 == 1


# the catalog's responses as stored (dims i, j, k, l, pseudovector; extra dims such as variant, part, omega and
# complex_part before them are untouched). Time parity: each k-derivative or velocity of the integrand is T-odd,
# Ω is T-odd and axial, g, 𝒢 and ε are T-even (CATALOG), so the parity is that of their count
TENSOR_KINDS = {
    "sigma_drude": TensorKind("pp", False),  # σ_ij ∝ τ ∫ v^i v^j f0'
    "sigma_ahe": TensorKind("pp", True),  # ∝ τ⁰, ∫ Ω^ij f0, antisymmetric
    "berry_curvature_dipole": TensorKind("pa", False),  # D_ab = ∫ f ∂_a Ω_b: polar (k) ⊗ axial T-odd (Ω) ⊗ T-odd (k)
    "sigma_bcd": TensorKind("ppp", False),  # ∝ τ, ∫ ∂Ω f0
    "sigma_nonlinear_drude": TensorKind("ppp", True),  # ∝ τ², ∫ ∂³ε f0
    "sigma_qm": TensorKind("ppp", True),  # ∝ τ⁰, ∫ ∂𝒢 f0
    "sigma_qm_variant": TensorKind("ppp", True),  # 001 Table 1: the same ∂𝒢 integrands, per variant
    "quadrupolar_current_gamma": TensorKind("ppp", True),  # 002 Eq. 10: ∫ ∂_iε g^jk f0'
    "ife_coefficient": TensorKind("app", False),  # 000 Eq. 15: ε_μνδ ∫ f0 ∂_α∂_ν g_δβ (μ the pseudovector)
    "sigma_optical": TensorKind("pp", False),  # 004 Eq. 4: τ_ω ∫ v_α v_β f0' (τ_ω a scalar factor)
    "pockels_bcd": TensorKind("ppp", False),  # 004 Eq. 5: ε_αγδ D_βδ, ε_αβδ D_γδ (ε ⊗ axial D: polar)
    "snap_tensor": TensorKind("pppp", False),  # 004 Eq. 7: ∫ ∂³ε ∂_δε f0'
    "kerr_snap": TensorKind("pppp", False),  # 004 Eq. 7: (τ_ω³ + τ_ω²τ + τ_ωτ²) J_αβγδ
    # 003, stored (i, j, spin), (spin, i), (i, j, k, spin), (spin, i, j): spin currents T-odd for odd τ powers,
    # magnetizations for even ones (module doc)
    "spin_sigma_lin_tau1": TensorKind("ppa", True, spin=True),  # Eq. 4, τ¹: magnetic spin Hall
    "spin_sigma_lin_tau0": TensorKind("ppa", False, spin=True, static_only=True),  # Eq. 6, τ⁰: spin Hall
    "spin_beta_lin_tau1": TensorKind("ap", False, spin=True),  # Eq. 5, τ¹: Edelstein
    "spin_beta_lin_tau0": TensorKind("ap", True, spin=True, static_only=True),  # Eq. 6, τ⁰: Zeeman QM
    "spin_sigma_nl_tau2": TensorKind("pppa", False, spin=True),  # Eq. 9, τ²
    "spin_sigma_nl_tau1": TensorKind("pppa", True, spin=True),  # Eq. 11, τ¹
    "spin_sigma_nl_tau0": TensorKind("pppa", False, spin=True),  # Eq. 13, τ⁰
    "spin_beta_nl_tau2": TensorKind("app", True, spin=True),  # Eq. 10, τ²
    "spin_beta_nl_tau1": TensorKind("app", False, spin=True),  # Eq. 12, τ¹
    "spin_beta_nl_tau0": TensorKind("app", True, spin=True),  # Eq. 14, τ⁰
}
AXES = "xyz"


def cartesian_rotations(lattice, rotations) -> list[np.ndarray]:
    """The Cartesian matrices Aᵀ R A⁻ᵀ of a group's fractional rotations R (lattice rows A), made exactly orthogonal
    while staying a group: conjugated by L = M^½, M = mean(S_cᵀ S_c) their invariant metric (Sᵀ M S = M, so L S L⁻¹
    is orthogonal; L = 1 for an exact lattice). A cell printed to a few digits (Mn3Sn's 4.9103641 for √3 · 2.835)
    leaves them 1e-8 off otherwise, which the symmetry zeros (a projector held to 1e-8) and a symmetrised model
    carry."""
    A = np.asarray(lattice, float)
    inv_t = np.linalg.inv(A.T)
    S = [A.T @ np.asarray(R, float) @ inv_t for R in rotations]
    if not S:
        return []
    w, V = np.linalg.eigh(sum(s.T @ s for s in S) / len(S))
    L, L_inv = (V * np.sqrt(w)) @ V.T, (V / np.sqrt(w)) @ V.T
    return [L @ s @ L_inv for s in S]


def spglib_operations(lattice, atoms, magnetic_moments=None, symprec: float = 1e-5, where: str = "symmetry"):
    """(fractional rotations, translations, time reversals) of the crystal's space group by spglib (lattice rows 3 ×
    3, atoms [[species, f1, f2, f3], ...]; ``magnetic_moments`` one Cartesian vector per atom, or None: a
    non-magnetic crystal, whose operations come twice, the second time with time reversal). A ModelError naming
    ``where`` (the key of the atoms and moments) when spglib is missing or finds no group."""
    try:
        import spglib
        import spglib.error
    except ImportError:
        raise ModelError(f"{where}: the crystal's group needs the 'spglib' package; install it with "
                         "pip install 'qgtflow[symmetry]' (or pip install spglib)") from None
    species = [str(a[0]) for a in atoms]
    pos = np.array([[float(x) for x in a[1:]] for a in atoms])
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ModelError(f"{where}.atoms: {atoms!r}; expected [[species, f1, f2, f3], ...] (fractional)")
    cell = (np.asarray(lattice, float), pos, [sorted(set(species)).index(s) + 1 for s in species])
    spglib.error.OLD_ERROR_HANDLING = False  # spglib ≥ 2.5: raise SpglibError instead of returning None
    if magnetic_moments is None:
        try:
            data = spglib.get_symmetry(cell, symprec=symprec)
        except spglib.error.SpglibError as exc:
            raise ModelError(f"{where}: spglib found no symmetry for the declared crystal ({exc}); check "
                             f"{where}.atoms and the lattice") from None
        n = len(data["rotations"])
        return list(data["rotations"]) * 2, list(data["translations"]) * 2, [0] * n + [1] * n
    mags = np.asarray(magnetic_moments, float)
    if mags.shape != (len(atoms), 3):
        raise ModelError(f"{where}.magnetic_moments: shape {mags.shape}; expected one Cartesian vector per atom "
                         f"({len(atoms)}, 3)")
    try:
        data = spglib.get_magnetic_symmetry(cell + (mags,), symprec=symprec)
    except spglib.error.SpglibError:
        data = None
    if data is None:
        raise ModelError(f"{where}: spglib found no magnetic symmetry for the declared crystal; check {where}.atoms "
                         f"and {where}.magnetic_moments")
    return list(data["rotations"]), list(data["translations"]), [int(t) for t in data["time_reversals"]]


def crystal_operations(lattice, atoms, magnetic_moments=None, symprec: float = 1e-5, lifted: bool = False):
    """[(R_cart (d, d), θ)] of the point group of the crystal in the model's lattice (rows, model length units).

    ``atoms``: [[species, f1, f2, f3], ...] (fractional); ``magnetic_moments``: one Cartesian vector per atom,
    or None (then the group includes time reversal, a non-magnetic crystal). A 2D lattice is embedded with a
    perpendicular third vector; only operations that keep the plane are kept and restricted to it, or with
    ``lifted`` kept whole (3 × 3, the 3D lifts: R and m_z R of a planar crystal both)."""
    A = np.asarray(lattice, float)
    d = A.shape[0]
    full = np.eye(3) * max(1.0, 10 * np.abs(A).max())
    full[:d, :d] = A
    rots, _, trs = spglib_operations(full, atoms, magnetic_moments, symprec)
    ops = set()
    out = []
    for Rc, t in zip(cartesian_rotations(full, rots), trs):
        if d < 3:
            if np.abs(Rc[:d, d:]).max() > 1e-8 or np.abs(Rc[d:, :d]).max() > 1e-8:
                continue
            Rc = Rc if lifted else Rc[:d, :d]
        key = (tuple(np.round(Rc, 8).ravel()), t)
        if key not in ops:
            ops.add(key)
            out.append((Rc, t))
    return out


def classified(response: str, dim: int, ac: bool = False, lifted: bool = False) -> bool:
    """Whether ``response``'s transformation is classified (:data:`TENSOR_KINDS`) in ``dim`` dimensions, ``ac``:
    at photon energies (the study gives ``omega``; the wedge cannot symmetrise the AC forms of 003's intrinsic
    linear spin responses, whose zeros :func:`forbidden_components` gives); ``lifted``: the operations are the 3D
    lifts of a 2D model's (:func:`lifted_operations`), without which a 2D spin response is not classified."""
    kind = TENSOR_KINDS.get(response)
    return (kind is not None and not (kind.spin and dim != 3 and not (dim == 2 and lifted))
            and not (kind.static_only and ac))


def is_lifted(operations, dim: int) -> bool:
    """Whether ``operations`` of a ``dim``-D model are given as 3D lifts (3 × 3; 2D only)."""
    return dim == 2 and len(operations) > 0 and all(np.shape(R) == (3, 3) for R, _ in operations)


def forbidden_components(response: str, operations, dim: int, ac: bool = False) -> list[str] | None:
    """Labels ('xy', 'xyz') of the components of ``response`` that vanish in every tensor invariant under the
    operations; None for a response whose transformation is not classified (:func:`classified`). The AC form of
    a ``static_only`` kind: the zeros of the unitary subgroup (module doc)."""
    kind = TENSOR_KINDS.get(response)
    if ac and kind is not None and kind.static_only:
        operations, ac = [(R, t) for R, t in operations if not t], False
    if not classified(response, dim, ac, is_lifted(operations, dim)):
        return None
    sizes = stored_index_sizes(response, dim)
    P = tensor_action(response, operations, dim, sizes)
    labels = ["".join(AXES[i] if n > 1 else "z" for i, n in zip(idx, sizes))
              for idx in product(*(range(n) for n in sizes))]
    return [lbl for lbl, row in zip(labels, P) if np.abs(row).max() < 1e-8]


def stored_index_sizes(response: str, dim: int) -> list[int]:
    """The stored size of each Cartesian index of a classified response: ``dim`` each, except that in 2D a
    pseudovector index (Ω_z of the Berry-curvature dipole D_az, the moment a_z of the IFE) has the one component z
    and 003's spin index (every spin kind's one 'a') three in every dimension."""
    kind = TENSOR_KINDS[response]
    return [(3 if kind.spin else 1) if (index == "a" and dim == 2) else dim for index in kind.indices]


def symmetry_zero_components(responses, operations, dim: int, ac: bool = False) -> dict[str, list[str]]:
    """{response: forbidden component labels} for the classified responses (those with any); ``ac``: the study
    gives photon energies (:func:`classified`)."""
    out = {}
    for r in responses:
        zero = forbidden_components(r, operations, dim, ac)
        if zero:
            out[r] = zero
    return out


def crystal_atoms(model, symmetry: dict, where: str = "symmetry") -> list:
    """[[species, f1, f2, f3], ...] of the study's crystal: ``symmetry.atoms`` when given, else the atoms of the
    model's Wannier90 ``.win`` (``model.atoms``, fractional in its lattice); a :class:`ModelError` naming the key
    when neither exists."""
    atoms = symmetry.get("atoms")
    if atoms is None:
        atoms = getattr(model, "atoms", None)
    if not atoms:
        raise ModelError(f"{where}.atoms: missing; expected [[species, f1, f2, f3], ...] (fractional), or a "
                         "Wannier90 model whose seedname.win has an atoms_frac or atoms_cart block")
    return [list(a) for a in atoms]


def declares(symmetry: dict | None) -> bool:
    """Whether a study's ``symmetry`` block declares its point group (``generators``) instead of a crystal."""
    return bool(symmetry) and symmetry.get("generators") is not None


def study_operations(model, symmetry: dict, where: str = "symmetry"):
    """Point-group operations [(R_cart (d, d), θ)] of a study: the declared group (``symmetry.generators``,
    :func:`declared_group`, restricted to the model's axes) for any model, or the crystal's of a periodic model
    (:func:`crystal_operations`)."""
    if declares(symmetry):
        return _restricted(declared_group(model, symmetry, where), model.dim)
    if not model.periodic:
        raise ModelError(f"{where}: given for the k·p model {model.name!r} as a crystal; expected a periodic model "
                         f"for a crystal (it lives in the lattice), or {where}.generators (a declared point group, "
                         "e.g. [C4z, Mx, T])")
    atoms = crystal_atoms(model, symmetry, where)
    moments = symmetry.get("magnetic_moments")
    if moments is not None and len(moments) != len(atoms):
        raise ModelError(f"{where}.magnetic_moments: {len(moments)} moments; expected one per atom ({len(atoms)})")
    return crystal_operations(model.lattice, atoms, moments)


def lifted_operations(model, symmetry: dict, where: str = "symmetry"):
    """(the 3D lifts [(R₃ (3, 3), θ)] of the point group of a 2D model's crystal that its spin operator respects,
    None) or (None, why no lift could be chosen) (module doc).

    The candidates are the plane-keeping operations of the embedded crystal (:func:`crystal_operations` with
    ``lifted``; a planar crystal gives R and m_z R of each); a lift is kept when the model's spin operator, summed
    below the gaps at the test points, maps as a T-odd axial vector under it to ``symmetry.tolerance``
    (:func:`qgtflow.geometry.covariance.operation_checks`; k and Ω see only the in-plane block, which the study's
    check has already passed). Every in-plane operation must keep at least one lift, else the model's spin
    operator does not tell how the operation acts on spin and nothing is guessed."""
    from qgtflow.geometry.covariance import operation_checks, operation_label

    if model.dim != 2:
        raise ValueError(f"lifted_operations: a 2D model expected, got {model.dim}D")
    if getattr(model, "spin", None) is None:
        return None, f"the model {model.name!r} has no spin operator to tell the operations' action on spin"
    if declares(symmetry):  # the lifts are declared (checked on the spin operator at validation with spin responses)
        return declared_group(model, symmetry, where), None
    atoms = crystal_atoms(model, symmetry, where)
    lifts = crystal_operations(model.lattice, atoms, symmetry.get("magnetic_moments"), lifted=True)
    tolerance = float(symmetry.get("tolerance") or schema_tolerance()["default"])
    checks = operation_checks(model, lifts, spin=True)

    def in_plane(R, t):
        return tuple(np.round(np.asarray(R)[:2, :2], 8).ravel()), int(t)

    kept = [op for op, check in zip(lifts, checks) if check.spin <= tolerance]
    have = {in_plane(*op) for op in kept}
    missing = [(operation_label(np.asarray(R)[:2, :2], t), f"{check.label} {check.spin:.2g}")
               for (R, t), check in zip(lifts, checks) if in_plane(R, t) not in have]
    if missing:
        ops = list(dict.fromkeys(label for label, _ in missing))
        tried = ", ".join(lift for _, lift in missing)
        return None, (f"no 3D lift of {ops} maps the model's spin operator as a T-odd axial vector to "
                      f"{where}.tolerance {tolerance:g} (spin error per lift tried: {tried}); check the model's "
                      "spin matrices and the crystal")
    return kept, None


def schema_tolerance() -> dict:
    """The study schema's entry of ``symmetry.tolerance`` (its default and maximum)."""
    from qgtflow.schema import study_schema

    return study_schema()["properties"]["symmetry"]["properties"]["tolerance"]


def study_symmetry_zeros(model, symmetry: dict | None, responses, where: str = "symmetry",
                         ac: bool = False) -> dict[str, list[str]]:
    """{response: forbidden components} of a study's crystal (``symmetry`` key; {} without one); ``ac``: the study
    gives photon energies (``omega``). A 2D model's spin responses from the 3D lifts its spin operator respects
    (:func:`lifted_operations`), or none, with a warning saying why, when an operation has no such lift."""
    if symmetry is None:
        return {}
    zeros = symmetry_zero_components(responses, study_operations(model, symmetry, where), model.dim, ac)
    spin = [r for r in responses if r in TENSOR_KINDS and TENSOR_KINDS[r].spin]
    if model.dim == 2 and spin:
        lifts, why = lifted_operations(model, symmetry, where)
        if lifts is None:
            log.warning("%s: the 2D spin responses %s are left unclassified (no symmetry zeros): %s", where, spin,
                        why)
        else:
            zeros.update(symmetry_zero_components(spin, lifts, model.dim, ac))
    return zeros


# ---------------------------------------------------------------- declared point groups (symmetry.generators: k·p
# models, or a periodic model whose group is known without its crystal)

MAX_GROUP_ORDER = 480  # the closure of declared generators stops here: twice Ih × T (240), room for C_n up to n = 120
_AXIS = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
_FACTOR = re.compile(r"(E|I|T|C(\d+)(?:\^(\d+))?|M|S(\d+))(x|y|z|\[([^\]]*)\])?('?)$")


def _rotation(axis, n: int, k: int = 1) -> np.ndarray:
    """The proper rotation by 2πk/n about ``axis`` (Cartesian, right-handed; Rodrigues)."""
    u = np.asarray(axis, float) / np.linalg.norm(axis)
    a = 2 * np.pi * k / n
    K = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    R = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
    return np.where(np.abs(R) < 1e-15, 0.0, R)


def _mirror(normal) -> np.ndarray:
    u = np.asarray(normal, float) / np.linalg.norm(normal)
    return np.eye(3) - 2 * np.outer(u, u)


def _factor(text: str, name: str, where: str):
    """(R (3, 3), θ) of one factor of a generator's name (:func:`named_operation`)."""
    expected = ("a product of E, I, T, C<n><axis>, C<n>^<k><axis>, M<axis>, S<n><axis> (axis x, y, z or [a, b, c]; "
                "a trailing ' adds T), e.g. C3z, C5^2z, Mx, C2[1, 1, 0], T·C2x, or {rotation: 3 × 3 matrix, "
                "time_reversal: bool}")
    m = _FACTOR.match(text)
    if not m:
        raise ConfigError(where, name, expected)
    head, n_rot, k_rot, n_rr, axis_text, bracket, prime = m.groups()
    letter = head[0]
    if letter in "EIT" and axis_text:
        raise ConfigError(where, name, f"no axis after {letter}; " + expected)
    if letter in "CMS" and not axis_text:
        raise ConfigError(where, name, f"an axis after {head} (x, y, z or [a, b, c]); " + expected)
    axis = None
    if axis_text:
        if bracket is None:
            axis = _AXIS[axis_text]
        else:
            try:
                axis = [float(x) for x in bracket.replace(",", " ").split()]
            except ValueError:
                axis = None
            if axis is None or len(axis) != 3 or not np.all(np.isfinite(axis)) or np.linalg.norm(axis) == 0:
                raise ConfigError(where, name, f"an axis [a, b, c] of three numbers, not all zero; " + expected)
    n, k = int(n_rot or n_rr or 1), int(k_rot or 1)
    if not 1 <= n <= MAX_GROUP_ORDER or k < 1:  # a larger n is no finite group's (and 2π/n rounds to no rotation)
        raise ConfigError(where, name, f"a rotation order 1 ≤ n ≤ {MAX_GROUP_ORDER} (and power k ≥ 1); " + expected)
    k %= n  # C<n>^<k> = C<n>^<k mod n>: no overflow of 2πk/n for a huge k
    R = {"E": lambda: np.eye(3), "I": lambda: -np.eye(3), "T": lambda: np.eye(3),
         "C": lambda: _rotation(axis, n, k), "M": lambda: _mirror(axis),
         "S": lambda: _mirror(axis) @ _rotation(axis, n)}[letter]()
    return R, int(letter == "T") ^ int(bool(prime))


def named_operation(item, where: str = "symmetry.generators"):
    """(R (3, 3) Cartesian, θ) of one declared generator: a name, a product of factors joined by '·' or '*'
    (the matrix product: the right factor acts first), each E (identity), I (inversion), T (time reversal),
    C<n><axis> (rotation by 2π/n), C<n>^<k><axis> (by 2πk/n), M<axis> (mirror, the axis its plane's normal), S<n><axis> (rotoreflection
    M·C<n>, Schoenflies: S4z is −4, S6z −3, S3z −6 in Hermann–Mauguin) with axis x, y, z or [a, b, c] (Cartesian
    components, e.g. [1, 1, 0]), a trailing ' multiplying by T (C2x' = T·C2x); or a mapping {rotation: 3 × 3
    orthogonal matrix, time_reversal: bool}. A :class:`ConfigError` naming ``where`` and the item otherwise."""
    if isinstance(item, dict):
        R = np.asarray(item.get("rotation"), float) if item.get("rotation") is not None else np.zeros(0)
        if R.shape != (3, 3) or not np.all(np.isfinite(R)) or np.abs(R @ R.T - np.eye(3)).max() > 1e-6:
            raise ConfigError(where, item, "a rotation that is an orthogonal 3 × 3 matrix (R Rᵀ = 1 to 1e-6; "
                              "Cartesian, rows the images' components)")
        return R, int(bool(item.get("time_reversal", False)))
    text = str(item).replace(" ", "").replace("*", "·")
    R, theta = np.eye(3), 0
    for part in text.split("·") if text else [""]:
        Rf, tf = _factor(part, item, where)
        R, theta = R @ Rf, theta ^ tf
    return R, theta


def _key(R, t):
    return tuple((np.round(np.asarray(R), 6) + 0.0).ravel()), int(t)


def closed_group(generators, where: str = "symmetry.generators"):
    """[(R (3, 3), θ)] of the point group the declared ``generators`` (:func:`named_operation`) generate, the
    identity first: products of the generators until nothing new appears; a :class:`ConfigError` naming ``where``
    when more than :data:`MAX_GROUP_ORDER` operations appear (no finite point group: e.g. rotations about axes at
    angles none has, such as C4z with C3x)."""
    gens = [named_operation(g, where) for g in generators]
    group = {_key(np.eye(3), 0): (np.eye(3), 0)}
    frontier = list(group.values())
    while frontier:
        new = []
        for R, t in frontier:
            for G, s in gens:
                P, u = R @ G, t ^ s
                key = _key(P, u)
                if key not in group:
                    group[key] = (P, u)
                    new.append((P, u))
                    if len(group) > MAX_GROUP_ORDER:
                        raise ConfigError(where, list(generators), f"generators of a finite point group; their "
                                          f"products exceed {MAX_GROUP_ORDER} operations (no finite group holds "
                                          "them: rotations about axes at angles none has, such as C4z with C3x)")
        frontier = new
    return list(group.values())


def declared_group(model, symmetry: dict, where: str = "symmetry"):
    """The declared point group [(R₃ (3, 3), θ)] of ``symmetry.generators`` (:func:`closed_group`), checked
    against the model: a model of dim d < 3 needs operations that keep its axes (R mixes no x/y with the rest),
    a periodic model operations of its lattice (integer action on the reciprocal basis); a :class:`ConfigError`
    naming the key otherwise, and when the crystal is also given (one source of the group)."""
    from qgtflow.geometry.covariance import operation_label

    given = [k for k in ("atoms", "magnetic_moments") if symmetry.get(k) is not None]
    if given:
        raise ConfigError(f"{where}.generators", symmetry["generators"], f"one source of the point group: "
                          f"generators or the crystal ({', '.join(given)}), not both (a magnetic group is declared "
                          "with products of T, e.g. T·C2x)")
    here = f"{where}.generators"
    ops = closed_group(symmetry["generators"], here)
    d = model.dim
    if d < 3:
        for R, t in ops:
            if np.abs(R[:d, d:]).max() > 1e-8 or np.abs(R[d:, :d]).max() > 1e-8:
                raise ConfigError(here, symmetry["generators"], f"operations that keep the {d}D model's "
                                  f"{'xy plane' if d == 2 else 'x axis'} (the group has "
                                  f"{operation_label(R, t)}; a 2D model declares its operations' 3D lifts: "
                                  "C<n>z, in-plane axes and mirror normals, I, Mz)")
    if model.periodic:
        for (R, t), M in zip(ops, fractional_actions(ops, model.reciprocal_vectors)):
            if np.abs(M - np.round(M)).max() > 1e-6:
                raise ConfigError(here, symmetry["generators"], f"operations of the model's lattice; "
                                  f"{operation_label(R[:d, :d], t)} does not map it onto itself")
    return ops


def _restricted(ops, dim: int):
    """The distinct restrictions R[:dim, :dim] of 3D operations that keep the model's axes."""
    seen, out = set(), []
    for R, t in ops:
        Rd = np.asarray(R)[:dim, :dim]
        key = _key(Rd, t)
        if key not in seen:
            seen.add(key)
            out.append((Rd, t))
    return out


def window_problem(operations, kmax, dim: int) -> list[str]:
    """Labels of the operations whose in-plane action does not map the k·p window [−kmax_a, kmax_a] (a box) onto
    itself: their symmetry zeros hold on the window grid only where the integrand has decayed inside the box."""
    from qgtflow.geometry.covariance import operation_label

    half = np.broadcast_to(np.asarray(kmax, float), (dim,))
    out = []
    for R, t in operations:
        Rd = np.abs(np.asarray(R, float)[:dim, :dim])
        perm = np.abs(Rd - np.round(Rd)).max() < 1e-8 and np.allclose(Rd.sum(0), 1) and np.allclose(Rd.sum(1), 1)
        if not perm or not np.allclose(Rd @ half, half):
            out.append(operation_label(np.asarray(R, float), t))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- irreducible wedge (kgrid.symmetry_reduce:
# qgtflow.wedge wires these into the kgrid and reduce stages)


def tensor_action(response: str, operations, dim: int, index_sizes=None) -> np.ndarray:
    """The group average P = (1/|G|) Σ_g s(g) D(g) of ``response``'s tensor kind, (n, n) with n the number of
    components: applied to the flattened tensor summed over an irreducible wedge with multiplicities, it gives the
    full-zone sum. ``index_sizes``: the stored size of each index, checked against :func:`stored_index_sizes`
    (default: those); an index of size 1 in 2D is the z component of a pseudovector, on which a plane-keeping
    operation acts as det R alone (carried by s; with a 3D lift as det R₃ R₃_zz, the same). Operations of a 2D
    model given as 3D lifts (:func:`is_lifted`): their in-plane block acts on the polar indices, the whole on the
    spin index of 003's responses, s = det R₃."""
    lifted = is_lifted(operations, dim)
    if not classified(response, dim, lifted=lifted):
        raise ModelError(f"symmetrise: response {response!r} has no classified transformation in {dim}D; expected "
                         f"one of {sorted(r for r in TENSOR_KINDS if classified(r, dim, lifted=lifted))}")
    kind = TENSOR_KINDS[response]
    axial, odd = kind.axial, kind.time_odd
    sizes = stored_index_sizes(response, dim)
    if index_sizes is not None and list(index_sizes) != sizes:
        raise ModelError(f"symmetrise: {response} stored with index sizes {list(index_sizes)}; expected {sizes} "
                         f"(index kinds {kind.indices!r}: 'a' a pseudovector, its z component alone in 2D)")
    n = int(np.prod(sizes))
    P = np.zeros((n, n))
    for R, t in operations:
        R = np.asarray(R, float)
        block = {dim: R[:dim, :dim], 3: R, 1: R[2:, 2:] if lifted else np.ones((1, 1))}
        D = np.ones((1, 1))
        for size in sizes:
            D = np.kron(D, block[size])
        P += (np.linalg.det(R) if axial else 1.0) * (-1.0 if (odd and t) else 1.0) * D
    return P / len(operations)


def fractional_actions(operations, reciprocal_vectors) -> list[np.ndarray]:
    """Each operation's action on fractional k (rows): f' = f M, M = B R^T B^-1 (-1)^θ (k -> (-1)^θ R k); R's
    in-plane block for the 3D lift of a 2D operation."""
    B = np.asarray(reciprocal_vectors, float)
    d = len(B)
    return [B @ np.asarray(R)[:d, :d].T @ np.linalg.inv(B) * (-1.0 if t else 1.0) for R, t in operations]


def grid_invariance_problem(operations, reciprocal_vectors, sizes) -> str | None:
    """Why the Γ-centred grid of ``sizes`` is not mapped onto itself by every operation (None when it is): the
    image of every grid step must be a grid vector (linear, so the steps suffice)."""
    N = np.asarray(sizes, int)
    steps = np.diag(1.0 / N)
    for M in fractional_actions(operations, reciprocal_vectors):
        img = steps @ M * N
        if np.abs(M - np.round(M)).max() > 1e-6 or np.abs(img - np.round(img)).max() > 1e-6:
            return (f"the grid {list(N)} is not invariant under the point group; expected equal sizes along "
                    "symmetry-related axes")
    return None


def grid_actions(operations, reciprocal_vectors, sizes) -> list[np.ndarray]:
    """Each operation's action on the indices n of the Γ-centred grid of ``sizes`` as an integer matrix A
    (n' = n A mod N, A = diag(1/N) M diag(N) with M of :func:`fractional_actions`); a ModelError when an
    operation does not map the grid onto itself."""
    problem = grid_invariance_problem(operations, reciprocal_vectors, sizes)
    if problem:
        raise ModelError(f"symmetry_reduce: {problem}")
    N = np.asarray(sizes, int)
    return [np.round(np.diag(1.0 / N) @ M * N).astype(np.int64) for M in fractional_actions(operations,
                                                                                            reciprocal_vectors)]


def _image_indices(cols, A: np.ndarray, N: np.ndarray) -> np.ndarray:
    """Linear (C order) indices of the images n A mod N of the grid indices n given by their columns ``cols``
    (one int64 array per axis), axis by axis (A's entries are small integers, mostly 0 and ±1)."""
    lin = np.zeros(cols[0].shape, np.int64)
    for j, n_j in enumerate(N):
        axis = np.zeros(cols[0].shape, np.int64)
        for i, c in enumerate(cols):
            a = int(A[i, j])
            if a == 1:
                axis += c
            elif a == -1:
                axis -= c
            elif a:
                axis += a * c
        axis %= int(n_j)
        lin *= int(n_j)
        lin += axis
    return lin


def irreducible_points(operations, reciprocal_vectors, sizes):
    """(representative linear index per grid point, the irreducible indices, their multiplicities) of a Γ-centred
    grid n_i = 0..N_i−1 (linear index C order) under k → (−1)^θ R k; a ModelError when an operation does not map
    the grid onto itself. The operations form a group, so the images of a point are its whole orbit and the
    smallest image index labels the orbit. Holds one index per grid point: the kgrid stage uses
    :func:`irreducible_wedge`, which needs memory for the wedge only."""
    actions = grid_actions(operations, reciprocal_vectors, sizes)
    N = np.asarray(sizes, int)
    cols = [c.ravel() for c in np.meshgrid(*[np.arange(n, dtype=np.int64) for n in N], indexing="ij")]
    rep = np.arange(cols[0].size)
    for A in actions:
        rep = np.minimum(rep, _image_indices(cols, A, N))
    irreducible, mult = np.unique(rep, return_counts=True)
    return rep, irreducible, mult


WEDGE_SLAB_POINTS = 1 << 20  # grid points whose images are computed at once by irreducible_wedge


def irreducible_wedge(operations, reciprocal_vectors, sizes) -> tuple[np.ndarray, np.ndarray]:
    """(the irreducible linear indices, their multiplicities) of :func:`irreducible_points`, slab by slab along the
    first axis in integer arithmetic: a point is irreducible when no image has a smaller index (the orbit's
    smallest index labels it), and its multiplicity (orbit size) is |G| / (operations fixing it), which holds for
    a list with repeated k-actions too (each k-action of a group appears equally often). Memory ~ the wedge plus
    one slab, instead of several float and index arrays of the whole grid."""
    actions = grid_actions(operations, reciprocal_vectors, sizes)
    N = np.asarray(sizes, int)
    rest = int(np.prod(N[1:]))
    rows = max(1, WEDGE_SLAB_POINTS // max(rest, 1))
    tail = [c.ravel() for c in np.meshgrid(*[np.arange(n, dtype=np.int64) for n in N[1:]], indexing="ij")]
    irreducible, mult = [], []
    for lo in range(0, int(N[0]), rows):
        first = np.arange(lo, min(int(N[0]), lo + rows), dtype=np.int64)
        cols = [np.repeat(first, rest)] + [np.tile(c, len(first)) for c in tail]
        own = np.arange(lo * rest, lo * rest + cols[0].size)
        smallest = np.ones(own.size, bool)
        fixed = np.zeros(own.size, np.int64)
        for A in actions:
            img = _image_indices(cols, A, N)
            smallest &= img >= own
            fixed += img == own
        irreducible.append(own[smallest])
        mult.append(len(actions) // fixed[smallest])
    return np.concatenate(irreducible), np.concatenate(mult)
