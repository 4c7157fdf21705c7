"""Adaptive k-grid refinement (qgtflow.refine, kgrid stage with ``kgrid.refine``)."""

import numpy as np
import pytest
import zarr

import qgtflow
from qgtflow import io
from qgtflow.errors import ConfigError
from qgtflow.kgrid import make_grid
from qgtflow.models.builtin import massive_dirac
from qgtflow.models.polynomial import PolynomialModel
from qgtflow.models.sectors import SectorModel
from qgtflow.refine import Refiner, RefineSpec, parse_refine, refine_points, sub_offsets
from qgtflow.stages import kgrid_stage
from qgtflow.study import load_study

M, MU, KT = 0.2, 0.5, 2e-3  # the 2D massive Dirac Drude-weight setting (natural units, v = 1)


def parabolic(dim: int, kmax: float = 2.0):
    """ε = k²/2 (one band), a k·p model."""
    terms = {tuple(2 * int(a == b) for b in range(dim)): 0.5 * np.eye(1) for a in range(dim)}
    return PolynomialModel(f"parabolic{dim}d", dim, terms, kmax=kmax)


def periodic_model(dim: int):
    from tests.conftest import random_lattice_model

    if dim == 2:
        return random_lattice_model()
    from qgtflow.models import TightBindingModel

    hops = []
    for R in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        hops += [(R, 0, 0, -1.0), (tuple(-r for r in R), 0, 0, -1.0)]
    return TightBindingModel("cubic", np.eye(3), np.zeros((1, 3)), hops, params={})


def fractional(grid, k):
    return np.linalg.solve(np.asarray(grid.basis).T, (k - grid.origin).T).T * np.asarray(grid.sizes)


@pytest.mark.parametrize("kind,dim,levels", [("window", 2, 1), ("window", 2, 2), ("window", 3, 2), ("window", 1, 2),
                                             ("periodic", 2, 2), ("periodic", 3, 1)])
def test_weights_points_and_cells(kind, dim, levels):
    """Σ w unchanged; no duplicated point; every refined point inside its base cell; levels nest."""
    if kind == "window":
        model = parabolic(dim)
        grid = make_grid(model, 12 if dim == 3 else 24, kmax=2.0)
        mu, kT = [0.8, 1.5], 0.01
    else:
        model = periodic_model(dim)
        grid = make_grid(model, 10 if dim == 3 else 20)
        e = np.linalg.eigvalsh(model.unique_derivatives(grid.points())[:, 0])
        mu, kT = [float(np.median(e[:, 0]))], 0.01
    spec = RefineSpec(factor=3 if dim == 3 else 4, levels=levels)
    res = refine_points(model, grid, spec, mu, kT)
    assert res.flagged_per_level[0] > 0 and res.n_points > grid.n_points
    assert len(res.flagged_per_level) == levels
    assert abs(res.weight.sum() - grid.weight * grid.n_points) <= 1e-12 * grid.weight * grid.n_points
    # counting pass = writing pass
    assert refine_points(model, grid, spec, mu, kT, count_only=True).n_points == res.n_points
    # weights: base, base/r^d, base/r^2d only, with the right multiplicities
    sub = spec.factor ** dim
    levels_of = np.rint(np.log(grid.weight / res.weight) / np.log(sub)).astype(int)
    assert np.allclose(res.weight, grid.weight / sub ** levels_of.astype(float), rtol=1e-13)
    n_per_level = np.bincount(levels_of, minlength=levels + 1)
    assert n_per_level[0] == grid.n_points - res.flagged_per_level[0]
    # every point lies inside (or on the boundary of) its base cell: in fractional units, within ½
    f = fractional(grid, res.kvec) - np.asarray(grid.shift)
    base = np.rint(f)
    assert np.all(np.abs(f - base) <= 0.5 - 0.5 / spec.factor ** levels + 1e-9)
    if kind == "window":
        assert np.all((base >= 0) & (base < np.asarray(grid.sizes)))
    # no duplicated k-point (periodic: modulo the zone)
    key = np.rint(f * 2 * spec.factor ** levels).astype(np.int64)
    if kind == "periodic":
        key = np.mod(key, 2 * spec.factor ** levels * np.asarray(grid.sizes))
    assert np.unique(key, axis=0).shape[0] == res.n_points
    # sub-points of a refined base cell sit in place of their parent (base order kept)
    assert np.all(np.diff(np.ravel_multi_index(np.mod(base.astype(int).T, np.asarray(grid.sizes)[:, None]),
                                               grid.sizes)) >= 0)


