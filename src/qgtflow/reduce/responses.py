"""Response formulas: integrand (from geometry fields) + occupation order + prefactor + units.

A response is Σ_n ∫[dk] Q_n(k) f0^{(p)}(ε_n) times a prefactor c · e^a ħ^b τ^t. Formulas with a
total derivative have two forms: Fermi sea (p = 0) and Fermi surface (p = 1, integrated by parts
once: ∫ ∂_c X f0 = −∫ X ∂_cε f0'). Field conventions: velocity = ∂ε/∂k (ħ absorbed);
``*_dipole_density[..., a, b, c]`` = ∂_c F^{ab}.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from qgtflow.units import (E_CHARGE, HBAR, e2_over_h_attrs, format_si_units, natural_si_attrs,
                           natural_units)

AXES = ("x", "y", "z")
PHASES = ["cos", "sin"]  # amplitudes of cos ωt and sin ωt in the response to E(t) = E cos ωt
AC_TIME_CONVENTION = ("003 Eq. 7–8: E(t) = E cos ωt; phase 'cos' / 'sin' = amplitude of cos ωt / sin ωt in the "
                      "response (total: the DC term of Eq. 6 times cos ωt plus the displacement terms)")
QM_VARIANTS = {"wpd": (1.0, 0.5), "lka": (2.0, 0.5), "qk": (0.5, 1.0)}  # 001 Table 1: α ∂_i𝒢^jk − β(∂_j𝒢^ik + ∂_k𝒢^ij)


@dataclass(frozen=True)
class Term:
    """One integrand: Q (N, nb, *components) built from fields, times f0^{(order)}."""

    integrand: Callable[[dict], np.ndarray]
    order: int
    energy_power: int  # of Q in model energy units
    length_power: int  # of Q in model length units
    fields: tuple[str, ...]
    coefficient: float = 1.0


@dataclass(frozen=True)
class Response:
    name: str
    long_name: str
    formula: str
    cart_dims: tuple[str, ...]
    forms: dict  # form name -> Term
    e_power: int = 0
    hbar_power: int = 0
    tau_power: int = 0
    si_units: Callable[[int], dict] = field(default=lambda d: {})
    extra_dims: tuple = ()  # e.g. (("variant", [...]),)
    time_convention: str = ""
    attrs: dict = field(default_factory=dict)  # extra output attrs (conventions)
    # frequency-dependent forms (e.g. 003 Eq. 7–8): (omega array, broadening) -> forms, used when a study gives omega;
    # their integrands carry two more axes (omega, phase) after the extra dims
    ac_forms: Callable | None = None
    ac_formula: str = ""
    # 004: the frequency dependence is a factor of static integrals. The integrand carries a leading axis
    # ``omega_part`` (the first extra dim); omega_factor(ωτ (W,)) -> complex (W, parts) combines the parts into a
    # complex response with dims (omega, complex_part) in their place (reduce_stage.response_dataset)
    omega_factor: Callable | None = None
    # optional frequency form that is one complex factor of the whole static response (000 App. B: 1/(1 + iωτ)):
    # omega_scale(ωτ (W,)) -> complex (W,). Without ``omega`` the static response; with it the output gains the dims
    # (omega, complex_part) before the extra dims (reduce_stage.response_dataset), ω = 0 giving the static value
    omega_scale: Callable | None = None
    omega_formula: str = ""
    omega_time_convention: str = ""
    hall: bool = False  # a Hall conductivity: its attrs also give it in units of e²/h (e2_over_h_*)

    def at_frequencies(self, omega, eta: float = 0.0) -> "Response":
        """This response at photon energies ``omega`` (model energy units), or itself when it has no AC form
        or ``omega`` is None. Adds the dims ``omega`` and ``phase`` (amplitudes of cos ωt and sin ωt).
        With an ``omega_scale`` form only the texts change (the reduce stage applies the factor)."""
        if omega is not None and self.omega_scale is not None:
            return replace(self, formula=self.omega_formula, time_convention=self.omega_time_convention)
        if omega is None or self.ac_forms is None:
            return self
        omega = np.asarray(omega, float)
        return replace(self, forms=self.ac_forms(omega, float(eta)), formula=self.ac_formula,
                       extra_dims=self.extra_dims + (("omega", omega.tolist()), ("phase", PHASES)),
                       time_convention=AC_TIME_CONVENTION, ac_forms=None)

    def term_parts(self, form: str) -> tuple[str, tuple[Term, ...]]:
        """(form used, its Terms): a form is one Term or a tuple of Terms of different occupation orders
        (e.g. 003 Eq. 13: Σ∫ (X f0 + Y ∂_bf)), summed with the response's prefactor."""
        if form not in self.forms:
            form = next(iter(self.forms))
        parts = self.forms[form]
        return form, (parts,) if isinstance(parts, Term) else tuple(parts)

    def term(self, form: str) -> tuple[str, Term]:
        """(form used, its first Term) — the whole form for single-Term responses."""
        form, parts = self.term_parts(form)
        return form, parts[0]

    def component_coords(self, dim: int) -> dict:
        coords = {}
        for d in self.cart_dims:
            if d == "spin":  # spin component c of σ^c (003): always x, y, z
                coords[d] = list(AXES)
            elif d == "pseudovector":  # component of Ω_b = ½ ε_bcd Ω^cd: z only in 2D
                coords[d] = ["z"] if dim == 2 else list(AXES[:dim])
            else:
                coords[d] = list(AXES[:dim])
        return coords

    def prefactor(self, units, tau: float, form_term: Term, order: int, dim: int) -> float:
        """Converts Σ∫[dk] Q f^{(order)} (model units) into the output unit system."""
        c = form_term.coefficient
        if units.natural:
            return c * tau ** self.tau_power
        energy_si, length_si = units.energy_si, units.length_si
        scale = energy_si ** (form_term.energy_power - order) * length_si ** (form_term.length_power - dim)
        return c * scale * E_CHARGE ** self.e_power * HBAR ** self.hbar_power * tau ** self.tau_power

    def natural_powers(self, dim: int) -> tuple[int, int, int, int]:
        """(e, ħ, model energy, model length) powers of the natural unit: the SI prefactor of :meth:`prefactor`
        with τ = τ_natural·ħ/E (τ in ħ per model energy), i.e. e^e ħ^(h+t) E^(a−p−t) L^(b−d)."""
        term = self.term_parts(next(iter(self.forms)))[1][0]
        return (self.e_power, self.hbar_power + self.tau_power,
                term.energy_power - term.order - self.tau_power, term.length_power - dim)

    def units(self, units, dim: int) -> str:
        if units.natural:
            return natural_units(*self.natural_powers(dim))
        return format_si_units(self.si_units(dim))

    def unit_attrs(self, units, dim: int) -> dict:
        """``units`` plus, in natural units, the SI unit and factor (:func:`qgtflow.units.natural_si_attrs`)."""
        out = {"units": self.units(units, dim)}
        if units.natural:
            e, hbar, _, _ = self.natural_powers(dim)
            out.update(natural_si_attrs(e, hbar, format_si_units(self.si_units(dim))))
        if self.hall:
            out.update(e2_over_h_attrs(units, dim))
        return out


