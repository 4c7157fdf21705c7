"""003 Eq. 7–8: AC (displacement) spin current and spin magnetization.

Checked against an independent route — the first-order interband density matrix in the length gauge,
built here from raw eigenvectors — and against the DC limit (Eq. 6), Table I parities and sectors.
"""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.geometry.fields import compute_fields
from qgtflow.reduce.kinds import required_fields
from qgtflow.reduce.responses import response
from tests.test_spin_responses import reduce_in_process, soc_model

AC = ["spin_sigma_lin_tau0", "spin_beta_lin_tau0"]


def density_matrix_response(model, k, observable, omega, occupied):
    """⟨O⟩(t) = A cos ωt + B sin ωt per unit field for E^b(t) = cos ωt (H' = E·r, e = ħ = 1) with one band occupied.

    Interband density matrix: i∂_tρ_mn = ε_mn ρ_mn + E^b(t) r^b_mn (f_n − f_m), r^b_mn = i V^b_mn/(ε_n − ε_m);
    steady state ρ_mn = ½ r f_nm [e^{−iωt}/(ω − ε_mn) − e^{iωt}/(ω + ε_mn)]. Returns (A, B) with shape (d, *O).
    ``observable(U, dH)`` gives the band-basis operators, shape (*O, n, n).
    """
    H, dH = model.derivatives(k[None], order=1)
    eps, U = np.linalg.eigh(H[0])
    n = eps.size
    V = np.einsum("in,bij,jm->bnm", U.conj(), dH[0], U)
    e_mn = eps[:, None] - eps[None, :]  # [m, n] = ε_m − ε_n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.eye(n, dtype=bool), 0.0, 1j * V / (-e_mn))  # r_mn = i V_mn/(ε_n − ε_m)
    f = np.zeros(n)
    f[occupied] = 1.0
    f_nm = f[None, :] - f[:, None]  # [m, n] = f_n − f_m
    O = observable(U, dH[0])
    out = []
    for t in (0.0, np.pi / (2 * omega)):
        rho = 0.5 * r * f_nm * (np.exp(-1j * omega * t) / (omega - e_mn) - np.exp(1j * omega * t) / (omega + e_mn))
        val = np.einsum("bmn,...nm->b...", rho, O)  # Tr[ρ O] = Σ_mn ρ_mn O_nm
        assert np.abs(val.imag).max() < 1e-10 * max(1.0, np.abs(val).max())
        out.append(val.real)
    return out


def spin_current_operator(model):
    def build(U, dH):  # j^{a;c} = ¼{∂_aH, σ^c} in the band basis, (a, c, n, m)
        j = 0.25 * np.einsum("aij,cjk->acik", dH, model.spin) + 0.25 * np.einsum("cij,ajk->acik", model.spin, dH)
        return np.einsum("in,acij,jm->acnm", U.conj(), j, U)
    return build


def half_spin_operator(model):
    def build(U, dH):  # σ^a/2 (the spin in units of ħ): what 003 Eq. 6 and Eq. 8 respond with
        return 0.5 * np.einsum("in,aij,jm->anm", U.conj(), model.spin, U)
    return build


@pytest.mark.parametrize("name", AC)
def test_ac_integrand_equals_density_matrix_response(name):
    """Eq. 6 cos ωt + Eq. 7 (Eq. 8): the pair-field integrand of every band equals the density-matrix result."""
    model = soc_model(None)
    rng = np.random.default_rng(3)
    omega = np.array([0.37, 1.9, 5.3])  # below, between and above the interband energies of the 4 bands
    resp = response(name, omega, 0.0)
    assert dict(resp.extra_dims)["phase"] == ["cos", "sin"]
    _, term = resp.term("sea")
    optional = tuple(f for f in required_fields([name], "sea", omega) if f != "energy")
    assert all(f.endswith("_pair") for f in optional)
    for k in rng.uniform(-np.pi, np.pi, (3, 2)):
        fields = compute_fields(model, k[None], optional=optional)
        Q = term.integrand(fields)[0]  # spin current: (n, ω, phase, a, b, c); magnetization: (n, quantity, ω, ...)
        for band in range(model.nbands):
            for w, om in enumerate(omega):
                if name == "spin_sigma_lin_tau0":
                    A, B = density_matrix_response(model, k, spin_current_operator(model), om, band)
                    got = Q[band, w]  # (phase, a, b, c); reference (b, a, c)
                    ref = np.stack([A.transpose(1, 0, 2), B.transpose(1, 0, 2)])
                else:
                    A, B = density_matrix_response(model, k, half_spin_operator(model), om, band)
                    got = Q[band, 0, w] * term.coefficient  # spin_density; (phase, a = spin, b); reference (b, a)
                    ref = np.stack([A.T, B.T])
                scale = np.abs(ref).max()
                assert scale > 1e-6
                np.testing.assert_allclose(got, ref, atol=1e-9 * scale, err_msg=f"{name} band {band} ω {om}")


