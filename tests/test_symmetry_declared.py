"""Declared point groups (``symmetry.generators``, models/symmetry.py ``declared_group``): any model, k·p ones
included, gets the symmetry zeros of the group closed from named generators, verified on the model inside its
k·p window; a 2D model declares 3D lifts, whose whole acts on 003's spin index."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from qgtflow.errors import ConfigError, QgtflowError

SPIN = ["sigma_x", "sigma_y", "sigma_z"]


def _rashba_kp(generators, responses, **extra) -> dict:
    """H = k²/(2m) + a (kx σy − ky σx) in a k·p window: C∞v × T, of which [C4z, Mx, T] declares C4v × T."""
    return {"model": {"name": "rashba_kp", "params": {"m": 0.5, "a": 0.6}, "kmax": 2.0, "spin": SPIN,
                      "hamiltonian": {"terms": [["(kx**2 + ky**2)/(2*m)", "sigma_0"], ["a*kx", "sigma_y"],
                                                ["-a*ky", "sigma_x"]]}},
            "symmetry": {"generators": generators}, "units": "natural", "tau": 1.0,
            "kgrid": {"sizes": [16], "chunk_size": 256}, "mu": [-0.05, 0.5, 1.5], "temperature": [0.1],
            "responses": responses, **extra}


def _warped(generators) -> dict:
    """Fu's hexagonal warping, H = v (kx σy − ky σx) + λ (kx³ − 3 kx ky²) σz: C3v × T (Mx its mirror)."""
    return {"model": {"name": "warped_c3v", "params": {"v": 1.0, "lam": 0.4}, "kmax": 1.0, "spin": SPIN,
                      "hamiltonian": {"terms": [["v*kx", "sigma_y"], ["-v*ky", "sigma_x"],
                                                ["lam*(kx**3 - 3*kx*ky**2)", "sigma_z"]]}},
            "symmetry": {"generators": generators}, "units": "natural", "tau": 1.0,
            "kgrid": {"sizes": [8]}, "mu": [0.3], "temperature": [0.1], "responses": ["sigma_drude"]}


def _dirac(generators, responses=("sigma_drude",), **extra) -> dict:
    """003's massive Dirac model, σ the spin: v k·σ + m σz keeps C∞z and the in-plane C2 axes times T (C4z and
    C2x' generate 42'2'), not T (the mass is T-odd)."""
    return {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
            "symmetry": {"generators": generators}, "units": "natural", "tau": 1.0,
            "kgrid": {"sizes": [16], "chunk_size": 256}, "mu": [-0.3, 0.2, 0.5], "temperature": [0.1],
            "responses": list(responses), **extra}


def _zeros(cfg):
    from qgtflow.models.symmetry import study_symmetry_zeros
    from qgtflow.study import load_study

    st = load_study(cfg)
    return st, study_symmetry_zeros(st.model, st.config["symmetry"], st.responses)


def test_closure_of_named_generators():
    """C4v × T has 16 operations, C3v × T 12, 42'2' 8 (C2x' = T·C2x = C2x*T); Oh × T from C3[1, 1, 1], C4z, I,
    T is 96; S4z generates -4 (4 operations)."""
    from qgtflow.models.symmetry import closed_group

    assert len(closed_group(["C4z", "Mx", "T"])) == 16
    assert len(closed_group(["C3z", "Mx", "T"])) == 12
    assert len(closed_group(["C4z", "C2x'"])) == len(closed_group(["C4z", "T·C2x"])) == 8
    assert len(closed_group(["C4z", "C2x * T"])) == 8
    assert len(closed_group(["C3[1, 1, 1]", "C4z", "I", "T"])) == 96
    ops = closed_group(["S4z"])
    assert len(ops) == 4 and sum(np.linalg.det(R) < 0 for R, _ in ops) == 2
    R, t = closed_group([{"rotation": [[0, -1, 0], [1, 0, 0], [0, 0, 1]], "time_reversal": True}])[1]
    assert t == 1 and np.allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("generators, fragment", [
    (["C4z", "C3x"], "finite point group"),  # no finite group holds both
    ([{"rotation": [[1, 0, 0], [0, 2, 0], [0, 0, 1]]}], "orthogonal 3 × 3 matrix"),
    (["C4q"], "C<n><axis>"),
    (["C2[1, 1]"], "three numbers"),
    (["Mz·Cx"], "C<n><axis>"),
])
def test_a_set_that_is_no_finite_point_group_is_refused(generators, fragment):
    from qgtflow.models.symmetry import closed_group

    with pytest.raises(ConfigError) as err:
        closed_group(generators)
    assert err.value.key == "symmetry.generators" and fragment in str(err.value) and "\n" not in str(err.value)


