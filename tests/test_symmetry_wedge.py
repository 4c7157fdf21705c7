"""Irreducible-wedge sums with symmetrisation equal full-grid sums (building blocks in models/symmetry.py; the
stages do not use them yet): bcc-Fe-like Wannier model, magnetic group 4/mm'm' (moment along z)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("spglib")


def _integrands(model, k, mu=0.3, kT=0.05):
    from qgtflow.geometry.fields import compute_fields

    f = compute_fields(model, k, degeneracy_threshold=1e-4)
    e = f["energy"]
    occ = 1.0 / (np.exp((e - mu) / kT) + 1.0)
    dfde = occ * (1.0 - occ) / kT
    ahe = np.einsum("kn,knab->kab", occ, f["berry_curvature"])  # Ω_ab: antisymmetric, T-odd (AHE kind)
    drude = np.einsum("kn,kna,knb->kab", dfde, f["velocity"], f["velocity"])  # T-even polar
    return ahe.reshape(len(k), -1), drude.reshape(len(k), -1)


def test_wedge_sum_symmetrised_equals_the_full_grid():
    from qgtflow.models.symmetry import crystal_operations, irreducible_points, tensor_action
    from qgtflow.models.wannier import read_tb
    from tests.test_real_material import DATA

    model = read_tb(DATA / "fe_like_tb.dat", length_unit="angstrom")
    ops = crystal_operations(model.lattice, [["Fe", 0, 0, 0]], [[0.0, 0.0, 2.2]])
    sizes = (6, 6, 6)
    rep, irr, mult = irreducible_points(ops, model.reciprocal_vectors, sizes)
    assert mult.sum() == np.prod(sizes) and len(irr) < np.prod(sizes) / 4
    idx = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), -1)
    k = (idx / np.array(sizes)) @ model.reciprocal_vectors
    full = [x.sum(0) for x in _integrands(model, k)]
    wedge = [(m[:, None] * x).sum(0) for x, m in zip(_integrands(model, k[irr]), [mult, mult])]
    for name, f, w in zip(("sigma_ahe", "sigma_drude"), full, wedge):
        sym = tensor_action(name, ops, 3) @ w
        assert np.abs(sym - f).max() <= 1e-10 * np.abs(f).max(), name
        assert np.abs(w - f).max() > 1e-6 * np.abs(f).max()  # the raw wedge sum alone is not the answer


def test_wedge_on_a_2d_haldane_layer():
    """Haldane (φ = π/2, sublattice mass): C3z with the antiunitary mirrors of a layer with moments along z; the
    symmetrised wedge sums equal the full grid (AHE nonzero: T is broken)."""
    from qgtflow.models.builtin import build_model
    from qgtflow.models.symmetry import crystal_operations, irreducible_points, tensor_action

    model = build_model("haldane", {"t1": 1.0, "t2": 0.1, "phi": np.pi / 2, "mass": 0.2})
    ops = crystal_operations(model.lattice, [["A", 0, 0, 0], ["B", 1 / 3, 1 / 3, 0]], [[0, 0, 1.0], [0, 0, 1.0]])
    sizes = (12, 12)
    rep, irr, mult = irreducible_points(ops, model.reciprocal_vectors, sizes)
    idx = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), -1)
    k = (idx / np.array(sizes)) @ model.reciprocal_vectors
    full = [x.sum(0) for x in _integrands(model, k, mu=-0.5, kT=0.1)]
    wedge = [(mult[:, None] * x).sum(0) for x in _integrands(model, k[irr], mu=-0.5, kT=0.1)]
    assert len(irr) < np.prod(sizes) / 3 and abs(full[0][1]) > 1e-3
    for name, f, w in zip(("sigma_ahe", "sigma_drude"), full, wedge):
        assert np.abs(tensor_action(name, ops, 2) @ w - f).max() <= 1e-10 * np.abs(f).max(), name


def test_the_slabwise_wedge_equals_the_whole_grid_labelling(monkeypatch):
    """irreducible_wedge (the kgrid stage's: slab by slab, orbit size |G| / stabiliser) gives the same irreducible
    points and multiplicities as irreducible_points' whole-grid labelling, with slabs of a few rows and odd sizes."""
    from qgtflow.models import symmetry
    from qgtflow.models.builtin import build_model
    from qgtflow.models.wannier import read_tb
    from tests.test_real_material import DATA

    fe = read_tb(DATA / "fe_like_tb.dat", length_unit="angstrom")
    fe_ops = symmetry.crystal_operations(fe.lattice, [["Fe", 0, 0, 0]], [[0.0, 0.0, 2.2]])
    hal = build_model("haldane", {"t1": 1.0, "t2": 0.1, "phi": np.pi / 2, "mass": 0.2})
    hal_ops = symmetry.crystal_operations(hal.lattice, [["A", 0, 0, 0], ["B", 1 / 3, 1 / 3, 0]],
                                          [[0, 0, 1.0], [0, 0, 1.0]])
    monkeypatch.setattr(symmetry, "WEDGE_SLAB_POINTS", 50)  # several slabs per grid
    for model, ops, sizes in [(fe, fe_ops, (6, 6, 6)), (fe, fe_ops, (7, 7, 7)), (hal, hal_ops, (12, 12)),
                              (hal, hal_ops, (9, 9))]:
        _, irr, mult = symmetry.irreducible_points(ops, model.reciprocal_vectors, sizes)
        irr_slab, mult_slab = symmetry.irreducible_wedge(ops, model.reciprocal_vectors, sizes)
        np.testing.assert_array_equal(irr_slab, irr)
        np.testing.assert_array_equal(mult_slab, mult)
        assert mult_slab.sum() == np.prod(sizes)
