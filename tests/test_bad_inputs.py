"""Bad input catalogue: what a user sees from the command line, end to end.

Every kind of bad input is refused before any compute, with exit status 2, one line
``qgtflow: error: ...`` naming what is wrong (key or file, the value, what was expected) and no
Python traceback. tests/test_study.py and tests/test_models.py check the library's exceptions;
here it is the command line:

- study files, model files and command-line arguments: ``qgtflow evaluate`` run in this process
  (``qgtflow.cli.main``, stderr captured) with every compute stage replaced by a failing stub, so a
  refusal that came only after compute had started would fail the test;
- workflow configs: ``qgtflow run --configfile F -n`` as real subprocesses (Snakemake parses the
  config), started together once per module; config files that are not YAML mappings and results
  directories that cannot be written are refused by the command line before Snakemake starts;
- a few cases again through the installed ``qgtflow`` entry point as real subprocesses.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qgtflow.cli import main
from qgtflow.stages import geometry_stage, kgrid_stage, reduce_stage

ROOT = Path(__file__).resolve().parents[1]
QGTFLOW = Path(sys.executable).with_name("qgtflow")

GOOD = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
        "kgrid": {"sizes": [8], "kmax": 1.0, "chunk_size": 64},
        "mu": [0.1, 0.2], "temperature": [10.0], "responses": ["sigma_drude"]}
LATTICE3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
# a two-orbital _hr.dat with "x" where the real part of a hopping belongs (line 6)
BAD_HR = "written by hand\n2\n1\n1\n0 0 0 1 1 1.0 0.0\n0 0 0 1 2 x 0.0\n0 0 0 2 1 0.5 0.0\n0 0 0 2 2 -1.0 0.0\n"


def study(**changes) -> dict:
    out = copy.deepcopy(GOOD)
    out.update(changes)
    return out


def symbolic(hamiltonian: dict, params=None, **extra) -> dict:
    return study(model={"name": "mine", "params": params if params is not None else {"m": 0.1, "v": 1.0},
                        "hamiltonian": hamiltonian, **extra})


def without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


# id: (study mapping, or raw file content as str/bytes; fragments the error line must contain)
STUDY_CASES = {
    # types, ranges, unknown keys
    "temperature_not_a_number": (study(temperature="hot"), ["'temperature'", "'hot'", "a list of numbers"]),
    "grid_size_below_2": (study(kgrid={"sizes": [1], "kmax": 1.0}), ["'kgrid.sizes[0]'", "got 1", ">= 2"]),
    "grid_size_zero": (study(kgrid={"sizes": [0], "kmax": 1.0}), ["'kgrid.sizes[0]'", "got 0", ">= 2"]),
    "grid_sizes_empty": (study(kgrid={"sizes": [], "kmax": 1.0}), ["'kgrid.sizes'", "got []", "at least 1"]),
    "grid_size_not_integer": (study(kgrid={"sizes": [8.5], "kmax": 1.0}), ["'kgrid.sizes[0]'", "8.5", "integer"]),
    "grid_sizes_not_increasing": (study(kgrid={"sizes": [16, 8], "kmax": 1.0}),
                                  ["'kgrid.sizes'", "[16, 8]", "increasing"]),
    "kmax_negative": (study(kgrid={"sizes": [8], "kmax": -1.0}), ["'kgrid.kmax'", "-1.0", "> 0"]),
    "kmax_wrong_length": (study(kgrid={"sizes": [8], "kmax": [1.0, 1.0, 1.0]}),
                          ["'kgrid.kmax'", "[1.0, 1.0, 1.0]", "2 positive numbers"]),
    "kmax_on_periodic_model": (study(model={"name": "haldane"}, kgrid={"sizes": [8], "kmax": 1.0}),
                               ["kgrid.kmax", "periodic"]),
    "chunk_size_zero": (study(kgrid={"sizes": [8], "kmax": 1.0, "chunk_size": 0}),
                        ["'kgrid.chunk_size'", "got 0", ">= 1"]),
    "chunk_size_not_integer": (study(kgrid={"sizes": [8], "kmax": 1.0, "chunk_size": 1.5}),
                               ["'kgrid.chunk_size'", "1.5", "integer"]),
    "unknown_key": (study(temprature=[10.0]), ["'temprature'", "known keys", "temperature"]),
    "unknown_nested_key": (study(kgrid={"sizes": [8], "points": 3}), ["'kgrid.points'", "known keys", "chunk_size"]),
    "missing_required_key": (without("responses"), ["'responses'", "required"]),
    # arrays of mu and T
    "mu_empty": (study(mu=[]), ["'mu'", "got []", "at least 1"]),
    "mu_unsorted": (study(mu=[0.3, 0.1]), ["'mu'", "[0.3, 0.1]", "strictly increasing"]),
    "mu_duplicate": (study(mu=[0.1, 0.1]), ["'mu'", "[0.1, 0.1]", "without duplicates"]),
    "mu_nan": (study(mu=[0.1, float("nan")]), ["'mu[1]'", "nan", "finite"]),
    "mu_range_without_num": (study(mu={"start": 0.0, "stop": 1.0}), ["'mu.num'", "required"]),
    "temperature_negative": (study(temperature=[-5.0]), ["'temperature'", "-5.0", "> 0"]),
    "temperature_zero": (study(temperature=[0.0]), ["'temperature'", "0.0", "> 0"]),
    # responses, units, relaxation time
    "unknown_response": (study(responses=["sigma_drude", "sigma_nonsense"]),
                         ["'responses'", "'sigma_nonsense'", "sigma_ahe"]),
    "responses_empty": (study(responses=[]), ["'responses'", "at least 1"]),
    "response_twice": (study(responses=["sigma_drude", "sigma_drude"]), ["'responses'", "no duplicate"]),
    "natural_units_without_tau": (study(units="natural"), ["'tau'", "sigma_drude", "natural units"]),
    "tau_negative": (study(tau=-1e-12), ["'tau'", "-1e-12", "> 0"]),
    "unknown_units": (study(units="imperial"), ["'units'", "'imperial'", "physical"]),
    "unknown_energy_unit": (study(units={"energy": "J"}), ["'units.energy'", "'J'", "meV"]),
    "unknown_fermi_form": (study(fermi_form="both"), ["'fermi_form'", "'both'", "surface"]),
    "frequency_response_on_2d_model": (study(responses=["ndd_delta_n"]), ["'responses'", "ndd_delta_n", "3D model"]),
    "frequency_response_without_omega": (study(model={"name": "ndd_two_valley"}, units="natural",
                                               kgrid={"sizes": [4]}, responses=["ndd_delta_n"]),
                                         ["'omega'", "ndd_delta_n"]),
    "omega_without_frequency_response": (study(omega=[0.1]), ["'omega'", "[0.1]", "no omega", "sigma_optical",
                                                              "ife_coefficient"]),
    "omega_zero_for_pair_sums": (study(model={"name": "ndd_two_valley"}, units="natural", kgrid={"sizes": [4]},
                                       responses=["ndd_delta_n"], omega=[0.0, 0.2], broadening=0.1),
                                 ["'omega'", "> 0", "ndd_delta_n"]),
    "omega_negative": (study(responses=["sigma_optical"], omega=[-0.01]), ["'omega'", "-0.01", ">= 0"]),
    # 000 App. B: the IFE's ω form takes ω = 0 (its static value) but no negative photon energy
    "ife_omega_negative": (study(responses=["ife_coefficient"], tau=1e-13, omega=[-0.5, 0.0]),
                           ["'omega'", "-0.5", ">= 0"]),
    "energy_bins_too_coarse": (study(energy_bins_per_kT=1), ["'energy_bins_per_kT'", "got 1", ">= 2"]),
    # built-in models
    "unknown_model": (study(model={"name": "graphene_typo"}), ["unknown model 'graphene_typo'", "haldane"]),
    "unknown_model_parameter": (study(model={"name": "massive_dirac", "params": {"velocity": 1.0}}),
                                ["velocity", "valid parameters", "'v'"]),
    "model_parameter_nan": (study(model={"name": "massive_dirac", "params": {"v": float("nan")}}),
                            ["'model.params.v'", "nan", "finite"]),
    "model_parameter_not_a_number": (study(model={"name": "massive_dirac", "params": {"v": "fast"}}),
                                     ["'model.params.v'", "'fast'", "number"]),
    "builtin_model_with_user_keys": (study(model={"name": "haldane", "lattice": [[1, 0], [0, 1]]}),
                                     ["model", "lattice", "only name and params"]),
    # symbolic Hamiltonians
    "non_hermitian_hamiltonian": (symbolic({"matrix": [["m", "v*kx"], ["0", "-m"]]}), ["model", "not Hermitian"]),
    "unknown_symbol": (symbolic({"matrix": [["m", "q*kx"], ["q*kx", "-m"]]}),
                       ["model.hamiltonian.matrix[0][1]", "unknown symbol 'q'", "model.params"]),
    "code_in_expression": (symbolic({"matrix": [["__import__('os').getcwd()", "kx"], ["kx", "-m"]]}),
                           ["matrix[0][0]", "'__import__'"]),
    "expression_syntax_error": (symbolic({"matrix": [["m*(kx", "kx"], ["kx", "-m"]]}),
                                ["matrix[0][0]", "cannot read expression 'm*(kx'"]),
    "matrix_not_square": (symbolic({"matrix": [["m", "kx", "0"], ["kx", "-m"]]}),
                          ["model.hamiltonian.matrix", "row 0 has 3 entries", "expected 2"]),
    "term_sizes_differ": (symbolic({"terms": [["m", "tau_x sigma_y"], ["kx", "sigma_z"]]}),
                          ["model.hamiltonian.terms[1]", "2×2", "4×4"]),
    "unknown_pauli_factor": (symbolic({"terms": [["m", "sigma_q"]]}), ["terms[0][1]", "'sigma_q'", "sigma_0/x/y/z"]),
    "symbolic_parameter_nan": (symbolic({"terms": [["m", "sigma_z"], ["kx", "sigma_x"]]}, params={"m": float("nan")}),
                               ["'model.params.m'", "nan", "finite"]),
    "hamiltonian_not_finite_at_some_k": (symbolic({"terms": [["m", "sigma_z"], ["log(kx)", "sigma_x"]]}),
                                         ["model", "H(k) is", "at k = [", "expected finite values", "log"]),
    "sector_labels_mismatch": (symbolic({"terms": [["m", "sigma_z"], ["s*kx", "sigma_x"]]}, params={"m": 0.1},
                                        sectors={"params": {"s": [1, -1]}, "labels": ["K"]}),
                               ["model.sectors.labels", "1 labels for 2 sectors"]),
    "spin_operator_wrong_size": (symbolic({"terms": [["m", "sigma_z"], ["kx", "sigma_x"]]},
                                          spin=["sigma_x", "sigma_y", "tau_z sigma_z"]),
                                 ["spin[2]", "4×4", "2 bands"]),
    # 003's spin responses read σ: a model without a spin operator is refused naming the responses
    "spin_response_without_spin_operator": (study(model={"name": "ndd_two_valley"}, units="natural", tau=1.0,
                                                  kgrid={"sizes": [4]}, responses=["sigma_drude",
                                                                                   "spin_sigma_lin_tau1"]),
                                            ["'responses'", "['spin_sigma_lin_tau1']", "no spin operator",
                                             "`spin:` entry"]),
    "spin_operator_not_finite": (symbolic({"terms": [["m", "sigma_z"], ["kx", "sigma_x"]]},
                                          spin=["sigma_x", "sigma_y", [[1.0, 0.0], [0.0, float("nan")]]]),
                                 ["spin[2]", "entry [1, 1]", "nan", "finite"]),
    "two_model_sources": (study(model={"name": "mine", "hamiltonian": {"terms": [["kx", "sigma_z"]]},
                                       "tight_binding": {"lattice": [[1.0]], "hoppings": [[[1], 0, 0, 1.0]]}}),
                          ["model", "give one of", "'hamiltonian', 'tight_binding'"]),
    # tight binding and Wannier90 files (written beside the study file)
    "hopping_vector_wrong_length": (study(model={"name": "tb", "tight_binding": {
        "lattice": [[1.0, 0.0], [0.0, 1.0]], "hoppings": [[[1], 0, 0, 1.0]]}}, kgrid={"sizes": [8]}),
        ["model.tight_binding.hoppings[0]", "R = [1]", "2D"]),
    "hopping_amplitude_not_a_number": (study(model={"name": "tb", "tight_binding": {
        "lattice": [[1.0, 0.0], [0.0, 1.0]], "hoppings": [[[1, 0], 0, 0, "x"]]}}, kgrid={"sizes": [8]}),
        ["model.tight_binding.hoppings[0]", "'x'", "[re, im]"]),
    "wannier_file_missing": (study(model={"name": "w", "wannier90": {"hr": "nope_hr.dat", "lattice": LATTICE3}},
                                   kgrid={"sizes": [4]}), ["model", "nope_hr.dat", "No such file"]),
    "wannier_file_malformed": (study(model={"name": "w", "wannier90": {"hr": "bad_hr.dat", "lattice": LATTICE3}},
                                     kgrid={"sizes": [4]}), ["bad_hr.dat", "line 6", "non-numeric token 'x'"]),
    # finite but beyond the config numbers' 1e100: its squares overflow in the eigensolver (energies of -inf)
    "wannier_hopping_beyond_magnitude": (study(model={"name": "w", "wannier90": {"hr": "huge_hr.dat",
                                                                                 "lattice": LATTICE3}},
                                               kgrid={"sizes": [4]}), ["huge_hr.dat", "line 6", "'1e200'",
                                                                       "beyond 1e+100"]),
    "wannier_file_not_text": (study(model={"name": "w", "wannier90": {"hr": "bin_hr.dat", "lattice": LATTICE3}},
                                    kgrid={"sizes": [4]}), ["bin_hr.dat", "utf-8"]),
    "wannier_file_is_a_directory": (study(model={"name": "w", "wannier90": {"hr": "a_dir", "lattice": LATTICE3}},
                                          kgrid={"sizes": [4]}), ["a_dir", "Is a directory"]),
    "wannier_without_hr_or_tb": (study(model={"name": "w", "wannier90": {"lattice": LATTICE3}}),
                                 ["model.wannier90", "exactly one of 'hr'", "'tb'"]),
    # a declared point group (symmetry.generators): names, closure, the model's own symmetry
    "symmetry_generator_unknown": (study(symmetry={"generators": ["C4q"]}),
                                   ["'symmetry.generators'", "'C4q'", "C<n><axis>"]),
    # an order beyond any finite group: 2π/n rounded to the identity (n = 10^20) or overflowed float (n = 10^400)
    "symmetry_generator_order_huge": (study(symmetry={"generators": ["C" + "9" * 20 + "z"]}),
                                      ["'symmetry.generators'", "'C99999999999999999999z'", "1 ≤ n ≤ 480"]),
    "symmetry_generator_order_beyond_float64": (study(symmetry={"generators": ["S1" + "0" * 400 + "z"]}),
                                                ["'symmetry.generators'", "1 ≤ n ≤ 480"]),
    "symmetry_generators_not_a_list": (study(symmetry={"generators": "C4z"}),
                                       ["symmetry.generators", "'C4z'", "array"]),
    "symmetry_generators_no_finite_group": (study(symmetry={"generators": ["C4z", "C3x"]}),
                                            ["'symmetry.generators'", "['C4z', 'C3x']", "finite point group"]),
    "symmetry_generator_not_orthogonal": (study(symmetry={"generators": [{"rotation": [[1, 0, 0], [0, 2, 0],
                                                                                      [0, 0, 1]]}]}),
                                          ["'symmetry.generators'", "orthogonal 3 × 3 matrix"]),
    "symmetry_generator_not_of_the_model": (study(symmetry={"generators": ["C4z", "T"]}),
                                            ["'symmetry.generators'", "['C4z', 'T']", "operation 1'"]),
    "symmetry_generators_and_atoms": (study(symmetry={"generators": ["C4z"], "atoms": [["X", 0, 0, 0]]}),
                                      ["'symmetry.generators'", "not both"]),
    # a crystal spglib would search for minutes (3000 atoms: 137 s) or whose coordinates have lost their fraction;
    # a long refused value is quoted cut to its head and size (1001 atoms were a 22 kB line)
    "symmetry_atoms_too_many": (study(symmetry={"atoms": [["Fe", i / 1e4, 0, 0] for i in range(1001)]}),
                                ["'symmetry.atoms'", "... (list of 1001 items)", "at most 1000"]),
    "symmetry_atom_far_away": (study(symmetry={"atoms": [["Fe", 1e90, 0, 0]]}),
                               ["symmetry.atoms[0][1]'", "got 1e+90", "<= 100000"]),
    # the study file itself
    "study_not_yaml": ("model: {name: massive_dirac\nmu: [0.1\n", ["study.yaml", "valid YAML", "line 2, column 3"]),
    "study_not_utf8": (b"model: \xff\xfe\n", ["study.yaml", "readable UTF-8 YAML file", "can't decode"]),
    "study_empty": ("", ["study.yaml", "a mapping of study keys"]),
    "study_a_list": ("- massive_dirac\n- haldane\n", ["study.yaml", "a mapping of study keys"]),
}


@pytest.fixture
def no_compute(monkeypatch):
    """Every compute stage fails the test if it is reached."""
    def refuse(*args, **kwargs):
        raise AssertionError("compute started: the bad input was not refused first")

    for stage in (kgrid_stage, geometry_stage, reduce_stage):
        monkeypatch.setattr(stage, "run", refuse)


@pytest.fixture
def model_files(tmp_path) -> Path:
    (tmp_path / "bad_hr.dat").write_text(BAD_HR)
    (tmp_path / "huge_hr.dat").write_text(BAD_HR.replace(" x ", " 1e200 "))
    (tmp_path / "bin_hr.dat").write_bytes(b"\xff\xfe\x00 written by a binary tool \x80\x81")
    (tmp_path / "a_dir").mkdir()
    return tmp_path


def refusal(argv: list[str], capsys) -> str:
    """Run the command line in this process; return its one error line (after checking exit status 2,
    no traceback, and that the error line is the last thing printed)."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("qgtflow: error:")]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
    return lines[0]


