"""Convergence stage: responses stores at several grid densities -> verdicts, table and plots.

Reads one responses store per grid density (the reduce stage's output), extrapolates every
entry (response × component × μ × T) to h -> 0 with :mod:`qgtflow.convergence` and writes, in
``out_dir``:

- ``convergence.zarr``: per response ``<name>_values`` (dim ``size``, coarse -> fine),
  ``<name>_extrapolated``, ``<name>_error``, ``<name>_tolerance``, ``<name>_order``,
  ``<name>_method`` and ``<name>_verdict`` (int8: 1 converged, 0 not converged,
  −1 insufficient data; CF ``flag_values``/``flag_meanings``);
- ``convergence.csv``: one row per response/variant/component/μ/T;
- symmetry zeros (the components the point group of the study's crystal forbids, the plan's derived
  ``symmetry_zeros``): residuals, not judged entries — verdict ``symmetry zero (excluded)`` in the CSV,
  ``<name>_symmetry_residual`` in the store (|finest| / largest |component|), ``symmetry_residuals.csv``;
- ``grid_needed.csv``: per response and T, the k-points of the first grid within tolerance of the
  extrapolated values from there on (NaN: not reached) — how the needed density grows as T falls;
- PNG plots: ``conv_<name>.png`` (value vs grid spacing for representative entries) and
  ``mu_<name>.png`` (finest-grid value vs μ at each T with error bands), plus ``T_<name>.png``
  (value vs T) when the study has three or more temperatures.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from qgtflow import io
from qgtflow.convergence import (
    ASSUMED,
    ATOL_FRACTION,
    CLIPPED,
    FITTED,
    METHODS,
    NOT_CONVERGED,
    P_MAX,
    P_MIN,
    VERDICTS,
    Assessment,
    assess,
    method_names,
    verdict_names,
)
from qgtflow.errors import ConfigError, StoreError
from qgtflow.io import FINGERPRINT
from qgtflow.plotting import save_once, sci_y

log = logging.getLogger(__name__)

CART_DIMS = ("i", "j", "k", "l", "pseudovector", "spin")  # labelled together (xz: D_xz), as the symmetry zeros
# name them (003's spin index too: σ_{ab;c} labelled 'xyz' in the stored order i, j, spin)
BASE_DIMS = ("mu", "T")
MAX_T_LINES = 6
MAX_COMPONENT_PANELS = 3


@dataclass
class GridStore:
    """One opened responses store (one grid density)."""

    path: str
    ds: xr.Dataset
    spacing: float
    n_kpoints: int
    grid_sizes: list[int]

    @property
    def spacing_units(self) -> str:
        """Units of the grid spacing (inverse model length), from the kgrid stage's attrs."""
        return str(self.ds.attrs.get("grid_spacing_units", "model_length-1"))

    @property
    def size(self) -> int:
        return int(max(self.grid_sizes)) if self.grid_sizes else int(self.n_kpoints)


