"""Built-in models of the seed papers (CATALOG names and parameters).

Parameters are plain numbers in the study's model units (physical default: eV and nm, so a
velocity parameter ``v`` means ħv in eV·nm).
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.polynomial import PolynomialModel
from qgtflow.models.tight_binding import TightBindingModel

PAULI = {
    "0": np.eye(2, dtype=complex),
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def massive_dirac(v=1.0, mass=0.1, kmax=None):
    """000 Eq. 19: H = v (kx σx + ky σy) + mass σz (v means ħv)."""
    terms = {(1, 0): v * PAULI["x"], (0, 1): v * PAULI["y"], (0, 0): mass * PAULI["z"]}
    return PolynomialModel("massive_dirac", 2, terms, params=dict(v=v, mass=mass), kmax=kmax or _default_kmax(v, mass))


def tilted_dirac(v=1.0, tilt=0.3, mass=0.1, kmax=None):
    """H = tilt·kx + v (kx σx + ky σy) + mass σz (CATALOG; the Berry-curvature-dipole workhorse)."""
    terms = {(1, 0): v * PAULI["x"] + tilt * PAULI["0"], (0, 1): v * PAULI["y"], (0, 0): mass * PAULI["z"]}
    return PolynomialModel("tilted_dirac", 2, terms, params=dict(v=v, tilt=tilt, mass=mass),
                           kmax=kmax or _default_kmax(v, mass))


def pt_toy_4band(v=1.0, m=0.1, b=1.0, t=0.5, kmax=None):
    """001 Eq. 20: v τx (kx σx + ky σy) + (m − b k²) τz + t kx τz, basis τ ⊗ σ; PT-symmetric."""
    tx = np.kron(PAULI["x"], PAULI["x"])
    ty = np.kron(PAULI["x"], PAULI["y"])
    tz = np.kron(PAULI["z"], PAULI["0"])
    terms = {(1, 0): v * tx + t * tz, (0, 1): v * ty, (0, 0): m * tz, (2, 0): -b * tz, (0, 2): -b * tz}
    return PolynomialModel("pt_toy_4band", 2, terms, params=dict(v=v, m=m, b=b, t=t), kmax=kmax or 2.0)


def haldane(t1=1.0, t2=0.1, phi=np.pi / 2, mass=0.0, a=1.0):
    """Haldane (1988) honeycomb model: NN hopping t1, complex NNN hopping t2 e^{±iφ}, sublattice mass ±mass.

    Lattice a1 = a(1, 0), a2 = a(1/2, √3/2); A at 0, B at (a1 + a2)/3. Chern number ±1 when
    |mass| < 3√3 |t2 sin φ|.
    """
    lattice = a * np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    positions = np.array([[0.0, 0.0], [1 / 3, 1 / 3]])
    hops = []
    # nearest neighbours: B in cells R with R + (1/3,1/3) adjacent to A at origin
    for R in [(0, 0), (-1, 0), (0, -1)]:
        hops.append((R, 0, 1, t1))
        hops.append((tuple(-r for r in R), 1, 0, t1))
    # next-nearest neighbours: A→A and B→B along a1, a2 - a1, -a2 (counter-clockwise loop for A)
    for R in [(1, 0), (-1, 1), (0, -1)]:
        neg = tuple(-r for r in R)
        hops.append((R, 0, 0, t2 * np.exp(1j * phi)))
        hops.append((neg, 0, 0, t2 * np.exp(-1j * phi)))
        hops.append((R, 1, 1, t2 * np.exp(-1j * phi)))
        hops.append((neg, 1, 1, t2 * np.exp(1j * phi)))
    return TightBindingModel("haldane", lattice, positions, hops, onsite=[mass, -mass],
                             params=dict(t1=t1, t2=t2, phi=phi, mass=mass, a=a))


def _default_kmax(v, mass):
    """Window half-width where the Dirac bands reach ~10 |mass| (or 1 in model units)."""
    scale = 10 * abs(mass) / abs(v) if v and mass else 1.0
    return float(max(scale, 1e-12))


BUILTIN_MODELS = {
    "massive_dirac": massive_dirac,
    "tilted_dirac": tilted_dirac,
    "pt_toy_4band": pt_toy_4band,
    "haldane": haldane,
}


def build_model(name: str, params: dict | None = None):
    """Build a built-in model by CATALOG name; unknown names and parameters are refused."""
    import inspect

    if name not in BUILTIN_MODELS:
        raise ModelError(f"unknown model '{name}'; built-in models are: {', '.join(sorted(BUILTIN_MODELS))}")
    builder = BUILTIN_MODELS[name]
    allowed = list(inspect.signature(builder).parameters)
    params = dict(params or {})
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ModelError(f"model '{name}': unknown parameter(s) {unknown}; valid parameters are {allowed}")
    for key, val in params.items():
        if val is None and key == "kmax":
            continue
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not np.isfinite(val):
            raise ModelError(f"model '{name}': parameter '{key}' = {val!r}; expected a finite number")
    model = builder(**params)
    model.validate()
    return model
