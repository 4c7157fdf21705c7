"""The real ±R Bloch sums of Hermitian tables (tight_binding.HermitianBlochSums) against the complex products."""

import pickle

import numpy as np
import pytest

from qgtflow.models.position import PositionOperator
from qgtflow.models.tight_binding import PAIRED_MIN_BANDS, TightBindingModel


def _hermitian_table(rng, n, dim, paired=True):
    cells = [R for R in np.ndindex(*(3,) * dim)]
    table = {}
    for R in cells:
        R = tuple(r - 1 for r in R)
        mR = tuple(-r for r in R)
        if mR in table:
            table[R] = table[mR].conj().T.copy() if paired else rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
        else:
            m = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
            table[R] = m + m.conj().T if R == mR else m
    return table


def _model(table, n, dim, convention, seed=0):
    rng = np.random.default_rng(seed)
    lattice = np.eye(dim) + 0.1 * rng.normal(size=(dim, dim))
    return TightBindingModel.from_table("t", lattice, rng.uniform(size=(n, dim)), table, convention=convention)


@pytest.mark.parametrize("dim,convention", [(3, "II"), (3, "I"), (2, "II")])
def test_paired_sums_equal_complex_products(dim, convention):
    rng = np.random.default_rng(1)
    n = PAIRED_MIN_BANDS + 1
    model = _model(_hermitian_table(rng, n, dim), n, dim, convention)
    assert model.hermitian_sums() is not None
    k = rng.uniform(-3, 3, (40, dim))
    paired = model.unique_derivatives(k, order=3)
    model._hermitian_sums = None  # the complex (N, n_R) @ (n_R, n²) products
    ref = model.unique_derivatives(k, order=3)
    assert np.abs(paired - ref).max() <= 1e-13 * np.abs(ref).max()
    assert "_hermitian_sums" not in pickle.loads(pickle.dumps(model)).__dict__  # rebuilt where it is used


def test_unpaired_or_small_tables_keep_the_complex_products():
    rng = np.random.default_rng(2)
    n = PAIRED_MIN_BANDS
    assert _model(_hermitian_table(rng, n, 3, paired=False), n, 3, "II").hermitian_sums() is None
    assert _model(_hermitian_table(rng, 2, 3), 2, 3, "II").hermitian_sums() is None


def test_position_connection_curvature_paired():
    rng = np.random.default_rng(3)
    n, dim = PAIRED_MIN_BANDS, 3
    positions = rng.uniform(size=(n, dim))
    tables = [_hermitian_table(rng, n, dim) for _ in range(dim)]
    op = PositionOperator("t", np.eye(dim), positions, tables, "II")
    assert op.paired_sums() is not None
    k = rng.uniform(-3, 3, (30, dim))
    paired = op.connection_curvature(k)
    op._paired = None
    ref = op.connection_curvature(k)
    assert np.abs(paired - ref).max() <= 1e-13 * np.abs(ref).max()
