"""003's in-gap β^(0) against the k·p window in the report: the massive-Dirac studies' in-gap levels of
spin_beta_nl_tau0 (003 Eq. 14) relative to the infinite-window −μ_B e²/(240πΔ²), beside the window tail
0.938 (Δ/vK)³ of a square window [−K, K]² (docs/AMBIGUITIES-notes.md 003.A, tests/test_beta0_window.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qgtflow.report.stores import conv_error, finest_store, open_store

LEVEL_COEFFICIENT = -1.0 / (240.0 * np.pi)  # in-gap β^(0)_zxx = c μ_B e²/Δ² at an infinite window (003.A)
TAIL_COEFFICIENT = 0.938  # the square window misses 0.938 (Δ/vK)³ of it, O((Δ/vK)⁵) besides (003.A)
COMPONENT = {"quantity": "magnetization_muB", "spin": "z", "i": "x", "j": "x"}


def infinite_window_level(study_cfg: dict, units: str) -> float:
    """−μ_B e²/(240πΔ²) of a massive-Dirac study (Δ = its ``mass``) in the store's ``units``."""
    from qgtflow.units import parse_unit_system, unit_registry

    mass = float(((study_cfg.get("model") or {}).get("params") or {})["mass"])
    energy = parse_unit_system(study_cfg.get("units")).energy_unit
    ureg = unit_registry()
    return float(ureg.Quantity(LEVEL_COEFFICIENT / mass ** 2, f"e2 {energy}-2").to(units).magnitude)


def window_ratio(study_cfg: dict) -> float:
    """v K/Δ of a massive-Dirac study's square window (K: its smallest kmax)."""
    params = (study_cfg.get("model") or {}).get("params") or {}
    return float(np.min(study_cfg["kgrid"]["kmax"])) * float(params["v"]) / float(params["mass"])


def beta0_window_figure(fig_cfg: dict, studies: dict, results_dir: Path,
                        out_png: Path) -> tuple[bool, list[str], str]:
    """In-gap β^(0)_zxx / β∞ − 1 of each listed massive-Dirac study (at ``select`` μ, default 0, and T, default the
    first) against v·kmax/Δ, log–log, with the tail law and a K⁻³ Richardson step on the two largest windows."""
    from matplotlib.figure import Figure

    select = {"mu": 0.0, **dict(fig_cfg.get("select") or {})}
    notes, points = [], []
    for name in fig_cfg.get("studies") or []:
        if name not in studies:
            notes.append(f"study '{name}' is not configured")
            continue
        cfg = studies[name]
        if (cfg.get("model") or {}).get("name") != "massive_dirac":
            notes.append(f"study '{name}': not a massive_dirac study")
            continue
        store, note = finest_store(results_dir, name, cfg)
        notes += [note] if note else []
        if store is None:
            continue
        da = open_store(store)["spin_beta_nl_tau0"].sel(COMPONENT)
        da = da.sel({d: v for d, v in select.items() if d in da.dims}, method="nearest").squeeze()
        level = float(da.values)
        beta_inf = infinite_window_level(cfg, str(da.attrs["units"]))
        err = conv_error(results_dir, name, "spin_beta_nl_tau0",
                         {**COMPONENT, "mu": float(da["mu"]), "T": float(da["T"])})
        err = float(np.nanmax(err)) if err is not None and np.size(err) else np.nan
        points.append((window_ratio(cfg), level, beta_inf, err, name, float(da["mu"])))
    if not points:
        return False, notes, ""
    points.sort()
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    x = np.geomspace(min(1.5, points[0][0]), max(12.0, points[-1][0]), 100)
    ax.plot(x, TAIL_COEFFICIENT * x ** -3.0, ":", color="0.4", label="0.938 (Δ/vK)³ (tail of a square window)")
    for n, (ratio, level, beta_inf, err, name, mu) in enumerate(points):
        excess = level / beta_inf - 1.0
        ax.errorbar([ratio], [excess], yerr=None if not np.isfinite(err) else [abs(err / beta_inf)], fmt="o",
                    color=f"C{n}", capsize=3, label=f"{name} (μ = {mu:g}): {100 * excess:+.2f} %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("v K / Δ (half-width K of the k·p window)")
    ax.set_ylabel("in-gap β^(0)_zxx / (−μ_B e²/(240πΔ²)) − 1")
    ax.legend(fontsize=8)
    ax.set_title(fig_cfg.get("title") or "003 Eq. 14: in-gap β^(0)_zxx vs the k·p window", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    detail = ("relative excess of the in-gap level over the infinite-window −μ_B e²/(240πΔ²): "
              + "; ".join(f"{p[4]} at vK/Δ = {p[0]:.3g}: {100 * (p[1] / p[2] - 1):+.2f} % "
                          f"(asymptotic tail {100 * TAIL_COEFFICIENT * p[0] ** -3:.2f} %)" for p in points))
    if len(points) >= 2:
        (k1, b1, inf1, *_), (k2, b2, inf2, *_) = points[-2], points[-1]
        if np.isclose(inf1, inf2):  # the same Δ: a K⁻³ Richardson step on the two largest windows
            richardson = (k2 ** 3 * b2 - k1 ** 3 * b1) / (k2 ** 3 - k1 ** 3)
            detail += f"; K⁻³ Richardson step on the two largest: {100 * (richardson / inf2 - 1):+.2f} %"
    return True, notes, detail + ("; caveat: the in-gap level of 003 Fig. 1(b) depends on the k·p window "
                                  "(the Fermi-surface part β(μ) − β(gap) does not)")
