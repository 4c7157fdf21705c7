"""HTML pieces of the report page: escaping, number formats, notes, the per-study section and the overview table."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from qgtflow.report.stores import study_sizes
from qgtflow.stages.convergence_stage import EXCLUDED


VERDICT_COLUMNS = ("converged", "not converged", "insufficient data")


_PLOT_ORDER = ("conv_", "mu_", "T_")


_PLOT_CAPTIONS = {
    "conv_": "value vs k-grid spacing h for representative entries (squares: h → 0 extrapolation with error bar)",
    "mu_": "finest-grid value vs μ at each T (band: error bar; red ×: not converged)",
    "T_": "finest-grid value vs T at a few μ (error bars from the convergence stage)",
}


CSS = """
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


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def fmt_number(x, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if not np.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def html_note(text: str) -> str:
    return f'<div class="note">{esc(text)}</div>'


def _model_text(study_cfg) -> tuple[str, str, str]:
    if not isinstance(study_cfg, dict):
        return esc(study_cfg), "", ""
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
            where = f"{r.get('variant', '') or ''} {r['component']} μ={fmt_number(r['mu'], 4)} T={fmt_number(r['T'], 4)}".strip()
            worst = {"value": float(rel.max()), "where": where}
        ratio = pd.to_numeric(t["error"], errors="coerce") / pd.to_numeric(t.get("tolerance", np.nan), errors="coerce")
        rows.append({
            "response": response,
            "units": str(t["units"].iloc[0]) if "units" in t else "",
            "entries": len(t) - int(counts.get(EXCLUDED, 0)),  # symmetry zeros are residuals, not entries
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
    sizes = study_sizes(study_cfg)
    overview = {"study": name, "model": model, "params": params, "units": units,
                "sizes": ", ".join(map(str, sizes)) or "?", "counts": None, "worst": None, "status": "ok"}
    parts = [f'<h2 id="study-{esc(name)}">Study <code>{esc(name)}</code></h2>']
    desc = study_cfg.get("description") if isinstance(study_cfg, dict) else ""
    if desc:
        parts.append(f"<p>{esc(desc)}</p>")
    parts.append(f"<p>Model <b>{esc(model)}</b> ({esc(params)}); units {esc(units)}; grid sizes {esc(overview['sizes'])}"
                 + (f"; rtol = {fmt_number(study_cfg.get('convergence', {}).get('rtol', 0.01))}"
                    f", atol = {fmt_number(study_cfg.get('convergence', {}).get('atol', 0.0))}"
                    if isinstance(study_cfg, dict) else "") + ".</p>")
    conv_dir = results_dir / name / "convergence"
    csv = conv_dir / "convergence.csv"
    if not csv.exists():
        overview["status"] = "missing results"
        parts.append(html_note(f"No convergence results for study '{name}' (expected {csv}); "
                           "the study was not run or failed."))
        return "\n".join(parts), overview
    try:
        table = pd.read_csv(csv, keep_default_na=False, na_values=["", "nan", "NaN"],
                            dtype={"variant": str, "component": str, "response": str, "units": str})
        table["variant"] = table["variant"].fillna("").astype(str) if "variant" in table else ""
        table["component"] = table["component"].fillna("").astype(str)
    except Exception as exc:
        overview["status"] = "unreadable results"
        parts.append(html_note(f"Convergence table {csv} could not be read: {exc}"))
        return "\n".join(parts), overview
    rows = _response_rows(table)
    counts = {v: sum(r[v] for r in rows) for v in VERDICT_COLUMNS}
    overview["counts"] = counts
    worst = [r["worst"] for r in rows if r["worst"]]
    overview["worst"] = max(worst, key=lambda w: w["value"]) if worst else None
    n_finest = table["n_points_finest"].iloc[0] if len(table) else "?"
    parts.append(f"<p>Finest grid: {esc(n_finest)} k-points.</p>")
    parts.append("<table><tr><th>response</th><th>units</th><th>entries</th><th>converged</th><th>not converged</th>"
                 "<th>insufficient data</th><th>worst relative error (entry)</th><th>max error / tolerance</th></tr>")
    for r in rows:
        w = r["worst"]
        worst_text = f"{fmt_number(w['value'])} ({esc(w['where'])})" if w else "—"
        bad = ' class="num bad"' if r["not converged"] else ' class="num"'
        parts.append(f"<tr><td><code>{esc(r['response'])}</code></td><td>{esc(r['units'])}</td>"
                     f"<td class=\"num\">{r['entries']}</td><td class=\"num\">{r['converged']}</td>"
                     f"<td{bad}>{r['not converged']}</td><td class=\"num\">{r['insufficient data']}</td>"
                     f"<td>{worst_text}</td><td class=\"num\">{fmt_number(r['max_ratio'])}</td></tr>")
    parts.append("</table>")
    parts += symmetry_residual_note(conv_dir / "symmetry_residuals.csv")
    plots = _copy_plots(conv_dir, assets, name, [r["response"] for r in rows], page_dir)
    if not plots:
        parts.append(html_note(f"No convergence plots found in {conv_dir}."))
    for src, caption in plots:
        parts.append(f'<figure><img src="{src}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')
    return "\n".join(parts), overview


def symmetry_residual_note(csv: Path) -> list[str]:
    """One paragraph: the components the study's point group forbids and their largest residual (|finest| /
    largest |component|), written by the convergence stage; nothing without that file."""
    if not csv.exists():
        return []
    try:
        res = pd.read_csv(csv, keep_default_na=False, na_values=["", "nan", "NaN"],
                          dtype={"variant": str, "component": str, "response": str, "units": str})
    except Exception as exc:
        return [html_note(f"Symmetry residuals {csv} could not be read: {exc}")]
    res["variant"] = res["variant"].fillna("").astype(str)
    worst = res.groupby(["response", "variant", "component"], sort=False)["relative"].max()
    items = ", ".join(f"<code>{esc(r)}{'[' + esc(v) + ']' if v else ''}</code> {esc(c)} {fmt_number(x, 2)}"
                      for (r, v, c), x in worst.items())
    return [f"<p>Symmetry zeros (forbidden by the crystal's point group; residuals, excluded from the verdicts), "
            f"largest |finest value| / largest |component|: {items}.</p>"]


def overview_table(rows: list[dict]) -> str:
    out = ["<table><tr><th>study</th><th>model</th><th>parameters</th><th>units</th><th>grid sizes</th>"
           "<th>converged</th><th>not converged</th><th>insufficient data</th><th>worst relative error</th></tr>"]
    for r in rows:
        link = f'<a href="#study-{esc(r["study"])}"><code>{esc(r["study"])}</code></a>'
        if r["counts"] is None:
            cells = f'<td colspan="4" class="bad">{esc(r["status"])}</td>'
        else:
            c = r["counts"]
            w = r["worst"]
            cells = (f'<td class="num">{c["converged"]}</td>'
                     f'<td class="num{" bad" if c["not converged"] else ""}">{c["not converged"]}</td>'
                     f'<td class="num">{c["insufficient data"]}</td>'
                     f'<td>{fmt_number(w["value"]) + " (" + esc(w["where"]) + ")" if w else "—"}</td>')
        out.append(f"<tr><td>{link}</td><td>{esc(r['model'])}</td><td>{esc(r['params'])}</td><td>{esc(r['units'])}</td>"
                   f"<td>{esc(r['sizes'])}</td>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)
