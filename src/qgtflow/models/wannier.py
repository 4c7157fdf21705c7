"""Tight-binding importers and exporters: Wannier90 files, PythTB and TBmodels objects.

Wannier90 files (lengths in Å, energies in eV):

- ``seedname_hr.dat`` (``write_hr``): header line, ``num_wann``, ``nrpts``, ``nrpts`` integer
  degeneracy weights N_deg(R) (15 per line in Wannier90's output; any split is accepted), then
  ``nrpts·num_wann²`` lines ``R1 R2 R3 i j Re Im`` giving <i,0|H|j,R> (orbitals 1-based), grouped by
  R in blocks of num_wann² lines. H(k) = Σ_R e^{ik·R} H(R)/N_deg(R).
- ``seedname_tb.dat`` (``write_tb``, Wannier90 ≥ 2.1): header line, 3 lattice-vector lines (Å),
  ``num_wann``, ``nrpts``, degeneracies, then for every R a blank line, ``R1 R2 R3`` and num_wann²
  lines ``i j Re Im``; then the position-operator blocks (blank line, ``R1 R2 R3``, num_wann² lines
  ``i j Re x Im x Re y Im y Re z Im z`` in Å). The Wannier centres are the diagonal of r(R = 0).
- ``seedname_wsvec.dat`` (``use_ws_distance``): a header line, then per hopping (R, i, j) a line
  ``R1 R2 R3 i j``, a line ``ndeg`` and ndeg lines ``T1 T2 T3``; the hopping is split equally over
  the lattice vectors R + T. Without that file the same correction is computed from the lattice, the
  Wannier centres and the Monkhorst–Pack grid (``mp_grid`` of the ``.win``, else inferred from the R list).
- ``seedname.win`` (``begin unit_cell_cart`` block, optional ``bohr``/``ang`` line, default Å) and
  ``seedname_centres.xyz`` (Cartesian Wannier centres, lines starting with ``X``; else the final centres of
  ``seedname.wout``) are read beside
  ``_hr.dat`` for the lattice and the orbital positions.

Blank lines are skipped everywhere (they only separate blocks); Fortran ``D`` exponents are
accepted. Every malformed input raises :class:`~qgtflow.errors.ModelError` naming the file, the
1-based line number and what was expected.

Conventions: the returned :class:`TightBindingModel` uses convention II (orbital positions in the
Bloch phase) when orbital positions are known, else convention I (phase e^{ik·R} only), unless
``convention`` says otherwise. Lengths are converted to ``length_unit`` (the study's model length
unit, nm by default) and energies to ``energy_unit`` (eV by default).
"""

from __future__ import annotations

import logging
import math
import stat
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit
from scipy import constants as sc

from qgtflow.errors import ModelError
from qgtflow.guards import MAX_MAGNITUDE
from qgtflow.models import cell_index, position
from qgtflow.models.cell_index import MAX_CELL_INDEX
from qgtflow.models.position import relative_tables
from qgtflow.models.tight_binding import TightBindingModel

log = logging.getLogger(__name__)

__all__ = ["from_pythtb", "from_tbmodels", "infer_mp_grid", "read_centres", "read_hr", "read_tb", "read_win_atoms",
           "read_win_lattice", "read_win_mp_grid", "read_wout_centres", "read_wsvec", "ws_distance_table", "write_hr"]

_ANGSTROM = 1e-10
_LENGTHS = {"nm": 1e-9, "angstrom": 1e-10, "ang": 1e-10, "Å": 1e-10, "m": 1.0, "um": 1e-6,
            "bohr": sc.physical_constants["Bohr radius"][0]}
_ENERGIES = {"eV": 1.0, "meV": 1e-3}
_IMPORT_EXTRA = "pip install 'qgtflow[import]'"


# -- small helpers ---------------------------------------------------------------------------------

def _length_factor(unit: str, what: str = "length_unit") -> float:
    """Multiply a length in ``unit`` by this to get metres."""
    if unit not in _LENGTHS:
        raise ModelError(f"{what} {unit!r}; expected one of {sorted(_LENGTHS)}")
    return _LENGTHS[unit]


def _energy_factor(unit: str) -> float:
    """eV per ``unit``."""
    if unit not in _ENERGIES:
        raise ModelError(f"energy_unit {unit!r}; expected one of {sorted(_ENERGIES)}")
    return _ENERGIES[unit]


def _seed(path: Path, suffix: str) -> Path:
    """``dir/seed_hr.dat`` → ``dir/seed`` (the stem if the suffix does not match)."""
    name = path.name
    return path.with_name(name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else path.stem)


MAX_FILE_BYTES = 16 * 1024**3  # a Wannier90 file larger than this is not a tight-binding model


