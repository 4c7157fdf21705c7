"""The report page: checks the stores' fingerprints, builds every study section and figure, writes the HTML and its
image folder.
"""

from __future__ import annotations

import datetime as _dt
import logging
import multiprocessing
import re
import shutil
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from urllib.parse import quote

from qgtflow import __version__
from qgtflow.report.bands import bands_figure, bands_section, fermi_surface_figure, kmap_figure
from qgtflow.report.beta0_window import beta0_window_figure
from qgtflow.report.claims import claims_section
from qgtflow.report.electro_optics import electro_optics_figure
from qgtflow.report.figures import cross_figure, grid_needed_figure
from qgtflow.report.kspace import ife_density_figure
from qgtflow.report.qm_variants import qm_variants_figure
from qgtflow.report.sections import CSS, esc, html_note, overview_table, study_section
from qgtflow.report.stores import check_fingerprints

log = logging.getLogger(__name__)
# configured figure kinds drawn from stores by one function (fig_cfg, studies, results_dir, png)
STORE_FIGURES = {"bands": bands_figure, "kmap": kmap_figure, "fermi_surface": fermi_surface_figure,
                 "qm_variants": qm_variants_figure, "beta0_window": beta0_window_figure}


def build_report(config: dict, results_dir: str, out_html: str, processes: int = 1) -> None:
    """Write the HTML report of all configured studies (layout: :mod:`qgtflow.report`); ``processes``: forked
    workers drawing the study sections and figures side by side (the report job's threads)."""
    results = Path(results_dir)
    check_fingerprints(config.get("upstream") or {}, results)
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

    with _pool(processes) as pool:  # study sections and figures are independent: drawn side by side
        section_jobs = [pool.submit(_study_part, name, study_cfg, results, assets, page.parent)
                        for name, study_cfg in studies.items()]
        figure_jobs = [pool.submit(_figure_part, n, fig_cfg, studies, results, assets, page.parent)
                       for n, fig_cfg in enumerate(report_cfg.get("figures") or [])]
        parts = [job.result() for job in section_jobs]
        sections, overview = [section for section, _ in parts], [row for _, row in parts]
        figure_parts = [part for job in figure_jobs for part in job.result()]

    missing = [r["study"] for r in overview if r["counts"] is None]
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [f"<h1>{esc(title)}</h1>",
            f"<p>{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}; "
            f"results from <code>{esc(results)}</code>.</p>"]
    if not studies:
        body.append(html_note("No studies configured."))
    if missing:
        body.append(html_note("Missing or failed results: " + ", ".join(missing)))
    body += ["<h2>Overview</h2>", overview_table(overview),
             "<p>Verdict per entry (response × component × μ × T), with |value| the smaller of the extrapolated "
             "and finest-grid values and the floor max(atol, atol_fraction × largest |value| of the response; "
             "atol_fraction 10⁻⁶ unless the study sets it): converged when the error bar of the h → 0 "
             "extrapolation is within rtol·|value|, or, for an entry zero within the floor (value, finest value "
             "and error bar all below it), within the floor — the floor never passes a nonzero entry. "
             "Entries whose Fermi surface the k·p window cuts are never converged; symmetry zeros are residuals, "
             "not verdicts. Relative errors are shown only for entries above the floor.</p>"]
    if figure_parts:
        body += ["<h2>Figures</h2>", *figure_parts]
    body.append(claims_section(studies, results, config.get("claims")))
    body += sections
    body.append(f"<footer>qgtflow {__version__} · generated {esc(now)}</footer>")
    text = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    page.write_text(text, encoding="utf-8")
    log.info("report written to %s (%d studies, %d missing)", page, len(studies), len(missing))


class _Inline:
    """The executor of a one-process report: runs each call when submitted."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future


def _pool(processes: int):
    """``processes`` forked workers for the report's independent parts (the job's threads), or inline for one."""
    if processes <= 1:
        return _Inline()
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))


def _study_part(name: str, study_cfg, results: Path, assets: Path, out_dir: Path) -> tuple[str, dict]:
    """(the HTML section of one study with its bands section, its overview row); a broken study gets a note."""
    try:
        section, row = study_section(name, study_cfg, results, assets, out_dir)
    except Exception as exc:  # one broken study must not hide the others
        log.exception("report section of study %s failed", name)
        section = f'<h2 id="study-{esc(name)}">Study <code>{esc(name)}</code></h2>' + html_note(
            f"The section of study '{name}' could not be built: {exc}")
        row = {"study": name, "model": "?", "params": "", "units": "", "sizes": "", "counts": None,
               "worst": None, "status": "report error"}
    return section + bands_section(name, results, assets, out_dir), row


def _figure_part(n: int, fig_cfg: dict, studies: dict, results: Path, assets: Path, out_dir: Path) -> list[str]:
    """The HTML parts of configured figure ``n``: its title, notes and image (or why it has none)."""
    fig_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(fig_cfg.get("name") or f"figure{n + 1}"))
    fig_title = fig_cfg.get("title") or fig_name
    parts = [f"<h3>{esc(fig_title)}</h3>"]
    png = assets / "figures" / f"{fig_name}.png"
    try:
        if fig_cfg.get("kind") == "ife_density":
            written, notes, detail = ife_density_figure(fig_cfg, studies, results, png)
        elif fig_cfg.get("kind") in STORE_FIGURES:
            written, notes, detail = STORE_FIGURES[fig_cfg["kind"]](fig_cfg, studies, results, png)
        elif fig_cfg.get("kind") == "grid_needed":
            written, notes, detail = grid_needed_figure(fig_cfg, studies, results, png)
        elif fig_cfg.get("kind") == "electro_optics":
            written, notes, detail = electro_optics_figure(fig_cfg, studies, results, png)
        else:
            written, notes, detail = cross_figure(fig_cfg, studies, results, png)
    except Exception as exc:
        log.exception("figure %s failed", fig_name)
        written, notes, detail = False, [f"figure could not be drawn: {exc}"], ""
    parts += [html_note(note) for note in notes]
    if written:
        src = quote(png.relative_to(out_dir).as_posix())
        from_grids = fig_cfg.get("kind", "curves") in ("curves", "grid_needed", "electro_optics")
        caption = f"{fig_title}: {detail}" + (
            "; finest grid of each study, error bars from its convergence stage." if from_grids else ".")
        parts.append(f'<figure><img src="{src}" alt="{esc(fig_title)}">'
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    else:
        parts.append(html_note(f"Figure '{fig_title}' has no data to show."))
    return parts
