"""Model layer: seed-model spectra, symbolic models, sectors, spin operators, bad input."""

import numpy as np
import pytest

from qgtflow.errors import ModelError
from qgtflow.geometry.fields import compute_fields
from qgtflow.models import build_model
from qgtflow.models.builtin import BUILTIN_MODELS, HBAR_EV_S
from qgtflow.models.config import model_from_config
from qgtflow.models.presets import PRESETS, symbolic_preset

RNG = np.random.default_rng(7)


def sample_k(model, n=64):
    if model.periodic:
        return RNG.uniform(-0.5, 0.5, (n, model.dim)) @ model.reciprocal_vectors
    return RNG.uniform(-1, 1, (n, model.dim)) * model.kmax


def energies(model, k):
    return np.linalg.eigvalsh(model.unique_derivatives(k)[:, 0])


# -- spectra against the papers' closed forms -----------------------------------------------------
def test_massive_and_tilted_dirac_spectra():
    m = build_model("massive_dirac", {"v": 0.7, "mass": 0.2})
    k = sample_k(m)
    e = np.sqrt(0.49 * (k ** 2).sum(1) + 0.04)
    np.testing.assert_allclose(energies(m, k), np.stack([-e, e], 1), atol=1e-13)
    t = build_model("tilted_dirac", {"v": 0.7, "mass": 0.2, "tilt": 0.3})
    np.testing.assert_allclose(energies(t, k), 0.3 * k[:, :1] + np.stack([-e, e], 1), atol=1e-13)


def test_pt_toy_spectrum_is_doubly_degenerate_closed_form():
    m = build_model("pt_toy_4band", {"t": 0.9})
    k = sample_k(m)
    k2 = (k ** 2).sum(1)
    e = np.sqrt(k2 + (0.1 - k2 + 0.9 * k[:, 0]) ** 2)  # 001 Eq. 20, v = b = 1, m = 0.1
    np.testing.assert_allclose(energies(m, k), np.stack([-e, -e, e, e], 1), atol=1e-12)


def test_ndd_two_valley_spectrum_and_global_gap():
    m = build_model("ndd_two_valley")
    assert m.dim == 3 and m.nbands == 4 and list(m.band_sector) == ["1", "1", "2", "2"]
    k = sample_k(m)
    v, vp, mass = 1.0, np.sqrt(1.9), 1.0
    blocks = []
    for delta, vprime in ((1.0, vp), (2.0, -vp)):  # 002 Eq. 14, Fig. 4: Δ2 = 2Δ, v'_1 = −v'_2
        r = np.sqrt(v ** 2 * (k[:, 0] ** 2 + k[:, 1] ** 2) + (delta + k[:, 2] ** 2 / (2 * mass)) ** 2)
        blocks.append(np.stack([vprime * k[:, 2] - r, vprime * k[:, 2] + r], 1))
    np.testing.assert_allclose(np.sort(energies(m, k), 1), np.sort(np.concatenate(blocks, 1), 1), atol=1e-12)
    # the small global gap 0.1Δ of Fig. 4: conduction bottom 0.05Δ at kz = −m v', valence top −0.05Δ
    kz = np.linspace(-3, 3, 20001)
    grid = np.stack([0 * kz, 0 * kz, kz], 1)
    e = energies(m, grid)
    gap = e[:, 2:].min() - e[:, :2].max()
    assert gap == pytest.approx(0.1, abs=1e-6)


def test_snte_surface_spectrum_and_spin():
    m = build_model("snte_surface_dirac")
    v = HBAR_EV_S * 1e5 * 1e9
    assert v == pytest.approx(0.0658211957, rel=1e-9)  # ħ·1e5 m/s in eV·nm (003 Fig. 1a)
    k = sample_k(m)
    r = np.sqrt(v ** 2 * (k ** 2).sum(1) + 0.01 ** 2)
    blocks = [np.stack([s * 0.1 * v * k[:, 1] - r, s * 0.1 * v * k[:, 1] + r], 1) for s in (1, -1)]
    np.testing.assert_allclose(np.sort(energies(m, k), 1), np.sort(np.concatenate(blocks, 1), 1), atol=1e-14)
    assert m.spin.shape == (3, 4, 4)
    np.testing.assert_allclose(m.spin[2], np.diag([1, -1, 1, -1]))