def regular_file(path: Path, kind: str) -> int:
    """Size of ``path``, refusing anything but a regular file of sane size (FIFOs, devices, /dev/zero)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ModelError(f"cannot read {kind} file {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ModelError(f"cannot read {kind} file {path}: Is a directory; expected a regular text file")
    if not stat.S_ISREG(info.st_mode):
        raise ModelError(f"{kind} file {path} is not a regular file (a FIFO, socket or device); "
                         "expected a regular text file")
    if info.st_size > MAX_FILE_BYTES:
        raise ModelError(f"{kind} file {path} has {info.st_size} bytes; expected at most {MAX_FILE_BYTES} "
                         "(a Wannier90 text file)")
    return info.st_size


class _Lines:
    """Non-blank lines of a text file with their 1-based line numbers, for precise error messages.

    A cursor over the text: lines are split only as they are read, so a large file's data section can
    be handed whole to the vectorised parser (:meth:`rest`) without a Python object per line.
    """

    def __init__(self, path, kind: str):
        self.path = Path(path)
        self.kind = kind
        regular_file(self.path, kind)
        self.data = None  # the file's bytes when they are the text's (ASCII, no CR): the number scan reads them
        try:
            data = self.path.read_bytes()
            if data.isascii() and b"\r" not in data:
                self.text, self.data = data.decode("ascii"), data
            else:  # universal newlines, the locale's encoding
                del data
                self.text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ModelError(f"cannot read {kind} file {self.path}: {reason}") from exc
        self.offset = 0  # start of the next unread line
        self.lineno = 0  # lines consumed so far

    def _raw_line(self, offset: int):
        """(line, offset of the following line) or None at the end of the text."""
        if offset >= len(self.text):
            return None
        stop = self.text.find("\n", offset)
        stop = len(self.text) if stop < 0 else stop
        return self.text[offset:stop].rstrip("\r"), stop + 1

    def _lookahead(self):
        """(lineno, line, offset after, lineno after) of the next non-blank line, or None."""
        offset, lineno = self.offset, self.lineno
        while True:
            raw = self._raw_line(offset)
            if raw is None:
                return None
            line, offset = raw
            lineno += 1
            if line.strip():
                return lineno, line, offset, lineno

    def release(self) -> None:
        """Drop the text (a 100 MB file's data section, parsed): :meth:`reload` re-reads it for an error message."""
        self.text = self.data = None

    def reload(self) -> None:
        if self.text is None:
            self.text = self.path.read_text()

    def n_lines(self) -> int:
        text = self.text
        return text.count("\n") + (0 if not text or text.endswith("\n") else 1)

    def rest(self) -> str:
        """The unread text."""
        return self.text[self.offset:]

    def skip_line(self) -> None:
        """Consume one raw line, blank or not."""
        raw = self._raw_line(self.offset)
        if raw is not None:
            self.offset = raw[1]
            self.lineno += 1

    def __iter__(self):
        while self.peek() is not None:
            yield self.next("")

    def error(self, lineno: int | None, msg: str) -> ModelError:
        where = f"line {lineno}" if lineno is not None else f"line {self.n_lines() + 1} (end of file)"
        return ModelError(f"{self.kind} file {self.path}: {where}: {msg}")

    def next(self, expected: str) -> tuple[int, str]:
        ahead = self._lookahead()
        if ahead is None:
            raise self.error(None, f"unexpected end of file; expected {expected}")
        n, line, self.offset, self.lineno = ahead
        return n, line

    def peek(self) -> tuple[int, str] | None:
        ahead = self._lookahead()
        return None if ahead is None else ahead[:2]

    def header(self) -> str:
        """The first line (free text, may be blank)."""
        if not self.text:
            raise self.error(None, "file is empty; expected a header line")
        line, self.offset = self._raw_line(0)
        self.lineno = 1
        return line

    def tokens(self, count: int | None, expected: str) -> tuple[int, list[str]]:
        n, line = self.next(expected)
        toks = line.split()
        if count is not None and len(toks) != count:
            raise self.error(n, f"expected {expected} ({count} values), got {len(toks)} values: {line.strip()!r}")
        return n, toks

    def to_int(self, n: int, tok: str, expected: str) -> int:
        try:
            return int(tok)
        except ValueError:
            raise self.error(n, f"non-integer token {tok!r}; expected {expected}") from None

    def to_float(self, n: int, tok: str, expected: str) -> float:
        try:
            val = float(tok.replace("D", "E").replace("d", "e"))
        except ValueError:
            raise self.error(n, f"non-numeric token {tok!r}; expected {expected}") from None
        if not np.isfinite(val):
            raise self.error(n, f"non-finite value {tok!r}; expected {expected}")
        if abs(val) > MAX_MAGNITUDE:  # finite, but its squares overflow in the eigensolver (energies of -inf)
            raise self.error(n, f"value {tok!r} beyond {MAX_MAGNITUDE:g} in magnitude (as every config number); "
                                f"expected {expected}")
        return val

    def ints(self, count: int, expected: str) -> tuple[int, list[int]]:
        n, toks = self.tokens(count, expected)
        return n, [self.to_int(n, t, expected) for t in toks]

    def positive_int(self, expected: str) -> int:
        n, (val,) = self.ints(1, expected)
        if val < 1:
            raise self.error(n, f"{val}; expected {expected} (a positive integer)")
        return val

    def lattice_vector(self, n: int, vals, what: str) -> tuple:
        """``vals`` as an R or a shift T, refused naming line ``n`` beyond :data:`MAX_CELL_INDEX` cells (a
        -99999999999 asked the tables' index arrays for 6.6 TiB; int64's maximum overflowed casts)."""
        if max(abs(v) for v in vals) > MAX_CELL_INDEX:
            raise self.error(n, f"{what} = {tuple(vals)} lies beyond {MAX_CELL_INDEX:g} cells; expected a lattice "
                                "vector of Wannier90's supercell (components of the order of mp_grid)")
        return tuple(vals)

    def orbital(self, n: int, val: int, num_wann: int, which: str) -> int:
        if not 1 <= val <= num_wann:
            raise self.error(n, f"orbital index {which} = {val} out of range; expected 1..{num_wann} (num_wann)")
        return val - 1

    def degeneracies(self, nrpts: int) -> np.ndarray:
        """nrpts positive integer weights over as many lines as needed."""
        out: list[int] = []
        while len(out) < nrpts:
            expected = f"degeneracy weights ({nrpts} integers, 15 per line; {len(out)} read so far)"
            n, line = self.next(expected)
            toks = line.split()
            if len(out) + len(toks) > nrpts:
                raise self.error(n, f"degeneracy count wrong: {len(out) + len(toks)} weights so far; "
                                    f"expected exactly nrpts = {nrpts}")
            for t in toks:
                try:
                    val = int(t)
                except ValueError:
                    raise self.error(n, f"non-integer token {t!r}; expected {expected} "
                                        "(degeneracy count wrong or nrpts inconsistent?)") from None
                if val < 1:
                    raise self.error(n, f"degeneracy weight {val}; expected a positive integer")
                out.append(val)
        return np.array(out, float)


ROUNDING_EV = 1e-6  # Wannier90 prints hoppings with 6 decimals: ±5e-7 eV per entry, twice for a pair


def _hermitian_part(table: dict, tol_rel: float, describe) -> dict:
    """H(−R) = H(R)^† within tol_rel × max|H| + ROUNDING_EV; returns the symmetrised table.

    The one Hermiticity check of a Wannier90 hopping set (after it H(k) is Hermitian to rounding, so
    :meth:`Model.validate` never sees the file's printing errors). Small anti-Hermitian parts (rounded
    hoppings, a missing tiny partner block) are removed, [H(R) + H(−R)^†]/2, with a logged note; a larger
    violation calls ``describe(kind, R, a, b, tol)`` for the error (with line numbers) and raises it.
    """
    scale = max((float(np.abs(m).max()) for m in table.values()), default=0.0)
    tol = tol_rel * scale + ROUNDING_EV
    worst = 0.0
    for R, mat in table.items():
        mR = tuple(-r for r in R)
        partner = table.get(mR)
        if partner is None:
            if np.abs(mat).max() > tol:
                raise describe("partner", R, 0, 0, tol)
            worst = max(worst, float(np.abs(mat).max()))
            continue
        diff = np.abs(partner - mat.conj().T)  # (a, b): H_ab(-R) vs conj(H_ba(R))
        if diff.max() > tol:
            a, b = np.unravel_index(np.argmax(diff), diff.shape)
            raise describe("value", R, a, b, tol)
        worst = max(worst, float(diff.max()))
    if worst == 0.0:
        return table
    out = {}
    for R in set(table) | {tuple(-r for r in R) for R in table}:
        mR = tuple(-r for r in R)
        mat = table.get(R)
        partner = table.get(mR)
        mat = np.zeros_like(partner.T) if mat is None else mat
        partner = np.zeros_like(mat.T) if partner is None else partner
        out[R] = 0.5 * (mat + partner.conj().T)
    log.info("Wannier90 hoppings symmetrised, H(R) -> [H(R) + H(-R)^dagger]/2: max |H(-R) - H(R)^dagger| = %.3g eV "
             "(tolerance %.3g eV = %g x max|H| + printing rounding %g eV)", worst, tol, tol_rel, ROUNDING_EV)
    return out


def _hermiticity_error(lines: _Lines, table: dict, where: dict):
    """``describe`` for :func:`_hermitian_part`: the offending entry and its partner, with line numbers."""

    def describe(kind, R, a, b, tol):
        mR = tuple(-r for r in R)
        mat = table[R]
        if kind == "partner":
            return lines.error(where[R][0, 0], f"R = {R} has no partner block -R = {mR}; expected the hopping "
                                               "set to be Hermitian (H(-R) = H(R)^dagger)")
        return lines.error(
            where[R][b, a],
            f"non-Hermitian hopping set: H_{b + 1},{a + 1}(R={R}) = {mat[b, a]:.8g} but "
            f"conj(H_{a + 1},{b + 1}(R={mR})) = {np.conj(table[mR][a, b]):.8g} (line {where[mR][a, b]}); "
            f"expected H(-R) = H(R)^dagger within {tol:g}")

    return describe


_POW10 = np.array([10.0 ** e for e in range(23)])  # exact in float64 (10^22 < 2^53 · 2^22)


@njit(cache=True)
def _parse_numbers(buf, out, pow10, hard):  # pragma: no cover - compiled
    """Whitespace-separated decimal numbers of the bytes ``buf`` into ``out``; returns (how many, how many hard),
    or (-1, 0) when a token is not a plain number (sign, digits, '.', digits, optional e/E/d/D exponent) or there
    are more than len(out) numbers. A plain number whose value is not exactly M·10^e with M < 2^53 and |e| ≤ 22
    (the single product or quotient of two exact floats is then the correctly rounded value, as strtod's) is
    "hard": its byte range and index go to the next row of ``hard`` (n_hard, 3), its value is left to the caller
    (:func:`_scan_numbers`); (-1, 0) when ``hard`` has no room left."""
    n, count, i, nh = len(buf), 0, 0, 0
    while True:
        while i < n and (buf[i] == 32 or (9 <= buf[i] <= 13)):
            i += 1
        if i >= n:
            return count, nh
        if count >= len(out):
            return -1, 0
        begin = i
        neg = False
        if buf[i] == 45 or buf[i] == 43:  # - +
            neg = buf[i] == 45
            i += 1
        mant, digits, scale, seen, inexact = 0, 0, 0, False, False
        while i < n and 48 <= buf[i] <= 57:
            if mant or buf[i] != 48:
                digits += 1
            if digits > 17:
                inexact = True
            else:
                mant = mant * 10 + (buf[i] - 48)
            seen = True
            i += 1
        if i < n and buf[i] == 46:  # .
            i += 1
            while i < n and 48 <= buf[i] <= 57:
                if mant or buf[i] != 48:
                    digits += 1
                if digits > 17:
                    inexact = True
                else:
                    mant = mant * 10 + (buf[i] - 48)
                    scale -= 1
                seen = True
                i += 1
        if not seen:
            return -1, 0
        if i < n and (buf[i] == 101 or buf[i] == 69 or buf[i] == 100 or buf[i] == 68):  # e E d D
            i += 1
            eneg = False
            if i < n and (buf[i] == 45 or buf[i] == 43):
                eneg = buf[i] == 45
                i += 1
            exp, edigits = 0, 0
            while i < n and 48 <= buf[i] <= 57:
                if edigits < 6:
                    exp = exp * 10 + (buf[i] - 48)
                edigits += 1
                i += 1
            if edigits == 0:
                return -1, 0
            if edigits > 5:
                inexact = True
            scale += -exp if eneg else exp
        if i < n and not (buf[i] == 32 or (9 <= buf[i] <= 13)):
            return -1, 0
        if mant != 0 and (mant >= 9007199254740992 or scale > 22 or scale < -22):
            inexact = True
        if inexact:
            if nh >= len(hard):
                return -1, 0
            hard[nh, 0] = begin
            hard[nh, 1] = i
            hard[nh, 2] = count
            nh += 1
            out[count] = 0.0
            count += 1
            continue
        if mant == 0:
            val = 0.0
        elif scale >= 0:
            val = float(mant) * pow10[scale]
        else:
            val = float(mant) / pow10[-scale]
        out[count] = -val if neg else val
        count += 1


HARD_NUMBERS = 1 << 16  # numbers of one file read by Python's float (beyond the exact fast path); more: fromstring


def _scan_numbers(buf: np.ndarray, out: np.ndarray) -> int:
    """:func:`_parse_numbers` with its hard numbers read by ``float`` (strtod's rounding, D exponents as E): how
    many numbers, or -1 (a token that is not a plain number, more than len(out) numbers, or too many hard ones)."""
    hard = np.empty((HARD_NUMBERS, 3), np.int64)
    count, nh = _parse_numbers(buf, out, _POW10, hard)
    if count < 0:
        return -1
    for lo, hi, slot in hard[:nh]:
        out[slot] = float(buf[lo:hi].tobytes().translate(_FORTRAN_EXPONENT))
    return count


_FORTRAN_EXPONENT = bytes.maketrans(b"Dd", b"Ee")


def _numbers(lines: _Lines, expected: int) -> np.ndarray | None:
    """The numbers of the unread text of ``lines`` (np.fromstring(text, sep=" ")'s values, bit for bit, D
    exponents read as E): the compiled scan when the text is ASCII and every token allows it
    (:func:`_parse_numbers`), else np.fromstring; None for a non-numeric token."""
    if lines.data is not None or lines.text.isascii():  # character offsets are byte offsets
        data = lines.data if lines.data is not None else lines.text.encode("ascii")
        buf = np.frombuffer(data, np.uint8)[lines.offset:]
        del data
        out = np.empty(expected, float)
        count = _scan_numbers(buf, out)
        del buf
        if count == expected:
            return out
        del out
    text = lines.rest()
    if "D" in text or "d" in text:  # Fortran double-precision exponents
        text = text.translate(str.maketrans("Dd", "Ee"))
    try:
        return np.fromstring(text, sep=" ") if text.strip() else np.zeros(0)  # noqa: NPY201 - text mode
    except ValueError:  # a non-numeric token
        return None


def _fast_blocks(lines: _Lines, nrpts: int, num_wann: int, segments: list[tuple[int, bool]]):
    """Vectorised parse of the rest of the file: per segment, nrpts blocks of num_wann² rows.

    ``segments``: (ncols, r_line) per consecutive segment; ``r_line``: each block starts with an
    'R1 R2 R3' line and rows are 'i j values...' (_tb.dat), else rows are 'R1 R2 R3 i j values...'
    (_hr.dat). The whole rest is parsed as one array of numbers (no Python object per line; memory ≈
    the arrays). Returns per segment ({R: (n, n, nv) complex}, [R in file order]), or None (nothing
    consumed) when anything is off, so that the line-by-line parser can report exactly what and where.
    Once the numbers are read the text is released (:meth:`_Lines.release`: the tables are assembled without
    it); a caller falling back to the line-by-line parser, or naming lines in an error, calls
    :meth:`_Lines.reload` first.
    """
    nw2 = num_wann * num_wann
    sizes = [nrpts * ((3 if r_line else 0) + nw2 * ncols) for ncols, r_line in segments]
    left = len(lines.text) - lines.offset
    if 2 * sum(sizes) > left:  # before anything of that size is allocated (num_wann = 10^8: 497 PiB)
        raise lines.error(None, f"num_wann = {num_wann} and nrpts = {nrpts} call for {sum(sizes)} numbers, but "
                                f"{left} characters follow the header (a number takes at least 2); expected counts "
                                "that match the data (num_wann or nrpts wrong, or the file cut short?)")
    nums = _numbers(lines, sum(sizes))
    if nums is None or nums.size != sum(sizes) or not np.all(np.abs(nums) <= MAX_MAGNITUDE):  # NaN: False too
        return None
    lines.release()
    out = []
    lo = 0
    for (ncols, r_line), size in zip(segments, sizes):
        seg = nums[lo:lo + size]
        lo += size
        if r_line:
            blocks = seg.reshape(nrpts, 3 + nw2 * ncols)
            Rf = blocks[:, :3]
            rows = blocks[:, 3:].reshape(nrpts, nw2, ncols)
            ijf = rows[..., :2]
            vals = rows[..., 2:]
        else:
            rows = seg.reshape(nrpts, nw2, ncols)
            Rall = rows[..., :3]
            if (Rall != Rall[:, :1]).any():
                return None
            Rf, ijf, vals = Rall[:, 0], rows[..., 3:5], rows[..., 5:]
        if (Rf != np.round(Rf)).any() or (ijf != np.round(ijf)).any() or ijf.min() < 1 or ijf.max() > num_wann:
            return None
        if np.abs(Rf).max() > MAX_CELL_INDEX:  # the line-by-line parser names it
            return None
        R = Rf.astype(np.int64)
        ij = ijf.astype(np.int64)
        flat = (ij[..., 0] - 1) * num_wann + ij[..., 1] - 1
        if not (np.sort(flat, axis=1) == np.arange(nw2)).all() or len(np.unique(R, axis=0)) != nrpts:
            return None
        cplx = vals[..., 0::2] + 1j * vals[..., 1::2]  # (nrpts, nw2, nv)
        table = {}
        order = []
        for b in range(nrpts):
            key = tuple(int(r) for r in R[b])
            mat = np.empty((nw2, cplx.shape[-1]), complex)
            mat[flat[b]] = cplx[b]
            table[key] = mat.reshape(num_wann, num_wann, -1)
            order.append(key)
        out.append((table, order))
    return out


# -- companion files -------------------------------------------------------------------------------

def _win_unit_line(lines, n, words, rows, what) -> bool:
    """Whether ``words`` is a block's ``bohr``/``ang`` unit line (refused after the block's first row ``what``)."""
    if len(words) != 1 or words[0].lower() not in ("bohr", "ang"):
        return False
    if rows:
        raise lines.error(n, f"unit line {words[0]!r} after {what}; expected it first")
    return True


def _win_length_factor(unit: str) -> float:
    """Å per length unit of a .win block (``bohr`` or ``ang``)."""
    return _LENGTHS["bohr"] / _ANGSTROM if unit == "bohr" else 1.0


def read_win_lattice(path) -> np.ndarray:
    """Lattice vectors (rows, Å) from the ``unit_cell_cart`` block of a ``.win`` file."""
    lines = _Lines(path, "Wannier90 .win")
    start = None
    rows: list[list[float]] = []
    unit = "ang"
    for n, line in lines:
        body = line.split("!")[0].split("#")[0].strip().lower()
        if not body:
            continue
        words = body.replace("=", " ").replace(":", " ").split()
        if start is None:
            if words[:2] == ["begin", "unit_cell_cart"]:
                start = n
            continue
        if words[:2] == ["end", "unit_cell_cart"]:
            if len(rows) != 3:
                raise lines.error(n, f"unit_cell_cart block (line {start}) has {len(rows)} lattice vectors; expected 3")
            return np.array(rows) * _win_length_factor(unit)
        if _win_unit_line(lines, n, words, rows, "the lattice vectors"):
            unit = words[0].lower()
            continue
        if len(words) != 3:
            raise lines.error(n, f"expected a lattice vector (3 numbers) in unit_cell_cart, got {line.strip()!r}")
        rows.append([lines.to_float(n, w, "a lattice-vector component") for w in words])
        if len(rows) > 3:
            raise lines.error(n, "more than 3 lattice vectors in unit_cell_cart; expected 3")
    if start is None:
        raise lines.error(None, "no 'begin unit_cell_cart' block; expected the lattice vectors there "
                                "(or pass lattice=... to the reader)")
    raise lines.error(None, f"'begin unit_cell_cart' (line {start}) is never closed; expected 'end unit_cell_cart'")


def read_centres(path, num_wann: int) -> np.ndarray:
    """Cartesian Wannier centres (Å) from ``seedname_centres.xyz`` (the first num_wann ``X`` lines)."""
    lines = _Lines(path, "Wannier90 centres")
    n, toks = lines.tokens(1, "the number of entries (Wannier centres + atoms)")
    total = lines.to_int(n, toks[0], "the number of entries")
    lines.skip_line()  # the comment line (may be blank)
    out = []
    for _ in range(num_wann):
        m, toks = lines.tokens(4, "a Wannier centre line 'X x y z'")
        if toks[0].upper() != "X":
            raise lines.error(m, f"entry {toks[0]!r}; expected a Wannier centre 'X x y z' "
                                 f"({num_wann} centres for num_wann = {num_wann})")
        out.append([lines.to_float(m, t, "a centre coordinate") for t in toks[1:]])
    if total < num_wann:
        raise lines.error(n, f"{total} entries; expected at least num_wann = {num_wann}")
    return np.array(out)


def read_wout_centres(path, num_wann: int) -> np.ndarray | None:
    """Cartesian Wannier centres (Å) of the last ``Final State`` block of ``seedname.wout`` (Wannier90 always
    writes it): lines ``WF centre and spread  i  ( x, y, z )  spread``. None if the file has no such block."""
    lines = _Lines(path, "Wannier90 .wout")
    final = None
    for n, line in lines:
        if "Final State" in line:
            final = []
        elif final is not None and "WF centre and spread" in line and len(final) < num_wann:
            inside = line[line.index("(") + 1:line.index(")")] if "(" in line and ")" in line else ""
            vals = inside.replace(",", " ").split()
            if len(vals) != 3:
                raise lines.error(n, f"expected 'WF centre and spread i ( x, y, z ) spread', got {line.strip()!r}")
            final.append([lines.to_float(n, v, "a centre coordinate") for v in vals])
    if final is None:
        return None
    if len(final) != num_wann:
        raise lines.error(None, f"{len(final)} centres in the last 'Final State' block; expected num_wann = {num_wann}")
    return np.array(final)


class WsVectors(NamedTuple):
    """A ``_wsvec.dat``'s hoppings (R, i, j) (0-based orbitals) and the lattice vectors R + T each is split over:
    entry e's shifts are ``shifts[start[e]:start[e] + count[e]]``."""
    R: np.ndarray  # (E, 3) int64
    i: np.ndarray  # (E,)
    j: np.ndarray  # (E,)
    start: np.ndarray  # (E,)
    count: np.ndarray  # (E,) ≥ 1
    shifts: np.ndarray  # (Σ count, 3) int64


@njit(cache=True)
def _wsvec_entries(vals):  # pragma: no cover - compiled
    """Offsets of the entries 'R1 R2 R3 i j', 'ndeg', ndeg × 'T1 T2 T3' in the integer stream ``vals``; a negative
    count when the stream does not end on an entry's end or an ndeg is < 1."""
    n = len(vals)
    out = np.empty(n // 9 + 1, np.int64)
    count, p = 0, 0
    while p < n:
        if p + 6 > n or vals[p + 5] < 1:
            return out, -1
        out[count] = p
        count += 1
        p += 6 + 3 * vals[p + 5]
    if p != n:
        return out, -1
    return out, count


def _wsvec_arrays(path) -> WsVectors | None:
    """The vectorised reading of a ``_wsvec.dat`` (one compiled scan of the numbers, no Python object per line),
    or None when a token or the layout is off (the line-by-line reader then names the line)."""
    lines = _Lines(path, "Wannier90 wsvec")
    lines.header()
    if lines.data is None and not lines.text.isascii():
        return None
    data = lines.data if lines.data is not None else lines.text.encode("ascii")
    buf = np.frombuffer(data, np.uint8)[lines.offset:]
    out = np.empty(len(buf) // 2 + 1, float)  # a number takes at least two bytes with its separator
    count = _scan_numbers(buf, out)
    del buf, data
    lines.release()
    if count < 0:
        return None
    nums = out[:count]
    if count == 0 or np.abs(nums).max() > MAX_CELL_INDEX:  # before the cast (int64's maximum overflows it)
        return None
    ints = nums.astype(np.int64)
    if (ints != nums).any():
        return None
    offsets, n_entries = _wsvec_entries(ints)
    if n_entries < 0:
        return None
    head = ints[offsets[:n_entries, None] + np.arange(6)]
    ndeg = head[:, 5]
    start = np.concatenate([[0], np.cumsum(ndeg)[:-1]]).astype(np.int64)
    rows = np.repeat(offsets[:n_entries] + 6, ndeg) + 3 * (np.arange(int(ndeg.sum())) - np.repeat(start, ndeg))
    shifts = ints[rows[:, None] + np.arange(3)]
    return WsVectors(head[:, :3].copy(), head[:, 3] - 1, head[:, 4] - 1, start, ndeg.copy(), shifts)


def read_wsvec(path, entries=None) -> WsVectors:
    """``seedname_wsvec.dat`` → :class:`WsVectors` (orbitals 0-based, R and T integer).

    ``entries``: optional (num_wann, the file's R vectors) to validate indices and completeness against (one block
    per hopping (R, i, j), i, j < num_wann). A malformed file raises a ModelError naming the line.
    """
    ws = _wsvec_arrays(path)
    ok = ws is not None and len(ws.R) > 0 and min(ws.i.min(), ws.j.min()) >= 0
    if ok and entries:
        num_wann, cells = entries
        cells = np.array(sorted(cells), np.int64).reshape(-1, 3)
        n_cells = len(cells)
        ok = (len(ws.R) == n_cells * num_wann ** 2 and max(ws.i.max(), ws.j.max()) < num_wann)
        if ok:  # every entry's R among the cells, and no (R, i, j) twice: then all are there
            rows = cell_index.rows_of(cells, ws.R)
            ok = (rows >= 0).all() and np.bincount((rows * num_wann + ws.i) * num_wann + ws.j).max() == 1
    if ok:
        return ws
    table = _wsvec_lines(path, None if not entries else (entries[0], {
        (tuple(int(x) for x in R), i, j) for R in entries[1] for i in range(entries[0])
        for j in range(entries[0])}))
    keys = list(table)  # the line-by-line reader found nothing wrong (the vectorised one was too strict)
    count = np.array([len(table[k]) for k in keys], np.int64)
    return WsVectors(np.array([k[0] for k in keys], np.int64).reshape(-1, 3), np.array([k[1] for k in keys]),
                     np.array([k[2] for k in keys]), np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64),
                     count, np.array([t for k in keys for t in table[k]], np.int64).reshape(-1, 3))


def _wsvec_lines(path, entries=None) -> dict[tuple, list[tuple]]:
    """The line-by-line reading of a ``_wsvec.dat`` ({(R, i, j): [T, ...]}, 0-based orbitals), whose errors name
    the line: run when the vectorised :func:`read_wsvec` finds something wrong."""
    lines = _Lines(path, "Wannier90 wsvec")
    lines.header()
    num_wann = entries[0] if entries else None
    out: dict[tuple, list[tuple]] = {}
    first: dict[tuple, int] = {}
    while lines.peek() is not None:
        n, vals = lines.ints(5, "a block header 'R1 R2 R3 i j'")
        R = lines.lattice_vector(n, vals[:3], "R")
        i, j = vals[3] - 1, vals[4] - 1
        if num_wann is not None:
            lines.orbital(n, vals[3], num_wann, "i")
            lines.orbital(n, vals[4], num_wann, "j")
        elif min(vals[3], vals[4]) < 1:
            raise lines.error(n, f"orbital index {min(vals[3], vals[4])} out of range; expected >= 1")
        key = (R, i, j)
        if key in first:
            raise lines.error(n, f"duplicate block for R = {R}, i = {i + 1}, j = {j + 1} (first at line {first[key]})")
        first[key] = n
        ndeg = lines.positive_int(f"the number of shifts ndeg for R = {R}, i = {i + 1}, j = {j + 1}")
        shifts = []
        for _ in range(ndeg):
            m, T = lines.ints(3, f"a shift 'T1 T2 T3' ({ndeg} for R = {R}, i = {i + 1}, j = {j + 1})")
            shifts.append(lines.lattice_vector(m, T, f"the shift T (R = {R}, i = {i + 1}, j = {j + 1})"))
        out[key] = shifts
    if entries:
        missing = sorted(set(entries[1]) - set(out))
        if missing:
            R, i, j = missing[0]
            raise lines.error(None, f"no block for R = {R}, i = {i + 1}, j = {j + 1} ({len(missing)} hoppings "
                                    "missing); expected one block per hopping of the Hamiltonian file")
        extra = sorted(set(out) - set(entries[1]))
        if extra:
            R, i, j = extra[0]
            raise lines.error(first[extra[0]], f"block for R = {R}, i = {i + 1}, j = {j + 1} names a hopping "
                                               "absent from the Hamiltonian file; expected the same R vectors")
    return out


def read_win_atoms(path, lattice_ang=None) -> list | None:
    """[[species, f1, f2, f3], ...] from the ``atoms_frac`` or ``atoms_cart`` block of a ``.win`` file (None when it
    has neither). Cartesian positions (Å, or a first ``bohr``/``ang`` line) are made fractional in the lattice
    (``lattice_ang``, rows; default: the file's ``unit_cell_cart``)."""
    lines = _Lines(path, "Wannier90 .win")
    block, start, unit, rows = None, None, "ang", []
    for n, line in lines:
        body = line.split("!")[0].split("#")[0].strip()
        words = body.replace("=", " ").replace(":", " ").split()
        low = [w.lower() for w in words]
        if block is None:
            if low[:1] == ["begin"] and low[1:2] in (["atoms_frac"], ["atoms_cart"]):
                block, start = low[1], n
            continue
        if low[:2] == ["end", block]:
            break
        if block == "atoms_cart" and _win_unit_line(lines, n, words, rows, "the atoms"):
            unit = low[0]
            continue
        if len(words) != 4:
            raise lines.error(n, f"expected an atom 'species x y z' in {block}, got {line.strip()!r}")
        rows.append([words[0]] + [lines.to_float(n, w, "an atom coordinate") for w in words[1:]])
    else:
        if block is None:
            return None
        raise lines.error(None, f"'begin {block}' (line {start}) is never closed; expected 'end {block}'")
    if not rows:
        raise lines.error(start, f"{block} block has no atoms; expected lines 'species x y z'")
    if block == "atoms_frac":
        return rows
    lat = read_win_lattice(path) if lattice_ang is None else np.asarray(lattice_ang, float)
    cart = np.array([r[1:] for r in rows]) * _win_length_factor(unit)
    frac = cart @ np.linalg.inv(lat)
    return [[r[0], *map(float, f)] for r, f in zip(rows, frac)]


def read_win_mp_grid(path) -> tuple[int, int, int] | None:
    """``mp_grid = n1 n2 n3`` of a ``.win`` file (None if absent)."""
    lines = _Lines(path, "Wannier90 .win")
    for n, line in lines:
        words = line.split("!")[0].split("#")[0].replace("=", " ").replace(":", " ").split()
        if words and words[0].lower() == "mp_grid":
            if len(words) != 4:
                raise lines.error(n, f"mp_grid {' '.join(words[1:])!r}; expected three positive integers")
            vals = [lines.to_int(n, w, "mp_grid (three positive integers)") for w in words[1:]]
            if min(vals) < 1 or max(vals) > MAX_CELL_INDEX:  # 10^20 reached the Wigner–Seitz search as objects
                raise lines.error(n, f"mp_grid {vals}; expected three positive integers up to {MAX_CELL_INDEX:g}")
            return tuple(vals)
    return None


def infer_mp_grid(cells, deg, source) -> tuple[int, int, int] | None:
    """The Monkhorst–Pack grid (N1, N2, N3) whose Wigner–Seitz supercell the R vectors ``cells`` with
    degeneracies ``deg`` tile: Σ 1/deg = N1 N2 N3, and the R equivalent modulo the supercell form classes
    whose size is each member's degeneracy. None (logged) if no grid fits."""
    R = np.asarray(cells, np.int64).reshape(-1, 3)
    deg = np.asarray(deg, float)
    total = int(round(float(np.sum(1.0 / deg))))
    spans = R.max(0) - R.min(0) + 1
    for n1 in range(1, spans[0] + 1):
        for n2 in range(1, spans[1] + 1):
            if total % (n1 * n2):
                continue
            n3 = total // (n1 * n2)
            if n3 > spans[2]:
                continue
            N = np.array([n1, n2, n3])
            _, inverse, counts = np.unique(np.mod(R, N), axis=0, return_inverse=True, return_counts=True)
            if len(counts) == total and np.array_equal(counts[inverse.reshape(-1)], deg.astype(np.int64)):
                return n1, n2, n3
    log.info("%s: the R vectors do not tile the Wigner–Seitz supercell of any Monkhorst–Pack grid (no mp_grid in "
             "seedname.win, no seedname_wsvec.dat): hoppings used as given, without the Wigner–Seitz correction", source)
    return None


WRITE_HR_HEADER = "written by qgtflow.models.wannier.write_hr"
WS_DISTANCE_TOL = 1e-5  # Å: images this close to the minimal distance are equivalent (Wannier90's ws_distance_tol)
WS_NEAR_TIE = 100  # images within this many tolerances of the minimum but not tied: "near ties" (model.ws_near_ties)
WS_SEARCH = 2  # supercell images searched per direction (Wannier90's ws_search_size)


WS_CHUNK = 1 << 21  # (image, i, j) bond lengths evaluated per NumPy step (× 3 Cartesian components, float64)


class WsPlan(NamedTuple):
    """Where :func:`ws_distance_table` puts each hopping (:func:`_ws_plan`): ``images`` {R: (lattice vectors R + T
    (m, 3), masks (m, n, n) of the (i, j) at their minimal bond there, images per (i, j) (n, n))}, the images with
    at least one minimal bond only, in image order; ``near`` the number of near ties — (R, i, j, image) whose bond is
    longer than the minimum by tol to WS_NEAR_TIE tol, i.e. not split though the centres may be symmetric only to
    that accuracy — and ``near_gap`` the largest such excess in Å (0.0 without any)."""

    images: dict
    near: int
    near_gap: float


def _ws_plan(cells, lattice_ang, frac, mp_grid, tol: float = WS_DISTANCE_TOL) -> WsPlan:
    """Where :func:`ws_distance_table` puts each hopping, for the R vectors ``cells`` (a pure function of the
    lattice, the centres and the grid, shared by the Hamiltonian and the position components).

    Every R is compared with its supercell images R + T, T = (N1 n1, N2 n2, N3 n3), |n| ≤ WS_SEARCH. Only
    images that can hold a minimal bond are evaluated: with d = max |τ_j − τ_i|, the bond
    |(R + T)·A + τ_j − τ_i| lies within d of |(R + T)·A|, so an image with |(R + T)·A| beyond the smallest
    such length + 2d + WS_NEAR_TIE tol is never within WS_NEAR_TIE tol of the minimum (a bit-identical
    result, at a few images per R instead of (2 WS_SEARCH + 1)³). The bond lengths of the candidates are
    evaluated over (image, i, j) at once, in chunks of ~WS_CHUNK, with the reference arithmetic. ``tol``: the
    tie tolerance (Å, Wannier90's ws_distance_tol, the study key model.wannier90.ws_distance_tol).

    Returns the :class:`WsPlan` (the images per R and the near-tie count).
    """
    A = np.asarray(lattice_ang, float)
    tau = np.asarray(frac, float) @ A
    dtau = tau[None, :, :] - tau[:, None, :]  # [i, j] = τ_j − τ_i
    n = len(tau)
    rng = np.arange(-WS_SEARCH, WS_SEARCH + 1)
    images = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3) * np.asarray(mp_grid)
    cells = [tuple(int(x) for x in R) for R in cells]
    shifted = np.asarray(cells, np.int64).reshape(-1, 1, 3) + images[None]  # (n_R, M, 3)
    cart = np.stack([s @ A for s in shifted])  # per R, as the reference (identical rounding)
    length = np.linalg.norm(cart, axis=-1)  # |(R + T)·A| (n_R, M)
    reach = float(np.linalg.norm(dtau, axis=-1).max(initial=0.0))
    slack = 1e-9 * (float(length.max(initial=0.0)) + reach)  # rounding of the triangle inequality
    candidate = length <= length.min(axis=1, keepdims=True) + 2 * reach + WS_NEAR_TIE * tol + slack
    per_r = candidate.sum(axis=1)
    plan: dict = {}
    near, near_gap = 0, 0.0
    start = 0
    while start < len(cells):  # chunks of whole R (the minimum is over all images of one R)
        stop, size = start, 0
        while stop < len(cells) and (stop == start or (size + per_r[stop]) * n * n <= WS_CHUNK):
            size += per_r[stop]
            stop += 1
        r_idx, m_idx = np.nonzero(candidate[start:stop])  # R-major, images in order
        dist = np.linalg.norm(cart[start + r_idx, m_idx][:, None, None, :] + dtau[None], axis=-1)  # (P, n, n)
        first = np.concatenate(([0], np.cumsum(per_r[start:stop])[:-1]))
        dmin = np.minimum.reduceat(dist, first, axis=0)  # (R in chunk, n, n)
        excess = dist - dmin[r_idx]
        eq = dist < dmin[r_idx] + tol
        close = ~eq & (excess < WS_NEAR_TIE * tol)
        if close.any():
            near, near_gap = near + int(close.sum()), max(near_gap, float(excess[close].max()))
        counts = np.add.reduceat(eq, first, axis=0, dtype=np.int64)
        for r, lo, cnt in zip(range(start, stop), first, counts):
            hi = lo + per_r[r]
            used = lo + np.flatnonzero(eq[lo:hi].any(axis=(1, 2)))
            plan[cells[r]] = (shifted[r, m_idx[used]], eq[used], cnt)
        start = stop
    return WsPlan(plan, near, near_gap)


def _ws_apply(plan: WsPlan, table: dict) -> dict:
    """Split each t_ij(R) of ``table`` equally over its minimal images in ``plan`` (:func:`_ws_plan`); the sums
    in the table's R order, image order (the reference's)."""
    out: dict[tuple, np.ndarray] = {}
    for R, mat in table.items():
        targets, eq, count = plan.images[R]
        share = mat / count
        for T, mask in zip(targets, eq):
            key = tuple(int(x) for x in T)
            part = np.where(mask, share, 0)
            out[key] = out[key] + part if key in out else part
    return out


def ws_distance_table(table: dict, lattice_ang, frac, mp_grid, *, plans: dict | None = None,
                      tol: float = WS_DISTANCE_TOL) -> dict:
    """Wannier90's ``use_ws_distance`` correction, computed (no _wsvec.dat needed).

    For every R and orbital pair (i, j) the hopping t_ij(R) (already divided by the R degeneracy) is
    split equally over the lattice vectors R + T, T = (N1 n1, N2 n2, N3 n3) a supercell translation of the
    Monkhorst–Pack grid, of minimal |(R + T)·A + τ_j − τ_i| (within ``tol``, Å), i.e. every hopping
    is placed at the shortest of its equivalent bond vectors between the Wannier centres. Vectorised over
    (R, image, i, j) in :func:`_ws_plan`; ``plans``: a dict reusing the plan for tables with the same R set
    (the Hamiltonian and the position components of one file).
    """
    key = tuple(sorted(table))
    plan = plans.get(key) if plans is not None else None
    if plan is None:
        plan = _ws_plan(key, lattice_ang, frac, mp_grid, tol)
        if plans is not None:
            plans[key] = plan
    return _ws_apply(plan, table)


# -- readers ---------------------------------------------------------------------------------------

def _computed(wsvec) -> bool:
    """Whether ``wsvec`` asks for the computed correction (("compute", mp_grid)), not a file's shifts."""
    return isinstance(wsvec, tuple) and not isinstance(wsvec, WsVectors)


def _ws_shift(table: dict, wsvec, frac, lattice_ang, num_wann: int, plans: dict | None = None,
              tol: float = WS_DISTANCE_TOL) -> dict:
    """The Wigner–Seitz correction of one operator table {R: (n, n)} (hoppings or a position component):
    computed (``wsvec`` = ("compute", mp_grid), needs the centres; ``plans`` shares the image search between
    the tables of one file) or from a _wsvec.dat (:class:`WsVectors`)."""
    if _computed(wsvec):  # no _wsvec.dat: compute the Wigner–Seitz images from the lattice and centres
        # the bond lengths need the centres; the phase convention does not matter
        return (ws_distance_table(table, lattice_ang, frac, wsvec[1], plans=plans, tol=tol) if frac is not None
                else table)
    if wsvec is None:
        return table
    # _wsvec.dat: split each entry over its listed lattice vectors R + T (an entry the file lacks stays at R)
    cells = np.array(list(table), np.int64).reshape(-1, 3)
    dense = np.stack([table[tuple(R)] for R in cells])
    rows = cell_index.rows_of(cells, wsvec.R)
    listed = rows >= 0
    rest = np.ones(dense.shape, bool)
    rest[rows[listed], wsvec.i[listed], wsvec.j[listed]] = False
    src = np.repeat(np.nonzero(listed)[0], wsvec.count[listed])
    first = np.repeat(wsvec.start[listed], wsvec.count[listed])
    pick = first + np.arange(len(src)) - np.repeat(np.cumsum(wsvec.count[listed]) - wsvec.count[listed],
                                                   wsvec.count[listed])
    value = dense[rows[src], wsvec.i[src], wsvec.j[src]] / wsvec.count[src]
    keep = value != 0
    src, value = src[keep], value[keep]
    target = wsvec.R[src] + wsvec.shifts[pick[keep]]
    r0, i0, j0 = np.nonzero(rest & (dense != 0))
    target = np.concatenate([target, cells[r0]])
    value = np.concatenate([value, dense[r0, i0, j0]])
    ii, jj = np.concatenate([wsvec.i[src], i0]), np.concatenate([wsvec.j[src], j0])
    keys, where = cell_index.distinct(target)  # the target cells, in lexicographic order
    out = np.zeros((len(keys), num_wann, num_wann), complex)
    np.add.at(out, (where, ii, jj), value)
    return {tuple(int(x) for x in R): out[n] for n, R in enumerate(keys)}


def _build(name, lattice_ang, table, num_wann, *, positions, centres_ang, convention, length_unit,
           energy_unit, wsvec, dim, source, rtab=None, position_operator=True, ws_distance_tol=None,
           symmetrize=None):
    """Common tail of the readers: units, ws shifts, dimension reduction, convention; ``rtab``: the position
    blocks {R: (n, n, 3)} (Å) of a _tb.dat, attached as the model's position operator when
    ``position_operator`` (see ``models/position.py``); ``ws_distance_tol``: the Wigner–Seitz tie tolerance (Å;
    None: Wannier90's default :data:`WS_DISTANCE_TOL`), recorded in the model's params (its hash) only when
    given and different from the default; ``symmetrize``: a resolved :func:`qgtflow.models.symmetrize.resolve_spec`
    (atoms given) to average H(R), A(R) and the centres over the crystal's group after the Wigner–Seitz images."""
    to_len = _ANGSTROM / _length_factor(length_unit)
    to_en = 1.0 / _energy_factor(energy_unit)
    lattice_ang = np.asarray(lattice_ang, float)
    if positions is not None:
        frac = np.asarray(positions, float)
        if frac.ndim != 2 or frac.shape[0] != num_wann:
            raise ModelError(f"{source}: positions have shape {frac.shape}; expected ({num_wann}, dim) "
                             "fractional coordinates, one row per Wannier function")
        if frac.shape[1] < 3:
            frac = np.pad(frac, ((0, 0), (0, 3 - frac.shape[1])))
    elif centres_ang is not None:
        frac = np.linalg.solve(lattice_ang.T, np.asarray(centres_ang, float).T).T
    else:
        frac = None
    if convention is None:
        convention = "II" if frac is not None else "I"
    if convention not in ("I", "II"):
        raise ModelError(f"{source}: convention {convention!r}; expected 'I' or 'II'")
    if convention == "II" and frac is None:
        raise ModelError(f"{source}: convention II needs orbital positions; pass positions=... (fractional) "
                         "or provide seedname_centres.xyz (or use a _tb.dat file), or use convention='I'")
    tol = WS_DISTANCE_TOL if ws_distance_tol is None else ws_distance_tol
    if ws_distance_tol is not None and not _computed(wsvec):
        raise ModelError(f"{source}: ws_distance_tol = {ws_distance_tol!r} but the Wigner–Seitz images come from a "
                         "_wsvec.dat (or are off); expected no ws_distance_tol, or no _wsvec.dat (computed images)")
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and math.isfinite(tol) and tol > 0):
        raise ModelError(f"{source}: ws_distance_tol = {ws_distance_tol!r}; expected a positive finite length (Å)")
    plans: dict = {}  # the Wigner–Seitz images of each R set, shared by H and the position components
    table = _ws_shift(table, wsvec, frac, lattice_ang, num_wann, plans, tol)
    table = {R: mat * to_en for R, mat in table.items() if np.any(mat)}
    rtables = None
    if rtab is not None:  # position blocks: relative to the phase positions, WS-shifted like H, model lengths
        tau = np.zeros((num_wann, 3)) if convention == "I" else frac @ lattice_ang
        rtables = []
        for comp in relative_tables(rtab, tau, 3):
            comp = _ws_shift(comp, wsvec, frac, lattice_ang, num_wann, plans, tol)
            rtables.append({R: m * to_len for R, m in comp.items() if np.any(m)})
    if dim not in (None, 1, 2, 3):
        raise ModelError(f"{source}: dim = {dim!r}; expected 1, 2 or 3")
    sym_label = None
    if symmetrize is not None:
        table, rtables, frac, sym_label = _symmetrized(symmetrize, source, dim, lattice_ang * to_len, table, rtables,
                                                       frac, convention, num_wann, lattice_ang)
    dim = 3 if dim is None else dim
    if dim < 3:
        lat = lattice_ang
        if np.abs(lat[:dim, dim:]).max(initial=0) > 1e-8 or np.abs(lat[dim:, :dim]).max(initial=0) > 1e-8:
            raise ModelError(f"{source}: dim = {dim} needs the first {dim} lattice vectors in the first {dim} "
                             f"Cartesian directions and the others perpendicular; got {lat.tolist()}")
        bad = sorted(R for R in table if any(R[dim:]))
        if bad:
            raise ModelError(f"{source}: dim = {dim} but there are hoppings along the dropped direction(s), "
                             f"e.g. R = {bad[0]}; expected R components beyond {dim} to be 0")
        table = {R[:dim]: mat for R, mat in table.items()}
        if rtables is not None:
            bad = sorted(R for comp in rtables[:dim] for R in comp if any(R[dim:]))
            if bad:
                raise ModelError(f"{source}: dim = {dim} but there are position matrix elements along the dropped "
                                 f"direction(s), e.g. R = {bad[0]}; expected R components beyond {dim} to be 0 "
                                 "(or position_operator: false)")
            rtables = [{R[:dim]: m for R, m in comp.items()} for comp in rtables[:dim]]
        lattice_ang = lat[:dim, :dim]
        frac = frac[:, :dim] if frac is not None else None
    if frac is None:
        frac = np.zeros((num_wann, dim))
    params = {} if tol == WS_DISTANCE_TOL else {"ws_distance_tol": float(tol)}  # default: the hash as before
    if symmetrize is not None:  # the crystal and projections it was averaged with (its hash; off: as before)
        params["symmetrize"] = {k: v for k, v in symmetrize.items() if v is not None}
    model = TightBindingModel.from_table(name, lattice_ang * to_len, frac, table, params=params, convention=convention)
    if sym_label is not None:
        model.convention = f"{model.convention}; {sym_label}"
    near = [p for p in plans.values() if p.near]  # the tie tolerance's near misses (wedge.py's hint)
    model.ws_near_ties = (sum(p.near for p in near), max(p.near_gap for p in near), float(tol)) if near else None
    if rtables is not None:
        position.attach(model, rtables, frac, position_operator)
    return model


