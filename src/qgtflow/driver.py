"""Convergence driver: refine the k-grid of one study until every response entry is converged.

:func:`converge` evaluates a study (kgrid → geometry → reduce, :func:`qgtflow.api.evaluate`) at an
increasing sequence of grid densities, re-assesses every entry (response × variant × component ×
μ × T) with :mod:`qgtflow.convergence` after each new density, and stops when

- every entry's verdict is "converged" (error bar ≤ tolerance; with three densities the error bar
  includes the spread between the Richardson steps of the two finest pairs, with four or more the
  change of the extrapolated value from the previous triplet's — i.e. the extrapolated values
  stopped moving within the tolerance), judged only once at least three densities exist; or
- the next grid would exceed ``max_points`` k-points, or ``max_rounds`` densities were run: then
  it returns normally, the entries that did not converge reported as "not converged" (or
  "insufficient data" when fewer than three densities fit under ``max_points``).

Grid densities: ``start`` (default: the smallest of the study's ``kgrid.sizes``) points per axis,
then ``n → max(n + 2, even(n × growth))`` — a fixed sequence, so that a later call reuses it.

**Reuse.** Each density's responses store is kept in ``workdir`` as
``<study>_n<N>_responses.zarr``, carrying the store fingerprint every stage writes
(:func:`qgtflow.plan.fingerprint`): the keys the reduce stage declares, the size, the geometry and
kgrid fingerprints below it (model hash, grid, degeneracy threshold, fields), and the qgtflow
version. A later call with
the same ``workdir`` reuses a store only when it is complete and its fingerprint matches; a store
of another configuration (other μ, T, responses, model ...) is recomputed and replaced. Edits of
qgtflow's source code that keep the version do *not* invalidate stores (unlike the workflow's code
trigger): delete ``workdir`` after such an edit. The intermediate kgrid/geometry stores live in
``workdir/scratch`` while a density is computed (a killed run resumes its geometry chunks) and are
deleted once its responses store is written (``keep_geometry=True`` keeps them).

**Symmetry residuals.** ``zero_components={"sigma_drude": ["xy", "yx"]}`` names components the
study's symmetry forces to vanish (labels as in ``convergence.csv``'s ``component`` column); their
finest-grid values relative to the largest |component| of the same response (same variant, μ and
T) are reported beside the verdicts (``symmetry_residual``) and in ``symmetry_residuals.csv``. They are
residuals, not results: their verdict reads ``symmetry zero (excluded)`` and they count neither in the
entries nor in the stopping criterion.

Outputs in ``out_dir`` (when given): the convergence stage's ``convergence.zarr``,
``convergence.csv`` and plots (:mod:`qgtflow.stages.convergence_stage`), plus ``summary.txt`` and, with
``zero_components``, ``symmetry_residuals.csv``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from qgtflow import __version__
from qgtflow.convergence import CONVERGED, INSUFFICIENT
from qgtflow.errors import ConfigError
from qgtflow.stages.convergence_stage import (EXCLUDED, mark_symmetry_zeros, symmetry_residual_variables,
                                              symmetry_residuals, zero_rows)

log = logging.getLogger(__name__)

MIN_DENSITIES = 3
SUMMARY_LINES = 40


# --------------------------------------------------------------------------- grid sequence


def next_size(size: int, growth: float) -> int:
    """The density after ``size``: ``size × growth`` rounded to an even integer, at least ``size + 2``."""
    return max(int(size) + 2, 2 * round(size * growth / 2.0))


def size_sequence(start: int, growth: float, count: int) -> list[int]:
    """The first ``count`` densities (points per axis) of the driver's sequence."""
    sizes = [int(start)]
    while len(sizes) < count:
        sizes.append(next_size(sizes[-1], growth))
    return sizes


# --------------------------------------------------------------------------- reuse


def fingerprint(study, size: int) -> str:
    """Identity of the responses of ``study`` at ``size`` points per axis: the reduce store's
    fingerprint (:func:`qgtflow.plan.grid_chain`), which the reduce stage writes into the store."""
    from qgtflow.plan import grid_chain

    return grid_chain(study, size)["reduce"]["fingerprint"]