def test_bilayer_graphene_spectrum_and_lambda_reading():
    m = build_model("bilayer_graphene_gapped")
    vt, lam = HBAR_EV_S * 1e5 * 1e9, HBAR_EV_S * 1.754e-3 * 1e18  # AMBIGUITIES 004.1: λ in m²/s
    assert lam == pytest.approx(1.15450, rel=1e-4)
    k = sample_k(m)
    kx, ky = k[:, 0], k[:, 1]
    blocks = []
    for s in (1, -1):  # 004 Eq. 8
        hx = s * vt * kx - lam * (kx ** 2 - ky ** 2)
        hy = vt * ky + 2 * s * lam * kx * ky
        r = np.sqrt(hx ** 2 + hy ** 2 + 0.05 ** 2)
        blocks.append(np.stack([-r, r], 1))
    np.testing.assert_allclose(np.sort(energies(m, k), 1), np.sort(np.concatenate(blocks, 1), 1), atol=1e-14)
    assert list(build_model("bilayer_graphene_gapped", {"g_s": 2}).band_weight) == [2, 2, 2, 2]


def test_haldane_spectrum_closed_form():
    t1, t2, phi, mass = 1.0, 0.15, 0.7, 0.2
    m = build_model("haldane", {"t1": t1, "t2": t2, "phi": phi, "mass": mass})
    k = sample_k(m)
    a1, a2 = np.array([1.0, 0]), np.array([0.5, np.sqrt(3) / 2])
    tau = (a1 + a2) / 3
    deltas = [tau, tau - a1, tau - a2]
    bs = [a1, a2 - a1, -a2]
    f = sum(np.exp(1j * k @ d) for d in deltas)
    e0 = 2 * t2 * np.cos(phi) * sum(np.cos(k @ b) for b in bs)
    dz = mass - 2 * t2 * np.sin(phi) * sum(np.sin(k @ b) for b in bs)
    r = np.sqrt(np.abs(t1 * f) ** 2 + dz ** 2)
    np.testing.assert_allclose(energies(m, k), np.stack([e0 - r, e0 + r], 1), atol=1e-12)