def test_rashba_kp_gets_the_zeros_of_the_periodic_rashba_crystal():
    """The Rashba k·p layer declaring [C4z, Mx, T] gets exactly the Edelstein and spin-Hall zeros the periodic
    Rashba square layer gets from its planar crystal (its spin operator keeps the C4v × T lifts), and the
    periodic layer declaring the same generators gets them too."""
    pytest.importorskip("spglib")
    from tests.test_symmetry_spin2d import RESPONSES, _study

    _, crystal = _zeros(_study(RESPONSES))
    _, declared = _zeros(_rashba_kp(["C4z", "Mx", "T"], RESPONSES))
    assert declared == crystal and set(declared) == set(RESPONSES), (declared, crystal)
    periodic = {**_study(RESPONSES), "symmetry": {"generators": ["C4z", "Mx", "T"]}}
    assert _zeros(periodic)[1] == crystal


def _components(da):
    from qgtflow.wedge import CART_DIMS

    cart = [d for d in da.dims if d in CART_DIMS]
    labels = np.array(["".join(c) for c in product(*(da[d].values.astype(str) for d in cart))])
    values = np.abs(np.moveaxis(da.values, [da.dims.index(d) for d in cart], range(-len(cart), 0)))
    return labels, values.reshape(-1, len(labels))


@pytest.mark.parametrize("case", ["rashba", "dirac"])
def test_declared_zeros_vanish_on_the_window_grid_and_nothing_else_does(case, tmp_path):
    """On the 16² window grid at three Fermi levels: every claimed zero is ≤ 1e-12 of the response's largest entry,
    every other component ≥ 1e-3 of it at some Fermi level (the square window is mapped onto itself by C4v, 42'2')."""
    from qgtflow.api import evaluate

    if case == "rashba":
        cfg = _rashba_kp(["C4z", "Mx", "T"], ["spin_beta_lin_tau1", "spin_sigma_lin_tau0", "sigma_drude"])
    else:
        cfg = _dirac(["C4z", "C2x'"], ["sigma_drude", "sigma_ahe", "spin_beta_lin_tau1", "spin_beta_lin_tau0",
                                       "spin_beta_nl_tau1"])
    _, zeros = _zeros(cfg)
    assert set(zeros) == set(cfg["responses"]), zeros
    ds = evaluate(cfg, n_workers=0, workdir=tmp_path)
    for name in cfg["responses"]:
        labels, values = _components(ds[name])
        largest = values.max()
        zero = np.isin(labels, zeros[name])
        assert largest > 1e-6 and values[:, zero].max() <= 1e-12 * largest, (name, values[:, zero].max(), largest)
        assert (values[:, ~zero].max(axis=0) >= 1e-3 * largest).all(), (name, labels[~zero],
                                                                       values[:, ~zero].max(axis=0) / largest)


@pytest.mark.parametrize("cfg, operation", [
    (_warped(["C4z", "Mx", "T"]), "C4[0, 0, 1]"),  # C4z on a C3v model: its energies change
    (_dirac(["C4z", "T"]), "1'"),  # T on the magnetic massive Dirac model: its curvature is T-even
    (_dirac(["C2z", "Mx"]), "m[1, 0, 0]"),  # the mass's Ω_z is even under kx → −kx, a pseudovector's is odd
    (_dirac(["I"], ["spin_beta_lin_tau1"]), "-1"),  # I acts on k and Ω as C2z does (which passes), not on the spin
])
def test_a_wrong_declared_generator_is_refused_naming_the_operation(cfg, operation):
    from qgtflow.study import load_study

    with pytest.raises(ConfigError) as err:
        load_study(cfg)
    msg = str(err.value)
    assert err.value.key == "symmetry.generators" and err.value.value == cfg["symmetry"]["generators"], msg
    assert f"operation {operation}:" in msg and "\n" not in msg, msg


