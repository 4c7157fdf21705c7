"""Hardening (issue 14), by category: what qgtflow may write, bounded and finite inputs, kernels that
cannot corrupt memory, one writer per results directory.

Every refusal goes through the command line in this process (``qgtflow.cli.main``): exit status 2,
one ``qgtflow: error:`` line, no traceback, nothing outside the output location touched, and — for
the input categories — no compute stage reached (the ``no_compute`` stubs of test_bad_inputs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from qgtflow import io, safety
from qgtflow.cli import main
from qgtflow.errors import ModelError, StoreError
from tests.test_bad_inputs import GOOD, no_compute, refusal, study, symbolic, write_study  # noqa: F401

# ---------------------------------------------------------------- outputs that are not ours


def _listing(folder: Path) -> dict:
    return {p.name: stat.S_IFMT(os.lstat(p).st_mode) for p in folder.iterdir()}


def _fifo(p: Path):
    os.mkfifo(p)


def _socket(p: Path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    _socket.keep.append(s)


_socket.keep = []


def _char_device(p: Path):
    try:
        os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # the null device's numbers, in a tmpdir
    except PermissionError:
        pytest.skip("mknod not permitted here")


def _symlink_to_dev_null(p: Path):
    p.symlink_to("/dev/null")


def _symlink_to_fifo(p: Path):
    os.mkfifo(p.with_name("fifo"))
    p.symlink_to(p.with_name("fifo"))


def _dangling_symlink(p: Path):
    p.symlink_to(p.with_name("nowhere"))


def _foreign_zarr(p: Path):
    p.mkdir()
    (p / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"owner": "x"}}))
    (p / "data").write_text("someone else's array\n")


OUTPUTS = {
    "fifo": (_fifo, "is a FIFO"),
    "socket": (_socket, "is a socket"),
    "char_device": (_char_device, "is a character device"),
    "symlink_to_dev_null": (_symlink_to_dev_null, "a symlink to /dev/null) is a character device"),
    "symlink_to_fifo": (_symlink_to_fifo, "is a FIFO"),
    "dangling_symlink": (_dangling_symlink, "does not exist; not writing through it"),
    "foreign_zarr_store": (_foreign_zarr, "zarr store not written by qgtflow"),
}


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_output_that_is_not_ours_is_refused_and_left_alone(kind, tmp_path, no_compute, capsys):
    make, fragment = OUTPUTS[kind]
    good = write_study(tmp_path / "good.yaml", GOOD)
    out = tmp_path / "out.zarr"
    make(out)
    before = _listing(tmp_path)
    line = refusal(["evaluate", str(good), "--out", str(out), "--workers", "0"], capsys)
    assert str(out) in line and fragment in line, line
    assert _listing(tmp_path) == before  # nothing renamed, replaced or added (no .old, no .lock)
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("kind", ["fifo", "socket", "symlink_to_dev_null", "foreign_zarr_store"])
def test_stage_writers_refuse_what_is_not_ours(kind, tmp_path):
    """write_dataset / write_template (every stage's output) refuse the same targets, and their
    leftovers (.partial / .old) are removed only when they are ours."""
    import xarray as xr

    make, fragment = OUTPUTS[kind]
    out = tmp_path / "s.zarr"
    make(out)
    ds = xr.Dataset({"x": ("a", np.arange(3.0), {"units": "1", "long_name": "x", "formula": "x"})})
    with pytest.raises(StoreError, match=fragment.split(")")[-1].strip()):
        io.write_dataset(ds, out)
    with pytest.raises(StoreError, match=fragment.split(")")[-1].strip()):
        io.write_template(ds, out, 1, 1)
    good = tmp_path / "good.zarr"
    _fifo(tmp_path / "good.zarr.partial")
    with pytest.raises(StoreError, match="good.zarr.partial is a FIFO; not removing it"):
        io.write_dataset(ds, good)
    os.unlink(tmp_path / "good.zarr.partial")
    io.write_dataset(ds, good)
    io.write_dataset(ds, good)  # our own store: replaced
    assert io.open_store(good)["x"].values.tolist() == [0.0, 1.0, 2.0]


def test_symlink_alias_shares_the_lock_of_its_target(tmp_path):
    real = tmp_path / "real.zarr"
    alias = tmp_path / "alias.zarr"
    real.mkdir()
    alias.symlink_to(real)
    with io.output_lock(alias) as resolved:
        assert resolved == real.resolve()
        with pytest.raises(StoreError, match="being written by another qgtflow run"):
            with io.output_lock(real):
                pass


def test_a_study_or_config_file_that_is_a_fifo_or_device_is_named_as_such(tmp_path, no_compute, capsys):
    """Not 'does not exist': what the path is, one line, before anything reads it (a FIFO would block the read)."""
    os.mkfifo(tmp_path / "study.yaml")
    line = refusal(["evaluate", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "o.zarr")], capsys)
    assert line.endswith("study.yaml is a FIFO; expected a YAML file"), line
    line = refusal(["run", "--configfile", "/dev/null", "-n"], capsys)
    assert line.endswith("config file /dev/null is a character device; expected a YAML file"), line


# ---------------------------------------------------------------- names that become paths


@pytest.mark.parametrize("name", ["..", ".", "-rf"])
def test_study_name_cannot_be_a_path_component(name, tmp_path, no_compute, capsys):
    path = write_study(tmp_path / "s.yaml", {**GOOD, "name": name})
    line = refusal(["evaluate", str(path), "--out", str(tmp_path / "o.zarr"), "--workers", "0"], capsys)
    assert "'name'" in line and repr(name) in line and "file name" in line, line


def test_workflow_study_named_dotdot_is_refused():
    from qgtflow.study import load_study

    with pytest.raises(Exception, match=r"studies.*'\.\.'.*file name"):
        load_study(GOOD, name="..")


# ---------------------------------------------------------------- numbers: finite, integers, bounded

TB = "model: {name: tb, tight_binding: {lattice: [[1.0, 0.0], [0.0, 1.0]], hoppings: [%s]}}"
SYMBOLIC_TERM = ("model: {name: mine, params: {m: 0.1}, hamiltonian: {terms: [[m, sigma_z], [%s, sigma_x], "
                 "[kx, sigma_y]]}}")
NUMERIC = {
    # YAML text of one key (merged into the good study), fragments of the error line
    "tau_nan": ("tau: .nan", ["'tau'", "nan", "finite"]),
    "tau_inf": ("tau: .inf", ["'tau'", "inf", "finite"]),
    "broadening_nan": ("broadening: .nan", ["'broadening'", "finite"]),
    "degeneracy_threshold_inf": ("degeneracy_threshold: .inf", ["'degeneracy_threshold'", "finite"]),
    "energy_bins_per_kT_nan": ("energy_bins_per_kT: .nan", ["'energy_bins_per_kT'", "finite"]),
    "convergence_rtol_nan": ("convergence: {rtol: .nan}", ["'convergence.rtol'", "finite"]),
    "convergence_atol_inf": ("convergence: {atol: .inf}", ["'convergence.atol'", "finite"]),
    "impurity_density_nan": ("impurities: {density: .nan, potential: 1.0}", ["'impurities.density'", "finite"]),
    "kmax_inf": ("kgrid: {sizes: [8], kmax: .inf}", ["'kgrid.kmax'", "finite"]),
    "shift_nan": ("kgrid: {sizes: [8], shift: .nan}", ["'kgrid.shift'", "finite"]),
    "temperature_minus_inf": ("temperature: [-.inf]", ["'temperature[0]'", "finite"]),
    "mu_start_nan": ("mu: {start: .nan, stop: 1.0, num: 3}", ["'mu.start'", "finite"]),
    "parameter_huge": ("model: {name: massive_dirac, params: {v: 1.0e+308}}", ["'model.params.v'", "<= 1e+100"]),
    # integers beyond float64 (float() overflows) and beyond int64 (np.isfinite refuses the type): one line too
    "tau_integer_beyond_float64": ("tau: 1" + "0" * 400, ["'tau'", "finite number of magnitude <= 1e+100"]),
    "mu_integer_beyond_float64": ("mu: [-1" + "0" * 400 + "]", ["'mu[0]'", "finite number of magnitude"]),
    "chunk_size_integer_beyond_float64": ("kgrid: {sizes: [8], chunk_size: 1" + "0" * 400 + "}",
                                          ["'kgrid.chunk_size'", "finite number of magnitude <= 1e+100"]),
    "tau_integer_too_long_to_read": ("tau: 1" + "0" * 5000, ["valid YAML", "line", "5001 digits", "float64"]),
    "term_integer_beyond_float64": (SYMBOLIC_TERM % ("1" + "0" * 400), ["'model.hamiltonian.terms[1][0]'",
                                                                        "finite number of magnitude"]),
    # integers
    "hopping_R_fractional": (TB % "[[1.5, 0], 0, 0, 1.0]", ["hoppings[0][0][0]", "1.5", "integer"]),
    "hopping_R_boolean": (TB % "[[true, 0], 0, 0, 1.0]", ["hoppings[0][0][0]", "True", "integer"]),
    "orbital_index_fractional": (TB % "[[1, 0], 0.5, 0, 1.0]", ["hoppings[0][1]", "0.5", "integer"]),
    "orbital_index_boolean": (TB % "[[1, 0], 0, false, 1.0]", ["hoppings[0][2]", "False", "integer"]),
    "chunk_size_boolean": ("kgrid: {sizes: [8], chunk_size: true}", ["'kgrid.chunk_size'", "True", "integer"]),
    "grid_size_boolean": ("kgrid: {sizes: [true]}", ["'kgrid.sizes[0]'", "True", "integer"]),
    # bounds
    "mu_num_huge": ("mu: {start: 0.0, stop: 1.0, num: 1000000000}", ["'mu.num'", "1000000000", "<= 10000"]),
    "refine_factor_huge": ("kgrid: {sizes: [8], refine: {factor: 1000}}", ["'kgrid.refine.factor'", "<= 16"]),
    "shift_huge": ("kgrid: {sizes: [8], shift: 1.0e12}", ["'kgrid.shift'", "<= 1"]),
    # duplicate keys
    "duplicate_top_level_key": ("tau: 1.0e-12\ntau: 1.0e-15", ["duplicate key 'tau'", "first at line"]),
    "duplicate_nested_key": ("kgrid: {sizes: [8], sizes: [16]}", ["duplicate key 'sizes'", "line"]),
}


def test_integer_term_beyond_int64_is_a_number(tmp_path):
    """A term coefficient 10^30 (an int beyond int64, within the schema's magnitude) builds the model: it once
    raised a TypeError traceback from np.isfinite; 10^400 given to the model directly is refused in one line."""
    from qgtflow.models.symbolic import parse_expression
    from qgtflow.study import load_study

    cfg = yaml.safe_load(SYMBOLIC_TERM % ("1" + "0" * 30))
    assert load_study({**GOOD, **cfg}).model.nbands == 2
    with pytest.raises(ModelError, match=r"here: 1000+ is not a finite number"):
        parse_expression(10**400, {}, "here")


def _study_text(extra: str) -> str:
    base = {k: v for k, v in GOOD.items()}
    keys = {line.split(":", 1)[0] for line in extra.splitlines()}
    text = yaml.safe_dump({k: v for k, v in base.items() if k not in keys})
    return text + extra + "\n"


@pytest.mark.parametrize("kind", list(NUMERIC))
def test_bad_number_is_refused(kind, tmp_path, no_compute, capsys):
    extra, fragments = NUMERIC[kind]
    path = write_study(tmp_path / "study.yaml", _study_text(extra))
    out = tmp_path / "out.zarr"
    line = refusal(["evaluate", str(path), "--out", str(out), "--workers", "0"], capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_duplicate_key_in_workflow_config_is_refused_before_snakemake(tmp_path, capsys, monkeypatch):
    from tests.test_bad_inputs import workflow_copy

    root = workflow_copy(tmp_path)
    monkeypatch.setenv("QGTFLOW_WORKFLOW_DIR", str(root))
    monkeypatch.chdir(root)  # run from there: .snakemake/ and relative results land in the current directory
    path = tmp_path / "config.yaml"
    path.write_text("results_dir: r1\nstudies: {A: {model: {name: haldane}, mu: [0.1], temperature: [10.0], "
                    "responses: [sigma_ahe]}}\nresults_dir: r2\n")
    line = refusal(["run", "--configfile", str(path), "-n"], capsys)
    assert "config.yaml" in line and "duplicate key 'results_dir'" in line and "line 3" in line, line
    assert not (root / ".snakemake").exists()


def test_chunk_size_is_clamped_to_the_grid():
    from qgtflow.study import load_study

    st = load_study({**GOOD, "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 10_000_000}})
    grid = st.make_grid(8)
    assert grid.chunk_size == 64 and grid.n_chunks == 1


# ---------------------------------------------------------------- expressions

BOMBS = {
    "power_tower": ("9**9**9", "power of a power"),
    "power_tower_10": ("10**10**10", "power of a power"),
    "power_of_a_group_power": ("(9**9)**9", "power of a power"),
    "huge_exponent": ("(kx+ky+m)**400", "expected |exponent| <= 16"),
    "huge_literal": ("1e999999999", "expected a finite number"),
    "symbolic_exponent": ("2**m", "expected a number (use exp(...)"),
    "long_expression": ("+".join(["kx"] * 1500), "expected at most 2000"),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_expression_bomb_is_refused_quickly(kind, tmp_path, no_compute, capsys):
    text, fragment = BOMBS[kind]
    path = write_study(tmp_path / "study.yaml", symbolic({"matrix": [[text, "v*ky"], ["v*ky", "-m"]]}))
    t0 = time.perf_counter()
    line = refusal(["evaluate", str(path), "--out", str(tmp_path / "o.zarr"), "--workers", "0"], capsys)
    assert time.perf_counter() - t0 < 10
    assert "matrix[0][0]" in line and fragment in line, line


def test_slow_symbolic_model_hits_the_time_limit(monkeypatch):
    from qgtflow.models import symbolic as sym

    monkeypatch.setattr(sym, "PARSE_SECONDS", 0.3)
    big = "*".join(f"(kx+ky+{i})**16" for i in range(1, 9))
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="took longer than 0.3 s"):
        sym.SymbolicModel("slow", {"matrix": [[big, "ky"], ["ky", "-kx"]]}, {})
    assert time.perf_counter() - t0 < 5


def _busy_swallowing(seconds, swallow):
    """Work for ``seconds`` the way sympy and finalisers do: each step inside a handler that may eat what it catches."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            sum(range(2000))
        except BaseException as exc:
            if not swallow(exc):
                raise


def test_time_limit_is_not_swallowed_by_except_exception():
    # a ModelError raised by the alarm was an Exception: any `except Exception` on the way up ate it and the
    # one-shot timer never fired again (CI ran a 0.3 s limit for 70 minutes)
    from qgtflow.models import symbolic as sym

    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="too slow"):
        with sym._time_limit(0.2, "too slow"):
            _busy_swallowing(10, lambda exc: isinstance(exc, Exception))
    assert time.perf_counter() - t0 < 3


def test_time_limit_alarm_lost_once_fires_again():
    # an alarm landing in a finaliser (__del__, a weakref callback) is printed as "ignored" and lost
    from qgtflow.models import symbolic as sym

    lost = []

    def lose_the_first(exc) -> bool:
        if lost:
            return False
        lost.append(exc)
        return True

    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="too slow"):
        with sym._time_limit(0.2, "too slow"):
            _busy_swallowing(10, lose_the_first)
    assert len(lost) == 1 and time.perf_counter() - t0 < 3
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_leaves_no_alarm_behind():
    from qgtflow.models import symbolic as sym

    before = signal.getsignal(signal.SIGALRM)
    with sym._time_limit(0.05, "too slow"):
        pass
    time.sleep(0.7)  # beyond the limit and a retry: nothing fires
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) == before