def test_sub_offsets_are_the_cell_centred_subgrid():
    off = sub_offsets(2, 4)
    assert off.shape == (16, 2)
    assert np.allclose(np.unique(off[:, 0]), [-0.375, -0.125, 0.125, 0.375])
    assert np.allclose(off.mean(axis=0), 0.0)


def test_flagged_cells_follow_the_fermi_shell_2d_dirac():
    """Count of flagged cells vs the area of the shell |ε − μ| ≤ w k_BT + (spread over the cell)."""
    model = massive_dirac(1.0, M, kmax=2.0)
    N, kT, w = 300, 0.01, 12.0
    grid = make_grid(model, N, kmax=2.0)
    h = 4.0 / N
    refiner = Refiner.for_grid(model, grid, RefineSpec(factor=2, window_kT=w), [MU], kT)
    k = grid.points()
    flags = refiner.flags(k, refiner.steps)
    kf = np.sqrt(MU ** 2 - M ** 2)
    v = kf / MU
    # shell |k − kF| ≤ (w kT)/v + ½ h (|cos θ| + |sin θ|): area 4π kF w kT / v + 8 kF h
    estimate = (4 * np.pi * kf * w * kT / v + 8 * kf * h) / h ** 2
    n = int(flags.sum())
    print(f"2D Dirac: {n} flagged cells, shell estimate {estimate:.0f}")
    assert abs(n - estimate) <= 0.05 * estimate
    e = np.sqrt((k ** 2).sum(1) + M ** 2)
    assert flags[np.abs(e - MU) <= w * kT].all()  # every cell whose centre is in the window
    assert not flags[np.abs(e - MU) > w * kT + h * v].any()  # nothing far from the Fermi surface
    # a second μ adds its own shell; a μ in the gap (|μ| < m) adds nothing
    assert refiner.flags(k, refiner.steps).sum() == \
        Refiner.for_grid(model, grid, RefineSpec(factor=2, window_kT=w), [MU, 0.0], kT).flags(k, refiner.steps).sum()
    two = Refiner.for_grid(model, grid, RefineSpec(factor=2, window_kT=w), [MU, -0.8], kT).flags(k, refiner.steps)
    assert two.sum() > 1.5 * n


def test_flagged_cells_follow_the_fermi_shell_3d_parabolic():
    model = parabolic(3, kmax=1.5)
    N, kT, w, mu = 60, 0.004, 12.0, 0.5
    grid = make_grid(model, N, kmax=1.5)
    h = 3.0 / N
    refiner = Refiner.for_grid(model, grid, RefineSpec(factor=2, window_kT=w), [mu], kT)
    flags = refiner.flags(grid.points(), refiner.steps)
    kf = np.sqrt(2 * mu)  # v = kF; spread ½ h Σ|k_a| (mean of Σ|k̂_a| over the sphere: 3/2)
    estimate = 8 * np.pi * kf * (w * kT + 0.75 * h * kf) / h ** 3
    n = int(flags.sum())
    print(f"3D parabolic: {n} flagged cells, shell estimate {estimate:.0f}")
    assert abs(n - estimate) <= 0.08 * estimate


def test_degeneracy_flags_near_crossings_within_a_sector_only():
    small = massive_dirac(1.0, 0.02, kmax=1.0)
    grid = make_grid(small, 100, kmax=1.0)
    k = grid.points()
    steps = np.asarray(grid.basis) / np.asarray(grid.sizes)[:, None]
    far_mu = [10.0]  # no Fermi surface in the window
    assert not Refiner(small, steps, RefineSpec(), far_mu, 0.01).flags(k, steps).any()
    flags = Refiner(small, steps, RefineSpec(degeneracy=0.1), far_mu, 0.01).flags(k, steps)
    r = np.linalg.norm(k, axis=1)
    assert flags.any() and flags[r < 0.04].all() and not flags[r > 0.1].any()
    # two identical sectors: their bands coincide everywhere but never mix → same flags as one sector
    twins = SectorModel("twins", [("a", small), ("b", massive_dirac(1.0, 0.02, kmax=1.0))])
    assert np.array_equal(Refiner(twins, steps, RefineSpec(degeneracy=0.1), far_mu, 0.01).flags(k, steps), flags)


