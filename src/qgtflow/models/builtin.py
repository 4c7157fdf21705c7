"""Built-in models of the seed papers (CATALOG names and parameters).

Parameters are plain numbers in the study's model units (physical default: eV and nm, so a
velocity parameter ``v`` means ħv in eV·nm).
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.polynomial import PolynomialModel
from qgtflow.models.sectors import SectorModel
from qgtflow.models.tight_binding import TightBindingModel
from qgtflow.units import HBAR_EV_S

PAULI = {
    "0": np.eye(2, dtype=complex),
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def _spin_pauli() -> np.ndarray:
    return np.stack([PAULI["x"], PAULI["y"], PAULI["z"]])


def massive_dirac(v=1.0, mass=0.1, kmax=None):
    """000 Eq. 19, 003: H = v (kx σx + ky σy) + mass σz (v means ħv); σ doubles as the spin operator (003)."""
    terms = {(1, 0): v * PAULI["x"], (0, 1): v * PAULI["y"], (0, 0): mass * PAULI["z"]}
    model = PolynomialModel("massive_dirac", 2, terms, params=dict(v=v, mass=mass), kmax=kmax or _default_kmax(v, mass))
    model.spin = _spin_pauli()
    return model


def tilted_dirac(v=1.0, tilt=0.3, mass=0.1, kmax=None):
    """H = tilt·kx + v (kx σx + ky σy) + mass σz (CATALOG; the Berry-curvature-dipole workhorse)."""
    terms = {(1, 0): v * PAULI["x"] + tilt * PAULI["0"], (0, 1): v * PAULI["y"], (0, 0): mass * PAULI["z"]}
    return PolynomialModel("tilted_dirac", 2, terms, params=dict(v=v, tilt=tilt, mass=mass),
                           kmax=kmax or _default_kmax(v, mass))


def warped_dirac(v=1.0, alpha=1.0, beta=0.5, mass=0.1, kmax=None):
    """000 appendix (Eqs. 29–32): H = v [kx(1 + α kx) σx + ky(1 + β ky) σy] + mass σz (v means ħv, α, β in
    model length).

    The appendix names no model; this h is the one whose quantum-metric quadrupole densities are Eqs. 29, 31
    and 32 (with k̃ = k/k_F, α̃ = α k_F, M̃ = M/(ħ v k_F)); Eq. 30 as printed is not (docs/AMBIGUITIES-notes.md,
    000.A). h_x vanishes at kx = 0 and −1/α, h_y at ky = 0 and −1/β: four gapped Dirac points, mirror images
    under kx → −1/α − kx and ky → −1/β − ky, so a Fermi-surface window must reach −1/α and −1/β (the default
    kmax does, with 10 mass/v to spare). α ≠ β breaks the kx ↔ ky symmetry that would make a_z(xy) vanish.
    """
    terms = {(1, 0): v * PAULI["x"], (2, 0): v * alpha * PAULI["x"], (0, 1): v * PAULI["y"],
             (0, 2): v * beta * PAULI["y"], (0, 0): mass * PAULI["z"]}
    if kmax is None:
        reach = max([1.0 / abs(c) for c in (alpha, beta) if c] or [0.0])
        kmax = reach + _default_kmax(v, mass)
    return PolynomialModel("warped_dirac", 2, terms, params=dict(v=v, alpha=alpha, beta=beta, mass=mass), kmax=kmax)


def pt_toy_4band(v=1.0, m=0.1, b=1.0, t=0.5, kmax=None):
    """001 Eq. 20: v τx (kx σx + ky σy) + (m − b k²) τz + t kx τz, basis τ ⊗ σ; PT-symmetric."""
    tx = np.kron(PAULI["x"], PAULI["x"])
    ty = np.kron(PAULI["x"], PAULI["y"])
    tz = np.kron(PAULI["z"], PAULI["0"])
    terms = {(1, 0): v * tx + t * tz, (0, 1): v * ty, (0, 0): m * tz, (2, 0): -b * tz, (0, 2): -b * tz}
    return PolynomialModel("pt_toy_4band", 2, terms, params=dict(v=v, m=m, b=b, t=t), kmax=kmax or 2.0)


def ndd_two_valley(v=1.0, vprime=float(np.sqrt(1.9)), delta=1.0, delta2=2.0, m=1.0, kmax=4.0):
    """002 Eq. 14, two valleys i = 1, 2 (sectors), τ_i = ±1, v'_1 = −v'_2 = vprime:

    H_i = v'_i kz + v τ_i kx σx + v ky σy + (Δ_i + kz²/(2m)) σz.

    Defaults are 002 Fig. 4 in natural units: Δ_1 = Δ = 1, Δ_2 = 2Δ, m v'²/2 = 0.95Δ (m = 1), equal m and
    v in both valleys (AMBIGUITIES 002.3); the global gap is then 0.1Δ.
    """
    sectors = []
    for label, tau, dlt, vp in (("1", 1.0, delta, vprime), ("2", -1.0, delta2, -vprime)):
        terms = {(1, 0, 0): tau * v * PAULI["x"], (0, 1, 0): v * PAULI["y"], (0, 0, 0): dlt * PAULI["z"],
                 (0, 0, 1): vp * PAULI["0"], (0, 0, 2): PAULI["z"] / (2 * m)}
        sectors.append((label, PolynomialModel(f"ndd_two_valley[{label}]", 3, terms, kmax=kmax,
                                               params=dict(v=v, vprime=vp, delta=dlt, m=m, tau=tau))))
    return SectorModel("ndd_two_valley", sectors,
                       params=dict(v=v, vprime=vprime, delta=delta, delta2=delta2, m=m, kmax=kmax))


_V_1E5 = HBAR_EV_S * 1e5 * 1e9  # ħ·(1e5 m/s) in eV·nm


def snte_surface_dirac(vx=_V_1E5, vy=_V_1E5, beta=0.010, alpha=0.1 * _V_1E5, kmax=None):
    """003: SnTe-surface tilted Dirac cones, valleys s = ±1 (sectors), σ the spin operator:

    H_s = vx kx σy − s vy ky σx + β σz + s α ky   (v, α mean ħv, ħα in eV·nm; β in eV).
    Defaults are 003 Fig. 1(a): vx = vy = 1e5 m/s, β = 10 meV, α = 0.1 vx.
    """
    kmax = kmax or _default_kmax(min(vx, vy), beta)
    sectors = []
    for label, sgn in (("+1", 1.0), ("-1", -1.0)):
        terms = {(1, 0): vx * PAULI["y"], (0, 1): -sgn * vy * PAULI["x"] + sgn * alpha * PAULI["0"],
                 (0, 0): beta * PAULI["z"]}
        sector = PolynomialModel(f"snte_surface_dirac[s={label}]", 2, terms, kmax=kmax,
                                 params=dict(vx=vx, vy=vy, beta=beta, alpha=alpha, s=sgn))
        sector.spin = _spin_pauli()
        sectors.append((f"s={label}", sector))
    return SectorModel("snte_surface_dirac", sectors, params=dict(vx=vx, vy=vy, beta=beta, alpha=alpha, kmax=kmax))


BILAYER_LAMBDA_M2_S = 1.754e-3  # AMBIGUITIES 004.1: the printed "1.754e-1 m/s" read as ħ/(2·0.033 m_e) in m²/s


def bilayer_graphene_gapped(v_t=_V_1E5, lam=HBAR_EV_S * BILAYER_LAMBDA_M2_S * 1e18, delta=0.05, g_s=1.0, kmax=0.5):
    """004 Eq. 8: gapped bilayer graphene, valleys s = ±1 (sectors), σ = sublattice:

    H_s = (s v_t kx − λ(kx² − ky²)) σx + (v_t ky + 2 s λ kx ky) σy + Δ σz
    (v_t, λ mean ħv_t in eV·nm and ħλ in eV·nm²). Defaults are 004 Fig. 1: v_t = 1e5 m/s,
    λ = 1.754e-3 m²/s (AMBIGUITIES 004.1), Δ = 50 meV; g_s (spin degeneracy, AMBIGUITIES 004.2)
    weights both valleys in response sums.
    """
    sectors = []
    for label, sgn in (("+1", 1.0), ("-1", -1.0)):
        terms = {(1, 0): sgn * v_t * PAULI["x"], (0, 1): v_t * PAULI["y"], (0, 0): delta * PAULI["z"],
                 (2, 0): -lam * PAULI["x"], (0, 2): lam * PAULI["x"], (1, 1): 2 * sgn * lam * PAULI["y"]}
        sectors.append((f"s={label}", PolynomialModel(f"bilayer_graphene_gapped[s={label}]", 2, terms, kmax=kmax,
                                                      params=dict(v_t=v_t, lam=lam, delta=delta, s=sgn))))
    return SectorModel("bilayer_graphene_gapped", sectors, weights=[g_s, g_s],
                       params=dict(v_t=v_t, lam=lam, delta=delta, g_s=g_s, kmax=kmax))


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
    "warped_dirac": warped_dirac,
    "pt_toy_4band": pt_toy_4band,
    "ndd_two_valley": ndd_two_valley,
    "snte_surface_dirac": snte_surface_dirac,
    "bilayer_graphene_gapped": bilayer_graphene_gapped,
    "haldane": haldane,
}


def build_model(name: str, params: dict | None = None, validate: bool = True):
    """Build a built-in model by CATALOG name; unknown names and parameters are refused (``validate=False``: without
    :meth:`~qgtflow.models.base.Model.validate`, see :func:`qgtflow.models.config.model_from_config`)."""
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
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not np.isfinite(float(val)):
            raise ModelError(f"model '{name}': parameter '{key}' = {val!r}; expected a finite number")
    model = builder(**params)
    if validate:
        model.validate()
    return model