def test_abs_is_differentiated_off_the_kink():
    from qgtflow.models.symbolic import SymbolicModel

    m = SymbolicModel("a", {"matrix": [["v*Abs(kx)", "ky"], ["ky", "-v*Abs(kx)"]]}, {"v": 2.0})
    k = np.array([[0.3, 0.2], [-0.2, 0.1]])
    d = m.derivatives(k, order=2)
    np.testing.assert_allclose(d[0][:, 0, 0].real, 2.0 * np.abs(k[:, 0]))
    np.testing.assert_allclose(d[1][:, 0, 0, 0].real, 2.0 * np.sign(k[:, 0]))  # d/dkx
    np.testing.assert_allclose(d[2][:, 0, 0, 0, 0].real, 0.0)  # d2/dkx2 off kx = 0
    h = 1e-6  # finite difference of the generated kernel
    fd = (m.derivatives(k + [h, 0], 0)[0] - m.derivatives(k - [h, 0], 0)[0]) / (2 * h)
    np.testing.assert_allclose(d[1][:, 0], fd, atol=1e-8)


# ---------------------------------------------------------------- kernels: NaN raises, never corrupts


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_histogram_kernel_raises_on_non_finite_energy(bad):
    from qgtflow.reduce.spectral import accumulate

    energy = np.array([[bad, 0.1], [0.0, 0.2]])
    moments, underflow = np.zeros((10, 5, 1)), np.zeros(1)
    with pytest.raises(ValueError, match="non-finite band energy"):
        accumulate(energy, np.ones(2), np.ones((2, 2, 1)), -1.0, 0.2, moments, underflow)
    with pytest.raises(ValueError, match="non-finite k-point weight"):
        accumulate(np.zeros((2, 2)), np.array([1.0, bad]), np.ones((2, 2, 1)), -1.0, 0.2, moments, underflow)
    # a finite energy far outside the histogram (int overflow of its bin index) is dropped, not written
    accumulate(np.array([[1e300, 0.1]]), np.ones(1), np.ones((1, 2, 1)), -1.0, 1e-300, moments, underflow)


