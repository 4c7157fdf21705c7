"""004 electro-optics assembled in the reduce stage: the skew-scattering Pockels tensor and thin-film observables.

* ``pockels_skew`` (004 Eq. 6): S^(1), S^(2) from :mod:`qgtflow.reduce.skew` (third-order Born rate of
  AMBIGUITIES 004.5; the model is diagonalised only at Fermi-shell k-points of the study's grid), which the
  shells stage stores (``shells.zarr``), combined here at the study's ω and τ; e^{+iωt} convention
  (AMBIGUITIES 004.4).
* Thin-film observables of a 2D sheet (004 Fig. 2, 3; SI S49, S52) from the study's ``sigma_optical``,
  Pockels tensor (``pockels_bcd`` + ``pockels_skew``, those requested) and ``kerr_snap``, for DC fields
  ``electro_optics.e_dc`` (V/m) along ``electro_optics.direction`` and light polarised at
  ``electro_optics.incident_angle`` to x: ``reflection``, ``transmission`` (Jones matrices),
  ``polarization_rotation`` (major-axis rotation and ellipticity of the transmitted / reflected beams),
  ``delta_t_over_t`` and ``delta_r_over_r`` (with the Pockels-only and Kerr-only shares).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from qgtflow.errors import ConfigError
from qgtflow.reduce import thin_film
from qgtflow.reduce.responses import AXES, COMPLEX_PARTS, THIN_FILM, TIME_CONVENTION_004
from qgtflow.units import E_CHARGE, HBAR, format_si_units, natural_si_attrs, natural_units

__all__ = ["pockels_skew", "check_pockels_skew", "thin_film_variables", "check_thin_film", "extra_coords"]

SHARES = ["total", "pockels", "kerr"]

SKEW_FORMULA = ("004 Eq. 6: P^(skew)_αβγ = (e³/ħ²){τ_ω³ S^(1)_αγβ + τ_ω τ² S^(1)_αβγ + τ_ω²(τ_ω + τ) S^(2)_αβγ}, "
                "S^(1) = −(1/ħ) Σ_k ∂_αε ∂_β Σ_k′ w^A_kk′ ∂_γf0(k′), S^(2) = −(1/ħ) Σ_k ∂_αε Σ_k′ w^A_kk′ ∂_β∂_γf0(k′); "
                "w^A: third-order Born rate of δ-correlated impurities (AMBIGUITIES 004.5), intravalley, evaluated with "
                "energy-shell projector matrices and linear-tetrahedron δ weights (reduce/skew.py)")


def _omega_tau(study) -> tuple[np.ndarray, float]:
    """(ω, τ) in the output unit system: rad/s and s (physical), model units (natural)."""
    omega = np.asarray(study.omega, float)
    if study.units.natural:
        return omega, float(study.tau)
    return omega * study.units.energy_si / HBAR, float(study.tau)


def check_pockels_skew(cfg: dict, model, units, key: str, as_array) -> None:
    """What pockels_skew needs, refused before any compute."""
    if model.dim not in (2, 3):
        raise ConfigError(f"{key}responses", "pockels_skew", f"a 2D or 3D model (this model is {model.dim}D)")
    if cfg.get("impurities") is None:
        raise ConfigError(f"{key}impurities", None, "{density: n_i [length^-d], potential: V0 [energy length^d]} "
                          "in model units for pockels_skew (004: n_i = 1e9 cm^-2 = 1e-5 nm^-2, V0 = 1e-13 eV cm^2 "
                          "= 10 eV nm^2)")
    if cfg.get("omega") is None:
        raise ConfigError(f"{key}omega", None, "photon energies hbar*omega (model energy units) for pockels_skew")


def check_thin_film(cfg: dict, model, units, key: str, as_array) -> None:
    """What the thin-film observables need (a 2D sheet, e_dc, σ0, K and a Pockels tensor), refused before any
    compute; normalises ``electro_optics.e_dc`` to a list."""
    responses = cfg["responses"]
    film = [r for r in responses if r in THIN_FILM]
    if units.natural or model.dim != 2:
        raise ConfigError(f"{key}responses", film[0], "a 2D model in physical units (sheet conductances in S)")
    if cfg.get("electro_optics") is None:
        raise ConfigError(f"{key}electro_optics", None, f"{{e_dc: [V/m, ...]}} for {film}")
    cfg["electro_optics"]["e_dc"] = as_array(cfg["electro_optics"]["e_dc"], f"{key}electro_optics.e_dc").tolist()
    needed = [r for r in ("sigma_optical", "kerr_snap") if r not in responses]
    if needed or not {"pockels_bcd", "pockels_skew"} & set(responses):
        raise ConfigError(f"{key}responses", film[0], "sigma_optical, kerr_snap and pockels_skew and/or "
                          f"pockels_bcd in the same study (missing: {needed or ['a Pockels tensor']})")


S_FORMULA = ("004 Eq. 6 with w^A of AMBIGUITIES 004.5 (third-order Born, δ-correlated impurities), energy-shell "
             "projector matrices with linear-triangle/tetrahedron δ weights (reduce/skew.py); ħ = 1")
BORN_FORMULA = "004 text under Eq. 4: 1/τ = 1/<1/τ_k>, 1/τ_k = Σ_k' w^S (1 − cos θ), w^S = 2π n_i V0² |<u|u'>|² δ"


def _shell_axes(study):
    return np.asarray(study.mu, float), np.array([study.units.kT(t) for t in study.temperature])


def skew_shell_product(study, grid) -> dict:
    """Shells product ``skew``: S^(1), S^(2) of 004 Eq. 6 (mu, T, i, j, k) in model units, ħ = 1."""
    from qgtflow.reduce import skew

    imp = study.config["impurities"]
    mu, kT = _shell_axes(study)
    out = skew.skew_tensors(study.model, grid, mu, kT, imp["density"], imp["potential"],
                            deg_tol=study.degeneracy_threshold)
    units = study.units.model_units(2, 3 - grid.dim)  # [energy]² [length]^(3−d)
    return {name: xr.Variable(("mu", "T", "i", "j", "k"), np.asarray(out[key]), {
        "units": units, "long_name": f"skew-scattering tensor {what}_αβγ (model units, ħ = 1)", "formula": S_FORMULA})
        for name, key, what in (("skew_s1", "S1", "S^(1)"), ("skew_s2", "S2", "S^(2)"))}


def born_shell_product(study, grid) -> dict:
    """Shells product ``born_tau``: 1/⟨1/τ_k⟩ of the symmetric Born rate at the first μ and T (s; ħ/energy natural)."""
    from qgtflow.reduce import skew

    imp = study.config["impurities"]
    mu, kT = _shell_axes(study)
    born = skew.transport_time(study.model, grid, float(mu[0]), float(kT[0]), imp["density"], imp["potential"],
                               deg_tol=study.degeneracy_threshold)
    natural = study.units.natural
    tau = born["tau"] * (1.0 if natural else HBAR / study.units.energy_si)
    return {"born_transport_time": xr.Variable((), float(tau), {
        "units": format_si_units({"hbar": 1, study.units.energy_unit: -1}) if natural else "s",
        "long_name": "Born transport time 1/<1/tau_k> at the first mu and T", "formula": BORN_FORMULA})}


def pockels_skew(study, shells: xr.Dataset) -> xr.Variable:
    """004 Eq. 6 from the shells store's S^(1), S^(2): dims (omega, complex_part, mu, T, i, j, k)."""
    from qgtflow.reduce import skew

    imp = study.config["impurities"]
    S1 = shells["skew_s1"].transpose("mu", "T", "i", "j", "k").values  # (μ, T, d, d, d): energy² length^(3−d), ħ = 1
    S2 = shells["skew_s2"].transpose("mu", "T", "i", "j", "k").values
    omega, tau = _omega_tau(study)
    d = S1.shape[-1]
    if study.units.natural:
        # P = S τ³ with τ in ħ/E and S in E² L^(3−d): e³ ħ⁻¹ E⁻¹ L^(3−d) (the SI e³/ħ² × S/ħ² × τ³)
        scale, prefactor = 1.0, 1.0
        unit_attrs = {"units": natural_units(3, -1, -1, 3 - d),
                      **natural_si_attrs(3, -1, format_si_units({"S": 1, "m": 3 - d, "V": -1}))}
    else:  # S/ħ² in SI, then e³/ħ² (A·m/V² for a 2D sheet)
        scale = study.units.energy_si ** 2 / HBAR ** 2 * study.units.length_si ** (3 - d)
        prefactor = E_CHARGE ** 3 / HBAR ** 2
        unit_attrs = {"units": format_si_units({"S": 1, "m": 3 - d, "V": -1})}
    P = skew.pockels_skew(scale * S1[None], scale * S2[None], tau, omega[:, None, None, None, None, None],
                          prefactor=prefactor)  # (ω, μ, T, d, d, d)
    values = np.stack([P.real, P.imag], axis=1)
    born_tau = shells["born_transport_time"].values
    return xr.Variable(("omega", "complex_part", "mu", "T", "i", "j", "k"), values, {
        **unit_attrs, "long_name": "skew-scattering Pockels tensor P^(skew)_αβγ(ω)", "formula": SKEW_FORMULA,
        "form": "Fermi surface (energy shells, linear tetrahedron)", "time_convention": TIME_CONVENTION_004,
        "impurity_density": imp["density"], "impurity_potential": imp["potential"],
        "born_transport_time": float(born_tau),
        "born_transport_time_note": "1/<1/tau_k> of the symmetric Born rate at the first mu and T "
                                    "(s in physical units); the response uses the study's tau"})


