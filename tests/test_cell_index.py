"""models.cell_index: the row of each lattice vector in a set and the distinct vectors of a list, by a dense table
of their bounding box or by sorting, against a dictionary."""

from __future__ import annotations

import numpy as np
import pytest

from qgtflow.models import cell_index


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("spread", [3, 10**5])
def test_rows_and_distinct_match_a_dictionary(monkeypatch, dense, spread):
    if not dense:
        monkeypatch.setattr(cell_index, "DENSE_CELLS", 0)
    rng = np.random.default_rng(spread)
    cells = np.unique(rng.integers(-spread, spread + 1, (200, 3)), axis=0)
    rng.shuffle(cells)
    vectors = np.concatenate([cells[rng.integers(0, len(cells), 300)], rng.integers(-spread, spread + 1, (50, 3))])
    where = {tuple(c): n for n, c in enumerate(cells)}
    assert cell_index.rows_of(cells, vectors).tolist() == [where.get(tuple(v), -1) for v in vectors]
    rows, inverse = cell_index.distinct(vectors)
    assert [tuple(r) for r in rows] == sorted({tuple(v) for v in vectors})
    assert (rows[inverse] == vectors).all()
    assert cell_index.rows_of(cells, vectors[:0]).shape == (0,)