def test_tetrahedron_kernel_raises_on_non_finite_energy():
    from qgtflow.kgrid import make_grid
    from qgtflow.models import build_model
    from qgtflow.reduce.simplex_moments import accumulate_simplex_moments, chunk_vertices

    grid = make_grid(build_model("haldane"), 4, chunk_size=16)
    idx = chunk_vertices(grid, 0, grid.n_points)
    energy = np.zeros((idx.size, 1))
    energy[3, 0] = np.nan
    moments, underflow = np.zeros((8, 5, 1)), np.zeros(1)
    with pytest.raises(ValueError, match="non-finite band energy|NaN or inf"):
        accumulate_simplex_moments(grid, 0, grid.n_points, idx, energy, np.ones((idx.size, 1, 1)), -1.0, 0.25,
                                   moments, underflow)
    assert not moments.any() and not underflow.any()


def test_pole_on_a_grid_point_is_refused_naming_the_k_point(tmp_path, capsys):
    """H = m/kx on an odd window grid: kx = 0 is a grid point (the random validation points miss it)."""
    path = write_study(tmp_path / "study.yaml", {
        **symbolic({"matrix": [["m/kx", "v*ky"], ["v*ky", "-m/kx"]]}), "kgrid": {"sizes": [9], "kmax": 1.0}})
    out = tmp_path / "out.zarr"
    line = refusal(["evaluate", str(path), "--out", str(out), "--workers", "0"], capsys)
    assert "not finite at k = (0, -0.888889)" in line and "k-point 36 of the grid" in line, line
    assert not out.exists()  # nothing flagged complete


