"""The batched eigenbasis (geometry/batched.py: one LAPACK eigh per block of k-points, U†∂H U as BLAS-3 products)
gives every geometry field of the per-k numba path to 1e-10 relative: at degenerate TRIM (Kramers pairs, the
j = 3/2 quartet), for exactly degenerate many-band models, with the Wannier position operator on, and over
several blocks and threads; the automatic choice takes it from BATCHED_MIN_BANDS bands on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qgtflow.geometry import batched
from qgtflow.geometry.fields import CORE_FIELDS, compute_fields
from qgtflow.models.wannier import read_tb
from tests.test_geometry_degenerate import TRIM, p_orbital_model
from tests.wannier_files import write_tb

DATA = Path(__file__).parent / "data"
HOPS_R = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, -1, 1)]
RTOL = 1e-10


def random_wannier(path, n, seed=0, copies=1, positions=False):
    """A random 3D Wannier90 _tb.dat of n bands; ``copies`` > 1: an (n/copies)-band model ⊗ 1_copies seen in a
    random orbital basis (every band exactly ``copies``-fold degenerate at every k)."""
    rng = np.random.default_rng(seed)
    m = n // copies
    basis = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))[0]
    blocks, r = {}, {}
    for R in HOPS_R:
        h = 0.3 * (rng.normal(size=(m, m)) + 1j * rng.normal(size=(m, m)))
        h = 0.5 * (h + h.conj().T) + np.diag(np.linspace(-2, 2, m)) if not any(R) else h
        h = basis @ np.kron(h, np.eye(copies)) @ basis.conj().T
        blocks[R] = h
        if positions:  # off-diagonal position elements (Å), Hermitian partners like H
            x = 0.05 * (rng.normal(size=(n, n, 3)) + 1j * rng.normal(size=(n, n, 3)))
            r[R] = 0.5 * (x + np.conj(x.transpose(1, 0, 2))) if not any(R) else x
        if any(R):
            blocks[tuple(-x for x in R)] = h.conj().T
            if positions:
                r[tuple(-x for x in R)] = np.conj(r[R].transpose(1, 0, 2))
    if positions:
        r[(0, 0, 0)][np.arange(n), np.arange(n)] = 0.0
    centres = rng.uniform(0, 2, (n, 3)) if positions else None
    return read_tb(write_tb(path, np.diag([2.0, 2.3, 2.6]), blocks, centres=centres, positions=r or None,
                            decimals=12), length_unit="angstrom")


def k_points(model, n_random=6, seed=1):
    """The TRIM of the model's cell (degenerate points) and random k."""
    frac = np.array(list(TRIM.values())) / (2 * np.pi)
    rnd = np.random.default_rng(seed).uniform(-0.5, 0.5, (n_random, 3))
    b = 2 * np.pi * np.linalg.inv(model.lattice).T if hasattr(model, "lattice") else 2 * np.pi * np.eye(3)
    return np.vstack([frac, rnd]) @ b


# a field's scale: its own, or that of its companion in the same units where it may vanish by symmetry
# (group-summed Ω ≡ 0 with time reversal and inversion: the per-band values are then rounding noise)
SCALE_OF = {"berry_curvature": "quantum_metric", "berry_curvature_dipole_density": "quantum_metric_dipole_density"}


def assert_paths_agree(model, k, **kw):
    per_k = compute_fields(model, k, closed_form=False, batched=False, **kw)
    batch = compute_fields(model, k, closed_form=False, batched=True, **kw)
    assert set(per_k) == set(batch) == set(CORE_FIELDS)
    for name in per_k:
        scale = max(np.abs(per_k[name]).max(), np.abs(per_k[SCALE_OF.get(name, name)]).max(), 1e-300)
        err = np.abs(per_k[name] - batch[name]).max() / scale
        assert err <= RTOL, f"{name}: batched vs per-k relative difference {err:.2e}"


@pytest.mark.parametrize("chiral", [True, False])
def test_degenerate_trim_of_the_p_orbital_model(chiral):
    model = p_orbital_model(chiral=chiral)
    k = np.vstack([np.array(list(TRIM.values()), float), np.random.default_rng(2).uniform(-np.pi, np.pi, (6, 3))])
    assert_paths_agree(model, k)


def test_fe_like_wannier_model():
    model = read_tb(DATA / "fe_like_tb.dat", length_unit="angstrom")
    assert_paths_agree(model, k_points(model))


@pytest.mark.parametrize("n, copies, positions", [(16, 1, True), (16, 2, False), (32, 1, False)])
def test_random_wannier_models(tmp_path, n, copies, positions):
    model = random_wannier(tmp_path / f"r{n}_tb.dat", n, copies=copies, positions=positions)
    assert (getattr(model, "position", None) is not None) == positions
    k = k_points(model)
    if copies > 1:  # every band in a degenerate group of `copies`: the group code runs at every k
        E = compute_fields(model, k, core=("energy",))["energy"]
        assert np.abs(E[:, 1::copies] - E[:, ::copies]).max() < 1e-10
    assert_paths_agree(model, k)


def test_blocks_and_threads_and_automatic_choice(tmp_path, monkeypatch):
    model = random_wannier(tmp_path / "r16_tb.dat", 16, seed=3)
    k = np.random.default_rng(4).uniform(-np.pi, np.pi, (23, 3))
    monkeypatch.setattr(batched, "MAX_BLOCK_K", 5)  # 5 blocks, the last one short, on two threads
    assert_paths_agree(model, k, n_threads=2)
    assert batched.use_batched(batched.BATCHED_MIN_BANDS, -1, False)
    assert not batched.use_batched(batched.BATCHED_MIN_BANDS - 1, -1, False)
    assert not batched.use_batched(64, 0, False) and not batched.use_batched(64, -1, True)
    auto = compute_fields(model, k, core=("berry_curvature",))["berry_curvature"]
    per_k = compute_fields(model, k, core=("berry_curvature",), batched=False)["berry_curvature"]
    assert np.abs(auto - per_k).max() <= RTOL * np.abs(per_k).max()


def test_gauge_hook_stays_per_k():
    with pytest.raises(ValueError, match="gauge"):
        compute_fields(p_orbital_model(), np.zeros((1, 3)), gauge_seed=1, batched=True)