# -- symbolic = hand-coded ---------------------------------------------------------------------------
def test_every_builtin_has_a_symbolic_preset():
    assert set(PRESETS) == set(BUILTIN_MODELS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_symbolic_preset_equals_builtin(name):
    built = build_model(name)
    symbolic = model_from_config(symbolic_preset(name))
    assert (symbolic.nbands, symbolic.dim, symbolic.periodic) == (built.nbands, built.dim, built.periodic)
    k = sample_k(built, 40)
    np.testing.assert_allclose(symbolic.unique_derivatives(k), built.unique_derivatives(k), atol=1e-13)
    fb, fs = compute_fields(built, k), compute_fields(symbolic, k)
    for field in fb:
        np.testing.assert_allclose(fs[field], fb[field], rtol=1e-10, atol=1e-12 * np.abs(fb[field]).max(),
                                   err_msg=field)
    np.testing.assert_array_equal(symbolic.band_sector, built.band_sector)
    np.testing.assert_array_equal(symbolic.band_weight, built.band_weight)
    assert (symbolic.spin is None) == (built.spin is None)
    if built.spin is not None:
        np.testing.assert_allclose(symbolic.spin, built.spin)


def test_symbolic_derivatives_match_finite_differences_for_a_non_polynomial_model():
    cfg = {"name": "warped", "params": {"a": 0.8, "b": 0.3, "c": 0.5},
           "hamiltonian": {"matrix": [["a*cos(kx) + b*kx*ky**2", "c*(sin(kx) - I*sqrt(1 + ky**2))*exp(I*ky)"],
                                      ["c*(sin(kx) + I*sqrt(1 + ky**2))*exp(-I*ky)", "-a*cos(kx) + tanh(ky)"]]},
           "kmax": 1.5}
    m = model_from_config(cfg)
    k = sample_k(m, 20)
    H, dH, d2H, d3H = m.derivatives(k)
    h = 1e-5
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        Hp, dHp, d2Hp, _ = m.derivatives(k + e)
        Hm, dHm, d2Hm, _ = m.derivatives(k - e)
        np.testing.assert_allclose((Hp - Hm) / (2 * h), dH[:, a], atol=1e-8)
        np.testing.assert_allclose((dHp - dHm) / (2 * h), d2H[:, :, a], atol=1e-8)
        np.testing.assert_allclose((d2Hp - d2Hm) / (2 * h), d3H[:, :, :, a], atol=1e-7)
    assert m.dim == 2 and m.nbands == 2


def test_symbolic_model_infers_dimension_and_bands():
    m = model_from_config({"name": "x", "hamiltonian": {"terms": [["kz", "tau_x sigma_z"], ["1", "tau_z sigma_0"]]}})
    assert (m.dim, m.nbands) == (3, 4)
    m1 = model_from_config({"name": "x", "hamiltonian": {"matrix": [["kx**2", 1], [1, "-kx**2"]]}})
    assert (m1.dim, m1.nbands) == (1, 2)
    assert not m1.active_slots()[3:].any()  # ∂³ of a quadratic vanishes and is known to


def test_model_hash_is_stable_and_tracks_the_definition():
    cfg = symbolic_preset("massive_dirac")
    h0 = model_from_config(cfg).model_hash
    assert model_from_config(symbolic_preset("massive_dirac")).model_hash == h0
    changed_param = {**cfg, "params": {**cfg["params"], "mass": 0.2}}
    changed_expr = {**cfg, "hamiltonian": {"matrix": [["mass", "v*(kx - I*ky)"], ["v*(kx + I*ky)", "-mass + kx**2"]]}}
    assert model_from_config(changed_param).model_hash != h0
    assert model_from_config(changed_expr).model_hash != h0
    assert build_model("haldane").model_hash == build_model("haldane").model_hash
    assert build_model("haldane", {"t2": 0.2}).model_hash != build_model("haldane").model_hash


def test_fixed_hashes_computes_each_model_hash_once_within_its_scope():
    from qgtflow.models.base import fixed_hashes

    m = build_model("haldane")
    h0 = m.model_hash
    with fixed_hashes():
        assert m.model_hash == h0
        m.params["t2"] = 0.9  # a change inside the scope is not seen: the scope's contract is no changes
        assert m.model_hash == h0
        assert build_model("haldane", {"t2": 0.2}).model_hash != h0  # other objects: their own hashes
    assert m.model_hash != h0  # outside, the identity again


def test_fixed_hashes_is_the_calling_threads_scope_only():
    """Two threads in fixed_hashes() at once, each on its own model, and a third outside any scope: each scoped
    thread gets its own model's hash (fixed within its scope), the unscoped one sees its model's changes, and the
    scopes end in either order (a module-level stack once shared them: an unscoped thread memoised into another's
    scope and then missed its own model's change; the first scope to end popped the other's)."""
    import threading

    from qgtflow.models.base import fixed_hashes

    models = {"a": build_model("haldane", {"t2": 0.1}), "b": build_model("haldane", {"t2": 0.2}),
              "free": build_model("haldane", {"t2": 0.3})}
    before = {name: m.model_hash for name, m in models.items()}
    assert len(set(before.values())) == 3
    entered, a_left, seen, errors = threading.Barrier(3), threading.Event(), {}, []

    def scoped(name, leave_first):
        try:
            with fixed_hashes():
                assert models[name].model_hash == before[name]
                entered.wait(10)  # all three threads are past here with the two scopes open
                models[name].params["t2"] += 1.0  # unseen inside the scope (its contract: no changes)
                if not leave_first:
                    assert a_left.wait(10)  # "a" has closed its scope: "b"'s must still be there
                seen[name] = models[name].model_hash
            if leave_first:
                a_left.set()
            seen[name + " after"] = models[name].model_hash
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def unscoped():
        try:
            entered.wait(10)
            assert models["free"].model_hash == before["free"]
            models["free"].params["t2"] += 1.0
            seen["free"] = models["free"].model_hash
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=scoped, args=("a", True)), threading.Thread(target=scoped, args=("b", False)),
               threading.Thread(target=unscoped)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert seen["a"] == before["a"] and seen["b"] == before["b"]  # each its own model's hash, fixed in its scope
    assert seen["free"] != before["free"]  # no other thread's scope memoised it
    assert seen["a after"] != before["a"] and seen["b after"] != before["b"]  # outside: the identity again
    assert seen["a after"] != seen["b after"]


