"""The bands stage (qgtflow.stages.bands_stage, qgtflow.kpath): energies at the path's corners are the
eigenvalues of H(k) there, every field along the path and on the k-map is the geometry kernel's at those k,
closed forms of the massive Dirac model hold along its path, the auto paths follow the reciprocal lattice, and
the report draws its bands, k-map and 000 Fig. 1 figures from the stores alone (no model)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from qgtflow import io, kpath
from qgtflow.errors import ConfigError
from qgtflow.geometry import qmd
from qgtflow.geometry.fields import compute_fields
from qgtflow.plan import CONTRACTS, bands_job
from qgtflow.stages import bands_stage
from qgtflow.study import load_study

SMALL = {"points": 41, "kmap": {"points": 9}}
STUDIES = {
    # hexagonal lattice, 2 bands (Γ, M, K corners)
    "haldane": {"model": {"name": "haldane", "params": {"t1": 1.0, "t2": 0.1, "phi": 1.0, "mass": 0.2}},
                "units": "natural", "mu": [0.0], "temperature": [0.1], "responses": ["sigma_ahe"], "bands": SMALL},
    # k·p window, 4 bands in PT-degenerate pairs: Λ (001 Eq. 14) is stored for sigma_qm
    "pt_toy": {"model": {"name": "pt_toy_4band", "params": {"v": 1.0, "m": 0.1, "b": 1.0, "t": 0.9}},
               "kgrid": {"kmax": 0.7}, "mu": [0.1], "temperature": [50.0], "responses": ["sigma_qm"],
               "bands": {**SMALL, "fields": ["berry_curvature", "quantum_metric", "bcp_dipole_density"]}},
    # closed forms; the quadrupole k-map for the IFE (000 Fig. 1)
    "dirac": {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}}, "units": "natural",
              "tau": 1.0, "kgrid": {"kmax": 0.8}, "mu": [0.2], "temperature": [0.01],
              "responses": ["ife_coefficient"], "bands": SMALL},
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """{name: (study, bands dataset as written and reopened)}; the results tree of a report."""
    root = tmp_path_factory.mktemp("bands-results")
    out = {}
    for name, cfg in STUDIES.items():
        study = load_study(cfg, name=name)
        path = root / name / "bands" / "bands.zarr"
        path.parent.mkdir(parents=True)
        bands_stage.run(study, str(path))
        out[name] = (study, io.open_store(path, fingerprint=bands_job(study)["fingerprint"]).load())
    return root, out


def hamiltonian(model, k):
    return model.derivatives(np.atleast_2d(k), order=0)[0]


@pytest.mark.parametrize("name", list(STUDIES))
def test_energies_at_the_corners_are_eigenvalues_of_h(stores, name):
    study, ds = stores[1][name]
    assert list(ds["tick_distance"].values[[0, -1]]) == [ds["k_distance"].values[0], ds["k_distance"].values[-1]]
    for d in ds["tick_distance"].values:
        at = int(np.argmin(np.abs(ds["k_distance"].values - d)))
        assert abs(ds["k_distance"].values[at] - d) < 1e-12  # every corner is a sample
        k = ds["kvec"].values[at]
        expected = np.sort(np.linalg.eigvalsh(hamiltonian(study.model, k)[0]))
        np.testing.assert_allclose(np.sort(ds["energy"].values[at]), expected, atol=1e-10)


@pytest.mark.parametrize("name", list(STUDIES))
def test_fields_are_the_geometry_kernels_at_those_k(stores, name):
    """Along the path and on the map: each stored field equals compute_fields at the stored k (Λ from its v, 𝒢)."""
    study, ds = stores[1][name]
    fields = bands_job(study)["fields"]
    for prefix, k, names in (("", ds["kvec"].values, fields["path"]),
                             ("kmap_", None, fields["kmap"])):
        if k is None:
            k, _, _ = kpath.plane_points(study.model, ds.sizes["ku"], bands_job(study)["window"])
            np.testing.assert_allclose(k[:, 0], ds["kmap_kx"].values.ravel())
            np.testing.assert_allclose(k[:, 1], ds["kmap_ky"].values.ravel())
        optional = tuple(n for n in names if n == "quantum_metric_quadrupole_density")
        ref = compute_fields(study.model, k, study.degeneracy_threshold, optional=optional)
        ref[qmd.NAME] = qmd.quantum_metric_dipole_lambda(ref["velocity"], ref["bcp"])
        for n in ["energy", *names]:
            got = ds[prefix + n].values.reshape(ref[n].shape)
            np.testing.assert_allclose(got, ref[n], rtol=1e-10, atol=1e-10 * np.abs(ref[n]).max(), err_msg=n)
            assert {"units", "long_name", "formula"} <= set(ds[prefix + n].attrs)
    if name == "pt_toy":
        assert qmd.NAME in fields["path"] and qmd.NAME in fields["kmap"]
    if name == "dirac":
        assert "quantum_metric_quadrupole_density" in fields["kmap"]


def test_massive_dirac_closed_forms_along_the_path(stores):
    """H = v k·σ + m σ_z: ε = ±E, |Ω^xy| = v²m/(2E³) with opposite signs, g^xx = v²(m² + v²k_y²)/(4E⁴) per band."""
    _, ds = stores[1]["dirac"]
    v, m = 1.0, 0.1
    k = ds["kvec"].values
    e = np.sqrt(v**2 * (k**2).sum(axis=1) + m**2)
    np.testing.assert_allclose(ds["energy"].values, np.stack([-e, e], axis=1), atol=1e-12)
    omega = ds["berry_curvature"].sel(i="x", j="y").values
    np.testing.assert_allclose(np.abs(omega), (v**2 * m / (2 * e**3))[:, None] * np.ones(2), rtol=1e-9)
    np.testing.assert_allclose(omega[:, 0], -omega[:, 1], rtol=1e-12)
    gxx = ds["quantum_metric"].sel(i="x", j="x").values
    np.testing.assert_allclose(gxx, (v**2 * (m**2 + v**2 * k[:, 1] ** 2) / (4 * e**4))[:, None] * np.ones(2),
                               rtol=1e-9)


def test_lambda_satisfies_its_identities(stores):
    """001 Eq. 14's Λ: Λ^iii = 0 (no longitudinal response) and Λ^ijk = Λ^ikj (𝒢 symmetric), at every k."""
    _, ds = stores[1]["pt_toy"]
    lam = ds[qmd.NAME]
    big = float(np.abs(lam).max())
    assert big > 0
    for c in "xy":
        assert float(np.abs(lam.sel(i=c, j=c, k=c)).max()) < 1e-12 * big
    np.testing.assert_allclose(lam.values, lam.transpose("kpath", "band", "i", "k", "j").values, atol=1e-12 * big)


