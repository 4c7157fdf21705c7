"""Symbolic Hamiltonians written in a study file: H(k) as expressions in kx, ky, kz and named parameters.

Two ways to write H (see ``schemas/study.schema.yaml``, ``model.hamiltonian``):

* ``matrix``: an n×n list of expression strings, e.g. ``[["m", "v*(kx - I*ky)"], ["v*(kx + I*ky)", "-m"]]``;
* ``terms``: a list of ``[coefficient expression, matrix]`` pairs, the matrix a Kronecker product of
  named 2×2 factors (``"tau_x sigma_y"``, ``"tau_z ⊗ sigma_0"``; Pauli ``sigma_*``/``s*``, ``tau_*``/``t*``,
  ``*_0`` the identity) or an explicit numeric matrix.

Text is parsed by sympy's parser after a token whitelist (numbers, arithmetic, parentheses, the k
symbols, declared parameters and a few functions), never by ``eval`` of user text. Parameters are
substituted, every distinct derivative ∂^α H up to third order is derived symbolically, common
subexpressions are shared, and the result is written as a numba kernel into a module named by the
model hash (``$QGTFLOW_CACHE_DIR/models``, default ``~/.cache/qgtflow/models``): compiled once per
model definition and reused from numba's cache afterwards, also by Dask workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import math
import os
import re
import signal
import sys
import threading
import tokenize
from pathlib import Path

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.base import Model
from qgtflow.models.derivatives import slot_count, unique_multi_indices
from qgtflow.safety import private_dir

K_SYMBOLS = ("kx", "ky", "kz")
FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "sinh", "cosh", "tanh", "conjugate", "re", "im", "Abs")
CONSTANTS = ("I", "pi", "E")
RESERVED = set(K_SYMBOLS) | set(FUNCTIONS) | set(CONSTANTS)
_OPERATORS = {"+", "-", "*", "/", "**", "(", ")", ","}

_PAULI = {
    "0": np.eye(2, dtype=complex),
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def named_matrix(text: str, where: str) -> np.ndarray:
    """A Kronecker product of named Pauli factors, e.g. ``"tau_x sigma_y"`` (left factor outermost)."""
    factors = [f for f in re.split(r"[\s*⊗]+", str(text).strip()) if f]
    if not factors:
        raise ModelError(f"{where}: empty matrix name; expected e.g. 'sigma_x' or 'tau_z sigma_0'")
    out = np.ones((1, 1), complex)
    for f in factors:
        m = re.fullmatch(r"(sigma|tau|s|t)_?([0xyz])", f)
        if m is None:
            raise ModelError(f"{where}: unknown matrix factor '{f}' in '{text}'; expected sigma_0/x/y/z, "
                             "tau_0/x/y/z (or s0, sx, ..., t0, tx, ...), separated by spaces or '⊗'")
        out = np.kron(out, _PAULI[m.group(2)])
    return out


# Limits on user expressions, checked on the tokens before sympy sees them (sympy evaluates integer
# powers exactly: 9**9**9 would run for hours inside one C call, where no time limit can stop it).
MAX_EXPRESSION_CHARS = 2000
MAX_EXPONENT = 16  # |n| of every power x**n; n a number or a parenthesised arithmetic of numbers
MAX_LITERAL = 1e300  # float literals: finite, |x| <= this (1e999999999 is refused, not read as inf)
MAX_INTEGER_DIGITS = 18  # an int64 literal in the generated kernel
PARSE_SECONDS = 30.0  # parsing + symbolic derivatives of one model (a SIGALRM limit in the main thread)


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _group_end(tokens, i: int) -> int:
    """Index of the ')' closing the '(' at tokens[i]."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].string == "(":
            depth += 1
        elif tokens[j].string == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def _check_powers(tokens, text: str, where: str) -> None:
    """Every ``**``: exponent a number or parenthesised arithmetic of numbers, |n| <= MAX_EXPONENT; no power
    of a power (``a**b**c``, ``(a**b)**c``) — bounds the size of exact integers and of expanded polynomials."""
    toks = [t for t in tokens if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER,
                                                tokenize.INDENT, tokenize.DEDENT)]
    for i, tok in enumerate(toks):
        if tok.string != "**":
            continue
        if i > 0 and toks[i - 1].string == ")":  # the base is a group: no power inside it
            depth, j = 0, i - 1
            while j >= 0:
                depth += toks[j].string == ")"
                depth -= toks[j].string == "("
                if depth == 0:
                    break
                j -= 1
            if any(t.string == "**" for t in toks[j:i]):
                raise ModelError(f"{where}: power of a power in '{_shown(text)}'; write the exponent out "
                                 f"(at most {MAX_EXPONENT})")
        j = i + 1
        while j < len(toks) and toks[j].string in ("+", "-"):
            j += 1
        if j >= len(toks):
            break
        end = _group_end(toks, j) if toks[j].string == "(" else j
        exponent = toks[i + 1:end + 1]
        if end + 1 < len(toks) and toks[end + 1].string == "**" or any(t.string == "**" for t in exponent):
            raise ModelError(f"{where}: power of a power in '{_shown(text)}'; write the exponent out "
                             f"(at most {MAX_EXPONENT})")
        if any(t.type not in (tokenize.NUMBER, tokenize.OP) for t in exponent):
            raise ModelError(f"{where}: exponent '{' '.join(t.string for t in exponent)}' in '{_shown(text)}'; "
                             "expected a number (use exp(...) for exponentials)")
        try:
            value = float(eval(" ".join(t.string for t in exponent), {"__builtins__": {}}))  # numbers and + - * / ( )
        except (ArithmeticError, SyntaxError, ValueError, TypeError, OverflowError):
            value = float("inf")
        if not abs(value) <= MAX_EXPONENT:
            raise ModelError(f"{where}: exponent {' '.join(t.string for t in exponent)} in '{_shown(text)}'; "
                             f"expected |exponent| <= {MAX_EXPONENT}")


