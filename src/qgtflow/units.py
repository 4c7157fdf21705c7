"""Physical constants and unit systems.

All prefactors of the response formulas are assembled here from :mod:`scipy.constants`, so
that one file decides every conversion (habit taken from WannierBerri's ``factors.py``).

Internally every model is evaluated in its *model units*: energies in ``energy_unit``,
lengths in ``length_unit`` (k in inverse length units), with ħ absorbed into velocities,
i.e. the stored "velocity" is ∂ε/∂k (energy × length). Responses are then converted either
to SI or left in natural units (e = ħ = k_B = 1, energies and lengths in model units).
"""

from __future__ import annotations

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
    def label(self) -> str:
        if self.natural:
            return "natural (e = hbar = k_B = 1; energies and lengths in model units)"
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


def format_si_units(powers: dict[str, int]) -> str:
    """Render {'A': 1, 'V': -2, 'm': 1} as 'A m V-2' (CF/udunits-style exponents)."""
    parts = []
    for sym, p in powers.items():
        if p == 0:
            continue
        parts.append(sym if p == 1 else f"{sym}{p}")
    return " ".join(parts) if parts else "1"