def drude_study(N, refine=None, kT=KT, mu=MU):
    kgrid = {"sizes": [N], "kmax": 2.0, **({"refine": refine} if refine else {})}
    return {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": M}}, "units": "natural",
            "kgrid": kgrid, "mu": [mu], "temperature": [kT], "tau": 1.0, "responses": ["sigma_drude"],
            "store_fields": "required"}


def drude(study):
    ds = qgtflow.evaluate(study, n_workers=0)
    return float(ds.sigma_drude.sel(i="x", j="x").values.ravel()[0]), ds


def test_low_temperature_drude_weight_refined_vs_uniform():
    """2D massive Dirac, k_BT = 2e-3 ≪ |v| h: refined coarse grid hits the closed form, uniform does not."""
    from scipy.integrate import quad

    exact0 = (MU ** 2 - M ** 2) / (4 * np.pi * MU)  # T → 0: Σ∫ v_x² δ(ε − μ)
    # finite T: ∫ dE g(E) (−f0'), g(E) = (E² − m²)/(4π E); Sommerfeld: O((k_BT)²) relative ~1e-5
    g = lambda e: (e * e - M * M) / (4 * np.pi * e)
    fprime = lambda e: 1 / (4 * KT * np.cosh((e - MU) / (2 * KT)) ** 2)
    exact_T = quad(lambda e: g(e) * fprime(e), MU - 40 * KT, MU + 40 * KT, points=[MU], epsabs=0, epsrel=1e-12)[0]
    assert abs(exact_T / exact0 - 1) < 1e-4

    value, ds = drude(drude_study(48, {"factor": 4, "levels": 2}))
    n_refined = int(ds.attrs["n_kpoints"])
    err_refined = abs(value / exact_T - 1)
    assert err_refined <= 1e-3 and abs(value / exact0 - 1) <= 1e-3
    assert ds.attrs["grid_spacing"] == pytest.approx(4.0 / 48)
    assert ds.attrs["grid_spacing_refined"] == pytest.approx(4.0 / 48 / 16)
    uniform_same_n, _ = drude(drude_study(48))
    err_same_n = abs(uniform_same_n / exact_T - 1)
    assert err_same_n > 50 * err_refined
    # uniform grids: the smallest N from which every (scanned) finer grid is within 1e-3
    scan = {}
    for N in (334, 550, 650, 750, 800):
        scan[N] = abs(drude(drude_study(N))[0] / exact_T - 1)
    ok_from = min(N for N in scan if all(scan[n] <= 1e-3 for n in scan if n >= N))
    ratio = ok_from ** 2 / n_refined
    print(f"\nDrude weight at k_BT = {KT}: refined base 48² → {n_refined} points, rel. error {err_refined:.2e}; "
          f"uniform 48²: {err_same_n:.2e}; uniform scan {{N: err}} = "
          f"{ {n: float(f'{e:.2e}') for n, e in scan.items()} }; uniform needs {ok_from}² = {ok_from ** 2} points "
          f"for 1e-3: {ratio:.0f}x more")
    assert scan[334] > 1e-3  # 10× the refined grid's points is not enough
    assert ratio >= 10


