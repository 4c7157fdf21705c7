"""The quantum-metric quadrupole ∂_c∂_e g^ab with the Wannier position operator (geometry/position_quadrupole.py):
without A^W it is the projector kernel's (an independent route, also at degenerate TRIM); with off-diagonal A(R) it
equals Richardson differences of the full-operator ∂g at generic k, at the TRIM and for a model degenerate at every
k (group sums); the per-k and batched eigenbasis paths give the same quadrupole and Christoffel symbols."""

from __future__ import annotations

import numpy as np
import pytest

from qgtflow.geometry.fields import compute_fields
from qgtflow.geometry.position_quadrupole import quadrupole_with_position
from qgtflow.geometry.projector import quadrupole_fields
from qgtflow.models.wannier import read_tb
from tests.test_geometry_batched import k_points, random_wannier
from tests.test_geometry_degenerate import TRIM, p_orbital_model
from tests.test_position_operator import LATTICE, _group_sums, _richardson, tb_file  # noqa: F401 (fixture)

QUAD = "quantum_metric_quadrupole_density"
DIPOLE = "quantum_metric_dipole_density"


def _quadrupole(model, k, threshold):
    return compute_fields(model, k, threshold, optional=(QUAD,), core=("energy",))[QUAD]


def _assert_quadrupole_equals_differences(model, k, groups, threshold, rtol=1e-7):
    """Group sums of ∂_c∂_e g^ab against Richardson differences along e of the group sums of the full ∂_c g^ab,
    relative to each k-point's largest value."""
    quad = _quadrupole(model, k, threshold)
    scale = np.abs(quad).reshape(len(k), -1).max(axis=1)
    assert scale.min() > 0
    for e in range(model.dim):
        fd = _group_sums(_richardson(model, k, DIPOLE, e, threshold), groups)
        err = np.abs(_group_sums(quad[..., e], groups) - fd).reshape(len(k), -1).max(axis=1) / scale
        assert err.max() < rtol, ("xyz"[e], err)
    return quad


def test_without_the_basis_connection_it_is_the_projector_quadrupole():
    """A^W = 0: the covariant recursion is the projector kernel's divided differences (degenerate TRIM of the
    p-orbital model: Kramers pairs and the j = 3/2 quartet; random k)."""
    model = p_orbital_model(chiral=True)
    k = np.vstack([np.array(list(TRIM.values()), float), np.random.default_rng(2).uniform(-np.pi, np.pi, (3, 3))])
    Hu = model.unique_derivatives(k)
    Au = np.zeros((len(k), 3) + Hu.shape[1:], complex)
    ours = quadrupole_with_position(Hu, Au, 3, 1e-6)
    projector = quadrupole_fields(Hu, 3, 1e-6)[QUAD]
    assert np.abs(ours - projector).max() < 1e-11 * np.abs(projector).max()


def test_equals_differences_of_the_full_metric_dipole(tb_file, tmp_path):  # noqa: F811
    """Layer model (2D, off-diagonal A(R)) at generic points and its TRIMs; random 3D Wannier model with A(R) at
    generic points and its TRIM: ∂∂g with the position operator = differences of ∂g with it, and ≠ the tight-binding
    quadrupole."""
    layer = read_tb(tb_file, length_unit="angstrom", dim=2)
    b = 2 * np.pi * np.linalg.inv(LATTICE[:2, :2]).T
    frac = np.array([[0.13, 0.37], [0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.71, 0.22]])
    full = _assert_quadrupole_equals_differences(layer, frac @ b, [[0], [1], [2]], 1e-8)
    off = read_tb(tb_file, length_unit="angstrom", dim=2, position_operator=False)
    assert np.abs(full - _quadrupole(off, frac @ b, 1e-8)).max() > 1e-2 * np.abs(full).max()
    model = random_wannier(tmp_path / "r6_tb.dat", 6, seed=4, positions=True)
    _assert_quadrupole_equals_differences(model, k_points(model, n_random=2),
                                          [[i] for i in range(6)], 1e-8)


def test_degenerate_groups(tmp_path):
    """Every band exactly two-fold degenerate (a 4-band model ⊗ 1₂ in a random orbital basis) with random A(R)
    that mixes each pair: group sums of ∂∂g equal the differences of the group sums of ∂g, at TRIM and random k."""
    model = random_wannier(tmp_path / "r8_tb.dat", 8, seed=5, copies=2, positions=True)
    k = k_points(model, n_random=2)[[0, 3, 4, 5]]
    E = compute_fields(model, k, core=("energy",))["energy"]
    assert np.abs(E[:, 1::2] - E[:, ::2]).max() < 1e-10
    _assert_quadrupole_equals_differences(model, k, [[0, 1], [2, 3], [4, 5], [6, 7]], 1e-6)


def test_per_k_and_batched_paths_agree(tmp_path):
    """20 bands (the batched path's size) with A(R): quadrupole and Christoffel symbols of both eigenbasis paths."""
    model = random_wannier(tmp_path / "r20_tb.dat", 20, seed=6, positions=True)
    k = k_points(model, n_random=2)[[0, 4, 5]]
    per_k, batch = (compute_fields(model, k, 1e-8, optional=(QUAD, "christoffel"), core=("energy",), batched=flag)
                    for flag in (False, True))
    for name in (QUAD, "christoffel"):
        assert np.abs(per_k[name] - batch[name]).max() <= 1e-10 * np.abs(per_k[name]).max(), name


@pytest.mark.slow
def test_ife_sea_form_equals_the_christoffel_surface_form(tb_file, tmp_path):  # noqa: F811
    """Through `evaluate` with the position operator on: the IFE coefficient of the Fermi sea (000 Eq. 15, the
    full quadrupole) equals that of the Fermi surface (Eq. 18, Christoffel symbols of the full ∂g) — an integration
    by parts on the periodic zone (144²: 2.9e-3, 160²: 1.4e-3, 224²: 1.7e-5 relative). The tight-binding values differ
    by 4 %, so a tight-binding quadrupole beside the full Christoffel symbols would fail."""
    from qgtflow.api import evaluate

    base = {"model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2}}, "units": "natural",
            "kgrid": {"sizes": [144], "shift": 0.5}, "mu": [-0.3, 0.0, 0.5], "temperature": [0.3], "tau": 1.0,
            "responses": ["ife_coefficient"]}
    sea, surface = (evaluate({**base, "fermi_form": form}, n_workers=0, workdir=tmp_path / form)["ife_coefficient"]
                    for form in ("sea", "surface"))
    scale = np.abs(sea.values).max()
    assert scale > 0
    np.testing.assert_allclose(sea.values, surface.values, atol=1e-2 * scale)
