"""Symmetrisation of a Wannier90 model's real-space tables H(R) and r(R) over the crystal's space group.

A Wannier model of a symmetric crystal honours the crystal's symmetry only to the accuracy of its Wannierisation
(degenerate bands split by 1e-4–1e-2 eV, forbidden responses non-zero). Given the crystal (lattice, atoms,
optional magnetic moments) and the Wannier functions' projections per atom, the model is replaced by its average
over the group G (spglib's space group, or magnetic space group with moments; a non-magnetic crystal has every
operation also combined with time reversal):

    H'(R') = (1/|G|) Σ_g D_a(g) H(R)^(θ) D_b(g)†,   R' = S R + L_b − L_a,

for the hopping from orbital block of atom a (cell 0) to that of atom b (cell R): an operation g = {S|t} (S the
fractional rotation, t the translation) sends atom a to atom g(a) with S τ_a + t = τ_g(a) + L_a (L_a a lattice
vector), so the bond (a, 0) → (b, R) becomes (g(a), L_a) → (g(b), S R + L_b), i.e. (g(a), 0) → (g(b), R').
D_a(g) is the representation of the Cartesian rotation S_c on atom a's orbitals (the same matrix for every atom of a
species): U|f_α⟩ = Σ_β D_βα |f_β⟩ for the real harmonics f(r) → f(S_c⁻¹ r), times the spinor part. ^(θ) is complex
conjugation for an antiunitary operation (θ = 1: g includes time reversal iσ_y K; the real-harmonic and σ_z
spinor basis are K-invariant, so its matrix is D_orb ⊗ U(S) iσ_y). Every term is an image of the model under a
symmetry operation, so the average is invariant, Hermitian-paired when H is, and unchanged for a symmetric model
(idempotent).

Position matrix elements r_nm(R) = ⟨0n|r|Rm⟩ (Å → model lengths) transform as a polar, T-even vector once taken
relative to the atom of their orbitals: ρ(R) = r(R) − τ_a δ_R0 δ_nm (n on atom a), ρ' = S_c · D_a ρ^(θ) D_b† (the
translation t and the cell shifts cancel: an orbital centred at τ_a + δ goes to τ_g(a) + S_c δ). The Wannier centres
(the diagonal of r(0)) are symmetrised the same way; without position matrix elements (an _hr.dat) the centres alone
are, as the diagonal table r(0) = diag(centres).

Orbitals (Wannier90's conventions, user guide ch. 3, Tables 3.1–3.3): every angular kind a projection line can
name. The 16 real harmonics Θ_{l,mr} up to l = 3 in Wannier90's mr order (s; pz, px, py; dz2, dxz, dyz, dx2−y2,
dxy; fz3, fxz2, fyz2, fz(x2−y2), fxyz, fx(x2−3y2), fy(3x2−y2)); full shells s, p, d, f (l=0..3), single components
by name or ``l=L,mr=M[,M...]``, the hybrids sp, sp2, sp3, sp3d, sp3d2 (l=-1..-5, also ``sp3d2-1`` or with mr
subsets), each function a row of coefficients over that basis, rotated into local axes ``:z=..:x=..`` when given
(x̂, ŷ = ẑ × x̂, ẑ). A set of functions need not span a space the crystal's operations map onto itself (dxy alone
under C3[111]): such a set is refused naming the operation (an average with it would be wrong).

Order of the Wannier functions (Wannier90's param_get_projections): for each projection line in order — by species
("Te: s;p": each atom of that species in the atoms' order) or by site ("f=0.274,0.274,0: s" fractional,
"c=x,y,z: p" Cartesian in Å, or bohr after the block's first line "bohr": the one atom there, modulo lattice
vectors) — its functions ordered as Wannier90 orders them (ascending l, hybrids first: -5 < ... < -1 < 0 < ... < 3,
then ascending mr, whatever the written order: ``sp3d2;dxy;dxz;dyz`` is sp3d2-1..6, dxz, dyz, dxy). One atom may so
get functions from several lines, not contiguous (WannierBerri's Te: s on the three sites, then p on the three
sites); options after the kinds (r=, zona=, b=: radial) do not change how the functions transform and are ignored.
A table labels each function by the cell of its centre, which may be another than its atom's (WannierBerri's Te
file: the second and third sites' functions at x = −0.27, the atoms listed at 0.726): the bond formula above then
holds for the tables re-labelled by those cells L_i (from the centres, else from the site lines as written), and
the average is labelled back (:func:`symmetrize_tables`).
Spinors: ``interlace`` (Wannier90's: every orbital up then down) or ``block`` (old VASP interfaces: all up, then all
down). The SU(2) matrix of a proper rotation by φ about n is exp(−iφ n·σ/2); an improper S_c = −P acts on spin as P
(inversion leaves spin alone); its sign is irrelevant (D appears with D†).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np
from scipy import constants as _sc

from qgtflow.errors import ModelError
from qgtflow.models import cell_index
from qgtflow.models.cell_index import MAX_CELL_INDEX
from qgtflow.models.symmetry import cartesian_rotations, spglib_operations

# The real harmonics up to l = 3 in Wannier90's mr order (user guide Tables 3.1–3.3; the interfaces evaluate them as
# pw2wannier90's ylm_wannier does), each × √(4π) (mean square 1 on the sphere): index = l² + mr − 1.
BASIS_NAMES = ("s", "pz", "px", "py", "dz2", "dxz", "dyz", "dx2-y2", "dxy",
               "fz3", "fxz2", "fyz2", "fz(x2-y2)", "fxyz", "fx(x2-3y2)", "fy(3x2-y2)")
N_BASIS = len(BASIS_NAMES)
_S2, _S3, _S6, _S12 = (1 / math.sqrt(n) for n in (2, 3, 6, 12))
# hybrids (Table 3.3) over [s, pz, px, py, dz2, dxz, dyz, dx2-y2, dxy]; sp3-1 = ½(s + px + py + pz) (the guide's
# table drops the pz, ylm_wannier has it)
HYBRIDS = {
    -1: ("sp", [[_S2, 0, _S2, 0], [_S2, 0, -_S2, 0]]),
    -2: ("sp2", [[_S3, 0, -_S6, _S2], [_S3, 0, -_S6, -_S2], [_S3, 0, 2 * _S6, 0]]),
    -3: ("sp3", [[0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, -0.5], [0.5, -0.5, -0.5, 0.5], [0.5, 0.5, -0.5, -0.5]]),
    -4: ("sp3d", [[_S3, 0, -_S6, _S2], [_S3, 0, -_S6, -_S2], [_S3, 0, 2 * _S6, 0], [0, _S2, 0, 0, _S2],
                  [0, -_S2, 0, 0, _S2]]),
    -5: ("sp3d2", [[_S6, 0, -_S2, 0, -_S12, 0, 0, 0.5], [_S6, 0, _S2, 0, -_S12, 0, 0, 0.5],
                   [_S6, 0, 0, -_S2, -_S12, 0, 0, -0.5], [_S6, 0, 0, _S2, -_S12, 0, 0, -0.5],
                   [_S6, -_S2, 0, 0, _S3], [_S6, _S2, 0, 0, _S3]]),
}
SHELLS = {0: "s", 1: "p", 2: "d", 3: "f"}
# a name → its (l, [mr]) as Wannier90's projection parser maps it (readwrite.F90, w90_readwrite_get_projections,
# checked at wannier90 7806b3f): note it sends 'fxyz' to mr = 4 and 'fz(x2-y2)' to mr = 5, while the interfaces'
# ylm_wannier evaluate (3, 4) as fz(x²−y²) and (3, 5) as fxyz: a file projected on 'fxyz' holds fz(x²−y²)-like
# functions, so the name means what Wannier90 makes of it. (Names with '(' never reach Wannier90's parser: it takes
# '(' as the spin selection.)
NAMED = {**{name: (l, list(range(1, 2 * l + 2))) for l, name in SHELLS.items()},
         **{name: (l, list(range(1, len(rows) + 1))) for l, (name, rows) in HYBRIDS.items()},
         **{name: ((i >= 1) + (i >= 4) + (i >= 9), [i - ((i >= 1) + (i >= 4) + (i >= 9)) ** 2 + 1])
            for i, name in enumerate(BASIS_NAMES) if i not in (0, 12, 13)},
         "fxyz": (3, [4]), "fz(x2-y2)": (3, [5]),
         **{f"{name}-{m}": (l, [m]) for l, (name, rows) in HYBRIDS.items() for m in range(1, len(rows) + 1)}}
SPIN_ORDERINGS = ("interlace", "block")
REFUSE_CHANGE = 0.1  # a relative change of H this large is a wrong crystal or projection, not Wannierisation error


def n_functions(l: int) -> int:
    """How many functions (mr values) angular momentum ``l`` has (hybrids l < 0: sp 2 ... sp3d2 6)."""
    return 2 * l + 1 if l >= 0 else len(HYBRIDS[l][1])


def function_row(l: int, mr: int) -> np.ndarray:
    """The coefficients (16,) of Wannier90's Θ_{l,mr} over the basis of :data:`BASIS_NAMES` (default axes)."""
    row = np.zeros(N_BASIS)
    if l >= 0:
        row[l * l + mr - 1] = 1.0
    else:
        coef = HYBRIDS[l][1][mr - 1]
        row[:len(coef)] = coef
    return row


