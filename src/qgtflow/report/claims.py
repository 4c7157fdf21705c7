"""The papers' quantitative claims as executable checks: the rows of ``qgtflow/data/claims.yaml``
evaluated on responses stores (the report's finest stores and error bars, or in-process datasets in
the tests), each with our value, its error bar and a verdict against the paper's value.

A row names a study, one of the evaluators below and one or two selections of a response:
``value`` (the selection itself), ``ratio`` (a / b), ``argmax`` (position of the largest |a| along
one dim), ``slope`` (d ln|a| / d ln x along one dim: a power law), ``sign_changes`` (of a along one
dim), ``field_series`` (|Σₙ Tₙ Eⁿ| / |base| of a field expansion). A selection's free dims stay
free: the verdict asks every element to lie in the paper's interval (widened by its error bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from qgtflow.plan import CLAIMS_FILE, claims_digest
EVALUATORS = ("value", "ratio", "argmax", "slope", "sign_changes", "field_series")
VERDICTS = ("reproduced", "differs")
__all__ = ["CLAIMS_FILE", "claims_digest", "load_claims", "evaluate_all", "claims_section"]
_ROW_KEYS = {"id", "paper", "where", "statement", "study", "evaluator", "a", "b", "terms", "field", "along",
             "within", "floor", "paper_value", "expect", "reason", "test", "note"}


class ClaimError(ValueError):
    """A malformed claims row or a selection the stores cannot answer."""


def load_claims(path: Path = CLAIMS_FILE) -> list[dict]:
    """The rows of the claims file, each checked for its keys, evaluator, paper interval and expected verdict."""
    from qgtflow import yamlio

    rows = yamlio.load(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ClaimError(f"{path}: expected a list of claims, got {type(rows).__name__}")
    seen = set()
    for n, row in enumerate(rows):
        where = f"{path.name}[{n}]"
        unknown = set(row) - _ROW_KEYS
        missing = {"id", "paper", "where", "statement", "study", "evaluator", "a", "paper_value", "expect"} - set(row)
        if unknown or missing:
            raise ClaimError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        if row["id"] in seen:
            raise ClaimError(f"{where}: id {row['id']!r} used twice")
        seen.add(row["id"])
        if row["evaluator"] not in EVALUATORS:
            raise ClaimError(f"{where}: evaluator {row['evaluator']!r}; expected one of {list(EVALUATORS)}")
        if row["expect"] not in VERDICTS:
            raise ClaimError(f"{where}: expect {row['expect']!r}; expected one of {list(VERDICTS)}")
        if row["expect"] == "differs" and not row.get("reason"):
            raise ClaimError(f"{where}: a claim expected to differ needs a 'reason'")
        paper_interval(row)
    return rows


def paper_interval(row: dict) -> tuple[float, float]:
    """[lo, hi] of the paper's value: ``range: [lo, hi]`` or ``value`` with ``rtol`` / ``atol`` / ``factor``."""
    p = row["paper_value"]
    if "range" in p:
        lo, hi = (float(v) for v in p["range"])
    elif "value" in p:
        v = float(p["value"])
        if "factor" in p:
            f = float(p["factor"])
            lo, hi = sorted((v / f, v * f))
        else:
            tol = float(p.get("atol", 0.0)) + abs(v) * float(p.get("rtol", 0.0))
            lo, hi = v - tol, v + tol
    else:
        raise ClaimError(f"claim {row.get('id')!r}: paper_value needs 'range' or 'value'")
    if not lo <= hi:
        raise ClaimError(f"claim {row.get('id')!r}: empty paper interval [{lo}, {hi}]")
    return lo, hi


# ---------------------------------------------------------------- sources of values


class DatasetSource:
    """Responses datasets by study ({study: xr.Dataset}) with optional error datasets (convergence stores)."""

    def __init__(self, datasets: dict, errors: dict | None = None):
        self.datasets, self.errors = datasets, errors or {}

    def dataset(self, study: str) -> xr.Dataset:
        if study not in self.datasets:
            raise ClaimError(f"study '{study}' has no results")
        return self.datasets[study]

    def error(self, study: str, response: str):
        e = self.errors.get(study)
        return None if e is None or f"{response}_error" not in e else e[f"{response}_error"]


class StoreSource(DatasetSource):
    """The report's stores: each study's finest responses store and its convergence store (error bars)."""

    def __init__(self, results_dir: Path, studies: dict):
        super().__init__({})
        self.results_dir, self.studies = Path(results_dir), studies

    def dataset(self, study: str) -> xr.Dataset:
        from qgtflow.report.stores import finest_store, open_store

        if study not in self.datasets:
            if study not in self.studies:
                raise ClaimError(f"study '{study}' is not configured")
            store, _ = finest_store(self.results_dir, study, self.studies[study])
            if store is None:
                raise ClaimError(f"study '{study}' has no responses store")
            self.datasets[study] = open_store(store)
            conv = self.results_dir / study / "convergence" / "convergence.zarr"
            self.errors[study] = open_store(conv) if conv.exists() else None
        return self.datasets[study]


