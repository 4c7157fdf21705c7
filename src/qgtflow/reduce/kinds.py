"""Response kinds behind one protocol: what a response reads, how it is checked, its work and what it emits.

Every response the reduce stage can make is a :class:`Calculator` in :data:`CALCULATORS` (name → calculator),
of one of four kinds (the split of WannierBerri's static / dynamic calculators, one level up):

* ``binned``: a Fermi-sea / Fermi-surface integrand (``reduce/responses.py`` :class:`Response`), accumulated in the
  energy-moment histograms of every chunk and contracted at each (μ, T);
* ``pair_sum``: summed straight over k and band pairs per chunk by a shared :class:`PairAccumulator`
  (``reduce/transitions.py``), then labelled;
* ``model``: evaluated from the model's Fermi shells on the study's grid, which the ``shells`` stage stores
  (``shells.zarr``; reduce builds no model), after the pass over the geometry store;
* ``derived``: assembled from the other responses of the same store (004's thin-film observables).

Stages and validators ask a calculator (``fields``, ``validate``, ``histogram_components``, the kind's work);
none of them branches on a response's name. A new response is one :func:`register` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import xarray as xr

from qgtflow.errors import ConfigError
from qgtflow.reduce.responses import (COMPLEX_PARTS, DIRECT_RESPONSES, RESPONSES, THIN_FILM, DirectResponse,
                                      Response)

KINDS = ("binned", "pair_sum", "model", "derived")
# omega support: "none" (no frequency form), "dc_ok" (ω >= 0, ω = 0 the DC limit), "ac" (ω > 0 only)
OMEGA_SUPPORT = ("none", "dc_ok", "ac")


class Calculator(Protocol):
    name: str
    kind: str  # one of KINDS
    omega: str  # one of OMEGA_SUPPORT
    needs: tuple[str, ...]  # study keys that must be given (e.g. omega, broadening)
    tau_dependent: bool

    def fields(self, form: str, omega) -> set[str]:
        """Geometry fields it reads in ``form`` at photon energies ``omega`` (None: static)."""

    def validate(self, cfg: dict, model, units, key: str, as_array: Callable) -> None:
        """Refuse (ConfigError) a study it cannot be computed for, before any compute (``as_array(spec, key)``:
        the study's array parser)."""

    def histogram_components(self, study, dim: int) -> int:
        """Components it adds to the reduce stage's moment histograms (0: made another way)."""


# ---- binned: Fermi sea / Fermi surface through the energy histograms --------------------------------------------

@dataclass(frozen=True)
class Binned:
    response: Response
    kind: str = "binned"
    needs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.response.name

    @property
    def omega(self) -> str:
        if self.response.omega_factor is not None or self.response.omega_scale is not None:
            return "dc_ok"
        return "ac" if self.response.ac_forms is not None else "none"

    @property
    def needs_omega(self) -> bool:  # 004's responses have no static form without ωτ
        return self.response.omega_factor is not None

    @property
    def tau_dependent(self) -> bool:
        return bool(self.response.tau_power)

    def resolved(self, omega=None, eta: float = 0.0) -> Response:
        return self.response.at_frequencies(omega, eta)

    def fields(self, form, omega):
        return {f for part in self.resolved(omega).term_parts(form)[1] for f in part.fields}

    def terms(self, form, omega=None, eta: float = 0.0):
        """(form, Term) pairs of its integrand blocks, in histogram order."""
        f, parts = self.resolved(omega, eta).term_parts(form)
        return [(f, part) for part in parts]

    def validate(self, cfg, model, units, key, as_array):
        if self.needs_omega and cfg.get("omega") is None:
            raise ConfigError(f"{key}omega", None, f"photon energies hbar*omega (model energy units) for the "
                              f"frequency-dependent response {self.name}")

    def histogram_components(self, study, dim):
        resp = study.response(self.name)
        comp = resp.component_coords(dim)
        return math.prod(len(v) for _, v in resp.extra_dims) * math.prod(len(comp[d]) for d in resp.cart_dims)


# ---- pair sums: straight over k and band pairs, per chunk -----------------------------------------------------------

class PairAccumulator(Protocol):
    """Per-chunk work shared by the pair-sum responses that read the same sums (one pass for all of them)."""

    key: str

    def check_model(self, model, key: str, names: list) -> None: ...

    def prepare(self, ctx: dict) -> dict:
        """Picklable parameters shipped to the workers from ``ctx`` (mu, kT, omega, eta, band_weight,
        band_sector, dim)."""

    def start(self, params: dict): ...

    def add(self, state, fields: dict, weight: np.ndarray, params: dict) -> None: ...

    def merge(self, a, b): ...

    # optional, with ``tetrahedron = True``: add_simplices(state, fields, params, grid, start, stop, vertex_index) for
    # ``integration: tetrahedron`` (the cells whose base vertex is in [start, stop)); without it that study is refused


@dataclass(frozen=True)
class PairSum:
    spec: DirectResponse  # name, texts, fields read, minimum dimension
    accumulator: PairAccumulator
    # (study, state, params, sectors) -> (dims, values (sector first when resolved), units)
    emit: Callable
    kind: str = "pair_sum"
    omega: str = "ac"
    needs: tuple[str, ...] = ("omega", "broadening")
    tau_dependent: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    def fields(self, form, omega):
        return set(self.spec.fields)

    def validate(self, cfg, model, units, key, as_array):
        if cfg.get("integration") == "tetrahedron" and not getattr(self.accumulator, "tetrahedron", False):
            raise ConfigError(f"{key}integration", "tetrahedron", f"points for {self.name} (its Lorentzian pair sum "
                              "samples k-points; compute it in a study of its own)")
        if model.dim < self.spec.min_dim:
            raise ConfigError(f"{key}responses", self.name, f"a {self.spec.min_dim}D model (this model is "
                              f"{model.dim}D)")
        self.accumulator.check_model(model, key, [self.name])

    def histogram_components(self, study, dim):
        return 0

    def variable(self, study, state, params, sectors) -> xr.Variable:
        dims, values, units = self.emit(study, state, params, sectors)
        if sectors:
            dims = ("sector",) + tuple(dims)
        else:
            values = values[0]
        spec = self.spec
        return xr.Variable(dims, values, {"units": units, "long_name": spec.long_name, "formula": spec.formula,
                                          "form": "interband pair sum",
                                          **({"broadening": params["eta"]} if "eta" in params else {}),
                                          **({"time_convention": spec.time_convention}
                                             if spec.time_convention else {})})


class TwoBandTransitions:
    """002's interband sums over the two-band sectors: (Δn bracket complex, ⟨G⟩ average real), (P, ω, μ, T) each.

    Point sampling (T > 0): the pair-sum kernel ``ndd_accumulate``. ``integration: tetrahedron`` (T >= 0): the same
    sums as Fermi-sea + Fermi-surface integrals of per-vertex integrands (``ndd_vertex_integrands``) in linear-
    tetrahedron moment histograms, read out exactly at T = 0 (step occupations, δ-weights on the Fermi surface)."""

    key = "two_band_transitions"
    tetrahedron = True  # has add_simplices

    def check_model(self, model, key, names):
        from qgtflow.reduce.transitions import two_band_pairs

        try:
            two_band_pairs(model.band_sector)
        except ValueError as exc:
            raise ConfigError(f"{key}model", getattr(model, "name", None), f"two-band sectors for {names} ({exc})") \
                from None

    def prepare(self, ctx):
        from qgtflow.reduce.transitions import two_band_pairs

        return {"mu": np.asarray(ctx["mu"], float), "kT": np.asarray(ctx["kT"], float),
                "omega": np.asarray(ctx["omega"], float), "eta": float(ctx["eta"]),
                "pairs": two_band_pairs(ctx["band_sector"]), "band_weight": np.asarray(ctx["band_weight"], float),
                "dim": ctx["dim"], "bins": ctx.get("bins") if ctx.get("tetrahedron") else None}

    def start(self, params):
        shape = (len(params["pairs"]), len(params["omega"]), len(params["mu"]), len(params["kT"]))
        if params["bins"] is not None:  # tetrahedron: moment histograms of the per-vertex integrands
            from qgtflow.reduce.transitions import N_PARTS

            return params["bins"].empty(shape[0] * shape[1] * N_PARTS)
        return np.zeros(shape, complex), np.zeros(shape)

    def add(self, state, fields, weight, params):
        from qgtflow.reduce.transitions import ndd_accumulate

        ndd_accumulate(np.ascontiguousarray(fields["energy"]), np.ascontiguousarray(fields["velocity"]),
                       np.ascontiguousarray(fields["quantum_metric"]), weight, params["band_weight"],
                       params["pairs"], params["mu"], params["kT"], params["omega"], params["eta"], *state)

    def add_simplices(self, state, fields, params, grid, start, stop, vertex_index):
        """Tetrahedron integration: the cells whose base vertex is in [start, stop) (``fields`` at ``vertex_index``)."""
        from qgtflow.reduce.simplex_moments import accumulate_simplex_moments
        from qgtflow.reduce.transitions import ndd_vertex_integrands

        Q = ndd_vertex_integrands(fields["energy"], fields["velocity"], fields["quantum_metric"],
                                  params["band_weight"], params["pairs"], params["omega"], params["eta"])
        bins = params["bins"]
        accumulate_simplex_moments(grid, start, stop, vertex_index, np.ascontiguousarray(fields["energy"]), Q,
                                   bins.lo, bins.width, *state)

    def merge(self, a, b):
        return a[0] + b[0], a[1] + b[1]

    def values(self, state, params):
        """(bracket complex, ⟨G⟩ real), (P, ω, μ, T) each, from either kind of state."""
        if params["bins"] is None:
            return state
        from qgtflow.reduce.simplex_moments import read_out
        from qgtflow.reduce.transitions import ndd_from_histograms

        sea, surface = (read_out(params["bins"], *state, params["mu"], params["kT"], order) for order in (0, 1))
        return ndd_from_histograms(sea, surface, len(params["pairs"]), len(params["omega"]))


def _summed(raw, sectors):
    return raw if sectors else raw.sum(axis=0, keepdims=True)


def _emit_delta_n(study, state, params, sectors):
    """002 Eq. 12: −(e²cμ0/2ħ) × bracket; e²cμ0/ħ = 4πα (dimensionless). Natural units: −½ × bracket."""
    from qgtflow.units import C_LIGHT, E_CHARGE, HBAR, MU_0, NATURAL_LENGTH, format_si_units

    d = params["dim"]
    if study.units.natural:  # e²cμ0/ħ = 4πα kept as a unit: natural_units's SI factor of it is 4πα
        scale, units = -0.5, format_si_units({"e": 2, "c": 1, "mu_0": 1, "hbar": -1, NATURAL_LENGTH: 3 - d})
    else:
        scale = -E_CHARGE ** 2 * C_LIGHT * MU_0 / (2 * HBAR) * study.units.length_si ** -(d - 3)
        units = format_si_units({"m": 3 - d})
    values = _summed(_transitions_values(state, params)[0], sectors)
    return ("complex_part", "omega", "mu", "T"), scale * np.stack([values.real, values.imag], axis=1), units


def _emit_qmd_average(study, state, params, sectors):
    """⟨G⟩ average: energy² (model units; eV² in physical units)."""
    units = study.units.model_units(2, 0)
    return ("omega", "mu", "T"), _summed(_transitions_values(state, params)[1], sectors), units


def _transitions_values(state, params):
    return TwoBandTransitions().values(state, params)


# ---- model-evaluated and derived --------------------------------------------------------------------------------------

def _no_check(cfg, model, units, key, as_array) -> None:
    return None


@dataclass(frozen=True)
class _AfterPass:
    """A response made after the pass over the geometry store (no geometry fields, no histogram components)."""

    name: str
    compute: Callable
    check: Callable = _no_check  # (cfg, model, units, key, as_array) -> None, raises ConfigError
    omega: str = "none"
    needs: tuple[str, ...] = ()
    tau_dependent: bool = False

    def fields(self, form, omega):
        return set()

    def validate(self, cfg, model, units, key, as_array):
        self.check(cfg, model, units, key, as_array)

    def histogram_components(self, study, dim):
        return 0


@dataclass(frozen=True)
class ModelEvaluated(_AfterPass):
    """Made from the shells store (the model's Fermi shells on the study's grid, stage ``shells``):
    compute(study, shells: xr.Dataset) -> xr.Variable; ``shells``: the products of that store it reads."""

    kind: str = "model"
    shells: tuple[str, ...] = ()


# products of the shells stage (stages/shells_stage.py) that model-evaluated responses read:
# {product: make(study, grid) -> {variable: xr.Variable}} — the model on the study's grid, evaluated once, forward
SHELL_PRODUCTS: dict[str, Callable] = {}
# {product: name of the shells plan value (qgtflow.plan) its maker also receives: make(study, grid, value)}
SHELL_PRODUCT_PLAN_VALUES: dict[str, str] = {}


def register_shell_product(name: str, make: Callable, plan_value: str | None = None) -> None:
    SHELL_PRODUCTS[name] = make
    if plan_value is not None:
        SHELL_PRODUCT_PLAN_VALUES[name] = plan_value


@dataclass(frozen=True)
class Derived(_AfterPass):
    """Assembled from the other responses of the store: compute(study, ds, names) -> {name: xr.Variable} for the
    requested ``names`` sharing this compute (one call for all of them)."""

    kind: str = "derived"


# ---- registry ---------------------------------------------------------------------------------------------------

CALCULATORS: dict[str, Calculator] = {}


def register(calc: Calculator) -> Calculator:
    if calc.kind not in KINDS or calc.omega not in OMEGA_SUPPORT:
        raise ValueError(f"response {calc.name}: kind {calc.kind!r} / omega {calc.omega!r} not in {KINDS} / "
                         f"{OMEGA_SUPPORT}")
    CALCULATORS[calc.name] = calc
    return calc


def unregister(name: str) -> None:
    CALCULATORS.pop(name, None)


def get(name: str) -> Calculator:
    return CALCULATORS[name]


def of_kind(names, kind: str) -> list:
    """The calculators of ``names`` of one kind, in request order (unknown names skipped)."""
    return [CALCULATORS[n] for n in names if n in CALCULATORS and CALCULATORS[n].kind == kind]


def required_fields(responses, form: str, omega=None) -> list[str]:
    """Geometry fields the requested responses read in ``form`` (plus energy); ``omega``: the study's photon
    energies (frequency-dependent forms read other fields)."""
    names = {"energy"}
    for r in responses:
        names |= CALCULATORS[r].fields(form, omega)
    return sorted(names)


def accumulators(names) -> dict:
    """{accumulator key: (accumulator, [pair-sum calculators])} of the requested pair sums."""
    out: dict = {}
    for calc in of_kind(names, "pair_sum"):
        out.setdefault(calc.accumulator.key, (calc.accumulator, []))[1].append(calc)
    return out


def pair_sum_variables(study, states: dict, params: dict, sectors) -> dict:
    """{name: variable} of the requested pair sums from the accumulated ``states`` (by accumulator key)."""
    return {calc.name: calc.variable(study, states[key], params[key], sectors)
            for key, (_, calcs) in accumulators(study.responses).items() for calc in calcs}


def coords_for(variables: dict, study) -> dict:
    """Coordinates of the non-Cartesian-histogram dims of the variables made outside the histograms."""
    from qgtflow.reduce import dispersive_kubo
    from qgtflow.reduce.electro_optics import extra_coords

    coords = extra_coords(variables, study)
    dims = {d for v in variables.values() for d in v.dims}
    coords.update(dispersive_kubo.extra_coords(dims))
    if "complex_part" in dims:
        coords["complex_part"] = ("complex_part", COMPLEX_PARTS)
    if "omega" in dims:
        energy_unit = study.units.energy_unit
        coords["omega"] = ("omega", list(np.asarray(study.omega, float)),
                           {"long_name": "photon energy ħω", "units": energy_unit})
    return coords


def validate(cfg: dict, model, units, key: str, as_array: Callable) -> None:
    """Every check of the requested responses against a study, in one place (ConfigError before any compute);
    ``as_array(spec, key)``: the study's parser of array specs."""
    names = list(cfg["responses"])
    known = list(CALCULATORS)
    for r in names:
        if r not in CALCULATORS:
            raise ConfigError(f"{key}responses", r, f"one of {known}")
    calcs = [CALCULATORS[r] for r in names]
    for calc in calcs:
        calc.validate(cfg, model, units, key, as_array)
    for needed in dict.fromkeys(k for c in calcs for k in c.needs):
        if cfg.get(needed) is None:
            users = [c.name for c in calcs if needed in c.needs]
            raise ConfigError(f"{key}{needed}", None, f"a value for the frequency-dependent responses {users}")
    if cfg.get("omega") is not None:
        _check_omega(cfg, key, calcs, as_array)


def _check_omega(cfg: dict, key: str, calcs: list, as_array: Callable) -> None:
    """omega only for responses with a frequency form; ω = 0 (the DC limit) only where one exists (004's, the
    IFE's)."""
    with_form = sorted(n for n, c in CALCULATORS.items() if c.omega != "none")
    if not any(c.omega != "none" for c in calcs):
        raise ConfigError(f"{key}omega", cfg["omega"], f"no omega: none of the requested responses has a frequency "
                          f"form (those that have one: {with_form})")
    omega = as_array(cfg["omega"], f"{key}omega")
    no_dc = [c.name for c in calcs if c.omega == "ac"]
    dc_ok = sorted(n for n, c in CALCULATORS.items() if c.omega == "dc_ok")
    if no_dc and np.any(omega <= 0):
        raise ConfigError(f"{key}omega", cfg["omega"], f"photon energies > 0 for {no_dc} (ω = 0 only for the "
                          f"responses whose DC limit ωτ = 0 exists: {dc_ok})")
    if np.any(omega < 0):
        raise ConfigError(f"{key}omega", cfg["omega"], "photon energies >= 0 (0: the DC limit)")


def tau_dependent(names) -> list[str]:
    return [n for n in names if CALCULATORS[n].tau_dependent]


def _register_builtin() -> None:
    from qgtflow.reduce import electro_optics as eo

    for resp in RESPONSES.values():
        register(Binned(resp))
    transitions = TwoBandTransitions()
    emit = {"ndd_delta_n": _emit_delta_n, "ndd_qmd_average": _emit_qmd_average}
    for name, spec in DIRECT_RESPONSES.items():
        register(PairSum(spec, transitions, emit[name]))
    register_shell_product("skew", eo.skew_shell_product)
    register_shell_product("born_tau", eo.born_shell_product)
    register(ModelEvaluated("pockels_skew", eo.pockels_skew, eo.check_pockels_skew, omega="dc_ok",
                            shells=("skew", "born_tau")))
    for name in THIN_FILM:
        register(Derived(name, eo.thin_film_variables, eo.check_thin_film, omega="dc_ok"))
    from qgtflow.reduce import dispersive_kubo as kubo

    register_shell_product("kubo_nonlocal", kubo.shell_product, plan_value="kubo_inputs")
    for name in kubo.RESPONSES:
        register(ModelEvaluated(name, getattr(kubo, name), kubo.check, needs=("omega", "broadening"), omega="ac",
                                shells=("kubo_nonlocal",)))
    from qgtflow.reduce import ndd_alpha

    register_shell_product("alpha_sea", ndd_alpha.shell_product)
    register(ModelEvaluated(ndd_alpha.NAME, ndd_alpha.ndd_alpha_sea, ndd_alpha.check, shells=("alpha_sea",)))


_register_builtin()
