"""Physical constants and unit systems.

All prefactors of the response formulas are assembled here from :mod:`scipy.constants`, so
that one file decides every conversion (habit taken from WannierBerri's ``factors.py``).

Internally every model is evaluated in its *model units*: energies in ``energy_unit``,
lengths in ``length_unit`` (k in inverse length units), with ħ absorbed into velocities,
i.e. the stored "velocity" is ∂ε/∂k (energy × length). Responses are then converted either
to SI or left in natural units (e = ħ = k_B = 1, energies and lengths in model units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import constants as sc

E_CHARGE = sc.e  # C
HBAR = sc.hbar  # J s
K_B = sc.k  # J / K
EV = sc.e  # J per eV
MU_B = sc.physical_constants["Bohr magneton"][0]  # J / T
HBAR_EV_S = HBAR / EV  # ħ in eV s: a velocity v in m/s is ħv = HBAR_EV_S·v·1e9 eV·nm
MU_0 = sc.mu_0  # vacuum permeability, N / A²
C_LIGHT = sc.c  # m / s
Z0 = sc.physical_constants["characteristic impedance of vacuum"][0]  # Ω

_ENERGY_UNITS = {"eV": EV, "meV": 1e-3 * EV}
_LENGTH_UNITS = {"nm": 1e-9, "angstrom": 1e-10, "m": 1.0, "um": 1e-6}


@dataclass(frozen=True)
class UnitSystem:
    """How model numbers map to SI.

    ``natural``: e = ħ = k_B = 1; energies, lengths, T in model units, τ in ħ/energy.
    physical: energies in ``energy`` (eV, meV), lengths in ``length`` (nm, angstrom, m, um),
    temperature in kelvin and τ in seconds.
    """

    natural: bool = False
    energy: str = "eV"
    length: str = "nm"

    @property
    def energy_si(self) -> float:
        """Joules per model energy unit (1 in natural units)."""
        return 1.0 if self.natural else _ENERGY_UNITS[self.energy]

    @property
    def length_si(self) -> float:
        """Metres per model length unit (1 in natural units)."""
        return 1.0 if self.natural else _LENGTH_UNITS[self.length]

    def kT(self, temperature: float) -> float:
        """k_B T in model energy units (T in K, or already an energy in natural units)."""
        if self.natural:
            return float(temperature)
        return K_B * float(temperature) / self.energy_si

    def tau_model(self, tau: float) -> float:
        """τ in units of ħ / (model energy): the dimensionless τ·ε/ħ scale used internally."""
        if self.natural:
            return float(tau)
        return float(tau) * self.energy_si / HBAR

    @property
    def energy_unit(self) -> str:
        """Unit string of a model energy (mu, omega, eigenvalues): ``eV``/``meV``, or ``model_energy``."""
        return NATURAL_ENERGY if self.natural else self.energy

    @property
    def length_unit(self) -> str:
        """Unit string of a model length (k is in its inverse): ``nm``/..., or ``model_length``."""
        return NATURAL_LENGTH if self.natural else self.length

    @property
    def temperature_unit(self) -> str:
        """T in K, or as an energy (k_B = 1) in natural units."""
        return NATURAL_ENERGY if self.natural else "K"

    def model_units(self, energy_power: int, length_power: int) -> str:
        """'eV nm2'-style unit string of energy^a length^b in the model's units."""
        return format_si_units({self.energy_unit: energy_power, self.length_unit: length_power})

    @property
    def label(self) -> str:
        if self.natural:
            return (f"natural (e = hbar = k_B = 1; energies in {NATURAL_ENERGY}, lengths in {NATURAL_LENGTH}, "
                    "the model's own units)")
        return f"SI (model energies in {self.energy}, lengths in {self.length}, T in K, tau in s)"