def _on_grid(name, dim: str, values, label) -> None:
    """Refuse (ClaimError, the row is 'not evaluated') a numeric selection outside the store's grid by more than
    half its median step, e.g. a metallic μ asked of a study that stores μ = 0 only: the nearest value would be
    another condition's answer. Inside the grid the nearest value is meant."""
    grid = np.sort(np.asarray(values, float).ravel())
    step = float(np.median(np.diff(grid))) if grid.size > 1 else 0.0
    slack = 0.5 * step + 1e-9 * max(1.0, float(np.abs(grid).max()))
    wanted = np.atleast_1d(np.asarray(label, float))
    outside = wanted[(wanted < grid[0] - slack) | (wanted > grid[-1] + slack)]
    if outside.size:
        raise ClaimError(f"{name}: {dim} = {outside.tolist()} outside the store's {dim} grid "
                         f"[{grid[0]:g}, {grid[-1]:g}] ({grid.size} values)")


def _pick(da: xr.DataArray, sel: dict, ds: xr.Dataset) -> xr.DataArray:
    for dim, label in sel.items():
        if dim == "omega_tau":  # nearest ωτ (004 stores: ω as photon energy, τ in the attrs)
            from qgtflow.report.stores import omega_tau

            wt = omega_tau(ds)
            labels = np.atleast_1d(label).astype(float)
            idx = [int(np.argmin(np.abs(wt - v))) for v in labels]
            da = da.isel(omega=idx if np.ndim(label) else idx[0])
            continue
        if dim not in da.dims:
            raise ClaimError(f"{da.name}: no dim {dim!r} (dims {list(da.dims)})")
        coord = da[dim]
        if np.issubdtype(coord.dtype, np.number):
            _on_grid(da.name, dim, coord.values, label)
            da = da.sel({dim: label}, method="nearest")
        else:
            labels = [str(v) for v in coord.values]
            wanted = [str(v) for v in np.atleast_1d(label)]
            bad = [w for w in wanted if w not in labels]
            if bad:
                raise ClaimError(f"{da.name}: {dim} = {bad} not among {labels}")
            idx = [labels.index(w) for w in wanted]
            da = da.isel({dim: idx if isinstance(label, list) else idx[0]})
    return da


def _complex(da: xr.DataArray) -> xr.DataArray:
    """Real and imaginary parts (a free ``complex_part`` dim) joined into one complex array."""
    if "complex_part" in da.dims:
        return da.sel(complex_part="real") + 1j * da.sel(complex_part="imag")
    return da


def select(source, study: str, spec: dict) -> tuple[xr.DataArray, xr.DataArray | None]:
    """(values, error bars or None) of one selection: ``response`` (or ``attr``: a number in its attrs), ``sel``,
    ``abs``, ``reduce: max_abs`` (the largest |value| over the free dims, with its own error bar); or ``sum``: a list
    of such selections, each with an optional ``factor`` (default 1), summed (error bars in quadrature, None unless
    every term has one). ``error_bar: false``: no error bar (a row comparing two routes on one grid, where an identity
    holds grid by grid: a one-grid study's convergence store has NaN errors, which would widen the interval to all)."""
    if spec.get("error_bar", True) is False:
        return select(source, study, {k: v for k, v in spec.items() if k != "error_bar"})[0], None
    if "sum" in spec:
        total, errors = 0, []
        for term in spec["sum"]:
            factor = float(term.get("factor", 1.0))
            value, err = select(source, spec.get("study", study), {k: v for k, v in term.items() if k != "factor"})
            total = total + factor * value
            errors.append(None if err is None else factor * err)
        if any(e is None for e in errors):
            return total, None
        return total, np.sqrt(sum(e ** 2 for e in errors))
    study = spec.get("study", study)
    ds = source.dataset(study)
    name = spec["response"]
    if name not in ds:
        raise ClaimError(f"study '{study}': no response '{name}'")
    if "attr" in spec:
        value = ds[name].attrs.get(spec["attr"])
        if value is None:
            raise ClaimError(f"study '{study}': '{name}' has no attr '{spec['attr']}'")
        return xr.DataArray(float(value)), None
    sel = dict(spec.get("sel") or {})
    da = _pick(ds[name], sel, ds).load()
    if "complex_part" not in sel:
        da = _complex(da)
    err = source.error(study, name)
    if err is not None:
        try:
            err = _pick(err, sel, ds).load()
            if "complex_part" in err.dims:  # one error bar per complex entry: the larger part's
                err = err.max("complex_part")
            err = err.broadcast_like(da) if set(err.dims) <= set(da.dims) else None
        except (ClaimError, KeyError, ValueError):
            err = None
    if spec.get("abs"):
        da = np.abs(da)
    if spec.get("reduce") == "max_abs":
        flat = np.abs(da.values).ravel()
        i = int(np.nanargmax(flat))
        e = None if err is None else xr.DataArray(float(np.asarray(err.values).ravel()[i]))
        return xr.DataArray(flat[i]), e
    return da, err


