"""000 appendix: the warped Dirac model h = (kx(1+αkx), ky(1+βky), M) and its inverse-Faraday coefficient.

The appendix gives the densities b̃_zαβ = ε_zνδ ∂_α∂_ν g_δβ of an unnamed model (Eqs. 29–32, in k̃ = k/k_F,
α̃ = αk_F, β̃ = βk_F, M̃ = M/(ħvk_F)); Eqs. 29, 31 and 32 are those of ``warped_dirac`` exactly, Eq. 30 as printed
is not (docs/AMBIGUITIES-notes.md, 000.A). Integrated checks compare a_zαβ with the closed-form densities summed
over the occupied conduction states (an independent route: no projector kernel, no integration by parts).
"""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.geometry.fields import compute_fields
from qgtflow.models import build_model


def _den(x, y, a, b, M):
    return x**2 * (a * x + 1)**2 + y**2 * (b * y + 1)**2 + M**2


def eq29(x, y, a, b, M):
    return -(y * (2*a*x + 1) * (b*y + 1) * (2*b*y + 1) * (a * (x**2 * (3*a*x*(a*x + 2) + 5) - y**2 * (b*y + 1)**2 - M**2)
                                                       + 2*x)) / (2 * _den(x, y, a, b, M)**3)


def eq30_printed(x, y, a, b, M):
    """000 Eq. 30 as printed (its 'b' read as β)."""
    s = 6*a*x*(a*x + 1) + 1
    return -((2*b*y*(b*y + 1) + 1) * (b**2 * y**4 * s + 2*b*y**3 * s + M**2 * s
                                      - x**2 * (a*x + 1)**2 * (10*a*x*(a*x + 1) + 1))) / (4 * _den(x, y, a, b, M)**3)


def eq30_corrected(x, y, a, b, M):
    """Eq. 30 with the y² of y²(βy+1)² restored and the last factor 10αx(αx+1) + 3: = −Eq. 31 (x↔y, α↔β)."""
    s = 6*a*x*(a*x + 1) + 1
    return -((2*b*y*(b*y + 1) + 1) * ((y**2 * (b*y + 1)**2 + M**2) * s
                                      - x**2 * (a*x + 1)**2 * (10*a*x*(a*x + 1) + 3))) / (4 * _den(x, y, a, b, M)**3)


def eq31(x, y, a, b, M):
    return ((2*a*x*(a*x + 1) + 1) * (-y * (b*y + 1) * (-6*b*x**2 * (a*x + 1)**2 + b*y**2 * (10*b*y*(b*y + 2) + 13) + 3*y)
                                     + x**2 * (a*x + 1)**2 + M**2 * (6*b*y*(b*y + 1) + 1))) / (4 * _den(x, y, a, b, M)**3)


def eq32(x, y, a, b, M):
    return -(x * (a*x + 1) * (2*a*x + 1) * (2*b*y + 1) * (b * (x**2 * (a*x + 1)**2 - y**2 * (3*b*y*(b*y + 2) + 5) + M**2)
                                                       - 2*y)) / (2 * _den(x, y, a, b, M)**3)


CLOSED = {("x", "x"): eq29, ("x", "y"): eq30_corrected, ("y", "x"): eq31, ("y", "y"): eq32}
AX = {"x": 0, "y": 1}


def ife_density(quad, al, be):
    """ε_zνδ ∂_α∂_ν g_δβ from the stored quadrupole [..., a, b, c, e] = ∂_c∂_e g^{ab}."""
    a, b = AX[al], AX[be]
    return quad[..., 1, b, a, 0] - quad[..., 0, b, a, 1]


def test_densities_are_eqs_29_to_32_and_eq30_is_misprinted():
    """Both bands, at k_F = 1.7 (checks the appendix's rescaling): b(k) = b̃(k/k_F; αk_F, βk_F, M/(vk_F)) / k_F⁴."""
    v, alpha, beta, mass, kF = 0.8, 0.6, -0.35, 0.3, 1.7
    model = build_model("warped_dirac", {"v": v, "alpha": alpha, "beta": beta, "mass": mass})
    k = np.random.default_rng(3).uniform(-2.0, 2.0, (60, 2))
    quad = compute_fields(model, k, optional=("quantum_metric_quadrupole_density",))["quantum_metric_quadrupole_density"]
    x, y = k[:, 0] / kF, k[:, 1] / kF
    args = (x, y, alpha * kF, beta * kF, mass / (v * kF))
    for (al, be), closed in CLOSED.items():
        expected = closed(*args) / kF**4
        for band in range(2):
            np.testing.assert_allclose(ife_density(quad[:, band], al, be), expected, rtol=1e-9,
                                       atol=1e-11 * np.abs(expected).max(), err_msg=f"b_z{al}{be}, band {band}")
    # Eq. 30 as printed misses the density by O(1); the corrected form is −Eq. 31 with x↔y, α↔β
    printed = eq30_printed(*args) / kF**4
    assert np.abs(printed - CLOSED[("x", "y")](*args) / kF**4).max() > 0.1 * np.abs(printed).max()
    np.testing.assert_allclose(eq30_corrected(*args), -eq31(y, x, beta * kF, alpha * kF, mass / (v * kF)), rtol=1e-12)


