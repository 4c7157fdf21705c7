"""000 Fig. 1 of the report: k-space densities of the quantum-metric quadrupole, from a study's bands store."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ife_density_figure(fig_cfg: dict, studies: dict, results_dir: Path,
                       out_png: Path) -> tuple[bool, list[str], str]:
    """000 Fig. 1: k-space densities ε_{zνδ} ∂_α∂_ν g_δβ for (α, β) = xx, xy, yx, yy of band 0 of a study.

    Reads the exact quadrupole density on the k-map plane of the study's bands store (the bands stage stores it
    when the study's responses read the quadrupole or the Christoffel symbols); ``kmax`` crops the window.
    """
    from matplotlib.colors import SymLogNorm
    from matplotlib.figure import Figure

    from qgtflow.report.bands import open_bands

    name = fig_cfg.get("study") or (fig_cfg.get("studies") or [None])[0]
    if name not in studies:
        return False, [f"study '{name}' is not configured"], ""
    ds = open_bands(Path(results_dir), name)
    if "kmap_quantum_metric_quadrupole_density" not in ds:
        return False, [f"study '{name}': its bands store has no quadrupole k-map (its responses read neither the "
                       "quadrupole nor the Christoffel symbols)"], ""
    if ds.sizes["axis"] != 2:
        return False, [f"study '{name}': the density figure needs a 2D model"], ""
    quad = ds["kmap_quantum_metric_quadrupole_density"].isel(band=0).values  # (u, v, a, b, c, e) = ∂_c∂_e g^ab
    # ε_{zνδ} ∂_α∂_ν g_δβ = ∂_α∂_x g_yβ − ∂_α∂_y g_xβ
    density = {(a, b): quad[:, :, 1, b, a, 0] - quad[:, :, 0, b, a, 1] for a in range(2) for b in range(2)}
    kx, ky = ds["kmap_kx"].values, ds["kmap_ky"].values
    kmax = fig_cfg.get("kmax")
    inside = np.ones(kx.shape, bool) if not kmax else (np.abs(kx) <= kmax) & (np.abs(ky) <= kmax)
    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 2)
    vmax = max(float(np.nanmax(np.abs(v[inside]))) for v in density.values()) or 1.0
    norm = SymLogNorm(linthresh=vmax * 1e-4, vmin=-vmax, vmax=vmax)
    for (a, b), values in density.items():
        ax = axes[a, b]
        im = ax.pcolormesh(kx, ky, values, cmap="RdBu_r", norm=norm, shading="auto")
        if kmax:
            ax.set_xlim(-kmax, kmax)
            ax.set_ylim(-kmax, kmax)
        ax.set_title(f"(α, β) = ({'xy'[a]}, {'xy'[b]})", fontsize=9)
        ax.set_xlabel("k_x")
        ax.set_ylabel("k_y")
        ax.set_aspect("equal")
    fig.colorbar(im, ax=axes, shrink=0.8, label="ε_zνδ ∂_α∂_ν g_δβ (symlog)")
    fig.suptitle(fig_cfg.get("title") or f"{name}: quantum-metric quadrupole densities", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    n = ds.sizes["ku"]
    return True, [], (f"study {name} ({ds.attrs.get('model', '')}), band 0, bands store k-map of {n}² points"
                      + (f", |k_a| ≤ {kmax:g}" if kmax else ""))
