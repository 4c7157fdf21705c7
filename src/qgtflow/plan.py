"""The plan: what each stage of the workflow reads, declared once.

Each stage (kgrid, geometry, shells, reduce, convergence, report) declares the study keys it reads, whether
it builds the study's model, what it derives from the study at plan time (the geometry fields)
and its upstream stages. Everything else follows from these declarations:

- the rules' ``params`` (``workflow/rules/common.smk``: :func:`stage_inputs`), so a change of a
  declared key reruns the stage and a change of any other key does not;
- the :class:`qgtflow.study.Study` a job builds (:func:`stage_study`): its config is a
  :class:`StageConfig` that refuses to read an undeclared key (:class:`UndeclaredKeyError`), so a
  stage cannot depend on a key its rule does not rerun for;
- the one fingerprint of every store (:func:`fingerprint`): the declared inputs, the upstream
  stores' fingerprints, the model hash and the code (source hash), written into the store and
  checked by every reader (:func:`check_store`).

Only the standard library at module level: the Snakefile imports this at parse time.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qgtflow import gridsize

STAGES = ("kgrid", "geometry", "shells", "reduce", "convergence", "bands", "report")
# keys of a per-grid stage's `kgrid` slice that are not its inputs: the grid size is a wildcard
# (adding a size must not rerun the existing grids)
PER_GRID_EXCLUDED = {"kgrid": ("sizes",)}


class UndeclaredKeyError(RuntimeError):
    """A stage read a study key its contract (qgtflow.plan) does not declare: a programming error.

    Not a KeyError, so ``config.get(key, default)`` cannot swallow it."""


@dataclass(frozen=True)
class Contract:
    """What one stage reads."""

    stage: str
    keys: tuple[str, ...]  # top-level study keys
    model: bool  # builds the study's model (its hash is an input: model files' checksums too)
    upstream: tuple[str, ...]
    per_grid: bool = True  # one job per (study, grid size)
    # extra keys read only when the study sets a key (not null, not false): {condition key path: keys}
    when: dict = field(default_factory=dict)
    # values derived from the whole validated study at plan time: {name: function(Study) -> JSON value}
    derived: dict = field(default_factory=dict)
    # whether a study has this stage's job at all (None: always); a stage that does not run is no one's upstream
    runs: object = None

    def runs_for(self, study) -> bool:
        return self.runs is None or bool(self.runs(study))

    def declared(self, cfg: dict) -> tuple[str, ...]:
        keys = list(self.keys)
        for path, extra in self.when.items():
            if _lookup(cfg, path) not in (None, False):  # a flag's schema default false sets nothing
                keys += [k for k in extra if k not in keys]
        return tuple(keys)


def _lookup(cfg: dict, path: str):
    for part in path.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def _geometry_fields(study) -> list[str]:
    from qgtflow.study import geometry_fields

    return geometry_fields(study)


def _fermi_window(study):
    """The energy window [E_lo, E_hi] outside which a Fermi-surface-only study reads no state (None: it reads every
    state), from μ, T and the energy binning: an edit of those that keeps the window reruns no geometry."""
    from qgtflow.geometry.fermi_window import energy_window

    return energy_window(study)


def shell_products(study) -> list[str]:
    """What the shells stage computes for ``study`` (empty: no shells job): the products its model-evaluated
    responses read (``skew``: S^(1), S^(2) of pockels_skew) and ``born_tau`` (``impurities.born_tau``)."""
    from qgtflow.reduce.kinds import of_kind

    out = [p for calc in of_kind(study.responses, "model") for p in calc.shells]
    if (study.config.get("impurities") or {}).get("born_tau"):
        out.append("born_tau")
    return sorted(set(out))


def _kubo_inputs(study):
    """ω, η and the q directions the requested Kubo responses read, for the shells maker of 002's Kubo responses
    (reduce/dispersive_kubo.py), None without one: an ω or η edit reruns only those shells jobs (pockels_skew's
    shells do not read ω; its reduce does), and so does a response edit that changes the q directions read."""
    from qgtflow.reduce.dispersive_kubo import plan_value

    return plan_value(study)


def _model_facts(study) -> dict:
    """What reduce knows of the model without building it (provenance, dims, the Fermi-surface form)."""
    m = study.model
    return {"name": m.name, "model_hash": m.model_hash, "convention": m.convention, "periodic": bool(m.periodic),
            "dim": int(m.dim), "nbands": int(m.nbands)}


def _window_cut(study):
    """(μ, T) flags where the k·p window cuts a Fermi surface (None for periodic zones): from the model at plan
    time, so reduce need not build it (:func:`qgtflow.convergence.window_cut`)."""
    from qgtflow.convergence import window_cut

    cut = window_cut(study)
    return None if cut is None else cut.astype(int).tolist()


def _bands_fields(study) -> dict:
    from qgtflow.study import bands_fields

    return bands_fields(study)


def _bands_window(study):
    from qgtflow.study import bands_window

    return bands_window(study)


def _symmetry_zeros(study) -> dict:
    """{response: components forbidden by the point group of the study's crystal} ({} without ``symmetry``)."""
    from qgtflow.models.symmetry import study_symmetry_zeros

    return study_symmetry_zeros(study.model, study.config.get("symmetry"), study.responses, f"{study.where}symmetry",
                                ac=study.config.get("omega") is not None)


def _symmetry_crystal(study):
    """The crystal the symmetry zeros come from (None without ``symmetry``): ``symmetry.atoms``, else the atoms read
    from the Wannier90 model's seedname.win, which the model hash does not cover (they are not the Hamiltonian); a
    declared group's generators as given (no crystal: ``symmetry.generators``)."""
    from qgtflow.models.symmetry import crystal_atoms, declares

    symmetry = study.config.get("symmetry")
    if symmetry is None:
        return None
    if declares(symmetry):
        return {"generators": symmetry["generators"]}
    atoms = crystal_atoms(study.model, symmetry, f"{study.where}symmetry")
    return [[str(a[0])] + [round(float(x), 12) for x in a[1:]] for a in atoms]


# reduce reads no model: the model-evaluated responses come from the shells store, the model's facts and the
# window's cuts are derived at plan time
_REDUCE_KEYS = ("units", "mu", "temperature", "tau", "responses", "fermi_form", "energy_bins_per_kT", "integration",
                "energy_resolution", "omega", "broadening", "resolve_sectors", "impurities", "electro_optics")

CONTRACTS = {
    # a refined grid follows the Fermi surfaces of the study's mu at its lowest T; the irreducible wedge the point
    # group of the study's crystal (carried forward in the store: reduce symmetrises with it)
    "kgrid": Contract("kgrid", ("model", "units", "kgrid"), model=True, upstream=(),
                      when={"kgrid.refine": ("mu", "temperature"), "kgrid.symmetry_reduce": ("symmetry",)}),
    # the fields follow responses, fermi_form, omega and store_fields: a new response that needs no
    # new field does not rerun the geometry; a Fermi-surface-only study's fields only at the k-points that reach
    # its energy window (derived from mu, T and the binning: a mu inside the same window reruns nothing)
    "geometry": Contract("geometry", ("model", "units", "degeneracy_threshold"), model=True, upstream=("kgrid",),
                         derived={"fields": _geometry_fields, "fermi_window": _fermi_window}),
    # the model's Fermi shells on the grid for the model-evaluated responses (pockels_skew, the Born tau): only
    # for studies that request one
    "shells": Contract("shells", ("model", "units", "kgrid", "degeneracy_threshold", "mu", "temperature",
                                  "impurities"), model=True, upstream=("kgrid",),
                       derived={"products": shell_products, "kubo_inputs": _kubo_inputs},
                       runs=shell_products),
    "reduce": Contract("reduce", _REDUCE_KEYS, model=False, upstream=("geometry", "shells"),
                       derived={"model_facts": _model_facts, "window_cut": _window_cut}),
    # the symmetry zeros (residuals, not verdicts) come from the crystal at plan time (the crystal, e.g. a .win's
    # atoms, is in its params: an edited atom reruns this stage and the report only): the stage builds no model
    "convergence": Contract("convergence", ("convergence",), model=False, upstream=("reduce",), per_grid=False,
                            derived={"symmetry_zeros": _symmetry_zeros, "crystal": _symmetry_crystal}),
    # band energies and fields along a path and on a k-plane, from the model alone (no grid); the fields follow
    # bands and the responses (derived), the k·p window the grid's kmax (derived: a new grid size reruns nothing)
    "bands": Contract("bands", ("model", "units", "degeneracy_threshold", "bands"), model=True, upstream=(),
                      per_grid=False, derived={"fields": _bands_fields, "window": _bands_window}),
    # the report lists each study (description, model, units, grids, tolerances, integration) and reads
    # the convergence tables and the finest responses store
    "report": Contract("report", ("description", "model", "units", "kgrid", "integration", "convergence"),
                       model=False, upstream=("convergence", "reduce", "bands"), per_grid=False),
}


def canonical(value):
    """Plain builtins with dict keys sorted: params and fingerprints must not depend on key order."""
    return json.loads(json.dumps(value, sort_keys=True, default=_plain))


def _plain(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def study_slice(stage: str, cfg: dict) -> dict:
    """The declared keys of one validated study config, canonical (a per-grid stage's kgrid without sizes)."""
    contract = CONTRACTS[stage]
    out = {}
    for key in contract.declared(cfg):
        value = cfg.get(key)
        if contract.per_grid and isinstance(value, dict) and key in PER_GRID_EXCLUDED:
            value = {k: v for k, v in value.items() if k not in PER_GRID_EXCLUDED[key]}
        out[key] = value
    return canonical(out)


def stage_inputs(stage: str, study) -> dict:
    """Everything a stage's job of ``study`` (a validated Study) reads: the rule's params.

    ``study``: the declared study keys; ``model_hash`` when the stage builds the model; the derived
    values (geometry: ``fields``)."""
    contract = CONTRACTS[stage]
    out = {"name": study.name, "study": study_slice(stage, study.config)}
    if contract.model:
        out["model_hash"] = study.model.model_hash
    for name, derive in contract.derived.items():
        out[name] = canonical(derive(study))
    return out


# the papers' claims the report checks (qgtflow.report.claims): a report input, so editing the file reruns the report
CLAIMS_FILE = Path(__file__).resolve().parent / "data" / "claims.yaml"


def claims_digest() -> str:
    return hashlib.sha256(CLAIMS_FILE.read_bytes()).hexdigest()[:16]


def report_inputs(config: dict, studies: dict, code: dict | None = None, chain=None) -> dict:
    """The report's params: its own section, each study's declared keys, in config order (the page
    follows it), the fingerprints of the stores it reads: {"<study>/convergence": fp,
    "<study>/n<size>": fp of that responses store, "<study>/bands": fp of its bands store}, and the digest of the
    claims file. ``chain(name, size)``: the :func:`grid_chain` of one study and size (e.g. a cached one)."""
    chain = chain or (lambda name, size: grid_chain(studies[name], size, code))
    upstream = {}
    for name, study in studies.items():
        for size in study.sizes:
            upstream[f"{name}/n{gridsize.label(size)}"] = chain(name, size)["reduce"]["fingerprint"]
        upstream[f"{name}/convergence"] = convergence_job(study, code, lambda s, n=name: chain(n, s))["fingerprint"]
        upstream[f"{name}/bands"] = bands_job(study, code)["fingerprint"]
    return {"report": canonical(config.get("report") or {}),
            "studies": {name: study_slice("report", studies[name].config) for name in studies},
            "upstream": upstream, "claims": claims_digest()}


class StageConfig(dict):
    """A study config restricted to one stage's declared keys: reading any other key raises
    :class:`UndeclaredKeyError` (also through ``get`` and ``in``)."""

    def __init__(self, data: dict, declared, stage: str):
        super().__init__({k: v for k, v in data.items() if k in declared})
        self.declared, self.stage = frozenset(declared), stage

    def _check(self, key):
        if key not in self.declared:
            raise UndeclaredKeyError(f"stage {self.stage!r} read the study key {key!r}, which its contract "
                                     f"(qgtflow.plan.CONTRACTS) does not declare: {sorted(self.declared)}")

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._check(key)
        return super().__contains__(key)

    def with_values(self, **values) -> "StageConfig":
        for key in values:
            self._check(key)
        return StageConfig({**self, **values}, self.declared, self.stage)


class ModelFacts:
    """Stands for the model in a stage that does not build it: the facts its plan derived (``model_facts``);
    anything else raises like :class:`Undeclared`."""

    def __init__(self, facts: dict, stage: str):
        self._facts, self._stage = dict(facts), stage

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        if attr in self._facts:
            return self._facts[attr]
        raise UndeclaredKeyError(f"stage {self._stage!r} used the study's model ({attr}), which its contract "
                                 "(qgtflow.plan.CONTRACTS) does not declare (it has the facts "
                                 f"{sorted(self._facts)})")


class Undeclared:
    """Stands for the model (or units) of a stage that does not declare it: any use raises."""

    def __init__(self, what: str, stage: str):
        self._what, self._stage = what, stage

    def __getattr__(self, attr):
        raise UndeclaredKeyError(f"stage {self._stage!r} used the study's {self._what} ({attr}), which its "
                                 "contract (qgtflow.plan.CONTRACTS) does not declare")


def stage_study(stage: str, inputs: dict, where: str | None = None):
    """The :class:`qgtflow.study.Study` a stage's job reads, from its params (:func:`stage_inputs`) only.

    The config was validated once by the workflow; only this study's model is built (when declared),
    and its hash must equal the one the plan saw (a model file edited since is refused). The plan validated that
    model (H at random k), so the job does not again: a kgrid job evaluates no H, and the check's first numba call
    would load numba's CPU target (~0.3 s of its ~1.8 s CPU)."""
    from qgtflow.errors import StoreError
    from qgtflow.study import Study
    from qgtflow.units import parse_unit_system

    contract = CONTRACTS[stage]
    name = inputs["name"]
    where = f"studies.{name}." if where is None else where
    cfg = inputs["study"]
    units = parse_unit_system(cfg["units"]) if "units" in cfg else Undeclared("units", stage)
    model = ModelFacts(inputs["model_facts"], stage) if "model_facts" in inputs else Undeclared("model", stage)
    if contract.model:
        from qgtflow.models.config import model_from_config

        model = model_from_config(cfg["model"], units, where=f"{where}model", validate=False)
        if model.model_hash != inputs["model_hash"]:
            raise StoreError(f"study {name}: model hash {model.model_hash} differs from the planned "
                             f"{inputs['model_hash']} (a model file changed after the workflow started)")
    return Study(name=name, config=StageConfig(cfg, contract.declared(cfg), stage), model=model, units=units,
                 where=where)


def fingerprint(stage: str, inputs: dict, code: str | None = None) -> str:
    """The one identity of a store: hash of its stage's declared inputs (:func:`stage_inputs`, with
    the grid size and the fingerprints of the stores it reads) and the code (the stage's source
    hash in the workflow, else the qgtflow version). Written into the store's attrs
    (``qgtflow.io.FINGERPRINT``) and checked by every reader of the store."""
    from qgtflow import __version__

    payload = {"stage": stage, "inputs": canonical({k: v for k, v in inputs.items() if k != "fingerprint"}),
               "code": code or __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def job_inputs(stage: str, study, size: int | None = None, upstream: dict | None = None,
               code: str | None = None) -> dict:
    """A job's params: :func:`stage_inputs` plus its grid size, the fingerprints of the stores it
    reads ({label: fingerprint}) and its own store's fingerprint."""
    out = stage_inputs(stage, study)
    if size is not None:  # points per axis, or one number per axis (anisotropic grid)
        size = gridsize.parse(size)
        out["size"] = list(size) if isinstance(size, tuple) else size
    out["upstream"] = dict(sorted((upstream or {}).items()))
    out["fingerprint"] = fingerprint(stage, out, code)
    return out


GRID_STAGES = ("kgrid", "geometry", "shells", "reduce")


class GridChain(Mapping):
    """{kgrid, geometry, [shells,] reduce: job inputs} of one grid size, each fingerprint covering the earlier ones
    (shells only for a study that has that job). A stage's inputs are computed on first use, with those of the
    stages it reads only: a kgrid or geometry job's params do not derive reduce's values (the k·p window's cuts)."""

    def __init__(self, study, size, code: dict | None = None):
        self._study, self._size, self._code = study, size, code or {}
        self._jobs: dict[str, dict] = {}

    def _runs(self, stage: str) -> bool:
        return stage in GRID_STAGES and CONTRACTS[stage].runs_for(self._study)

    def __getitem__(self, stage: str) -> dict:
        if stage not in self._jobs:
            if not self._runs(stage):
                raise KeyError(stage)
            up = {u: self[u]["fingerprint"] for u in CONTRACTS[stage].upstream if self._runs(u)}
            self._jobs[stage] = job_inputs(stage, self._study, self._size, up, self._code.get(stage))
        return self._jobs[stage]

    def __iter__(self):
        return (stage for stage in GRID_STAGES if self._runs(stage))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def grid_chain(study, size, code: dict | None = None) -> GridChain:
    """The :class:`GridChain` of one grid size of ``study`` (``code``: {stage: source hash})."""
    return GridChain(study, size, code)


def convergence_job(study, code: dict | None = None, chain=None) -> dict:
    """The convergence job's inputs: over the responses stores of every grid size of the study (``chain(size)``:
    the :func:`grid_chain` of one size, e.g. a cached one)."""
    chain = chain or (lambda size: grid_chain(study, size, code))
    ups = {f"reduce n{gridsize.label(size)}": chain(size)["reduce"]["fingerprint"] for size in study.sizes}
    return job_inputs("convergence", study, None, ups, (code or {}).get("convergence"))


def bands_job(study, code: dict | None = None) -> dict:
    """The bands job's inputs: the study's model and bands settings, no store read."""
    return job_inputs("bands", study, None, {}, (code or {}).get("bands"))


def check_store(path, expected: str):
    """Open a store another stage wrote (complete), refusing it unless its fingerprint is ``expected``:
    one line naming the store and both fingerprints."""
    from qgtflow import io

    return io.open_store(path, fingerprint=expected)


# ---------------------------------------------------------------- the jobs of a workflow config


def downstream(stages) -> set[str]:
    """The stages that (transitively) read any of ``stages``."""
    out, todo = set(stages), list(stages)
    while todo:
        s = todo.pop()
        for later, contract in CONTRACTS.items():
            if s in contract.upstream and later not in out:
                out.add(later)
                todo.append(later)
    return out


class WorkflowPlan:
    """The jobs of a workflow config and the inputs each reads.

    Studies are validated (and their models built) on first use and kept: the Snakefile's main
    process touches them all (refusing a bad config before any job), a job's process only its own."""

    def __init__(self, config: dict, code: dict | None = None):
        self.config = config
        self.code = code if code is not None else {}  # {stage: source hash}, filled by the Snakefile
        self._studies = {}
        # {(name, size label, code): grid_chain}, {(stage, name, code): inputs}: Snakemake asks for a job's params
        # more than once, and the derived values (k·p window faces, spglib) cost ~0.1 s per study each time
        self._chains = {}
        self._study_jobs = {}

    @property
    def names(self) -> list[str]:
        return list(self.config["studies"])

    def study(self, name: str):
        if name not in self._studies:
            from qgtflow.study import load_study

            self._studies[name] = load_study(self.config["studies"][name], name=name)
        return self._studies[name]

    def sizes(self, name: str) -> list[str]:
        """The labels of the study's grid sizes ("8", "3x3x4": directories n8, n3x3x4), without building its
        model (a job's process needs every study's)."""
        if name in self._studies:
            return [gridsize.label(s) for s in self._studies[name].sizes]
        from qgtflow.study import study_schema

        kgrid = self.config["studies"][name].get("kgrid") or {}
        sizes = kgrid.get("sizes") or study_schema()["properties"]["kgrid"]["properties"]["sizes"]["default"]
        return [gridsize.label(s) for s in sizes]

    def inputs(self, stage: str, name: str | None = None, size=None) -> dict:
        """The params of one job (:func:`job_inputs`; the report's: :func:`report_inputs`)."""
        if stage == "report":
            return report_inputs(self.config, {n: self.study(n) for n in self.names}, self.code, self._chain)
        if stage in ("convergence", "bands"):
            key = (stage, name, self._code_key())
            if key not in self._study_jobs:
                job = convergence_job if stage == "convergence" else bands_job
                extra = {"chain": lambda s: self._chain(name, s)} if stage == "convergence" else {}
                self._study_jobs[key] = job(self.study(name), self.code, **extra)
            return copy.deepcopy(self._study_jobs[key])
        return copy.deepcopy(self._chain(name, size)[stage])

    def _code_key(self) -> tuple:
        return tuple(sorted(self.code.items()))

    def _chain(self, name: str, size) -> dict:
        """The study's :func:`grid_chain` of one size, computed once per source hashes (``code``)."""
        size = gridsize.parse(size)
        key = (name, gridsize.label(size), self._code_key())
        if key not in self._chains:
            self._chains[key] = grid_chain(self.study(name), size, self.code)
        return self._chains[key]

    def jobs(self) -> list[str]:
        """Job labels as Snakemake's dry run names them: 'reduce A n8', 'convergence A', 'report'."""
        out = []
        for name in self.names:
            for size in self.study(name).sizes:
                out += [f"{stage} {name} n{gridsize.label(size)}" for stage in STAGES
                        if CONTRACTS[stage].per_grid and CONTRACTS[stage].runs_for(self.study(name))]
            out.append(f"convergence {name}")
            out.append(f"bands {name}")
        return out + ["report"]

    def job_params(self, job: str) -> dict:
        stage, *rest = job.split()
        return self.inputs(stage, rest[0] if rest else None, rest[1][1:] if len(rest) > 1 else None)


def downstream_jobs(workflow_plan: WorkflowPlan, jobs) -> set[str]:
    """The jobs that (transitively) read the outputs of ``jobs``, ``jobs`` included."""
    out = set(jobs)
    changed = True
    while changed:
        changed = False
        for job in workflow_plan.jobs():
            if job in out:
                continue
            stage, *rest = job.split()
            reads = CONTRACTS[stage].upstream
            if any(_reads(job, other, reads) for other in out):
                out.add(job)
                changed = True
    return out


def _reads(job: str, other: str, upstream) -> bool:
    """Whether ``job`` reads the output of ``other`` (one of its upstream stages, same study, same grid)."""
    stage, *where = job.split()
    o_stage, *o_where = other.split()
    if o_stage not in upstream:
        return False
    if stage == "report":
        return True
    if stage == "convergence":
        return o_where[:1] == where[:1]
    return o_where == where
