"""Studies: load, validate (schema, then semantics) and hold one study's settings.

Every error names the key, the value and what was expected, and is raised before any compute.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from qgtflow import gridsize, yamlio
from qgtflow.errors import ConfigError
from qgtflow.guards import MAX_MAGNITUDE
from qgtflow.safety import check_name
from qgtflow.schema import study_schema
from qgtflow.units import UnitSystem, parse_unit_system

log = logging.getLogger(__name__)


_EXPECT = {
    "type": lambda s: f"a value of type {s}",
    "minimum": lambda s: f"a number >= {s}",
    "exclusiveMinimum": lambda s: f"a number > {s}",
    "maximum": lambda s: f"a number <= {s}",
    "enum": lambda s: f"one of {s}",
    "minItems": lambda s: f"at least {s} item(s)",
    "maxItems": lambda s: f"at most {s} item(s)",
    "minProperties": lambda s: f"at least {s} entr{'y' if s == 1 else 'ies'}",
    "minLength": lambda s: f"a string of at least {s} character(s)",
    "uniqueItems": lambda s: "no duplicate items",
    "pattern": lambda s: f"a string matching {s}",
}


def yaml_problem(exc) -> str:
    """One line locating a YAML syntax error: 'line L, column C: problem'."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    problem = problem or (str(exc).strip().splitlines() or ["unreadable YAML"])[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _key_of(path, prefix: str = "") -> str:
    key = prefix
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "<config>"


def _describe_form(schema) -> str:
    """Short text for one alternative of a oneOf."""
    kind = schema.get("type")
    if "enum" in schema:
        return f"one of {schema['enum']}"
    if kind == "array":
        return f"a list of {schema.get('items', {}).get('type', 'value')}s"
    if kind == "object":
        return f"a mapping with keys {schema.get('required') or sorted(schema.get('properties', {}))}"
    if kind == "null":
        return "null"
    bounds = [f">= {schema['minimum']}"] if "minimum" in schema else []
    bounds += [f"> {schema['exclusiveMinimum']}"] if "exclusiveMinimum" in schema else []
    return f"a{'n' if str(kind)[0] in 'aeiou' else ''} {kind}" + (f" {' '.join(bounds)}" if bounds else "")


def _within_magnitude(x) -> bool:
    """Whether the number ``x`` is finite and at most :data:`MAX_MAGNITUDE` in size (an int beyond float64: no)."""
    try:
        return math.isfinite(float(x)) and abs(float(x)) <= MAX_MAGNITUDE
    except OverflowError:
        return False


def schema_error(err, prefix: str = "") -> ConfigError:
    """A :class:`ConfigError` naming key, value and expectation for a jsonschema ValidationError."""
    # a oneOf failure: report the sub-error below the failing key, or of the alternative whose
    # type matched (its constraint failed); else list the alternatives
    if err.context:
        deeper = [e for e in err.context if len(e.absolute_path) > len(err.absolute_path)]
        matched = [e for e in err.context if e.validator != "type"]
        if deeper or matched:
            err = max(deeper or matched, key=lambda e: (len(e.absolute_path), -len(e.message)))
    key = _key_of(err.absolute_path, prefix)
    schema = err.schema if isinstance(err.schema, dict) else {}
    desc = schema.get("description", "").strip()
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        name = f"{key}.{extra[0]}" if key != "<config>" else extra[0]
        return ConfigError(name, err.instance[extra[0]], f"one of the known keys {allowed}")
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        name = f"{key}.{missing}" if key != "<config>" else missing
        sub = schema.get("properties", {}).get(missing, {})
        return ConfigError(name, None, "a value (required)" + (f": {sub['description']}" if "description" in sub else ""))
    if err.validator == "propertyNames":
        return ConfigError(key, err.instance, f"names matching {err.validator_value}")
    if isinstance(err.instance, (int, float)) and not isinstance(err.instance, bool) \
            and not _within_magnitude(err.instance):
        expected = f"a finite number of magnitude <= {MAX_MAGNITUDE:g} (NaN and infinity are not allowed)"
    elif err.validator in _EXPECT:
        expected = _EXPECT[err.validator](err.validator_value)
    elif err.validator == "oneOf":
        expected = "one of: " + " | ".join(_describe_form(sub) for sub in err.validator_value)
    else:
        expected = err.message
    return ConfigError(key, err.instance, expected + (f" ({desc})" if desc else ""))