def _basis(u: np.ndarray) -> np.ndarray:
    """The 16 real harmonics of :data:`BASIS_NAMES` at unit vectors ``u`` (P, 3), normalised to mean square 1 on
    the sphere (Θ_lmr × √(4π): sinθ cosφ = x, sin²θ cos2φ = x² − y², sin²θ sin2φ = 2xy, ...)."""
    x, y, z = u.T
    r15, r105, f21, f35 = math.sqrt(15), math.sqrt(105), math.sqrt(21 / 8), math.sqrt(35 / 8)
    return np.stack([np.ones_like(x),
                     math.sqrt(3) * z, math.sqrt(3) * x, math.sqrt(3) * y,
                     math.sqrt(5) * (3 * z * z - 1) / 2, r15 * x * z, r15 * y * z, r15 * (x * x - y * y) / 2,
                     r15 * x * y,
                     math.sqrt(7) * (5 * z ** 3 - 3 * z) / 2, f21 * (5 * z * z - 1) * x, f21 * (5 * z * z - 1) * y,
                     r105 * z * (x * x - y * y) / 2, r105 * x * y * z, f35 * x * (x * x - 3 * y * y),
                     f35 * y * (3 * x * x - y * y)], axis=1)


_POINTS = np.random.default_rng(7).normal(size=(64, 3))
_POINTS /= np.linalg.norm(_POINTS, axis=1, keepdims=True)