def _symmetrized(spec, source, dim, lattice, table, rtables, frac, convention, num_wann, lattice_ang=None):
    """(H', position tables', fractional positions', label) of the group average (models/symmetrize.py) in model
    units (``lattice_ang``: the lattice in Å, for projection sites c=x,y,z, which are Å or bohr); refused when it
    changes H by more than :data:`~qgtflow.models.symmetrize.REFUSE_CHANGE` (a wrong crystal, projection or spinor
    ordering, not a Wannierisation error)."""
    from qgtflow.models import symmetrize as sym

    where = "model.wannier90.symmetrize"
    if dim not in (None, 3):
        raise ModelError(f"{where}: given with dim = {dim}; expected a 3D model (symmetrise the 3D file)")
    if not spec.get("atoms"):
        raise ModelError(f"{where}.atoms: missing; expected [[species, f1, f2, f3], ...] or a .win with atoms_frac "
                         "or atoms_cart beside the file")
    try:
        layout = sym.orbital_layout(spec["atoms"], spec["projections"], num_wann, spec["spinors"],
                                    spec["spin_ordering"], lattice_ang)
    except ModelError as exc:
        raise ModelError(f"{where}.{str(exc).removeprefix('symmetrize.')} (or set {where}: false to use the file as it "
                         "is)") from None
    tau = np.zeros((num_wann, 3)) if (convention == "I" or frac is None) else frac @ lattice
    centres = frac @ lattice if frac is not None else None
    absolute = None
    if rtables is not None:
        keys = set().union(*rtables)
        absolute = {R: np.stack([comp.get(R, np.zeros((num_wann, num_wann), complex)) for comp in rtables], -1)
                    for R in keys}
        zero = (0, 0, 0)
        absolute[zero] = absolute.get(zero, np.zeros((num_wann, num_wann, 3), complex)) + np.einsum(
            "ij,ic->ijc", np.eye(num_wann), tau)
    # the cell of each function relative to its atom: from its centre when known, else its site line's
    cells = sym.home_cells(layout, spec["atoms"], frac) if frac is not None else layout.home_cells
    if centres is None:  # no centres known: the orbitals at their atoms (only H is averaged then)
        home = np.zeros((num_wann, 3))
        for a, orbs in zip(spec["atoms"], layout.atom_orbitals):
            home[layout.order[orbs]] = np.asarray(a[1:], float) @ lattice
        centres = home + cells @ lattice
    res = sym.symmetrize_tables(lattice, spec["atoms"], layout, table, centres, absolute, spec["magnetic_moments"],
                                cells=cells)
    if res.h_change > sym.REFUSE_CHANGE:
        raise ModelError(f"{where}: changes H(R) by {res.h_change:.3g} of its norm; expected < {sym.REFUSE_CHANGE:g} "
                         "(a Wannierisation error): check the projections (kinds, order), spinors, spin_ordering, "
                         "atoms and magnetic_moments, or set it false to use the file as it is")
    table = {R: m for R, m in res.table.items() if np.any(m)}
    new_frac = frac
    if frac is not None:
        new_frac = res.centres @ np.linalg.inv(lattice)
        tau = np.zeros((num_wann, 3)) if convention == "I" else res.centres
    if res.positions is not None:
        rtables = [{R: m for R, m in comp.items() if np.any(m)} for comp in relative_tables(res.positions, tau, 3)]
    return table, rtables, new_frac, sym.label(spec, res)