def test_the_right_group_of_the_warped_model_passes_with_a_window_warning(caplog):
    """C3v × T is the warped model's group (checked inside its window); C3 does not map the square window onto
    itself, which a warning says (its zeros hold where the integrand has decayed inside it)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="qgtflow.study"):
        _, zeros = _zeros(_warped(["C3z", "Mx", "T"]))
    assert zeros == {"sigma_drude": ["xy", "yx"]}, zeros
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "do not map the k·p window" in warning[0] and "'C3'" in warning[0], warning


@pytest.mark.parametrize("change, key, fragment", [
    ({"symmetry": {"generators": ["C3[1, 1, 1]"]}}, "symmetry.generators", "keep the 2D model's xy plane"),
    ({"symmetry": {"generators": ["C4z"], "atoms": [["X", 0, 0, 0]]}}, "symmetry.generators", "not both"),
    ({"kgrid": {"sizes": [16], "symmetry_reduce": True}}, "kgrid.symmetry_reduce", "periodic model"),
])
def test_declared_group_refusals(change, key, fragment):
    from qgtflow.study import load_study

    with pytest.raises(ConfigError) as err:
        load_study({**_dirac(["C4z", "C2x'"]), **change})
    assert err.value.key == key and fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_crystal_on_a_kp_model_points_to_generators():
    from qgtflow.study import load_study

    with pytest.raises(QgtflowError, match="symmetry.generators"):
        load_study({**_dirac(["C4z"]), "symmetry": {"atoms": [["X", 0, 0, 0]]}})


def test_a_periodic_model_refuses_operations_its_lattice_lacks():
    pytest.importorskip("spglib")
    from qgtflow.study import load_study
    from tests.test_symmetry_spin2d import RESPONSES, _study

    with pytest.raises(ConfigError) as err:
        load_study({**_study(RESPONSES), "symmetry": {"generators": ["C3z"]}})
    assert err.value.key == "symmetry.generators" and "C3 does not map it onto itself" in str(err.value)


def test_a_3d_kp_model_without_a_spin_operator_is_checked_on_its_orbitals():
    """ndd_two_valley (002, 3D, no spin operator): the declared C4z is checked on the energies and curvature only
    (the spin check needs the operator), and its true group passes; a wrong group is refused before its spin
    response, which the model cannot give (refused naming `responses`)."""
    from qgtflow.study import load_study

    cfg = {**_dirac(["C4z"], ["sigma_drude", "spin_beta_lin_tau1"]), "model": {"name": "ndd_two_valley"},
           "kgrid": {"sizes": [8]}}
    assert load_study({**cfg, "responses": ["sigma_drude"]}).model.dim == 3
    with pytest.raises(ConfigError, match="no spin operator") as err:
        load_study(cfg)
    assert err.value.key == "responses" and err.value.value == ["spin_beta_lin_tau1"]
    with pytest.raises(ConfigError, match="operation m"):
        load_study({**cfg, "symmetry": {"generators": ["My"]}})


def test_converge_excludes_the_declared_zeros_as_residuals(tmp_path):
    """`converge` on the massive Dirac window with 42'2' declared: the group's zeros are the excluded components of
    convergence.csv (symmetry zeros, residuals at rounding), the other components are judged."""
    from qgtflow.driver import converge

    names = ["sigma_ahe", "spin_beta_lin_tau1"]
    cfg = {**_dirac(["C4z", "C2x'"], names), "mu": [0.2], "kgrid": {"sizes": [8, 12, 16], "chunk_size": 256}}
    _, zeros = _zeros(cfg)
    r = converge(cfg, n_workers=0, workdir=str(tmp_path / "w"), out_dir=str(tmp_path / "o"), max_rounds=3,
                 plots=False)
    table = r.table
    excluded = table[table["verdict"] == "symmetry zero (excluded)"]
    for name in names:
        assert set(excluded[excluded["response"] == name]["component"]) == set(zeros[name]), name
        judged = table[(table["response"] == name) & (table["verdict"] != "symmetry zero (excluded)")]
        assert len(judged) and not set(judged["component"]) & set(zeros[name]), name
    assert table["symmetry_residual"].max() < 1e-12


def test_a_declared_group_is_a_convergence_input_only():
    """The plan derives the declared group's zeros (and its generators, for reruns) for the convergence contract;
    kgrid, geometry and reduce see nothing of it (a k·p model has no wedge)."""
    from qgtflow import plan
    from qgtflow.study import load_study

    cfg = _dirac(["C4z", "C2x'"], ["sigma_drude", "sigma_ahe"])
    sym, plain = load_study(cfg), load_study({k: v for k, v in cfg.items() if k != "symmetry"})
    inputs = plan.stage_inputs("convergence", sym)
    assert inputs["symmetry_zeros"] == {"sigma_drude": ["xy", "yx"], "sigma_ahe": ["xx", "yy"]}
    assert inputs["crystal"] == {"generators": ["C4z", "C2x'"]}
    for stage in ("kgrid", "geometry", "reduce"):
        assert plan.stage_inputs(stage, plain) == plan.stage_inputs(stage, sym)


def test_a_periodic_wedge_from_declared_generators_equals_the_full_grid(tmp_path):
    """The periodic Rashba square layer declaring [C4z, Mx, T]: the wedge of the 16² grid stores the 16 declared
    lifts and its symmetrised Edelstein, spin-Hall and Drude tensors equal the full grid's to 1e-10."""
    pytest.importorskip("spglib")
    from qgtflow.api import evaluate
    from qgtflow.wedge import stored_operations
    from tests.test_symmetry_spin2d import RESPONSES, _study

    names = RESPONSES + ["sigma_drude"]
    cfg = {**_study(names), "symmetry": {"generators": ["C4z", "Mx", "T"]}}
    full = evaluate(cfg, n_workers=0, workdir=tmp_path / "full")
    wedge = evaluate({**cfg, "kgrid": {**cfg["kgrid"], "symmetry_reduce": True}}, n_workers=0,
                     workdir=tmp_path / "wedge")
    ops = stored_operations(wedge.attrs)
    assert len(ops) == 16 and all(np.shape(R) == (3, 3) for R, _ in ops)
    for name in names:
        f, w = full[name].values, wedge[name].values
        assert np.abs(f).max() > 1e-6 and np.abs(w - f).max() <= 1e-10 * np.abs(f).max(), name