# ---- integrand helpers (arrays have leading (N, nb)) ------------------------------------------

def _pseudo(curv: np.ndarray) -> np.ndarray:
    """Pseudovector Ω_b = ½ ε_bcd Ω^cd of an antisymmetric (…, d, d) tensor: (…, 1) in 2D, (…, 3) in 3D."""
    d = curv.shape[-1]
    if d == 2:
        return curv[..., 0, 1][..., None]
    if d == 3:
        return np.stack([curv[..., 1, 2], curv[..., 2, 0], curv[..., 0, 1]], axis=-1)
    raise ValueError("Berry-curvature pseudovector needs a 2D or 3D model")


def _pseudo_deriv(dcurv: np.ndarray) -> np.ndarray:
    """∂_a Ω_b from ∂_c Ω^{ab} stored as (…, a, b, c): returns (…, a, b)."""
    moved = np.moveaxis(dcurv, -1, -3)  # (…, c, a, b) → derivative index first
    return _pseudo(moved)


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(…, i) × (…, j) → (…, i, j)."""
    return a[..., :, None] * b[..., None, :]


def _symmetrized_v_times(v: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(∂_iε M_jk + ∂_jε M_ik + ∂_kε M_ij)/3 for a symmetric M: the by-parts ∂³ε integrand."""
    vM = v[..., :, None, None] * M[..., None, :, :]  # [i, j, k] = v_i M_jk
    return (vM + vM.swapaxes(-3, -2) + vM.swapaxes(-3, -1)) / 3.0


