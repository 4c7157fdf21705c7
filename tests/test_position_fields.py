"""Every geometry field under the Wannier position operator: full-operator, independent of it, or refused
(geometry/position.py POSITION_CLASSES, table in docs/position-quadrupole.md); the spin-current ambiguity behind the
refusal of ∂_b v^{a;c}_nn and the spin dipoles (docs/AMBIGUITIES-notes.md, docs/spin-position-operator.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from qgtflow.errors import ModelError
from qgtflow.geometry import qmd
from qgtflow.geometry.fields import FIELD_SPECS, compute_fields
from qgtflow.geometry.position import (
    POSITION_CLASSES,
    SPIN_FULL_VELOCITY_FIELDS,
    TB_ONLY_FIELDS,
    ZEEMAN_REFUSED,
)
from qgtflow.models.wannier import read_tb
from tests.test_position_operator import tb_file  # noqa: F401  (fixture: a 2D layer _tb.dat with off-diagonal A(R))

DOC = Path(__file__).resolve().parents[1] / "docs" / "position-quadrupole.md"
K = np.array([[0.31, -0.47], [1.1, 0.2], [0.0, 0.0]])  # generic points and Γ
FULL_OPTIONAL = ("christoffel", "quantum_metric_quadrupole_density")


def _hermitian(rng, n, count):
    m = rng.normal(size=(count, n, n)) + 1j * rng.normal(size=(count, n, n))
    return 0.5 * (m + np.conj(np.swapaxes(m, 1, 2)))


def _models(tb_path):
    """The layer model with the position operator on and off, both with the same on-site spin operator
    (random Hermitian σ^x, σ^y, σ^z, which need not commute with the projected position operator)."""
    spin = _hermitian(np.random.default_rng(3), 3, 3)
    on, off = (read_tb(tb_path, length_unit="angstrom", dim=2, position_operator=p) for p in (True, False))
    on.spin = off.spin = spin
    return on, off


def test_every_field_of_the_catalogue_has_exactly_one_class():
    """A new field (geometry catalogue or the bands stage's Λ) must be classified before it can be computed with
    the position operator, and the refusal list is the union of its two families."""
    members = [name for names in POSITION_CLASSES.values() for name in names]
    assert len(members) == len(set(members)), "a field is in two classes"
    assert set(members) == set(FIELD_SPECS) | {qmd.NAME}
    assert set(POSITION_CLASSES["refused"]) == set(ZEEMAN_REFUSED)
    assert set(SPIN_FULL_VELOCITY_FIELDS) <= set(POSITION_CLASSES["full operator"])
    spin_fields = {name for name in FIELD_SPECS if name.startswith(("spin_", "zeeman_"))}
    assert spin_fields - set(TB_ONLY_FIELDS) == {"spin_expectation"} | set(SPIN_FULL_VELOCITY_FIELDS)


def test_the_doc_table_is_the_classification():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", DOC.read_text(), flags=re.M))
    assert rows == {name: cls for cls, names in POSITION_CLASSES.items() for name in names}


def test_the_operator_enters_exactly_the_full_operator_fields(tb_file):  # noqa: F811
    """Position on vs off on the same model: the fields independent of it agree to rounding, every full-operator
    field changes (its external terms are there), and every refused field is refused in one line naming it."""
    on, off = _models(tb_file)
    optional = FULL_OPTIONAL + ("spin_expectation",) + SPIN_FULL_VELOCITY_FIELDS
    a = compute_fields(on, K, 1e-8, optional=optional)
    b = compute_fields(off, K, 1e-8, optional=optional)
    for f in (a, b):
        f[qmd.NAME] = qmd.quantum_metric_dipole_lambda(f["velocity"], f["bcp"])
    assert set(a) == set(POSITION_CLASSES["full operator"]) | set(POSITION_CLASSES["independent of it"])
    for name in POSITION_CLASSES["independent of it"]:
        scale = np.abs(b[name]).max()
        np.testing.assert_allclose(a[name], b[name], atol=1e-10 * scale, err_msg=name)
    for name in POSITION_CLASSES["full operator"]:
        assert np.abs(a[name] - b[name]).max() > 1e-3 * np.abs(b[name]).max(), name
    for name in TB_ONLY_FIELDS:
        reason = "fn. 82 form"
        with pytest.raises(ModelError, match=rf"^optional: \['{name}'\] .*{reason}.*AMBIGUITIES-notes.*"
                                             "position_operator: false"):
            compute_fields(on, K[:1], 1e-8, optional=(name,))
    from qgtflow.geometry.spin import compute_spin_fields

    every = compute_spin_fields(on, K[:2], pairs=True)  # the refused fields come back as NaN
    for name, value in every.items():
        assert (np.isnan(value).all() if name in TB_ONLY_FIELDS else np.isfinite(value).all()), name
    for name in SPIN_FULL_VELOCITY_FIELDS:
        np.testing.assert_array_equal(every[name], a[name][:2], err_msg=name)
    assert np.isfinite(compute_fields(off, K[:1], 1e-8, optional=("spin_bcp",))["spin_bcp"]).all()


def test_spin_response_is_refused_before_any_compute(tb_file, tmp_path, capsys):  # noqa: F811
    """A Zeeman response (the Edelstein one, Eq. 5, reads the Zeeman Berry curvature) of a Wannier model with the
    position operator: exit 2 and one line naming the response, the field and why. Every spin-current response is
    accepted with the operator on, in both Fermi forms."""
    from qgtflow.cli import main
    from qgtflow.study import geometry_fields, load_study

    spin = [[[str(complex(v)) for v in row] for row in m] for m in _hermitian(np.random.default_rng(3), 3, 3)]
    study = {"model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2}, "spin": spin},
             "units": "natural", "kgrid": {"sizes": [4]}, "mu": [0.0], "temperature": [0.05], "tau": 1.0,
             "responses": ["spin_sigma_lin_tau0", "spin_beta_lin_tau1"]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["evaluate", str(path), "--out", str(tmp_path / "out.zarr"), "--workers", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qgtflow: error:")]
    assert len(err) == 1
    assert re.search(r"spin_beta_lin_tau1.*zeeman_qgt_curvature.*fn. 82 form.*AMBIGUITIES-notes.*"
                     r"position_operator: false", err[0]), err[0]
    assert not (tmp_path / "out.zarr").exists()
    currents = ["spin_sigma_lin_tau0", "spin_sigma_lin_tau1", "spin_sigma_nl_tau0", "spin_sigma_nl_tau1",
                "spin_sigma_nl_tau2"]
    for form in ("sea", "surface"):
        assert "spin_qgt_curvature" in geometry_fields(load_study(dict(study, responses=currents, fermi_form=form)))


def test_spin_current_identity_breaks_by_the_commutator_with_the_position_operator():
    """Why ∂_b v^{a;c}_nn and the spin dipoles are refused (AMBIGUITIES-notes, docs/spin-position-operator.md): with v^a = ∇_aH = ∂_aH − i[A^W_a, H] in the vertex
    S = ¼{v, σ}, the fn. 80/82 identity ∂_k v^{;c}_nn = ¼<{∇_k v, σ}>_nn + 2 Re Σ_m S_nm 𝒱_mn / ε_nm holds only up
    to ¼<{v, −i[A^W, σ]}>_nn (finite differences of a random 1D H(k), A^W(k), σ; degenerate-free spectrum);
    it is exact when [A^W, σ] = 0."""
    rng = np.random.default_rng(1)
    h0, h1, h2, a0, a1, sigma = _hermitian(rng, 4, 6)

    def comm(x, y):
        return x @ y - y @ x

    def parts(k, s):
        h, dh, a = h0 + k * h1 + k * k * h2, h1 + 2 * k * h2, a0 + k * a1
        v = dh - 1j * comm(a, h)  # ∇H
        w = 2 * h2 - 1j * comm(a1, h) - 1j * comm(a, dh) - 1j * comm(a, v)  # ∇∇H
        e, u = np.linalg.eigh(h)
        rot = [np.conj(u.T) @ m @ u for m in (v, 0.25 * (v @ s + s @ v), 0.25 * (w @ s + s @ w),
                                             0.25 * (v @ (-1j * comm(a, s)) + (-1j * comm(a, s)) @ v))]
        return e, rot

    for s, extra_expected in ((sigma, True), (np.eye(4) * 0.7, False)):  # generic σ; σ ∝ 1 commutes with A^W
        k, step = 0.3, 1e-5
        fd = (np.diag(parts(k + step, s)[1][1]).real - np.diag(parts(k - step, s)[1][1]).real) / (2 * step)
        e, (vv, ss, ww, extra) = parts(k, s)
        x = 1.0 / (e[:, None] - e[None, :] + np.eye(4)) - np.eye(4)
        identity = np.diag(ww).real + 2 * np.einsum("nm,mn,nm->n", ss, vv, x).real
        np.testing.assert_allclose(fd, identity + np.diag(extra).real, atol=1e-7 * np.abs(fd).max())
        assert (np.abs(np.diag(extra).real).max() > 0.1 * np.abs(fd).max()) == extra_expected


def test_spin_hall_responses_run_with_the_position_operator(tb_file, tmp_path):  # noqa: F811
    """End to end: the intrinsic spin Hall response (Eq. 6), the nonlinear spin BCD one (Eq. 11) and the extrinsic
    spin conductivity (Eq. 4, reads the exact ∂_b v^{a;c}_nn), in the Fermi-surface form, of a Wannier model with the position operator are written, finite, and differ from the tight-binding
    approximation; the store's model_convention says which spin-current vertex it holds."""
    import xarray as xr

    from qgtflow.cli import main

    spin = [[[str(complex(v)) for v in row] for row in m] for m in _hermitian(np.random.default_rng(3), 3, 3)]
    out = {}
    for pos in (True, False):
        study = {"model": {"name": "layer", "wannier90": {"tb": str(tb_file), "dim": 2, "position_operator": pos},
                           "spin": spin},
                 "units": "natural", "kgrid": {"sizes": [6]}, "mu": [0.0], "temperature": [0.05], "tau": 1.0,
                 "responses": ["spin_sigma_lin_tau0", "spin_sigma_nl_tau1", "spin_sigma_lin_tau1"],
                 "fermi_form": "surface"}
        path = tmp_path / f"study_{pos}.yaml"
        path.write_text(yaml.safe_dump(study))
        assert main(["evaluate", str(path), "--out", str(tmp_path / f"out_{pos}.zarr"), "--workers", "0"]) == 0
        out[pos] = xr.open_zarr(tmp_path / f"out_{pos}.zarr")
    assert "spin-current fields (vertex ¼{𝒱^a, σ^c}" in out[True].attrs["model_convention"]
    for name in ("spin_sigma_lin_tau0", "spin_sigma_nl_tau1", "spin_sigma_lin_tau1"):
        on, off = out[True][name].values, out[False][name].values
        assert np.isfinite(on).all(), name
        assert np.abs(on - off).max() > 1e-2 * np.abs(off).max(), name