def test_reduce_refuses_a_non_finite_geometry_value(tmp_path):
    """A NaN in a stored field (a damaged or never-written chunk) is refused by the reduce stage
    before its kernels see it, naming store, variable and k-point."""
    import zarr

    from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
    from qgtflow.study import load_study

    st = load_study({**GOOD, "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 16}})
    kgrid_stage.run(st, 8, tmp_path / "k.zarr")
    geometry_stage.run(st, tmp_path / "k.zarr", tmp_path / "g.zarr", n_workers=0)
    zarr.open_group(str(tmp_path / "g.zarr"), mode="r+")["energy"][21, 1] = np.nan
    with pytest.raises(StoreError, match=r"g.zarr.*'energy' is nan at k-point 21"):
        reduce_stage.run(st, tmp_path / "g.zarr", tmp_path / "r.zarr", n_workers=0)
    assert not (tmp_path / "r.zarr").exists()


# ---------------------------------------------------------------- one writer per results directory


def test_second_run_on_a_locked_results_directory_is_refused(tmp_path, capsys, monkeypatch):
    """Another checkout (or host) holds the results directory: `qgtflow run` is refused before Snakemake
    starts; `qgtflow evaluate` into it too."""
    from tests.test_bad_inputs import workflow_copy

    (tmp_path / "checkout2").mkdir()
    root = workflow_copy(tmp_path / "checkout2")
    monkeypatch.setenv("QGTFLOW_WORKFLOW_DIR", str(root))
    monkeypatch.chdir(root)  # run from there: .snakemake/ and relative results land in the current directory
    results = tmp_path / "shared-results"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"results_dir": str(results), "studies": {"A": GOOD}}))
    with safety.ResultsLock(results, "qgtflow run (checkout1)"):
        line = refusal(["run", "--configfile", str(config)], capsys)
        assert str(results) in line and "another qgtflow run" in line and "checkout1" in line, line
        assert f"pid {os.getpid()}" in line, line
        good = write_study(tmp_path / "good.yaml", GOOD)
        line = refusal(["evaluate", str(good), "--out", str(results / "x.zarr"), "--workers", "0"], capsys)
        assert "another qgtflow run is writing" in line, line
    assert not (root / ".snakemake").exists() and not (results / safety.LOCK_NAME).exists()