def _parse_hr_blocks(lines: _Lines, nrpts: int, num_wann: int, deg: np.ndarray):
    """Line-by-line parse of the _hr.dat hopping lines: ({R: (n, n)}, {R: (n, n) line numbers})."""
    nw2 = num_wann * num_wann
    table: dict[tuple, np.ndarray] = {}
    where: dict[tuple, np.ndarray] = {}
    blocks: list[tuple[int, tuple]] = []
    for b in range(nrpts):
        for e in range(nw2):
            expected = (f"a hopping line 'R1 R2 R3 i j Re Im' (block {b + 1} of nrpts = {nrpts}, "
                        f"entry {e + 1} of num_wann^2 = {nw2})")
            n, toks = lines.tokens(7, expected)
            vals = [lines.to_int(n, t, expected + ": integers R1 R2 R3 i j") for t in toks[:5]]
            re, im = (lines.to_float(n, t, expected + ": real numbers Re Im") for t in toks[5:])
            R = lines.lattice_vector(n, vals[:3], "R")
            i = lines.orbital(n, vals[3], num_wann, "i")
            j = lines.orbital(n, vals[4], num_wann, "j")
            if e == 0:
                blocks.append((n, R))
                if R in table:
                    raise lines.error(n, f"R = {R} repeats the block starting at line {where[R].min()}; "
                                         f"expected nrpts = {nrpts} distinct R vectors (nrpts inconsistent?)")
                table[R] = np.zeros((num_wann, num_wann), complex)
                where[R] = np.zeros((num_wann, num_wann), int)
            elif R != blocks[-1][1]:
                raise lines.error(n, f"R = {R} inside the block of R = {blocks[-1][1]} (line {blocks[-1][0]}); "
                                     f"expected num_wann^2 = {nw2} consecutive lines per R")
            if where[R][i, j]:
                raise lines.error(n, f"duplicate entry i = {i + 1}, j = {j + 1} for R = {R} (first at line "
                                     f"{where[R][i, j]}); expected each (i, j) once per R")
            table[R][i, j] = complex(re, im) / deg[b]
            where[R][i, j] = n
    extra = lines.peek()
    if extra is not None:
        raise lines.error(extra[0], f"extra data after {nrpts} blocks of {nw2} hopping lines; expected end of "
                                    f"file (nrpts = {nrpts} inconsistent with the data?)")
    return table, where


