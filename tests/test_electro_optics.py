"""004 through the stages: σ^(0)(ω), BCD and skew Pockels, Snap Kerr, thin-film observables.

Gapped bilayer graphene (004 Eq. 8, both valleys, C_3v) and a tilted massive Dirac model (no C_3): the
paper's symmetry statements, the high-frequency laws of 004 Table 1, Eq. 7 = Eq. S29, the Drude limit of
σ^(0)(ω), the BCD Pockels tensor from the Berry-curvature dipole, the isotropic-sheet optics, and refusals.
"""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.errors import ConfigError
from qgtflow.geometry.fields import compute_fields
from qgtflow.models import build_model
from qgtflow.reduce import thin_film
from qgtflow.reduce.responses import RESPONSES
from qgtflow.reduce.spectral import EnergyBins, accumulate, contract
from qgtflow.stages import reduce_stage
from qgtflow.study import load_study

TAU = 1e-12
HBAR_EV_S = 6.582119569e-16
WT = np.array([1.0, 2.0, 20.0, 40.0])  # ωτ
BLG = {"name": "blg", "model": {"name": "bilayer_graphene_gapped"}, "kgrid": {"sizes": [120]},
       "mu": [0.065], "temperature": [30.0], "tau": TAU, "omega": (WT * HBAR_EV_S / TAU).tolist(),
       "impurities": {"density": 1e-5, "potential": 10.0}, "electro_optics": {"e_dc": [-2e4, 0.0, 1e4, 2e4], "incident_angle": [np.pi / 4, np.pi / 2]},
       "responses": ["sigma_drude", "sigma_optical", "berry_curvature_dipole", "pockels_bcd", "pockels_skew",
                     "snap_tensor", "kerr_snap", "reflection", "transmission", "polarization_rotation",
                     "delta_t_over_t", "delta_r_over_r"]}


@pytest.fixture(scope="module")
def blg(tmp_path_factory):
    return evaluate(BLG, n_workers=0, workdir=tmp_path_factory.mktemp("blg"))


def cplx(da):
    return da.sel(complex_part="real").values + 1j * da.sel(complex_part="imag").values


def test_optical_conductivity_is_drude_times_tau_omega(blg):
    s = cplx(blg["sigma_optical"].isel(mu=0, T=0))  # (ω, i, j)
    drude = blg["sigma_drude"].isel(mu=0, T=0).values
    np.testing.assert_allclose(s, drude[None] / (1 + 1j * WT[:, None, None]), rtol=1e-9)  # ħ to 10 digits here
    assert blg["sigma_optical"].attrs["units"] == "S" and "e^{+iωt}" in blg["sigma_optical"].attrs["time_convention"]
    assert s[0, 0, 0].imag < 0  # 004's e^{+iωt}: Im σ = −ωτ Re σ


def test_snap_kerr_c3v_and_table1(blg):
    J = blg["snap_tensor"].isel(mu=0, T=0)
    xxxx, xxyy, yyyy = (float(J.sel(i=a, j=b, k=c, l=d)) for a, b, c, d in ("xxxx", "xxyy", "yyyy"))
    assert xxxx > 0
    np.testing.assert_allclose(xxxx, yyyy, rtol=1e-3)  # C_3v: isotropic
    np.testing.assert_allclose(xxxx, 3 * xxyy, rtol=1e-3)  # AMBIGUITIES 004.3: K1 = 3 K2
    vals = J.values
    for perm in [(0, 1, 3, 2), (0, 2, 1, 3), (1, 0, 2, 3), (3, 1, 2, 0)]:  # totally symmetric
        np.testing.assert_allclose(vals, vals.transpose(perm), atol=1e-6 * xxxx)
    K = cplx(blg["kerr_snap"].isel(mu=0, T=0).sel(i="x", j="x", k="x", l="x"))
    g = lambda wt: (1 / (1 + 1j * wt)) ** 3 + (1 / (1 + 1j * wt)) ** 2 + 1 / (1 + 1j * wt)
    np.testing.assert_allclose(K, TAU ** 3 * g(WT) * xxxx, rtol=1e-9)
    # 004 Table 1 at ωτ ≫ 1: Re K ∝ ω⁻⁴, Im K ∝ ω⁻¹
    np.testing.assert_allclose(K.real[2] / K.real[3], 16, rtol=0.05)
    np.testing.assert_allclose(K.imag[2] / K.imag[3], 2, rtol=0.05)