def test_stale_results_lock_is_taken_over(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    lock = results / safety.LOCK_NAME
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead, "started": 0}))  # its process is gone
    with safety.ResultsLock(results):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0}))  # another host, fresh heartbeat
    with pytest.raises(StoreError, match="pid 1 on elsewhere"):
        safety.ResultsLock(results).acquire()
    old = time.time() - safety.STALE_S - 10
    os.utime(lock, (old, old))  # ... whose heartbeat stopped
    with safety.ResultsLock(results):
        pass


# ---------------------------------------------------------------- verified stores


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """kgrid, geometry and responses stores of a tiny study (built once; tests damage copies)."""
    from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage
    from qgtflow.study import load_study

    d = tmp_path_factory.mktemp("stores")
    st = load_study({**GOOD, "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 16}})
    kgrid_stage.run(st, 8, d / "kgrid.zarr")
    geometry_stage.run(st, d / "kgrid.zarr", d / "geometry.zarr", n_workers=0)
    reduce_stage.run(st, d / "geometry.zarr", d / "responses.zarr", n_workers=0)
    (d / "geometry.done.json").write_text("{}")
    return st, d


def _copy(stores, tmp_path) -> Path:
    import shutil

    shutil.copytree(stores[1], tmp_path / "results")
    return tmp_path / "results"


def _scribble(path: Path):
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    data[: len(data) - 4] = rng.integers(0, 256, len(data) - 4, dtype=np.uint8).tobytes()  # keep the length
    path.write_bytes(bytes(data))


def _edit_attr(store: Path, key: str, value):
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"][key] = value
    (store / "zarr.json").write_text(json.dumps(meta))


DAMAGE = {
    "random_bytes_in_a_chunk": (lambda r: _scribble(r / "geometry.zarr" / "energy" / "c" / "2" / "0"),
                                ["geometry.zarr", "'energy'", "chunk (2, 0)", "checksum"]),
    "deleted_chunk": (lambda r: os.unlink(r / "geometry.zarr" / "velocity" / "c/1/0/0"),
                      ["geometry.zarr", "'velocity'", "chunk (1, 0, 0)", "missing"]),
    "edited_grid_spacing": (lambda r: _edit_attr(r / "responses.zarr", "grid_spacing", 0.5),
                            ["responses.zarr", "attributes were changed"]),
    "damaged_weight": (lambda r: _scribble(r / "kgrid.zarr" / "weight" / "c" / "3"),
                       ["kgrid.zarr", "'weight'", "chunk 3", "checksum"]),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_store_is_refused_by_verify(kind, stores, tmp_path, capsys):
    results = _copy(stores, tmp_path)
    assert main(["verify", str(results)]) == 0
    assert capsys.readouterr().out.count("ok ") == 3
    damage, fragments = DAMAGE[kind]
    damage(results)
    line = refusal(["verify", str(results)], capsys)
    for fragment in fragments:
        assert fragment in line, line


def test_reduce_refuses_a_damaged_geometry_chunk(stores, tmp_path):
    from qgtflow.stages import reduce_stage

    results = _copy(stores, tmp_path)
    _scribble(results / "geometry.zarr" / "energy" / "c" / "2" / "0")
    with pytest.raises(StoreError, match=r"geometry.zarr: variable 'energy' chunk 2 fails its crc32c checksum"):
        reduce_stage.run(stores[0], results / "geometry.zarr", tmp_path / "r.zarr", n_workers=0)
    assert not (tmp_path / "r.zarr").exists()


def test_edited_attrs_are_refused_on_open(stores, tmp_path):
    results = _copy(stores, tmp_path)
    _edit_attr(results / "geometry.zarr", "grid_spacing", 1.0)
    with pytest.raises(StoreError, match="attributes were changed"):
        io.open_store(results / "geometry.zarr")


def test_run_removes_damaged_stores_of_ours_so_they_are_recomputed(stores, tmp_path):
    from qgtflow.cli import verify_results

    results = _copy(stores, tmp_path)
    (results / "notes").mkdir()
    (results / "notes" / "zarr.json").write_text("{}")  # not ours: never touched
    _scribble(results / "geometry.zarr" / "energy" / "c" / "2" / "0")
    removed = verify_results(results)
    assert removed == [results / "geometry.zarr"]
    assert not (results / "geometry.zarr").exists() and not (results / "geometry.done.json").exists()
    assert (results / "kgrid.zarr").exists() and (results / "responses.zarr").exists()
    assert (results / "notes" / "zarr.json").read_text() == "{}"
    assert verify_results(results) == []


# ---------------------------------------------------------------- preflight: sizes the machine cannot hold

PREFLIGHT = {
    "size_option_huge": ({}, ["--size", "100000"], ["1e+10 k-points", "limits.max_kpoints = 1000000000"]),
    "grid_huge": ({"kgrid": {"sizes": [200000], "kmax": 1.0}}, [], ["4e+10 k-points", "max_kpoints"]),
    "own_kpoint_ceiling": ({"limits": {"max_kpoints": 50}}, [], ["64 k-points", "limits.max_kpoints = 50"]),
    "memory": ({"limits": {"memory_fraction": 1e-9}}, [], ["GiB memory", "limits.memory_fraction"]),
    "disk": ({"kgrid": {"sizes": [20000], "kmax": 1.0}, "limits": {"max_kpoints": 10**12}}, [],
             ["GB of stores", "GB are free", "limits.disk_fraction"]),
}


@pytest.mark.parametrize("kind", list(PREFLIGHT))
def test_preflight_refuses_what_cannot_fit(kind, tmp_path, no_compute, capsys):
    changes, options, fragments = PREFLIGHT[kind]
    path = write_study(tmp_path / "study.yaml", {**GOOD, **changes})
    out = tmp_path / "out.zarr"
    t0 = time.perf_counter()
    line = refusal(["evaluate", str(path), "--out", str(out), "--workers", "1", *options], capsys)
    assert time.perf_counter() - t0 < 20
    assert "evaluate:" in line and "study 'study'" in line, line
    for fragment in fragments:
        assert fragment in line, line
    assert not out.exists()


def test_workflow_preflight_refuses_before_snakemake(tmp_path, capsys, monkeypatch):
    from tests.test_bad_inputs import workflow_copy

    root = workflow_copy(tmp_path)
    monkeypatch.setenv("QGTFLOW_WORKFLOW_DIR", str(root))
    monkeypatch.chdir(root)  # run from there: .snakemake/ and relative results land in the current directory
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "results"),
                                      "studies": {"A": {**GOOD, "kgrid": {"sizes": [8, 100000], "kmax": 1.0}}}}))
    line = refusal(["run", "--configfile", str(config)], capsys)
    assert "run: study 'A' at 100000 points per axis" in line and "studies.A.limits.max_kpoints" in line, line
    assert not (root / ".snakemake").exists()
    assert not (tmp_path / "results" / safety.LOCK_NAME).exists()


