"""Stages and stores: schemas, completion flags, kill/resume, Dask vs in-process results."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

import qgtflow
from qgtflow import io
from qgtflow.errors import StoreError
from qgtflow.geometry.fields import CORE_FIELDS, FIELD_SPECS
from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
from qgtflow.study import load_study

STUDY = {"name": "tilted", "model": {"name": "tilted_dirac", "params": {"v": 1.0, "tilt": 0.3, "mass": 0.1}},
         "kgrid": {"sizes": [40], "kmax": 0.8, "chunk_size": 256}, "mu": [0.12, 0.2], "temperature": [20.0, 60.0],
         "responses": ["berry_curvature_dipole", "sigma_bcd", "sigma_drude"]}


@pytest.fixture
def stores(tmp_path):
    st = load_study(STUDY)
    kg, geo, resp = tmp_path / "kgrid.zarr", tmp_path / "geometry.zarr", tmp_path / "responses.zarr"
    kgrid_stage.run(st, 40, kg)
    geometry_stage.run(st, kg, geo, n_workers=0)
    reduce_stage.run(st, geo, resp, n_workers=0)
    return st, kg, geo, resp


def test_stores_reopen_with_documented_schema(stores):
    st, kg, geo, resp = stores
    k = xr.open_zarr(kg)
    assert k["kvec"].dims == ("kpoint", "axis") and k.sizes["kpoint"] == 1600
    # weights integrate the window: Σ w = (2 kmax)² / (2π)²
    assert float(k["weight"].sum()) == pytest.approx((1.6 / (2 * np.pi)) ** 2, rel=1e-12)
    g = xr.open_zarr(geo)
    # store_fields: required (the default) keeps what the responses read (the Fermi-surface BCD, Drude: Ω), plus
    # energy and velocity — no other field map; `all` keeps every core field
    assert geometry_stage.study_fields(st) == ["energy", "velocity", "berry_curvature"]
    assert set(FIELD_SPECS) & set(g.data_vars) == set(geometry_stage.study_fields(st))
    assert set(CORE_FIELDS) <= set(geometry_stage.study_fields(load_study({**STUDY, "store_fields": "all"})))
    for name in geometry_stage.study_fields(st):
        spec = FIELD_SPECS[name]
        assert g[name].dims == ("kpoint",) + spec.dims
        assert {"units", "long_name", "formula"} <= set(g[name].attrs)
        assert np.isfinite(g[name].values).all()
    assert g.attrs["qgtflow_complete"] and g.attrs["model"] == "tilted_dirac" and g.attrs["model_hash"]
    r = xr.open_zarr(resp)
    assert r["sigma_bcd"].dims == ("mu", "T", "i", "j", "k")
    assert r["berry_curvature_dipole"].dims == ("mu", "T", "i", "pseudovector")
    assert list(r["pseudovector"].values) == ["z"]
    assert r["sigma_bcd"].attrs["units"] == "A m V-2" and "001 Eq. 12" in r["sigma_bcd"].attrs["formula"]
    assert r["sigma_drude"].attrs["units"] == "S"
    assert r.attrs["n_kpoints"] == 1600 and r.attrs["study"] == "tilted"
    assert r["mu"].attrs["units"] == "eV" and r["T"].attrs["units"] == "K"
    # the tilt along x makes the dipole D_xz nonzero and D_yz vanish by the mirror y → −y
    d = r["berry_curvature_dipole"].sel(pseudovector="z")
    assert abs(d.sel(i="x")).max() > 1e3 * abs(d.sel(i="y")).max()


def test_geometry_store_unstacks_into_k_maps_and_is_compressed(stores):
    """Grid indices and fractional coords ride along as coords (the README one-liner gives a k-map);
    the k-chunked fields are zstd-compressed, exact, and `verify` still checks every chunk."""
    import zarr

    st, kg, geo, resp = stores
    g = io.open_store(geo)
    kmap = g.berry_curvature.set_index(kpoint=["k_index_x", "k_index_y"]).unstack("kpoint")
    assert kmap.sizes["k_index_x"] == kmap.sizes["k_index_y"] == 40 and not kmap.isnull().any()
    grid = st.make_grid(40)
    flat = 7 * 40 + 31
    assert (int(g.k_index_x[flat]), int(g.k_index_y[flat])) == (7, 31)
    np.testing.assert_allclose(g.k_frac_y.values[flat], (31 + 0.5) / 40)  # k·p window: cell centred
    np.testing.assert_array_equal(g.kvec.values, grid.points())
    from qgtflow.geometry.fields import compute_fields

    fresh = compute_fields(st.model, grid.points(), st.degeneracy_threshold)["berry_curvature"]
    stored = kmap.transpose("k_index_x", "k_index_y", ...).values.reshape(fresh.shape)
    # a Fermi-surface-only study: the fields where a state reaches the Fermi window, 0 elsewhere (flagged)
    inside = g["in_fermi_window"].values == 1
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(stored[inside], fresh[inside])
    assert not stored[~inside].any()
    codecs = [type(c).__name__ for c in zarr.open_group(str(geo), mode="r")["berry_curvature"].metadata.codecs]
    assert "ZstdCodec" in codecs and codecs[-1] == "Crc32cCodec"
    assert io.verify_store(geo)["checksummed"]


def test_fermi_window_flag_is_int8_and_a_missing_chunk_is_found(stores):
    """in_fermi_window is stored as int8 0/1 (it was float64 with NaN fill: a positional dtype to dask's zeros is
    ignored), filled with io.FLAG_FILL = -1 so an all-0 chunk is still written and a missing one is told apart:
    verify_store names it."""
    import shutil

    import zarr

    st, kg, geo, resp = stores
    flag = io.open_store(geo)["in_fermi_window"]
    assert flag.dtype == np.int8 and set(np.unique(flag.values)) <= {0, 1}
    assert {"units", "long_name", "formula"} <= set(flag.attrs)
    arr = zarr.open_group(str(geo), mode="r")["in_fermi_window"]
    assert arr.fill_value == io.FLAG_FILL and arr.nchunks > 1
    io.verify_store(geo)
    chunk = geo / "in_fermi_window" / arr.metadata.encode_chunk_key((1,))
    assert chunk.is_file()
    broken = geo.parent / "broken.zarr"
    shutil.copytree(geo, broken)
    (broken / "in_fermi_window" / arr.metadata.encode_chunk_key((1,))).unlink()
    with pytest.raises(StoreError, match="'in_fermi_window' chunk 1 is missing"):
        io.verify_store(broken)


@pytest.mark.parametrize("chunk_size", [4096, 24])  # one chunk (numpy, one write) and 3 chunks (template + regions)
def test_kgrid_grid_indices_are_int64_and_exact(tmp_path, chunk_size):
    """k_index_* are int64 n_a (they were float64: a positional dtype to dask's zeros is ignored), in the kgrid
    store and in the geometry store that copies them; a single-chunk store holds the same data as a chunked one."""
    study = {**STUDY, "kgrid": {**STUDY["kgrid"], "sizes": [8], "chunk_size": chunk_size}}
    st = load_study(study)
    kg, geo = tmp_path / "kgrid.zarr", tmp_path / "geometry.zarr"
    assert kgrid_stage.run(st, 8, kg) == -(-64 // chunk_size)
    io.verify_store(kg)
    k = io.open_store(kg)
    n_x, n_y = np.unravel_index(np.arange(64), (8, 8))
    for name, expected in (("k_index_x", n_x), ("k_index_y", n_y)):
        assert k[name].dtype == np.int64 and k[name].attrs["units"] == "1" and k[name].attrs["long_name"]
        np.testing.assert_array_equal(k[name].values, expected)
    np.testing.assert_array_equal(k.k_frac_y.values, (n_y + 0.5) / 8)
    np.testing.assert_array_equal(k.kvec.values, st.make_grid(8).points())
    assert k.attrs["chunk_size"] == min(chunk_size, 64) and k.sizes["chunk"] == -(-64 // chunk_size)
    geometry_stage.run(st, kg, geo, n_workers=0)
    g = io.open_store(geo)
    assert g.k_index_x.dtype == g.k_index_y.dtype == np.int64
    np.testing.assert_array_equal(g.k_index_y.values, n_y)


def test_incomplete_store_is_refused(stores, tmp_path):
    st, kg, geo, _ = stores
    partial = tmp_path / "partial.zarr"
    ds = geometry_stage._template(st, io.open_store(kg), "fp", geometry_stage.study_fields(st))
    io.write_template(ds, partial, 256, 7)
    with pytest.raises(StoreError, match="incomplete"):
        io.open_store(partial)
    # unwritten chunks read as NaN, never as zeros
    assert np.isnan(xr.open_zarr(partial, consolidated=False)["energy"].values).all()
    with pytest.raises(StoreError, match="chunks missing"):
        io.mark_complete(partial)


def test_killed_geometry_run_resumes_without_recomputing(tmp_path):
    # every core field: chunks slow enough for the kill to land mid-run, and every field compared after the resume
    study = {**STUDY, "kgrid": {"sizes": [96], "kmax": 0.8, "chunk_size": 64}, "store_fields": "all"}
    st = load_study(study)
    kg, geo = tmp_path / "kgrid.zarr", tmp_path / "geometry.zarr"
    kgrid_stage.run(st, 96, kg)
    script = textwrap.dedent(f"""
        import yaml
        from qgtflow.study import load_study
        from qgtflow.stages import geometry_stage
        st = load_study(yaml.safe_load({str(__import__('yaml').safe_dump(study))!r}))
        geometry_stage.run(st, {str(kg)!r}, {str(geo)!r}, n_workers=0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    n_chunks = 144
    deadline = time.time() + 120
    done_before = 0
    while time.time() < deadline:
        time.sleep(0.05)
        if (geo / "chunk_done" / "zarr.json").exists():
            done_before = int(io.chunks_done(geo).sum())
            if done_before >= 15:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = io.chunks_done(geo)
    assert 0 < done_at_kill.sum() < n_chunks, "the kill must land mid-run"
    with pytest.raises(StoreError):
        io.open_store(geo)
    computed = geometry_stage.run(st, kg, geo, n_workers=0)
    assert computed == n_chunks - int(done_at_kill.sum())  # zero finished chunks redone
    assert geometry_stage.run(st, kg, geo, n_workers=0) == 0  # a complete store is not recomputed
    fresh = tmp_path / "fresh.zarr"
    geometry_stage.run(st, kg, fresh, n_workers=0)
    a, b = io.open_store(geo), io.open_store(fresh)
    for name in CORE_FIELDS:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_changed_config_rebuilds_instead_of_resuming(stores):
    st, kg, geo, _ = stores
    other = load_study({**STUDY, "degeneracy_threshold": 1e-9})
    assert geometry_stage.run(other, kg, geo, n_workers=0) == io.open_store(kg).sizes["chunk"]


def test_every_store_carries_its_fingerprint_and_readers_check_it(stores, tmp_path):
    """One identity per store (qgtflow.plan.fingerprint); a reader handed a store of other inputs
    refuses it with one line naming the store and both fingerprints."""
    from qgtflow import plan
    from qgtflow.stages import convergence_stage

    st, kg, geo, resp = stores
    chain = plan.grid_chain(st, 40)
    for stage, path in (("kgrid", kg), ("geometry", geo), ("reduce", resp)):
        assert io.store_attrs(path)[io.FINGERPRINT] == chain[stage]["fingerprint"]
    assert chain["geometry"]["upstream"] == {"kgrid": chain["kgrid"]["fingerprint"]}
    conv = tmp_path / "conv"
    job = plan.job_inputs("convergence", st, None, {"reduce n40": chain["reduce"]["fingerprint"]})
    convergence_stage.run(st, [str(resp)], str(conv), plots=False, job=job)
    assert io.store_attrs(conv / "convergence.zarr")[io.FINGERPRINT] == job["fingerprint"]

    # other reduce inputs, same geometry (a μ inside the Fermi window of this Fermi-surface-only study)
    other = load_study({**STUDY, "mu": [0.12, 0.16, 0.2]})
    assert plan.grid_chain(other, 40)["geometry"] == chain["geometry"]
    with pytest.raises(StoreError) as exc:
        convergence_stage.run(other, [str(resp)], str(conv), plots=False,
                              job=plan.job_inputs("convergence", other, None,
                                                  {"reduce n40": plan.grid_chain(other, 40)["reduce"]["fingerprint"]}))
    message = str(exc.value)
    assert "\n" not in message and str(resp) in message and chain["reduce"]["fingerprint"] in message
    moved = load_study({**STUDY, "kgrid": {**STUDY["kgrid"], "kmax": 0.9}})  # another grid
    with pytest.raises(StoreError) as exc:
        reduce_stage.run(moved, geo, n_workers=0)
    assert chain["geometry"]["fingerprint"] in str(exc.value)
    assert plan.grid_chain(moved, 40)["geometry"]["fingerprint"] in str(exc.value)


def test_a_stage_study_exposes_only_its_declared_keys(stores):
    """The Study a workflow job builds from its params refuses any key its stage does not declare."""
    from qgtflow import plan

    st = stores[0]
    conv = plan.stage_study("convergence", plan.job_inputs("convergence", st))
    assert conv.config["convergence"]["rtol"] == 0.01
    for read in (lambda: conv.config["mu"], lambda: conv.config.get("tau", 1.0), lambda: "omega" in conv.config,
                 lambda: conv.mu, lambda: conv.model.nbands, lambda: conv.units.kT(1.0)):
        with pytest.raises(plan.UndeclaredKeyError):
            read()
    geo = plan.stage_study("geometry", plan.grid_chain(st, 40)["geometry"])
    assert geo.model.model_hash == st.model.model_hash and geo.degeneracy_threshold == st.degeneracy_threshold
    with pytest.raises(plan.UndeclaredKeyError, match="responses"):
        geo.responses
    red = plan.stage_study("reduce", plan.grid_chain(st, 40)["reduce"])
    assert list(red.mu) == list(st.mu) and red.responses == st.responses and red.fermi_form == st.fermi_form


def test_a_job_derives_only_the_values_of_its_own_stage_and_upstream(monkeypatch):
    """plan.grid_chain is lazy: a kgrid/geometry job's params do not derive reduce's values (window_cut, model
    facts: per-job start-up), and each stage's inputs are derived once, identical to a chain built at once."""
    from qgtflow import plan

    st = load_study(STUDY)
    calls = []
    derive = plan.CONTRACTS["reduce"].derived["window_cut"]
    monkeypatch.setitem(plan.CONTRACTS["reduce"].derived, "window_cut", lambda s: calls.append(1) or derive(s))
    chain = plan.grid_chain(st, 40)
    geometry = chain["geometry"]
    assert calls == [] and geometry["upstream"] == {"kgrid": chain["kgrid"]["fingerprint"]}
    assert chain["reduce"]["upstream"] == {"geometry": geometry["fingerprint"]} and calls == [1]
    assert chain["reduce"] is chain["reduce"] and calls == [1]
    assert list(chain) == ["kgrid", "geometry", "reduce"] and dict(chain) == dict(plan.grid_chain(st, 40))


def test_dask_cluster_matches_in_process(tmp_path, caplog):
    """Real distributed LocalCluster with two worker processes, no workdir: the one pass on the workers (each task
    returns its partial sums, no store written; qgtflow.stages.fused) equals the one pass in this process to
    rounding (the partial sums are added in another order)."""
    import logging

    inline = qgtflow.evaluate(STUDY, n_workers=0)
    with caplog.at_level(logging.INFO, logger="qgtflow"):
        dask = qgtflow.evaluate(STUDY, n_workers=2, out=str(tmp_path / "r.zarr"))
    assert "2 tasks on the Dask workers" in caplog.text
    xr.testing.assert_identical(inline.drop_attrs().drop_vars(list(inline.data_vars)),
                                dask.drop_attrs().drop_vars(list(dask.data_vars)))
    for name in inline.data_vars:
        scale = float(np.max(np.abs(inline[name].values)))
        np.testing.assert_allclose(dask[name].values, inline[name].values, rtol=0, atol=1e-14 * scale, err_msg=name)
        assert dask[name].attrs == inline[name].attrs, name
    assert xr.open_zarr(tmp_path / "r.zarr").attrs["qgtflow_complete"]


def test_reduce_builds_no_model_and_shells_only_when_asked():
    """issue 13: data flow forward. reduce's contract has no model (its study refuses model access beyond the
    plan's facts); the shells stage runs only for a study with a model-evaluated response or born_tau."""
    import pytest as _pytest

    from qgtflow import plan
    from qgtflow.study import load_study

    assert plan.CONTRACTS["reduce"].model is False
    base = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}}, "units": "natural",
            "kgrid": {"sizes": [8], "kmax": 1.0}, "mu": [0.3], "temperature": [0.01], "responses": ["sigma_drude"],
            "tau": 10.0}
    plain = load_study(base, name="plain")
    assert "shells" not in plan.grid_chain(plain, 8)
    born = load_study({**base, "impurities": {"density": 1.0, "potential": 1.0, "born_tau": True}}, name="born")
    chain = plan.grid_chain(born, 8)
    assert chain["shells"]["products"] == ["born_tau"] and "shells" in chain["reduce"]["upstream"]
    st = plan.stage_study("reduce", chain["reduce"])
    assert st.model.periodic is False and st.model.dim == 2
    with _pytest.raises(plan.UndeclaredKeyError):
        st.model.derivatives
    with _pytest.raises(plan.UndeclaredKeyError):
        st.config["model"]


