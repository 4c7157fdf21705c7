"""001 Table 1 in the report: the three literature forms (WPD = 001 Eq. 13, LKA, QK) of σ^qm side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qgtflow.report.stores import finest_store, open_store

STYLES = {"wpd": "-", "lka": "--", "qk": ":"}


def qm_variants_figure(fig_cfg: dict, studies: dict, results_dir: Path,
                       out_png: Path) -> tuple[bool, list[str], str]:
    """σ^qm_ijk vs μ of each listed study (one colour) in its three Table 1 variants (one line style), at the
    component ``component`` (default xyy) and ``select`` (e.g. {T: 50.0}), from each finest responses store."""
    from matplotlib.figure import Figure

    component = {"i": "x", "j": "y", "k": "y", **dict(fig_cfg.get("component") or {})}
    select = dict(fig_cfg.get("select") or {})
    notes, drawn, unit, taken_t = [], 0, "", None
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    for n, name in enumerate(fig_cfg.get("studies") or []):
        if name not in studies:
            notes.append(f"study '{name}' is not configured")
            continue
        store, note = finest_store(results_dir, name, studies[name])
        notes += [note] if note else []
        if store is None:
            continue
        ds = open_store(store)
        if "sigma_qm_variant" not in ds:
            notes.append(f"study '{name}' did not compute sigma_qm_variant")
            continue
        da = ds["sigma_qm_variant"].sel({d: v for d, v in component.items() if d in ds["sigma_qm_variant"].dims})
        for dim, value in select.items():
            if dim in da.dims:
                da = da.sel({dim: value}, method="nearest")
        if "T" in da.dims:
            da = da.isel(T=0)
        taken_t = float(da["T"].values) if "T" in da.coords else taken_t
        unit = str(da.attrs.get("units", ""))
        for variant in [str(v) for v in da["variant"].values]:
            ax.plot(da["mu"].values, da.sel(variant=variant).values, STYLES.get(variant, "-"), color=f"C{n}",
                    label=f"{name} {variant.upper()}")
            drawn += 1
    if not drawn:
        return False, notes, ""
    comp = "".join(component[d] for d in ("i", "j", "k"))
    ax.axhline(0.0, color="0.7", lw=0.6)
    ax.set_xlabel("μ")
    ax.set_ylabel(f"σ^qm_{comp} [{unit}]")
    ax.legend(fontsize=7, ncol=max(1, drawn // 6))
    fig.suptitle(fig_cfg.get("title") or f"001 Table 1: σ^qm_{comp}, WPD (−), LKA (--), QK (:)", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    t_text = f" at T = {taken_t:g}" if taken_t is not None and np.isfinite(taken_t) else ""
    return True, notes, f"component {comp}{t_text}; WPD = 001 Eq. 13, LKA and QK per 001 Table 1"