def read_hr(path, lattice=None, positions=None, wsvec=None, convention=None, *, length_unit="nm",
            energy_unit="eV", lattice_unit="angstrom", dim=None, name=None, hermiticity_tol=1e-5,
            ws_distance_tol=None, symmetrize=None) -> TightBindingModel:
    """Read a Wannier90 ``seedname_hr.dat`` into a :class:`TightBindingModel`.

    Parameters
    ----------
    path: the ``_hr.dat`` file.
    lattice: (3, 3) lattice vectors as rows in ``lattice_unit`` (default Å); if None, read from
        ``seedname.win`` beside the file (``unit_cell_cart``), else a :class:`ModelError`.
        A (2, 2)/(1, 1) lattice implies ``dim`` 2/1.
    positions: (num_wann, dim) orbital positions in fractional coordinates; if None,
        ``seedname_centres.xyz`` beside the file is used when present, else the final centres of
        ``seedname.wout`` (so convention II is the default whenever Wannier90's own output is beside it).
    wsvec: path of a ``_wsvec.dat``; None uses ``seedname_wsvec.dat`` beside the file if present, else
        computes Wannier90's Wigner–Seitz correction (:func:`ws_distance_table`; needs the centres, mp_grid from
        ``seedname.win`` or inferred from the R vectors and degeneracies); False: no correction.
    convention: "I" (phase e^{ik·R}), "II" (phase e^{ik·(R+τ_j−τ_i)}, needs positions), or None:
        II when positions are known, else I.
    length_unit, energy_unit: model units to convert Å and eV into (the study's units).
    dim: 1, 2 or 3 (default 3, or the size of ``lattice``): drop the trailing Cartesian directions
        (they must be perpendicular and carry no hoppings), e.g. 2 for a layer.
    hermiticity_tol: tolerance of H(−R) = H(R)^†, relative to the largest hopping (plus the 1e-6 eV of
        the files' 6 printed decimals); within it the hoppings are symmetrised (logged), beyond it refused.
    ws_distance_tol: Wannier90's ws_distance_tol (Å) of the computed Wigner–Seitz correction (None: 1e-5, the
        default); refused with a _wsvec.dat (the file fixes the images).
    symmetrize: None/False (the file's tables as they are), True or a mapping (projections, spinors, spin_ordering,
        atoms, magnetic_moments; missing ones from ``seedname.win``): average H(R), A(R) and the centres over the
        crystal's group (``models/symmetrize.py``), recorded in the params (hash) and the convention label.
    """
    path = Path(path)
    lines = _Lines(path, "Wannier90 _hr.dat")
    lines.header()
    num_wann = lines.positive_int("num_wann (number of Wannier functions)")
    nrpts = lines.positive_int("nrpts (number of lattice vectors R)")
    deg = lines.degeneracies(nrpts)
    mark = (lines.offset, lines.lineno)
    fast = _fast_blocks(lines, nrpts, num_wann, [(7, False)])
    if fast is not None:
        table = {R: m[..., 0] / deg[b] for b, (R, m) in enumerate(fast[0][0].items())}
        del fast  # the model set-up below runs without the file's text in memory (released by _fast_blocks)
    else:
        lines.reload()
        table, _ = _parse_hr_blocks(lines, nrpts, num_wann, deg)

    def describe(*args):  # errors name lines: re-read the data line by line (rare path)
        lines.reload()
        lines.offset, lines.lineno = mark
        return _hermiticity_error(lines, *_parse_hr_blocks(lines, nrpts, num_wann, deg))(*args)

    cells = list(table)  # the file's R order, which the degeneracies follow (symmetrising may reorder the table)
    table = _hermitian_part(table, hermiticity_tol, describe)

    seed = _seed(path, "_hr.dat")
    if lattice is None:
        win = seed.with_suffix(".win")
        if not win.exists():
            raise ModelError(f"Wannier90 _hr.dat file {path}: no lattice vectors; pass lattice=... or provide "
                             f"{win.name} (begin unit_cell_cart block) beside it")
        lattice_ang = read_win_lattice(win)
    else:
        lattice_ang = np.asarray(lattice, float) * (_length_factor(lattice_unit, "lattice_unit") / _ANGSTROM)
        if lattice_ang.ndim != 2 or lattice_ang.shape[0] != lattice_ang.shape[1] or lattice_ang.shape[0] > 3:
            raise ModelError(f"{path}: lattice has shape {lattice_ang.shape}; expected (3, 3) (or (2, 2), (1, 1))")
        d = lattice_ang.shape[0]
        if d < 3:
            if dim not in (None, d):
                raise ModelError(f"{path}: a ({d}, {d}) lattice with dim = {dim}; expected dim = {d} (or None)")
            dim = d
            full = np.eye(3) * max(1.0, np.abs(lattice_ang).max())
            full[:d, :d] = lattice_ang
            lattice_ang = full
    centres = None
    if positions is None:
        xyz = Path(str(seed) + "_centres.xyz")
        wout = seed.with_suffix(".wout")
        if xyz.exists():
            centres = read_centres(xyz, num_wann)
        elif wout.exists():
            centres = read_wout_centres(wout, num_wann)
    ws = _wsvec_for(path, seed, wsvec, num_wann, table, cells, deg)
    return _build(name or seed.name, lattice_ang, table, num_wann, positions=positions, centres_ang=centres,
                  convention=convention, length_unit=length_unit, energy_unit=energy_unit, wsvec=ws, dim=dim,
                  source=f"Wannier90 _hr.dat file {path}", ws_distance_tol=ws_distance_tol,
                  symmetrize=_symmetrize_spec(symmetrize, seed, lattice_ang))