def test_the_kernel_computes_only_the_stored_fields(tmp_path, monkeypatch):
    """store_fields reaches the kernel: `required` asks compute_fields for what the responses read (σ_AHE: Ω, and
    energy, velocity), `all` for every core field; the shared fields are bit-identical either way."""
    from qgtflow.geometry import fields as kernel

    asked = []

    def recording(*args, core=None, **kwargs):
        asked.append(core)
        return kernel.compute_fields(*args, core=core, **kwargs)

    monkeypatch.setattr(geometry_stage, "compute_fields", recording)
    base = {"name": "ahc", "model": {"name": "haldane", "params": {"mass": 0.2}}, "kgrid": {"sizes": [8]},
            "mu": [0.0], "temperature": [300.0], "responses": ["sigma_ahe"]}
    kg = tmp_path / "kgrid.zarr"
    kgrid_stage.run(load_study(base), 8, kg)
    stored = {}
    for mode, expected in (("required", ("energy", "velocity", "berry_curvature")), ("all", tuple(CORE_FIELDS))):
        asked.clear()
        geometry_stage.run(load_study({**base, "store_fields": mode}), kg, tmp_path / f"{mode}.zarr", n_workers=0)
        assert asked and set(asked) == {expected}, mode
        stored[mode] = io.open_store(tmp_path / f"{mode}.zarr")
    for name in ("energy", "velocity", "berry_curvature"):
        np.testing.assert_array_equal(stored["required"][name].values, stored["all"][name].values)