# ---------------------------------------------------------------- evaluators


@dataclass
class Outcome:
    value: np.ndarray  # our value(s), real
    error: np.ndarray | None  # error bar(s), same shape, or None
    verdict: str  # reproduced / differs / not evaluated
    note: str = ""

    def text(self, digits: int = 3) -> str:
        v = np.atleast_1d(self.value).astype(float)
        e = None if self.error is None else np.atleast_1d(self.error).astype(float)
        if v.size == 0:
            return "—"
        if v.size == 1:
            return f"{v[0]:.{digits}g}" + ("" if e is None or not np.isfinite(e[0]) else f" ± {e[0]:.2g}")
        span = f"{np.nanmin(v):.{digits}g} … {np.nanmax(v):.{digits}g}"
        return span + ("" if e is None or not np.isfinite(e).any() else f" (error ≤ {np.nanmax(e):.2g})")


def _rel(v, e):
    return None if e is None else np.abs(np.asarray(e, float)) / np.maximum(np.abs(np.asarray(v)), 1e-300)


def _ratio(a, ea, b, eb):
    value = np.asarray(a) / np.asarray(b)
    ra, rb = _rel(a, ea), _rel(b, eb)
    if ra is None and rb is None:
        return value, None
    rel = np.sqrt((0 if ra is None else ra) ** 2 + (0 if rb is None else rb) ** 2)
    return value, np.abs(value) * rel