def _symmetrize_spec(spec, seed, lattice_ang):
    """:func:`qgtflow.models.symmetrize.resolve_spec` with the atoms of ``seedname.win`` (fractional in
    ``lattice_ang``) when the spec names none; None when not symmetrising."""
    from qgtflow.models.symmetrize import resolve_spec

    win = seed.with_name(seed.name + ".win")
    out = resolve_spec(spec, win, "model.wannier90.symmetrize")
    if out is not None and out["atoms"] is None and win.is_file():
        out["atoms"] = read_win_atoms(win, lattice_ang)
    return out


def _wsvec_for(path, seed, wsvec, num_wann, table, cells, deg):
    """The _wsvec.dat shifts (:class:`WsVectors`), or ("compute", mp_grid) when there is no such file (the
    Wigner–Seitz correction is then computed from the lattice and the centres, see :func:`ws_distance_table`;
    the grid inferred from the file's R list ``cells`` and degeneracies ``deg``, in the file's order),
    or None (``wsvec=False``)."""
    if wsvec is False:
        return None
    if wsvec is None:
        cand = Path(str(seed) + "_wsvec.dat")
        if not cand.exists():
            win = seed.with_suffix(".win")
            grid = read_win_mp_grid(win) if win.exists() else None
            with open(path) as f:
                first = f.readline()
            if first.startswith(WRITE_HR_HEADER):
                return None  # qgtflow's own export: the hoppings are the model's, already at their bonds
            grid = grid if grid is not None else infer_mp_grid(cells, deg, path)
            return None if grid is None else ("compute", grid)
        wsvec = cand
    return read_wsvec(wsvec, (num_wann, list(table)))


