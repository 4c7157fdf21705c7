"""004's figures in the report (Fig. 1–3 panels) from the stores of a 004 study."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qgtflow.report.stores import conv_error, finest_store, omega_tau, open_store


EO_PANELS = ("fig1a", "fig1b", "fig2", "fig3a", "fig3b", "table1")
# 004 Table 1, skew-scattering Pockels and Snap Kerr at ωτ > 1: (variable, component, label, Re exponent, Im exponent)
FREQUENCY_LAWS = (("pockels_skew", dict(i="x", j="x", k="y"), "P", -2.0, -1.0),
                  ("kerr_snap", dict(i="x", j="x", k="x", l="x"), "K1", -4.0, -1.0))


def electro_optics_figure(fig_cfg: dict, studies: dict, results_dir: Path, out_png: Path):
    """004 Fig. 1–3 from one study's finest responses store (``panel``: fig1a, fig1b, fig2, fig3a, fig3b).

    fig1a: Re/Im P^skew (= P_xxy, 004 Eq. 9) and σ^(0)_xx vs ωτ; fig1b: Snap Kerr K1 = K_xxxx, K2 = K_xxyy vs ωτ;
    fig2: polarization rotation of transmitted / reflected light vs E_dc at ωτ ≈ 1, 2, 5 (first incident angle);
    fig3a: ΔT/T0, ΔR/R0 (%) vs ωτ at E_dc ≈ ``e_dc`` (V/m, default −1e4) with the Pockels / Kerr shares;
    fig3b: the same vs E_dc at ωτ ≈ ``omega_tau`` (default 5). Fig. 3 uses the last incident angle;
    table1: 004 Table 1's frequency laws, |Re|, |Im| of P and K1 vs ωτ on log–log axes with the guide lines.
    """
    from matplotlib.figure import Figure

    panel = fig_cfg.get("panel")
    if panel not in EO_PANELS:
        return False, [f"panel {panel!r}: expected one of {list(EO_PANELS)}"], ""
    name = fig_cfg.get("study") or (fig_cfg.get("studies") or [None])[0]
    if name not in studies:
        return False, [f"study '{name}' is not configured"], ""
    store, note = finest_store(results_dir, name, studies[name])
    notes = [note] if note else []
    if store is None:
        return False, notes, ""
    ds = open_store(store).isel(mu=0, T=0)
    wt = omega_tau(ds)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()

    def cplx(var, **sel):
        da = ds[var].sel(sel)
        return da.sel(complex_part="real").values + 1j * da.sel(complex_part="imag").values

    if panel == "table1":
        detail = _frequency_laws(ax, ds, wt, name, notes)
    elif panel in ("fig1a", "fig1b"):
        if panel == "fig1a":
            curves = [("pockels_skew", dict(i="x", j="x", k="y"), "P", ax)]
            twin = ax.twinx()
            s0 = cplx("sigma_optical", i="x", j="x")
            twin.plot(wt, s0.real, color="0.5", lw=1.2, label="Re σ0")
            twin.plot(wt, s0.imag, color="0.5", ls="--", lw=1.2, label="Im σ0")
            twin.set_ylabel(f"σ0 [{ds['sigma_optical'].attrs.get('units', '')}]")
            twin.legend(fontsize=8, loc="lower right")
        else:
            twin = ax.twinx()
            curves = [("kerr_snap", dict(i="x", j="x", k="x", l="x"), "K1", ax),
                      ("kerr_snap", dict(i="x", j="x", k="y", l="y"), "K2", twin)]
            twin.set_ylabel(f"K2 [{ds['kerr_snap'].attrs.get('units', '')}]")
        for n, (var, comp, label, axis) in enumerate(curves):
            if var not in ds:
                notes.append(f"study '{name}': no '{var}'")
                continue
            v = cplx(var, **comp)
            err = conv_error(results_dir, name, var, {**comp, "mu": float(ds.mu), "T": float(ds.T)})
            for part, values, style in (("real", v.real, "-"), ("imag", v.imag, "--")):
                e = None
                if err is not None and err.ndim >= 2:
                    e = err[:, 0 if part == "real" else 1] if err.shape[0] == wt.size else None
                axis.errorbar(wt, values, yerr=e, fmt=style, color=("C3" if part == "real" else "C0")
                              if n == 0 else ("C1" if part == "real" else "C2"), capsize=2,
                              label=f"{'Re' if part == 'real' else 'Im'} {label}")
        ax.set_xlabel("ωτ")
        ax.set_xscale("log")
        ax.set_ylabel(f"{curves[0][2]} [{ds[curves[0][0]].attrs.get('units', '')}]")
        ax.legend(fontsize=8, loc="upper right")
        detail = f"{name} at μ = {float(ds.mu):g}, T = {float(ds.T):g}; 004 time convention e^(+iωt)"
    elif panel == "fig2":
        rot = ds["polarization_rotation"].isel(incident_angle=0)
        e_um = np.asarray(ds["e_dc"].values, float) * 1e-6  # V/μm
        axes = [ax, ax.twinx()]
        for target, style in zip((1.0, 2.0, 5.0), ("-", "--", ":")):
            w = int(np.argmin(np.abs(wt - target)))
            for b, (beam, color) in enumerate((("transmitted", "C0"), ("reflected", "C2"))):
                y = np.degrees(rot.sel(beam=beam, beam_quantity="rotation").isel(omega=w).values)
                axes[b].plot(e_um, y, style, color=color, label=f"{beam}, ωτ = {wt[w]:.2g}")
        ax.set_xlabel("E_dc [V/μm]")
        ax.set_ylabel("Δθ transmitted [deg]")
        axes[1].set_ylabel("Δθ reflected [deg]")
        ax.legend(fontsize=7, loc="upper left")
        axes[1].legend(fontsize=7, loc="lower right")
        detail = (f"{name}: incident polarization {float(ds.incident_angle[0]):.3g} rad to x, E_dc along "
                  f"{ds['polarization_rotation'].attrs.get('e_dc_direction', 'y')}")
    else:
        last = ds.sizes["incident_angle"] - 1
        series = {v: 100 * ds[v].isel(incident_angle=last) for v in ("delta_t_over_t", "delta_r_over_r")}
        if panel == "fig3a":
            e0 = float(fig_cfg.get("e_dc", -1.0e4))
            x, xlabel = wt, "ωτ"
            pick = {"e_dc": e0}
            ax.set_xscale("log")
        else:
            target = float(fig_cfg.get("omega_tau", 5.0))
            x, xlabel = np.asarray(ds["e_dc"].values, float) * 1e-6, "E_dc [V/μm]"
            pick = {"omega": float(ds["omega"].values[int(np.argmin(np.abs(wt - target)))])}
        for var, color in (("delta_t_over_t", "C0"), ("delta_r_over_r", "C2")):
            da = series[var].sel(pick, method="nearest")
            ax.plot(x, da.sel(share="total").values, "-", color=color, label=f"{var} total")
            ax.plot(x, da.sel(share="pockels").values, ":", color=color, label=f"{var} Pockels only")
            ax.plot(x, da.sel(share="kerr").values, "--", color=color, label=f"{var} Kerr only")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("change [% of the field-free value]")
        ax.legend(fontsize=7)
        detail = (f"{name}: incident polarization {float(ds.incident_angle[last]):.3g} rad to x (004 does not state "
                  f"it for Fig. 3), {', '.join(f'{k} ≈ {v:.3g}' for k, v in pick.items())}")
    if panel != "table1":  # log axes there
        ax.axhline(0, color="0.6", lw=0.5)
    ax.set_title(fig_cfg.get("title") or f"004 {panel}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return True, notes, detail


def _frequency_laws(ax, ds, wt: np.ndarray, name: str, notes: list) -> str:
    """004 Table 1 at ωτ > 1: |Re|, |Im| of P (∝ ω⁻², ω⁻¹) and K1 (∝ ω⁻⁴, ω⁻¹) vs ωτ, log–log, each with its guide
    line through the curve's value at the largest ωτ; returns the caption detail with the local exponents there."""
    found = []
    for n, (var, comp, label, *laws) in enumerate(FREQUENCY_LAWS):
        if var not in ds:
            notes.append(f"study '{name}': no '{var}'")
            continue
        da = ds[var].sel(comp)
        for part, law, style in (("real", laws[0], "-"), ("imag", laws[1], "--")):
            y = np.abs(da.sel(complex_part=part).values)
            color = f"C{2 * n + (part == 'imag')}"
            tag = f"{'Re' if part == 'real' else 'Im'} {label}"
            ax.plot(wt, y, style, color=color, lw=1.6, label=f"|{tag}|")
            high = wt >= 1.0
            ax.plot(wt[high], y[-1] * (wt[high] / wt[-1]) ** law, ":", color=color, lw=1.0,
                    label=f"ω^{law:g} (004 Table 1)")
            local = np.log(y[-1] / y[-2]) / np.log(wt[-1] / wt[-2])  # d ln|y| / d ln ωτ at the largest ωτ
            found.append(f"{tag} {local:.2f} (Table 1: {law:g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ωτ")
    ax.set_ylabel(f"|P| [{ds['pockels_skew'].attrs.get('units', '') if 'pockels_skew' in ds else ''}], "
                  f"|K1| [{ds['kerr_snap'].attrs.get('units', '') if 'kerr_snap' in ds else ''}]")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return (f"{name} at μ = {float(ds.mu):g}, T = {float(ds.T):g}; local exponents d ln|·|/d ln ωτ at ωτ = "
            f"{wt[-1]:.3g}: " + "; ".join(found))