def test_tight_binding_from_config_equals_builtin_haldane():
    t2 = 0.1 * np.exp(1j * np.pi / 2)
    hops = [[[0, 0], 0, 1, 1.0], [[-1, 0], 0, 1, 1.0], [[0, -1], 0, 1, 1.0]]
    for R in ([1, 0], [-1, 1], [0, -1]):
        hops += [[R, 0, 0, [t2.real, t2.imag]], [R, 1, 1, [t2.real, -t2.imag]]]
    cfg = {"name": "my_haldane", "tight_binding": {"lattice": [[1, 0], [0.5, np.sqrt(3) / 2]],
                                                    "positions": [[0, 0], [1 / 3, 1 / 3]], "hoppings": hops}}
    m, ref = model_from_config(cfg), build_model("haldane")
    k = sample_k(ref)
    np.testing.assert_allclose(m.unique_derivatives(k), ref.unique_derivatives(k), atol=1e-13)


# -- sectors -------------------------------------------------------------------------------------------
def test_sector_fields_are_the_sectors_fields_stacked():
    m = build_model("snte_surface_dirac")
    k = sample_k(m, 30)
    f = compute_fields(m, k)
    parts = [compute_fields(s, k) for s in m.sectors]
    for name in f:
        np.testing.assert_array_equal(f[name], np.concatenate([p[name] for p in parts], axis=1))
    # valleys carry opposite Berry curvature (time reversal maps s → −s and k → −k)
    omega = f["berry_curvature"][:, :, 0, 1]
    np.testing.assert_allclose(omega[:, 0].sum(), -compute_fields(m, -k)["berry_curvature"][:, 2, 0, 1].sum(),
                               rtol=1e-10)


def test_sector_crossing_bands_are_not_mixed():
    """Degenerate bands of two valleys stay separate: each keeps its own velocity (no group averaging)."""
    cfg = {"name": "two_cones", "params": {"v": 1.0},
           "hamiltonian": {"terms": [["v*kx", "sigma_x"], ["v*ky", "sigma_y"], ["s*0.5*kx", "sigma_0"]]},
           "sectors": {"params": {"s": [1, -1]}}, "kmax": 1.0}
    m = model_from_config(cfg)
    k0 = np.array([[0.0, 0.2]])  # both valleys at ±0.2: degenerate across sectors, tilts ±0.5 along x
    f = compute_fields(m, k0)
    np.testing.assert_allclose(f["energy"][0], [-0.2, 0.2, -0.2, 0.2], atol=1e-14)
    np.testing.assert_allclose(f["velocity"][0, :, 0], [0.5, 0.5, -0.5, -0.5], atol=1e-12)
    merged = model_from_config({**cfg, "sectors": None, "params": {"v": 1.0, "s": 1.0}})
    assert merged.nbands == 2  # (sanity: a single sector is an ordinary model)


def test_a_workflow_job_builds_the_planned_model_without_validating_it_again():
    """validate=False (qgtflow.plan.stage_study: the plan validated the model, the job checks its hash) builds the
    same model and evaluates no H: a non-Hermitian matrix is refused only by the validating build."""
    cfg = {"name": "bad", "params": {"v": 1.0}, "hamiltonian": {"matrix": [["v*kx", "I*kx"], [0, 1]]}}
    with pytest.raises(ModelError, match="not Hermitian"):
        model_from_config(cfg)
    assert model_from_config(cfg, validate=False).nbands == 2
    good = {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}}
    assert model_from_config(good, validate=False).model_hash == model_from_config(good).model_hash
    assert build_model("haldane", validate=False).model_hash == build_model("haldane").model_hash