def read_tb(path, positions=None, wsvec=None, convention=None, *, lattice=None, length_unit="nm",
            energy_unit="eV", lattice_unit="angstrom", dim=None, name=None, hermiticity_tol=1e-5,
            position_operator=True, ws_distance_tol=None, symmetrize=None) -> TightBindingModel:
    """Read a Wannier90 ``seedname_tb.dat`` (``write_tb``) into a :class:`TightBindingModel`.

    The lattice comes from the file (Å) unless ``lattice`` overrides it; the Wannier centres
    (diagonal of r(R = 0)) give the orbital positions unless ``positions`` (fractional) overrides
    them, so ``convention`` defaults to II. ``position_operator``: attach the file's position matrix elements
    beyond the centres (``models/position.py``; Berry curvature and its dipole then include them, WYSV Eq. 27);
    False keeps the tight-binding approximation (recorded in the model's convention label either way).
    Other arguments as in :func:`read_hr`.
    """
    path = Path(path)
    lines = _Lines(path, "Wannier90 _tb.dat")
    lines.header()
    lat = []
    for a in range(3):
        expected = f"lattice vector a{a + 1} (3 numbers, Å)"
        n, toks = lines.tokens(3, expected)
        lat.append([lines.to_float(n, t, expected) for t in toks])
    lattice_ang = np.array(lat)
    if abs(np.linalg.det(lattice_ang)) < 1e-12:
        raise lines.error(n, f"lattice vectors {lattice_ang.tolist()} are linearly dependent; expected a unit cell")
    num_wann = lines.positive_int("num_wann (number of Wannier functions)")
    nrpts = lines.positive_int("nrpts (number of lattice vectors R)")
    deg = lines.degeneracies(nrpts)
    nw2 = num_wann * num_wann

    def read_blocks(kind: str, ncols: int):
        tab, wh, order = {}, {}, []
        for b in range(nrpts):
            n, R = lines.ints(3, f"the lattice vector 'R1 R2 R3' of {kind} block {b + 1} of nrpts = {nrpts}")
            R = lines.lattice_vector(n, R, "R")
            if R in tab:
                raise lines.error(n, f"R = {R} repeats the {kind} block at line {wh[R][1]}; expected nrpts = "
                                     f"{nrpts} distinct R vectors (nrpts inconsistent?)")
            mat = np.zeros((num_wann, num_wann, (ncols - 2) // 2), complex)
            seen = np.zeros((num_wann, num_wann), int)
            for e in range(nw2):
                expected = (f"a {kind} line 'i j " + ("Re Im" if ncols == 4 else "Re x Im x Re y Im y Re z Im z")
                            + f"' (entry {e + 1} of num_wann^2 = {nw2} for R = {R})")
                m, toks = lines.tokens(ncols, expected)
                i = lines.orbital(m, lines.to_int(m, toks[0], expected), num_wann, "i")
                j = lines.orbital(m, lines.to_int(m, toks[1], expected), num_wann, "j")
                if seen[i, j]:
                    raise lines.error(m, f"duplicate entry i = {i + 1}, j = {j + 1} for R = {R} (first at line "
                                         f"{seen[i, j]}); expected each (i, j) once per R")
                nums = [lines.to_float(m, t, expected) for t in toks[2:]]
                mat[i, j] = np.array(nums[0::2]) + 1j * np.array(nums[1::2])
                seen[i, j] = m
            tab[R] = mat / deg[b]
            wh[R] = (seen, n)
            order.append(R)
        return tab, wh, order

    def read_all():
        htab, hwhere, horder = read_blocks("Hamiltonian", 4)
        rtab, rwhere, rorder = read_blocks("position-operator", 8)
        if set(rorder) != set(horder):
            R = min(set(rorder) - set(horder))
            raise lines.error(rwhere[R][1], f"position block R = {R} has no Hamiltonian block; expected the same "
                                            "R vectors as the Hamiltonian blocks")
        extra = lines.peek()
        if extra is not None:
            raise lines.error(extra[0], "extra data after the position-operator blocks; expected end of file")
        return htab, {R: w[0] for R, w in hwhere.items()}, rtab

    mark = (lines.offset, lines.lineno)
    fast = _fast_blocks(lines, nrpts, num_wann, [(4, True), (8, True)])
    if fast is not None and set(fast[0][1]) == set(fast[1][1]):
        htab = {R: m / deg[b] for b, (R, m) in enumerate(fast[0][0].items())}
        rtab = {R: m / deg[b] for b, (R, m) in enumerate(fast[1][0].items())}
        del fast  # the model set-up below runs without the file's text in memory (released by _fast_blocks)
    else:
        lines.reload()
        lines.offset, lines.lineno = mark
        htab, _, rtab = read_all()
    table = {R: m[..., 0] for R, m in htab.items()}

    def describe(*args):  # errors name lines: re-read the data line by line (rare path)
        lines.reload()
        lines.offset, lines.lineno = mark
        htab_slow, where, _ = read_all()
        return _hermiticity_error(lines, {R: m[..., 0] for R, m in htab_slow.items()}, where)(*args)

    cells = list(table)  # the file's R order, which the degeneracies follow (symmetrising may reorder the table)
    table = _hermitian_part(table, hermiticity_tol, describe)
    zero = (0, 0, 0)
    if zero not in rtab:
        raise ModelError(f"Wannier90 _tb.dat file {path}: no R = (0, 0, 0) block; expected one (Wannier centres)")
    centres = np.real(np.einsum("iic->ic", rtab[zero]))

    seed = _seed(path, "_tb.dat")
    if lattice is not None:
        lattice_ang = np.asarray(lattice, float) * (_length_factor(lattice_unit, "lattice_unit") / _ANGSTROM)
        if lattice_ang.shape != (3, 3):
            raise ModelError(f"{path}: lattice has shape {lattice_ang.shape}; expected (3, 3)")
    ws = _wsvec_for(path, seed, wsvec, num_wann, table, cells, deg)
    return _build(name or seed.name, lattice_ang, table, num_wann, positions=positions,
                  centres_ang=centres if positions is None else None, convention=convention,
                  length_unit=length_unit, energy_unit=energy_unit, wsvec=ws, dim=dim,
                  source=f"Wannier90 _tb.dat file {path}", rtab=_hermitian_positions(rtab, path),
                  position_operator=position_operator, ws_distance_tol=ws_distance_tol,
                  symmetrize=_symmetrize_spec(symmetrize, seed, lattice_ang))


def _hermitian_positions(rtab: dict, path) -> dict:
    """r(−R) = r(R)^† (Å, printed to 6 decimals): symmetrised, [r(R) + r(−R)^†]/2, the deviation logged."""
    out, worst = {}, 0.0
    for R, m in rtab.items():
        partner = rtab.get(tuple(-r for r in R))
        partner = np.zeros_like(m) if partner is None else partner
        adj = np.conj(np.swapaxes(partner, 0, 1))
        worst = max(worst, float(np.abs(m - adj).max()))
        out[R] = 0.5 * (m + adj)
    if worst > 0:
        log.info("Wannier90 _tb.dat %s: position blocks symmetrised, r(R) -> [r(R) + r(-R)^dagger]/2 "
                 "(max |r(-R) - r(R)^dagger| = %.3g Angstrom)", path, worst)
    return out


# -- writer ----------------------------------------------------------------------------------------

def write_hr(model, path, *, energy_unit="eV", header=None) -> Path:
    """Write a :class:`TightBindingModel` as a Wannier90 ``_hr.dat`` (all degeneracies 1).

    The file holds the integer-R hoppings <i,0|H|j,R> (convention independent; reading it back with
    ``convention="I"`` gives the convention-I Hamiltonian, with the model's orbital positions and
    ``convention="II"`` the convention-II one). Lower-dimensional models get R3 (and R2) = 0.
    Values are written with 17 significant digits (Wannier90 itself writes 6 decimals), in eV
    (``energy_unit`` is the model's energy unit). Returns the path.
    """
    if not isinstance(model, TightBindingModel) or not hasattr(model, "hopping_table"):
        raise ModelError(f"write_hr: model '{getattr(model, 'name', model)}' is not a tight-binding model; "
                         "expected a TightBindingModel")
    if model.dim > 3:
        raise ModelError(f"write_hr: model '{model.name}' has dim = {model.dim}; expected at most 3")
    to_ev = _energy_factor(energy_unit)
    n = model.nbands
    table = {tuple(R) + (0,) * (3 - model.dim): np.asarray(m) * to_ev for R, m in model.hopping_table.items()}
    for R in list(table):
        table.setdefault(tuple(-r for r in R), np.zeros((n, n), complex))
    Rs = sorted(R for R in table if np.any(table[R]) or np.any(table[tuple(-r for r in R)]) or not any(R))
    out = [header or f"{WRITE_HR_HEADER} from model '{model.name}'",
           f"{n:12d}", f"{len(Rs):12d}"]
    for s in range(0, len(Rs), 15):
        out.append("".join(f"{1:5d}" for _ in Rs[s:s + 15]))
    for R in Rs:
        mat = table[R]
        for j in range(n):
            for i in range(n):
                out.append(f"{R[0]:5d}{R[1]:5d}{R[2]:5d}{i + 1:5d}{j + 1:5d} "
                           f"{mat[i, j].real: .16e} {mat[i, j].imag: .16e}")
    path = Path(path)
    try:
        path.write_text("\n".join(out) + "\n")
    except OSError as exc:
        raise ModelError(f"cannot write Wannier90 _hr.dat file {path}: {exc.strerror or exc}") from exc
    return path


# -- other tight-binding packages ------------------------------------------------------------------

def _missing(package: str) -> ModelError:
    return ModelError(f"converting a {package} model needs the '{package}' package; install it with "
                      f"{_IMPORT_EXTRA} (or pip install {package})")


def from_pythtb(tb_model, name="pythtb") -> TightBindingModel:
    """Convert a PythTB ``tb_model`` (convention II: orbital positions in the phase).

    PythTB stores [amp, i, j, R] = <i,0|H|j,R> with the Hermitian partner implicit, on-site
    energies in ``_site_energies``, lattice ``_lat`` (rows, PythTB's length units, kept as is) and
    reduced orbital positions ``_orb``. Spinful models (nspin = 2) become 2·norb orbitals ordered
    (orbital, spin) like PythTB's flattened Hamiltonian; the model's ``spin`` is then 1 ⊗ σ.
    """
    try:
        import pythtb
    except ImportError:
        raise _missing("pythtb") from None
    if not isinstance(tb_model, pythtb.tb_model):
        raise ModelError(f"from_pythtb: got {type(tb_model).__name__}; expected a pythtb.tb_model")
    dim_k, dim_r = tb_model._dim_k, tb_model._dim_r
    if dim_k == 0 or dim_k != dim_r:
        raise ModelError(f"from_pythtb: model has dim_k = {dim_k}, dim_r = {dim_r}; expected a bulk model "
                         "periodic in every direction (dim_k = dim_r >= 1)")
    nspin = tb_model._nspin
    norb = tb_model._norb
    lattice = np.asarray(tb_model._lat, float)
    orb = np.asarray(tb_model._orb, float)

    def blocks(i, j, amp):
        """(i, j, value) entries in the flattened (orbital, spin) basis."""
        if nspin == 1:
            return [(i, j, complex(amp))]
        amp = np.asarray(amp, complex).reshape(2, 2)
        return [(2 * i + s, 2 * j + u, amp[s, u]) for s in range(2) for u in range(2)]

    hops = []
    zero = (0,) * dim_r
    for i in range(norb):
        hops += [(zero, a, b, v) for a, b, v in blocks(i, i, tb_model._site_energies[i])]
    for amp, i, j, R in tb_model._hoppings:
        R = tuple(int(r) for r in np.asarray(R).reshape(-1))
        mR = tuple(-r for r in R)
        for a, b, v in blocks(int(i), int(j), amp):
            hops.append((R, a, b, v))
            hops.append((mR, b, a, np.conj(v)))
    positions = np.repeat(orb, nspin, axis=0)
    model = TightBindingModel(name, lattice, positions, hops, params={}, convention="II")
    if nspin == 2:
        paulis = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], complex)
        model.spin = np.stack([np.kron(np.eye(norb), p) for p in paulis])
    return model