def _complex(ds: xr.Dataset, name: str) -> np.ndarray:
    """(ω, μ, T, *cart) complex array of an ω-dependent response."""
    v = ds[name].transpose("omega", "complex_part", "mu", "T", ...).values
    return v[:, 0] + 1j * v[:, 1]


def thin_film_variables(study, ds: xr.Dataset, names=None) -> dict[str, xr.Variable]:
    """The thin-film observables ``names`` (default: those the study requests) of a 2D sheet from the responses in
    ``ds`` (SI units)."""
    requested = [r for r in THIN_FILM if r in (study.responses if names is None else names)]
    if not requested:
        return {}
    cfg = study.config["electro_optics"]
    e_dc = np.asarray(cfg["e_dc"], float)
    direction = np.array([1.0, 0.0]) if cfg.get("direction", "y") == "x" else np.array([0.0, 1.0])
    E_vec = e_dc[:, None] * direction  # (E, 2)
    angles = np.atleast_1d(np.asarray(cfg.get("incident_angle", np.pi / 4), float))
    sigma0_base = _complex(ds, "sigma_optical")[None]  # (1, ω, μ, T, 2, 2)
    pockels = sum(_complex(ds, p) for p in ("pockels_bcd", "pockels_skew") if p in ds)
    pockels = None if np.isscalar(pockels) else pockels[None]
    kerr = _complex(ds, "kerr_snap")[None] if "kerr_snap" in ds else None
    E = E_vec[:, None, None, None, :]  # (E, 1, 1, 1, 2)
    sigma = thin_film.field_induced_conductivity(sigma0_base, pockels, kerr, E)
    sigma0 = np.broadcast_to(sigma0_base, sigma.shape)
    dims = ("incident_angle", "e_dc", "omega", "mu", "T")
    common = {"time_convention": TIME_CONVENTION_004, "e_dc_direction": cfg.get("direction", "y"),
              "sheet": "conducting sheet in vacuum, normal incidence (004 SI Sec. 2)"}
    per_angle = lambda fn: np.stack([fn(a) for a in angles])  # noqa: E731
    out = {}
    r, t = thin_film.sheet_reflection_transmission(sigma)
    for name, m, eq in (("reflection", r, "S49"), ("transmission", t, "S52")):
        if name in requested:
            values = np.stack([m.real, m.imag], axis=4)  # (E, ω, μ, T, part, 2, 2)
            values = np.moveaxis(values, 4, 2)
            out[name] = xr.Variable(("e_dc", "omega", "complex_part", "mu", "T", "i", "j"), values, {
                "units": "1", "long_name": f"{name} Jones matrix of the sheet in the DC field",
                "formula": f"004 SI Eq. {eq} with σ = σ^(0)(ω) + P·E + K·E·E (004 Eq. 1; general σ_xy ≠ σ_yx)",
                **common})
    if "polarization_rotation" in requested:
        def rotation(a):
            rot = thin_film.polarization_rotation(sigma0, sigma, a)
            return np.stack([np.stack([rot.dtheta_t, rot.ellipticity_t]), np.stack([rot.dtheta_r, rot.ellipticity_r])])
        values = np.moveaxis(per_angle(rotation), 0, 2)  # (beam, beam_quantity, angle, E, ω, μ, T)
        out["polarization_rotation"] = xr.Variable(("beam", "beam_quantity") + dims, values, {
            "units": "1", "units_note": "beam_quantity rotation: Δθ in rad (= 1); ellipticity: tan χ",
            "long_name": "field-induced rotation of the polarization major axis and ellipticity",
            "formula": "004 Fig. 2: Δθ = θ(t̄(σ)E_i) − θ(t̄(σ0)E_i) (and r̄), S49, S52", **common})
    for name, observable, label in (("delta_t_over_t", thin_film.transmittance_change, "ΔT/T0"),
                                    ("delta_r_over_r", thin_film.reflectance_change, "ΔR/R0")):
        if name in requested:
            def shares(a, observable=observable):
                split = thin_film.pockels_kerr_split(observable, sigma0_base, pockels, kerr, E, angle=a)
                return np.stack([np.broadcast_to(split[s], sigma.shape[:4]) for s in SHARES])
            values = np.moveaxis(per_angle(shares), 0, 1)  # (share, angle, E, ω, μ, T)
            out[name] = xr.Variable(("share",) + dims, values, {
                "units": "1", "long_name": f"{label}: field-induced change of the {'transmittance' if 'T' in label else 'reflectance'}",
                "formula": f"004 Fig. 3: {label} with T = |t̄E_i|², R = |r̄E_i|² (S49, S52); shares: Pockels only "
                           "(K = 0), Kerr only (P = 0)", **common})
    return out