def test_bad_models_are_refused_with_clear_messages():
    base = {"name": "bad", "params": {"v": 1.0}}
    cases = [
        ({"hamiltonian": {"matrix": [["v*kx", "foo"], ["foo", "-v*kx"]]}}, ["unknown symbol 'foo'", "matrix[0][1]"]),
        ({"hamiltonian": {"matrix": [["kx^2", 0], [0, 1]]}}, ["'^'", "**"]),
        ({"hamiltonian": {"matrix": [["__import__('os')", 0], [0, 1]]}}, ["unknown symbol '__import__'"]),
        ({"hamiltonian": {"matrix": [["kx.real", 0], [0, 1]]}}, ["not allowed"]),
        ({"hamiltonian": {"matrix": [["kx", 0, 1], [0, 1]]}}, ["row 0", "square"]),
        ({"hamiltonian": {"matrix": [["kx", "I*kx"], [0, 1]]}}, ["not Hermitian"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_x"], ["v", "tau_z sigma_z"]]}}, ["terms[1]", "4×4", "2×2"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_q"]]}}, ["unknown matrix factor 'sigma_q'"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_x"]], "matrix": [["1"]]}}, ["exactly one"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_x"]]}, "dim": 1, "params": {"v": 1.0},
          "spin": ["sigma_x", "sigma_y"]}, []),  # schema catches spin length; builder too (below)
        ({"hamiltonian": {"terms": [["v*kx + v*ky", "sigma_x"]]}, "dim": 1}, ["uses ky", "dim = 1"]),
        ({"hamiltonian": {"terms": [["s*kx", "sigma_x"]]}, "sectors": {"params": {"s": [1, -1], "q": [1]}}},
         ["same number of values"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_x"]]}, "params": {"v": float("nan")}}, ["'v'", "finite"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_x"]]}, "params": {"kx": 1.0}}, ["reserved"]),
        ({"hamiltonian": {"terms": [["v*kx", "sigma_x"]]}, "spin": ["sigma_x", "sigma_y", "tau_z sigma_z"]},
         ["spin", "4×4", "2 bands"]),
        ({"tight_binding": {"lattice": [[1.0]], "hoppings": [[[0, 0], 0, 0, 1.0]]}}, ["hoppings[0]", "1D"]),
        ({"params": {"nope": 1.0}}, ["unknown parameter"]),
    ]
    for extra, fragments in cases:
        cfg = {**base, **extra}
        if "spin" in extra and len(extra["spin"]) == 2:
            with pytest.raises(ModelError, match="three matrices"):
                model_from_config(cfg)
            continue
        if "tight_binding" not in extra and "hamiltonian" not in extra:
            cfg["name"] = "massive_dirac"
        with pytest.raises(ModelError) as info:
            model_from_config(cfg, where="studies.x.model")
        msg = str(info.value)
        assert msg.startswith("studies.x.model"), msg
        for frag in fragments:
            assert frag in msg, (frag, msg)


def test_symbolic_study_runs_end_to_end(tmp_path):
    from qgtflow.api import evaluate

    study = {"name": "sym", "units": "natural", "model": symbolic_preset("tilted_dirac"),
             "kgrid": {"sizes": [48]}, "mu": [0.15, 0.2], "temperature": [0.02], "tau": 5.0,
             "responses": ["berry_curvature_dipole", "sigma_drude"]}
    sym = evaluate(study, n_workers=0, workdir=tmp_path / "a")
    ref = evaluate({**study, "model": {"name": "tilted_dirac"}}, n_workers=0, workdir=tmp_path / "b")
    for name in study["responses"]:
        np.testing.assert_allclose(sym[name].values, ref[name].values, rtol=1e-10, atol=1e-14)
    assert np.abs(ref["berry_curvature_dipole"].values).max() > 0