def _number(value):
    """A sympy number for a parameter or literal: an exact Integer when it fits a machine integer (numba
    types generated literals as int64), else the double as a 17-digit Float (exactly that double)."""
    import sympy as sp

    if float(value).is_integer() and abs(float(value)) < 2**53:
        return sp.Integer(int(value))
    return sp.Float(float(value), 17)


def _machine_numbers(expr):
    """Integers and rationals too large for int64 literals in generated code become doubles."""
    import sympy as sp

    big = {a: sp.Float(float(a), 17) for a in expr.atoms(sp.Rational)
           if abs(a.p) >= 2**53 or abs(a.q) >= 2**53}
    return expr.xreplace(big) if big else expr


def _check_tokens(text: str, allowed: set[str], where: str) -> None:
    """Refuse anything but numbers, arithmetic and whitelisted names before sympy sees the text; bound its
    size, its number literals and its powers."""
    if "^" in text:
        raise ModelError(f"{where}: '^' in '{_shown(text)}'; write powers as '**'")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ModelError(f"{where}: expression of {len(text)} characters; expected at most {MAX_EXPRESSION_CHARS}")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise ModelError(f"{where}: cannot read expression '{text}' ({exc})") from None
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NUMBER:
            if tok.string.lower().endswith("j"):
                raise ModelError(f"{where}: '{tok.string}' in '{text}'; write the imaginary unit as 'I'")
            digits = tok.string.replace("_", "")
            try:
                value = float(digits) if not digits.lower().startswith(("0x", "0o", "0b")) else float(int(digits, 0))
            except (ValueError, OverflowError):
                value = float("inf")
            if not abs(value) <= MAX_LITERAL or (digits.isdigit() and len(digits.lstrip("0")) > MAX_INTEGER_DIGITS):
                raise ModelError(f"{where}: number '{_shown(tok.string)}' in '{_shown(text)}'; expected a finite "
                                 f"number of magnitude <= {MAX_LITERAL:g}")
            continue
        if tok.type == tokenize.NAME:
            if tok.string not in allowed:
                known = sorted(allowed - set(FUNCTIONS) - set(CONSTANTS))
                raise ModelError(f"{where}: unknown symbol '{tok.string}' in '{text}'; known symbols are "
                                 f"{known} (parameters must be declared under model.params), functions "
                                 f"{list(FUNCTIONS)}, constants {list(CONSTANTS)}")
            continue
        if tok.type == tokenize.OP and tok.string in _OPERATORS:
            continue
        raise ModelError(f"{where}: '{tok.string}' is not allowed in '{text}'; use numbers, + - * / **, "
                         "parentheses, k symbols, parameters and the listed functions")
    _check_powers(tokens, text, where)