def _along(da: xr.DataArray, row: dict, ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    dim = row["along"]
    if dim == "omega_tau":
        from qgtflow.report.stores import omega_tau

        x = omega_tau(ds)[np.isin(ds["omega"].values, da["omega"].values)]
        dim = "omega"
    else:
        x = np.asarray(da[dim].values, float)
    if set(da.dims) != {dim}:
        raise ClaimError(f"claim {row['id']!r}: the selection must leave exactly the dim {dim!r} free, "
                         f"left {list(da.dims)}")
    y = np.asarray(da.values)
    lo, hi = row.get("within") or (-np.inf, np.inf)
    keep = (x >= lo) & (x <= hi)
    if keep.sum() < 2:
        raise ClaimError(f"claim {row['id']!r}: fewer than two points of {row['along']} in {row.get('within')}")
    return x[keep], y[keep]


def evaluate_claim(row: dict, source) -> Outcome:
    """Our value(s) and the verdict of one claims row."""
    study, kind = row["study"], row["evaluator"]
    a, ea = select(source, study, row["a"])
    if kind == "value":
        value, err = np.real(np.asarray(a.values)), None if ea is None else np.asarray(ea.values)
    elif kind == "ratio":
        b, eb = select(source, study, row["b"])
        a, b = xr.broadcast(a, b)
        value, err = _ratio(a.values, None if ea is None else ea.broadcast_like(a).values, b.values,
                            None if eb is None else eb.broadcast_like(b).values)
        value = np.real(value)
    elif kind == "argmax":
        x, y = _along(a, row, source.dataset(study))
        value = np.array(x[int(np.argmax(np.abs(y)))])
        err = np.array(0.5 * float(np.min(np.diff(np.sort(x)))))  # the coordinate's resolution
    elif kind == "slope":
        x, y = _along(a, row, source.dataset(study))
        X, Y = np.log(x), np.log(np.abs(y))
        (slope, _), cov = np.polyfit(X, Y, 1, cov=True) if len(X) > 2 else (np.polyfit(X, Y, 1), None)
        value = np.array(slope)
        err = None if cov is None else np.array(float(np.sqrt(cov[0, 0])))
    elif kind == "sign_changes":
        _, y = _along(a, row, source.dataset(study))
        y = np.real(y)
        floor = float(row.get("floor", 0.0)) * np.max(np.abs(y))  # relative: changes among entries above it
        s = np.sign(y[np.abs(y) > floor])
        value, err = np.array(float(np.count_nonzero(np.diff(s)))), None
    else:  # field_series: |Σ T_n E^n| / |a|
        total = 0
        for term in row["terms"]:
            t, _ = select(source, study, term)
            total = total + t * float(row["field"]) ** int(term["power"])
        total, a = xr.broadcast(total, a)
        value, err = np.abs(total.values) / np.abs(a.values), None
    lo, hi = paper_interval(row)
    # an entry without an error estimate (NaN: one grid, too few grids to extrapolate) is judged on its value alone:
    # an unknown error never widens the interval (it would let any value 'reproduce')
    widen = 0.0 if err is None else np.nan_to_num(np.abs(err), nan=0.0)
    inside = (value >= lo - widen) & (value <= hi + widen)
    verdict = "reproduced" if bool(np.all(inside)) else "differs"
    return Outcome(np.asarray(value, float), None if err is None else np.asarray(err, float), verdict)


def evaluate_all(rows: list[dict], source) -> list[tuple[dict, Outcome]]:
    """Every row's outcome; a row whose study or selection is missing is 'not evaluated' with the reason."""
    out = []
    for row in rows:
        try:
            outcome = evaluate_claim(row, source)
        except (ClaimError, KeyError, ValueError) as exc:
            outcome = Outcome(np.array([]), None, "not evaluated", str(exc))
        out.append((row, outcome))
    return out


def paper_text(row: dict) -> str:
    p = row["paper_value"]
    if p.get("text"):
        return str(p["text"])
    lo, hi = paper_interval(row)
    return f"[{lo:.3g}, {hi:.3g}]"


def claims_table(outcomes: list[tuple[dict, Outcome]]) -> str:
    """HTML table: paper, where, statement, study, our value ± error bar, the paper's interval, verdict, expected."""
    from qgtflow.report.sections import esc

    out = ["<table><tr><th>claim</th><th>where</th><th>the paper's statement</th><th>study</th><th>ours</th>"
           "<th>paper (interval tested)</th><th>verdict</th><th>expected / known reason</th></tr>"]
    for row, o in outcomes:
        cls = {"reproduced": "good", "differs": "bad"}.get(o.verdict, "")
        expected = row["expect"] + (f": {row['reason']}" if row.get("reason") else "")
        mismatch = o.verdict != row["expect"] and o.verdict != "not evaluated"
        verdict = o.verdict + (" (unexpected)" if mismatch else "") + (f" — {o.note}" if o.note else "")
        out.append(f"<tr><td><code>{esc(row['id'])}</code></td><td>{esc(row['paper'])} {esc(row['where'])}</td>"
                   f"<td>{esc(row['statement'])}{(' (' + esc(row['note']) + ')') if row.get('note') else ''}</td><td><code>{esc(row['study'])}</code></td>"
                   f"<td class=\"num\">{esc(o.text())}</td><td>{esc(paper_text(row))} "
                   f"[{paper_interval(row)[0]:.3g}, {paper_interval(row)[1]:.3g}]</td>"
                   f"<td class=\"{cls}\">{esc(verdict)}</td><td>{esc(expected)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def claims_section(studies: dict, results_dir: Path, planned_digest: str | None = None) -> str:
    """The report's claims section: the rows whose study is configured, evaluated on the stores
    (finest grid, error bars from the convergence stage); the others counted in one line."""
    from qgtflow.errors import StoreError
    from qgtflow.report.sections import esc, html_note

    if planned_digest is not None and planned_digest != claims_digest():
        raise StoreError(f"claims file {CLAIMS_FILE} has digest {claims_digest()!r}, the plan expected "
                         f"{planned_digest!r} (edited after the workflow started; rerun the report)")
    rows = load_claims()
    mine = [r for r in rows if r["study"] in studies
            and all(s.get("study", r["study"]) in studies for s in (r.get("b") or {}, *(r.get("terms") or [])))]
    parts = ["<h2 id=\"claims\">The papers' claims</h2>",
             f"<p>{len(mine)} of the {len(rows)} quantitative claims of <code>{esc(CLAIMS_FILE.name)}</code> "
             "concern studies of this config. Ours: finest grid (± the convergence stage's error bar where it "
             "has one; for ratios propagated in quadrature). Verdict: reproduced when every value tested lies in "
             "the paper's interval widened by its error bar; how a statement becomes an interval is written at "
             "the top of the claims file (\"≈ X\": ± 25 %; \"of order X\": half a decade; \"N orders\": "
             "10^(N ± ½); zeros: 1 % of the largest entry).</p>"]
    if not mine:
        return "\n".join(parts + [html_note("No claim concerns the studies of this config.")])
    outcomes = evaluate_all(mine, StoreSource(results_dir, studies))
    unexpected = [r["id"] for r, o in outcomes if o.verdict not in (r["expect"], "not evaluated")]
    if unexpected:
        parts.append(html_note("Verdicts that differ from the expected ones: " + ", ".join(unexpected)))
    parts.append(claims_table(outcomes))
    return "\n".join(parts)