def parse_unit_system(spec) -> UnitSystem:
    """Build a :class:`UnitSystem` from a study's ``units`` entry (validated by the schema)."""
    if spec in (None, "physical"):
        return UnitSystem()
    if spec == "natural":
        return UnitSystem(natural=True)
    if isinstance(spec, dict):
        return UnitSystem(natural=False, energy=spec.get("energy", "eV"), length=spec.get("length", "nm"))
    raise ValueError(spec)


# ---- unit strings readable by pint (UDUNITS style through cf_xarray.units; see unit_registry) -----------------

# Natural units (e = ħ = k_B = 1): energies and lengths stay in the model's own, unnamed units. They are two
# units qgtflow registers with pint (each its own dimension, no SI value), so a natural-unit output reads e.g.
# 'e2 hbar-1 model_length-1': e and ħ are the real constants, and its SI value follows from the model's units.
NATURAL_ENERGY = "model_energy"
NATURAL_LENGTH = "model_length"
UNIT_DEFINITIONS = (
    f"{NATURAL_ENERGY} = [model_energy]",  # the energy unit of a natural-unit model
    f"{NATURAL_LENGTH} = [model_length]",  # its length unit
    # cf_xarray aliases C to degree Celsius, which turns pint's e (defined in C) and so eV and meV in compound
    # units into temperatures ('eV nm' -> K kg m3 A-1 s-3); the elementary charge restated in coulomb repairs that
    "elementary_charge = 1.602176634e-19 coulomb = e",
)
E2_OVER_H = E_CHARGE ** 2 / sc.h  # S: the conductance quantum e²/h of Hall conductivities


def natural_units(e_power: int, hbar_power: int, energy_power: int, length_power: int) -> str:
    """Unit string of a natural-unit output, e^a ħ^b E^c L^d with E, L the model's energy and length units."""
    return format_si_units({"e": e_power, "hbar": hbar_power, NATURAL_ENERGY: energy_power,
                            NATURAL_LENGTH: length_power})


def natural_si_attrs(e_power: int, hbar_power: int, units_si: str) -> dict:
    """attrs of a natural-unit output e^a ħ^b E^c L^d: the SI unit it becomes and the factor e^a ħ^b (SI), so that
    value × si_factor × (model energy / J)^c × (model length / m)^d is its value in ``units_si``."""
    return {"units_si": units_si, "si_factor": float(E_CHARGE ** e_power * HBAR ** hbar_power)}


def e2_over_h_attrs(units: "UnitSystem", dim: int) -> dict:
    """attrs giving a Hall conductivity (S m^(2−d) in SI, e²/ħ L^(2−d) in natural units) in units of e²/h:
    value × e2_over_h_factor is in e2_over_h_units."""
    length = units.length_unit if units.natural else "m"
    factor = 2 * math.pi if units.natural else 1.0 / E2_OVER_H  # e²/ħ = 2π e²/h
    return {"e2_over_h_factor": factor,
            "e2_over_h_units": format_si_units({"e": 2, "planck_constant": -1, length: 2 - dim})}


def unit_registry():
    """The pint registry of cf_xarray (UDUNITS-style strings such as 'A m V-2'), with qgtflow's unit
    definitions (:data:`UNIT_DEFINITIONS`) added once: every store's ``units`` attrs parse with it, e.g.
    ``open_store(p).pint.quantify(unit_registry=unit_registry())`` (pint-xarray)."""
    import logging

    import cf_xarray.units

    ureg = cf_xarray.units.units
    if NATURAL_ENERGY not in ureg:
        quiet = logging.getLogger("pint.util")
        level, quiet.level = quiet.level, logging.ERROR  # the e redefinition is on purpose
        try:
            for line in UNIT_DEFINITIONS:
                ureg.define(line)
        finally:
            quiet.setLevel(level)
    return ureg


def format_si_units(powers: dict[str, int]) -> str:
    """Render {'A': 1, 'V': -2, 'm': 1} as 'A m V-2' (CF/udunits-style exponents)."""
    parts = []
    for sym, p in powers.items():
        if p == 0:
            continue
        parts.append(sym if p == 1 else f"{sym}{p}")
    return " ".join(parts) if parts else "1"