def _bcd_surface(curv: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Ω^ij ∂_kε + Ω^ik ∂_jε."""
    t = curv[..., :, :, None] * v[..., None, None, :]  # [i, j, k] = Ω^ij v_k
    return t + t.swapaxes(-2, -1)


def _cached(f: dict, key: str, build):
    """Per-chunk memo inside the fields dict: σ^qm and its variants share their tensors."""
    if key not in f:
        f[key] = build()
    return f[key]


def _qm_parts_sea(f):
    """(∂_i𝒢^jk, ∂_j𝒢^ik + ∂_k𝒢^ij) from ∂_c𝒢^ab stored as (N, nb, a, b, c)."""
    def build():
        dG = f["bcp_dipole_density"]
        return dG.transpose(0, 1, 4, 2, 3), dG.transpose(0, 1, 2, 4, 3) + dG
    return _cached(f, "_qm_parts_sea", build)


def _qm_parts_surface(f):
    """(∂_iε 𝒢^jk, ∂_jε 𝒢^ik + ∂_kε 𝒢^ij)."""
    def build():
        vG = f["velocity"][:, :, :, None, None] * f["bcp"][:, :, None, :, :]  # [i, j, k] = v_i 𝒢^jk
        return vG, vG.transpose(0, 1, 3, 2, 4) + vG.transpose(0, 1, 3, 4, 2)
    return _cached(f, "_qm_parts_surface", build)


def _qm_dipole_sea(f, alpha, beta):
    t1, t23 = _qm_parts_sea(f)
    return alpha * t1 - beta * t23


def _qm_dipole_surface(f, alpha, beta):
    t1, t23 = _qm_parts_surface(f)
    return alpha * t1 - beta * t23


def _second_order_units(d):
    return {"A": 1, "m": 3 - d, "V": -2}


def _linear_units(d):
    return {"S": 1, "m": 2 - d}


RESPONSES: dict[str, Response] = {}


def _register(r: Response) -> Response:
    RESPONSES[r.name] = r
    return r


_register(Response(
    "sigma_drude", "Drude conductivity σ_ij", "CATALOG: σ_ij = −e²τ Σ_n ∫[dk] v^i v^j f0' (004 Eq. 4, ω = 0)",
    ("i", "j"),
    {"surface": Term(lambda f: _outer(f["velocity"], f["velocity"]), 1, 2, 2, ("velocity",), -1.0)},
    e_power=2, hbar_power=-2, tau_power=1, si_units=_linear_units))

_register(Response(
    "sigma_ahe", "anomalous Hall conductivity σ_ij", "CATALOG: σ_ij = −(e²/ħ) Σ_n ∫[dk] Ω^ij_n f0",
    ("i", "j"),
    {"sea": Term(lambda f: f["berry_curvature"], 0, 0, 2, ("berry_curvature",), -1.0)},
    e_power=2, hbar_power=-1, si_units=_linear_units, hall=True))

_register(Response(
    "berry_curvature_dipole", "Berry-curvature dipole D_ab", "004 Eq. 5: D_ab = Σ_n ∫[dk] f0 ∂_a Ω_b",
    ("i", "pseudovector"),
    {"sea": Term(lambda f: _pseudo_deriv(f["berry_curvature_dipole_density"]), 0, 0, 3,
                 ("berry_curvature_dipole_density",)),
     "surface": Term(lambda f: _outer(f["velocity"], _pseudo(f["berry_curvature"])), 1, 1, 3,
                     ("velocity", "berry_curvature"), -1.0)},
    si_units=lambda d: {"m": 3 - d}))

_register(Response(
    "sigma_nonlinear_drude", "nonlinear Drude conductivity σ^d_ijk",
    "001 Eq. 11: σ^d_ijk = −(e³τ²/ħ³) Σ_n ∫[dk] ∂_i∂_j∂_k ε_n f0",
    ("i", "j", "k"),
    {"sea": Term(lambda f: f["energy_third_derivative"], 0, 1, 3, ("energy_third_derivative",), -1.0),
     # by parts, symmetrised: −∫ ∂³ε f0 = +∫ (∂_iε ∂_j∂_kε + cyclic)/3 f0'
     "surface": Term(lambda f: _symmetrized_v_times(f["velocity"], f["inverse_mass"]),
                     1, 2, 3, ("velocity", "inverse_mass"), 1.0)},
    e_power=3, hbar_power=-3, tau_power=2, si_units=_second_order_units))

_register(Response(
    "sigma_bcd", "Berry-curvature-dipole conductivity σ^bc_ijk",
    "001 Eq. 12: σ^bc_ijk = (e³τ/2ħ²) Σ_n ∫[dk] (∂_k Ω^ij_n + ∂_j Ω^ik_n) f0",
    ("i", "j", "k"),
    {"sea": Term(lambda f: f["berry_curvature_dipole_density"] + np.einsum("nbikj->nbijk",
                                                                        f["berry_curvature_dipole_density"]),
                 0, 0, 3, ("berry_curvature_dipole_density",), 0.5),
     "surface": Term(lambda f: _bcd_surface(f["berry_curvature"], f["velocity"]),
                     1, 1, 3, ("berry_curvature", "velocity"), -0.5)},
    e_power=3, hbar_power=-2, tau_power=1, si_units=_second_order_units))

_register(Response(
    "sigma_qm", "intrinsic quantum-metric (BCP-dipole) conductivity σ^qm_ijk",
    "001 Eq. 13 (Fermi sea): −(e³/ħ) Σ_n ∫[dk] [∂_i𝒢^jk − ½(∂_j𝒢^ik + ∂_k𝒢^ij)] f0; "
    "= 001 Eq. 14 (Fermi surface): e³ Σ_n ∫[dk] Λ^ijk_n f0'",
    ("i", "j", "k"),
    {"sea": Term(lambda f: _qm_dipole_sea(f, 1.0, 0.5), 0, -1, 3, ("bcp_dipole_density",), -1.0),
     "surface": Term(lambda f: _qm_dipole_surface(f, 1.0, 0.5), 1, 0, 3, ("velocity", "bcp"), 1.0)},
    e_power=3, hbar_power=-1, si_units=_second_order_units))

_VARIANTS = list(QM_VARIANTS)
_register(Response(
    "sigma_qm_variant", "literature variants of σ^qm_ijk (WPD, LKA, QK)",
    "001 Table 1: −(e³/ħ) Σ_n ∫[dk] [α ∂_i𝒢^jk − β(∂_k𝒢^ij + ∂_j𝒢^ik)] f0 with (α, β) = "
    "WPD (1, ½), LKA (2, ½), QK (½, 1); Fermi-surface form by parts",
    ("i", "j", "k"),
    {"sea": Term(lambda f: np.stack([_qm_dipole_sea(f, *QM_VARIANTS[v]) for v in _VARIANTS], axis=2),
                 0, -1, 3, ("bcp_dipole_density",), -1.0),
     "surface": Term(lambda f: np.stack([_qm_dipole_surface(f, *QM_VARIANTS[v]) for v in _VARIANTS], axis=2),
                     1, 0, 3, ("velocity", "bcp"), 1.0)},
    e_power=3, hbar_power=-1, si_units=_second_order_units, extra_dims=(("variant", _VARIANTS),)))


# ---- 002: quadrupolar current / static nonreciprocal directional dichroism ------------------------
_register(Response(
    "quadrupolar_current_gamma", "electric quadrupolar current coefficient γ_jik (static NDD)",
    "002 Eq. 10: γ_jik = (e²/ħ) Σ_m ∫[dk] ∂_iε_m g^jk_m f0' (v = ∂ε/∂k, AMBIGUITIES 002.1); dims (i, j, k) = "
    "subscripts (j, i, k); Fermi-sea form by parts: −(e²/ħ) Σ ∫ ∂_i g^jk f0",
    ("i", "j", "k"),
    # Q[a, b, c] = ∂_bε g^{ac}
    {"surface": Term(lambda f: f["velocity"][:, :, None, :, None] * f["quantum_metric"][:, :, :, None, :],
                     1, 1, 3, ("velocity", "quantum_metric")),
     "sea": Term(lambda f: np.einsum("nbacd->nbadc", f["quantum_metric_dipole_density"]),
                 0, 0, 3, ("quantum_metric_dipole_density",), -1.0)},
    e_power=2, hbar_power=-1, si_units=lambda d: {"S": 1, "m": 3 - d}))


_LEVI_CIVITA = np.zeros((3, 3, 3))
for _a, _b, _c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _LEVI_CIVITA[_a, _b, _c], _LEVI_CIVITA[_a, _c, _b] = 1.0, -1.0
IFE_PARTS = ["total", "symmetric", "antisymmetric"]


def _axial_epsilon(d: int) -> np.ndarray:
    """ε_{μνδ} restricted to the model's axes: (1, 2, 2) in 2D (μ = z only), (3, 3, 3) in 3D."""
    if d == 2:
        return _LEVI_CIVITA[2:, :2, :2]
    if d == 3:
        return _LEVI_CIVITA
    raise ValueError("the inverse Faraday coefficient needs a 2D or 3D model")


def _ife_parts(t: np.ndarray) -> np.ndarray:
    """Stack (a_{μαβ}, a_{μ(αβ)}, a_{μ[αβ]}) along a new axis 2 (after (N, nb))."""
    tt = t.swapaxes(-1, -2)
    return np.stack([t, 0.5 * (t + tt), 0.5 * (t - tt)], axis=2)


def _ife_sea(f):
    """I_{μαβ} = ε_{μνδ} ∂_α∂_ν g_{δβ}; quadrupole stored as [..., a, b, c, e] = ∂_c∂_e g^{ab}."""
    quad = f["quantum_metric_quadrupole_density"]
    eps = _axial_epsilon(quad.shape[-1])
    return _ife_parts(np.einsum("mvd,nbdBav->nbmaB", eps, quad, optimize=True))


def _ife_christoffel(f):
    """ε_{μνδ} ∂_αε (Γ_δβν + Γ_βδν) — the integrand of 000 Eq. 18 (Γ stored as [..., a, b, c] = Γ_abc)."""
    gam = f["christoffel"]
    eps = _axial_epsilon(gam.shape[-1])
    sym = gam + gam.swapaxes(-3, -2)  # Γ_δβν + Γ_βδν (= ∂_ν g_δβ, 000 Eq. 17)
    return _ife_parts(np.einsum("mvd,nba,nbdBv->nbmaB", eps, f["velocity"], sym, optimize=True))


_IFE_FORMULA = ("000 Eq. 15: a_μαβ = −(τQ³/8ħ²) ε_μνδ Σ_n ∫[dk] f0 ∂_α∂_ν g_δβ with Q = −e (AMBIGUITIES 000.2: "
                "= +τe³/(8ħ²) ε Σ∫ f0 ∂∂g); Fermi-surface form = 000 Eq. 18 (Christoffel symbols); dims "
                "(part, pseudovector, i, j) = (total | symmetric a_μ(αβ) | antisymmetric a_μ[αβ], μ, α, β)")
# 000 App. B (docs/inverse_faraday.md, "Frequency dependence"): the field index α enters through the first-order
# distribution f̃1 = −(τQ/ħ) Ẽ_α ∂_α f0/(1 + iωτ) (Eq. 25 at O(E)), so a(ω) = a(0)/(1 + iωτ) componentwise
IFE_TIME_CONVENTION = ("000 App. B: E(t) = Re[Ẽ e^{iωt}] (Eq. 21); rectified current j_μ = Re[ε_μνα a_αγλ(ω) Ẽ_γ "
                       "ẽ*_λν] (Eq. 13-14; γ the field in the distribution, Eq. 25), i.e. magnetization M_μ = "
                       "½ Re[a_μαβ(ω) Ẽ_α Ẽ*_β]; a(ω = 0) = Eq. 15 with M = a E E for a static real E; "
                       "complex_part = (Re, Im) of a(ω)")


_register(Response(
    "ife_coefficient", "inverse-Faraday coefficient a_μαβ from the quantum-metric quadrupole", _IFE_FORMULA,
    ("pseudovector", "i", "j"),
    {"sea": Term(_ife_sea, 0, 0, 4, ("quantum_metric_quadrupole_density",), 1.0 / 8.0),
     "surface": Term(_ife_christoffel, 1, 1, 4, ("velocity", "christoffel"), -1.0 / 8.0)},
    e_power=3, hbar_power=-2, tau_power=1, si_units=lambda d: {"A": 1, "m": 4 - d, "V": -2},
    extra_dims=(("part", IFE_PARTS),), omega_scale=lambda wt: 1.0 / (1.0 + 1j * np.asarray(wt, float)),
    omega_formula=("000 App. B Eq. 25: a_μαβ(ω) = a_μαβ(0)/(1 + iωτ), dims (omega, complex_part) before part; "
                   "a(0) = " + _IFE_FORMULA),
    omega_time_convention=IFE_TIME_CONVENTION))


# ---- 004: optical conductivity, BCD Pockels, Snap Kerr (time convention e^{+iωt}, τ_ω = τ/(1 + iωτ)) --------
TIME_CONVENTION_004 = "004 (e^{+iωt}, τ_ω = τ/(1 + iωτ); AMBIGUITIES 004.4): imaginary parts opposite to e^{-iωt}"
COMPLEX_PARTS = ["real", "imag"]
# 004's thin-film observables, assembled from other responses (reduce/electro_optics.py; kind "derived" in
# reduce/kinds.py, like pockels_skew's kind "model")
THIN_FILM = ("reflection", "transmission", "polarization_rotation", "delta_t_over_t", "delta_r_over_r")


def _tau_omega(wt):
    """τ_ω/τ = 1/(1 + iωτ) for ωτ values."""
    return 1.0 / (1.0 + 1j * np.asarray(wt, float))


def _in_plane_epsilon(d: int) -> np.ndarray:
    """ε_{αβδ} with α, β Cartesian and δ a pseudovector component: (2, 2, 1) in 2D (δ = z), (3, 3, 3) in 3D."""
    if d == 2:
        return _LEVI_CIVITA[:2, :2, 2:]
    if d == 3:
        return _LEVI_CIVITA
    raise ValueError("the BCD Pockels tensor needs a 2D or 3D model")


def _pockels_bcd_parts(D):
    """(A, B) with A_αβγ = ε_αγδ D_βδ (τ_ω part), B_αβγ = ε_αβδ D_γδ (τ part), stacked on axis 2."""
    eps = _in_plane_epsilon(D.shape[-2])
    A = np.einsum("agd,nkbd->nkabg", eps, D)
    B = np.einsum("abd,nkgd->nkabg", eps, D)
    return np.stack([A, B], axis=2)


def _snap_s29(f):
    """004 Eq. S29 integrand pieces of −Σ v_α ∂_β∂_γ∂_δ f0, with ∂_β∂_γ∂_δ f0 =
    f0‴ v_β v_γ v_δ + f0″ (m_βγ v_δ + m_βδ v_γ + m_γδ v_β) + f0′ ∂_β∂_γ∂_δ ε: the integrands of orders 3, 2, 1."""
    v, m, t = f["velocity"], f["inverse_mass"], f["energy_third_derivative"]
    vvvv = np.einsum("nka,nkb,nkc,nkd->nkabcd", v, v, v, v)
    vm = (np.einsum("nka,nkbc,nkd->nkabcd", v, m, v) + np.einsum("nka,nkbd,nkc->nkabcd", v, m, v)
          + np.einsum("nka,nkcd,nkb->nkabcd", v, m, v))
    vt = np.einsum("nka,nkbcd->nkabcd", v, t)
    return vvvv, vm, vt


_register(Response(
    "sigma_optical", "field-free optical conductivity σ^(0)_αβ(ω)",
    "004 Eq. 4: σ^(0)_αβ(ω) = −e² τ_ω Σ_n ∫[dk] v_α v_β ∂f0/∂ε, τ_ω = τ/(1 + iωτ)",
    ("i", "j"),
    {"surface": Term(lambda f: _outer(f["velocity"], f["velocity"])[:, :, None], 1, 2, 2, ("velocity",), -1.0)},
    e_power=2, hbar_power=-2, tau_power=1, si_units=_linear_units, extra_dims=(("omega_part", ["tau_omega"]),),
    time_convention=TIME_CONVENTION_004, omega_factor=lambda wt: _tau_omega(wt)[:, None]))

_register(Response(
    "pockels_bcd", "Berry-curvature-dipole Pockels tensor P^(BCD)_αβγ(ω)",
    "004 Eq. 5: P^(BCD)_αβγ = (e³/ħ²)(τ_ω ε_αγδ D_βδ + τ ε_αβδ D_γδ), D_βδ = Σ_n ∫[dk] f0 ∂_βΩ_δ (Fermi-surface form "
    "by parts: −Σ∫ Ω_δ ∂_βε f0'); δσ_αβ = P_αβγ E_γ (004 Eq. 1)",
    ("i", "j", "k"),
    {"sea": Term(lambda f: _pockels_bcd_parts(_pseudo_deriv(f["berry_curvature_dipole_density"])), 0, 0, 3,
                 ("berry_curvature_dipole_density",)),
     "surface": Term(lambda f: _pockels_bcd_parts(_outer(f["velocity"], _pseudo(f["berry_curvature"]))), 1, 1, 3,
                     ("velocity", "berry_curvature"), -1.0)},
    e_power=3, hbar_power=-2, tau_power=1, si_units=lambda d: {"S": 1, "m": 3 - d, "V": -1},
    extra_dims=(("omega_part", ["tau_omega", "tau"]),), time_convention=TIME_CONVENTION_004,
    omega_factor=lambda wt: np.stack([_tau_omega(wt), np.ones(np.size(wt))], axis=1)))

_SNAP_FORMULA = ("004 Eq. 7: J_αβγδ = −(e⁴/ħ⁴) Σ_n ∫[dk] ∂_α∂_β∂_γε ∂_δf0 (= ∂³ε ∂_δε f0'); equal to Eq. S29 "
                 "−(e⁴/ħ⁴) Σ∫ ∂_αε ∂_β∂_γ∂_δ f0 by parts (AMBIGUITIES 004.3)")
_SNAP_FORMS = {
    "surface": Term(lambda f: f["energy_third_derivative"][..., None] * f["velocity"][:, :, None, None, None, :],
                    1, 2, 4, ("energy_third_derivative", "velocity"), -1.0),
    # 004 Eq. S29 (for comparison: the same tensor with the derivatives on f0)
    "s29": (Term(lambda f: _snap_s29(f)[0], 3, 4, 4, ("velocity",), -1.0),
            Term(lambda f: _snap_s29(f)[1], 2, 3, 4, ("velocity", "inverse_mass"), -1.0),
            Term(lambda f: _snap_s29(f)[2], 1, 2, 4, ("velocity", "energy_third_derivative"), -1.0))}


def _with_part_axis(forms: dict) -> dict:
    """The same forms with a length-1 ``omega_part`` axis after band (for an ω-factor response)."""
    def wrap(t):
        return Term(lambda f, g=t.integrand: g(f)[:, :, None], t.order, t.energy_power, t.length_power, t.fields,
                    t.coefficient)
    return {form: wrap(parts) if isinstance(parts, Term) else tuple(wrap(t) for t in parts)
            for form, parts in forms.items()}


_register(Response(
    "snap_tensor", "Snap tensor J_αβγδ", _SNAP_FORMULA, ("i", "j", "k", "l"), _SNAP_FORMS,
    e_power=4, hbar_power=-4, si_units=lambda d: {"S": 1, "m": 4 - d, "V": -2, "s": -3}))

_register(Response(
    "kerr_snap", "Snap Kerr tensor K_αβγδ(ω)",
    "004 Eq. 7: [K_αβ^γδ]_Snap = (τ_ω³ + τ_ω²τ + τ_ωτ²) J_αβγδ; δσ_αβ = K_αβγδ E_γ E_δ (004 Eq. 1); " + _SNAP_FORMULA,
    ("i", "j", "k", "l"), _with_part_axis(_SNAP_FORMS),
    e_power=4, hbar_power=-4, tau_power=3, si_units=lambda d: {"S": 1, "m": 4 - d, "V": -2},
    extra_dims=(("omega_part", ["tau_omega_sum"]),), time_convention=TIME_CONVENTION_004,
    omega_factor=lambda wt: (_tau_omega(wt) ** 3 + _tau_omega(wt) ** 2 + _tau_omega(wt))[:, None]))


# ---- 003: spin currents and spin magnetization (DC) ---------------------------------------------------
# Field layouts (geometry/spin.py): spin component last; Zeeman fields [..., Cartesian, spin].
# Output dims in the order of 003's subscripts: σ_{ab;c} → (i, j, spin) = (a, b, c); β_{ab} → (spin, i) = (a, b);
# σ_{abd;c} → (i, j, k, spin) = (a, b, d, c); β_{abc} → (spin, i, j) = (a, b, c). e = ħ = 1 in 003: e, ħ restored by
# dimensional analysis (e > 0 to the printed power, signs as printed), SI spin current J_{a;c} = ⟨¼{v̂^a, σ̂^c}⟩ per
# unit volume, spin density ⟨σ^a⟩ per unit volume.
SPIN_QUANTITIES = ["spin_density", "magnetization_muB"]
_SPIN_CURRENT_ATTRS = {
    "spin_current_convention": "003: J_{a;c} = ⟨¼{v̂^a, σ̂^c}⟩ per unit volume (v̂ = ∂H/ħ∂k); multiply by ħ for "
                               "the conventional spin current ⟨½{v̂^a, ŝ^c}⟩ with ŝ = ħσ̂/2; dim spin = c",
    "prefactor_convention": "003 equations as printed (AMBIGUITIES 003.2); e > 0 and ħ restored by dimensional "
                            "analysis"}
_SPIN_MAGNETIZATION_ATTRS = {
    "quantity_convention": "spin_density: response of ⟨σ^a⟩ per unit volume, 003 equation as printed; "
                           "magnetization_muB: M_a / μ_B = −⟨σ^a⟩ (electron moment antiparallel to spin, "
                           "AMBIGUITIES 003.1; reproduces 003's NDSM closed form), same unit times μ_B",
    "prefactor_convention": "003 equations as printed (AMBIGUITIES 003.2: τ/2 of Eq. 5 and τ²/4 of Eq. 10 are "
                            "½ and ¼ of the textbook DC Boltzmann values); e > 0 and ħ restored by dimensional "
                            "analysis"}


def _spin_mag(build):
    """Stack (spin density, magnetization in μ_B = −spin density) along axis 2 (the ``quantity`` dim)."""
    def integrand(f):
        q = build(f)
        return np.stack([q, -q], axis=2)
    return integrand


def _v(f):  # ∂_dε (N, nb, d)
    return f["velocity"]


def _zT(f, name):
    """Zeeman field [..., Cartesian b, spin a] → [..., a, b]."""
    return f[name].swapaxes(-1, -2)


def _spin_current_units(order):
    return lambda d: {"s": -1, "m": order + 1 - d, "V": -order}


def _spin_density_units(order):
    return lambda d: {"m": order - d, "V": -order}


def _spin_current(name, long_name, formula, cart, forms, e, hbar, tau, order, ac_forms=None, ac_formula=""):
    _register(Response(name, long_name, formula, cart, forms, e_power=e, hbar_power=hbar, tau_power=tau,
                       si_units=_spin_current_units(order), attrs=dict(_SPIN_CURRENT_ATTRS), ac_forms=ac_forms,
                       ac_formula=ac_formula))


def _with_quantity(forms: dict) -> dict:
    return {form: tuple(Term(_spin_mag(t.integrand), t.order, t.energy_power, t.length_power, t.fields,
                             t.coefficient) for t in ((parts,) if isinstance(parts, Term) else parts))
            for form, parts in forms.items()}


def _spin_magnetization(name, long_name, formula, cart, forms, e, hbar, tau, order, ac_forms=None, ac_formula=""):
    _register(Response(name, long_name, formula, cart, _with_quantity(forms), e_power=e, hbar_power=hbar,
                       tau_power=tau, si_units=_spin_density_units(order), extra_dims=(("quantity", SPIN_QUANTITIES),),
                       attrs=dict(_SPIN_MAGNETIZATION_ATTRS),
                       ac_forms=None if ac_forms is None else (lambda omega, eta: _with_quantity(ac_forms(omega, eta))),
                       ac_formula=ac_formula))


def _resonance(energy: np.ndarray, omega: np.ndarray, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """(ε_nm (N, n, m), R (N, n, m, W)) with R = 1/(ω² − ε_nm²) = [p(ω − ε) − p(ω + ε)]/(2ε), p(x) = x/(x² + η²):
    principal parts at ω + iη (η = 0: the printed 003 Eq. 7–8; the absorptive δ parts are not in them)."""
    eps = energy[:, :, None] - energy[:, None, :]
    e = eps[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if eta == 0.0:
            R = 1.0 / (omega**2 - e**2)
        else:
            def p(x):
                return x / (x**2 + eta**2)
            R = np.where(e != 0.0, (p(omega - e) - p(omega + e)) / (2.0 * e), 0.0)
    return eps, R


def _spin_sigma_ac(omega, eta):
    """003 Eq. 7 per band n: [Σ_m (1 + λ1/cos) Ω^{ab;c}_nm, Σ_m 2 (λ2/sin) g^{ab;c}_nm] with λ1/cos = −ω²/(ω² − ε²),
    λ2/sin = ε_nm ω/(ω² − ε²): (N, n, omega, phase, a, b, c)."""
    def integrand(f):
        eps, R = _resonance(f["energy"], omega, eta)
        cos = np.einsum("knmw,knmabc->knwabc", 1.0 - omega**2 * R, f["spin_qgt_curvature_pair"])
        sin = np.einsum("knmw,knmabc->knwabc", 2.0 * eps[..., None] * omega * R, f["spin_qgt_metric_pair"])
        return np.stack([cos, sin], axis=3)
    return {"sea": Term(integrand, 0, 0, 2, ("energy", "spin_qgt_curvature_pair", "spin_qgt_metric_pair"), 1.0)}


def _spin_beta_ac(omega, eta):
    """003 Eq. 8 per band n: [Σ_m (1 + λ1/cos) ḡ^{ba}_nm/ε_nm, Σ_m (λ2/sin)/2 Ω̄^{ba}_nm/ε_nm] (λ2/ε = ω R):
    (N, n, omega, phase, a = spin, b = Cartesian)."""
    def integrand(f):
        eps, R = _resonance(f["energy"], omega, eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(eps != 0.0, 1.0 / eps, 0.0)[..., None]
        cos = np.einsum("knmw,knmba->knwab", (1.0 - omega**2 * R) * inv, f["zeeman_qgt_metric_pair"])
        sin = np.einsum("knmw,knmba->knwab", 0.5 * omega * R, f["zeeman_qgt_curvature_pair"])
        return np.stack([cos, sin], axis=3)
    return {"sea": Term(integrand, 0, -1, 1, ("energy", "zeeman_qgt_metric_pair", "zeeman_qgt_curvature_pair"), 1.0)}


_spin_current(
    "spin_sigma_lin_tau1", "linear extrinsic spin conductivity σ^(1)_{ab;c} (magnetic spin Hall, spin QM)",
    "003 Eq. 4: σ^(1)_{ab;c} = −2(eτ/ħ²) Σ_n ∫[dk] f_n Σ_m ε_nm g^{ab;c}_nm (sea); Fermi-surface form (fn. 82 with "
    "fn. 80's term, coefficient ¼ not ½): τ Σ∫ ∂_bf v^{a;c}_nn + τ Σ∫ f ¼<{∂_a∂_bH, σ^c}>_nn (last term zero for "
    "H linear in k); dims (i, j, spin) = (a, b, c)",
    ("i", "j", "spin"),
    {"sea": Term(lambda f: f["spin_qgt_metric_x_gap"], 0, 1, 2, ("spin_qgt_metric_x_gap",), -2.0),
     "surface": (Term(lambda f: f["spin_velocity"][:, :, :, None, :] * _v(f)[:, :, None, :, None], 1, 2, 2,
                      ("spin_velocity", "velocity"), 1.0),
                 Term(lambda f: f["spin_velocity_derivative"] - 2.0 * f["spin_qgt_metric_x_gap"], 0, 1, 2,
                      ("spin_velocity_derivative", "spin_qgt_metric_x_gap"), 1.0))},
    e=1, hbar=-2, tau=1, order=1)

_spin_magnetization(
    "spin_beta_lin_tau1", "linear extrinsic spin magnetization β^(1)_{ab} (Edelstein, Zeeman BC)",
    "003 Eq. 5: β^(1)_{ab} = −(eτ/2ħ) Σ_n ∫[dk] f_n Σ_m Ω̄^{ba}_nm (sea); Fermi-surface form (fn. 82, "
    "Σ_m Ω̄^{ba}_nm = ∂_bσ^a_nn): (eτ/2ħ) Σ∫ ∂_bf σ^a_nn; dims (quantity, spin, i) = (·, a, b)",
    ("spin", "i"),
    {"sea": Term(lambda f: _zT(f, "zeeman_qgt_curvature"), 0, 0, 1, ("zeeman_qgt_curvature",), -0.5),
     "surface": Term(lambda f: f["spin_expectation"][:, :, :, None] * _v(f)[:, :, None, :], 1, 1, 1,
                     ("spin_expectation", "velocity"), 0.5)},
    e=1, hbar=-1, tau=1, order=1)

_spin_current(
    "spin_sigma_lin_tau0", "linear intrinsic spin conductivity σ^(0)_{ab;c} (intrinsic spin Hall, spin BC)",
    "003 Eq. 6 (left): σ^(0)_{ab;c} = (e/ħ) Σ_n ∫[dk] f_n Σ_m Ω^{ab;c}_nm (Fermi sea only); dims (i, j, spin) = "
    "(a, b, c)",
    ("i", "j", "spin"),
    {"sea": Term(lambda f: f["spin_qgt_curvature"], 0, 0, 2, ("spin_qgt_curvature",), 1.0)},
    e=1, hbar=-1, tau=0, order=1, ac_forms=_spin_sigma_ac,
    ac_formula="003 Eq. 6 (left) + Eq. 7 (displacement spin current), E(t) = E cos ωt: σ^(0)_{ab;c}(ω, t) = (e/ħ) "
               "Σ_n ∫[dk] f_n Σ_m [ε_nm²/(ε_nm² − ω²) Ω^{ab;c}_nm cos ωt + 2 ε_nm ω/(ω² − ε_nm²) g^{ab;c}_nm sin ωt] "
               "(Eq. 6 cos ωt + Eq. 7 with λ1 = −ω² cos ωt/(ω² − ε²), λ2 = ε ω sin ωt/(ω² − ε²)); 1/(ω² − ε²) as "
               "principal parts at ω + iη when a broadening η is given; dims (phase, i, j, spin) = (·, a, b, c)")

_spin_magnetization(
    "spin_beta_lin_tau0", "linear intrinsic spin magnetization β^(0)_{ab} (Zeeman QM)",
    "003 Eq. 6 (right): β^(0)_{ab} = e Σ_n ∫[dk] f_n Σ_m ḡ^{ba}_nm / ε_nm (Fermi sea only); dims (quantity, spin, i) "
    "= (·, a, b)",
    ("spin", "i"),
    {"sea": Term(lambda f: _zT(f, "zeeman_bcp"), 0, -1, 1, ("zeeman_bcp",), 0.5)},
    e=1, hbar=0, tau=0, order=1, ac_forms=_spin_beta_ac,
    ac_formula="003 Eq. 6 (right) + Eq. 8 (displacement spin magnetization), E(t) = E cos ωt: β^(0)_{ab}(ω, t) = e "
               "Σ_n ∫[dk] f_n Σ_m [ε_nm²/(ε_nm² − ω²) ḡ^{ba}_nm/ε_nm cos ωt + ω/(2(ω² − ε_nm²)) Ω̄^{ba}_nm sin ωt] "
               "(Eq. 6 cos ωt + Eq. 8); 1/(ω² − ε²) as principal parts at ω + iη when a broadening η is given; dims "
               "(quantity, phase, spin, i) = (·, ·, a, b)")

_spin_current(
    "spin_sigma_nl_tau2", "nonlinear Drude spin conductivity (NDSC) σ^(2)_{abd;c} (spin QMD)",
    "003 Eq. 9: σ^(2)_{abd;c} = −(e²τ²/ħ³) Σ_n ∫[dk] Σ_m ε_nm g^{ab;c}_nm ∂_df_n (surface, as printed; ∂_df = "
    "∂_dε f0'); Fermi-sea form by parts: +(e²τ²/ħ³) Σ∫ f ∂_d Σ_m ε_nm g^{ab;c}_nm; dims (i, j, k, spin) = "
    "(a, b, d, c)",
    ("i", "j", "k", "spin"),
    {"surface": Term(lambda f: f["spin_qgt_metric_x_gap"][:, :, :, :, None, :] * _v(f)[:, :, None, None, :, None],
                     1, 2, 3, ("spin_qgt_metric_x_gap", "velocity"), -1.0),
     "sea": Term(lambda f: f["spin_qgt_metric_x_gap_dipole"], 0, 1, 3, ("spin_qgt_metric_x_gap_dipole",), 1.0)},
    e=2, hbar=-3, tau=2, order=2)

_spin_magnetization(
    "spin_beta_nl_tau2", "nonlinear Drude spin magnetization (NDSM) β^(2)_{abc} (Zeeman BCD)",
    "003 Eq. 10: β^(2)_{abc} = −(e²τ²/4ħ²) Σ_n ∫[dk] Σ_m Ω̄^{ba}_nm ∂_cf_n (surface, as printed); Fermi-sea form by "
    "parts: +(e²τ²/4ħ²) Σ∫ f ∂_c Σ_m Ω̄^{ba}_nm; dims (quantity, spin, i, j) = (·, a, b, c); massive Dirac: "
    "magnetization_muB zxx = (e²/ħ²)(τ²/16π)Δ(μ²−Δ²)/|μ|³ at T = 0 (003 text, AMBIGUITIES 003.1, 003.3)",
    ("spin", "i", "j"),
    {"surface": Term(lambda f: _zT(f, "zeeman_qgt_curvature")[:, :, :, :, None] * _v(f)[:, :, None, None, :],
                     1, 1, 2, ("zeeman_qgt_curvature", "velocity"), -0.25),
     "sea": Term(lambda f: f["zeeman_qgt_curvature_dipole"].transpose(0, 1, 4, 2, 3), 0, 0, 2,
                 ("zeeman_qgt_curvature_dipole",), 0.25)},
    e=2, hbar=-2, tau=2, order=2)

_spin_current(
    "spin_sigma_nl_tau1", "nonlinear extrinsic spin conductivity σ^(1)_{abd;c} (spin BCD)",
    "003 Eq. 11: σ^(1)_{abd;c} = (e²τ/ħ²) Σ_n ∫[dk] Σ_m Ω^{ab;c}_nm ∂_df_n (surface, as printed); Fermi-sea form by "
    "parts: −(e²τ/ħ²) Σ∫ f ∂_d Ω^{ab;c}_n; dims (i, j, k, spin) = (a, b, d, c)",
    ("i", "j", "k", "spin"),
    {"surface": Term(lambda f: f["spin_qgt_curvature"][:, :, :, :, None, :] * _v(f)[:, :, None, None, :, None],
                     1, 1, 3, ("spin_qgt_curvature", "velocity"), 1.0),
     "sea": Term(lambda f: f["spin_qgt_curvature_dipole"], 0, 0, 3, ("spin_qgt_curvature_dipole",), -1.0)},
    e=2, hbar=-2, tau=1, order=2)

_spin_magnetization(
    "spin_beta_nl_tau1", "nonlinear extrinsic spin magnetization β^(1)_{abc} (Zeeman QMD)",
    "003 Eq. 12: β^(1)_{abc} = (e²τ/ħ) Σ_n ∫[dk] Σ_m (ḡ^{ba}_nm/ε_nm) ∂_cf_n (surface, as printed); Fermi-sea form "
    "by parts: −(e²τ/ħ) Σ∫ f ∂_c Σ_m ḡ^{ba}_nm/ε_nm; dims (quantity, spin, i, j) = (·, a, b, c)",
    ("spin", "i", "j"),
    {"surface": Term(lambda f: _zT(f, "zeeman_bcp")[:, :, :, :, None] * _v(f)[:, :, None, None, :],
                     1, 0, 2, ("zeeman_bcp", "velocity"), 0.5),
     "sea": Term(lambda f: f["zeeman_bcp_dipole"].transpose(0, 1, 4, 2, 3), 0, -1, 2, ("zeeman_bcp_dipole",), -0.5)},
    e=2, hbar=-1, tau=1, order=2)

_spin_current(
    "spin_sigma_nl_tau0", "nonlinear intrinsic spin conductivity σ^(0)_{abd;c} (spin QMD + QM)",
    "003 Eq. 13: σ^(0)_{abd;c} = (e²/ħ) Σ_n ∫[dk] Σ_m [Q^{abd;c}_nm/ε²_nm f_n + 2g^{ad;c}_nm/ε_nm ∂_bf_n] "
    "(form surface = as printed, Fermi-sea + Fermi-surface terms; form sea: second term by parts, −Σ∫ f ∂_b(·)); "
    "Q = 2Δ^d_mn g^{ab;c}_nm + Δ̄^{a;c}_mn g^{bd}_nm with Δ̄^{a;c} from {v̂^a, σ̂^c}/4 (fn. 86 swapped); dims "
    "(i, j, k, spin) = (a, b, d, c)",
    ("i", "j", "k", "spin"),
    {"surface": (Term(lambda f: f["spin_nonlinear_sea"], 0, -1, 3, ("spin_nonlinear_sea",), 1.0),
                 Term(lambda f: f["spin_bcp"][:, :, :, None, :, :] * _v(f)[:, :, None, :, None, None], 1, 0, 3,
                      ("spin_bcp", "velocity"), 1.0)),
     "sea": Term(lambda f: f["spin_nonlinear_sea"] - f["spin_bcp_dipole"].swapaxes(3, 4), 0, -1, 3,
                 ("spin_nonlinear_sea", "spin_bcp_dipole"), 1.0)},
    e=2, hbar=-1, tau=0, order=2)

_spin_magnetization(
    "spin_beta_nl_tau0", "nonlinear intrinsic spin magnetization β^(0)_{abc} (Zeeman BCD + QM)",
    "003 Eq. 14: β^(0)_{abc} = e² Σ_n ∫[dk] Σ_m [Z^{abc}_nm/ε³_nm f_n + Ω̄^{ca}_nm/(2ε²_nm) ∂_bf_n] (form surface = "
    "as printed, Fermi-sea + Fermi-surface terms; form sea: second term by parts); Z = Δ^c_mn Ω̄^{ba}_nm/2 + "
    "Δ̄^a_mn ε_nm g^{bc}_nm, Δ̄^a = (σ^a_mm − σ^a_nn)/2 (fn. 86 swapped); dims (quantity, spin, i, j) = (·, a, b, c)",
    ("spin", "i", "j"),
    {"surface": (Term(lambda f: f["zeeman_nonlinear_sea"].transpose(0, 1, 4, 2, 3), 0, -2, 2,
                      ("zeeman_nonlinear_sea",), 1.0),
                 Term(lambda f: _zT(f, "zeeman_hspace_bcp")[:, :, :, None, :] * _v(f)[:, :, None, :, None], 1, -1, 2,
                      ("zeeman_hspace_bcp", "velocity"), 0.25)),
     "sea": Term(lambda f: f["zeeman_nonlinear_sea"].transpose(0, 1, 4, 2, 3)
                 - 0.25 * f["zeeman_hspace_bcp_dipole"].transpose(0, 1, 4, 3, 2), 0, -2, 2,
                 ("zeeman_nonlinear_sea", "zeeman_hspace_bcp_dipole"), 1.0)},
    e=2, hbar=0, tau=0, order=2)


@dataclass(frozen=True)
class DirectResponse:
    """A response summed straight over k and band pairs (``reduce/transitions.py``), not via energy bins: its
    texts and fields; its work is a pair-sum calculator of ``reduce/kinds.py``."""

    name: str
    long_name: str
    formula: str
    fields: tuple[str, ...]
    dims: tuple[str, ...]  # besides mu, T
    min_dim: int = 1
    time_convention: str = ""


DIRECT_RESPONSES: dict[str, DirectResponse] = {
    "ndd_delta_n": DirectResponse(
        "ndd_delta_n", "nonreciprocal directional dichroism Δn (light along z, polarised along x)",
        "002 Eq. 12–13: Δn = −(e²cμ0/2ħ) Σ_{m≠n∈{c,v}} ∫[dk] [A(G_zxx,m f'_m + G_zxx,n f'_n) + B(G_zxx,m + G_zxx,n) "
        "+ C(G_xxz,m + G_xxz,n)], G_ijk,m = ∂_iε_m g^jk_m; principal parts at ω + iη, δ → Lorentzian of "
        "half-width η (exact as η → 0); two-band transitions within each sector; with integration: tetrahedron the "
        "same sum as per-band Fermi-sea + Fermi-surface integrals on linear tetrahedra (T = 0 exact)",
        ("energy", "velocity", "quantum_metric"), ("complex_part", "omega"), min_dim=3,
        time_convention="002 (e^{-iωt}, ω + iη)"),
    "ndd_qmd_average": DirectResponse(
        "ndd_qmd_average", "transition-averaged quantum-metric dipole ⟨G_zxx,m + G_zxx,n⟩ at λ = −ω",
        "002 text under Eq. 13 (Fig. 4a): ⟨x⟩(λ) = Σ_{m≠n∈{c,v}} ∫[dk] x Δf_mn ω_mn² δ(ω_mn − λ), "
        "x = G_zxx,m + G_zxx,n, at λ = −ω; δ → Lorentzian of half-width η",
        ("energy", "velocity", "quantum_metric"), ("omega",), min_dim=3),
}


def response(name: str, omega=None, eta: float = 0.0) -> Response:
    """The response ``name``, at photon energies ``omega`` when it has a frequency-dependent form."""
    return RESPONSES[name].at_frequencies(omega, eta)