def test_converge_densities_are_capped_at_what_fits(tmp_path, monkeypatch):
    """The driver gets max_points = the last density under the study's k-point ceiling."""
    import argparse

    from qgtflow.cli import _converge_preflight
    from qgtflow.study import load_study

    st = load_study({**GOOD, "kgrid": {"sizes": [8], "kmax": 1.0}, "limits": {"max_kpoints": 1000}})
    args = argparse.Namespace(workers=1, start=None, growth=1.5, max_rounds=8, max_points=None)
    cap = _converge_preflight(st, args, str(tmp_path))
    assert cap == 42**2 - 1  # densities 8, 12, 18, 28, 42: the driver stops before 42^2 = 1764 > 1000 k-points


def test_point_sampling_below_the_energy_step_is_flagged(tmp_path):
    """massive Dirac (v = 1) on a coarse window grid at k_BT << |v| h: warned, and the warning is kept in
    the responses store; a temperature above the step is not flagged."""
    from qgtflow.api import evaluate

    cold = evaluate({**GOOD, "temperature": [1.0]}, n_workers=0, out=str(tmp_path / "cold.zarr"),
                    workdir=str(tmp_path / "w1"))
    assert "below the grid's energy step" in cold.attrs["sampling_warning"]
    assert "tetrahedron" in cold.attrs["sampling_warning"] and "kgrid.refine" in cold.attrs["sampling_warning"]
    assert "sampling_warning" in io.open_store(tmp_path / "cold.zarr").attrs
    warm = evaluate({**GOOD, "units": "natural", "tau": 1.0, "temperature": [1.0]}, n_workers=0,
                    workdir=str(tmp_path / "w2"))
    assert "sampling_warning" not in warm.attrs


