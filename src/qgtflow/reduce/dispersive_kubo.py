"""002's multi-band Kubo responses, made by the shells stage on the study's grid and labelled in reduce.

* ``sigma_nonlocal`` — σ_ijk(ω) = ∂σ_ij(ω, q)/∂q_k of 002 Eq. 2 from the exact Eq. 11 (reduce/nonlocal_kubo.py),
  parts ``interband`` / ``intraband`` (dim ``band_part``; the intraband one is the Fermi-surface Drude-like term that
  002 Eq. 12 does not contain).
* ``ndd_delta_n_kubo`` — 002 Eq. 4 of it, Δn = ½ icμ0 [σ_xxz(ω) − σ*_xxz(−ω*)], per part; its interband part is
  002 Eq. 12 (``ndd_delta_n``) for two-band sectors, any number of bands and degeneracies here.

The shells product ``kubo_nonlocal`` holds σ_ijq at +ω and −ω (same η) in model units (e = ħ = 1,
[length]^(3−d)) for the q directions the requested responses read (dim ``q``: ``z`` alone for ``ndd_delta_n_kubo``,
every axis for ``sigma_nonlocal``); it reads ω, η and those directions through the plan value ``kubo_inputs``
(qgtflow.plan), so an ω edit reruns only the shells jobs of studies with a Kubo response, and adding
``sigma_nonlocal`` to a Δn study reruns its shells job (a Richardson q-derivative per direction: ~1/d of the work
per direction).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from qgtflow.errors import ConfigError
from qgtflow.reduce import nonlocal_kubo
from qgtflow.units import C_LIGHT, E_CHARGE, HBAR, MU_0, NATURAL_LENGTH, format_si_units

RESPONSES = ("sigma_nonlocal", "ndd_delta_n_kubo")
SIGNS = ("plus", "minus")  # σ at ω + iη and at −ω + iη
CHUNK = 2048
SIGMA_FORMULA = ("002 Eq. 11 (projector traces, velocity vertex at k − q/2, ω → ω + iη) at q = ±h, ±2h along k, "
                 "Richardson-extrapolated to σ_ijk = ∂σ_ij/∂q_k of 002 Eq. 2")
DELTA_N_FORMULA = "002 Eq. 4: Δn = ½icμ0[σ_xxz(ω) − σ*_xxz(−ω*)], σ_xxz from 002 Eq. 11 (sigma_nonlocal)"


def check(cfg: dict, model, units, key: str, as_array) -> None:
    """A 3D model (propagation along z) for Δn, T > 0 (point sampling cannot differentiate a step in f_{k−q});
    refused before any compute (η > 0 is the schema's, its presence the calculator's ``needs``)."""
    names = [r for r in cfg["responses"] if r in RESPONSES]
    if "ndd_delta_n_kubo" in names and model.dim != 3:
        raise ConfigError(f"{key}responses", "ndd_delta_n_kubo", f"a 3D model (light along z; this model is "
                          f"{model.dim}D)")
    temperature = as_array(cfg["temperature"], f"{key}temperature")
    if np.any(temperature <= 0):
        raise ConfigError(f"{key}temperature", cfg["temperature"], f"temperatures > 0 for {names} (q-differences "
                          "of the T = 0 step occupation are not sampled by points)")


# the q directions (axis letters) each response reads from the shells product: Δn is 002 Eq. 4's σ_xxz (light along z)
Q_READ = {"sigma_nonlocal": None, "ndd_delta_n_kubo": ("z",)}  # None: every axis of the model


def q_directions(responses, dim: int) -> list[str]:
    """The q directions (in AXES order) the requested Kubo ``responses`` read on a ``dim``-D model."""
    axes = nonlocal_kubo.AXES[:dim]
    read = {a for r in responses if r in Q_READ for a in (Q_READ[r] or axes)}
    return [a for a in axes if a in read]


def plan_value(study) -> dict | None:
    """The plan value ``kubo_inputs``: {omega, broadening, q} for a study with a Kubo response, else None."""
    if not any(r in RESPONSES for r in study.responses):
        return None
    return {"omega": [float(w) for w in study.omega], "broadening": float(study.broadening),
            "q": q_directions(study.responses, study.model.dim)}


def shell_product(study, grid, inputs: dict) -> dict:
    """Shells product ``kubo_nonlocal``: σ_ijq at ±ω (sign, part, omega, complex_part, mu, T, i, j, q) for the q
    directions ``inputs["q"]`` only (the plan value ``kubo_inputs``)."""
    omega = np.asarray(inputs["omega"], float)
    eta = float(inputs["broadening"])
    directions = list(inputs["q"])
    axes = [nonlocal_kubo.AXES.index(a) for a in directions]
    mu, kT = np.asarray(study.mu, float), np.array([study.units.kT(t) for t in study.temperature])
    model = study.model
    chunks = [(lo, min(lo + CHUNK, grid.n_points)) for lo in range(0, grid.n_points, CHUNK)]
    h = min(nonlocal_kubo.step_size(model, grid.points(lo, hi), eta, kT) for lo, hi in chunks)
    total = 0.0
    for lo, hi in chunks:
        k = grid.points(lo, hi)
        total = total + nonlocal_kubo.sigma_tensor(model, k, np.full(len(k), grid.weight), mu, kT,
                                                   np.concatenate([omega, -omega]), eta, h,
                                                   threshold=study.degeneracy_threshold, axes=axes)
    W = omega.size
    values = np.stack([total[:, :W], total[:, W:]])  # (sign, part, W, μ, T, i, j, q)
    values = np.stack([values.real, values.imag], axis=3)
    dims = ("sign", "band_part", "omega", "complex_part", "mu", "T", "i", "j", "q")
    q = ("q", directions, {"long_name": "direction l of the q-derivative σ_ijl = ∂σ_ij/∂q_l"})
    return {"kubo_sigma": xr.DataArray(values, dims=dims, coords={"q": q}, attrs={
        "units": study.units.model_units(0, 3 - grid.dim), "long_name": "σ_ijq at ±ω (model units, e = ħ = 1)",
        "formula": SIGMA_FORMULA, "broadening": eta, "q_step": h, "signs": list(SIGNS)})}


def _sigma(shells, sign: str, q) -> np.ndarray:
    """σ at ``sign``·ω for the q directions ``q`` (axis letters, in that order): (part, W, μ, T, i, j, q)."""
    v = shells["kubo_sigma"].isel(sign=SIGNS.index(sign)).sel(q=list(q))
    v = v.transpose("band_part", "omega", "complex_part", "mu", "T", "i", "j", "q").values
    return v[:, :, 0] + 1j * v[:, :, 1]


def _attrs(shells, formula: str) -> dict:
    src = shells["kubo_sigma"].attrs
    return {"formula": formula, "form": "Kubo pair sum (exact Eq. 11 at ±q, Richardson in q)",
            "broadening": src["broadening"], "q_step": src["q_step"], "time_convention": "e^{-iωt} (002)"}


def sigma_nonlocal(study, shells: xr.Dataset) -> xr.Variable:
    """σ_ijk(ω) (band_part, omega, complex_part, mu, T, i, j, k): e²/ħ [length]^(3−d) (S m^(3−d) in physical units)."""
    d = shells["kubo_sigma"].sizes["i"]
    sigma = _sigma(shells, "plus", nonlocal_kubo.AXES[:d])
    if study.units.natural:
        scale, units = 1.0, format_si_units({"e": 2, "hbar": -1, NATURAL_LENGTH: 3 - d})
    else:
        scale, units = E_CHARGE ** 2 / HBAR * study.units.length_si ** (3 - d), format_si_units({"S": 1, "m": 3 - d})
    values = scale * np.stack([sigma.real, sigma.imag], axis=2)
    return xr.Variable(("band_part", "omega", "complex_part", "mu", "T", "i", "j", "k"), values, {
        "units": units, "long_name": "spatially dispersive conductivity σ_ijk(ω) = ∂σ_ij/∂q_k (multi-band Kubo)",
        **_attrs(shells, SIGMA_FORMULA)})


def ndd_delta_n_kubo(study, shells: xr.Dataset) -> xr.Variable:
    """Δn (band_part, complex_part, omega, mu, T): dimensionless in 3D (units e²cμ0/ħ [length]^(3−d) natural)."""
    x = 0
    plus, minus = (_sigma(shells, s, "z")[..., x, x, 0] for s in SIGNS)
    dn = nonlocal_kubo.delta_n(plus, minus)  # units e²cμ0/ħ
    d = shells["kubo_sigma"].sizes["i"]
    if study.units.natural:
        scale, units = 1.0, format_si_units({"e": 2, "c": 1, "mu_0": 1, "hbar": -1, NATURAL_LENGTH: 3 - d})
    else:
        scale = E_CHARGE ** 2 * C_LIGHT * MU_0 / HBAR * study.units.length_si ** (3 - d)
        units = format_si_units({"m": 3 - d})
    values = scale * np.stack([dn.real, dn.imag], axis=1)
    return xr.Variable(("band_part", "complex_part", "omega", "mu", "T"), values, {
        "units": units, "long_name": "nonreciprocal directional dichroism Δn from the multi-band Kubo σ_xxz",
        **_attrs(shells, DELTA_N_FORMULA)})


def extra_coords(dims) -> dict:
    """Coordinates of the dim these responses add (``band_part``)."""
    return {"band_part": ("band_part", list(nonlocal_kubo.PARTS))} if "band_part" in dims else {}