def test_refined_and_uniform_agree_within_the_error_bar():
    """Fermi-surface form (k·p window): refined N with factor r ≡ uniform N·r on the flagged cells."""
    from qgtflow.convergence import extrapolate

    def run(N, refine):
        study = {"model": {"name": "tilted_dirac", "params": {"v": 1.0, "tilt": 0.4, "mass": 0.1}},
                 "units": "natural", "kgrid": {"sizes": [N], "kmax": 1.5, **({"refine": refine} if refine else {})},
                 "mu": [0.3], "temperature": [0.003], "tau": 1.0,
                 "responses": ["sigma_drude", "berry_curvature_dipole"], "store_fields": "required"}
        ds = qgtflow.evaluate(study, n_workers=0)
        return (np.array([float(ds.sigma_drude.sel(i="x", j="x").values.ravel()[0]),
                          float(ds.berry_curvature_dipole.sel(i="x").values.ravel()[0])]),
                ds.attrs["grid_spacing"], ds.attrs["n_kpoints"])

    sizes = (16, 24, 32)
    refined = [run(N, {"factor": 4}) for N in sizes]
    uniform = [run(4 * N, None) for N in sizes]
    ex = extrapolate([h for _, h, _ in refined], np.array([v for v, _, _ in refined]))
    ex_u = extrapolate([h for _, h, _ in uniform], np.array([v for v, _, _ in uniform]))
    print("\npoints refined", [n for *_, n in refined], "uniform", [n for *_, n in uniform],
          "refined value", ex.value, "±", ex.error, "uniform", ex_u.value, "±", ex_u.error)
    for (vr, _, nr), (vu, _, nu) in zip(refined, uniform):
        assert nr < nu
        assert np.all(np.abs(vr - vu) <= ex.error)
    assert np.all(np.abs(ex.value - ex_u.value) <= np.minimum(ex.error, ex_u.error))


def test_fermi_sea_on_a_periodic_zone_stays_within_its_error_bar():
    """Sea form: the refined/unrefined interface adds an O(h²) term; Richardson in base h removes it."""
    from qgtflow.convergence import extrapolate

    def run(N, refine):
        study = {"model": {"name": "haldane"}, "units": "natural",
                 "kgrid": {"sizes": [N], **({"refine": refine} if refine else {})}, "mu": [0.5],
                 "temperature": [0.01], "responses": ["sigma_ahe"], "store_fields": "required"}
        ds = qgtflow.evaluate(study, n_workers=0)
        return float(ds.sigma_ahe.sel(i="x", j="y").values.ravel()[0]), ds.attrs["grid_spacing"]

    refined = [run(N, {"factor": 4}) for N in (24, 32, 48)]
    reference = run(192, None)[0]  # uniform at the finest effective resolution (spectrally converged here)
    ex = extrapolate([h for _, h in refined], np.array([v for v, _ in refined]))
    print(f"\nsea form: refined {[v for v, _ in refined]} -> {float(ex.value):.8f} ± {float(ex.error):.2e} "
          f"(order {float(ex.order):.2f}); uniform {reference:.8f}")
    assert abs(refined[-1][0] - reference) <= ex.error
    assert abs(ex.value - reference) <= ex.error


def refined_study(tmp_path, **refine):
    return load_study(drude_study(40, {"factor": 4, **refine}) | {"kgrid": {
        "sizes": [40], "kmax": 2.0, "chunk_size": 256, "refine": {"factor": 4, **refine}}})


def test_store_attrs_fingerprint_and_resume(tmp_path, monkeypatch):
    st = refined_study(tmp_path)
    out = tmp_path / "kgrid.zarr"
    n_written = kgrid_stage.run(st, 40, out)
    ds = io.open_store(out)
    grid = st.make_grid(40)
    attrs = ds.attrs
    assert attrs["n_kpoints"] == ds.sizes["kpoint"] > grid.n_points and attrs["n_base_points"] == 1600
    assert attrs["refine_factor"] == 4 and attrs["refine_levels"] == 1 and attrs["n_refined_cells"] > 0
    assert ds.sizes["kpoint"] == grid.n_points + attrs["n_refined_cells"] * 15
    assert attrs["grid_spacing"] == pytest.approx(grid.spacing)
    assert attrs["grid_spacing_refined"] == pytest.approx(grid.spacing / 4)
    assert n_written == ds.sizes["chunk"] > 1 and attrs["chunk_size"] == 256
    assert float(ds.weight.sum()) == pytest.approx(grid.weight * grid.n_points, rel=1e-12)
    kvec = ds.kvec.values.copy()
    res = refine_points(st.model, grid, RefineSpec(factor=4), st.mu, KT)
    assert np.array_equal(kvec, res.kvec) and np.array_equal(ds.weight.values, res.weight)
    # complete store: nothing recomputed
    assert kgrid_stage.run(st, 40, out) == 0
    # a killed run (after 3 chunks written): the next run writes only the rest, same result
    calls = {"n": 0}
    real = io.write_region

    def dying(*args, **kwargs):
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        calls["n"] += 1
        return real(*args, **kwargs)

    out2 = tmp_path / "kgrid2.zarr"
    monkeypatch.setattr(io, "write_region", dying)
    with pytest.raises(KeyboardInterrupt):
        kgrid_stage.run(st, 40, out2)
    monkeypatch.setattr(io, "write_region", real)
    assert io.chunks_done(out2).sum() == 3 and not io.store_attrs(out2)[io.COMPLETE]
    assert kgrid_stage.run(st, 40, out2) == ds.sizes["chunk"] - 3
    again = io.open_store(out2)
    assert np.array_equal(again.kvec.values, kvec)
    # holes in the middle (markers lost) are refilled; the others are not rewritten
    group = zarr.open_group(str(out2), mode="r+")
    group["chunk_done"][1] = 0
    group["chunk_done"][4] = 0
    group["kvec"][256:512] = np.nan
    group.attrs[io.COMPLETE] = False
    assert kgrid_stage.run(st, 40, out2) == 2
    assert np.array_equal(io.open_store(out2).kvec.values, kvec)