def from_tbmodels(model, name="tbmodels") -> TightBindingModel:
    """Convert a TBmodels ``Model`` (positions in the phase, i.e. TBmodels' ``convention=1`` = our II).

    TBmodels stores half of the hoppings: H(k) = Σ_R hop[R] e^{2πik·R} + h.c. (``hop[0]`` holds half
    of the on-site block), with reduced orbital positions ``pos`` and unit cell ``uc`` (rows).
    """
    try:
        import tbmodels
    except ImportError:
        raise _missing("tbmodels") from None
    if not isinstance(model, tbmodels.Model):
        raise ModelError(f"from_tbmodels: got {type(model).__name__}; expected a tbmodels.Model")
    if model.uc is None:
        raise ModelError(f"from_tbmodels: model '{name}' has no unit cell (uc); expected lattice vectors")
    hops = []
    for R, mat in model.hop.items():
        mat = mat.toarray() if hasattr(mat, "toarray") else np.asarray(mat)
        R = tuple(int(r) for r in R)
        mR = tuple(-r for r in R)
        for i, j in zip(*np.nonzero(mat)):
            hops.append((R, int(i), int(j), complex(mat[i, j])))
            hops.append((mR, int(j), int(i), complex(np.conj(mat[i, j]))))
    return TightBindingModel(name, np.asarray(model.uc, float), np.asarray(model.pos, float), hops,
                             params={}, convention="II")
