"""``evaluate`` without a workdir reduces the geometry fields chunk by chunk as they are computed
(qgtflow.stages.fused, issue 17): the same responses, bitwise, as the two stages through a geometry store, for the
kinds of study whose reduce reads something the store would have carried (several chunks, Fermi-surface window,
pair sums, sectors, an irreducible wedge, a shells store, the sampling warning)."""

import logging

import numpy as np
import pytest

from qgtflow.api import evaluate

HALDANE = {"name": "haldane", "params": {"t1": 1.0, "t2": 0.1, "phi": float(np.pi / 2), "mass": 0.2}}
CRYSTAL = {"atoms": [["A", 0, 0, 0], ["B", 1 / 3, 1 / 3, 0]], "magnetic_moments": [[0, 0, 1.0], [0, 0, 1.0]]}
SEA = ["sigma_ahe", "sigma_drude", "berry_curvature_dipole", "sigma_nonlinear_drude", "sigma_qm"]

CASES = {
    "haldane_chunks": {"model": HALDANE, "units": "natural", "tau": 1.0, "kgrid": {"sizes": [40], "chunk_size": 300},
                       "mu": {"start": -1.5, "stop": 1.5, "num": 31}, "temperature": [0.05, 0.2], "responses": SEA},
    "surface_window": {"model": {"name": "tilted_dirac", "params": {"tilt": 0.3, "mass": 0.1}}, "fermi_form": "surface",
                       "kgrid": {"sizes": [24], "chunk_size": 100}, "mu": [0.2, 0.25], "temperature": [20.0],
                       "tau": 1e-14, "responses": ["sigma_drude", "berry_curvature_dipole"]},
    "pair_sums": {"units": "natural", "model": {"name": "ndd_two_valley"}, "kgrid": {"sizes": [12], "kmax": 4.0},
                  "mu": [0.0, 0.6], "temperature": [0.05], "omega": [0.5, 2.5], "broadening": 0.04,
                  "responses": ["ndd_delta_n", "sigma_nonlocal"]},
    "sectors": {"model": {"name": "bilayer_graphene_gapped"}, "kgrid": {"sizes": [30]}, "mu": [0.065, 0.1],
                "temperature": [30.0], "tau": 1e-12, "resolve_sectors": True,
                "responses": ["sigma_drude", "berry_curvature_dipole"]},
    "wedge": {"model": HALDANE, "symmetry": CRYSTAL, "units": "natural", "tau": 1.0,
              "kgrid": {"sizes": [12], "symmetry_reduce": True, "chunk_size": 16}, "mu": [-0.6, 0.3],
              "temperature": [0.13], "responses": ["sigma_ahe", "sigma_drude", "sigma_nonlinear_drude"]},
    "shells_born_tau": {"model": {"name": "bilayer_graphene_gapped"}, "kgrid": {"sizes": [12]}, "mu": [0.065],
                        "temperature": [30.0], "tau": 1e-12, "omega": [6.6e-4],
                        "responses": ["sigma_drude", "pockels_skew"],
                        "impurities": {"density": 1e-5, "potential": 10.0, "born_tau": True}},
    "cold_sampling_warning": {"model": HALDANE, "units": "natural", "kgrid": {"sizes": [16]}, "mu": [-0.5, 0.5],
                              "temperature": [1e-4], "responses": ["sigma_ahe"]},
}


def _same(fused, staged):
    assert set(fused.data_vars) == set(staged.data_vars)
    assert set(fused.coords) == set(staged.coords)
    for name in list(staged.data_vars) + list(staged.coords):
        np.testing.assert_array_equal(fused[name].values, staged[name].values, err_msg=name)  # bitwise
        assert fused[name].attrs == staged[name].attrs, name
    skip = {"history"}  # its creation time
    assert {k: v for k, v in fused.attrs.items() if k not in skip} == \
        {k: v for k, v in staged.attrs.items() if k not in skip}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_pass_equals_the_stages_through_the_store(case, tmp_path, caplog):
    study = {"name": case, **CASES[case]}
    staged = evaluate(study, n_workers=0, workdir=tmp_path / "staged")
    assert list((tmp_path / "staged").glob("*_geometry.zarr"))
    with caplog.at_level(logging.INFO, logger="qgtflow"):
        fused = evaluate(study, n_workers=0)
    assert "no geometry store" in caplog.text
    _same(fused, staged)
    if case == "surface_window":  # fields only where a state reaches the window
        assert "cannot reach the Fermi window" in caplog.text
    if case == "cold_sampling_warning":
        assert "below the grid's energy step" in fused.attrs["sampling_warning"]


def test_one_pass_writes_out_as_a_complete_store(tmp_path):
    """``out`` of a one-pass evaluate: a complete, fingerprinted responses store holding the returned values."""
    from qgtflow import io

    study = {"name": "out", **CASES["cold_sampling_warning"]}
    ds = evaluate(study, n_workers=0, out=str(tmp_path / "r.zarr"))
    with io.open_store(tmp_path / "r.zarr", fingerprint=ds.attrs[io.FINGERPRINT]) as stored:
        np.testing.assert_array_equal(stored["sigma_ahe"].values, ds["sigma_ahe"].values)
        assert stored.attrs["sampling_warning"] == ds.attrs["sampling_warning"]
    assert io.verify_store(tmp_path / "r.zarr")["checksummed"]


def test_one_pass_on_dask_workers_equals_the_one_pass_here(caplog):
    """``evaluate`` on two Dask workers without a workdir, the k-points read from a kgrid store (a wedge; a grid
    made in memory: tests/test_stages.py::test_dask_cluster_matches_in_process): one task per worker returns its
    partial sums (no geometry store written); the responses equal the in-process one pass to rounding (the partial
    sums are added in another order) and carry the same attrs."""
    study = {"name": "wedge", **CASES["wedge"]}
    here = evaluate(study, n_workers=0)
    with caplog.at_level(logging.INFO, logger="qgtflow"):
        dask = evaluate(study, n_workers=2)
    assert "2 tasks on the Dask workers" in caplog.text and "no geometry store" in caplog.text
    assert set(dask.data_vars) == set(here.data_vars)
    for name in here.data_vars:
        scale = max(float(np.max(np.abs(here[name].values))), 1e-300)
        np.testing.assert_allclose(dask[name].values, here[name].values, rtol=0, atol=1e-14 * scale, err_msg=name)
        assert dask[name].attrs == here[name].attrs, name
    skip = {"history"}  # its creation time
    assert {k: v for k, v in dask.attrs.items() if k not in skip} == \
        {k: v for k, v in here.attrs.items() if k not in skip}