def write_study(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(yaml.safe_dump(content))
    return path


@pytest.mark.parametrize("kind", list(STUDY_CASES))
def test_bad_study_is_refused_by_evaluate(kind, model_files, no_compute, capsys):
    content, fragments = STUDY_CASES[kind]
    path = write_study(model_files / "study.yaml", content)
    out = model_files / "out.zarr"
    line = refusal(["evaluate", str(path), "--out", str(out), "--workers", "0"], capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert not out.exists() and not out.with_name("out.zarr.lock").exists()


# ---------------------------------------------------------------- the environment and the command line


def _env_case(kind: str, tmp: Path) -> tuple[list[str], list[str]]:
    good = write_study(tmp / "good.yaml", GOOD)
    (tmp / "a_file").write_text("not a directory\n")
    evaluate = ["evaluate", str(good), "--workers", "0", "--out"]
    if kind == "study_file_missing_is_a_directory":
        (tmp / "study.yaml").mkdir()
        return ["evaluate", str(tmp / "study.yaml"), "--out", str(tmp / "o.zarr")], ["study.yaml", "is a directory"]
    if kind == "study_file_unreadable":
        if os.geteuid() == 0:  # root reads any file whatever its mode: take one the kernel refuses to read
            return (["evaluate", "/proc/self/mem", "--out", str(tmp / "o.zarr")],
                    ["mem", "readable UTF-8 YAML file", "Input/output error"])
        unreadable = write_study(tmp / "locked.yaml", GOOD)
        unreadable.chmod(0)
        return ["evaluate", str(unreadable), "--out", str(tmp / "o.zarr")], ["locked.yaml", "Permission denied"]
    if kind == "output_inside_a_file":
        return evaluate + [str(tmp / "a_file" / "o.zarr")], ["a_file/o.zarr", "a_file is a file, not a directory"]
    if kind == "output_is_a_file":
        return evaluate + [str(tmp / "a_file")], ["a_file", "exists and is not a zarr store", "not overwriting"]
    if kind == "output_is_a_directory_with_other_files":
        (tmp / "mine").mkdir()
        (tmp / "mine" / "thesis.tex").write_text("precious\n")
        return evaluate + [str(tmp / "mine")], ["mine", "exists and is not a zarr store", "not overwriting"]
    if kind == "output_in_proc":
        return evaluate + ["/proc/qgtflow-test.zarr"], ["cannot write /proc/qgtflow-test.zarr"]
    if kind == "size_below_2":
        return evaluate + [str(tmp / "o.zarr"), "--size", "1"], ["--size 1", "integer >= 2"]
    if kind == "negative_workers":
        return ["evaluate", str(good), "--out", str(tmp / "o.zarr"), "--workers", "-1"], ["--workers -1", ">= 0"]
    raise KeyError(kind)


ENV_CASES = ["study_file_missing_is_a_directory", "study_file_unreadable", "output_inside_a_file", "output_is_a_file",
             "output_is_a_directory_with_other_files", "output_in_proc", "size_below_2", "negative_workers"]


@pytest.mark.parametrize("kind", ENV_CASES)
def test_bad_environment_is_refused_by_evaluate(kind, tmp_path, no_compute, capsys):
    argv, fragments = _env_case(kind, tmp_path)
    line = refusal(argv, capsys)
    for fragment in fragments:
        assert fragment in line, line
    if kind == "output_is_a_directory_with_other_files":
        assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious\n"  # never deleted
    assert (tmp_path / "a_file").read_text() == "not a directory\n"


# ---------------------------------------------------------------- workflow configs


def workflow_copy(root: Path) -> Path:
    """The workflow in a directory of its own (QGTFLOW_WORKFLOW_DIR): nothing touches the repository."""
    shutil.copy2(ROOT / "Snakefile", root / "Snakefile")
    shutil.copytree(ROOT / "workflow", root / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "src" / "qgtflow" / "schemas", root / "src" / "qgtflow" / "schemas")
    return root


def config(edit) -> dict:
    cfg = {"results_dir": "results", "studies": {"A": copy.deepcopy(GOOD)}}
    edit(cfg)
    return cfg


# refused while Snakemake parses the config (common.smk), in a dry run
WORKFLOW_CASES = {
    "config_unknown_key": (config(lambda c: c.update(result_dir="out")), ["'result_dir'", "known keys", "results_dir"]),
    "config_no_studies": (config(lambda c: c.update(studies={})), ["'studies'", "got {}", "at least 1 entry"]),
    "config_bad_study_name": (config(lambda c: c["studies"].update({"my study": c["studies"].pop("A")})),
                              ["'studies'", "'my study'", "A-Za-z0-9"]),
    "config_empty_results_dir": (config(lambda c: c.update(results_dir="")), ["'results_dir'", "at least 1 character"]),
    "config_zero_dask_workers": (config(lambda c: c.update(dask={"n_workers": 0})), ["'dask.n_workers'", "got 0",
                                                                                     ">= 1"]),
    "config_study_mu_unsorted": (config(lambda c: c["studies"]["A"].update(mu=[0.2, 0.1])),
                                 ["'studies.A.mu'", "[0.2, 0.1]", "strictly increasing"]),
    "config_spin_response_without_spin_operator": (
        config(lambda c: c["studies"].update(A=STUDY_CASES["spin_response_without_spin_operator"][0])),
        ["'studies.A.responses'", "['spin_sigma_lin_tau1']", "no spin operator"]),
    "config_figure_response_not_computed": (
        config(lambda c: c.update(report={"figures": [{"name": "f", "studies": ["A"], "response": "sigma_qm"}]})),
        ["'report.figures[0].response'", "'sigma_qm'", "sigma_drude"]),
}
# the same checks through the installed entry point, as a user types them
ENTRY_POINT_CASES = {
    "entry_point_unknown_response": ("unknown_response", ["'responses'", "'sigma_nonsense'"]),
    "entry_point_malformed_wannier_file": ("wannier_file_malformed", ["bad_hr.dat", "line 6"]),
    "entry_point_study_not_yaml": ("study_not_yaml", ["valid YAML", "line 2, column 3"]),
}


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory, snakemake_env) -> dict[str, subprocess.CompletedProcess]:
    """Every subprocess case, started together (each is mostly interpreter and Snakemake start-up)."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    root = workflow_copy(tmp)
    env = {**snakemake_env, "QGTFLOW_WORKFLOW_DIR": str(root)}
    procs = {}
    for kind, (cfg, _) in WORKFLOW_CASES.items():
        path = tmp / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        procs[kind] = [sys.executable, "-m", "qgtflow.cli", "run", "--configfile", str(path), "-n"]
    for kind, (study_kind, _) in ENTRY_POINT_CASES.items():
        folder = tmp / kind
        folder.mkdir()
        (folder / "bad_hr.dat").write_text(BAD_HR)
        path = write_study(folder / "study.yaml", STUDY_CASES[study_kind][0])
        procs[kind] = [str(QGTFLOW), "evaluate", str(path), "--out", str(folder / "out.zarr"), "--workers", "0"]
    running = {kind: subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for kind, cmd in procs.items()}
    results = {}
    for kind, proc in running.items():
        out, err = proc.communicate(timeout=300)
        results[kind] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    results["_tmp"] = tmp
    return results


@pytest.mark.parametrize("kind", list(WORKFLOW_CASES) + list(ENTRY_POINT_CASES))
def test_bad_input_is_refused_by_a_real_subprocess(kind, subprocess_results):
    proc = subprocess_results[kind]
    fragments = (WORKFLOW_CASES.get(kind) or ENTRY_POINT_CASES[kind])[1]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("qgtflow: error:")]
    assert len(lines) == 1 and proc.stderr.strip().splitlines()[-1] == lines[0], proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Job stats" not in proc.stdout + proc.stderr  # refused while parsing: no job was even planned
    assert not (subprocess_results["_tmp"] / "results").exists()


# refused by the command line before Snakemake starts
CONFIG_FILE_CASES = {
    "config_not_yaml": ("studies: {A: [\n", ["config.yaml", "not valid YAML", "line 2, column 1"]),
    "config_a_list": ("- A\n- B\n", ["config.yaml", "got a list", "a mapping of config keys"]),
    "config_empty": ("", ["config.yaml", "got an empty file", "a mapping of config keys"]),
    "config_results_dir_inside_a_file": (None, ["results directory", "a_file is a file, not a directory",
                                                "nothing was run"]),
    # a dry run writes nothing, but Snakemake cannot plan under a results_dir that is not a directory either
    "config_results_dir_a_file_dry_run": (None, ["results directory", "a_file is a file, not a directory",
                                                 "nothing was run"]),
    "config_results_dir_a_fifo": (None, ["results directory", "a_fifo is a FIFO, not a directory",
                                         "nothing was run"]),
    "config_results_dir_a_fifo_dry_run": (None, ["results directory", "a_fifo is a FIFO, not a directory",
                                                 "nothing was run"]),
}


@pytest.mark.parametrize("kind", list(CONFIG_FILE_CASES))
def test_bad_config_file_is_refused_before_snakemake_starts(kind, tmp_path, capsys, monkeypatch):
    root = workflow_copy(tmp_path)
    monkeypatch.setenv("QGTFLOW_WORKFLOW_DIR", str(root))
    monkeypatch.chdir(root)  # run from there: .snakemake/ and relative results land in the current directory
    content, fragments = CONFIG_FILE_CASES[kind]
    path = tmp_path / "config.yaml"
    if content is None:
        (tmp_path / "a_file").write_text("x\n")
        os.mkfifo(tmp_path / "a_fifo")
        results = {"config_results_dir_inside_a_file": tmp_path / "a_file" / "results",
                   "config_results_dir_a_file_dry_run": tmp_path / "a_file",
                   "config_results_dir_a_fifo": tmp_path / "a_fifo",
                   "config_results_dir_a_fifo_dry_run": tmp_path / "a_fifo"}[kind]
        content = yaml.safe_dump(config(lambda c: c.update(results_dir=str(results))))
    path.write_text(content)
    real = kind in ("config_results_dir_inside_a_file", "config_results_dir_a_fifo")
    dry = [] if real else ["-n"]  # only a real run must write the results
    line = refusal(["run", "--configfile", str(path), *dry], capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert not (root / ".snakemake").exists()