def test_four_dirac_points_are_mirror_images():
    """h_x(−1/α − kx) = h_x(kx): the spectrum and the densities are even about kx = −1/(2α) and ky = −1/(2β)."""
    alpha, beta = 1.0, 0.5
    model = build_model("warped_dirac", {"alpha": alpha, "beta": beta, "mass": 0.5})
    k = np.random.default_rng(5).uniform(-2.0, 1.0, (30, 2))
    images = [k * [-1, 1] + [-1 / alpha, 0], k * [1, -1] + [0, -1 / beta]]
    fields = [compute_fields(model, q, optional=("quantum_metric_quadrupole_density",)) for q in [k] + images]
    for other in fields[1:]:
        np.testing.assert_allclose(other["energy"], fields[0]["energy"], atol=1e-12)
        for al, be in CLOSED:
            b0, b1 = (ife_density(f["quantum_metric_quadrupole_density"], al, be) for f in (fields[0], other))
            sign = 1.0 if al != be else -1.0  # a mirror flips components with an odd number of its axis
            np.testing.assert_allclose(b1, sign * b0, rtol=1e-9, atol=1e-12 * np.abs(b0).max())


WARPED = {"name": "warped_dirac", "params": {"v": 1.0, "alpha": 1.0, "beta": 0.5, "mass": 0.5}}


def _closed_form_ife(mu, kT, n=900, box=((-2.2, 1.2), (-3.2, 1.2))):
    """a_zαβ = (τe³/8ħ²) Σ_n ∫[dk] f0 b_zαβ (natural units, τ = 1) with the closed-form densities. The density is
    the same for both bands and a total derivative: the filled valence band integrates to zero over the plane, so
    only the conduction band's f0(E − μ) b (exponentially confined to its Fermi sea) is summed, by the midpoint rule."""
    (x0, x1), (y0, y1) = box
    hx, hy = (x1 - x0) / n, (y1 - y0) / n
    x, y = np.meshgrid(x0 + hx * (np.arange(n) + 0.5), y0 + hy * (np.arange(n) + 0.5), indexing="ij")
    p = WARPED["params"]
    energy = np.sqrt(_den(x, y, p["alpha"], p["beta"], p["mass"]))
    f0 = 0.5 * (1.0 - np.tanh((energy - mu) / (2 * kT)))
    w = hx * hy / (2 * np.pi) ** 2 / 8.0
    return {key: w * float(np.sum(f0 * closed(x, y, p["alpha"], p["beta"], p["mass"]))) for key, closed in CLOSED.items()}


@pytest.fixture(scope="module")
def warped_ife(tmp_path_factory):
    study = {"name": "warped", "units": "natural", "model": WARPED, "kgrid": {"sizes": [256], "kmax": [2.0, 3.0]},
             "mu": [0.6, 0.8], "temperature": [0.0, 0.04], "tau": 1.0, "integration": "tetrahedron",
             "responses": ["ife_coefficient"]}
    return evaluate(study, n_workers=0, workdir=tmp_path_factory.mktemp("warped"))["ife_coefficient"]


def test_ife_coefficient_equals_the_closed_form_densities_integrated(warped_ife):
    """The computed a_zαβ (Fermi-surface Christoffel form, 000 Eq. 18, linear triangles) equals the closed-form
    Eqs. 29–32 summed over the Fermi sea at finite T."""
    a = warped_ife.sel(part="total", pseudovector="z", T=0.04)
    for mu in (0.6, 0.8):
        ref = _closed_form_ife(mu, 0.04)
        scale = max(abs(v) for v in ref.values())
        for (al, be), value in ref.items():
            assert float(a.sel(mu=mu, i=al, j=be)) == pytest.approx(value, abs=1e-3 * scale), (mu, al, be)  # ~4e-4 at 256²


def test_linear_polarization_ife_is_nonzero_at_zero_temperature(warped_ife):
    """000's headline at T = 0: a_z(xy) ≠ 0 next to a_z[xy]; a_zxx = a_zyy = 0 (the two mirrors above)."""
    a = warped_ife.sel(pseudovector="z", T=0.0)
    sym, anti = (a.sel(part=p, i="x", j="y").values for p in ("symmetric", "antisymmetric"))
    scale = np.abs(anti).max()
    assert np.all(np.abs(sym) > 0.05 * scale), (sym, anti)
    for ax in "xy":
        assert np.abs(a.sel(part="total", i=ax, j=ax).values).max() < 2e-3 * scale


def test_equal_warping_has_no_symmetric_part(tmp_path):
    """α = β: h_x ↔ h_y under kx ↔ ky maps a_zxy to −a_zyx, so a_z(xy) = 0 — the warping must be anisotropic."""
    study = {"name": "iso", "units": "natural", "kgrid": {"sizes": [128], "kmax": 2.6}, "mu": [0.7],
             "temperature": [0.05], "tau": 1.0, "integration": "tetrahedron", "responses": ["ife_coefficient"],
             "model": {"name": "warped_dirac", "params": {"alpha": 0.5, "beta": 0.5, "mass": 0.5}}}
    a = evaluate(study, n_workers=0, workdir=tmp_path)["ife_coefficient"].sel(pseudovector="z", i="x", j="y")
    anti = float(np.abs(a.sel(part="antisymmetric")).max())
    assert anti > 0 and float(np.abs(a.sel(part="symmetric")).max()) < 1e-8 * anti