def basis_rotation(S: np.ndarray) -> np.ndarray:
    """D (16, 16) with f_α(S⁻¹ u) = Σ_β f_β(u) D_βα for the basis of :func:`_basis` (S orthogonal, proper or not);
    block diagonal in l (each block fitted on its own), entries below 1e-12 zeroed."""
    F, G = _basis(_POINTS), _basis(_POINTS @ np.asarray(S, float))  # S⁻¹u = Sᵀu: rows u @ S
    D = np.zeros((N_BASIS, N_BASIS))
    for l in range(4):
        b = slice(l * l, (l + 1) ** 2)
        D[b, b] = np.linalg.lstsq(F[:, b], G[:, b], rcond=None)[0]
    return np.where(np.abs(D) < 1e-12, 0.0, D)


class Kinds(NamedTuple):
    """The Wannier functions one projection line puts on each atom of its species."""
    text: str  # the line's kinds (and axes) as written (with its species when read by parse_projections)
    functions: tuple  # ((l, mr), ...) in Wannier90's order
    rows: np.ndarray  # (n, 16): each function over the basis of BASIS_NAMES, in the crystal's Cartesian frame


def _axis(text: str, field: str, where: str) -> np.ndarray:
    try:
        v = np.array([float(x) for x in text.split(",")], float)
    except ValueError:
        v = np.zeros(0)
    if v.shape != (3,) or not np.isfinite(v).all() or not np.abs(v).max() > 0:
        raise ModelError(f"{where}: {field}={text}; expected three numbers, not all zero (e.g. {field}=0,0,1)")
    v = v / np.abs(v).max()  # z=1e300,0,1 overflowed the norm
    return v / np.linalg.norm(v)


def _local_frame(z: np.ndarray, x: np.ndarray, axial: bool, where: str) -> np.ndarray:
    """U with rows x̂, ŷ = ẑ × x̂, ẑ (Wannier90: normalised; x moved ⊥ z when |x̂·ẑ| ≤ 1e-2, refused above unless
    every function is axial about z (pz, dz2, fz3), for which any x ⊥ z serves)."""
    c = float(x @ z)
    if abs(c) > 1e-6:
        if abs(c) > 1e-2 and not axial:
            raise ModelError(f"{where}: x axis {np.round(x, 6).tolist()} at cos = {c:.3g} to z "
                             f"{np.round(z, 6).tolist()}; expected orthogonal axes")
        if abs(c) > 1 - 1e-9:
            x = np.eye(3)[np.argmin(np.abs(z))]
            c = float(x @ z)
        x = (x - c * z) / np.linalg.norm(x - c * z)
    return np.array([x, np.cross(z, x), z])


def parse_kinds(text, where: str = "symmetrize.projections") -> Kinds:
    """The functions of one projection line's angular part, Wannier90's ``ang_mtm[:z=..][:x=..][:r=..][:zona=..]``
    (the part after the site): kinds separated by ';', each a name (s, p, d, f, pz ... fy(3x2-y2), sp ... sp3d2,
    sp3d2-1 ...; several separated by ',') or ``l=L`` / ``l=L,mr=M[,M...]`` (l = -5..3). Ordered as Wannier90 does
    (w90_readwrite_get_projections: flags per (l, mr), then loops l = -5..3, mr ascending; a repeated function
    counts once); local axes rotate every function (Θ(U r), U's rows x̂, ŷ, ẑ; set_u_matrix of pw2wannier90); the
    radial part (r=, zona=) does not change the transformation. A ModelError naming ``where`` and the text when a
    part is not understood."""
    raw = "; ".join(str(t) for t in text) if isinstance(text, (list, tuple)) else str(text)
    body = raw.strip().lower().replace(" ", "")
    supported = f"names {', '.join(sorted(NAMED))} or l=L / l=L,mr=M,... (l in -5..3), then optional :z=..:x=.. axes"
    if "[" in body:  # spin quantisation axis (spinors): only the default
        body, _, q = body.partition("[")
        if np.abs(_axis(q.rstrip("]"), "[quant_dir]", where) - [0, 0, 1]).max() > 1e-9:
            raise ModelError(f"{where}: {raw!r}; expected the spin quantisation axis [0,0,1] (other axes are not "
                             "supported)")
    spin = re.search(r"\(([ud,]*)\)$", body)
    if spin:  # Wannier90's (u), (d), (u,d): only both
        if set(spin.group(1).replace(",", "")) != {"u", "d"}:
            raise ModelError(f"{where}: {raw!r}; expected both spin states (u,d) (spin-selective projections are "
                             "not supported)")
        body = body[:spin.start()]
    kinds_part, *fields = body.split(":")
    z, x = np.array([0.0, 0, 1]), np.array([1.0, 0, 0])
    for field in fields:
        key, eq, value = field.partition("=")
        if key == "z" and eq:
            z = _axis(value, "z", where)
        elif key == "x" and eq:
            x = _axis(value, "x", where)
        elif key not in ("r", "zona") or not eq:
            raise ModelError(f"{where}: {raw!r}: field {field!r}; expected z=..., x=..., r=... or zona=... after "
                             "the kinds")
    flags = set()
    for part in kinds_part.split(";"):
        if not part:
            continue
        if part.startswith("l="):
            m = re.fullmatch(r"l=([+-]?\d+)(?:,mr=(\d+(?:,\d+)*))?", part)
            l = int(m.group(1)) if m else None
            if l is None or not -5 <= l <= 3:
                raise ModelError(f"{where}: {raw!r}: {part!r}; expected {supported}")
            mrs = [int(v) for v in m.group(2).split(",")] if m.group(2) else range(1, n_functions(l) + 1)
            bad = [v for v in mrs if not 1 <= v <= n_functions(l)]
            if bad:
                raise ModelError(f"{where}: {raw!r}: mr={bad[0]} for l={l}; expected mr in 1..{n_functions(l)}")
            flags.update((l, v) for v in mrs)
            continue
        for name in _split_names(part):
            if name not in NAMED:
                raise ModelError(f"{where}: {raw!r}: {name!r}; expected {supported}")
            l, mrs = NAMED[name]
            flags.update((l, v) for v in mrs)
    if not flags:
        raise ModelError(f"{where}: {raw!r}; expected at least one kind ({supported})")
    functions = tuple(sorted(flags))
    rows = np.array([function_row(l, m) for l, m in functions])
    U = _local_frame(z, x, all(l >= 0 and m == 1 for l, m in functions), where)
    if np.abs(U - np.eye(3)).max() > 1e-12:  # Θ(U r) = Σ_β f_β(r) B(Uᵀ)_βα
        rows = np.where(np.abs(r := rows @ basis_rotation(U.T).T) < 1e-12, 0.0, r)
    return Kinds(raw.strip(), functions, rows)