def parse_expression(text, params: dict, where: str):
    """A sympy expression from user text (numbers pass through), with the whitelist enforced."""
    import sympy as sp
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations

    if isinstance(text, bool):
        raise ModelError(f"{where}: {text!r} is not an expression")
    if isinstance(text, (int, float)):
        try:  # an int beyond int64 (np.isfinite refuses its type) or beyond float64 (OverflowError)
            finite = math.isfinite(float(text))
        except OverflowError:
            finite = False
        if not finite:
            raise ModelError(f"{where}: {text!r} is not a finite number (of float64 magnitude)")
        return _number(text)
    if not isinstance(text, str) or not text.strip():
        raise ModelError(f"{where}: {text!r}; expected an expression string or a number")
    allowed = RESERVED | set(params)
    _check_tokens(text, allowed, where)
    local = {name: sp.Symbol(name, real=True) for name in list(K_SYMBOLS) + list(params)}
    safe_globals = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol,
                    "I": sp.I, "pi": sp.pi, "E": sp.E, "Abs": sp.Abs, "re": sp.re, "im": sp.im,
                    "conjugate": sp.conjugate, **{f: getattr(sp, f) for f in FUNCTIONS if hasattr(sp, f)},
                    "__builtins__": {}}
    try:
        return parse_expr(text, local_dict=local, global_dict=safe_globals, transformations=standard_transformations)
    except Exception as exc:  # sympy raises many types for malformed text
        raise ModelError(f"{where}: cannot parse '{text}' ({type(exc).__name__}: {exc})") from None