def store_path(workdir: Path, study, size: int) -> Path:
    return Path(workdir) / f"{study.name}_n{size}_responses.zarr"


def reusable(path: Path, fp: str) -> bool:
    """True when ``path`` is a complete responses store with the fingerprint ``fp``."""
    from qgtflow import io

    if not (path / "zarr.json").is_file():
        return False
    try:
        attrs = io.store_attrs(path)
    except Exception:  # noqa: BLE001 - unreadable leftovers are recomputed
        return False
    return bool(attrs.get(io.COMPLETE)) and attrs.get(io.FINGERPRINT) == fp


# --------------------------------------------------------------------------- result


@dataclass
class Round:
    """One grid density of a driver run."""

    size: int
    n_kpoints: int
    seconds: float
    reused: bool
    n_converged: int | None = None  # entries converged after this round (None: fewer than 3 densities)
    n_entries: int | None = None


@dataclass
class ConvergenceResult:
    """What :func:`converge` found. ``table``: one row per entry, the columns of the convergence
    stage's ``convergence.csv`` plus ``symmetry_residual`` (NaN except for ``zero_components``)."""

    study: str
    table: pd.DataFrame
    rounds: list[Round]
    rtol: float
    atol: float
    stop_reason: str
    wall_time: float
    residuals: pd.DataFrame = field(default_factory=pd.DataFrame)
    units: dict = field(default_factory=dict)  # response -> units
    dataset: object = None  # the convergence xr.Dataset (as written to convergence.zarr)
    workdir: str | None = None
    out_dir: str | None = None

    @property
    def sizes(self) -> list[int]:
        return [r.size for r in self.rounds]

    @property
    def n_densities(self) -> int:
        return len(self.rounds)

    @property
    def n_kpoints(self) -> int:
        """k-points of the finest grid."""
        return self.rounds[-1].n_kpoints if self.rounds else 0

    @property
    def n_entries(self) -> int:
        """Judged entries (symmetry zeros named by ``zero_components`` are residuals, not entries)."""
        return int((self.table["verdict"] != EXCLUDED).sum())

    @property
    def n_converged(self) -> int:
        return int((self.table["verdict"] == "converged").sum())

    @property
    def converged(self) -> bool:
        return self.n_entries > 0 and self.n_converged == self.n_entries

    @property
    def n_computed(self) -> int:
        return sum(not r.reused for r in self.rounds)

    def entry(self, response: str, component: str = "", *, mu: float | None = None, T: float | None = None,
              variant: str = "") -> pd.Series:
        """The row of one entry (μ, T nearest to the given ones; the first when not given)."""
        t = self.table
        sel = t[(t["response"] == response) & (t["component"] == component) & (t["variant"] == variant)]
        if sel.empty:
            raise KeyError(f"no entry {response!r} component {component!r} variant {variant!r}")
        if mu is not None:
            sel = sel[np.isclose(sel["mu"], sel["mu"].iloc[(sel["mu"] - mu).abs().argmin()])]
        if T is not None:
            sel = sel[np.isclose(sel["T"], sel["T"].iloc[(sel["T"] - T).abs().argmin()])]
        return sel.iloc[0]

    def summary(self, max_lines: int = SUMMARY_LINES) -> str:
        """Print-friendly summary: one line per entry (not converged first; at most ``max_lines``), counts."""
        lines = [(f"study {self.study}: {self.n_converged}/{self.n_entries} entries converged "
                  f"(rtol {self.rtol:g}, atol {self.atol:g}) after {self.n_densities} grid densities "
                  f"{self.sizes} ({self.n_computed} computed, {self.n_densities - self.n_computed} reused); "
                  f"finest grid {self.n_kpoints} k-points; {self.wall_time:.1f} s; stopped: {self.stop_reason}")]
        t = self.table
        if t.empty:
            return lines[0]
        order = np.argsort((t["verdict"] == "converged").to_numpy(), kind="stable")  # not converged first
        shown = t.iloc[order[:max_lines]]
        rows = []
        for _, r in shown.iterrows():
            name = r["response"] + (f"[{r['variant']}]" if r["variant"] else "") + \
                (f" {r['component']}" if r["component"] else "")
            order_text = f"{r['order']:.2f}" if np.isfinite(r["order"]) else "-"
            res = r.get("symmetry_residual", np.nan)
            rows.append([name, f"{r['mu']:.4g}", f"{r['T']:.4g}", str(int(r["n_points_finest"])),
                         f"{r['extrapolated']:.6g} ± {r['error']:.2g}", order_text, r["verdict"],
                         f"{res:.1e}" if np.isfinite(res) else ""])
        header = ["entry", "mu", "T", "k-points", "extrapolated ± error", "order", "verdict", "sym.res."]
        if not any(row[-1] for row in rows):
            header, rows = header[:-1], [row[:-1] for row in rows]
        widths = [max(len(h), *(len(row[c]) for row in rows)) for c, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
        if len(t) > max_lines:
            lines.append(f"... {len(t) - max_lines} more entries" +
                         (f" (all in {Path(self.out_dir) / 'convergence.csv'})" if self.out_dir else ""))
        counts = t["verdict"].value_counts().to_dict()
        lines.append("verdicts: " + ", ".join(f"{v} {counts[v]}" for v in
                                              ("converged", "not converged", "insufficient data") if v in counts))
        if not self.residuals.empty:
            worst = self.residuals.groupby(["response", "variant", "component"], sort=False)["relative"].max()
            lines.append("symmetry residuals (max |finest| / max |component| over μ, T): " + ", ".join(
                f"{resp}{'[' + var + ']' if var else ''} {comp} {val:.1e}" for (resp, var, comp), val in worst.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------- analysis


def _check_args(rtol, atol, growth, max_points, max_rounds, start) -> None:
    if rtol is not None and not (np.isfinite(rtol) and rtol > 0):
        raise ConfigError("rtol", rtol, "a number > 0")
    if atol is not None and not (np.isfinite(atol) and atol >= 0):
        raise ConfigError("atol", atol, "a number >= 0")
    if not (np.isfinite(growth) and growth > 1):
        raise ConfigError("growth", growth, "a number > 1 (factor per axis between densities)")
    if max_points is not None and (isinstance(max_points, bool) or int(max_points) != max_points or max_points < 1):
        raise ConfigError("max_points", max_points, "a positive integer (k-points of the finest grid)")
    if isinstance(max_rounds, bool) or int(max_rounds) != max_rounds or max_rounds < MIN_DENSITIES:
        raise ConfigError("max_rounds", max_rounds, f"an integer >= {MIN_DENSITIES} (densities needed for a verdict)")
    if start is not None and (isinstance(start, bool) or int(start) != start or start < 2):
        raise ConfigError("start", start, "an integer >= 2 (points per axis of the first grid)")


def _analyse(stores, rtol: float, atol: float, fraction: float):
    """Assess every response of the opened stores; verdicts 'insufficient data' below 3 densities; entries whose
    (μ, T) has a Fermi surface cut by the k·p window (flagged by the reduce stage) are not converged."""
    from qgtflow.stages.convergence_stage import analyse_response, response_names, window_cut

    cut = window_cut(stores)
    results = [analyse_response(stores, name, rtol, atol, fraction, cut) for name in response_names(stores)]
    if len(stores) < MIN_DENSITIES:
        for rc in results:
            a = rc.assessment
            verdict = np.where(a.verdict == CONVERGED, INSUFFICIENT, a.verdict).astype(np.int8)
            rc.assessment = dataclasses.replace(a, verdict=verdict)
    return results


def symmetry_zeros(st) -> dict[str, list[str]]:
    """{response: components forbidden by the point group of the study's crystal} (empty without ``symmetry``)."""
    from qgtflow.models.symmetry import study_symmetry_zeros

    zeros = study_symmetry_zeros(st.model, st.config.get("symmetry"), st.responses, f"{st.where}symmetry",
                                 ac=st.config.get("omega") is not None)
    if zeros:
        log.info("converge %s: symmetry-forbidden components %s", st.name, zeros)
    return zeros


def _write_outputs(out: Path, study, results, stores, table, residuals, rtol, atol, meta_extra, summary,
                   plots: bool):
    from qgtflow import io
    from qgtflow.stages.convergence_stage import (atol_fraction, check_upstream, convergence_meta, make_plots,
                                                  to_dataset, unplanned_fingerprint)

    out.mkdir(parents=True, exist_ok=True)
    fraction = atol_fraction(study)
    meta = {**convergence_meta(study.name, stores, rtol, atol, fraction),
            "made_by": "qgtflow.driver.converge", **meta_extra,
            io.FINGERPRINT: unplanned_fingerprint(rtol, atol, fraction, check_upstream([s.path for s in stores], None))}
    ds = to_dataset(results, stores, meta)
    zeros = json.loads(meta_extra.get("driver_zero_components", "{}"))
    ds = ds.assign(symmetry_residual_variables(results, zeros))
    ds.attrs["symmetry_zero_components"] = json.dumps(zeros, sort_keys=True)
    with io.output_lock(out / "convergence.zarr"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        io.write_dataset(ds, out / "convergence.zarr")
    table.drop(columns=["symmetry_residual"]).to_csv(out / "convergence.csv", index=False, float_format="%.10g")
    if not residuals.empty:
        residuals.to_csv(out / "symmetry_residuals.csv", index=False, float_format="%.10g")
    if plots:
        make_plots(results, stores, out)
    (out / "summary.txt").write_text(summary + "\n")
    return ds


# --------------------------------------------------------------------------- driver


def converge(study, *, rtol: float | None = None, atol: float | None = None, start: int | None = None,
             growth: float = 1.5, max_points: int | None = None, max_rounds: int = 8, n_workers: int | None = None,
             workdir: str | None = None, out_dir: str | None = None, zero_components: dict | None = None,
             plots: bool = True, keep_geometry: bool = False) -> ConvergenceResult:
    """Refine the k-grid of ``study`` until every entry converges (see the module docstring).

    study: dict, YAML path or :class:`qgtflow.study.Study`.
    rtol, atol: tolerances (default: the study's ``convergence.rtol`` / ``convergence.atol``).
    start: points per axis of the first grid (default: the smallest of ``kgrid.sizes``).
    growth: factor per axis between densities (> 1; sizes rounded to even integers).
    max_points: no grid with more k-points is run (None: no limit).
    max_rounds: at most this many densities (>= 3).
    n_workers: Dask workers of each evaluation (0: in this process).
    workdir: where the responses stores of every density are kept and reused (default: a temporary
        directory, removed at the end: nothing is reused).
    out_dir: write convergence.zarr, convergence.csv, plots and summary.txt there.
    zero_components: {response: [component labels]} vanishing by symmetry; their relative residuals
        are reported.
    Bad arguments raise :class:`~qgtflow.errors.ConfigError`; an unreachable tolerance does not raise.
    """
    from qgtflow import api, io
    from qgtflow.stages.convergence_stage import _tolerances, atol_fraction, load_stores, to_table
    from qgtflow.study import load_study

    t0 = time.perf_counter()
    st = load_study(study)
    _check_args(rtol, atol, growth, max_points, max_rounds, start)
    zero_components = {str(k): [str(c) for c in (v if isinstance(v, (list, tuple)) else [v])]
                       for k, v in (zero_components or {}).items()}
    for name in zero_components:
        if name not in st.responses:
            raise ConfigError("zero_components", name, f"one of the study's responses {st.responses}")
    for name, labels in symmetry_zeros(st).items():  # the study's crystal: its forbidden components too
        zero_components[name] = list(dict.fromkeys(zero_components.get(name, []) + labels))
    study_rtol, study_atol = _tolerances(st)
    rtol = float(study_rtol if rtol is None else rtol)
    atol = float(study_atol if atol is None else atol)
    if start is None and not isinstance(st.sizes[0], int):
        raise ConfigError(f"{st.where}kgrid.sizes", st.sizes[0], "an isotropic first size for converge (it grows "
                          "one points-per-axis number), or give start")
    start = int(start if start is not None else st.sizes[0])
    sizes = size_sequence(start, growth, int(max_rounds))
    first_points = st.make_grid(sizes[0]).n_points
    if max_points is not None and first_points > max_points:
        raise ConfigError("max_points", max_points, f">= the {first_points} k-points of the first grid "
                          f"({sizes[0]} per axis)")

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="qgtflow-converge-")
        work = Path(tmp.name)
    else:
        work = Path(workdir)
    try:
        work.mkdir(parents=True, exist_ok=True)
        log.info("converge %s: rtol %g, atol %g, densities %s... (growth %g, at most %d, max_points %s), workdir %s",
                 st.name, rtol, atol, sizes[:MIN_DENSITIES], growth, max_rounds, max_points, work)
        rounds: list[Round] = []
        paths: list[str] = []
        stores = results = None
        stop_reason = f"max_rounds = {max_rounds} densities run"
        for n, size in enumerate(sizes):
            n_points = st.make_grid(size).n_points
            if max_points is not None and n_points > max_points:
                stop_reason = f"the next grid ({size} per axis, {n_points} k-points) would exceed max_points = {max_points}"
                break
            path = store_path(work, st, size)
            fp = fingerprint(st, size)
            t_round = time.perf_counter()
            reused = reusable(path, fp)
            if not reused:
                if (path / "zarr.json").is_file():
                    log.info("converge %s: %s was made from another configuration; recomputing it", st.name, path)
                scratch = work / "scratch" / f"n{size}"
                with io.output_lock(path):
                    ds = api.evaluate(st, size=size, out=None, n_workers=n_workers, workdir=str(scratch))
                    io.write_dataset(ds, path)
                if not keep_geometry:
                    shutil.rmtree(scratch, ignore_errors=True)
            seconds = time.perf_counter() - t_round
            paths.append(str(path))
            stores = load_stores(paths)
            results = _analyse(stores, rtol, atol, atol_fraction(st))
            n_entries = int(sum(rc.assessment.verdict.size for rc in results))
            n_conv = int(sum((rc.assessment.verdict == CONVERGED).sum() for rc in results))
            if zero_components:  # symmetry zeros are residuals: not entries, not in the stopping criterion
                t = to_table(results, stores, st.name)
                if n == 0:  # component labels are known now: refuse bad ones early
                    symmetry_residuals(t, zero_components)
                keep = ~zero_rows(t, zero_components)
                n_entries, n_conv = int(keep.sum()), int(((t["verdict"] == "converged") & keep).sum())
            judged = len(stores) >= MIN_DENSITIES
            rounds.append(Round(size, n_points, seconds, reused, n_conv if judged else None, n_entries))
            log.info("converge %s: density %d/%d, %d per axis (%d k-points), %s in %.1f s; %s", st.name, n + 1,
                     max_rounds, size, n_points, "reused" if reused else "computed", seconds,
                     f"{n_conv}/{n_entries} entries converged" if judged
                     else f"{n_entries} entries, no verdict before {MIN_DENSITIES} densities")
            if judged and n_entries and n_conv == n_entries:
                stop_reason = "all entries converged"
                break

        table, residuals = mark_symmetry_zeros(to_table(results, stores, st.name), zero_components)
        units = {rc.name: rc.attrs.get("units", "") for rc in results}
        result = ConvergenceResult(st.name, table, rounds, rtol, atol, stop_reason, time.perf_counter() - t0,
                                   residuals, units, workdir=None if tmp else str(work),
                                   out_dir=str(out_dir) if out_dir is not None else None)
        if out_dir is not None:
            meta_extra = {"driver_sizes": [r.size for r in rounds], "driver_stop_reason": stop_reason,
                          "driver_growth": float(growth), "driver_max_points": -1 if max_points is None else int(max_points),
                          "driver_zero_components": json.dumps(zero_components)}
            result.dataset = _write_outputs(Path(out_dir), st, results, stores, table, residuals, rtol, atol,
                                            meta_extra, result.summary(), plots)
        else:
            from qgtflow.stages.convergence_stage import to_dataset

            result.dataset = to_dataset(results, stores, {"study": st.name, "rtol": rtol, "atol": atol})
        result.wall_time = time.perf_counter() - t0
        log.info("converge %s: %d/%d entries converged, %d densities, finest %d k-points, %.1f s (%s)", st.name,
                 result.n_converged, result.n_entries, result.n_densities, result.n_kpoints, result.wall_time,
                 stop_reason)
        return result
    finally:
        if tmp is not None:
            if stores:
                for s in stores:  # release the zarr handles before the directory goes
                    s.ds.close()
            tmp.cleanup()
