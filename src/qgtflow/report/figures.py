"""Cross-study figures of the report from the responses and convergence stores: a response against μ, T or ω per
study, and the k-points each study needs for its tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from qgtflow.plotting import save_once, sci_y
from qgtflow.report.sections import fmt_number
from qgtflow.report.stores import finest_store, open_store
from qgtflow.stages.convergence_stage import axis_label as _axis_label


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
    """Plot one configured cross-study figure; returns (written, notes, caption detail). A component may name its
    own ``response`` (two routes to one quantity in one panel, e.g. 002's Kubo and two-band Δn)."""
    from matplotlib.figure import Figure

    notes: list[str] = []
    response = fig_cfg.get("response")
    if not response:
        return False, ["figure has no 'response'"], ""
    components = [dict(c or {}) for c in (fig_cfg.get("components") or [fig_cfg.get("component") or {}])]
    x = fig_cfg.get("x", "mu")
    select = dict(fig_cfg.get("select") or {})
    names = list(fig_cfg.get("studies") or studies)
    fig = Figure(figsize=(7.0, 4.5))  # laid out once by save_once
    ax = fig.subplots()
    n_curves = 0
    units_seen: dict[str, str] = {}
    hall: dict[str, tuple] = {}  # Hall conductivities: their factor to e²/h (responses.Response.hall)
    labels = {"x": None, "y": None}
    curves = [(name, component) for name in names for component in components]
    mixed = any("response" in c for c in components)  # curves of more than one response: name it in the legend
    for n, (name, component) in enumerate(curves):
        component = dict(component)
        response = component.pop("response", fig_cfg["response"])
        if name not in studies:
            notes.append(f"study '{name}' is not configured (not in config['studies'])")
            continue
        store, note = finest_store(results_dir, name, studies[name])
        if note:
            notes.append(note)
        if store is None:
            continue
        try:
            ds = open_store(store)
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
                    cds = open_store(conv)
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
            f"{d} = {fmt_number(v, 4)}{(' ' + ds[d].attrs['units']) if d in ds.coords and ds[d].attrs.get('units') else ''}"
            if isinstance(v, (int, float, np.integer, np.floating)) else f"{d} = {v}"
            for d, v in taken.items())
        ax.errorbar(xs, y, yerr=None if err is None else np.where(np.isfinite(err), err, 0.0),
                    fmt="o-" if len(xs) < 15 else "-", ms=3, capsize=2, color=f"C{n % 10}",
                    label=f"{name}" + (f" {component_text(component)}" if len(components) > 1 else "")
                    + (f" {response}" if mixed else "")
                    + (f" ({sel_text})" if sel_text else ""))
        units_seen[name] = str(da.attrs.get("units", ""))
        hall.setdefault(name, (da.attrs.get("e2_over_h_factor"), da.attrs.get("e2_over_h_units")))
        labels["x"] = labels["x"] or _axis_label(ds[x].attrs, x)
        labels["y"] = labels["y"] or _axis_label(da.attrs, fig_cfg["response"])
        n_curves += 1
    if len(set(units_seen.values())) > 1:
        notes.append("units differ between studies (" + ", ".join(f"{k}: {v}" for k, v in units_seen.items())
                     + "); the curves are not on a common scale")
    if n_curves == 0:
        return False, notes, ""
    comp_text = component_text(components[0]) if len(components) == 1 else ""
    ax.set_xlabel(labels["x"])
    ax.set_ylabel(labels["y"] + (f" ({comp_text})" if comp_text else ""))
    ax.axhline(0, color="0.6", lw=0.5)
    sci_y(ax)
    _e2_over_h_axis(ax, set(hall.values()))
    ax.legend(fontsize=8)
    ax.set_title(fig_cfg.get("title") or f"{fig_cfg['response']} {comp_text}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    save_once(fig, out_png, 110)
    detail = f"{fig_cfg['response']} {comp_text} vs {x}" + (
        " at " + ", ".join(f"{k} ≈ {v}" for k, v in select.items()) if select else "")
    return True, notes, detail


def grid_needed_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path):
    """k-points needed for the study's tolerance vs T, one curve per study (from ``grid_needed.csv`` of the
    convergence stage): how the grid must grow as T falls, e.g. point sampling versus linear tetrahedra."""
    from matplotlib.figure import Figure

    response = fig_cfg.get("response")
    fig = Figure(figsize=(7.0, 4.5))  # laid out once by save_once
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
    save_once(fig, out_png, 110)
    return True, notes, f"{response}: first grid within each study's convergence tolerance at every T"


def component_text(component: dict) -> str:
    """'xxz' for Cartesian labels, plus 'part=…' for other selected dims."""
    cart = "".join(str(v) for d, v in component.items() if d in ("i", "j", "k", "l", "pseudovector"))
    other = ", ".join(f"{v}" for d, v in component.items() if d not in ("i", "j", "k", "l", "pseudovector", "response"))
    return " ".join(t for t in (cart, other) if t)


def _e2_over_h_axis(ax, factors: set) -> None:
    """A right-hand axis in e²/h (per layer in 2D) when every curve is a Hall conductivity with one factor."""
    if len(factors) != 1:
        return
    factor, units = next(iter(factors))
    if factor is None or not np.isfinite(float(factor)) or float(factor) == 0:
        return
    f = float(factor)
    sec = ax.secondary_yaxis("right", functions=(lambda v: v * f, lambda v: v / f))
    sec.set_ylabel(str(units or "e2 planck_constant-1").replace("e2 planck_constant-1", "e²/h"))
