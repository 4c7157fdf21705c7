"""Static HTML report: per-study convergence summary and plots, plus configured cross-study figures.

``build_report(config, results_dir, out_html)`` writes ``out_html`` and, next to it, a folder
``<stem>_files/`` with every image (copied convergence plots and the cross-study figures),
linked relatively: the page and its folder can be moved together and opened offline.

Expected layout under ``results_dir`` (from the workflow):

- ``{study}/convergence/convergence.csv``, ``convergence.zarr`` and ``*.png`` (convergence stage);
- ``{study}/n{N}/responses.zarr`` for each grid size N (reduce stage).

Nothing missing is fatal: a missing study, store or plot becomes a visible note in the page.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import re
import shutil
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import xarray as xr

from qgtflow import __version__, io
from qgtflow.errors import StoreError
from qgtflow.stages.convergence_stage import axis_label as _axis_label

log = logging.getLogger(__name__)

VERDICT_COLUMNS = ("converged", "not converged", "insufficient data")
_PLOT_ORDER = ("conv_", "mu_", "T_")
_PLOT_CAPTIONS = {
    "conv_": "value vs k-grid spacing h for representative entries (squares: h → 0 extrapolation with error bar)",
    "mu_": "finest-grid value vs μ at each T (band: error bar; red ×: not converged)",
    "T_": "finest-grid value vs T at a few μ (error bars from the convergence stage)",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1250px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:.4em .8em;margin:.5em 0}
.bad{color:#b00020;font-weight:600}.good{color:#17703a}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
code{background:#f5f5f5;padding:0 .2em}footer{margin-top:3em;font-size:.8em;color:#777}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return _e(x)
    if not np.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def _note(text: str) -> str:
    return f'<div class="note">{_e(text)}</div>'


def _default_sizes() -> list[int]:
    try:
        from qgtflow.study import study_schema

        return list(study_schema()["properties"]["kgrid"]["properties"]["sizes"]["default"])
    except Exception:  # schema unreadable: the glob fallback still finds the stores
        return []


def _study_sizes(study_cfg) -> list[str]:
    """Labels of the study's grid sizes, coarse to fine ("8", "3x3x4"; directories n8, n3x3x4)."""
    from qgtflow import gridsize

    if isinstance(study_cfg, dict):
        sizes = (study_cfg.get("kgrid") or {}).get("sizes")
        if sizes:
            return [gridsize.label(s) for s in sizes]
    return [gridsize.label(s) for s in _default_sizes()]


def finest_store(results_dir: Path, study: str, study_cfg) -> tuple[Path | None, str | None]:
    """Path of the finest-grid responses store (and a note when it is not the configured one)."""
    sizes = _study_sizes(study_cfg)
    if sizes:
        p = results_dir / study / f"n{sizes[-1]}" / "responses.zarr"  # sizes ascend (validated)
        if p.exists():
            return p, None
    found = []
    for q in (results_dir / study).glob("n*/responses.zarr"):
        m = re.fullmatch(r"n(\d+)", q.parent.name)
        if m:
            found.append((int(m.group(1)), q))
    expected = f"{study}/n{sizes[-1]}/responses.zarr" if sizes else f"{study}/n<N>/responses.zarr"
    if not found:
        return None, f"study '{study}': responses store {expected} not found"
    n, q = max(found)
    return q, f"study '{study}': {expected} not found, used the finest available grid n{n}"


def _open(path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.open_zarr(path)


# --------------------------------------------------------------------------- per study


def _model_text(study_cfg) -> tuple[str, str, str]:
    if not isinstance(study_cfg, dict):
        return _e(study_cfg), "", ""
    model = study_cfg.get("model") or {}
    params = model.get("params") or {}
    params_text = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}" for k, v in params.items())
    units = study_cfg.get("units", "physical")
    units_text = units if isinstance(units, str) else json.dumps(units)
    return str(model.get("name", "?")), params_text or "defaults", units_text