def extra_coords(ds_vars: dict, study) -> dict:
    """Coordinates of the electro-optic dims present in ``ds_vars``."""
    coords = {}
    dims = {d for v in ds_vars.values() for d in v.dims}
    if "complex_part" in dims:
        coords["complex_part"] = ("complex_part", COMPLEX_PARTS)
    for d in ("i", "j", "k"):  # Cartesian labels, also when no binned response of that rank supplies them
        if d in dims:
            coords[d] = (d, list(AXES[:study.model.dim]))
    if "incident_angle" in dims:
        angles = np.atleast_1d(np.asarray(study.config["electro_optics"].get("incident_angle", np.pi / 4), float))
        coords["incident_angle"] = ("incident_angle", angles.tolist(),
                                    {"long_name": "incident linear polarization angle to x", "units": "rad"})
    if "e_dc" in dims:
        coords["e_dc"] = ("e_dc", list(map(float, study.config["electro_optics"]["e_dc"])),
                          {"long_name": "DC electric field", "units": "V m-1"})
    if "beam" in dims:
        coords["beam"] = ("beam", ["transmitted", "reflected"])
    if "beam_quantity" in dims:
        coords["beam_quantity"] = ("beam_quantity", ["rotation", "ellipticity"])
    if "share" in dims:
        coords["share"] = ("share", SHARES)
    return coords