def test_fingerprints_uniform_unchanged_refined_follows_mu_and_T():
    base = load_study(drude_study(40))
    assert kgrid_stage.fingerprint(base, 40) != kgrid_stage.fingerprint(base, 48)  # the size is an input
    assert kgrid_stage.fingerprint(load_study(drude_study(40, mu=0.6)), 40) == kgrid_stage.fingerprint(base, 40)
    refined = load_study(drude_study(40, {"factor": 4}))
    fp = kgrid_stage.fingerprint(refined, 40)
    assert fp != kgrid_stage.fingerprint(base, 40)
    assert fp != kgrid_stage.fingerprint(load_study(drude_study(40, {"factor": 4}, mu=0.6)), 40)
    assert fp != kgrid_stage.fingerprint(load_study(drude_study(40, {"factor": 4}, kT=1e-3)), 40)
    assert fp != kgrid_stage.fingerprint(load_study(drude_study(40, {"factor": 4, "levels": 2})), 40)
    assert refined.config["kgrid"]["refine"] == {"factor": 4, "window_kT": 12, "levels": 1}


def test_uniform_store_has_no_refine_attrs(tmp_path):
    st = load_study(drude_study(16))
    kgrid_stage.run(st, 16, tmp_path / "u.zarr")
    attrs = io.open_store(tmp_path / "u.zarr").attrs
    assert not [k for k in attrs if "refine" in k] and attrs["n_kpoints"] == 256
    assert "refine" not in st.config["kgrid"]


@pytest.mark.parametrize("refine,key,words", [
    ({"factor": 1}, "kgrid.refine.factor", ">= 2"),
    ({"factor": 2.5}, "kgrid.refine.factor", "integer"),
    ({"levels": 3}, "kgrid.refine.levels", "[1, 2]"),
    ({"levels": 0}, "kgrid.refine.levels", "[1, 2]"),
    ({"window_kT": 0}, "kgrid.refine.window_kT", "> 0"),
    ({"degeneracy": -1e-3}, "kgrid.refine.degeneracy", "> 0"),
    ({"facter": 4}, "kgrid.refine.facter", "known keys"),
])
def test_config_errors_name_the_key(refine, key, words):
    with pytest.raises(ConfigError) as exc:
        load_study(drude_study(16, refine))
    assert exc.value.key == key and words in str(exc.value), str(exc.value)
    # the pure parser says the same (for callers without the schema)
    with pytest.raises(ConfigError) as exc2:
        parse_refine(refine)
    assert exc2.value.key == key


def test_parse_refine_defaults():
    assert parse_refine(None) is None
    assert parse_refine({}) == RefineSpec(factor=4, window_kT=12.0, levels=1, degeneracy=None)


def test_refine_refused_with_tetrahedron_integration():
    """Refused when the study is loaded (before any compute; the one place of this check: the kgrid
    stage does not read `integration`, so changing it does not rerun the grids)."""
    with pytest.raises(ConfigError) as exc:
        load_study(drude_study(16, {"factor": 4}) | {"integration": "tetrahedron"})
    assert exc.value.key.endswith("kgrid.refine") and "tetrahedron" in str(exc.value)