def _response_rows(table: pd.DataFrame) -> list[dict]:
    rows = []
    for response, t in table.groupby("response", sort=False):
        counts = t["verdict"].value_counts()
        rel = pd.to_numeric(t["rel_error"], errors="coerce") if "rel_error" in t else pd.Series(dtype=float)
        worst = {}
        if rel.notna().any():
            r = t.loc[rel.idxmax()]
            where = f"{r.get('variant', '') or ''} {r['component']} μ={_fmt(r['mu'], 4)} T={_fmt(r['T'], 4)}".strip()
            worst = {"value": float(rel.max()), "where": where}
        ratio = pd.to_numeric(t["error"], errors="coerce") / pd.to_numeric(t.get("tolerance", np.nan), errors="coerce")
        rows.append({
            "response": response,
            "units": str(t["units"].iloc[0]) if "units" in t else "",
            "entries": len(t),
            **{v: int(counts.get(v, 0)) for v in VERDICT_COLUMNS},
            "worst": worst,
            "max_ratio": float(ratio.max()) if ratio.notna().any() else np.nan,
        })
    return rows


def _copy_plots(conv_dir: Path, assets: Path, study: str, responses: list[str],
                page_dir: Path) -> list[tuple[str, str]]:
    """Copy the study's PNGs into the report folder; returns (relative src, caption) in display order."""
    pngs = sorted(conv_dir.glob("*.png"))
    rank_resp = {r: n for n, r in enumerate(responses)}

    def key(p: Path):
        prefix = next((x for x in _PLOT_ORDER if p.name.startswith(x)), "")
        resp = p.stem[len(prefix):]
        return (rank_resp.get(resp, len(rank_resp)), _PLOT_ORDER.index(prefix) if prefix else 9, p.name)

    dest_dir = assets / study
    out = []
    for p in sorted(pngs, key=key):
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / p.name
        shutil.copy2(p, dest)
        prefix = next((x for x in _PLOT_ORDER if p.name.startswith(x)), "")
        caption = f"{study}: {p.stem[len(prefix):]}: " + _PLOT_CAPTIONS.get(prefix, p.stem)
        out.append((quote(dest.relative_to(page_dir).as_posix()), caption))
    return out


def study_section(name: str, study_cfg, results_dir: Path, assets: Path, page_dir: Path) -> tuple[str, dict]:
    """HTML section of one study and its overview row."""
    model, params, units = _model_text(study_cfg)
    sizes = _study_sizes(study_cfg)
    overview = {"study": name, "model": model, "params": params, "units": units,
                "sizes": ", ".join(map(str, sizes)) or "?", "counts": None, "worst": None, "status": "ok"}
    parts = [f'<h2 id="study-{_e(name)}">Study <code>{_e(name)}</code></h2>']
    desc = study_cfg.get("description") if isinstance(study_cfg, dict) else ""
    if desc:
        parts.append(f"<p>{_e(desc)}</p>")
    parts.append(f"<p>Model <b>{_e(model)}</b> ({_e(params)}); units {_e(units)}; grid sizes {_e(overview['sizes'])}"
                 + (f"; rtol = {_fmt(study_cfg.get('convergence', {}).get('rtol', 0.01))}"
                    f", atol = {_fmt(study_cfg.get('convergence', {}).get('atol', 0.0))}"
                    if isinstance(study_cfg, dict) else "") + ".</p>")
    conv_dir = results_dir / name / "convergence"
    csv = conv_dir / "convergence.csv"
    if not csv.exists():
        overview["status"] = "missing results"
        parts.append(_note(f"No convergence results for study '{name}' (expected {csv}); "
                           "the study was not run or failed."))
        return "\n".join(parts), overview
    try:
        table = pd.read_csv(csv, keep_default_na=False, na_values=["", "nan", "NaN"],
                            dtype={"variant": str, "component": str, "response": str})
        table["variant"] = table["variant"].fillna("").astype(str) if "variant" in table else ""
        table["component"] = table["component"].fillna("").astype(str)
    except Exception as exc:
        overview["status"] = "unreadable results"
        parts.append(_note(f"Convergence table {csv} could not be read: {exc}"))
        return "\n".join(parts), overview
    rows = _response_rows(table)
    counts = {v: sum(r[v] for r in rows) for v in VERDICT_COLUMNS}
    overview["counts"] = counts
    worst = [r["worst"] for r in rows if r["worst"]]
    overview["worst"] = max(worst, key=lambda w: w["value"]) if worst else None
    n_finest = table["n_points_finest"].iloc[0] if len(table) else "?"
    parts.append(f"<p>Finest grid: {_e(n_finest)} k-points.</p>")
    parts.append("<table><tr><th>response</th><th>units</th><th>entries</th><th>converged</th><th>not converged</th>"
                 "<th>insufficient data</th><th>worst relative error (entry)</th><th>max error / tolerance</th></tr>")
    for r in rows:
        w = r["worst"]
        worst_text = f"{_fmt(w['value'])} ({_e(w['where'])})" if w else "—"
        bad = ' class="num bad"' if r["not converged"] else ' class="num"'
        parts.append(f"<tr><td><code>{_e(r['response'])}</code></td><td>{_e(r['units'])}</td>"
                     f"<td class=\"num\">{r['entries']}</td><td class=\"num\">{r['converged']}</td>"
                     f"<td{bad}>{r['not converged']}</td><td class=\"num\">{r['insufficient data']}</td>"
                     f"<td>{worst_text}</td><td class=\"num\">{_fmt(r['max_ratio'])}</td></tr>")
    parts.append("</table>")
    plots = _copy_plots(conv_dir, assets, name, [r["response"] for r in rows], page_dir)
    if not plots:
        parts.append(_note(f"No convergence plots found in {conv_dir}."))
    for src, caption in plots:
        parts.append(f'<figure><img src="{src}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>')
    return "\n".join(parts), overview


