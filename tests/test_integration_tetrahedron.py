"""`integration: tetrahedron` through the stages: T = 0 responses, low T on coarse grids, chunk independence.

Closed form: 2D massive Dirac H = v(kx σx + ky σy) + m σz, Drude weight Σ∫ v_x² δ(ε − μ) = (μ² − m²)/(4π μ)
(polar coordinates: k_F² = μ² − m², |v| = k_F/μ, ∮ dθ cos²θ k_F/(|v| (2π)²)), so σ_xx = −e²τ Σ∫ v_x² f0' →
τ (μ² − m²)/(4π μ) in natural units at T = 0.
"""

import numpy as np
import pytest

from qgtflow.api import evaluate
from qgtflow.errors import ConfigError
from qgtflow.study import load_study

M = 0.2
MU = np.array([0.3, 0.5, 0.8])
CLOSED = (MU ** 2 - M ** 2) / (4 * np.pi * MU)


def dirac(size, T, integration="tetrahedron", chunk_size=65536, responses=("sigma_drude",), **extra):
    return {"name": "dirac", "units": "natural", "model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": M}},
            "kgrid": {"sizes": [size], "kmax": 2.0, "chunk_size": chunk_size}, "mu": MU.tolist(),
            "temperature": list(T), "tau": 1.0, "integration": integration, "responses": list(responses), **extra}


def drude(ds, t=0):
    return ds["sigma_drude"].sel(i="x", j="x").isel(T=t).values


def test_zero_temperature_drude_converges_to_the_closed_form(tmp_path):
    errors = []
    for n in (64, 128, 256):
        ds = evaluate(dirac(n, [0.0]), n_workers=0, workdir=tmp_path / str(n))
        errors.append(np.sqrt(np.mean((drude(ds) / CLOSED - 1) ** 2)))
    print("T = 0 Drude, rms relative error at 64, 128, 256:", errors)
    assert errors[-1] < 2e-3
    assert errors[2] < errors[0] / 2.5  # ≥ h^1.3 on average (2D Fermi-line interpolation error ~ h^1.5)


def test_zero_temperature_is_the_low_temperature_limit(tmp_path):
    """σ(T = 0) equals the T → 0 limit of finite-T results (Richardson in T², Sommerfeld) on the same grid,
    and the T-dependence matches (π²/6)(k_BT)² D''(μ), D = (μ² − m²)/(4πμ), where it dominates."""
    T = np.array([0.0, 1e-2, 2e-2])
    ds = evaluate(dirac(256, T), n_workers=0, workdir=tmp_path)
    d = ds["sigma_drude"].sel(i="x", j="x").values  # (μ, T)
    limit = (4 * d[:, 1] - d[:, 2]) / 3
    np.testing.assert_allclose(d[:, 0], limit, rtol=2e-3)
    second = -2 * M ** 2 / MU ** 3 / (4 * np.pi)  # D''(μ)
    np.testing.assert_allclose(d[0, 2] - d[0, 0], np.pi ** 2 / 6 * 0.02 ** 2 * second[0], rtol=0.3)  # μ = 0.3
    # point sampling on a coarser grid at low T is noise; tetrahedra are not
    pts = evaluate(dirac(128, [5e-4, 5e-3], integration="points"), n_workers=0, workdir=tmp_path / "points")
    tet = evaluate(dirac(128, [5e-4, 5e-3]), n_workers=0, workdir=tmp_path / "tet")
    assert np.abs(drude(pts) / CLOSED - 1).max() > 10 * np.abs(drude(tet) / CLOSED - 1).max()


@pytest.mark.parametrize("kind", ["window", "periodic"])
def test_result_independent_of_chunking(tmp_path, kind):
    """Cells straddling chunk boundaries (and the periodic wrap) are counted once: any chunk size, same numbers."""
    if kind == "window":
        cfgs = [dirac(48, [0.0, 0.01], chunk_size=c, responses=("sigma_drude", "sigma_ahe")) for c in (65536, 97, 500)]
    else:
        base = {"name": "haldane", "units": "natural", "model": {"name": "haldane", "params": {"mass": 0.2}},
                "mu": [-1.1, 0.3, 1.4], "temperature": [0.0, 0.02], "tau": 1.0, "integration": "tetrahedron",
                "responses": ["sigma_drude", "sigma_ahe", "sigma_bcd"]}
        cfgs = [{**base, "kgrid": {"sizes": [36], "chunk_size": c}} for c in (65536, 101, 36 * 7)]
    results = [evaluate(c, n_workers=0, workdir=tmp_path / str(i)) for i, c in enumerate(cfgs)]
    for name in results[0].data_vars:
        ref = results[0][name].values
        assert np.abs(ref).max() > 0, name
        for other in results[1:]:
            np.testing.assert_allclose(other[name].values, ref, rtol=1e-11, atol=1e-14 * np.abs(ref).max())


def test_zero_temperature_needs_the_tetrahedron_method():
    with pytest.raises(ConfigError, match="tetrahedron"):
        load_study(dirac(32, [0.0], integration="points"))
    with pytest.raises(ConfigError, match="temperature"):
        load_study(dirac(32, [-1.0]))
    ndd = {"name": "ndd", "units": "natural", "model": {"name": "ndd_two_valley"}, "kgrid": {"sizes": [8]},
           "mu": [0.0], "temperature": [0.05], "omega": [1.0], "broadening": 0.1, "integration": "tetrahedron",
           "responses": ["ndd_delta_n"]}
    load_study({**ndd, "temperature": [0.0]})  # 002's pair sums have a tetrahedron form (test_ndd_zero_temperature)