def _declared_window(cfg: dict, model, operations, key: str):
    """The k·p window half-width (kgrid.kmax, else the model's) in which a declared group is checked; a warning
    naming the operations that do not map the window (a box) onto itself, whose symmetry zeros then hold on the
    grid only where the integrand has decayed inside it (Fermi-surface responses with the Fermi line well inside)."""
    from qgtflow.models.symmetry import window_problem

    kmax = cfg["kgrid"].get("kmax")
    try:
        half = np.broadcast_to(np.asarray(model.kmax if kmax is None else kmax, float), (model.dim,))
    except (TypeError, ValueError):  # refused by kgrid.kmax's own check (make_grid) below
        half = np.broadcast_to(np.asarray(model.kmax or 1.0, float), (model.dim,))
    outside = window_problem(operations, half, model.dim)
    if outside:
        log.warning("%ssymmetry.generators: the operations %s do not map the k·p window (half-widths %s) onto "
                    "itself; their symmetry zeros hold on the grid only where the integrand has decayed inside "
                    "the window (Fermi-surface responses with the Fermi line well inside it)", key, outside,
                    [float(h) for h in half])
    return half


def validate_against_schema(data, schema, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first schema violation, naming key, value and expectation.

    One rule for every number of every schema: JSON has no NaN or infinity, so neither does a config
    (YAML's .nan/.inf fail ``type: number``; no key documents otherwise).
    """
    validator = _finite_validator()(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if errors:
        raise schema_error(errors[0], prefix)


def _finite_validator():
    import jsonschema

    base = jsonschema.Draft202012Validator

    def number(checker, x) -> bool:
        return base.TYPE_CHECKER.is_type(x, "number") and _within_magnitude(x)

    def integer(checker, x) -> bool:  # an int beyond 1e100 (chunk_size: 10^400) overflows float arithmetic later
        return base.TYPE_CHECKER.is_type(x, "integer") and _within_magnitude(x)

    return jsonschema.validators.extend(base, type_checker=base.TYPE_CHECKER.redefine_many(
        {"number": number, "integer": integer}))


def apply_defaults(data: dict, schema: dict) -> dict:
    """Fill `default`s of the schema's object properties (recursively, for plain objects)."""
    out = copy.deepcopy(data)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and sub.get("type") == "object":
            out[key] = apply_defaults(out[key], sub)
    return out


def _as_array(spec, key: str) -> np.ndarray:
    if isinstance(spec, dict):
        arr = np.linspace(spec["start"], spec["stop"], spec["num"])
    else:
        arr = np.atleast_1d(np.asarray(spec, float))
    if not np.all(np.isfinite(arr)):
        raise ConfigError(key, spec, "finite numbers")
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise ConfigError(key, spec, "strictly increasing values without duplicates")
    return arr


@dataclass
class Study:
    """A validated study (see ``schemas/study.schema.yaml``).

    ``config``: the validated study config with defaults filled (plain builtins), or in a workflow
    job the :class:`qgtflow.plan.StageConfig` of the stage's declared keys (reading any other key
    raises). Every setting below is read from it, so a stage reads only what it declares."""

    name: str
    config: dict
    model: object
    units: UnitSystem
    where: str = ""  # prefix of the study's keys in error messages ("studies.<name>." in a workflow config)
    tau_source: str = ""  # how tau was obtained when not from the config (impurities.born_tau)

    @property
    def mu(self) -> np.ndarray:
        return _as_array(self.config["mu"], f"{self.where}mu")

    @property
    def temperature(self) -> np.ndarray:
        return _as_array(self.config["temperature"], f"{self.where}temperature")

    @property
    def omega(self) -> np.ndarray | None:
        """Photon energies ħω (model energy units) of frequency-dependent responses, or None."""
        spec = self.config.get("omega")
        return None if spec is None else _as_array(spec, f"{self.where}omega")

    @property
    def responses(self) -> list[str]:
        return list(self.config["responses"])

    @property
    def sizes(self) -> list:
        """Grid sizes, coarse to fine: ints, or tuples (one number per axis; see ``qgtflow.gridsize``)."""
        return [gridsize.normalise(s) for s in self.config["kgrid"]["sizes"]]

    def with_tau(self, tau: float, source: str) -> "Study":
        """The same study with another relaxation time (e.g. the impurities' Born transport time)."""
        config = self.config.with_values(tau=tau) if hasattr(self.config, "with_values") else {**self.config,
                                                                                              "tau": tau}
        return replace(self, config=config, tau_source=source)

    @property
    def kgrid(self) -> dict:
        return self.config["kgrid"]

    @property
    def tau(self) -> float:
        return float(self.config["tau"]) if self.config.get("tau") is not None else float("nan")

    @property
    def fermi_form(self) -> str:
        form = self.config["fermi_form"]
        if form == "auto":
            return "sea" if self.model.periodic else "surface"
        return form

    @property
    def kT(self) -> np.ndarray:
        """k_B T per temperature in model energy units."""
        return np.array([self.units.kT(t) for t in self.temperature])

    @property
    def integration(self) -> str:
        return str(self.config.get("integration") or "points")

    def energy_bins(self):
        """The reduce stage's energy histogram (bin width from T; at T = 0 from ``energy_resolution``)."""
        from qgtflow.reduce.spectral import EnergyBins

        kT = self.kT
        zero_width = None
        if np.any(kT == 0):
            scale = max(float(np.abs(self.mu).max()), float(np.ptp(self.mu)))
            zero_width = float(self.config.get("energy_resolution") or (1e-4 * scale if scale > 0 else 1e-6))
        return EnergyBins(self.mu, kT, bins_per_kT=float(self.config["energy_bins_per_kT"]), zero_T_width=zero_width)

    @property
    def broadening(self) -> float:
        """η of frequency-dependent interband responses (model energy units; 0 when not given)."""
        return float(self.config.get("broadening") or 0.0)

    def response(self, name: str):
        """The response ``name`` as this study evaluates it (at its photon energies when it has an AC form)."""
        from qgtflow.reduce.kinds import get

        return get(name).resolved(self.omega, self.broadening)

    @property
    def degeneracy_threshold(self) -> float:
        return float(self.config["degeneracy_threshold"])

    def make_grid(self, size):
        from qgtflow.kgrid import make_grid

        kg = self.kgrid
        return make_grid(self.model, size, kmax=kg.get("kmax"), shift=kg.get("shift") if self.model.periodic else None,
                         chunk_size=kg["chunk_size"], max_chunks=kg["max_chunks"], key=f"{self.where}kgrid")


def geometry_fields(study) -> list[str]:
    """Fields the geometry store of ``study`` holds.

    ``store_fields: required`` (default): only what its responses read (and energy, velocity);
    ``all``: every core field plus the optional ones its responses read.
    Spin fields (003) need the model's spin operator: refused here (ModelError) before any compute.
    """
    from qgtflow.geometry.fields import FIELD_SPECS, check_spin_operator, stored_fields
    from qgtflow.geometry.position import check_position_operator
    from qgtflow.reduce.kinds import required_fields

    required = required_fields(study.responses, study.fermi_form, study.omega)
    check_spin_operator(study.model, required)
    check_position_operator(study.model, study.responses,
                            lambda r: required_fields([r], study.fermi_form, study.omega))
    if study.config.get("store_fields") == "required":
        return [f for f in FIELD_SPECS if f in set(required) | {"energy", "velocity"}]
    return stored_fields(required)


def check_operators(study) -> None:
    """Refuse (ConfigError naming ``responses``) responses that read spin fields (003) on a model without a spin
    operator, and responses reading fields the position operator cannot give while it is on — in load_study, so
    ``qgtflow evaluate`` and the workflow's config validation refuse them before any job is planned."""
    from qgtflow.errors import ModelError
    from qgtflow.geometry.fields import SPIN_OPTIONAL_FIELDS
    from qgtflow.geometry.position import check_position_operator
    from qgtflow.reduce.kinds import required_fields

    def fields_of(r):
        return required_fields([r], study.fermi_form, study.omega)

    key = f"{study.where}responses"
    spin = [r for r in study.responses if set(fields_of(r)) & set(SPIN_OPTIONAL_FIELDS)]
    models = getattr(study.model, "sectors", None) or [study.model]
    if spin and any(getattr(m, "spin", None) is None for m in models):
        raise ConfigError(key, spin, f"responses without spin fields: model '{study.model.name}' has no spin "
                          "operator, and these read the 003 spin quantum geometry; give the model a `spin:` entry "
                          "(three matrices σ^x, σ^y, σ^z; built in for massive_dirac and snte_surface_dirac)")
    try:
        check_position_operator(study.model, study.responses, fields_of)
    except ModelError as exc:
        raise ConfigError(key, study.responses, f"responses the position operator can give ({exc})") from None


def bands_window(study) -> list[float] | None:
    """Half-widths per axis of the k·p window the bands stage samples (the grid's), None for periodic models."""
    if study.model.periodic:
        return None
    kmax = (study.config.get("kgrid") or {}).get("kmax")
    kmax = study.model.kmax if kmax is None else kmax
    return [float(v) for v in np.broadcast_to(np.atleast_1d(np.asarray(kmax, float)), (study.model.dim,))]


def bands_fields(study) -> dict[str, list[str]]:
    """Fields the bands store of ``study`` holds along its path and on its k-map (besides the energy): the
    ``bands`` settings' plus what its responses read — Λ (001 Eq. 14) when they read 𝒢, on the map the
    quadrupole density (000 Fig. 1) when they read it or the Christoffel symbols (000 Eq. 15/18)."""
    from qgtflow.geometry import qmd
    from qgtflow.geometry.position import check_position_fields
    from qgtflow.reduce.kinds import required_fields

    required = set(required_fields(study.responses, study.fermi_form, study.omega))
    extra = [qmd.NAME] if required & {"bcp", "bcp_dipole_density"} else []
    cfg = study.config["bands"]
    check_position_fields(study.model, cfg["fields"], f"{study.where}bands.fields")
    check_position_fields(study.model, cfg["kmap"]["fields"], f"{study.where}bands.kmap.fields")
    path = list(dict.fromkeys(list(cfg["fields"]) + extra))
    # the IFE densities (000 Fig. 1)
    extra_map = ["quantum_metric_quadrupole_density"] if required & {"quantum_metric_quadrupole_density",
                                                                     "christoffel"} else []
    kmap = list(dict.fromkeys(list(cfg["kmap"]["fields"]) + extra + extra_map))
    return {"path": path, "kmap": kmap}


def _same_moments(model, symmetry: dict, key: str) -> None:
    """A Wannier model symmetrised over one crystal (``model.wannier90.symmetrize``) checked against the study's:
    their magnetic moments must agree (a non-magnetic average of a magnet, or the reverse, would be checked against
    a group it was not averaged over)."""
    spec = (getattr(model, "params", None) or {}).get("symmetrize")
    if not isinstance(spec, dict):
        return
    mine, theirs = spec.get("magnetic_moments"), symmetry.get("magnetic_moments")
    same = (mine is None) == (theirs is None) and (mine is None or (
        np.shape(mine) == np.shape(theirs) and np.allclose(np.asarray(mine, float), np.asarray(theirs, float))))
    if not same:
        raise ConfigError(f"{key}model.wannier90.symmetrize.magnetic_moments", mine,
                          f"the study's symmetry.magnetic_moments ({theirs!r}): the model is averaged over the group "
                          "it is checked against")


def load_study(source, name: str | None = None) -> Study:
    """Validate a study given as a dict, a YAML path or a :class:`Study`; refuse bad input early."""
    if isinstance(source, Study):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError("study", str(path), "a readable YAML file")
        try:
            data = yamlio.load(path.read_text())  # duplicate keys refused
        except yaml.YAMLError as exc:
            raise ConfigError("study", str(path), f"valid YAML ({yaml_problem(exc)})") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError("study", str(path), f"a readable UTF-8 YAML file ({reason})") from None
        if not isinstance(data, dict):
            raise ConfigError("study", str(path), "a mapping of study keys")
        # keys are named as in the file (no `studies.<name>.` prefix) unless the caller names the study
        prefix = f"studies.{name}" if name else ""
        name = name or data.get("name") or path.stem
    else:
        data = dict(source)
        prefix = None
    name = name or data.get("name") or "study"
    if prefix is None:
        prefix = f"studies.{name}" if name != "study" else ""
    schema = study_schema()
    validate_against_schema(data, schema, prefix)
    cfg = apply_defaults(data, schema)
    cfg["name"] = check_name(name, "studies" if prefix else "name")  # it becomes a file name: no '..' or '/'
    if "kgrid" in cfg:
        cfg["kgrid"] = apply_defaults(cfg["kgrid"], schema["properties"]["kgrid"])
    key = (prefix + ".") if prefix else ""
    units = parse_unit_system(cfg["units"])
    from qgtflow.models.config import model_from_config

    base_dir = Path(source).parent if isinstance(source, (str, Path)) else None
    from qgtflow.models.config import with_symmetrize_default

    cfg["model"] = with_symmetrize_default(cfg["model"], cfg.get("symmetry"), base_dir)  # in the config: jobs agree
    model = model_from_config(cfg["model"], units, where=f"{key}model", base_dir=base_dir)
    _as_array(cfg["mu"], f"{key}mu")
    temperature = _as_array(cfg["temperature"], f"{key}temperature")
    if np.any(temperature < 0):
        raise ConfigError(f"{key}temperature", cfg["temperature"],
                          "temperatures > 0 (or >= 0 with integration: tetrahedron)")
    if cfg["kgrid"].get("refine") and cfg.get("integration") == "tetrahedron":
        raise ConfigError(f"{key}kgrid.refine", cfg["kgrid"]["refine"], "no refinement with `integration: "
                          "tetrahedron` (tetrahedra need the uniform grid; they converge at low T without it)")
    if np.any(temperature == 0) and cfg.get("integration") != "tetrahedron":
        raise ConfigError(f"{key}temperature", cfg["temperature"],
                          "temperatures > 0, or `integration: tetrahedron` for T = 0 (point sampling of the Fermi "
                          "surface has no T = 0 limit)")
    from qgtflow import wedge

    operations = None
    if cfg.get("symmetry") is not None:  # the crystal and its point group, checked on the model before any compute
        from qgtflow.models.symmetry import TENSOR_KINDS, classified, declared_group, declares, study_operations

        operations = study_operations(model, cfg["symmetry"], f"{key}symmetry")
        _same_moments(model, cfg["symmetry"], key)
        checked, generators, window = operations, None, None
        if declares(cfg["symmetry"]):  # a 2D model's declared 3D lifts act on its spin operator as declared
            generators = cfg["symmetry"]["generators"]
            if model.dim == 2:
                checked = declared_group(model, cfg["symmetry"], f"{key}symmetry")
            if not model.periodic:
                window = _declared_window(cfg, model, operations, key)
        lifted = model.dim == 2 and checked is not operations and getattr(model, "spin", None) is not None
        spin = getattr(model, "spin", None) is not None and any(
            TENSOR_KINDS[r].spin and classified(r, model.dim, lifted=lifted)
            for r in cfg["responses"] if r in TENSOR_KINDS)  # their zeros trust the spin operator (if it has one)
        wedge.check_operations(model, checked, f"{key}symmetry", cfg["symmetry"]["tolerance"], spin, window,
                               generators)
    from qgtflow.reduce import kinds

    kinds.validate(cfg, model, units, key, _as_array)  # every response's own checks (reduce/kinds.py)
    wedge.check_study(cfg, model, key, operations)  # kgrid.symmetry_reduce: what the symmetrised wedge sums honour
    tau_dependent = kinds.tau_dependent(cfg["responses"])
    if cfg.get("tau") is None:
        if units.natural and tau_dependent:
            raise ConfigError(f"{key}tau", None, f"a relaxation time in hbar/(model energy) for the τ-dependent "
                              f"responses {tau_dependent} (natural units have no default)")
        if not units.natural:  # the schema's physical-units default (natural units have none)
            cfg["tau"] = float(study_schema()["properties"]["tau"]["x-physical-default"])
    sizes = list(cfg["kgrid"]["sizes"])
    problem = gridsize.ordering_problem(sizes)
    if problem:
        raise ConfigError(f"{key}kgrid.sizes", sizes, problem)
    study = Study(name=name, config=cfg, model=model, units=units, where=key)
    check_operators(study)  # spin / position fields the model cannot give: refused before any job is planned
    for size in study.sizes:  # grid consistency (window vs periodic, sizes per axis) before any compute
        study.make_grid(size)
    from qgtflow import kpath

    kpath.resolve_path(cfg["bands"]["path"], model, bands_window(study), f"{key}bands.path")
    return study