def _overview_table(rows: list[dict]) -> str:
    out = ["<table><tr><th>study</th><th>model</th><th>parameters</th><th>units</th><th>grid sizes</th>"
           "<th>converged</th><th>not converged</th><th>insufficient data</th><th>worst relative error</th></tr>"]
    for r in rows:
        link = f'<a href="#study-{_e(r["study"])}"><code>{_e(r["study"])}</code></a>'
        if r["counts"] is None:
            cells = f'<td colspan="4" class="bad">{_e(r["status"])}</td>'
        else:
            c = r["counts"]
            w = r["worst"]
            cells = (f'<td class="num">{c["converged"]}</td>'
                     f'<td class="num{" bad" if c["not converged"] else ""}">{c["not converged"]}</td>'
                     f'<td class="num">{c["insufficient data"]}</td>'
                     f'<td>{_fmt(w["value"]) + " (" + _e(w["where"]) + ")" if w else "—"}</td>')
        out.append(f"<tr><td>{link}</td><td>{_e(r['model'])}</td><td>{_e(r['params'])}</td><td>{_e(r['units'])}</td>"
                   f"<td>{_e(r['sizes'])}</td>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


# --------------------------------------------------------------------------- cross-study figures


def _select(da: xr.DataArray, selection: dict, what: str, nearest: bool) -> tuple[xr.DataArray, dict]:
    """Select labels (exact for strings, nearest for numbers); returns the array and the values taken."""
    taken = {}
    for dim, label in selection.items():
        if dim not in da.dims:
            continue
        coord = da[dim]
        if np.issubdtype(coord.dtype, np.number) and nearest:
            da = da.sel({dim: float(label)}, method="nearest")
        else:
            labels = [str(v) for v in coord.values]
            if str(label) not in labels:
                raise KeyError(f"{what}: {dim} = {label!r} not among {labels}")
            da = da.isel({dim: labels.index(str(label))})
        taken[dim] = da[dim].values.item() if dim in da.coords else label
    return da, taken


def cross_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path) -> tuple[bool, list[str], str]:
    """Plot one configured cross-study figure; returns (written, notes, caption detail)."""
    from matplotlib.figure import Figure

    notes: list[str] = []
    response = fig_cfg.get("response")
    if not response:
        return False, ["figure has no 'response'"], ""
    components = [dict(c or {}) for c in (fig_cfg.get("components") or [fig_cfg.get("component") or {}])]
    x = fig_cfg.get("x", "mu")
    select = dict(fig_cfg.get("select") or {})
    names = list(fig_cfg.get("studies") or studies)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    n_curves = 0
    units_seen: dict[str, str] = {}
    labels = {"x": None, "y": None}
    curves = [(name, component) for name in names for component in components]
    for n, (name, component) in enumerate(curves):
        if name not in studies:
            notes.append(f"study '{name}' is not configured (not in config['studies'])")
            continue
        store, note = finest_store(results_dir, name, studies[name])
        if note:
            notes.append(note)
        if store is None:
            continue
        try:
            ds = _open(store)
            if not bool(ds.attrs.get("qgtflow_complete", False)):
                notes.append(f"study '{name}': {store} is incomplete")
                continue
            if response not in ds.data_vars:
                notes.append(f"study '{name}': response '{response}' not in {store.name}")
                continue
            da = ds[response]
            if x not in da.dims:
                notes.append(f"study '{name}': '{response}' has no dimension '{x}'")
                continue
            unknown = [d for d in component if d not in da.dims]
            if unknown:
                notes.append(f"study '{name}': '{response}' has no component dims {unknown} (dims {list(da.dims)})")
                continue
            da, _ = _select(da, component, f"study '{name}'", nearest=False)
            da, taken = _select(da, {k: v for k, v in select.items() if k != x}, f"study '{name}'",
                                nearest=True)
            for d in [d for d in da.dims if d != x]:  # leftover dims: length-1 squeezes, others take the first
                if da.sizes[d] > 1:
                    first = da[d].values[0] if d in da.coords else 0
                    notes.append(f"study '{name}': dimension '{d}' not selected, showing {d} = {first}")
                da = da.isel({d: 0})
                taken.setdefault(d, da[d].values.item() if d in da.coords else 0)
            y = np.asarray(da.load().values, float)
            xs = np.asarray(da[x].values, float)
            err = None
            conv = results_dir / name / "convergence" / "convergence.zarr"
            if conv.exists():
                try:
                    cds = _open(conv)
                    e = cds[f"{response}_error"]
                    e, _ = _select(e, component, f"study '{name}' errors", nearest=False)
                    e, _ = _select(e, {**{k: v for k, v in select.items() if k != x},
                                       **{d: v for d, v in taken.items() if d not in component}},
                                   f"study '{name}' errors", nearest=True)
                    e = e.squeeze(drop=True)
                    e = e.sel({x: xs}, method="nearest")
                    err = np.asarray(e.values, float).reshape(y.shape)
                except Exception as exc:  # error bars are optional
                    notes.append(f"study '{name}': no error bars ({exc})")
            else:
                notes.append(f"study '{name}': no convergence results, plotted without error bars")
        except KeyError as exc:
            notes.append(str(exc.args[0]) if exc.args else f"study '{name}': selection failed")
            continue
        except Exception as exc:
            notes.append(f"study '{name}': could not read {store}: {exc}")
            continue
        sel_text = ", ".join(
            f"{d} = {_fmt(v, 4)}{(' ' + ds[d].attrs['units']) if d in ds.coords and ds[d].attrs.get('units') else ''}"
            if isinstance(v, (int, float, np.integer, np.floating)) else f"{d} = {v}"
            for d, v in taken.items())
        ax.errorbar(xs, y, yerr=None if err is None else np.where(np.isfinite(err), err, 0.0),
                    fmt="o-" if len(xs) < 15 else "-", ms=3, capsize=2, color=f"C{n % 10}",
                    label=f"{name}" + (f" {_component_text(component)}" if len(components) > 1 else "")
                    + (f" ({sel_text})" if sel_text else ""))
        units_seen[name] = str(da.attrs.get("units", ""))
        labels["x"] = labels["x"] or _axis_label(ds[x].attrs, x)
        labels["y"] = labels["y"] or _axis_label(da.attrs, response)
        n_curves += 1
    if len(set(units_seen.values())) > 1:
        notes.append("units differ between studies (" + ", ".join(f"{k}: {v}" for k, v in units_seen.items())
                     + "); the curves are not on a common scale")
    if n_curves == 0:
        return False, notes, ""
    comp_text = _component_text(components[0]) if len(components) == 1 else ""
    ax.set_xlabel(labels["x"])
    ax.set_ylabel(labels["y"] + (f" ({comp_text})" if comp_text else ""))
    ax.axhline(0, color="0.6", lw=0.5)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
    ax.legend(fontsize=8)
    ax.set_title(fig_cfg.get("title") or f"{response} {comp_text}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    detail = f"{response} {comp_text} vs {x}" + (
        " at " + ", ".join(f"{k} ≈ {v}" for k, v in select.items()) if select else "")
    return True, notes, detail


