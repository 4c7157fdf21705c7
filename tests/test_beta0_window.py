"""003 Eq. 14: the in-gap level of β^(0)_zxx for the massive Dirac model and its k·p-window dependence.

In the gap only the Fermi-sea term of Eq. 14 survives (valence band full), so the level is μ-independent and, by
dimensional analysis, c·μ_B e²/Δ² with no v dependence; its infinite-window value is c = −1/(240π)
(docs/AMBIGUITIES-notes.md 003.A). The sea integrand decays as A(θ)/k⁵, so a square window [−K, K]² misses
≈ K⁻³ ∫dθ A(θ) R(θ)⁻³/3 with R(θ) = 1/max(|cos θ|, |sin θ|): 3.5 % at the dirac_ndsm study's window (vK/Δ = 2.63).
"""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.geometry.fields import compute_fields
from qgtflow.models import build_model

BETA_INF = -1.0 / (240.0 * np.pi)  # magnetization_muB, natural units, Δ = 1


def _sea_zxx(model, k):
    return compute_fields(model, k, optional=("zeeman_nonlinear_sea",))["zeeman_nonlinear_sea"][:, 0, 0, 0, 2]


def test_in_gap_level_is_minus_one_over_240_pi_by_radial_quadrature():
    """Independent of grids and windows: Gauss quadrature of the valence sea integrand over the whole plane
    (r = t/(1 − t)), for two Δ and v (level ∝ 1/Δ², independent of v)."""
    th, wt = np.polynomial.legendre.leggauss(48)
    th, wt = np.pi * (th + 1), np.pi * wt
    x, w = np.polynomial.legendre.leggauss(160)
    t, w = (x + 1) / 2, w / 2
    r, w = t / (1 - t), w / (1 - t) ** 2
    k = np.stack([np.outer(r, np.cos(th)).ravel(), np.outer(r, np.sin(th)).ravel()], 1)
    for v, mass in ((1.0, 1.0), (0.4, 0.5)):
        s = _sea_zxx(build_model("massive_dirac", {"v": v, "mass": mass}), k * mass / v).reshape(r.size, th.size)
        level = -(w * r) @ s @ wt / (4 * np.pi ** 2) * (mass / v) ** 2  # magnetization = −spin density
        assert level == pytest.approx(BETA_INF / mass ** 2, rel=2e-6)


@pytest.fixture(scope="module")
def square_windows(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("beta0")
    out = {}
    for K in (4.0, 8.0):  # 10 points per unit: the grid error is < 1e-5 (smooth sea integrand), the window's 1e-2
        ds = evaluate({"name": "b0", "units": "natural", "model": {"name": "massive_dirac", "params": {"mass": 1.0}},
                       "kgrid": {"sizes": [int(10 * K)], "kmax": K}, "mu": [0.0, 0.5], "temperature": [0.05],
                       "responses": ["spin_beta_nl_tau0"]}, n_workers=0, workdir=tmp / str(K))
        out[K] = ds["spin_beta_nl_tau0"].sel(quantity="magnetization_muB", spin="z").isel(T=0)
    return out


def test_in_gap_level_window_dependence_is_the_k_minus_3_tail(square_windows):
    model = build_model("massive_dirac", {"mass": 1.0})
    th, wt = np.polynomial.legendre.leggauss(128)
    th, wt = np.pi * (th + 1), np.pi * wt
    big = 1e4
    A = _sea_zxx(model, big * np.stack([np.cos(th), np.sin(th)], 1)) * big ** 5
    rsq = 1.0 / np.maximum(np.abs(np.cos(th)), np.abs(np.sin(th)))
    # relative tail × K³ (≈ 0.94): the window misses −∫_outside(−S) = β∞ − β(K) in magnetization units
    c_sq = (wt @ (A * rsq ** -3 / 3)) / (4 * np.pi ** 2) / BETA_INF
    assert c_sq == pytest.approx(0.938, rel=2e-3)
    level = {}
    for K, b in square_windows.items():
        xx = b.sel(i="x", j="x").values
        np.testing.assert_allclose(b.sel(i="y", j="y").values, xx, rtol=1e-9)  # isotropic
        np.testing.assert_allclose(xx, xx[0], rtol=1e-4)  # flat in the gap
        level[K] = xx[0]
    tail = {K: lvl / BETA_INF - 1.0 for K, lvl in level.items()}  # 1.23 %, 0.175 %
    assert tail[4.0] == pytest.approx(c_sq / 4.0 ** 3, rel=0.25)  # O(K⁻⁵) corrections at K = 4
    assert tail[8.0] == pytest.approx(c_sq / 8.0 ** 3, rel=0.06)
    extrapolated = (8 * level[8.0] - level[4.0]) / 7  # K⁻³ Richardson step
    assert extrapolated == pytest.approx(BETA_INF, rel=5e-4)


def test_report_level_in_store_units_is_the_closed_form():
    """The report's β∞ (fig003_beta0_window) in the physical store's units V⁻²: −1/(240π Δ[eV]²) (μ_B per m² per
    (V/m)², e E in eV/m), and the window ratio v·kmax/Δ of the default study dirac_ndsm."""
    from qgtflow.report.beta0_window import infinite_window_level, window_ratio

    cfg = {"model": {"name": "massive_dirac", "params": {"v": 0.06582119569, "mass": 0.04}}, "units": "physical",
           "kgrid": {"kmax": 1.6}}
    assert infinite_window_level(cfg, "V-2") == pytest.approx(BETA_INF / 0.04 ** 2, rel=1e-9)
    mev = {**cfg, "model": {"name": "massive_dirac", "params": {"v": 65.82119569, "mass": 40.0}}, "units": {"energy": "meV"}}
    assert infinite_window_level(mev, "V-2") == pytest.approx(BETA_INF / 0.04 ** 2, rel=1e-9)  # same Δ in meV
    assert window_ratio(cfg) == pytest.approx(1.6 * 0.06582119569 / 0.04)