def test_sector_resolution_sums_to_the_total(tmp_path):
    from qgtflow.api import evaluate

    study = {"name": "valleys", "model": {"name": "bilayer_graphene_gapped", "params": {"g_s": 2.0}},
             "kgrid": {"sizes": [64]}, "mu": [0.065], "temperature": [30.0], "responses": ["sigma_drude", "sigma_ahe"]}
    total = evaluate(study, n_workers=0, workdir=tmp_path / "a")
    split = evaluate({**study, "resolve_sectors": True}, n_workers=0, workdir=tmp_path / "b")
    assert list(split["sigma_drude"].dims)[0] == "sector" and split.sizes["sector"] == 2
    for name in study["responses"]:
        np.testing.assert_allclose(split[name].sum("sector").values, total[name].values, rtol=1e-12,
                                   atol=1e-12 * np.abs(split[name].values).max())
    # the two valleys have opposite anomalous Hall conductivity: the total vanishes
    ahe = split["sigma_ahe"].sel(i="x", j="y").values
    assert abs(ahe[0]).max() > 0 and np.allclose(ahe[0], -ahe[1], rtol=1e-6)
    single = evaluate({**study, "model": {"name": "bilayer_graphene_gapped"}}, n_workers=0, workdir=tmp_path / "c")
    np.testing.assert_allclose(total["sigma_drude"].values, 2 * single["sigma_drude"].values, rtol=1e-12)


def test_wannier90_study_equals_builtin(tmp_path):
    """A study reading a Wannier90 _hr.dat (Å, eV) reproduces the built-in model (nm, eV) it was written from."""
    import yaml

    from qgtflow.api import evaluate
    from qgtflow.models.wannier import write_hr

    write_hr(build_model("haldane", {"mass": 0.1}), tmp_path / "hal_hr.dat")
    common = {"kgrid": {"sizes": [36]}, "mu": [-0.5, 0.0], "temperature": [300.0],
              "responses": ["sigma_ahe", "sigma_drude"]}
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump({
        "name": "w90", **common,
        "model": {"name": "hal_w90", "wannier90": {"hr": "hal_hr.dat", "convention": "II",
                                                   "lattice": [[10.0, 0.0], [5.0, float(5 * np.sqrt(3))]],
                                                   "positions": [[0, 0], [1 / 3, 1 / 3]]}}}))
    from_file = evaluate(str(study_file), n_workers=0, workdir=tmp_path / "a")
    ref = evaluate({"name": "ref", **common, "model": {"name": "haldane", "params": {"mass": 0.1}}},
                   n_workers=0, workdir=tmp_path / "b")
    for name in common["responses"]:
        np.testing.assert_allclose(from_file[name].values, ref[name].values, rtol=1e-9,
                                   atol=1e-12 * np.abs(ref[name].values).max())
    # the file's checksum is part of the model's identity: editing the file changes the model hash
    from qgtflow.study import load_study

    h0 = load_study(str(study_file)).model.model_hash
    text = (tmp_path / "hal_hr.dat").read_text()
    (tmp_path / "hal_hr.dat").write_text(text.replace(text.splitlines()[-1], text.splitlines()[-1] + " "))
    assert load_study(str(study_file)).model.model_hash != h0
    # a broken file is refused before compute, naming the file and line
    bad = tmp_path / "bad_hr.dat"
    lines = (tmp_path / "hal_hr.dat").read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split()[0], "x", 1)
    bad.write_text("\n".join(lines) + "\n")
    study = yaml.safe_load(study_file.read_text())
    study["model"]["wannier90"]["hr"] = "bad_hr.dat"
    study_file.write_text(yaml.safe_dump(study))
    with pytest.raises(ModelError, match=r"bad_hr.dat.*line 6"):
        evaluate(str(study_file), n_workers=0, workdir=tmp_path / "c")


# -- derivative orders built on demand -------------------------------------------------------------
def _random_tight_binding(positions, convention="II", n=3, seed=3):
    from qgtflow.models.tight_binding import TightBindingModel

    rng = np.random.default_rng(seed)
    hops = []
    for R in [(0, 0), (1, 0), (0, 1), (1, -1), (2, 1)]:
        t = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
        if R == (0, 0):
            t = t + t.conj().T
        for i in range(n):
            for j in range(n):
                hops.append((R, i, j, t[i, j]))
                if R != (0, 0):
                    hops.append(((-R[0], -R[1]), j, i, np.conj(t[i, j])))
    return TightBindingModel("random_tb", [[1.0, 0.2], [-0.3, 1.1]], positions, hops, convention=convention)