def _split_names(part: str) -> list[str]:
    """Comma-separated names, a comma inside parentheses kept (fx(x2-3y2) has none, but be safe)."""
    out, depth, cur = [], 0, ""
    for ch in part:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [n for n in out + [cur] if n]


def spin_rotation(S: np.ndarray) -> np.ndarray:
    """The SU(2) matrix exp(−iφ n·σ/2) of the proper part det(S)·S (one of ±)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.linalg.det(S) * S).as_quat()
    return np.array([[w - 1j * z, -1j * x - y], [-1j * x + y, w + 1j * z]])


ISY = np.array([[0, 1], [-1, 0]], complex)  # iσ_y


class Operation(NamedTuple):
    rotation: np.ndarray  # fractional, integer (3, 3): x' = rotation x + translation
    translation: np.ndarray
    cartesian: np.ndarray  # S_c = Aᵀ S A⁻ᵀ, exactly orthogonal (symmetry.cartesian_rotations)
    time_reversal: int
    atom_map: np.ndarray  # atom a → g(a)
    shifts: np.ndarray  # L_a (n_atoms, 3) integer


def space_operations(lattice, atoms, magnetic_moments=None, symprec: float = 1e-5) -> list[Operation]:
    """The space-group operations of the crystal (3D; lattice rows in any length unit, atoms [[species, f1, f2,
    f3], ...]), each with the atom permutation and lattice shifts it induces; a non-magnetic crystal's include
    every operation combined with time reversal."""
    A = np.asarray(lattice, float)
    species = [str(a[0]) for a in atoms]
    pos = np.array([[float(x) for x in a[1:]] for a in atoms], float)
    rots, trans, trs = spglib_operations(A, atoms, magnetic_moments, symprec, "symmetrize")
    tol = 1e-3  # fractional: spglib has matched the atoms to symprec already
    out = []
    for S, t, theta, Sc in zip(rots, trans, trs, cartesian_rotations(A, rots)):
        image = pos @ np.asarray(S, float).T + t  # (n_atoms, 3)
        diff = image[:, None, :] - pos[None, :, :]  # (a, b, 3)
        near = np.abs(diff - np.round(diff)).max(axis=-1) < tol
        same = np.array(species)[:, None] == np.array(species)[None, :]
        hit = near & same
        if not np.all(hit.sum(axis=1) == 1):
            raise ModelError(f"symmetrize: operation {np.asarray(S).tolist()} + {np.round(t, 6).tolist()} does not "
                             "map the atoms onto atoms of their species; check the atoms' positions")
        amap = hit.argmax(axis=1)
        shifts = np.round(diff[np.arange(len(pos)), amap]).astype(np.int64)
        out.append(Operation(np.asarray(S, np.int64), np.asarray(t, float), Sc, int(theta), amap, shifts))
    return out


SITE_TOL = 1e-3  # fractional: a projection site f=…/c=… on an atom (modulo lattice vectors)
_BOHR = _sc.physical_constants["Bohr radius"][0] * 1e10  # Å: the projections block's 'bohr' line (c= sites)


def projection_unit(projections) -> tuple[float, list]:
    """(Å per c= unit, the lines without the block's optional first 'ang'/'bohr' line) of a list of lines."""
    lines = list(projections)
    if lines and isinstance(lines[0], str) and lines[0].strip().lower() in ("ang", "bohr"):
        return (_BOHR if lines[0].strip().lower() == "bohr" else 1.0), lines[1:]
    return 1.0, lines


def projection_lines(projections) -> list[tuple[str, str]]:
    """[(site, angular part)] of {site: kinds} or of Wannier90's lines ``site:ang_mtm[:z=..][:x=..][:r=..]...``
    (user guide §3.1; spaces dropped as Wannier90 drops them; the block's optional first unit line dropped): the
    angular part with its options is :func:`parse_kinds`'s. A ModelError naming a line that has no site."""
    if isinstance(projections, dict):
        items = [f"{site}:{kinds if isinstance(kinds, str) else ';'.join(map(str, kinds))}"
                 for site, kinds in projections.items()]
    else:
        items = projection_unit(projections)[1]
    out = []
    for line in items:
        if not isinstance(line, str) or ":" not in line:
            if isinstance(line, str) and line.strip().lower() == "random":
                raise ModelError(f"symmetrize.projections: {line!r}; expected sites on the atoms (random projection "
                                 "centres sit on no atom, so their functions' transformation is unknown)")
            raise ModelError(f"symmetrize.projections: {line!r}; expected 'site: kinds' (e.g. 'Ga: sp3', "
                             "'f=0.25,0.25,0.25: sp3' or 'c=1.41,1.41,1.41: s')")
        site, rest = "".join(line.split()).split(":", 1)
        out.append((site, rest))
    return out


def site_atoms(site: str, atoms, lattice=None, unit: float = 1.0) -> list[int]:
    """The atoms (indices into ``atoms`` [[species, f1, f2, f3], ...]) a projection site puts functions on: every
    atom of a species (in the atoms' order), or the one atom at ``f=f1,f2,f3`` (fractional) or ``c=x,y,z``
    (Cartesian, ``unit`` Å each, in ``lattice`` rows Å) within :data:`SITE_TOL` modulo lattice vectors. A
    ModelError naming the site otherwise (a site on no atom has no orbital transformation)."""
    species = [str(a[0]) for a in atoms]
    xyz = site_position(site, lattice, unit)
    if xyz is None:  # Wannier90 lower-cases its input: species match whatever their case
        if site.lower() not in {s.lower() for s in species}:
            raise ModelError(f"symmetrize.projections: species {site!r}; expected one of the atoms' "
                             f"{sorted(set(species))} or a site f=f1,f2,f3 / c=x,y,z")
        return [a for a, s in enumerate(species) if s.lower() == site.lower()]
    pos = np.array([[float(x) for x in a[1:]] for a in atoms], float)
    diff = xyz[None, :] - pos
    hit = np.flatnonzero(np.abs(diff - np.round(diff)).max(axis=1) < SITE_TOL)
    if len(hit) != 1:
        listed = ", ".join(f"{s} {np.round(p, 6).tolist()}" for s, p in zip(species, pos))
        raise ModelError(f"symmetrize.projections: site {site!r} at fractional {np.round(xyz, 6).tolist()}; expected "
                         f"a site on one of the atoms ({listed}) within {SITE_TOL:g} modulo lattice vectors")
    return [int(hit[0])]


def site_position(site: str, lattice=None, unit: float = 1.0) -> np.ndarray | None:
    """The fractional position of a site ``f=f1,f2,f3`` or ``c=x,y,z`` (``unit`` Å each, ``lattice`` rows in Å)
    as written (not reduced to the cell); None for a species."""
    low = site.lower()
    if not (low.startswith("f=") or low.startswith("c=")):
        return None
    try:
        xyz = np.array([float(x) for x in site[2:].split(",")])
    except ValueError:
        xyz = np.zeros(0)
    if xyz.shape != (3,):
        raise ModelError(f"symmetrize.projections: site {site!r}; expected three numbers {site[:2]}x,y,z")
    if low.startswith("c="):
        if lattice is None:
            raise ModelError(f"symmetrize.projections: site {site!r}; expected the lattice (unit_cell_cart) to "
                             "place a Cartesian site, or give it as f=f1,f2,f3")
        xyz = np.linalg.solve(np.asarray(lattice, float).T, xyz * unit)
    if not np.all(np.abs(xyz) <= MAX_CELL_INDEX):  # NaN too; f=1e200 was cast to a garbage cell
        raise ModelError(f"symmetrize.projections: site {site!r}; expected a finite position within "
                         f"{MAX_CELL_INDEX:g} cells of the origin")
    return xyz


def parse_projections(projections) -> list[tuple[str, Kinds]]:
    """[(site, its functions)] from {site: kinds} or lines 'site: kinds[:options]' (site a species, f=… or c=…,
    :func:`projection_lines`; the angular part as :func:`parse_kinds` reads it); a ModelError naming the entry when
    a kind is not supported."""
    lines = projection_lines(projections)
    out = []
    for species, kinds in lines:
        species = str(species).strip()
        parsed = parse_kinds(kinds, f"symmetrize.projections: {species}")
        out.append((species, parsed._replace(text=f"{species}: {parsed.text}")))
    return out


class Layout(NamedTuple):
    atom_orbitals: list  # per atom: its Wannier function indices (interlace order inside when spinor)
    atom_kinds: list  # per atom: its Kinds (functions and their rows)
    spinors: bool
    order: np.ndarray  # permutation: internal (interlaced) index → the file's index
    home_cells: np.ndarray | None = None  # (n, 3) ints, the file's order: a site line's cell relative to its atom


def orbital_layout(atoms, projections, num_wann: int, spinors: bool = False,
                   spin_ordering: str = "interlace", lattice=None) -> Layout:
    """Which Wannier functions sit on which atom, in Wannier90's order (module doc): projection lines in order,
    a species line over its atoms in the atoms' order, a site line (f=…, c=…; :func:`site_atoms`, ``lattice`` rows
    in Å for c=) on its one atom; within a line and atom the kinds of :func:`parse_projections`. One atom may get
    functions from several lines (Te: s on every site, then p on every site), so its indices need not be
    contiguous. A ModelError when a function is listed twice on one atom or the projections do not account for
    ``num_wann`` functions exactly."""
    lines = parse_projections(projections)
    unit = 1.0 if isinstance(projections, dict) else projection_unit(projections)[0]
    if spin_ordering not in SPIN_ORDERINGS:
        raise ModelError(f"symmetrize.spin_ordering: {spin_ordering!r}; expected one of {list(SPIN_ORDERINGS)}")
    atom_orbitals = [[] for _ in atoms]
    parts = [[] for _ in atoms]  # per atom: the Kinds of each line that puts functions on it
    cells = []
    count = 0
    for site, kinds in lines:
        size = len(kinds.functions) * (2 if spinors else 1)
        where = site_position(site, lattice, unit)
        for a in site_atoms(site, atoms, lattice, unit):
            atom_orbitals[a] += list(range(count, count + size))
            parts[a].append(kinds)
            count += size
            shift = np.zeros(3) if where is None else np.round(where - np.array(atoms[a][1:], float))
            cells += [shift] * size
    atom_kinds = [None if not p else Kinds("; ".join(k.text for k in p), sum((k.functions for k in p), ()),
                                            np.concatenate([k.rows for k in p])) for p in parts]
    for a, kinds in enumerate(atom_kinds):
        if kinds is not None and not np.allclose(kinds.rows @ kinds.rows.T, np.eye(len(kinds.rows)), atol=1e-9):
            raise ModelError(f"symmetrize.projections: atom {a + 1} ({atoms[a][0]}) gets {kinds.text!r}, a "
                             "function twice; expected each function once per atom (functions differing only "
                             "in their radial part r= are not supported)")
    if count != num_wann:
        raise ModelError(f"symmetrize.projections: {projections!r} give {count} Wannier functions"
                         f"{' (spinors)' if spinors else ''}; expected num_wann = {num_wann}")
    order = np.arange(num_wann)
    if spinors and spin_ordering == "block":
        half = num_wann // 2
        order = np.array([s * half + i for i in range(half) for s in range(2)])  # interlaced 2i+s ← block s·N+i
    home = np.zeros((num_wann, 3), np.int64)
    home[order] = np.array(cells, np.int64).reshape(-1, 3)  # function k of the count is internal index k
    return Layout(atom_orbitals, atom_kinds, bool(spinors), order, home)


def home_cells(layout: Layout, atoms, frac) -> np.ndarray:
    """(n, 3) ints in the file's order: the lattice cell of each Wannier function's centre ``frac`` (n, 3)
    relative to its atom, round(centre − τ_a). A table labels the functions by the cell of their centre
    (WannierBerri's Te: its second and third sites' functions sit at −0.27, not 0.726), which the bond mapping
    must know (module doc)."""
    out = np.zeros((len(layout.order), 3), np.int64)
    for a, orbs in enumerate(layout.atom_orbitals):
        idx = layout.order[orbs]
        out[idx] = np.round(np.asarray(frac, float)[idx] - np.array(atoms[a][1:], float))
    return out


def _relabel(table: dict, cells: np.ndarray, sign: int) -> dict:
    """{R + sign·(L_j − L_i): entries (i, j) of table[R]}: a table re-labelled by the functions' home cells L."""
    n = len(cells)
    d = cells[None, :, :] - cells[:, None, :]
    shifts, which = np.unique(d.reshape(-1, 3), axis=0, return_inverse=True)
    which = which.reshape(n, n)
    out: dict = {}
    for R, m in table.items():
        m = np.asarray(m)
        for s, k in enumerate(shifts):
            mask = which == s
            if np.any(m[mask]):
                key = tuple(int(x) for x in np.asarray(R) + sign * k)
                out.setdefault(key, np.zeros(m.shape, complex))[mask] = m[mask]
    return out


def atom_representation(kinds: Kinds, op: Operation, spinors: bool) -> np.ndarray:
    """D_a(g) = C B(S_c) Cᵀ on one atom's functions (rows C; interlaced with spin when ``spinors``; time reversal's
    iσ_y included); a ModelError when the functions do not span a space the operation maps onto itself (D not
    orthogonal, e.g. dxy alone under C3[1, 1, 1]): an average with such a D would be wrong."""
    C = kinds.rows
    D = C @ basis_rotation(op.cartesian) @ C.T
    if np.abs(D @ D.T - np.eye(len(D))).max() > 1e-8:
        from qgtflow.geometry.covariance import operation_label

        raise ModelError(f"symmetrize.projections: {kinds.text!r} is not closed under the crystal's operation "
                         f"{operation_label(op.cartesian, op.time_reversal)}; expected functions that span a set it "
                         "maps onto itself (e.g. a full shell, or eg / t2g in a cubic crystal)")
    if not spinors:
        return D.astype(complex)
    U = spin_rotation(op.cartesian)
    if op.time_reversal:
        U = U @ ISY
    return np.kron(D, U)


def _apply(cells: np.ndarray, blocks: np.ndarray, ops, layout: Layout, vector: bool):
    """(cells', Σ_g g·blocks / |G|): ``blocks`` (nR, n, n) or (nR, n, n, 3) in the internal order."""
    n_atoms = len(layout.atom_orbitals)
    idx = [np.asarray(o, int) for o in layout.atom_orbitals]
    images = []
    for op in ops:
        for a in range(n_atoms):
            for b in range(n_atoms):
                images.append(cells @ op.rotation.T + op.shifts[b] - op.shifts[a])
    allR = cell_index.distinct(np.concatenate([cells] + images))[0]
    out = np.zeros((len(allR),) + blocks.shape[1:], complex)
    k = 0
    for op in ops:
        reps = [atom_representation(layout.atom_kinds[a], op, layout.spinors) for a in range(n_atoms)]
        src = np.conj(blocks) if op.time_reversal else blocks
        if vector:
            src = src @ op.cartesian.T  # v'_α = Σ_β S_αβ v_β
        for a in range(n_atoms):
            ga = idx[op.atom_map[a]]
            for b in range(n_atoms):
                gb = idx[op.atom_map[b]]
                rows = cell_index.rows_of(allR, images[k])
                k += 1
                part = src[:, idx[a]][:, :, idx[b]]
                if vector:  # (r, i, j, c) → (r, c, i, j): batched D_a · ρ_c · D_b† per component
                    moved = np.moveaxis(reps[a] @ np.moveaxis(part, -1, 1) @ np.conj(reps[b]).T, 1, -1)
                else:
                    moved = reps[a] @ part @ np.conj(reps[b]).T
                out[np.ix_(rows, ga, gb)] += moved
    return allR, out / len(ops)


class Symmetrized(NamedTuple):
    table: dict  # {R: (n, n)} H'
    positions: dict | None  # {R: (n, n, 3)} r' (absolute, model lengths) or None
    centres: np.ndarray  # (n, 3) Cartesian symmetrised centres
    h_change: float  # ‖H' − H‖ / ‖H‖ (Frobenius over the table)
    r_change: float | None  # ‖r' − r‖ / ‖r − centres‖ (the part beyond the centres), None without r
    n_operations: int


def _as_array(table: dict, keys, n, extra=()):
    arr = np.zeros((len(keys), n, n) + extra, complex)
    for i, R in enumerate(keys):
        if R in table:
            arr[i] = table[R]
    return arr


def symmetric_positions(atoms, ops) -> np.ndarray:
    """The atoms' fractional positions averaged over their images, τ'_b = (1/|G|) Σ_g (S_g τ_a + t_g − L_a) over
    g(a) = b: the given ones to within symprec, and exactly symmetric, so that positions printed to a few digits (a
    POSCAR's 0.8333333) leave neither the centres nor the model's convention-II phases off by their rounding."""
    pos = np.array([[float(x) for x in a[1:]] for a in atoms], float)
    acc = np.zeros_like(pos)
    for op in ops:
        acc[op.atom_map] += pos @ op.rotation.T + op.translation - op.shifts
    return acc / len(ops)


def symmetrize_tables(lattice, atoms, layout: Layout, table: dict, centres: np.ndarray, positions: dict | None = None,
                      magnetic_moments=None, symprec: float = 1e-5, operations=None, cells=None) -> Symmetrized:
    """The group average of a hopping table {R (3 ints): (n, n)} and optionally of the absolute position table
    {R: (n, n, 3)} (Cartesian, same length unit as ``lattice``, rows); ``centres`` (n, 3) Cartesian Wannier centres
    (used when ``positions`` is None; else its R = 0 diagonal). ``cells`` (n, 3) ints: the cell L_i of function i
    relative to its atom (:func:`home_cells`; default the layout's site lines'): function (i, R) sits at
    τ_a + L_i + R, so the tables are re-labelled to the atoms' cells, H_ij(R + L_j − L_i) and r likewise (its
    R = 0 diagonal less L_i), averaged, and labelled back. Module doc for the formulas."""
    A = np.asarray(lattice, float)
    if A.shape != (3, 3):
        raise ModelError(f"symmetrize: lattice of shape {A.shape}; expected a 3D model (3, 3)")
    ops = operations if operations is not None else space_operations(A, atoms, magnetic_moments, symprec)
    L = np.asarray(cells if cells is not None else layout.home_cells if layout.home_cells is not None
                   else np.zeros((len(layout.order), 3)), np.int64)
    if np.any(L):
        zero, shift = (0, 0, 0), np.einsum("ij,ic->ijc", np.eye(len(L)), L @ A)
        rel = None
        if positions is not None:
            rel = _relabel(positions, L, 1)
            rel[zero] = rel.get(zero, 0) - shift
        res = symmetrize_tables(A, atoms, layout, _relabel(table, L, 1), np.asarray(centres, float) - L @ A, rel,
                                operations=ops, cells=np.zeros_like(L))
        back = None
        if res.positions is not None:
            back = _relabel({**res.positions, zero: res.positions[zero] + shift}, L, -1)
        return res._replace(table=_relabel(res.table, L, -1), positions=back, centres=res.centres + L @ A)
    n = len(layout.order)
    perm = layout.order
    keys = sorted(table)
    cells = np.array(keys, np.int64).reshape(-1, 3)
    H = _as_array(table, keys, n)[:, perm][:, :, perm]
    newR, Hs = _apply(cells, H, ops, layout, vector=False)
    inv = np.argsort(perm)
    Hs = Hs[:, inv][:, :, inv]
    old = {R: table[R] for R in keys}
    diff = sum(float(np.sum(np.abs(Hs[i] - old.get(tuple(R), 0)) ** 2)) for i, R in enumerate(map(tuple, newR)))
    norm = sum(float(np.sum(np.abs(m) ** 2)) for m in old.values())
    h_change = math.sqrt(diff / max(norm, 1e-300))
    new_table = {tuple(int(x) for x in R): Hs[i] for i, R in enumerate(newR)}

    # positions relative to the atoms (a vector); the centres alone when there are no position elements
    atom_cart = symmetric_positions(atoms, ops) @ A
    home = np.zeros((n, 3))
    for a, orbs in enumerate(layout.atom_orbitals):
        home[perm[orbs]] = atom_cart[a]  # internal (interlaced) index i is the file's perm[i]
    zero = (0, 0, 0)
    if positions is None:
        rtab = {zero: np.einsum("ij,ic->ijc", np.eye(n), np.asarray(centres, float) - home)}
    else:
        rtab = {R: np.array(m, complex) for R, m in positions.items()}
        rtab[zero] = rtab[zero] - np.einsum("ij,ic->ijc", np.eye(n), home)
    rkeys = sorted(rtab)
    rcells = np.array(rkeys, np.int64).reshape(-1, 3)
    rho = _as_array(rtab, rkeys, n, (3,))[:, perm][:, :, perm]
    rR, rs = _apply(rcells, rho, ops, layout, vector=True)
    rs = rs[:, inv][:, :, inv]
    rnew = {tuple(int(x) for x in R): rs[i] for i, R in enumerate(rR)}
    rnew[zero] = rnew[zero] + np.einsum("ij,ic->ijc", np.eye(n), home)
    new_centres = np.real(np.einsum("iic->ic", rnew[zero]))
    r_change = None
    if positions is not None:
        beyond = {R: np.array(m, complex) for R, m in positions.items()}
        beyond[zero] = beyond[zero] - np.einsum("ij,ic->ijc", np.eye(n), np.real(np.einsum("iic->ic", beyond[zero])))
        dnum = sum(float(np.sum(np.abs(rnew[R] - np.asarray(positions.get(R, 0))) ** 2)) for R in rnew)
        dden = sum(float(np.sum(np.abs(m) ** 2)) for m in beyond.values())
        r_change = math.sqrt(dnum / max(dden, 1e-300))
    return Symmetrized(new_table, rnew if positions is not None else None, new_centres, h_change, r_change, len(ops))


def read_win_projections(path) -> tuple[list[str] | None, bool | None]:
    """(the lines of the ``begin projections`` block, ``spinors``) of a ``.win`` file; None for what it lacks.
    Comments (! #) are dropped; the block's optional first unit line (ang, bohr: c= sites) is kept; a ``random``
    line is refused when symmetrising (:func:`projection_lines`: its centres sit on no atom)."""
    lines, spinors, inside = None, None, False
    with open(path, errors="replace") as fh:
        for raw in fh:
            body = raw.split("!")[0].split("#")[0].strip()
            low = body.lower()
            words = low.replace("=", " ").replace(":", " ").split()
            if not words:
                continue
            if inside:
                if words[:2] == ["end", "projections"]:
                    inside = False
                else:
                    lines.append(body)
            elif words[:2] == ["begin", "projections"]:
                inside, lines = True, []
            elif words[0] == "spinors" and len(words) > 1:
                spinors = words[1].strip(".") in ("true", "t")
    return lines, spinors


def resolve_spec(spec, win, where: str) -> dict | None:
    """The symmetrisation of a Wannier90 model: ``spec`` (True: everything from the ``.win``; a mapping with
    ``projections``, ``spinors``, ``spin_ordering``, ``atoms``, ``magnetic_moments``, the missing ones from the
    ``.win`` beside the file, path ``win`` or None) → {projections, spinors, spin_ordering, atoms (None: the
    .win's, read with the lattice), magnetic_moments}; None for False/None. Errors name ``where``."""
    if spec is None or spec is False:
        return None
    if spec is True:
        spec = {}
    if not isinstance(spec, dict):
        raise ModelError(f"{where}: {spec!r}; expected true or a mapping (projections, spinors, spin_ordering, atoms, "
                         "magnetic_moments)")
    win_lines, win_spinors = read_win_projections(win) if win is not None and win.is_file() else (None, None)
    projections = spec.get("projections", win_lines)
    if not projections:
        raise ModelError(f"{where}.projections: missing; expected e.g. {{Ga: sp3, As: sp3}}, or a .win beside the "
                         "file with a 'begin projections' block")
    try:
        parse_projections(projections)
    except ModelError as exc:
        raise ModelError(f"{where}.{str(exc).removeprefix('symmetrize.')}") from None
    spinors = spec.get("spinors", win_spinors if win_spinors is not None else False)
    ordering = spec.get("spin_ordering", "interlace")
    if ordering not in SPIN_ORDERINGS:
        raise ModelError(f"{where}.spin_ordering: {ordering!r}; expected one of {list(SPIN_ORDERINGS)}")
    out = {"projections": projections, "spinors": bool(spinors), "spin_ordering": ordering,
           "atoms": spec.get("atoms"), "magnetic_moments": spec.get("magnetic_moments")}
    return out


def label(spec: dict, result: Symmetrized) -> str:
    """The model convention's clause saying how it was symmetrised and by how much it changed."""
    proj = spec["projections"]
    proj = "; ".join(f"{k}: {v}" for k, v in proj.items()) if isinstance(proj, dict) else "; ".join(proj)
    moments = "magnetic space group of the moments" if spec["magnetic_moments"] is not None else (
        "space group × time reversal (non-magnetic)")
    r = "" if result.r_change is None else f", of A(R) beyond the centres {result.r_change:.3g}"
    return (f"symmetrized over the crystal's {moments} ({result.n_operations} operations; projections {proj}"
            f"{', spinors ' + spec['spin_ordering'] if spec['spinors'] else ''}; models/symmetrize.py): relative "
            f"change of H(R) {result.h_change:.3g}{r}")
