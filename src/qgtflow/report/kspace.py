"""000 Fig. 1 of the report: k-space densities of the quantum-metric quadrupole of a study's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
        "quantum_metric_quadrupole_density"][:, 0]  # band 0 ([a, b, c, e] = ∂_c∂esc g^ab)
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