def ife_density_figure(fig_cfg: dict, studies: dict, out_png: Path) -> tuple[bool, list[str], str]:
    """000 Fig. 1: k-space densities ε_{zνδ} ∂_α∂_ν g_δβ for (α, β) = xx, xy, yx, yy of a study's model.

    Evaluated directly from the model (exact quadrupole kernel) on a fine window; no store needed.
    """
    from matplotlib.colors import SymLogNorm
    from matplotlib.figure import Figure

    from qgtflow.geometry.fields import compute_fields
    from qgtflow.models.config import model_from_config
    from qgtflow.units import parse_unit_system

    name = fig_cfg.get("study") or (fig_cfg.get("studies") or [None])[0]
    if name not in studies:
        return False, [f"study '{name}' is not configured"], ""
    units = parse_unit_system(studies[name].get("units", "physical"))
    model = model_from_config(studies[name]["model"], units, where=f"studies.{name}.model")
    if model.dim != 2:
        return False, [f"study '{name}': the density figure needs a 2D model"], ""
    kmax = float(fig_cfg.get("kmax") or model.kmax or 1.0)
    n = int(fig_cfg.get("points") or 201)
    axis = np.linspace(-kmax, kmax, n)
    kx, ky = np.meshgrid(axis, axis, indexing="xy")
    k = np.stack([kx.ravel(), ky.ravel()], axis=1)
    quad = compute_fields(model, k, optional=("quantum_metric_quadrupole_density",))[
        "quantum_metric_quadrupole_density"][:, 0]  # band 0 ([a, b, c, e] = ∂_c∂_e g^ab)
    # ε_{zνδ} ∂_α∂_ν g_δβ = ∂_α∂_x g_yβ − ∂_α∂_y g_xβ
    density = {(a, b): quad[:, 1, b, a, 0] - quad[:, 0, b, a, 1] for a in range(2) for b in range(2)}
    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 2)
    vmax = max(float(np.nanmax(np.abs(v))) for v in density.values()) or 1.0
    norm = SymLogNorm(linthresh=vmax * 1e-4, vmin=-vmax, vmax=vmax)
    for (a, b), values in density.items():
        ax = axes[a, b]
        im = ax.pcolormesh(axis, axis, values.reshape(n, n), cmap="RdBu_r", norm=norm, shading="auto")
        ax.set_title(f"(α, β) = ({'xy'[a]}, {'xy'[b]})", fontsize=9)
        ax.set_xlabel("k_x")
        ax.set_ylabel("k_y")
        ax.set_aspect("equal")
    fig.colorbar(im, ax=axes, shrink=0.8, label="ε_zνδ ∂_α∂_ν g_δβ (symlog)")
    fig.suptitle(fig_cfg.get("title") or f"{name}: quantum-metric quadrupole densities", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return True, [], f"model {model.name} {model.params}, band 0, |k| ≤ {kmax:g}, {n}² points"


def _omega_tau(ds: xr.Dataset) -> np.ndarray:
    """ωτ of a responses store (ω as photon energy in the store's energy unit; τ from its attrs)."""
    from qgtflow.units import HBAR, UnitSystem

    omega = np.asarray(ds["omega"].values, float)
    tau = float(ds.attrs.get("tau", np.nan))
    unit = str(ds["omega"].attrs.get("units", "model energy"))
    if unit == "model energy":
        return omega * tau
    return omega * UnitSystem(energy=unit).energy_si / HBAR * tau


def _conv_error(results_dir: Path, study: str, response: str, selection: dict):
    """Error bars of ``response`` from the study's convergence store at ``selection`` (None if unavailable)."""
    conv = results_dir / study / "convergence" / "convergence.zarr"
    try:
        e = _open(conv)[f"{response}_error"]
        for dim, label in selection.items():
            if dim in e.dims:
                e = e.sel({dim: label}, method="nearest") if np.issubdtype(e[dim].dtype, np.number) else \
                    e.isel({dim: [str(v) for v in e[dim].values].index(str(label))})
        return np.asarray(e.values, float)
    except Exception:
        return None


def grid_needed_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path):
    """k-points needed for the study's tolerance vs T, one curve per study (from ``grid_needed.csv`` of the
    convergence stage): how the grid must grow as T falls, e.g. point sampling versus linear tetrahedra."""
    from matplotlib.figure import Figure

    response = fig_cfg.get("response")
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    notes, drawn = [], 0
    for n, name in enumerate(fig_cfg.get("studies") or []):
        path = results_dir / name / "convergence" / "grid_needed.csv"
        if name not in studies or not path.exists():
            notes.append(f"study '{name}': no {path.name}")
            continue
        table = pd.read_csv(path)
        table = table[table["response"] == response] if response else table
        if table.empty:
            notes.append(f"study '{name}': no rows for {response}")
            continue
        T = table["T"].to_numpy(float)
        needed = table["n_points_needed"].to_numpy(float)
        finest = float(table["n_points_finest"].max())
        integration = (studies[name] or {}).get("integration", "points")
        ax.plot(T, np.where(np.isfinite(needed), needed, np.nan), "o-", color=f"C{n}",
                label=f"{name} ({integration})")
        missing = T[~np.isfinite(needed)]
        if missing.size:
            ax.plot(missing, np.full(missing.size, finest), "v", color=f"C{n}", ms=8,
                    label=f"{name}: not reached with {finest:.3g} k-points")
        drawn += 1
    if not drawn:
        return False, notes, ""
    ax.set_xscale("symlog", linthresh=float(fig_cfg.get("T_linthresh", 1e-3)))
    ax.set_yscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("k-points needed")
    ax.legend(fontsize=8)
    ax.set_title(fig_cfg.get("title") or f"k-points needed vs T ({response})", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return True, notes, f"{response}: first grid within each study's convergence tolerance at every T"


EO_PANELS = ("fig1a", "fig1b", "fig2", "fig3a", "fig3b")


def electro_optics_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path):
    """004 Fig. 1–3 from one study's finest responses store (``panel``: fig1a, fig1b, fig2, fig3a, fig3b).

    fig1a: Re/Im P^skew (= P_xxy, 004 Eq. 9) and σ^(0)_xx vs ωτ; fig1b: Snap Kerr K1 = K_xxxx, K2 = K_xxyy vs ωτ;
    fig2: polarization rotation of transmitted / reflected light vs E_dc at ωτ ≈ 1, 2, 5 (first incident angle);
    fig3a: ΔT/T0, ΔR/R0 (%) vs ωτ at E_dc ≈ ``e_dc`` (V/m, default −1e4) with the Pockels / Kerr shares;
    fig3b: the same vs E_dc at ωτ ≈ ``omega_tau`` (default 5). Fig. 3 uses the last incident angle.
    """
    from matplotlib.figure import Figure

    panel = fig_cfg.get("panel")
    if panel not in EO_PANELS:
        return False, [f"panel {panel!r}: expected one of {list(EO_PANELS)}"], ""
    name = fig_cfg.get("study") or (fig_cfg.get("studies") or [None])[0]
    if name not in studies:
        return False, [f"study '{name}' is not configured"], ""
    store, note = finest_store(results_dir, name, studies[name])
    notes = [note] if note else []
    if store is None:
        return False, notes, ""
    ds = _open(store).isel(mu=0, T=0)
    wt = _omega_tau(ds)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()

    def cplx(var, **sel):
        da = ds[var].sel(sel)
        return da.sel(complex_part="real").values + 1j * da.sel(complex_part="imag").values

    if panel in ("fig1a", "fig1b"):
        if panel == "fig1a":
            curves = [("pockels_skew", dict(i="x", j="x", k="y"), "P", ax)]
            twin = ax.twinx()
            s0 = cplx("sigma_optical", i="x", j="x")
            twin.plot(wt, s0.real, color="0.5", lw=1.2, label="Re σ0")
            twin.plot(wt, s0.imag, color="0.5", ls="--", lw=1.2, label="Im σ0")
            twin.set_ylabel(f"σ0 [{ds['sigma_optical'].attrs.get('units', '')}]")
            twin.legend(fontsize=8, loc="lower right")
        else:
            twin = ax.twinx()
            curves = [("kerr_snap", dict(i="x", j="x", k="x", l="x"), "K1", ax),
                      ("kerr_snap", dict(i="x", j="x", k="y", l="y"), "K2", twin)]
            twin.set_ylabel(f"K2 [{ds['kerr_snap'].attrs.get('units', '')}]")
        for n, (var, comp, label, axis) in enumerate(curves):
            if var not in ds:
                notes.append(f"study '{name}': no '{var}'")
                continue
            v = cplx(var, **comp)
            err = _conv_error(results_dir, name, var, {**comp, "mu": float(ds.mu), "T": float(ds.T)})
            for part, values, style in (("real", v.real, "-"), ("imag", v.imag, "--")):
                e = None
                if err is not None and err.ndim >= 2:
                    e = err[:, 0 if part == "real" else 1] if err.shape[0] == wt.size else None
                axis.errorbar(wt, values, yerr=e, fmt=style, color=("C3" if part == "real" else "C0")
                              if n == 0 else ("C1" if part == "real" else "C2"), capsize=2,
                              label=f"{'Re' if part == 'real' else 'Im'} {label}")
        ax.set_xlabel("ωτ")
        ax.set_xscale("log")
        ax.set_ylabel(f"{curves[0][2]} [{ds[curves[0][0]].attrs.get('units', '')}]")
        ax.legend(fontsize=8, loc="upper right")
        detail = f"{name} at μ = {float(ds.mu):g}, T = {float(ds.T):g}; 004 time convention e^(+iωt)"
    elif panel == "fig2":
        rot = ds["polarization_rotation"].isel(incident_angle=0)
        e_um = np.asarray(ds["e_dc"].values, float) * 1e-6  # V/μm
        axes = [ax, ax.twinx()]
        for target, style in zip((1.0, 2.0, 5.0), ("-", "--", ":")):
            w = int(np.argmin(np.abs(wt - target)))
            for b, (beam, color) in enumerate((("transmitted", "C0"), ("reflected", "C2"))):
                y = np.degrees(rot.sel(beam=beam, beam_quantity="rotation").isel(omega=w).values)
                axes[b].plot(e_um, y, style, color=color, label=f"{beam}, ωτ = {wt[w]:.2g}")
        ax.set_xlabel("E_dc [V/μm]")
        ax.set_ylabel("Δθ transmitted [deg]")
        axes[1].set_ylabel("Δθ reflected [deg]")
        ax.legend(fontsize=7, loc="upper left")
        axes[1].legend(fontsize=7, loc="lower right")
        detail = (f"{name}: incident polarization {float(ds.incident_angle[0]):.3g} rad to x, E_dc along "
                  f"{ds['polarization_rotation'].attrs.get('e_dc_direction', 'y')}")
    else:
        last = ds.sizes["incident_angle"] - 1
        series = {v: 100 * ds[v].isel(incident_angle=last) for v in ("delta_t_over_t", "delta_r_over_r")}
        if panel == "fig3a":
            e0 = float(fig_cfg.get("e_dc", -1.0e4))
            x, xlabel = wt, "ωτ"
            pick = {"e_dc": e0}
            ax.set_xscale("log")
        else:
            target = float(fig_cfg.get("omega_tau", 5.0))
            x, xlabel = np.asarray(ds["e_dc"].values, float) * 1e-6, "E_dc [V/μm]"
            pick = {"omega": float(ds["omega"].values[int(np.argmin(np.abs(wt - target)))])}
        for var, color in (("delta_t_over_t", "C0"), ("delta_r_over_r", "C2")):
            da = series[var].sel(pick, method="nearest")
            ax.plot(x, da.sel(share="total").values, "-", color=color, label=f"{var} total")
            ax.plot(x, da.sel(share="pockels").values, ":", color=color, label=f"{var} Pockels only")
            ax.plot(x, da.sel(share="kerr").values, "--", color=color, label=f"{var} Kerr only")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("change [% of the field-free value]")
        ax.legend(fontsize=7)
        detail = (f"{name}: incident polarization {float(ds.incident_angle[last]):.3g} rad to x (004 does not state "
                  f"it for Fig. 3), {', '.join(f'{k} ≈ {v:.3g}' for k, v in pick.items())}")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_title(fig_cfg.get("title") or f"004 {panel}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return True, notes, detail


def _component_text(component: dict) -> str:
    """'xxz' for Cartesian labels, plus 'part=…' for other selected dims."""
    cart = "".join(str(v) for d, v in component.items() if d in ("i", "j", "k", "l", "pseudovector"))
    other = ", ".join(f"{v}" for d, v in component.items() if d not in ("i", "j", "k", "l", "pseudovector"))
    return " ".join(t for t in (cart, other) if t)


# --------------------------------------------------------------------------- page


def build_report(config: dict, results_dir: str, out_html: str) -> None:
    """Write the HTML report of all configured studies (see module docstring)."""
    results = Path(results_dir)
    # the stores it reads must be the ones its plan expects (their fingerprints, qgtflow.plan)
    for where, expected in (config.get("upstream") or {}).items():
        name, part = where.split("/", 1)
        store = results / name / part / ("convergence.zarr" if part == "convergence" else "responses.zarr")
        if store.exists():  # a missing store is a note of its study's section
            found = io.store_attrs(store).get(io.FINGERPRINT)
            if found != expected:
                raise StoreError(f"store {store} has fingerprint {found!r}, expected {expected!r} (made from other "
                                 "inputs or code; rerun its stage)")
    page = Path(out_html)
    page.parent.mkdir(parents=True, exist_ok=True)
    assets = page.parent / f"{page.stem}_files"
    if assets.exists():
        shutil.rmtree(assets)
    assets.mkdir(parents=True)
    report_cfg = config.get("report") or {}
    title = report_cfg.get("title") or "qgtflow report"
    from qgtflow.plan import CONTRACTS, StageConfig

    # each study restricted to the keys the report declares (qgtflow.plan): reading another raises
    studies = {name: StageConfig(cfg, CONTRACTS["report"].keys, "report")
               for name, cfg in (config.get("studies") or {}).items()}

    sections, overview = [], []
    for name, study_cfg in studies.items():
        try:
            section, row = study_section(name, study_cfg, results, assets, page.parent)
        except Exception as exc:  # one broken study must not hide the others
            log.exception("report section of study %s failed", name)
            section = f'<h2 id="study-{_e(name)}">Study <code>{_e(name)}</code></h2>' + _note(
                f"The section of study '{name}' could not be built: {exc}")
            row = {"study": name, "model": "?", "params": "", "units": "", "sizes": "", "counts": None,
                   "worst": None, "status": "report error"}
        sections.append(section)
        overview.append(row)

    figure_parts = []
    for n, fig_cfg in enumerate(report_cfg.get("figures") or []):
        fig_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(fig_cfg.get("name") or f"figure{n + 1}"))
        fig_title = fig_cfg.get("title") or fig_name
        figure_parts.append(f"<h3>{_e(fig_title)}</h3>")
        png = assets / "figures" / f"{fig_name}.png"
        try:
            if fig_cfg.get("kind") == "ife_density":
                written, notes, detail = ife_density_figure(fig_cfg, studies, png)
            elif fig_cfg.get("kind") == "grid_needed":
                written, notes, detail = grid_needed_figure(fig_cfg, studies, results, png)
            elif fig_cfg.get("kind") == "electro_optics":
                written, notes, detail = electro_optics_figure(fig_cfg, studies, results, png)
            else:
                written, notes, detail = cross_figure(fig_cfg, studies, results, png)
        except Exception as exc:
            log.exception("figure %s failed", fig_name)
            written, notes, detail = False, [f"figure could not be drawn: {exc}"], ""
        for note in notes:
            figure_parts.append(_note(note))
        if written:
            src = quote(png.relative_to(page.parent).as_posix())
            caption = f"{fig_title}: {detail}; finest grid of each study, error bars from its convergence stage."
            figure_parts.append(f'<figure><img src="{src}" alt="{_e(fig_title)}">'
                                f"<figcaption>{_e(caption)}</figcaption></figure>")
        else:
            figure_parts.append(_note(f"Figure '{fig_title}' has no data to show."))

    missing = [r["study"] for r in overview if r["counts"] is None]
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [f"<h1>{_e(title)}</h1>",
            f"<p>{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}; "
            f"results from <code>{_e(results)}</code>.</p>"]
    if not studies:
        body.append(_note("No studies configured."))
    if missing:
        body.append(_note("Missing or failed results: " + ", ".join(missing)))
    body += ["<h2>Overview</h2>", _overview_table(overview),
             "<p>Verdict per entry (response × component × μ × T): converged when the error bar of the h → 0 "
             "extrapolation is within max(rtol·|value|, atol, 10⁻⁶ × largest |value| of the response). "
             "Relative errors are shown only for entries above that absolute floor.</p>"]
    if figure_parts:
        body += ["<h2>Figures</h2>", *figure_parts]
    body += sections
    body.append(f"<footer>qgtflow {__version__} · generated {_e(now)}</footer>")
    text = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    page.write_text(text, encoding="utf-8")
    log.info("report written to %s (%d studies, %d missing)", page, len(studies), len(missing))
