"""Bands and k-map figures of the report, from each study's bands store (the bands stage's output only).

Per study: energies with Ω^xy and tr g along the path, and k-maps of ε, Ω^xy and tr g of the first conduction
band. Configured figures (001 Fig. 2): ``bands`` (a, the path of one study with a Fermi level), ``fermi_surface``
(b, a field component on the Fermi lines of several studies) and ``kmap`` (d, a field component on the plane).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import numpy as np
import xarray as xr

from qgtflow import io
from qgtflow.plotting import save_once
from qgtflow.report.sections import esc, html_note
from qgtflow.report.stores import bands_store

AXES = "xyz"


def open_bands(results_dir: Path, name: str) -> xr.Dataset:
    return io.open_store(bands_store(results_dir, name))


def conduction_band(ds: xr.Dataset) -> int:
    """The first band above the middle of the first sector (the lowest conduction band of a half-filled block)."""
    sectors = [str(s) for s in ds["band_sector"].values]
    first = [b for b, s in enumerate(sectors) if s == sectors[0]]
    return first[len(first) // 2]


def component(da: xr.DataArray, comp: str) -> xr.DataArray:
    """One Cartesian component, e.g. "xy" of (…, i, j) or "xyy" of (…, i, j, k)."""
    dims = [d for d in ("i", "j", "k", "l") if d in da.dims]
    if len(comp) != len(dims):
        raise KeyError(f"{da.name}: component {comp!r} needs {len(dims)} indices ({', '.join(dims)})")
    return da.sel({d: c for d, c in zip(dims, comp)})


def trace_g(da: xr.DataArray) -> xr.DataArray:
    """tr g = Σ_a g^aa over the Cartesian axes."""
    return sum(da.sel(i=a, j=a) for a in da["i"].values)


def _ticks(ax, ds):
    ax.set_xticks(ds["tick_distance"].values, [str(v) for v in ds["tick_label"].values])
    for x in ds["tick_distance"].values:
        ax.axvline(x, color="0.8", lw=0.6)
    ax.set_xlim(ds["k_distance"].values[0], ds["k_distance"].values[-1])


def _unit(da) -> str:
    return str(da.attrs.get("units", ""))


def path_figure(ds: xr.Dataset, out_png: Path, title: str, fermi_level: float | None = None) -> None:
    """ε_n(k), Ω^xy_n(k) and tr g_n(k) along the path (panels left out when the store lacks the field)."""
    from matplotlib.figure import Figure

    panels = [("energy", ds["energy"], "ε")]
    if "berry_curvature" in ds and ds.sizes.get("i", 1) >= 2:
        panels.append(("berry_curvature", component(ds["berry_curvature"], "xy"), "Ω^xy"))
    if "quantum_metric" in ds:
        panels.append(("quantum_metric", trace_g(ds["quantum_metric"]), "tr g"))
    fig = Figure(figsize=(6.5, 2.2 * len(panels) + 0.6))  # laid out once by save_once
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    x = ds["k_distance"].values
    for ax, (name, da, label) in zip(axes, panels):
        for b in range(ds.sizes["band"]):
            ax.plot(x, da.isel(band=b).values, lw=1.0, label=f"band {b} ({ds['band_sector'].values[b]})")
        ax.set_ylabel(f"{label} [{_unit(ds[name])}]")
        _ticks(ax, ds)
    if fermi_level is not None:
        axes[0].axhline(fermi_level, color="k", ls="--", lw=0.8)
    if ds.sizes["band"] <= 8:
        axes[0].legend(fontsize=7, ncol=2)
    axes[-1].set_xlabel(f"k along the path [{_unit(ds['k_distance'])}]")
    fig.suptitle(title, fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    save_once(fig, out_png, 100)


def _mesh(ax, ds, values, label, cmap="RdBu_r", symmetric=True):
    kx, ky = ds["kmap_kx"].values, ds["kmap_ky"].values
    v = np.asarray(values, float)
    vmax = float(np.nanmax(np.abs(v))) or 1.0
    kwargs = {"vmin": -vmax, "vmax": vmax} if symmetric else {}
    im = ax.pcolormesh(kx, ky, v, cmap=cmap, shading="auto", **kwargs)
    ax.set_aspect("equal")
    ax.set_xlabel(f"k_x [{_unit(ds['kmap_kx'])}]")
    ax.set_ylabel("k_y")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)


def kmap_overview_figure(ds: xr.Dataset, out_png: Path, title: str) -> None:
    """ε, Ω^xy and tr g of the first conduction band on the k-map plane."""
    from matplotlib.figure import Figure

    band = conduction_band(ds)
    panels = [(ds["kmap_energy"].isel(band=band), "ε", "viridis", False)]
    if "kmap_berry_curvature" in ds and ds.sizes.get("i", 1) >= 2:
        panels.append((component(ds["kmap_berry_curvature"].isel(band=band), "xy"), "Ω^xy", "RdBu_r", True))
    if "kmap_quantum_metric" in ds:
        panels.append((trace_g(ds["kmap_quantum_metric"].isel(band=band)), "tr g", "magma", False))
    fig = Figure(figsize=(4.2 * len(panels), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (da, label, cmap, symmetric) in zip(axes, panels):
        _mesh(ax, ds, da.values, f"{label} [{_unit(da)}]", cmap, symmetric)
    fig.suptitle(f"{title} (band {band})", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)


def bands_section(name: str, results_dir: Path, assets: Path, page_dir: Path) -> str:
    """HTML of a study's bands and k-map figures (a note when its bands store is missing or unreadable)."""
    try:
        ds = open_bands(results_dir, name)
    except Exception as exc:  # noqa: BLE001 - the section says what is missing
        return html_note(f"No bands for study '{name}': {exc}")
    parts = ["<h3>Bands and k-maps</h3>"]
    for stem, draw, caption in (
            ("bands", path_figure, f"bands along {ds.attrs.get('path', '')} with Ω^xy and tr g"),
            ("kmap", kmap_overview_figure, "ε, Ω^xy and tr g of the first conduction band on the k-map plane")):
        png = assets / name / f"{stem}.png"
        try:
            draw(ds, png, f"{name}: {caption}")
        except Exception as exc:  # noqa: BLE001
            parts.append(html_note(f"{stem} figure of study '{name}' could not be drawn: {exc}"))
            continue
        src = quote(png.relative_to(page_dir).as_posix())
        parts.append(f'<figure><img src="{src}" alt="{esc(name)} {stem}"><figcaption>{esc(name)}: {esc(caption)}'
                     "</figcaption></figure>")
    return "\n".join(parts)