def test_auto_paths_follow_the_reciprocal_lattice(stores):
    study, ds = stores[1]["haldane"]
    assert [str(t) for t in ds["tick_label"].values] == ["Γ", "M", "K", "Γ"]
    b = study.model.reciprocal_vectors
    corners = dict(kpath.auto_path(study.model))
    assert np.linalg.norm(corners["M"]) == pytest.approx(np.linalg.norm(b[0]) / 2)
    assert np.linalg.norm(corners["K"]) == pytest.approx(np.linalg.norm(b[0]) / np.sqrt(3))
    # at a zone corner the Haldane gap is 2|m ∓ 3√3 t2 sin φ| (massive Dirac point)
    gap = np.diff(np.linalg.eigvalsh(hamiltonian(study.model, corners["K"])[0]))[0]
    shift = 3 * np.sqrt(3) * 0.1 * np.sin(1.0)  # K or K' (which one is the convention's)
    assert min(abs(gap - 2 * abs(0.2 - shift)), abs(gap - 2 * abs(0.2 + shift))) < 1e-9

    class Square:  # a square lattice: Γ → X (b1/2) → V = (b1 + b2)/2 → Γ
        dim, periodic = 2, True
        reciprocal_vectors = 2 * np.pi * np.eye(2)

    labels, ks = zip(*kpath.auto_path(Square()))
    assert labels == ("Γ", "X", "V", "Γ")
    np.testing.assert_allclose(np.abs(ks[2]), [np.pi, np.pi])  # (π, π) or its mirror image (π, −π)
    _, pt = stores[1]["pt_toy"]
    assert [str(t) for t in pt["tick_label"].values] == ["−X", "Γ", "X"]
    np.testing.assert_allclose(pt["kvec"].values[[0, -1], 0], [-0.7, 0.7])  # the grid's k·p window


def test_a_bad_path_is_refused_before_compute():
    cfg = {**STUDIES["haldane"], "bands": {"path": [["G", [0.0, 0.0]], ["X", [1.0, 0.0, 0.0]]]}}
    with pytest.raises(ConfigError, match=r"bands\.path\[1\]"):
        load_study(cfg, name="bad")
    cfg = {**STUDIES["haldane"], "bands": {"path": [["G", [0.0, 0.0]], ["G", [0.0, 0.0]]]}}
    with pytest.raises(ConfigError, match=r"bands\.path"):
        load_study(cfg, name="bad")


def test_report_draws_bands_and_kspace_figures_from_the_stores_only(stores, tmp_path, monkeypatch):
    """The report declares no model, its modules import no model or geometry code, and with model building
    disabled it draws the per-study bands and k-maps, 000 Fig. 1 and 001 Fig. 2 (a, b, d) from the stores."""
    from qgtflow.models import config as model_config
    from qgtflow.report import build_report

    assert CONTRACTS["report"].model is False and "bands" in CONTRACTS["report"].upstream
    for path in (Path(__file__).parents[1] / "src" / "qgtflow" / "report").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("qgtflow.models", "qgtflow.geometry")), (path.name, node.module)

    def no_model(*args, **kwargs):
        raise AssertionError("the report built a model")

    monkeypatch.setattr(model_config, "model_from_config", no_model)
    root, _ = stores
    figures = [{"name": "ife", "kind": "ife_density", "studies": ["dirac"], "kmax": 0.3},
               {"name": "fig2a", "kind": "bands", "studies": ["pt_toy"], "energy": 0.25},
               {"name": "fig2b", "kind": "fermi_surface", "studies": ["pt_toy"], "energy": 0.25,
                "field": "quantum_metric_dipole_lambda", "field_component": "xyy"},
               {"name": "fig2d", "kind": "kmap", "studies": ["pt_toy"], "field": "quantum_metric_dipole_lambda",
                "field_component": "xyy"}]
    config = {"studies": {n: STUDIES[n] for n in STUDIES}, "report": {"title": "bands", "figures": figures}}
    page = tmp_path / "site" / "index.html"
    build_report(config, str(root), str(page))
    text = page.read_text()
    assets = page.parent / "index_files"
    for name in STUDIES:
        assert (assets / name / "bands.png").stat().st_size > 0 and (assets / name / "kmap.png").stat().st_size > 0
    for fig in figures:
        assert (assets / "figures" / f"{fig['name']}.png").stat().st_size > 0, text
    assert "could not be drawn" not in text and "has no data" not in text