def open_store(path) -> GridStore:
    """Open a responses store and check it is complete and carries its grid metadata."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"responses store {p} does not exist")
    try:
        ds = xr.open_zarr(p)
    except Exception as exc:  # zarr raises many types for unreadable stores
        raise StoreError(f"responses store {p} cannot be opened: {exc}") from None
    if not bool(ds.attrs.get("qgtflow_complete", False)):
        raise StoreError(f"responses store {p} is incomplete (attribute qgtflow_complete is not True); rerun its stage")
    io.verify_store(p)  # attrs (grid_spacing) unchanged, every chunk present and passing its checksum
    if "grid_spacing" not in ds.attrs:
        raise StoreError(f"responses store {p} lacks the global attribute 'grid_spacing'")
    spacing = float(ds.attrs["grid_spacing"])
    if not np.isfinite(spacing) or spacing <= 0:
        raise StoreError(f"responses store {p}: grid_spacing = {spacing!r}, expected a positive number")
    sizes = [int(s) for s in np.atleast_1d(ds.attrs.get("grid_sizes", []))]
    n_k = int(ds.attrs.get("n_kpoints", int(np.prod(sizes)) if sizes else 0))
    for dim in BASE_DIMS:
        if dim not in ds.coords:
            raise StoreError(f"responses store {p} has no coordinate '{dim}'")
    return GridStore(str(p), ds, spacing, n_k, sizes)


def load_stores(paths) -> list[GridStore]:
    """Open all stores, sort them coarse -> fine (decreasing h) and check they belong together."""
    if not paths:
        raise StoreError("the convergence stage needs at least one responses store")
    stores = sorted((open_store(p) for p in paths), key=lambda s: -s.spacing)
    spacings = [s.spacing for s in stores]
    if len(set(spacings)) != len(spacings):
        same = dict(zip([s.path for s in stores], spacings))
        raise StoreError(f"two responses stores have the same grid spacing: {same}")
    ref = stores[-1]
    for s in stores[:-1]:
        for key in ("model_hash", "study"):
            a, b = s.ds.attrs.get(key), ref.ds.attrs.get(key)
            if a is not None and b is not None and a != b:
                raise StoreError(f"responses stores {s.path} and {ref.path} differ in '{key}' ({a!r} vs {b!r})")
        for dim in BASE_DIMS:
            va, vb = s.ds[dim].values, ref.ds[dim].values
            if va.shape != vb.shape or not np.allclose(va, vb, rtol=1e-12, atol=0):
                raise StoreError(f"responses stores {s.path} and {ref.path} have different '{dim}' coordinates")
    return stores


def response_names(stores: list[GridStore]) -> list[str]:
    """Numeric data variables with dims mu and T present in every store (finest store's order)."""
    finest = stores[-1].ds
    names = []
    for name, da in finest.data_vars.items():
        if not all(d in da.dims for d in BASE_DIMS) or not np.issubdtype(da.dtype, np.number):
            continue
        missing = [s.path for s in stores if name not in s.ds.data_vars or set(s.ds[name].dims) != set(da.dims)]
        if missing:
            log.warning("response %s skipped: missing or with other dims in %s", name, missing)
            continue
        names.append(str(name))
    return names


def _labels(values) -> np.ndarray:
    return np.array([str(v.decode() if isinstance(v, bytes) else v) for v in np.asarray(values).ravel()], dtype=object)


def _string_coords(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width unicode coords -> variable-length strings (a zarr v3 data type with a spec)."""
    for name, c in ds.coords.items():
        if c.dtype.kind in "USO" or str(c.dtype).startswith("StringDType"):
            ds = ds.assign_coords({name: (c.dims, _labels(c.values).reshape(c.shape), c.attrs)})
    return ds


@dataclass
class ResponseConvergence:
    """Everything known about one response variable's convergence (arrays in `dims` order)."""

    name: str
    dims: tuple[str, ...]
    coords: dict
    attrs: dict
    h: np.ndarray  # (n_sizes,) coarse -> fine
    stack: np.ndarray  # (n_sizes, *shape)
    assessment: Assessment

    @property
    def extra_dims(self) -> tuple[str, ...]:
        return tuple(d for d in self.dims if d not in BASE_DIMS)

    def flat(self):
        """(component labels, arrays reshaped to (..., n_comp, n_mu, n_T)) for plotting."""
        extra = self.extra_dims
        order = [self.dims.index(d) for d in (*extra, "mu", "T")]
        n_mu, n_t = len(self.coords["mu"]), len(self.coords["T"])

        def reshape(a, lead=0):
            a = np.asarray(a)
            a = np.transpose(a, list(range(lead)) + [lead + o for o in order])
            return a.reshape(*a.shape[:lead], -1, n_mu, n_t)

        labels = component_labels(extra, self.coords)
        r = self.assessment.result
        return labels, {
            "stack": reshape(self.stack, 1),
            "value": reshape(r.value),
            "finest": reshape(r.finest),
            "error": reshape(r.error),
            "order": reshape(r.order),
            "method": reshape(r.method),
            "verdict": reshape(self.assessment.verdict),
            "tolerance": reshape(self.assessment.tolerance),
        }


def component_labels(extra_dims, coords) -> list[str]:
    """Labels of the flattened non-(μ, T) dims: Cartesian dims joined ('xyy'), others 'label:'."""
    if not extra_dims:
        return [""]
    grids = np.meshgrid(*[_labels(coords[d]) for d in extra_dims], indexing="ij")
    flat = [g.ravel() for g in grids]
    out = []
    for idx in range(flat[0].size):
        cart = "".join(str(flat[n][idx]) for n, d in enumerate(extra_dims) if d in CART_DIMS)
        other = [str(flat[n][idx]) for n, d in enumerate(extra_dims) if d not in CART_DIMS]
        out.append(":".join(other + ([cart] if cart else [])))
    return out


def window_cut(stores: list[GridStore]) -> xr.DataArray | None:
    """(μ, T) True where the k·p window cuts a Fermi surface, as the reduce stage flagged it in the finest
    store (``window_cut`` attr); None when nothing is flagged (periodic zones)."""
    ds = stores[-1].ds
    flags = ds.attrs.get("window_cut")
    if flags is None:
        return None
    cut = np.asarray(flags, bool).reshape(ds.sizes["mu"], ds.sizes["T"])
    return xr.DataArray(cut, dims=("mu", "T"), coords={"mu": ds["mu"].values, "T": ds["T"].values})


def analyse_response(stores: list[GridStore], name: str, rtol: float, atol: float,
                     atol_fraction: float = ATOL_FRACTION, cut: xr.DataArray | None = None) -> ResponseConvergence:
    finest = stores[-1].ds[name]
    dims = tuple(finest.dims)
    stack = np.stack([np.asarray(s.ds[name].transpose(*dims).values, float) for s in stores])
    h = np.array([s.spacing for s in stores])
    if cut is not None:
        cut = cut.broadcast_like(finest).transpose(*dims).values
    a = assess(h, stack, rtol=rtol, atol=atol, atol_fraction=atol_fraction, window_cut=cut)
    coords = {d: finest[d].values for d in dims if d in finest.coords}
    for d in dims:  # dims without coordinate values get integer labels
        coords.setdefault(d, np.arange(finest.sizes[d]))
    return ResponseConvergence(name, dims, coords, dict(finest.attrs), h, stack, a)


def to_dataset(results: list[ResponseConvergence], stores: list[GridStore], meta: dict) -> xr.Dataset:
    finest = stores[-1].ds
    data = {}
    for rc in results:
        a, r = rc.assessment, rc.assessment.result
        attrs = {k: v for k, v in rc.attrs.items() if k in ("units", "long_name", "formula", "form", "reference")
                 or k.startswith(("units_", "si_", "e2_over_h_"))}
        long_name = attrs.get("long_name", rc.name)
        units = attrs.get("units", "")
        data[f"{rc.name}_values"] = (("size", *rc.dims), rc.stack,
                                     {**attrs, "long_name": f"{long_name} per grid density"})
        data[f"{rc.name}_extrapolated"] = (rc.dims, r.value,
                                           {**attrs, "long_name": f"{long_name}, extrapolated to h -> 0"})
        data[f"{rc.name}_error"] = (rc.dims, r.error, {"units": units, "long_name": f"error bar of {long_name}"})
        data[f"{rc.name}_tolerance"] = (rc.dims, a.tolerance, {
            "units": units, "long_name": f"convergence tolerance of {long_name}",
            "atol_effective": float(a.atol_effective)})
        data[f"{rc.name}_order"] = (rc.dims, r.order,
                                    {"units": "1", "long_name": "observed (or assumed) convergence order p"})
        data[f"{rc.name}_method"] = (rc.dims, r.method, {
            "long_name": "extrapolation method", "flag_values": list(METHODS),
            "flag_meanings": " ".join(m.replace("-", "_") for m in METHODS.values())})
        data[f"{rc.name}_verdict"] = (rc.dims, a.verdict, {
            "long_name": f"convergence verdict of {long_name}", "flag_values": list(VERDICTS),
            "flag_meanings": " ".join(v.replace(" ", "_") for v in VERDICTS.values())})
    coords = {}
    for rc in results:
        for d in rc.dims:
            if d in finest.coords and d not in coords:
                coords[d] = (d, finest[d].values, dict(finest[d].attrs))
    coords["size"] = ("size", np.array([s.size for s in stores], dtype=np.int64),
                      {"long_name": "largest number of k-points per axis"})
    coords["grid_spacing"] = ("size", np.array([s.spacing for s in stores]),
                              {"long_name": "grid spacing h (largest |b|/N)", "units": stores[-1].spacing_units})
    coords["n_kpoints"] = ("size", np.array([s.n_kpoints for s in stores], dtype=np.int64),
                           {"long_name": "number of k-points"})
    ds = xr.Dataset(data, coords=coords, attrs=meta)
    return _string_coords(ds)


def to_table(results: list[ResponseConvergence], stores: list[GridStore], study_name: str) -> pd.DataFrame:
    n_finest = stores[-1].n_kpoints
    frames = []
    for rc in results:
        a, r = rc.assessment, rc.assessment.result
        grids = np.meshgrid(*[np.asarray(rc.coords[d]) for d in rc.dims], indexing="ij")
        cols = {d: g.ravel() for d, g in zip(rc.dims, grids)}
        n = r.value.size
        cart = [d for d in rc.dims if d in CART_DIMS]
        other = [d for d in rc.dims if d not in CART_DIMS and d not in BASE_DIMS]
        component = np.full(n, "", dtype=object)
        for d in cart:
            component = component + _labels(cols[d])
        variant = np.full(n, "", dtype=object)
        for m, d in enumerate(other):
            lab = _labels(cols[d]) if d == "variant" else np.array([f"{d}={v}" for v in _labels(cols[d])], dtype=object)
            variant = lab if m == 0 else variant + "," + lab
        frames.append(pd.DataFrame({
            "study": study_name,
            "response": rc.name,
            "variant": variant,
            "component": component,
            "mu": np.asarray(cols["mu"], float),
            "T": np.asarray(cols["T"], float),
            "n_points_finest": n_finest,
            "value_finest": r.finest.ravel(),
            "extrapolated": r.value.ravel(),
            "error": r.error.ravel(),
            "tolerance": a.tolerance.ravel(),
            "rel_error": a.relative_error.ravel(),
            "order": r.order.ravel(),
            "method": method_names(r.method.ravel()),
            "verdict": verdict_names(a.verdict.ravel()),
            "units": rc.attrs.get("units", ""),
        }))
    if not frames:
        return pd.DataFrame(columns=["study", "response", "variant", "component", "mu", "T", "n_points_finest",
                                     "value_finest", "extrapolated", "error", "tolerance", "rel_error", "order",
                                     "method", "verdict", "units"])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- symmetry zeros

EXCLUDED = "symmetry zero (excluded)"  # verdict of a symmetry-zero entry: a residual, not judged


def zero_rows(table: pd.DataFrame, zero_components: dict) -> pd.Series:
    """Rows of the named symmetry-zero components."""
    hit = pd.Series(False, index=table.index)
    for response, labels in zero_components.items():
        hit |= (table["response"] == response) & table["component"].isin(list(labels))
    return hit


def symmetry_residuals(table: pd.DataFrame, zero_components: dict) -> pd.DataFrame:
    """Finest values of the named components relative to the largest |component| of their response (same
    variant, μ, T); a name or label the table lacks is refused in one line."""
    rows = []
    for response, labels in zero_components.items():
        sub = table[table["response"] == response]
        if sub.empty:
            raise ConfigError("zero_components", response,
                              f"one of the study's responses {sorted(table['response'].unique())}")
        known = list(dict.fromkeys(sub["component"]))
        for label in labels:
            if label not in known:
                raise ConfigError(f"zero_components.{response}", label, f"one of the components {known}")
        scale = sub.assign(mag=sub["value_finest"].abs()).groupby(["variant", "mu", "T"])["mag"].max()
        for _, r in sub[sub["component"].isin(list(labels))].iterrows():
            s = float(scale.loc[(r["variant"], r["mu"], r["T"])])
            rel = abs(r["value_finest"]) / s if s > 0 else (0.0 if r["value_finest"] == 0 else np.inf)
            rows.append({"response": response, "variant": r["variant"], "component": r["component"],
                         "mu": r["mu"], "T": r["T"], "value_finest": r["value_finest"], "scale": s,
                         "relative": rel, "units": r["units"]})
    return pd.DataFrame(rows, columns=["response", "variant", "component", "mu", "T", "value_finest", "scale",
                                       "relative", "units"])


def mark_symmetry_zeros(table: pd.DataFrame, zero_components: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the table with ``symmetry_residual`` (NaN except for the zeros) and their verdict :data:`EXCLUDED`,
    the residuals): symmetry zeros are residuals, not judged entries (the verdicts of the other entries,
    convergence.ToleranceCheck, are unchanged)."""
    residuals = symmetry_residuals(table, zero_components)
    table = table.copy()
    table["symmetry_residual"] = np.nan
    for _, r in residuals.iterrows():
        hit = ((table["response"] == r["response"]) & (table["variant"] == r["variant"]) &
               (table["component"] == r["component"]) & (table["mu"] == r["mu"]) & (table["T"] == r["T"]))
        table.loc[hit, "symmetry_residual"] = r["relative"]
    table.loc[zero_rows(table, zero_components), "verdict"] = EXCLUDED
    return table, residuals


def symmetry_residual_variables(results: list[ResponseConvergence], zero_components: dict) -> dict:
    """{<name>_symmetry_residual: (dims, |finest| / max |finest| of the response at the same other coords, NaN
    except for the forbidden components, attrs)} for the convergence store."""
    out = {}
    for rc in results:
        labels = zero_components.get(rc.name)
        if not labels:
            continue
        finest = np.asarray(rc.assessment.result.finest, float)
        cart = [n for n, d in enumerate(rc.dims) if d in CART_DIMS]
        scale = np.max(np.abs(finest), axis=tuple(cart), keepdims=True) if cart else np.abs(finest)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(scale > 0, np.abs(finest) / scale, np.where(finest == 0, 0.0, np.inf))
        mask = np.zeros(finest.shape, bool)
        grids = np.meshgrid(*[_labels(rc.coords[rc.dims[n]]) for n in cart], indexing="ij")
        names = np.full(grids[0].shape if grids else (), "", dtype=object)
        for g in grids:
            names = names + g
        hit = np.isin(names, list(labels))
        shape = [finest.shape[n] if n in cart else 1 for n in range(finest.ndim)]
        mask |= hit.reshape(shape)
        out[f"{rc.name}_symmetry_residual"] = (rc.dims, np.where(mask, rel, np.nan), {
            "units": "1", "long_name": f"symmetry residual of {rc.attrs.get('long_name', rc.name)}: finest |value| "
            "of a symmetry-forbidden component / largest |component| (excluded from the verdicts)",
            "formula": "|T_c(finest)| / max_c' |T_c'(finest)|; c forbidden by the point group "
                       "(qgtflow.models.symmetry: outside the range of (1/|G|) Σ_g D(g))",
            "forbidden_components": list(labels)})
    return out


# --------------------------------------------------------------------------- plots


def axis_label(attrs: dict, default: str, width: int = 42) -> str:
    """'long_name [units]' from the attrs, wrapped onto two lines when long."""
    import textwrap

    name = attrs.get("long_name") or default
    units = attrs.get("units")
    text = f"{name} [{units}]" if units not in (None, "", "1") else str(name)
    return "\n".join(textwrap.wrap(text, width)) if len(text) > width else text


def _coord_text(value, attrs: dict, symbol: str) -> str:
    units = attrs.get("units", "")
    return f"{symbol} = {float(value):.4g}" + (f" {units}" if units else "")


def _pick_indices(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))


def _ranked_components(finest: np.ndarray) -> list[int]:
    """Component indices by decreasing max |finest value| (NaN-safe)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mags = np.nanmax(np.abs(finest.reshape(finest.shape[0], -1)), axis=1)
    mags = np.where(np.isfinite(mags), mags, -1.0)
    return list(np.argsort(-mags, kind="stable"))


DPI = 110


def _figure(n_panels: int, width: float = 4.6, height: float = 3.6):
    """A figure without a layout engine: :func:`qgtflow.plotting.save_once` lays it out once (a layout engine makes savefig draw
    twice, and the constrained one measures every text twice more)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas on savefig

    fig = Figure(figsize=(max(width * n_panels, 5.5), height), dpi=DPI)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def plot_convergence(rc: ResponseConvergence, mu_attrs: dict, t_attrs: dict, path: Path,
                     spacing_units: str = "model_length-1"):
    """Value vs grid spacing for the largest component at up to three μ, one line per T (returns the saved figure)."""
    labels, f = rc.flat()
    comp = _ranked_components(f["finest"])[0]
    finest = f["finest"][comp]  # (n_mu, n_T)
    mu, temps = np.asarray(rc.coords["mu"], float), np.asarray(rc.coords["T"], float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mag = np.nanmax(np.abs(finest), axis=1)
        badness = np.nanmax(f["error"][comp] / f["tolerance"][comp], axis=1)
    picks = []
    if np.any(np.isfinite(mag)):
        picks.append(int(np.nanargmax(mag)))
    if np.any(np.isfinite(badness)):
        picks.append(int(np.nanargmax(badness)))
    picks.append(len(mu) // 2)
    picks = sorted(set(picks))[:3]
    t_idx = _pick_indices(len(temps), MAX_T_LINES)
    fig, axes = _figure(len(picks))
    h = rc.h
    hx = np.linspace(0, h.max() * 1.05, 100)
    y_label = axis_label(rc.attrs, rc.name)
    for ax, m in zip(axes, picks):
        for n, t in enumerate(t_idx):
            color = f"C{n % 10}"
            vals = f["stack"][:, comp, m, t]
            ax.plot(h, vals, "o-", color=color, label=_coord_text(temps[t], t_attrs, "T"))
            c, err, p = f["value"][comp, m, t], f["error"][comp, m, t], f["order"][comp, m, t]
            meth = f["method"][comp, m, t]
            if np.isfinite(c):
                ax.errorbar([0.0], [c], yerr=[err if np.isfinite(err) else 0.0], fmt="s", color=color,
                            capsize=3, mfc="white")
                if meth in (FITTED, CLIPPED, ASSUMED) and np.isfinite(p):
                    a = (vals[-1] - c) / h[-1] ** p
                    ax.plot(hx, c + a * hx**p, ":", color=color, lw=1)
        ax.set_xlabel(f"k-grid spacing h [{spacing_units}]")
        ax.set_ylabel(y_label)
        ax.set_xlim(left=-0.03 * h.max())
        ax.set_title(f"{labels[comp] or rc.name}, " + _coord_text(mu[m], mu_attrs, "μ"), fontsize=10)
        sci_y(ax)
    axes[0].legend(fontsize=8, title="squares: h → 0 extrapolation", title_fontsize=7)
    fig.suptitle(f"{rc.name}: grid convergence", fontsize=11)
    save_once(fig, path, DPI)
    return fig


def plot_vs_mu(rc: ResponseConvergence, mu_attrs: dict, t_attrs: dict, path: Path, grid_text: str = ""):
    """Finest-grid value vs μ for the largest components, one line per T, band = error bar (returns the saved figure)."""
    labels, f = rc.flat()
    ranked = _ranked_components(f["finest"])
    comps = ranked[:MAX_COMPONENT_PANELS]
    mu, temps = np.asarray(rc.coords["mu"], float), np.asarray(rc.coords["T"], float)
    t_idx = _pick_indices(len(temps), MAX_T_LINES)
    fig, axes = _figure(len(comps))
    for ax, comp in zip(axes, comps):
        for n, t in enumerate(t_idx):
            color = f"C{n % 10}"
            y, err = f["finest"][comp, :, t], f["error"][comp, :, t]
            style = "o-" if len(mu) < 12 else "-"
            ax.plot(mu, y, style, color=color, ms=3, label=_coord_text(temps[t], t_attrs, "T"))
            e = np.where(np.isfinite(err), err, 0.0)
            ax.fill_between(mu, y - e, y + e, color=color, alpha=0.25, lw=0)
            bad = f["verdict"][comp, :, t] == NOT_CONVERGED
            if np.any(bad):
                ax.plot(mu[bad], y[bad], "x", color="red", ms=5)
        ax.set_xlabel(axis_label(mu_attrs, "μ"))
        ax.set_ylabel(axis_label(rc.attrs, rc.name))
        ax.set_title(labels[comp] or rc.name, fontsize=10)
        ax.axhline(0, color="0.6", lw=0.5)
        sci_y(ax)
    axes[0].legend(fontsize=8, title="band: error bar; red ×: not converged", title_fontsize=7)
    fig.suptitle(f"{rc.name} vs μ (finest grid{', ' + grid_text if grid_text else ''})", fontsize=11)
    save_once(fig, path, DPI)
    return fig


def plot_vs_t(rc: ResponseConvergence, mu_attrs: dict, t_attrs: dict, path: Path):
    """Finest-grid value vs T for the largest component at up to four μ, with error bars (returns the saved figure)."""
    labels, f = rc.flat()
    comp = _ranked_components(f["finest"])[0]
    mu, temps = np.asarray(rc.coords["mu"], float), np.asarray(rc.coords["T"], float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mag = np.nanmax(np.abs(f["finest"][comp]), axis=1)
    picks = sorted(set(([int(np.nanargmax(mag))] if np.any(np.isfinite(mag)) else []) + _pick_indices(len(mu), 3)))[:4]
    fig, axes = _figure(1, width=6.0, height=4.0)
    ax = axes[0]
    for n, m in enumerate(picks):
        y, err = f["finest"][comp, m, :], f["error"][comp, m, :]
        ax.errorbar(temps, y, yerr=np.where(np.isfinite(err), err, 0.0), fmt="o-", ms=3, capsize=2,
                    color=f"C{n}", label=_coord_text(mu[m], mu_attrs, "μ"))
    ax.set_xlabel(axis_label(t_attrs, "T"))
    ax.set_ylabel(axis_label(rc.attrs, rc.name))
    ax.set_title(f"{rc.name} {labels[comp]} vs T (finest grid)", fontsize=10)
    sci_y(ax)
    ax.legend(fontsize=8)
    save_once(fig, path, DPI)
    return fig


def grid_needed(rc: ResponseConvergence, stores: list[GridStore]) -> pd.DataFrame:
    """Per temperature: the k-points of the first grid from which on every significant entry of the response
    at that T (|value| ≥ 1e-3 of the largest; symmetry zeros are noise) lies within its tolerance of the
    extrapolated value (NaN: none of the grids) — how the needed density grows as T falls."""
    labels, f = rc.flat()
    stack, value, tol = f["stack"], f["value"], f["tolerance"]  # (n_sizes, n_comp, n_mu, n_T), (n_comp, …)
    n_points = np.array([s.n_kpoints for s in stores], float)
    rows = []
    for t, temp in enumerate(np.asarray(rc.coords["T"], float)):
        v = value[:, :, t]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            significant = np.isfinite(v) & (np.abs(v) >= 1e-3 * np.nanmax(np.abs(v)))
        ok = np.abs(stack[:, :, :, t] - v[None]) <= tol[None, :, :, t]
        ok = ok[:, significant]
        good = [s for s in range(len(stores)) if significant.any() and ok[s:].all()]
        rows.append({"response": rc.name, "T": temp, "n_points_needed": n_points[good[0]] if good else np.nan,
                     "n_points_finest": n_points[-1]})
    return pd.DataFrame(rows)


def make_plots(results: list[ResponseConvergence], stores: list[GridStore], out: Path) -> list[Path]:
    finest = stores[-1]
    mu_attrs, t_attrs = dict(finest.ds["mu"].attrs), dict(finest.ds["T"].attrs)
    size_text = ("×".join(str(s) for s in finest.grid_sizes) + " k-points") if finest.grid_sizes else ""

    written = []
    for rc in results:
        try:
            if len(rc.h) > 1:
                p = out / f"conv_{rc.name}.png"
                plot_convergence(rc, mu_attrs, t_attrs, p, finest.spacing_units)
                written.append(p)
            p = out / f"mu_{rc.name}.png"
            plot_vs_mu(rc, mu_attrs, t_attrs, p, size_text)
            written.append(p)
            if len(rc.coords["T"]) >= 3:
                p = out / f"T_{rc.name}.png"
                plot_vs_t(rc, mu_attrs, t_attrs, p)
                written.append(p)
        except Exception:  # a plot must never lose the numbers already written
            log.exception("plotting %s failed", rc.name)
    return written


# --------------------------------------------------------------------------- stage


def convergence_meta(name: str, stores: list[GridStore], rtol: float, atol: float,
                     atol_fraction: float = ATOL_FRACTION) -> dict:
    """Global attrs of a convergence store: study, model, tolerances, extrapolation method, grids."""
    ref = stores[-1].ds
    return {
        **io.cf_attrs("convergence", name),
        "study": name,
        "model": ref.attrs.get("model", ""),
        "model_hash": ref.attrs.get("model_hash", ""),
        "unit_system": ref.attrs.get("unit_system", ""),
        "rtol": rtol,
        "atol": atol,
        "atol_fraction": atol_fraction,
        "order_range": [P_MIN, P_MAX],
        "extrapolation": "Richardson on the two finest grids with the order observed on the three finest "
                         "(assumed 2 with two grids); error = 1.25|c - v_finest| + spread of alternative "
                         "extrapolations (3 |c - v_finest| with an assumed order); see qgtflow.convergence",
        "grid_sizes": [list(s.grid_sizes) for s in stores],
        "source_stores": [s.path for s in stores],
    }


def atol_fraction(study) -> float:
    """Entries below this fraction of their response's largest |value| count as zero (study key
    ``convergence.atol_fraction``; default 1e-6): raise it where symmetry zeros carry grid noise."""
    conv = (getattr(study, "config", None) or {}).get("convergence", {}) or {}
    return float(conv.get("atol_fraction", ATOL_FRACTION))


def _tolerances(study) -> tuple[float, float]:
    conv = (getattr(study, "config", None) or {}).get("convergence", {}) or {}
    return float(conv.get("rtol", 0.01)), float(conv.get("atol", 0.0))


def unplanned_fingerprint(rtol: float, atol: float, fraction: float, upstream: dict) -> str:
    """Fingerprint of a convergence store made without a plan: its tolerances and the fingerprints of the
    responses stores it read ({path: fingerprint}, :func:`check_upstream`)."""
    from qgtflow.plan import fingerprint

    return fingerprint("convergence", {"convergence": {"rtol": rtol, "atol": atol, "atol_fraction": fraction},
                                       "upstream": upstream})


def check_upstream(response_stores: list[str], job: dict | None) -> dict:
    """The responses stores' fingerprints, refused (one line naming the store and both fingerprints)
    unless each is one of the job's expected ones (``job["upstream"]``, from the plan)."""
    from qgtflow import io

    found = {}
    for path in response_stores:
        fp = io.store_attrs(path).get(io.FINGERPRINT) if Path(path, "zarr.json").is_file() else None
        if job is not None and fp not in job["upstream"].values():
            raise StoreError(f"store {path} has fingerprint {fp!r}, expected one of "
                             f"{sorted(job['upstream'].values())} (made from other inputs or code; rerun its stage)")
        found[str(path)] = fp
    return found


def run(study, response_stores: list[str], out_dir: str, *, plots: bool = True, job: dict | None = None) -> None:
    """Convergence analysis of one study (``study``: a :class:`qgtflow.study.Study`, or any object
    with ``name`` and ``config['convergence']``) from its responses stores, into ``out_dir``.

    ``job``: the job's inputs from the plan (:func:`qgtflow.plan.job_inputs`: the responses stores'
    expected fingerprints, this store's); without it the stores are taken as they are and the
    fingerprint covers their fingerprints and the tolerances.
    ``plots=False`` skips the PNGs (the zarr store and CSV are always written)."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rtol, atol = _tolerances(study)
    upstream = check_upstream(list(response_stores), job)
    stores = load_stores(list(response_stores))
    ref = stores[-1].ds
    name = getattr(study, "name", None) or ref.attrs.get("study", "study")
    if ref.attrs.get("study") not in (None, name):
        log.warning("study %r reads stores of study %r", name, ref.attrs.get("study"))
    log.info("study %s: %d grid densities, h = %s", name, len(stores), [f"{s.spacing:.4g}" for s in stores])
    if len(stores) == 1:
        log.warning("study %s: one grid density only, every verdict is 'insufficient data'", name)

    fraction = atol_fraction(study)
    cut = window_cut(stores)
    results = [analyse_response(stores, r, rtol, atol, fraction, cut) for r in response_names(stores)]
    if not results:
        raise StoreError(f"no response variables with dims (mu, T) in {stores[-1].path}")
    zeros = {str(k): [str(c) for c in v] for k, v in ((job or {}).get("symmetry_zeros") or {}).items()}
    zeros = {k: v for k, v in zeros.items() if k in {rc.name for rc in results}}
    table, residuals = mark_symmetry_zeros(to_table(results, stores, name), zeros)
    ds = to_dataset(results, stores, convergence_meta(name, stores, rtol, atol, fraction))
    ds = ds.assign(symmetry_residual_variables(results, zeros))
    ds.attrs["symmetry_zero_components"] = json.dumps(zeros, sort_keys=True)
    ds.attrs[FINGERPRINT] = job["fingerprint"] if job is not None else unplanned_fingerprint(rtol, atol, fraction,
                                                                                             upstream)
    store = out / "convergence.zarr"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        io.write_dataset(ds, store)  # only over a store of ours; checksummed, flagged complete when written
    table.drop(columns=["symmetry_residual"]).to_csv(out / "convergence.csv", index=False, float_format="%.10g")
    (out / "symmetry_residuals.csv").unlink(missing_ok=True)
    if not residuals.empty:
        residuals.to_csv(out / "symmetry_residuals.csv", index=False, float_format="%.10g")
        log.info("study %s: symmetry zeros %s, largest relative residual %.2g", name, zeros,
                 float(residuals["relative"].max()))
    needed = pd.concat([grid_needed(rc, stores) for rc in results], ignore_index=True)
    needed.insert(0, "study", name)
    needed.to_csv(out / "grid_needed.csv", index=False, float_format="%.10g")
    if plots:
        make_plots(results, stores, out)
    counts = table["verdict"].value_counts().to_dict()
    log.info("study %s: verdicts %s", name, counts)