# ---------------------------------------------------------------- configured figures (001 Fig. 2 a, b, d)


def _first_study(fig_cfg: dict, studies: dict):
    name = (fig_cfg.get("studies") or [None])[0]
    return name if name in studies else None


def bands_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path) -> tuple[bool, list[str], str]:
    """001 Fig. 2a: the bands (and Ω, g) of the first listed study, with the Fermi level ``energy``."""
    name = _first_study(fig_cfg, studies)
    if name is None:
        return False, [f"study {fig_cfg.get('studies')} is not configured"], ""
    ds = open_bands(results_dir, name)
    level = fig_cfg.get("energy")
    path_figure(ds, out_png, fig_cfg.get("title") or f"{name}: bands", level)
    return True, [], f"study {name}, path {ds.attrs.get('path', '')}" + (
        f", Fermi level {level:g} {_unit(ds['energy'])}" if level is not None else "")


def _field_on_map(ds: xr.Dataset, fig_cfg: dict) -> tuple[xr.DataArray, str]:
    field = fig_cfg.get("field") or "quantum_metric_dipole_lambda"
    if f"kmap_{field}" not in ds:
        raise KeyError(f"the bands store has no k-map of {field!r} (its maps: "
                       f"{[v[5:] for v in ds.data_vars if v.startswith('kmap_')]})")
    da = ds[f"kmap_{field}"]
    comp = fig_cfg.get("field_component") or ""
    if comp:
        da = component(da, comp)
    return da, field + (f"^{comp}" if comp else "")


def _bands_at(ds: xr.Dataset, fig_cfg: dict) -> list[int]:
    band = fig_cfg.get("band")
    return [int(band)] if band is not None else list(range(ds.sizes["band"]))


