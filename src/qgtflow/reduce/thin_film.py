"""Electro-optic post-processing of a conducting 2D sheet (paper 004: Ma, Xiong & Song, "Skew-scattering
Pockels effect and metallic electro-optics in gapped bilayer graphene").

Pure numpy. Every function broadcasts over leading dimensions (e.g. ``omega``, DC field values); the
trailing dimensions are Cartesian (x, y) as stated per function.

Conventions
-----------
* **Time convention.** 004 writes optical fields as ``E(t) = E^(0) e^{+iωt} + c.c.`` (main text Eq. 2 and
  SI Eq. S21: ``j(t) = j^ω e^{iωt} + c.c.``, ``j^ω_α = σ_αβ E^(0)_β``), so ``τ_ω = τ/(1 + iωτ)`` and the
  conductivities fed to this module are expected in the e^{+iωt} convention (AMBIGUITIES 004.4).
  The SI thin-film section, however, writes its plane waves as ``e^{i(kz − ωt)}`` (S34–S45). This is
  harmless: the sheet relations (S46, S49, S52) contain no explicit ``i`` or ``ω`` (``−iτ_y`` is the real
  matrix of ``ẑ×``), so they hold in either convention as long as σ and the field amplitudes use the same
  one. Switching convention complex-conjugates σ, r̄, t̄ and the Jones vectors; intensities (T, R),
  absorption and the major-axis angle are unchanged, the sign of the ellipticity (handedness) flips.
  :func:`polarization_state` therefore takes ``time_sign`` (+1 for e^{+iωt}, the default).
* **Index convention (004 Eq. 1 = SI Eq. S21).** ``δσ_αβ(ω) = P_αβγ E_γ + K_αβγδ E_γ E_δ``: the first two
  indices are those of the optical conductivity (``j^ω_α = σ_αβ E^ω_β``), the trailing one (two) contract
  with the DC field. In Eq. 7 the Snap Kerr tensor is written ``[K_αβ^{γδ}]`` — the same order.
* **Units (SI).** σ is a *sheet* conductance in siemens (S); E_dc in V/m; P in S·m/V; K in S·m²/V².
  The vacuum impedance is ``Z0 = scipy.constants.physical_constants["characteristic impedance of
  vacuum"]`` (≈ 376.73 Ω); 004 writes ``Z0 = (ε0 c)^{-1}``.
* **Geometry (004 SI Sec. 2, Fig. S1).** The sheet is the plane z = 0 in vacuum; light comes from side 1
  (z < 0) at normal incidence along +z; the reflected wave goes along −z, the transmitted one along +z on
  side 2. r̄ and t̄ act on Jones vectors (E_x, E_y) written in the *same fixed* lab xy frame for all three
  waves: ``E^r = r̄ E^i``, ``E^t = t̄ E^i``.

Independent derivation of S49 / S52 (checked; no typo found)
------------------------------------------------------------
For a +z (−z) travelling plane wave ``H = ±ẑ×E/Z0`` (this is S46 with ``−iτ_y E = ẑ×E``). The boundary
conditions are tangential E continuous, ``E^i + E^r = E^t``, and ``ẑ × (H² − H¹) = j = σ E^t``. Since
``ẑ×(ẑ×E) = −E`` for in-plane E this gives ``−(E^t − E^i + E^r)/Z0 = σ E^t``, hence

    t̄ = 2 (2·1 + Z0 σ)^{-1},        r̄ = t̄ − 1 = −(2·1 + Z0 σ)^{-1} Z0 σ.

Written out with the adjugate this is exactly S52 and S49, with ``Y = (2/Z0 + σ_xx)(2/Z0 + σ_yy) −
σ_xy²`` (checked with sympy, and numerically against a direct solve of the boundary conditions in
tests/test_thin_film.py). Two remarks:

* S49/S52 assume a symmetric σ (σ_xy = σ_yx, true for 004's Eq. 9 under C_3v). For a general σ the
  (2,1) entries carry σ_yx and ``Y = det(2/Z0 + σ) = (2/Z0 + σ_xx)(2/Z0 + σ_yy) − σ_xy σ_yx``; this
  module implements that general form, which reduces to the printed one when σ_xy = σ_yx.
* Isotropic sheet: ``t = 2/(2 + Z0σ)``, ``r = −Z0σ/(2 + Z0σ)`` (so r → −1 for a perfect conductor: the
  reflected E is quoted in the lab frame, not in a frame attached to the reversed propagation direction).

Energy balance: the absorbed fraction is ``A = Z0 Re(E^t† σ E^t)/|E^i|²`` (time-averaged Joule power
``Re(E†σE)/2`` over the incident flux ``|E^i|²/(2 Z0)``), and ``|r̄E^i|² + |t̄E^i|² + A|E^i|² = |E^i|²``.

Eq. 9 under C_3v (mirror x → −x)
-------------------------------
004 Eq. 9 reads ``δσ = [[P E_y + K1 E_x² + K2 E_y², P E_x + ΔK E_x E_y], [P E_x + ΔK E_x E_y,
−P E_y + K1 E_y² + K2 E_x²]]``. Comparing with Eq. 1 term by term gives

    P  = P_xxy = P_xyx = P_yxx = −P_yyy     (P_xxx = P_xyy = P_yxy = P_yyx = 0: mirror x → −x),
    K1 = K_xxxx = K_yyyy,   K2 = K_xxyy = K_yyxx,   ΔK = K_xyxy + K_xyyx = K_yxxy + K_yxyx.

So the mirror implied by Eq. 9 is x → −x (the paper's "mirror plane along the y-axis", k_x ↔ −k_x). A
C_3v rank-4 tensor in 2D is isotropic, ``K_αβγδ = A δ_αβδ_γδ + B δ_αγδ_βδ + C δ_αδδ_βγ``, so K1 = A+B+C,
K2 = A, ΔK = B + C = K1 − K2 as the paper states. For the totally symmetric Snap tensor (Eq. 7) A = B = C,
hence K1 = 3 K2 and ΔK = 2 K2 (AMBIGUITIES 004.3).

Ambiguity in 004 Fig. 3 (incident polarization for ΔT/T0, ΔR/R0)
----------------------------------------------------------------
The text fixes the incident polarization (π/4 to x, E_dc ∥ y) only for the rotation of Fig. 2. With that
same geometry, Eq. 9 gives ``δσ = diag(P E_y + K2 E_y², −P E_y + K1 E_y²)``; the x ↔ y swap then shows
that T and R for π/4 incidence are *even* in E_y for the Pockels term alone (the linear term of ΔT/T0 is
∝ cos 2·angle; checked in tests/test_thin_film.py). Yet Fig. 3b shows ΔT/T0 and ΔR/R0 *linear* in E_y
at small fields ("Pockels dominance"), so Fig. 3 must use a different incident polarization (most likely
along x or y; the paper does not say). :func:`transmittance_change` and :func:`reflectance_change`
therefore take the incident angle as a required argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from qgtflow.units import Z0  # Ω
TIME_CONVENTION = "exp(+i omega t) (004 Eq. 2; tau_omega = tau/(1 + i omega tau))"

__all__ = [
    "TIME_CONVENTION",
    "Z0",
    "PolarizationRotation",
    "eq9_coefficients",
    "eq9_delta_sigma",
    "field_induced_conductivity",
    "incident_jones",
    "pockels_kerr_split",
    "polarization_rotation",
    "polarization_state",
    "reflectance_change",
    "sheet_absorptance",
    "sheet_reflection_transmission",
    "transmittance_change",
]


# --------------------------------------------------------------------------------------------------
# δσ(ω; E) — 004 Eq. 1 / SI Eq. S21 and Eq. 9
# --------------------------------------------------------------------------------------------------
def field_induced_conductivity(sigma0, pockels=None, kerr=None, E_dc=None):
    """Conductivity in a DC field, ``σ_αβ = σ⁽⁰⁾_αβ + P_αβγ E_γ + K_αβγδ E_γ E_δ`` (004 Eq. 1, SI Eq. S21).

    Parameters
    ----------
    sigma0 : array (..., 2, 2), complex, S
        Field-free sheet conductance σ⁽⁰⁾(ω) (004 Eq. 4), e^{+iωt} convention.
    pockels : array (..., 2, 2, 2), complex, S·m/V, or None (= 0)
        P_αβγ; the last index contracts with E_dc.
    kerr : array (..., 2, 2, 2, 2), complex, S·m²/V², or None (= 0)
        K_αβγδ; the last two indices contract with E_dc.
    E_dc : array (..., 2), real, V/m
        In-plane DC field (E_x, E_y).

    Leading dims of all four inputs broadcast (e.g. P over ``omega`` with shape (n_ω, 2, 2, 2) and
    E_dc with shape (n_E, 1, 2) give σ of shape (n_E, n_ω, 2, 2)).

    Returns
    -------
    array (..., 2, 2), complex, S — σ(ω; E) in the e^{+iωt} convention.
    """
    sigma = np.asarray(sigma0, dtype=complex)
    if E_dc is None:
        if pockels is not None or kerr is not None:
            raise ValueError("E_dc is required when a Pockels or Kerr tensor is given")
        return sigma.copy()
    E = np.asarray(E_dc, dtype=float)
    if E.shape[-1:] != (2,):
        raise ValueError(f"E_dc must have a trailing dimension of length 2, got shape {E.shape}")
    if sigma.shape[-2:] != (2, 2):
        raise ValueError(f"sigma0 must end in (2, 2), got shape {sigma.shape}")
    delta = np.zeros((), dtype=complex)
    if pockels is not None:
        P = np.asarray(pockels, dtype=complex)
        if P.shape[-3:] != (2, 2, 2):
            raise ValueError(f"pockels must end in (2, 2, 2), got shape {P.shape}")
        delta = delta + np.einsum("...abc,...c->...ab", P, E)
    if kerr is not None:
        K = np.asarray(kerr, dtype=complex)
        if K.shape[-4:] != (2, 2, 2, 2):
            raise ValueError(f"kerr must end in (2, 2, 2, 2), got shape {K.shape}")
        delta = delta + np.einsum("...abcd,...c,...d->...ab", K, E, E)
    return sigma + delta


def eq9_coefficients(pockels=None, kerr=None):
    """Scalar coefficients P, K1, K2, ΔK of 004 Eq. 9 from the full tensors (C_3v, mirror x → −x).

    Entries (index convention of Eq. 1): ``P = P_xxy = P_xyx = P_yxx = −P_yyy``, ``K1 = K_xxxx = K_yyyy``,
    ``K2 = K_xxyy = K_yyxx``, ``ΔK = K_xyxy + K_xyyx (= K_yxxy + K_yxyx)``. Each is returned as the mean
    of the entries that C_3v makes equal, so for C_3v-symmetric input it is exact and for slightly
    non-symmetric (e.g. numerically noisy) input it is the natural average. No symmetry is checked
    here; compare :func:`eq9_delta_sigma` with :func:`field_induced_conductivity` to test it.
    With C_3v, ΔK = K1 − K2 identically; for the Snap tensor (Eq. 7) K1 = 3 K2 (AMBIGUITIES 004.3).

    Parameters
    ----------
    pockels : array (..., 2, 2, 2), S·m/V, or None
    kerr : array (..., 2, 2, 2, 2), S·m²/V², or None

    Returns
    -------
    dict with keys ``P`` (S·m/V) and ``K1``, ``K2``, ``dK`` (S·m²/V²), each of shape (...); keys for a
    tensor given as None are omitted. Complex, e^{+iωt} convention.
    """
    out = {}
    x, y = 0, 1
    if pockels is not None:
        P = np.asarray(pockels)
        out["P"] = (P[..., x, x, y] + P[..., x, y, x] + P[..., y, x, x] - P[..., y, y, y]) / 4
    if kerr is not None:
        K = np.asarray(kerr)
        out["K1"] = (K[..., x, x, x, x] + K[..., y, y, y, y]) / 2
        out["K2"] = (K[..., x, x, y, y] + K[..., y, y, x, x]) / 2
        out["dK"] = (K[..., x, y, x, y] + K[..., x, y, y, x] + K[..., y, x, x, y] + K[..., y, x, y, x]) / 2
    return out


def eq9_delta_sigma(E_dc, P=0.0, K1=0.0, K2=0.0, dK=None):
    """δσ of 004 Eq. 9 (C_3v, mirror x → −x) from the scalar coefficients.

    ``δσ = [[P E_y + K1 E_x² + K2 E_y², P E_x + ΔK E_x E_y], [P E_x + ΔK E_x E_y, −P E_y + K1 E_y² + K2 E_x²]]``

    Parameters
    ----------
    E_dc : array (..., 2), V/m
    P : array (...), S·m/V;  K1, K2, dK : arrays (...), S·m²/V²
        ``dK`` defaults to ``K1 − K2`` as stated below Eq. 9.

    Returns
    -------
    array (..., 2, 2), complex, S (e^{+iωt} convention).
    """
    E = np.asarray(E_dc, dtype=float)
    Ex, Ey = E[..., 0], E[..., 1]
    P, K1, K2 = (np.asarray(v, dtype=complex) for v in (P, K1, K2))
    dK = K1 - K2 if dK is None else np.asarray(dK, dtype=complex)
    xx = P * Ey + K1 * Ex**2 + K2 * Ey**2
    xy = P * Ex + dK * Ex * Ey
    yy = -P * Ey + K1 * Ey**2 + K2 * Ex**2
    xx, xy, yy = np.broadcast_arrays(xx, xy, yy)
    return np.stack([np.stack([xx, xy], -1), np.stack([xy, yy], -1)], -2)


# --------------------------------------------------------------------------------------------------
# Sheet optics — 004 SI Eqs. S46–S52
# --------------------------------------------------------------------------------------------------
def sheet_reflection_transmission(sigma, z0=Z0):
    """Reflection and transmission matrices r̄, t̄ of a conducting sheet in vacuum (004 SI Eqs. S49, S52).

    Normal incidence along +z from side 1 onto the sheet z = 0; ``E^r = r̄ E^i``, ``E^t = t̄ E^i`` with all
    Jones vectors (E_x, E_y) in the fixed lab frame. Closed forms (general σ; the paper's S49/S52 are
    the case σ_xy = σ_yx)::

        Y  = (2/Z0 + σ_xx)(2/Z0 + σ_yy) − σ_xy σ_yx
        t̄ = (2/Y) [[2/Z0² + σ_yy/Z0, −σ_xy/Z0], [−σ_yx/Z0, 2/Z0² + σ_xx/Z0]]              (S52)
        r̄ = (1/Y) [[−2σ_xx/Z0 + σ_xy σ_yx − σ_xx σ_yy, −2σ_xy/Z0],
                   [−2σ_yx/Z0, −2σ_yy/Z0 + σ_xy σ_yx − σ_xx σ_yy]]                           (S49)

    i.e. ``t̄ = 2(2 + Z0σ)^{-1}``, ``r̄ = t̄ − 1``; isotropic σ: ``t = 2/(2 + Z0σ)``, ``r = −Z0σ/(2 + Z0σ)``.

    Parameters
    ----------
    sigma : array (..., 2, 2), complex, S (sheet conductance). Either time convention; r̄, t̄ come out
        in the same one (004: e^{+iωt}).
    z0 : float, Ω — impedance of the surrounding medium (default: vacuum, CODATA).

    Returns
    -------
    (r, t) : two complex arrays (..., 2, 2), dimensionless.
    """
    s = np.asarray(sigma, dtype=complex)
    if s.shape[-2:] != (2, 2):
        raise ValueError(f"sigma must end in (2, 2), got shape {s.shape}")
    g = 1.0 / z0
    sxx, sxy, syx, syy = s[..., 0, 0], s[..., 0, 1], s[..., 1, 0], s[..., 1, 1]
    Y = (2 * g + sxx) * (2 * g + syy) - sxy * syx
    cross = sxy * syx - sxx * syy
    r = np.stack(
        [
            np.stack([-2 * g * sxx + cross, -2 * g * sxy], -1),
            np.stack([-2 * g * syx, -2 * g * syy + cross], -1),
        ],
        -2,
    ) / Y[..., None, None]
    t = (2 / Y)[..., None, None] * np.stack(
        [
            np.stack([2 * g**2 + g * syy, -g * sxy], -1),
            np.stack([-g * syx, 2 * g**2 + g * sxx], -1),
        ],
        -2,
    )
    return r, t


def sheet_absorptance(sigma, jones_in, z0=Z0):
    """Fraction of the incident intensity absorbed by the sheet: ``A = Z0 Re(E^t† σ E^t) / |E^i|²``.

    Time-averaged Joule power per area ``Re(E^t†σE^t)/2`` over the incident flux ``|E^i|²/(2Z0)``
    (boundary conditions of 004 SI Sec. 2). Energy balance: ``R + T + A = 1``. Convention-independent.

    Parameters
    ----------
    sigma : (..., 2, 2) complex, S;  jones_in : (..., 2) complex incident Jones vector.

    Returns
    -------
    array (...), dimensionless.
    """
    s = np.asarray(sigma, dtype=complex)
    Ei = np.asarray(jones_in, dtype=complex)
    _, t = sheet_reflection_transmission(s, z0)
    Et = np.einsum("...ab,...b->...a", t, Ei)
    j = np.einsum("...ab,...b->...a", s, Et)
    return z0 * np.real(np.sum(np.conj(Et) * j, -1)) / np.sum(np.abs(Ei) ** 2, -1)


# --------------------------------------------------------------------------------------------------
# Polarization — 004 Fig. 2
# --------------------------------------------------------------------------------------------------
def incident_jones(angle=np.pi / 4):
    """Linear-polarization Jones vector ``(cos angle, sin angle)`` (angle from the x axis, radians).

    004 Fig. 2 / 3: angle = π/4 ("π/4 to the x axis" = "π/4 away from the y-axis").
    """
    a = np.asarray(angle, dtype=float)
    return np.stack([np.cos(a), np.sin(a)], -1).astype(complex)


def polarization_state(jones, time_sign=+1):
    """Major-axis angle and ellipticity of a Jones vector (used for 004 Fig. 2).

    With Stokes parameters ``S0 = |E_x|²+|E_y|²``, ``S1 = |E_x|²−|E_y|²``, ``S2 = 2Re(E_x* E_y)`` and
    ``S3 = −2·time_sign·Im(E_x* E_y)``:

    * ``angle = ½ atan2(S2, S1)`` ∈ (−π/2, π/2], measured from +x toward +y (radians);
    * ``ellipticity = tan χ`` with ``sin 2χ = S3/S0``: signed minor/major axis ratio in [−1, 1];
      positive when the real field vector ``Re[E e^{time_sign·iωt}]`` turns counter-clockwise
      (x → y) in the fixed lab xy plane seen from +z. 004 uses e^{+iωt}, ``time_sign = +1``; pass −1
      for Jones vectors in the e^{−iωt} convention. The handedness relative to the propagation
      direction is opposite for a wave travelling along −z (the reflected wave).

    Parameters
    ----------
    jones : array (..., 2), complex (any units).

    Returns
    -------
    (angle, ellipticity) : two real arrays (...).
    """
    J = np.asarray(jones, dtype=complex)
    Ex, Ey = J[..., 0], J[..., 1]
    S0 = np.abs(Ex) ** 2 + np.abs(Ey) ** 2
    S1 = np.abs(Ex) ** 2 - np.abs(Ey) ** 2
    c = np.conj(Ex) * Ey
    S2 = 2 * c.real
    S3 = -2 * time_sign * c.imag
    angle = 0.5 * np.arctan2(S2, S1)
    with np.errstate(invalid="ignore", divide="ignore"):
        chi = 0.5 * np.arcsin(np.clip(S3 / S0, -1.0, 1.0))
    return angle, np.tan(chi)


def _wrap_half_pi(d):
    """Wrap an axis-angle difference into [−π/2, π/2) (axes are defined modulo π)."""
    return (d + np.pi / 2) % np.pi - np.pi / 2


class PolarizationRotation(NamedTuple):
    """Result of :func:`polarization_rotation` (radians; ellipticities dimensionless, see
    :func:`polarization_state`)."""

    dtheta_t: np.ndarray
    dtheta_r: np.ndarray
    ellipticity_t: np.ndarray
    ellipticity_r: np.ndarray


def polarization_rotation(sigma0, sigma, angle=np.pi / 4, z0=Z0, time_sign=+1):
    """Field-induced rotation of the major axis of transmitted and reflected light (004 Fig. 2).

    Incident light is linearly polarized at ``angle`` to the x axis (004: π/4; the DC field is along y
    there). ``Δθ^t = θ(t̄(σ)E^i) − θ(t̄(σ⁰)E^i)`` and likewise for ``Δθ^r``, with θ the major-axis angle
    of :func:`polarization_state`, wrapped to [−π/2, π/2). For an isotropic σ⁰ the zero-field beams are
    linearly polarized along ``angle`` so Δθ is the rotation away from the incident axis. Ellipticities
    are those of the beams in the field (zero-field ellipticity vanishes for isotropic σ⁰).

    Parameters
    ----------
    sigma0 : (..., 2, 2) complex, S — zero-field sheet conductance σ⁽⁰⁾(ω).
    sigma : (..., 2, 2) complex, S — σ(ω; E) e.g. from :func:`field_induced_conductivity`
        (broadcasts against sigma0).
    angle : float or array (...), rad.
    z0 : float, Ω.  time_sign : +1 for e^{+iωt} (004), −1 for e^{−iωt}; only affects the ellipticity sign.

    Returns
    -------
    PolarizationRotation(dtheta_t, dtheta_r, ellipticity_t, ellipticity_r), arrays (...).
    """
    Ei = incident_jones(angle)
    r0, t0 = sheet_reflection_transmission(sigma0, z0)
    r, t = sheet_reflection_transmission(sigma, z0)
    mv = lambda m, v: np.einsum("...ab,...b->...a", m, v)
    th_t0, _ = polarization_state(mv(t0, Ei), time_sign)
    th_r0, _ = polarization_state(mv(r0, Ei), time_sign)
    th_t, el_t = polarization_state(mv(t, Ei), time_sign)
    th_r, el_r = polarization_state(mv(r, Ei), time_sign)
    return PolarizationRotation(_wrap_half_pi(th_t - th_t0), _wrap_half_pi(th_r - th_r0), el_t, el_r)


# --------------------------------------------------------------------------------------------------
# Transmittance / reflectance modulation — 004 Fig. 3
# --------------------------------------------------------------------------------------------------
def _intensity(m, Ei):
    E = np.einsum("...ab,...b->...a", m, Ei)
    return np.sum(np.abs(E) ** 2, -1) / np.sum(np.abs(Ei) ** 2, -1)


def transmittance_change(sigma0, sigma, angle, z0=Z0):
    """ΔT/T0 = (T − T0)/T0 with ``T = |t̄ E^i|²/|E^i|²`` (004 Fig. 3 and text: ΔT = T_total − T_0).

    Vacuum on both sides, so the intensity ratio is the ratio of |E|²; incident light linearly polarized
    at ``angle`` (rad) to x. 004 does not state the angle used in Fig. 3; at π/4 with E_dc ∥ y the
    Pockels term gives no linear-in-E change (see the module docstring). Convention-independent. Dimensionless (multiply by 100 for the % of
    Fig. 3). sigma0, sigma: (..., 2, 2) complex, S; returns array (...).
    """
    Ei = incident_jones(angle)
    _, t0 = sheet_reflection_transmission(sigma0, z0)
    _, t = sheet_reflection_transmission(sigma, z0)
    T0 = _intensity(t0, Ei)
    return (_intensity(t, Ei) - T0) / T0


def reflectance_change(sigma0, sigma, angle, z0=Z0):
    """ΔR/R0 = (R − R0)/R0 with ``R = |r̄ E^i|²/|E^i|²`` (004 Fig. 3 and text: ΔR = R_total − R_0).

    Same conventions as :func:`transmittance_change`. Returns array (...), dimensionless.
    """
    Ei = incident_jones(angle)
    r0, _ = sheet_reflection_transmission(sigma0, z0)
    r, _ = sheet_reflection_transmission(sigma, z0)
    R0 = _intensity(r0, Ei)
    return (_intensity(r, Ei) - R0) / R0


# --------------------------------------------------------------------------------------------------
# Pockels-only / Kerr-only shares — 004 Fig. 3 bars
# --------------------------------------------------------------------------------------------------
def pockels_kerr_split(observable: Callable, sigma0, pockels, kerr, E_dc, **kwargs) -> dict:
    """Evaluate an observable with both EO terms, with Pockels only (K = 0) and with Kerr only (P = 0).

    ``observable(sigma0, sigma, **kwargs)`` is e.g. :func:`transmittance_change`,
    :func:`reflectance_change` or ``lambda s0, s: polarization_rotation(s0, s).dtheta_t``. Returns a dict
    ``{"total", "pockels", "kerr", "pockels_fraction", "kerr_fraction"}``; the fractions are
    ``|pockels| / (|pockels| + |kerr|)`` and its complement — our reading of the "relative
    contributions" bars of 004 Fig. 3 (the paper does not define them). The observables are nonlinear
    in δσ, so ``total`` is in general *not* ``pockels + kerr`` (they agree to leading order in E).
    Units: those of the observable. Inputs as in :func:`field_induced_conductivity`.
    """
    total = observable(sigma0, field_induced_conductivity(sigma0, pockels, kerr, E_dc), **kwargs)
    p_only = observable(sigma0, field_induced_conductivity(sigma0, pockels, None, E_dc), **kwargs)
    k_only = observable(sigma0, field_induced_conductivity(sigma0, None, kerr, E_dc), **kwargs)
    denom = np.abs(p_only) + np.abs(k_only)
    with np.errstate(invalid="ignore", divide="ignore"):
        pf = np.where(denom > 0, np.abs(p_only) / np.where(denom > 0, denom, 1.0), np.nan)
    return {"total": total, "pockels": p_only, "kerr": k_only, "pockels_fraction": pf, "kerr_fraction": 1 - pf}