@pytest.mark.parametrize("positions", [np.zeros((3, 2)), [[0.0, 0.0], [0.3, 0.1], [0.6, 0.75]]])
def test_tight_binding_lower_orders_are_the_leading_slots(positions, monkeypatch):
    """order < 3 builds the first slot_count(dim, order) slots of the full array (≤ 1e-14); with all orbitals at
    one point the orbital-phase (Leibniz) terms are skipped and the result equals the path that forms them,
    and ∂H, ∂²H match central differences of H(k) (independent of the phase bookkeeping)."""
    from qgtflow.models.derivatives import slot_count
    from qgtflow.models.tight_binding import TightBindingModel

    model = _random_tight_binding(np.asarray(positions, float))
    k = RNG.uniform(-3, 3, (40, 2))
    full = model.unique_derivatives(k)
    scale = np.abs(full).max()
    for order in range(3):
        part = model.unique_derivatives(k, order=order)
        assert part.shape == (40, slot_count(2, order), 3, 3)
        np.testing.assert_allclose(part, full[:, :slot_count(2, order)], rtol=0, atol=1e-14 * scale)
    assert model.phase_free == (not np.any(positions))
    monkeypatch.setattr(TightBindingModel, "phase_free", property(lambda self: False))  # always the Leibniz path
    np.testing.assert_allclose(model.unique_derivatives(k), full, rtol=0, atol=1e-14 * scale)
    h = 1e-5
    for a in range(2):
        step = np.zeros(2)
        step[a] = h
        fd = (model.unique_derivatives(k + step, order=1) - model.unique_derivatives(k - step, order=1)) / (2 * h)
        np.testing.assert_allclose(fd[:, 0], full[:, 1 + a], atol=1e-7 * scale)  # ∂_a H
        np.testing.assert_allclose(fd[:, 1], full[:, 3 + a], atol=1e-7 * scale)  # ∂_a∂_x H (slots xx, xy)


def test_large_tight_binding_hash_digests_the_same_content(monkeypatch):
    """Above HASH_INLINE_ENTRIES the identity carries a blake2b of the R vectors and the hoppings rounded to 14
    decimals instead of their JSON lists: stable, independent of the rounding block size, changed by any
    hopping change the lists would show and by none they would not; small tables keep the inline lists (and
    so the hashes existing stores carry)."""
    from qgtflow.models import tight_binding

    inline = build_model("haldane").model_hash
    assert isinstance(build_model("haldane").identity()["hoppings"], list)
    monkeypatch.setattr(tight_binding, "HASH_INLINE_ENTRIES", 0)
    m = build_model("haldane")
    assert set(m.identity()["hoppings"]) == {"blake2b"}
    h0 = m.model_hash
    assert h0 == build_model("haldane").model_hash != inline
    monkeypatch.setattr(tight_binding, "HASH_ROWS", 1)
    assert build_model("haldane").model_hash == h0
    assert build_model("haldane", {"t2": 0.2}).model_hash != h0

    def tweaked(delta):
        other = build_model("haldane")
        row, col = np.argwhere(np.abs(other.matrices) > 0.05)[0]
        other.matrices = other.matrices.copy()
        other.matrices[row, col] += delta
        return other.model_hash

    assert tweaked(1e-12) != h0  # visible at 14 decimals
    assert tweaked(2e-17 + 2e-17j) == h0  # below the rounding: as the JSON lists


def test_tight_binding_holds_one_copy_of_its_hoppings():
    """hopping_table's blocks are views of the stacked matrices (one copy: ~80 MB per operator at 84 bands),
    in the table's R order, and from_table does not alias the caller's arrays."""
    from qgtflow.models.tight_binding import TightBindingModel

    rng = np.random.default_rng(1)
    table = {(1, 0): rng.normal(size=(2, 2)) + 0j, (-1, 0): rng.normal(size=(2, 2)) + 0j}
    m = TightBindingModel.from_table("t", np.eye(2), np.zeros((2, 2)), table)
    assert list(m.hopping_table) == [(0, 0), (1, 0), (-1, 0)]
    for R, block in m.hopping_table.items():
        assert np.shares_memory(block, m.matrices)
        assert not any(np.shares_memory(block, mat) for mat in table.values())
        np.testing.assert_array_equal(block, table.get(R, np.zeros((2, 2))))