# ---------------------------------------------------------------- signals and clean shutdown


def _wait_for(predicate, proc, timeout=120.0):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _evaluate_proc(tmp_path, scratch_root):
    import subprocess
    import sys

    # tetrahedron integration: evaluate goes through its scratch stores (a point-sampled plain grid without a
    # workdir is reduced in one pass and writes none, qgtflow.stages.fused)
    path = write_study(tmp_path / "study.yaml", {**GOOD, "kgrid": {"sizes": [256], "kmax": 1.0, "chunk_size": 4096},
                                                 "integration": "tetrahedron"})
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    return subprocess.Popen([sys.executable, "-m", "qgtflow.cli", "evaluate", str(path), "--out",
                             str(tmp_path / "out.zarr"), "--workers", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_terminated_evaluate_removes_its_scratch_and_lock(tmp_path):
    import signal

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    proc = _evaluate_proc(tmp_path, scratch_root)
    _wait_for(lambda: any(scratch_root.glob("qgtflow-scratch-*/*_kgrid.zarr")), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "stopped by signal 15" in err, err[-3000:]
    assert list(scratch_root.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml", "tmp"]  # no out.zarr, no lock


def test_killed_evaluate_scratch_is_swept_by_the_next_one(tmp_path, no_compute, capsys, monkeypatch):
    import signal
    import tempfile

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    proc = _evaluate_proc(tmp_path, scratch_root)
    _wait_for(lambda: any(scratch_root.glob("qgtflow-scratch-*/*_kgrid.zarr")), proc)
    proc.kill()
    proc.communicate(timeout=60)
    (left,) = list(scratch_root.iterdir())
    other = scratch_root / "unrelated"
    other.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    with pytest.raises(AssertionError, match="compute started"):  # the stubbed stages: reached after the sweep
        main(["evaluate", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "o2.zarr"), "--workers", "0"])
    assert not left.exists() and other.exists()


@pytest.mark.slow
def test_terminated_run_stops_snakemake_and_releases_the_lock(tmp_path, snakemake_env):
    """SIGTERM to `qgtflow run` (not to its process group): Snakemake gets it, cancels its job and exits;
    `qgtflow run` waits for that, exits 143 and leaves no process and no lock behind."""
    import signal
    import subprocess
    import sys

    from tests.test_bad_inputs import workflow_copy

    root = workflow_copy(tmp_path)
    config = tmp_path / "config.yaml"
    big = {**GOOD, "kgrid": {"sizes": [512], "kmax": 1.0, "chunk_size": 4096}}
    config.write_text(yaml.safe_dump({"results_dir": "results", "dask": {"n_workers": 1}, "studies": {"A": big}}))
    env = {**snakemake_env, "QGTFLOW_WORKFLOW_DIR": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "qgtflow.cli", "run", "--cores", "1", "--configfile", str(config)],
                            env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = root / "results" / safety.LOCK_NAME
    _wait_for(lambda: lock.is_file() and "child" in lock.read_text() and (root / "results" / "A").is_dir(), proc,
              timeout=300)
    child = json.loads(lock.read_text())["child"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "stopped by SIGTERM" in err, err[-3000:]
    assert not safety._alive(child) or open(f"/proc/{child}/stat").read().split()[2] == "Z"
    assert not lock.exists()


def test_refused_sbatch_stops_dask_on_slurm_at_once(tmp_path, monkeypatch):
    """An sbatch that refuses the worker job (here a stand-in on PATH: no SLURM controller runs in this
    test) stops slurm_cluster at once with sbatch's message, not after worker_start_timeout."""
    from qgtflow.cluster import slurm_cluster
    from qgtflow.preflight import PreflightError

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n")
    (fake / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    with pytest.raises(PreflightError, match="sbatch refuses the Dask worker job: sbatch: error: invalid partition"):
        with slurm_cluster(jobs=1, worker_start_timeout=3600, memory=1000, partition="nope"):
            pass
    assert time.perf_counter() - t0 < 60


# ---------------------------------------------------------------- caches numba loads code from


def test_cache_directories_are_private(tmp_path, monkeypatch):
    fresh = safety.private_dir(tmp_path / "new" / "cache")
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "planted.nbi").write_bytes(b"pickle someone else wrote")
    shared.chmod(0o777)  # group/world-writable: its contents cannot be trusted
    safety.private_dir(shared)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o700 and list(shared.iterdir()) == []
    readable = tmp_path / "readable"
    readable.mkdir(mode=0o755)
    (readable / "mine.nbi").write_bytes(b"x")
    safety.private_dir(readable)  # only readable by others: closed, contents kept
    assert stat.S_IMODE(os.stat(readable).st_mode) == 0o700 and (readable / "mine.nbi").exists()
    link = tmp_path / "link"
    link.symlink_to(readable)
    with pytest.raises(StoreError, match="is a symlink"):
        safety.private_dir(link)
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(StoreError, match="belongs to uid 65534"):
            safety.private_dir(foreign)
        from qgtflow.models.symbolic import SymbolicModel

        (foreign / "models").mkdir()
        os.chown(foreign / "models", 65534, 65534)
        monkeypatch.setenv("QGTFLOW_CACHE_DIR", str(foreign))
        model = SymbolicModel("cached", {"matrix": [["kx", "ky"], ["ky", "-kx"]]}, {})
        with pytest.raises(StoreError, match="model cache .* belongs to uid 65534"):
            model.unique_derivatives(np.zeros((1, 2)))


# ---------------------------------------------------------------- fuzz (a bounded sample; the full run: benchmarks/)


def test_fuzzed_study_files_are_accepted_or_refused_in_one_line():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_inputs", Path(__file__).parents[1] / "benchmarks" /
                                                  "fuzz_inputs.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    # bounded by the number of cases, not by a clock (20 s gave 84 cases on a loaded machine); 600 s is a backstop
    result = fuzz.run(cases=100, seed=11, seconds=600.0, case_seconds=10.0, n_evaluate=0)
    counts = result["validation"]
    assert counts["cases"] == 100 and counts["refused"] > 0 and counts["accepted"] > 0, result
    assert counts["traceback"] == counts["hang"] == counts["crash"] == counts["silently_wrong"] == 0, result


def test_verify_store_accepts_scalar_variables(tmp_path):
    """A 0-d variable (one chunk with an empty index) is verified, not an IndexError (seen on a report store)."""
    import xarray as xr

    from qgtflow import io

    ds = xr.Dataset({"level": ((), 1.5), "curve": (("mu",), np.arange(3.0))}, attrs={"title": "t"})
    path = tmp_path / "scalar.zarr"
    io.write_dataset(ds, path)
    assert io.verify_store(path)["arrays"] >= 2


def test_a_signal_during_a_store_write_lands_after_it():
    """SIGTERM amid a zarr write is held to the write's end (then the usual SystemExit): an interrupted write
    left zarr chunk writes pending on its I/O thread, which recreated a scratch store after its cleanup."""
    import signal

    steps = []
    with pytest.raises(SystemExit) as info, safety.exit_on_signals():
        with safety.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("write finished")
        steps.append("after the write")
    assert steps == ["write finished"] and info.value.code == 128 + signal.SIGTERM


def test_a_library_message_with_line_breaks_is_printed_on_one_line(tmp_path, no_compute, capsys):
    """A user error holding a library's message with line breaks (spglib's "Generic Spglib error:\nmagmoms ...") is
    printed on one line (qgtflow.errors.one_line). Three magnetic moments for the two atoms of the .win, which
    brought spglib's, are now refused by our own check before spglib, naming the key, on one line."""
    from qgtflow.errors import one_line
    from tests.test_wannier_symmetrize import _files, _study

    quoted = "x: Generic Spglib error:\nmagmoms has to ...\r\n  more"
    assert one_line(quoted) == "x: Generic Spglib error: magmoms has to ... more"
    spec = {"magnetic_moments": [[0.0, 0.0, 1.0]] * 3}
    path = write_study(tmp_path / "study.yaml", _study(_files(tmp_path), spec))
    line = refusal(["evaluate", str(path), "--out", str(tmp_path / "out.zarr"), "--workers", "0"], capsys)
    assert "symmetrize.magnetic_moments: shape (3, 3); expected one Cartesian vector per atom (2, 3)" in line, line