def kmap_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path) -> tuple[bool, list[str], str]:
    """001 Fig. 2d: a field component (``field``, ``field_component``) of band ``band`` (default: the first
    conduction band) on the k-map plane of the first listed study, cropped to |k_a| ≤ ``kmax``."""
    from matplotlib.figure import Figure

    name = _first_study(fig_cfg, studies)
    if name is None:
        return False, [f"study {fig_cfg.get('studies')} is not configured"], ""
    ds = open_bands(results_dir, name)
    da, label = _field_on_map(ds, fig_cfg)
    band = int(fig_cfg["band"]) if fig_cfg.get("band") is not None else conduction_band(ds)
    fig = Figure(figsize=(5.5, 4.6), layout="constrained")
    ax = fig.subplots()
    _mesh(ax, ds, da.isel(band=band).values, f"{label} [{_unit(da)}]")
    if fig_cfg.get("kmax"):
        ax.set_xlim(-fig_cfg["kmax"], fig_cfg["kmax"])
        ax.set_ylim(-fig_cfg["kmax"], fig_cfg["kmax"])
    fig.suptitle(fig_cfg.get("title") or f"{name}: {label}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return True, [], f"study {name}, band {band}, {ds.sizes['ku']}² map points"


def fermi_surface_figure(fig_cfg: dict, studies: dict, results_dir: Path,
                         out_png: Path) -> tuple[bool, list[str], str]:
    """001 Fig. 2b: the Fermi lines ε_n(k) = ``energy`` of each listed study, coloured by a field component
    (default Λ^xyy) interpolated bilinearly from the stored k-map (one panel per study, one colour scale)."""
    from contourpy import contour_generator
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from scipy.interpolate import RegularGridInterpolator

    level = fig_cfg.get("energy")
    if level is None:
        return False, ["fermi_surface figure needs 'energy' (the Fermi level)"], ""
    names = [n for n in fig_cfg.get("studies") or [] if n in studies]
    notes = [f"study '{n}' is not configured" for n in fig_cfg.get("studies") or [] if n not in studies]
    lines = []
    for name in names:
        ds = open_bands(results_dir, name)
        da, label = _field_on_map(ds, fig_cfg)
        u = np.arange(ds.sizes["ku"])
        segs, vals = [], []
        for band in _bands_at(ds, fig_cfg):
            energy = ds["kmap_energy"].isel(band=band).values
            if not (energy.min() < level < energy.max()):
                continue
            interp = RegularGridInterpolator((u, u), da.isel(band=band).values)
            to_x = RegularGridInterpolator((u, u), ds["kmap_kx"].values)
            to_y = RegularGridInterpolator((u, u), ds["kmap_ky"].values)
            for line in contour_generator(z=energy.T).lines(level):  # z[v, u]: points as (u, v)
                pts = np.asarray(line)
                xy = np.stack([to_x(pts), to_y(pts)], axis=1)
                segs.append(xy)
                vals.append(interp(pts))
        lines.append((name, segs, vals, label, _unit(da)))
    if not lines:
        return False, notes, ""
    allv = np.concatenate([np.concatenate(v) for _, _, v, _, _ in lines if v] or [np.zeros(1)])
    vmax = float(np.nanmax(np.abs(allv))) or 1.0
    fig = Figure(figsize=(3.6 * len(lines) + 0.8, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(lines), sharex=True, sharey=True))
    lc = None
    for ax, (name, segs, vals, label, unit) in zip(axes, lines):
        for xy, v in zip(segs, vals):
            pieces = np.stack([xy[:-1], xy[1:]], axis=1)
            lc = LineCollection(pieces, cmap="RdBu_r", norm=None, linewidths=2.0)
            lc.set_array(0.5 * (v[:-1] + v[1:]))
            lc.set_clim(-vmax, vmax)
            ax.add_collection(lc)
        ax.autoscale()
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("k_x")
        if not segs:
            notes.append(f"study '{name}': no Fermi line at {level:g}")
    axes[0].set_ylabel("k_y")
    if lc is not None:
        fig.colorbar(lc, ax=axes, shrink=0.8, label=f"{lines[0][3]} [{lines[0][4]}]")
    fig.suptitle(fig_cfg.get("title") or f"{lines[0][3]} on the Fermi lines at {level:g}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return True, notes, f"Fermi level {level:g}, {lines[0][3]} interpolated from each study's k-map"
