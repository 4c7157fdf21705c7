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

Orbitals (Wannier90's conventions, user guide ch. 3): s; p as pz, px, py; d as dz2, dxz, dyz, dx2−y2, dxy; the
hybrids sp (2), sp2 (3), sp3 (4) as Wannier90's fixed combinations of s and p (default axes only). Order of the
Wannier functions (Wannier90's param_get_projections): for each projection line in order — by species ("Te: s;p":
each atom of that species in the atoms' order) or by site ("f=0.274,0.274,0: s" fractional, "c=x,y,z: p" Cartesian
in Å, or bohr after the block's first line "bohr": the one atom there, modulo lattice vectors) — its kinds ordered
by Wannier90's l (hybrids negative: sp3 < sp2 < sp < s < p < d), each kind's functions in order. One atom may so get
functions from several lines, not contiguous (WannierBerri's Te: s on the three sites, then p on the three
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

# coefficients of each kind over the basis [s, pz, px, py, dz2, dxz, dyz, dx2-y2, dxy] (Wannier90 user guide, Tables
# 3.1–3.2), its l for the ordering within a projection line
_S3, _S6, _S2 = 1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)
KINDS = {
    "s": (0, [[1, 0, 0, 0]]),
    "p": (1, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    "d": (2, np.eye(9)[4:].tolist()),
    "sp": (-1, [[_S2, 0, _S2, 0], [_S2, 0, -_S2, 0]]),
    "sp2": (-2, [[_S3, 0, -_S6, _S2], [_S3, 0, -_S6, -_S2], [_S3, 0, 2 * _S6, 0]]),
    "sp3": (-3, [[0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, -0.5], [0.5, -0.5, -0.5, 0.5], [0.5, 0.5, -0.5, -0.5]]),
}
# sp3 rows above are over [s, pz, px, py]: sp3-1 = ½(s+px+py+pz), -2 = ½(s+px−py−pz), -3 = ½(s−px+py−pz),
# -4 = ½(s−px−py+pz)
_L_NAMES = {"l=0": "s", "l=1": "p", "l=2": "d", "l=-1": "sp", "l=-2": "sp2", "l=-3": "sp3"}
SPIN_ORDERINGS = ("interlace", "block")
REFUSE_CHANGE = 0.1  # a relative change of H this large is a wrong crystal or projection, not Wannierisation error


def _kind_matrix(kind: str) -> np.ndarray:
    rows = np.array(KINDS[kind][1], float)
    out = np.zeros((len(rows), 9))
    out[:, :rows.shape[1]] = rows
    return out


def _basis(u: np.ndarray) -> np.ndarray:
    """The nine real harmonics at unit vectors ``u`` (P, 3), normalised to mean square 1 on the sphere."""
    x, y, z = u.T
    r15 = math.sqrt(15)
    return np.stack([np.ones_like(x), math.sqrt(3) * z, math.sqrt(3) * x, math.sqrt(3) * y,
                     math.sqrt(5) * (3 * z * z - 1) / 2, r15 * x * z, r15 * y * z, r15 * (x * x - y * y) / 2,
                     r15 * x * y], axis=1)


_POINTS = np.random.default_rng(7).normal(size=(40, 3))
_POINTS /= np.linalg.norm(_POINTS, axis=1, keepdims=True)


def basis_rotation(S: np.ndarray) -> np.ndarray:
    """D (9, 9) with f_α(S⁻¹ u) = Σ_β f_β(u) D_βα for the basis of :func:`_basis` (S orthogonal, proper or not)."""
    F = _basis(_POINTS)
    D = np.linalg.lstsq(F, _basis(_POINTS @ S), rcond=None)[0]  # S⁻¹u = Sᵀu: rows u @ S
    return np.where(np.abs(D) < 1e-12, 0.0, D)


def spin_rotation(S: np.ndarray) -> np.ndarray:
    """The SU(2) matrix exp(−iφ n·σ/2) of the proper part det(S)·S (one of ±)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.linalg.det(S) * S).as_quat()
    return np.array([[w - 1j * z, -1j * x - y], [-1j * x + y, w + 1j * z]])


ISY = np.array([[0, 1], [-1, 0]], complex)  # iσ_y


class Operation(NamedTuple):
    rotation: np.ndarray  # fractional, integer (3, 3): x' = rotation x + translation
    translation: np.ndarray
    cartesian: np.ndarray  # S_c = Aᵀ S A⁻ᵀ
    time_reversal: int
    atom_map: np.ndarray  # atom a → g(a)
    shifts: np.ndarray  # L_a (n_atoms, 3) integer


def space_operations(lattice, atoms, magnetic_moments=None, symprec: float = 1e-5) -> list[Operation]:
    """The space-group operations of the crystal (3D; lattice rows in any length unit, atoms [[species, f1, f2,
    f3], ...]), each with the atom permutation and lattice shifts it induces; a non-magnetic crystal's include
    every operation combined with time reversal."""
    try:
        import spglib
        import spglib.error
    except ImportError:
        raise ModelError("symmetrize: the space group needs the 'spglib' package; install it with "
                         "pip install 'qgtflow[symmetry]' (or pip install spglib)") from None
    A = np.asarray(lattice, float)
    species = [str(a[0]) for a in atoms]
    pos = np.array([[float(x) for x in a[1:]] for a in atoms], float)
    numbers = [sorted(set(species)).index(s) + 1 for s in species]
    spglib.error.OLD_ERROR_HANDLING = False
    try:
        if magnetic_moments is None:
            data = spglib.get_symmetry((A, pos, numbers), symprec=symprec)
            n = len(data["rotations"])
            rots, trans = list(data["rotations"]) * 2, list(data["translations"]) * 2
            trs = [0] * n + [1] * n
        else:
            mags = np.asarray(magnetic_moments, float)
            data = spglib.get_magnetic_symmetry((A, pos, numbers, mags), symprec=symprec)
            rots, trans = list(data["rotations"]), list(data["translations"])
            trs = [int(t) for t in data["time_reversals"]]
    except spglib.error.SpglibError as exc:
        raise ModelError(f"symmetrize: spglib found no symmetry for the declared crystal ({exc}); check the atoms "
                         "and the lattice") from None
    tol = 1e-3  # fractional: spglib has matched the atoms to symprec already
    inv_t = np.linalg.inv(A.T)
    out = []
    for S, t, theta in zip(rots, trans, trs):
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
        out.append(Operation(np.asarray(S, np.int64), np.asarray(t, float), A.T @ S @ inv_t, int(theta), amap,
                             shifts))
    return out


SITE_TOL = 1e-3  # fractional: a projection site f=…/c=… on an atom (modulo lattice vectors)
_BOHR = _sc.physical_constants["Bohr radius"][0] * 1e10  # Å: the projections block's 'bohr' line (c= sites)
_RADIAL = ("r", "zona", "b")  # radial part, diffusivity, box: no effect on how the functions transform
_DEFAULT_AXES = {"z": (0.0, 0.0, 1.0), "x": (1.0, 0.0, 0.0)}


def projection_unit(projections) -> tuple[float, list]:
    """(Å per c= unit, the lines without the block's optional first 'ang'/'bohr' line) of a list of lines."""
    lines = list(projections)
    if lines and isinstance(lines[0], str) and lines[0].strip().lower() in ("ang", "bohr"):
        return (_BOHR if lines[0].strip().lower() == "bohr" else 1.0), lines[1:]
    return 1.0, lines


def split_projection_line(line: str) -> tuple[str, str, dict]:
    """(site, kinds, {option: value}) of one Wannier90 projection line
    ``site:kinds[:z=…][:x=…][:r=…][:zona=…][:b=…][(u,d)[quant_dir]]`` (user guide §3.1; spaces ignored as
    Wannier90 strips them). A ModelError naming the line when it has no site or an unknown option."""
    if not isinstance(line, str) or ":" not in line:
        if isinstance(line, str) and line.strip().lower() == "random":
            raise ModelError(f"symmetrize.projections: {line!r}; expected sites on the atoms (random projection "
                             "centres sit on no atom, so their functions' transformation is unknown)")
        raise ModelError(f"symmetrize.projections: {line!r}; expected 'site: kinds' (e.g. 'Ga: sp3', "
                         "'f=0.25,0.25,0.25: sp3' or 'c=1.41,1.41,1.41: s')")
    body = "".join(line.split())
    options = {}
    spin = re.search(r"\(([ud](?:,[ud])?)\)(\[[^\]]*\])?$", body, re.IGNORECASE)
    if spin:
        options["spin"] = spin.group(1).lower()
        if spin.group(2):
            options["quant_dir"] = spin.group(2)[1:-1]
        body = body[:spin.start()]
    site, rest = body.split(":", 1)
    kinds, *fields = rest.split(":")
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq or key not in (*_RADIAL, *_DEFAULT_AXES):
            raise ModelError(f"symmetrize.projections: {line!r}; expected options among z=…, x=…, r=…, zona=…, b=… "
                             f"after the kinds, got {field!r}")
        options[key] = value
    return site, kinds, options


def _check_options(line: str, options: dict) -> None:
    """Refuse the options that change how the functions transform and that are not treated: local axes other than
    Wannier90's default, and spinor projections on one spin or about another axis (radial options are ignored)."""
    for key, default in _DEFAULT_AXES.items():
        if key in options:
            try:
                v = np.array([float(x) for x in options[key].split(",")])
            except ValueError:
                v = np.zeros(0)
            if v.shape != (3,) or np.linalg.norm(v) == 0 or np.abs(v / np.linalg.norm(v) - default).max() > 1e-6:
                raise ModelError(f"symmetrize.projections: {line!r}; expected the default axes (z=0,0,1, x=1,0,0) "
                                 f"(local axes {key}={options[key]} are not supported)")
    if options.get("spin", "u,d") not in ("u,d", "d,u") or options.get("quant_dir", "0,0,1").replace(
            " ", "") not in ("0,0,1", "0.0,0.0,1.0"):
        raise ModelError(f"symmetrize.projections: {line!r}; expected both spins (u,d) along z (spinor "
                         "projections on one spin or another quantisation axis are not supported)")


def projection_lines(projections) -> list[tuple[str, str]]:
    """[(site, kinds text)] of {site: kinds} or of Wannier90's lines (the block's optional first unit line
    dropped, options checked by :func:`_check_options` and then dropped: radial parts do not change how a
    function transforms); a ModelError naming the line otherwise."""
    if isinstance(projections, dict):
        items = [f"{site}:{kinds if isinstance(kinds, str) else ';'.join(map(str, kinds))}"
                 for site, kinds in projections.items()]
    else:
        items = projection_unit(projections)[1]
    out = []
    for line in items:
        site, kinds, options = split_projection_line(line)
        _check_options(line, options)
        out.append((site, kinds))
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
    return xyz


def parse_projections(projections) -> list[tuple[str, list[str]]]:
    """[(site, [kinds in Wannier90's order])] from {site: kinds} or lines 'site: kinds[:options]' (site a species,
    f=… or c=…, :func:`projection_lines`; kinds separated by ';' or ',', names or l=…); a ModelError naming the entry
    when a kind is not supported."""
    lines = projection_lines(projections)
    out = []
    for species, kinds in lines:
        names = kinds if isinstance(kinds, list) else str(kinds).replace(",", ";").split(";")
        parsed = []
        for name in names:
            key = str(name).strip().lower().replace(" ", "")
            key = _L_NAMES.get(key, key)
            if key not in KINDS:
                raise ModelError(f"symmetrize.projections: {species}: {kinds!r}; expected kinds among "
                                 f"{sorted(KINDS)} (or l=-3..2; single m components, f and sp3d hybrids and local "
                                 "axes are not supported)")
            parsed.append(key)
        out.append((str(species).strip(), sorted(parsed, key=lambda k: KINDS[k][0])))
    return out


class Layout(NamedTuple):
    atom_orbitals: list  # per atom: its Wannier function indices (interlace order inside when spinor)
    atom_kinds: list  # per atom: its kinds
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
    atom_kinds = [[] for _ in atoms]
    cells = []
    count = 0
    for site, kinds in lines:
        size = sum(len(KINDS[k][1]) for k in kinds) * (2 if spinors else 1)
        where = site_position(site, lattice, unit)
        for a in site_atoms(site, atoms, lattice, unit):
            atom_orbitals[a] += list(range(count, count + size))
            atom_kinds[a] += kinds
            count += size
            shift = np.zeros(3) if where is None else np.round(where - np.array(atoms[a][1:], float))
            cells += [shift] * size
    for a, kinds in enumerate(atom_kinds):
        if kinds:
            C = np.concatenate([_kind_matrix(k) for k in kinds])
            if not np.allclose(C @ C.T, np.eye(len(C)), atol=1e-9):
                raise ModelError(f"symmetrize.projections: atom {a + 1} ({atoms[a][0]}) gets kinds {kinds}, a "
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


def atom_representation(kinds, op: Operation, spinors: bool) -> np.ndarray:
    """D_a(g) on one atom's orbitals (interlaced with spin when ``spinors``; time reversal's iσ_y included)."""
    B = basis_rotation(op.cartesian)
    C = np.concatenate([_kind_matrix(k) for k in kinds])
    D = C @ B @ C.T
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
    allR = np.unique(np.concatenate([cells] + images), axis=0)
    lo = allR.min(axis=0)
    span = allR.max(axis=0) - lo + 1
    code = np.full(int(np.prod(span)), -1, np.int64)
    code[np.ravel_multi_index((allR - lo).T, span)] = np.arange(len(allR))
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
                rows = code[np.ravel_multi_index((images[k] - lo).T, span)]
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
    atom_cart = np.array([[float(x) for x in a[1:]] for a in atoms]) @ A
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
    line is refused when symmetrising (:func:`split_projection_line`: its centres sit on no atom)."""
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
