"""002 Eq. 15's magnetoelectric α_xy of the occupations, for two-band sectors with a scalar tilt (``ndd_alpha_sea``).

For a sector H = t(k) + d(k)·σ the tilt t is a scalar: it leaves the states alone and shifts every pair energy,
so the Kubo σ_xxz, σ_xzx of 002 Eq. 11 carry the Fermi-sea term (docs/AMBIGUITIES-notes.md 002.A, e = ħ = 1)

    α_xy(f) = −2 Σ_sectors ∫[dk] ∂_zt g^xx (f_v − f_c)/(ε_c − ε_v),   ∂_zt = (∂_zε_c + ∂_zε_v)/2,

with g^xx the quantum metric of the pair. In the global gap it is 002's α_xy = P_x/B_y = M_y/E_x (−v'χ_xx for
t = v'k_z, claims row 002-eq15-alpha-independent); with μ in a band it is the α(f) of the metallic identity
Im(σ_xxz + σ_xzx)^inter(ω → 0) = −α(f) + γ_xxz + γ_xzx (claims row 002-eq15-metal). A multi-band sector needs the full
Fermi-sea α, not this Doppler form: refused (a two-band sector is the form's whole premise).

Made by the shells stage (product ``alpha_sea``: the model diagonalised on the study's grid, point sampling at the
study's μ and T; T = 0 is the step occupation) and labelled in reduce.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from qgtflow.errors import ConfigError
from qgtflow.models.sectors import sector_blocks
from qgtflow.reduce.occupation import fermi
from qgtflow.units import E_CHARGE, HBAR, NATURAL_LENGTH, format_si_units

NAME = "ndd_alpha_sea"
FORMULA = ("α_xy(f) = −Σ_sectors ∫[dk] (∂_zε_c + ∂_zε_v) g^xx (f_v − f_c)/(ε_c − ε_v) (e = ħ = 1): the Fermi-sea "
           "magnetoelectric coupling of a two-band sector t(k) + d(k)·σ (−v'χ_xx of the occupations for t = v'k_z; "
           "docs/AMBIGUITIES-notes.md 002.A); point sampling")
X, Z = 0, 2
CHUNK = 2048  # k-points per diagonalisation batch


def check(cfg: dict, model, units, key: str, as_array) -> None:
    """A 3D model of two-band sectors (the Doppler form's premise), refused before any compute."""
    if model.dim != 3:
        raise ConfigError(f"{key}responses", NAME, f"a 3D model (α_xy couples x and z; this model is {model.dim}D)")
    bands = sorted({int(block.nbands) for _, block, _ in sector_blocks(model)})
    if bands != [2]:
        raise ConfigError(f"{key}responses", NAME, f"two-band sectors (t + d·σ; this model's sectors have {bands} "
                          "bands: a multi-band α needs the full Fermi-sea form, not the Doppler one)")


def _sector_alpha(block, k, weight, mu, kT) -> np.ndarray:
    """(μ, T) of one two-band sector on k-points ``k`` (N, 3) with weights ``weight`` (N,)."""
    derivatives = block.unique_derivatives(k, order=1)  # (N, 1 + d, 2, 2): H, ∂_aH
    energy, states = np.linalg.eigh(derivatives[:, 0])
    velocity = np.conj(np.swapaxes(states, -1, -2))[:, None] @ derivatives[:, 1:4] @ states[:, None]  # (N, d, 2, 2)
    gap = energy[:, 1] - energy[:, 0]
    g_xx = np.abs(velocity[:, X, 1, 0]) ** 2 / gap ** 2
    tilt2 = velocity[:, Z, 0, 0].real + velocity[:, Z, 1, 1].real  # 2 ∂_zt
    base = weight * tilt2 * g_xx / gap
    out = np.empty((mu.size, kT.size))
    for b, t in enumerate(kT):
        for a, m in enumerate(mu):
            occ = (np.heaviside(m - energy, 0.5) if t == 0 else fermi(energy, m, t))
            out[a, b] = -np.sum(base * (occ[:, 0] - occ[:, 1]))
    return out


def shell_product(study, grid) -> dict:
    """Shells product ``alpha_sea``: α_xy(f) (mu, T) in model units ([length]^(3−d), e = ħ = 1)."""
    mu, kT = np.asarray(study.mu, float), np.array([study.units.kT(t) for t in study.temperature])
    total = np.zeros((mu.size, kT.size))
    for lo in range(0, grid.n_points, CHUNK):
        k = grid.points(lo, min(lo + CHUNK, grid.n_points))
        w = np.full(len(k), grid.weight)
        for _, block, sector_weight in sector_blocks(study.model):
            total += sector_weight * _sector_alpha(block, k, w, mu, kT)
    return {"alpha_sea": xr.Variable(("mu", "T"), total, {
        "units": study.units.model_units(0, 3 - grid.dim), "long_name": "α_xy(f) (model units, e = ħ = 1)",
        "formula": FORMULA})}


def ndd_alpha_sea(study, shells: xr.Dataset) -> xr.Variable:
    """α_xy(f) (mu, T): e²/ħ [length]^(3−d) (S m^(3−d) in physical units), the units of sigma_nonlocal."""
    d = 3
    if study.units.natural:
        scale, units = 1.0, format_si_units({"e": 2, "hbar": -1, NATURAL_LENGTH: 3 - d})
    else:
        scale, units = E_CHARGE ** 2 / HBAR * study.units.length_si ** (3 - d), format_si_units({"S": 1, "m": 3 - d})
    return xr.Variable(("mu", "T"), scale * shells["alpha_sea"].values, {
        "units": units, "long_name": "Fermi-sea magnetoelectric coupling α_xy(f) of 002 Eq. 15 (two-band sectors)",
        "formula": FORMULA, "form": "point sampling of the model on the study's grid (shells stage)"})