def test_skew_pockels_c3v_table1_and_bcd_vanishes(blg):
    P = cplx(blg["pockels_skew"].isel(mu=0, T=0))  # (ω, i, j, k)
    ax = {"x": 0, "y": 1}
    p = lambda s: P[(slice(None),) + tuple(ax[c] for c in s)]
    scale = np.abs(p("yyy")).max()
    assert scale > 0
    for odd in ("xxx", "xyy", "yxy", "yyx"):  # mirror x → −x
        assert np.abs(p(odd)).max() < 1e-2 * scale, odd
    for same in ("xxy", "xyx", "yxx"):  # 004 Eq. 9: P_xxy = P_xyx = P_yxx = −P_yyy
        np.testing.assert_allclose(p(same), -p("yyy"), rtol=0.03, atol=1e-3 * scale)
    # 004 Table 1 at ωτ ≫ 1: Re P ∝ ω⁻², Im P ∝ ω⁻¹
    np.testing.assert_allclose(p("yyy").real[2] / p("yyy").real[3], 4, rtol=0.05)
    np.testing.assert_allclose(p("yyy").imag[2] / p("yyy").imag[3], 2, rtol=0.05)
    assert 0.5e-12 < blg["pockels_skew"].attrs["born_transport_time"] < 2e-12  # 004: τ ≈ 1 ps
    # C_3v kills the Berry-curvature dipole and with it the BCD Pockels term
    assert np.abs(blg["pockels_bcd"].values).max() < 1e-6 * scale


def test_thin_film_outputs(blg):
    s0 = cplx(blg["sigma_optical"].isel(mu=0, T=0))
    r = cplx(blg["reflection"].isel(mu=0, T=0).sel(e_dc=0.0))  # (ω, 2, 2)
    z0s = thin_film.Z0 * s0[:, 0, 0]
    np.testing.assert_allclose(r[:, 0, 0], -z0s / (2 + z0s), rtol=1e-10)  # isotropic sheet
    z0s_yy = thin_film.Z0 * s0[:, 1, 1]
    np.testing.assert_allclose(cplx(blg["transmission"].isel(mu=0, T=0).sel(e_dc=0.0))[:, 1, 1], 2 / (2 + z0s_yy),
                               rtol=1e-10)
    rot = blg["polarization_rotation"].isel(mu=0, T=0, incident_angle=0)
    assert np.abs(rot.sel(e_dc=0.0, beam_quantity="rotation").values).max() == 0
    assert np.abs(rot.sel(e_dc=0.0).values).max() < 1e-7  # ellipticity from the grid's σ_xx − σ_yy ~ 1e-8
    assert np.abs(rot.sel(beam="transmitted", beam_quantity="rotation", e_dc=2e4).values).max() > 1e-5
    dt = blg["delta_t_over_t"].isel(mu=0, T=0)
    assert np.abs(dt.sel(e_dc=0.0).values).max() == 0
    # Kerr-only share even in E_dc; at π/4 incidence (E ∥ y) the Pockels share is even too (thin_film docstring),
    # with light polarised along y it is odd to leading order (004 Fig. 3b: linear at small E)
    np.testing.assert_allclose(dt.sel(share="kerr", e_dc=2e4).values, dt.sel(share="kerr", e_dc=-2e4).values,
                               rtol=1e-9)
    odd = lambda a: 0.5 * (dt.isel(incident_angle=a).sel(share="pockels", e_dc=2e4).values
                           - dt.isel(incident_angle=a).sel(share="pockels", e_dc=-2e4).values)
    plus = dt.isel(incident_angle=1).sel(share="pockels", e_dc=2e4).values
    minus = dt.isel(incident_angle=1).sel(share="pockels", e_dc=-2e4).values
    assert np.all(plus * minus < 0)
    np.testing.assert_allclose(plus, -minus, rtol=0.1)
    # at π/4 only the grid's C_3v breaking (P_xyy ~ 1e-2 P_yyy here) leaves an odd part
    assert np.all(np.abs(odd(0)) < 0.1 * np.abs(odd(1)))
    assert blg["delta_r_over_r"].dims == ("share", "incident_angle", "e_dc", "omega", "mu", "T")


def test_bcd_pockels_from_the_dipole(tmp_path):
    """P^(BCD) = (e³/ħ²)(τ_ω ε_αγz D_βz + τ ε_αβz D_γz) for a model without C_3 (tilted massive Dirac)."""
    ds = evaluate({"name": "tilted", "model": {"name": "tilted_dirac", "params": {"v": 1.0, "tilt": 0.3,
                                                                                   "mass": 0.1}},
                   "units": "natural", "kgrid": {"sizes": [200], "kmax": 2.0}, "mu": [0.3], "temperature": [0.02],
                   "tau": 7.0, "omega": [0.05, 0.5], "responses": ["berry_curvature_dipole", "pockels_bcd"]},
                  n_workers=0, workdir=tmp_path)
    D = ds["berry_curvature_dipole"].isel(mu=0, T=0).values[:, 0]  # D_βz
    assert np.abs(D).max() > 1e-3
    eps = np.array([[0.0, 1.0], [-1.0, 0.0]])  # ε_αβz
    tw = 7.0 / (1 + 1j * 7.0 * np.array([0.05, 0.5]))
    ref = (tw[:, None, None, None] * np.einsum("ag,b->abg", eps, D)[None]
           + 7.0 * np.einsum("ab,g->abg", eps, D)[None])
    np.testing.assert_allclose(cplx(ds["pockels_bcd"].isel(mu=0, T=0)), ref, atol=1e-12 * np.abs(ref).max())