def test_an_anisotropic_window_warns_for_the_axes_it_does_not_map(caplog):
    """kgrid.kmax [1.0, 0.5]: C4z does not map the box onto itself (a warning names it; C2z and the C2 axes do),
    and the check's test points and their images stay inside the narrower half-width."""
    import logging

    from qgtflow.geometry.covariance import images, test_points
    from qgtflow.models.symmetry import closed_group
    from qgtflow.study import load_study

    cfg = _dirac(["C4z", "C2x'"])
    cfg["kgrid"] = {**cfg["kgrid"], "kmax": [1.0, 0.5]}
    with caplog.at_level(logging.WARNING, logger="qgtflow.study"):
        st = load_study(cfg)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "'C4'" in warning[0] and "'C2'" not in warning[0], warning
    moved = images(test_points(st.model, [1.0, 0.5]), closed_group(["C4z", "C2x'"]))
    assert np.abs(moved).max(axis=(0, 1)).max() < 0.5


def test_snte_surface_valleys_declare_my_prime(tmp_path):
    """003's SnTe-surface model (two valley sectors, σ the spin; tilt s α ky and Zeeman β σz): T·My is its
    symmetry, My alone is refused (β σz is T-odd), and the zeros T·My claims vanish on the grid (≤ 1e-12 of the
    largest entry; the model has more zeros than the group, e.g. its valley sum cancels σ_AHE, so nothing is said
    about the other components beyond σ_Drude and the dipole's D_yz, which it keeps)."""
    from qgtflow.api import evaluate
    from qgtflow.study import load_study

    names = ["sigma_drude", "berry_curvature_dipole", "spin_beta_lin_tau1", "spin_sigma_lin_tau0",
             "spin_beta_lin_tau0"]
    cfg = {"model": {"name": "snte_surface_dirac"}, "symmetry": {"generators": ["My'"]},
           "kgrid": {"sizes": [16], "chunk_size": 256}, "mu": [-0.03, 0.02, 0.05], "temperature": [30.0],
           "responses": names}
    with pytest.raises(ConfigError, match="operation m\\[0, 1, 0\\]:"):
        load_study({**cfg, "symmetry": {"generators": ["My"]}})
    _, zeros = _zeros(cfg)
    assert set(zeros) == set(names) and zeros["sigma_drude"] == ["xy", "yx"], zeros
    ds = evaluate(cfg, n_workers=0, workdir=tmp_path)
    for name in names:
        labels, values = _components(ds[name])
        zero = np.isin(labels, zeros[name])
        assert values.max() > 0 and values[:, zero].max() <= 1e-12 * values.max(), name
    for name, kept in (("sigma_drude", ["xx", "yy"]), ("berry_curvature_dipole", ["yz"])):
        labels, values = _components(ds[name])
        assert (values[:, np.isin(labels, kept)].max(axis=0) >= 0.5 * values.max()).all(), name