def hamiltonian_matrix(definition: dict, params: dict, where: str = "model.hamiltonian"):
    """The sympy Matrix of a ``hamiltonian`` mapping (``matrix`` or ``terms``), parameters still symbolic."""
    import sympy as sp

    if not isinstance(definition, dict):
        raise ModelError(f"{where}: expected a mapping with 'matrix' or 'terms'")
    has_matrix, has_terms = "matrix" in definition, "terms" in definition
    if has_matrix == has_terms:
        raise ModelError(f"{where}: give exactly one of 'matrix' (n×n expressions) or 'terms' "
                         "(list of [coefficient, matrix])")
    if has_matrix:
        rows = definition["matrix"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            raise ModelError(f"{where}.matrix: expected a square list of rows of expressions")
        n = len(rows)
        for r, row in enumerate(rows):
            if len(row) != n:
                raise ModelError(f"{where}.matrix: row {r} has {len(row)} entries; expected {n} (square matrix)")
        return sp.Matrix(n, n, lambda a, b: parse_expression(rows[a][b], params, f"{where}.matrix[{a}][{b}]"))
    terms = definition["terms"]
    if not isinstance(terms, list) or not terms:
        raise ModelError(f"{where}.terms: expected a non-empty list of [coefficient, matrix] pairs")
    total, size = None, None
    for t, term in enumerate(terms):
        here = f"{where}.terms[{t}]"
        if not isinstance(term, (list, tuple)) or len(term) != 2:
            raise ModelError(f"{here}: {term!r}; expected a pair [coefficient expression, matrix]")
        coeff = parse_expression(term[0], params, f"{here}[0]")
        mat = named_matrix(term[1], f"{here}[1]") if isinstance(term[1], str) else _numeric_matrix(term[1], here)
        if size is not None and mat.shape[0] != size:
            raise ModelError(f"{here}: matrix is {mat.shape[0]}×{mat.shape[0]}; earlier terms are {size}×{size}")
        size = mat.shape[0]
        contribution = coeff * sp.Matrix(mat.tolist()).applyfunc(sp.nsimplify)
        total = contribution if total is None else total + contribution
    return total


def _numeric_matrix(value, where):
    try:
        mat = np.asarray([[complex(x) for x in row] for row in value], complex)
    except (TypeError, ValueError):
        raise ModelError(f"{where}: matrix {value!r}; expected a factor name like 'tau_x sigma_y' or a "
                         "square numeric matrix") from None
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ModelError(f"{where}: matrix of shape {mat.shape}; expected square")
    return mat


def cache_dir() -> Path:
    """Where the generated model modules live: ``models/`` of :func:`qgtflow.cachedir.cache_root` (the one place that
    resolves ``$QGTFLOW_CACHE_DIR``; :func:`qgtflow.runtime.kernel_cache_subdirs` names their numba cache from it)."""
    from qgtflow.cachedir import cache_root

    return cache_root() / "models"


class _Expired(BaseException):
    """The time limit's alarm: a BaseException, so no ``except Exception`` on the way up swallows it."""


RETRY_SECONDS = 0.5  # the alarm repeats while the block runs: one raised inside a finaliser is lost ("ignored")


@contextlib.contextmanager
def _time_limit(seconds: float, message: str):
    """ModelError(message) when the block runs longer than ``seconds`` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    armed = [True]

    def expired(signum, frame):
        if armed[0]:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, expired)
    old_timer = signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_SECONDS)
    try:
        yield
        armed[0] = False  # disarmed at once on either path: a retry landing in the cleanup would escape as _Expired
    except _Expired:
        armed[0] = False
        raise ModelError(message) from None
    finally:
        armed[0] = False  # the block raised something else
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_timer[0] > 0:  # an outer timer keeps running
            signal.setitimer(signal.ITIMER_REAL, *old_timer)


class SymbolicModel(Model):
    """A model from a symbolic H(k): exact derivatives by sympy, one generated numba kernel per model.

    ``definition``: the ``hamiltonian`` mapping; ``params``: numbers substituted for the declared
    parameter symbols; ``dim``: inferred from the highest k symbol used unless given; ``lattice``
    (rows) makes it a periodic model (expressions then use Cartesian k); ``spin``: optional 3
    matrices (names or numeric) for the spin operator; ``param_units``: declared units (provenance).
    """

    def __init__(self, name, definition: dict, params: dict | None = None, dim: int | None = None,
                 lattice=None, kmax=None, spin=None, param_units: dict | None = None,
                 where: str = "model.hamiltonian"):
        params = dict(params or {})
        for key, val in params.items():
            if key in RESERVED or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ModelError(f"model '{name}': parameter name '{key}' is reserved or not an identifier "
                                 f"(reserved: {sorted(RESERVED)})")
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not np.isfinite(float(val)):
                raise ModelError(f"model '{name}': parameter '{key}' = {val!r}; expected a finite number")
        with _time_limit(PARSE_SECONDS, f"model '{name}': parsing and differentiating the symbolic H took longer "
                         f"than {PARSE_SECONDS:g} s; simplify the expressions"):
            self._build(name, definition, params, dim, lattice, kmax, spin, param_units, where)

    def _build(self, name, definition, params, dim, lattice, kmax, spin, param_units, where):
        import sympy as sp

        H = hamiltonian_matrix(definition, params, where)
        ks = [sp.Symbol(s, real=True) for s in K_SYMBOLS]
        used = H.free_symbols
        inferred = max([i + 1 for i, s in enumerate(ks) if s in used], default=1)
        dim = int(dim or inferred)
        if dim < inferred:
            raise ModelError(f"model '{name}': H uses {K_SYMBOLS[inferred - 1]} but dim = {dim}")
        if lattice is not None:
            lattice = np.asarray(lattice, float)
            if lattice.shape != (dim, dim) or abs(np.linalg.det(lattice)) < 1e-12:
                raise ModelError(f"model '{name}': lattice {lattice.tolist()} must be a non-singular "
                                 f"{dim}×{dim} matrix (rows = lattice vectors)")
        super().__init__(name=name, dim=dim, nbands=H.shape[0], params=params, periodic=lattice is not None,
                         lattice=lattice, kmax=None if lattice is not None else float(kmax or 1.0),
                         convention="symbolic k·p (continuum)" if lattice is None else
                         "symbolic periodic H(k), Cartesian k (user's Bloch convention)")
        self.spin = None if spin is None else spin_operator(spin, self.nbands, f"model '{name}': spin")
        self.param_units = dict(param_units or {})
        self._definition_text = sp.srepr(H)  # the definition, parameters still symbolic
        numeric = H.subs({sp.Symbol(k, real=True): _number(v) for k, v in params.items()})
        leftover = numeric.free_symbols - set(ks[:dim])
        if leftover:
            raise ModelError(f"model '{name}': symbols {sorted(map(str, leftover))} have no value")
        self._entries = self._derive(numeric, ks[:dim])
        self._kernel = None

    def _derive(self, H, ks):
        """[(slot, row, col, expr)] for every nonzero entry of every distinct derivative."""
        import sympy as sp

        entries = []
        for u, alpha in enumerate(unique_multi_indices(self.dim)):
            D = H
            for a in alpha:
                # Abs, sign: d|x|/dx = sign(x), then 0 — the derivatives at every k off the kink
                D = D.diff(ks[a]).replace(sp.DiracDelta, lambda *args: sp.S.Zero)
            for a in range(self.nbands):
                for b in range(self.nbands):
                    e = sp.expand(D[a, b]) if D[a, b].is_polynomial(*ks) else D[a, b]
                    if e != 0:
                        entries.append((u, a, b, e))
        return entries

    def identity(self) -> dict:
        ident = super().identity()
        ident["hamiltonian"] = self._definition_text
        if self.lattice is not None:
            ident["lattice"] = np.round(self.lattice, 12).tolist()
        if self.param_units:
            ident["param_units"] = dict(sorted(self.param_units.items()))
        return ident

    def active_slots(self) -> np.ndarray:
        active = np.zeros(len(unique_multi_indices(self.dim)), bool)
        for u, *_ in self._entries:
            active[u] = True
        active[0] = True
        return active

    # -- code generation ---------------------------------------------------------------------
    def _source(self) -> str:
        import sympy as sp
        from sympy.printing.numpy import NumPyPrinter

        printer = NumPyPrinter({"fully_qualified_modules": True})
        exprs = [_machine_numbers(e) for *_, e in self._entries]
        replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"))
        lines = ['"""Generated by qgtflow from a symbolic model; do not edit."""', "import numpy",
                 "from numba import njit, prange", "", "",
                 "@njit(parallel=True, cache=True, error_model='numpy')", "def evaluate(k, out):",
                 "    for q in prange(k.shape[0]):"]
        for i, s in enumerate(K_SYMBOLS[: self.dim]):
            lines.append(f"        {s} = k[q, {i}]")
        lines.append("        for u in range(out.shape[1]):")
        lines.append("            for a in range(out.shape[2]):")
        lines.append("                for b in range(out.shape[3]):")
        lines.append("                    out[q, u, a, b] = 0.0")
        for sym, expr in replacements:
            lines.append(f"        {sym} = {printer.doprint(expr)}")
        for (u, a, b, _), expr in zip(self._entries, reduced):
            lines.append(f"        out[q, {u}, {a}, {b}] = {printer.doprint(expr)}")
        return "\n".join(lines) + "\n"

    def _load_kernel(self):
        if self._kernel is not None:
            return self._kernel
        module_name = f"qgtflow_model_{self.model_hash}"
        if module_name in sys.modules:
            self._kernel = sys.modules[module_name].evaluate
            return self._kernel
        directory = private_dir(cache_dir(), "model cache")  # numba loads code from it: ours only, 0700
        path = directory / f"{module_name}.py"
        source = self._source()
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != \
                hashlib.sha256(source.encode()).hexdigest():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)  # atomic: concurrent workers never import a half-written module
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
        self._kernel = module.evaluate
        return self._kernel

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_kernel"] = None  # workers load the generated module themselves
        return state

    def unique_derivatives(self, k: np.ndarray, out: np.ndarray | None = None, order: int = 3) -> np.ndarray:
        k = np.ascontiguousarray(np.asarray(k, dtype=float).reshape(-1, self.dim))
        shape = (k.shape[0], len(unique_multi_indices(self.dim)), self.nbands, self.nbands)
        if order < 3:  # the generated kernel fills every slot; cheap for k·p expressions, the lower ones are kept
            return self.unique_derivatives(k)[:, :slot_count(self.dim, order)]
        out = np.empty(shape, complex) if out is None or out.shape != shape else out
        if k.shape[0]:
            from numba.core.errors import NumbaError

            try:
                self._load_kernel()(k, out)
            except NumbaError as exc:  # generated code numba cannot type: the expressions' fault, said in one line
                first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                raise ModelError(f"model '{self.name}': its generated kernel does not compile ({first[:200]}); "
                                 "simplify the expressions") from None
        return out


def spin_operator(spin, nbands: int, where: str) -> np.ndarray:
    """(3, n, n) Hermitian spin matrices σ^x, σ^y, σ^z from names (``"sigma_x"``, ``"sigma_x tau_0"``) or numbers."""
    if not isinstance(spin, (list, tuple, np.ndarray)) or len(spin) != 3:
        raise ModelError(f"{where}: expected three matrices (x, y, z components of the spin operator)")
    mats = [named_matrix(s, f"{where}[{c}]") if isinstance(s, str) else _numeric_matrix(s, f"{where}[{c}]")
            for c, s in enumerate(spin)]
    for c, m in enumerate(mats):
        if m.shape != (nbands, nbands):
            raise ModelError(f"{where}[{c}]: spin matrix is {m.shape[0]}×{m.shape[1]}; the model has {nbands} bands")
    mats = np.stack(mats)
    bad = np.argwhere(~np.isfinite(mats))
    if bad.size:  # NaN passes the Hermiticity test below (every comparison with NaN is false)
        c, i, j = bad[0]
        raise ModelError(f"{where}[{c}]: entry [{i}, {j}] is {mats[c, i, j]}; expected a matrix of finite numbers")
    if np.abs(mats - np.conj(np.swapaxes(mats, -1, -2))).max() > 1e-12:
        raise ModelError(f"{where}: spin matrices must be Hermitian")
    return mats