def test_snap_eq7_equals_eq_s29():
    """004 Eq. 7 (∂³ε ∂f0) = Eq. S29 (∂ε ∂³f0): two integrations by parts (AMBIGUITIES 004.3), on a lattice."""
    model = build_model("haldane", {"mass": 0.3, "t2": 0.15})
    study = load_study({"model": {"name": "haldane"}, "units": "natural", "mu": [-1.2, 0.4, 1.5],
                        "temperature": [0.2], "responses": ["snap_tensor"]})
    grid = study.make_grid(96)
    fields = compute_fields(model, grid.points())
    weight = np.full(grid.n_points, grid.weight)
    kT = np.array([0.2])
    bins = EnergyBins(study.mu, kT, bins_per_kT=8)
    out = {}
    for form in ("surface", "s29"):
        total = 0.0
        for term in RESPONSES["snap_tensor"].term_parts(form)[1]:
            Q = reduce_stage._integrands(fields, [(form, term)])
            m, u = bins.empty(Q.shape[2])
            accumulate(fields["energy"], weight, Q, bins.lo, bins.width, m, u)
            total = total + term.coefficient * contract(bins, m, u, study.mu, kT, term.order)
        out[form] = total
    scale = np.abs(out["surface"]).max()
    assert scale > 1e-3
    np.testing.assert_allclose(out["s29"], out["surface"], atol=1e-6 * scale)


@pytest.mark.parametrize("change, key", [
    ({"impurities": None}, "impurities"),
    ({"omega": None, "responses": ["sigma_optical"]}, "omega"),
    ({"electro_optics": None}, "electro_optics"),
    ({"responses": ["reflection", "sigma_optical", "pockels_skew"]}, "responses"),
    ({"units": "natural", "tau": 1.0, "responses": ["reflection", "sigma_optical", "kerr_snap", "pockels_bcd"]},
     "responses"),
])
def test_electro_optic_refusals(change, key):
    cfg = {k: v for k, v in {**BLG, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    assert key in str(err.value)


def test_born_transport_time_as_tau(tmp_path):
    """impurities.born_tau: the Drude-like responses use the Born τ of the impurities (004: τ ≈ 1 ps)."""
    cfg = {**BLG, "responses": ["sigma_drude", "pockels_skew"],
           "impurities": {**BLG["impurities"], "born_tau": True}}
    cfg.pop("electro_optics")
    ds = evaluate(cfg, n_workers=0, workdir=tmp_path / "born")
    tau = ds.attrs["tau"]
    assert "Born" in ds.attrs["tau_source"]
    np.testing.assert_allclose(tau, ds["pockels_skew"].attrs["born_transport_time"], rtol=1e-12)
    assert 0.5e-12 < tau < 2e-12
    plain = evaluate({**cfg, "impurities": BLG["impurities"]}, n_workers=0, workdir=tmp_path / "plain")
    np.testing.assert_allclose(ds["sigma_drude"].values, plain["sigma_drude"].values * tau / TAU, rtol=1e-10)


def test_skew_pockels_alone_with_triangles_is_labelled_and_unchanged(blg, tmp_path):
    """pockels_skew requested alone with integration: tetrahedron (no binned response: nothing to integrate on the
    triangles) runs, labels its Cartesian dims, and equals the value computed next to the other responses."""
    cfg = {**BLG, "responses": ["pockels_skew"], "integration": "tetrahedron"}
    cfg.pop("electro_optics")
    alone = evaluate(cfg, n_workers=0, workdir=tmp_path)["pockels_skew"]
    for d in ("i", "j", "k"):
        assert list(alone[d].values) == ["x", "y"]
    np.testing.assert_allclose(alone.sel(k="y").values, blg["pockels_skew"].sel(k="y").values, rtol=1e-12, atol=0)


def test_omega_zero_is_the_dc_limit(tmp_path):
    """ω = 0 (004's ωτ = 0 rows): σ^(0)(0) = the Drude σ, K(0) = 3τ³ J (τ_ω = τ), every part real."""
    cfg = {**BLG, "kgrid": {"sizes": [80]}, "omega": [0.0, float(WT[0] * HBAR_EV_S / TAU)],
           "responses": ["sigma_drude", "sigma_optical", "snap_tensor", "kerr_snap", "pockels_skew"]}
    cfg.pop("electro_optics")
    ds = evaluate(cfg, n_workers=0, workdir=tmp_path)
    dc = {name: cplx(ds[name].sel(omega=0.0)) for name in ("sigma_optical", "kerr_snap", "pockels_skew")}
    for name, value in dc.items():
        assert np.abs(value.real).max() > 0 and np.abs(value.imag).max() == 0, name
    drude = ds["sigma_drude"].values
    np.testing.assert_allclose(dc["sigma_optical"].real, drude, rtol=1e-12, atol=1e-12 * np.abs(drude).max())
    snap = ds["snap_tensor"].values
    np.testing.assert_allclose(dc["kerr_snap"].real, 3 * TAU**3 * snap, rtol=1e-12, atol=1e-12 * 3 * TAU**3 * np.abs(snap).max())
    # the ω > 0 entry is the Drude σ times τ_ω/τ = 1/(1 + iωτ)
    np.testing.assert_allclose(cplx(ds["sigma_optical"].isel(omega=1)), drude / (1 + 1j * WT[0]), rtol=1e-10)