def test_ac_reduces_to_dc_and_parities():
    """ω → 0: the cos part is Eq. 6 and the sin part vanishes ∝ ω; Table I: the sin parts carry the spin QM
    (σ, forbidden by T and PT) and the Zeeman BC (β, forbidden by P and PT)."""
    mu = [-1.7, 0.0, 1.3]
    omega = [1e-4, 2e-4]
    model = soc_model(None)
    dc = reduce_in_process(model, AC, "sea", mu, size=48)
    ac = reduce_in_process(model, AC, "sea", mu, size=48, omega=omega)
    for name in AC:
        cos = ac[name].sel(phase="cos").isel(omega=0)
        scale = np.abs(dc[name].values).max()
        assert scale > 1e-4
        np.testing.assert_allclose(cos.values, dc[name].values, atol=1e-6 * scale)
        sin = ac[name].sel(phase="sin")
        ratio = sin.isel(omega=1).values / np.where(sin.isel(omega=0).values == 0, 1, sin.isel(omega=0).values)
        big = np.abs(sin.isel(omega=0).values) > 1e-3 * np.abs(sin.values).max()
        np.testing.assert_allclose(ratio[big], 2.0, rtol=1e-3)
        assert ac[name].attrs["time_convention"].startswith("003 Eq. 7–8")
        assert "Eq. 7" in ac[name].attrs["formula"] or "Eq. 8" in ac[name].attrs["formula"]
    forbidden = {("spin_sigma_lin_tau0", "cos"): (False, False, False), ("spin_sigma_lin_tau0", "sin"): (False, True, True),
                 ("spin_beta_lin_tau0", "cos"): (True, True, False), ("spin_beta_lin_tau0", "sin"): (True, False, True)}
    omega = [0.8, 2.5]
    generic = reduce_in_process(model, AC, "sea", mu, size=32, omega=omega)
    for s, symmetry in enumerate(("P", "T", "PT")):
        sym = reduce_in_process(soc_model(symmetry), AC, "sea", mu, size=32, omega=omega)
        for (name, phase), flags in forbidden.items():
            val = np.abs(sym[name].sel(phase=phase).values).max()
            ref = np.abs(generic[name].sel(phase=phase).values).max()
            assert ref > 1e-4, (name, phase)
            if flags[s]:
                assert val < 1e-9 * ref, (name, phase, symmetry, val, ref)
            else:
                assert val > 1e-3 * ref, (name, phase, symmetry, val, ref)


def test_ac_spin_responses_through_the_stages(tmp_path):
    """A sector model (SnTe surface, two valleys) with omega: dims, units, the DC limit and the resonance."""
    base = {"units": {"energy": "eV", "length": "nm"},
            "model": {"name": "snte_surface_dirac"}, "kgrid": {"sizes": [96]}, "mu": [0.0], "temperature": [30.0],
            "responses": AC}
    dc = evaluate({**base, "name": "dc"}, n_workers=0, workdir=tmp_path / "dc")
    omega = [1e-5, 0.015, 0.05]
    ac = evaluate({**base, "name": "ac", "omega": omega}, n_workers=0, workdir=tmp_path / "ac")
    sig = ac["spin_sigma_lin_tau0"]
    assert sig.dims == ("omega", "phase", "mu", "T", "i", "j", "spin")
    assert ac["spin_beta_lin_tau0"].dims == ("quantity", "omega", "phase", "mu", "T", "spin", "i")
    assert ac["omega"].attrs["units"] == "eV"
    assert sig.attrs["units"] == dc["spin_sigma_lin_tau0"].attrs["units"]
    for name in AC:
        ref = dc[name].values
        scale = np.abs(ref).max()
        assert scale > 0
        np.testing.assert_allclose(ac[name].sel(phase="cos").isel(omega=0).values, ref, atol=1e-6 * scale)
        assert np.abs(ac[name].sel(phase="sin").isel(omega=0).values).max() < 1e-3 * scale
    # the gap of the SnTe surface model is 2β = 20 meV: below it every transition weight ε²/(ε² − ω²) exceeds 1,
    # so the dominant in-phase component grows with ω (it is a DC-like number only for ω ≪ 2β)
    for name in AC:
        ref = dc[name]
        flat = np.abs(ref.values).ravel()
        idx = np.unravel_index(np.argmax(flat), ref.shape)
        cos = ac[name].sel(phase="cos")
        sel = dict(zip(ref.dims, idx))
        values = [abs(float(cos.sel(omega=w).isel(sel))) for w in omega[:2]]
        assert values[1] > 1.05 * values[0], (name, values)
