"""Build the model a study's ``model`` mapping describes (schema: ``schemas/study.schema.yaml``).

Exactly one source per model:
  * a built-in ``name`` (+ ``params``),
  * ``hamiltonian`` (symbolic k·p or periodic H(k); see ``symbolic.py``), optionally with ``sectors``,
  * ``tight_binding`` (hoppings written in the file),
  * ``wannier90`` (``seedname_hr.dat`` / ``seedname_tb.dat`` [+ ``_wsvec.dat``]).
Common keys: ``spin`` (three matrices), ``degeneracy`` (multiplicity of every band, e.g. g_s = 2).
Every refusal names the offending key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.builtin import build_model
from qgtflow.models.sectors import SectorModel
from qgtflow.models.symbolic import SymbolicModel, spin_operator
from qgtflow.models.tight_binding import TightBindingModel

SOURCES = ("hamiltonian", "tight_binding", "wannier90")


def model_from_config(cfg: dict, units=None, where: str = "model", base_dir: str | Path | None = None,
                      validate: bool = True):
    """The validated :class:`~qgtflow.models.base.Model` of a ``model`` mapping; errors name ``where``.
    ``validate=False`` skips :meth:`~qgtflow.models.base.Model.validate` (H and its derivatives at random k): for a
    workflow job whose model the plan validated and whose hash the job checks (:func:`qgtflow.plan.stage_study`)."""
    try:
        return _build(dict(cfg), units, where, base_dir, validate)
    except ModelError as exc:
        if str(exc).startswith(where):
            raise
        raise ModelError(f"{where}: {exc}") from None


def _build(cfg, units, where, base_dir, validate=True):
    name = cfg.get("name", "model")
    given = [s for s in SOURCES if s in cfg]
    if len(given) > 1:
        raise ModelError(f"{where}: give one of {list(SOURCES)} (or a built-in name), not {given}")
    if not given:
        extra = sorted(set(cfg) - {"name", "params"})
        if extra:
            raise ModelError(f"{where}: keys {extra} apply to user-defined models; built-in '{name}' takes "
                             "only name and params")
        return build_model(name, cfg.get("params", {}), validate=validate)
    source = given[0]
    if source == "hamiltonian":
        model = _symbolic(cfg, name, where)
    elif source == "tight_binding":
        model = _tight_binding(cfg[source], name, cfg.get("params", {}), f"{where}.tight_binding")
    else:
        model = _wannier(cfg[source], name, units, f"{where}.wannier90", base_dir)
    if "spin" in cfg and source == "wannier90" and "spn" in cfg[source]:
        raise ModelError(f"{where}.spin: given together with {where}.wannier90.spn; expected one spin operator")
    if "spin" in cfg and source != "hamiltonian":
        model.spin = spin_operator(cfg["spin"], model.nbands, f"{where}.spin")
    if cfg.get("degeneracy", 1) != 1:
        model = SectorModel(name, [(name, model)], weights=[float(cfg["degeneracy"])])
    if not validate:
        return model
    try:
        model.validate()
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    return model


def _symbolic(cfg, name, where):
    params = dict(cfg.get("params", {}))
    common = dict(dim=cfg.get("dim"), lattice=cfg.get("lattice"), kmax=cfg.get("kmax"), spin=cfg.get("spin"),
                  param_units=cfg.get("param_units"), where=f"{where}.hamiltonian")
    sectors = cfg.get("sectors")
    if not sectors:
        return SymbolicModel(name, cfg["hamiltonian"], params, **common)
    per_sector = sectors.get("params", {})
    counts = {k: len(v) for k, v in per_sector.items()}
    if not per_sector or len(set(counts.values())) != 1:
        raise ModelError(f"{where}.sectors.params: {counts}; expected one or more parameters with the same "
                         "number of values (one per sector)")
    n = next(iter(counts.values()))
    clash = sorted(set(per_sector) & set(params))
    if clash:
        raise ModelError(f"{where}.sectors.params: {clash} also set in {where}.params; a sector parameter "
                         "takes its values from the sector list only")
    labels = [str(x) for x in sectors.get("labels", [])] or [
        ",".join(f"{k}={v[i]}" for k, v in per_sector.items()) for i in range(n)]
    if len(labels) != n:
        raise ModelError(f"{where}.sectors.labels: {len(labels)} labels for {n} sectors")
    weights = sectors.get("weights")
    if weights is not None and len(weights) != n:
        raise ModelError(f"{where}.sectors.weights: {len(weights)} weights for {n} sectors")
    models = [(lbl, SymbolicModel(f"{name}[{lbl}]", cfg["hamiltonian"],
                                  {**params, **{k: v[i] for k, v in per_sector.items()}}, **common))
              for i, lbl in enumerate(labels)]
    return SectorModel(name, models, weights=weights, params=params)


def _tight_binding(tb, name, params, where):
    for key in ("lattice", "hoppings"):
        if key not in tb:
            raise ModelError(f"{where}: missing '{key}'")
    lattice = np.asarray(tb["lattice"], float)
    dim = lattice.shape[0] if lattice.ndim == 2 else 0
    positions = tb.get("positions", [[0.0] * dim])
    nb = len(positions)
    hops = []
    for h, hop in enumerate(tb["hoppings"]):
        try:
            R, i, j, t = hop
            t = complex(*t) if isinstance(t, (list, tuple)) else complex(t)
            R = tuple(int(r) for r in R)
            i, j = int(i), int(j)
        except (TypeError, ValueError):
            raise ModelError(f"{where}.hoppings[{h}]: {hop!r}; expected [[R1, ..., Rd], i, j, t] with t a number "
                             "or [re, im]") from None
        if len(R) != dim:
            raise ModelError(f"{where}.hoppings[{h}]: R = {list(R)} has {len(R)} components; the lattice is {dim}D")
        hops.append((R, i, j, t))
        if tb.get("complete", True) and (any(R) or i != j):
            hops.append((tuple(-r for r in R), j, i, np.conj(t)))
    return TightBindingModel(name, lattice, positions, hops, onsite=tb.get("onsite", [0.0] * nb),
                             params=dict(params), convention=tb.get("convention", "II"))


def _wannier(w, name, units, where, base_dir):
    from qgtflow.models import wannier

    base = Path(base_dir) if base_dir else Path.cwd()
    files = {k: _model_file(base, w[k]) if k in w else None for k in ("hr", "tb", "wsvec", "spn", "chk")}
    if files["spn"] is not None and files["chk"] is None:
        files["chk"] = files["spn"].with_suffix(".chk")
    if (files["hr"] is None) == (files["tb"] is None):
        raise ModelError(f"{where}: give exactly one of 'hr' (seedname_hr.dat) or 'tb' (seedname_tb.dat)")
    natural = units is None or units.natural
    opts = dict(wsvec=files["wsvec"] if files["wsvec"] is not None else None, convention=w.get("convention"),
                positions=w.get("positions"), lattice=w.get("lattice"), dim=w.get("dim"),
                ws_distance_tol=w.get("ws_distance_tol"), symmetrize=w.get("symmetrize"),
                length_unit="angstrom" if natural else units.length, energy_unit="eV" if natural else units.energy)
    if files["hr"] is not None:
        model = wannier.read_hr(files["hr"], **opts)
    else:
        model = wannier.read_tb(files["tb"], position_operator=w.get("position_operator", True), **opts)
    model.name = name
    model.atoms = _win_atoms(files["hr"] or files["tb"], "_hr.dat" if files["hr"] is not None else "_tb.dat", model,
                             opts["length_unit"])
    if files["spn"] is not None:
        from qgtflow.models.w90spin import wannier_spin

        model.spin, left = wannier_spin(files["spn"], files["chk"], model.nbands,
                                        w.get("spn_tolerance", float("inf")))
        model.convention = (f"{model.convention}; spin operator: S(R = 0) of {files['spn'].name} in the Wannier gauge "
                            f"of {files['chk'].name} on each centre (largest element left out {left:.3g})")
    model.params = {**model.params, "files": {k: _checksum(p) for k, p in files.items() if p is not None}}
    return model


def with_symmetrize_default(model_cfg: dict, symmetry: dict | None, base_dir=None) -> dict:
    """The study's ``model`` mapping with ``wannier90.symmetrize`` set when the study declares its crystal
    (``symmetry``) and the Wannier90 file's ``.win`` has a ``begin projections`` block of supported kinds: the crystal's
    symmetry is asserted and the orbitals' transformation known, so the model is averaged over the study's group (its
    atoms and magnetic moments; ``symmetrize: false`` keeps the file as it is). Projection lines by species or by
    site (f=…, c=…) on one of the atoms count. Unchanged otherwise: no symmetry block or declared generators, the
    key given, a layer (``dim``), no .win or projections, or kinds, options or sites models/symmetrize.py does not
    treat (a site on no atom, random centres; logged)."""
    import logging

    from qgtflow.models import symmetrize, wannier

    w = model_cfg.get("wannier90")
    if (symmetry is None or symmetry.get("generators") is not None or not isinstance(w, dict) or "symmetrize" in w
            or w.get("dim") not in (None, 3)):  # declared generators are not a crystal to average over
        return model_cfg
    kind = "tb" if w.get("tb") else "hr"
    if not isinstance(w.get(kind), str):
        return model_cfg
    seed = wannier._seed(_model_file(Path(base_dir) if base_dir else Path.cwd(), w[kind]), f"_{kind}.dat")
    win = seed.with_name(seed.name + ".win")
    if not win.is_file():
        return model_cfg
    lines, _ = symmetrize.read_win_projections(win)
    if not lines:
        return model_cfg
    try:
        parsed = symmetrize.parse_projections(lines)
        atoms = symmetry.get("atoms") or wannier.read_win_atoms(win) or []
        cart = any(site.lower().startswith("c=") for site, _ in parsed)
        lattice = wannier.read_win_lattice(win) if cart else None  # c= sites: Å (or bohr), in the .win's cell
        unit = symmetrize.projection_unit(lines)[0]
        for site, _ in parsed:  # every line's site a species of the atoms or a site on one of them
            symmetrize.site_atoms(site, atoms, lattice, unit)
    except ModelError as exc:
        logging.getLogger(__name__).warning("model.wannier90: %s's projections are not symmetrised (%s); the file is "
                                            "used as it is", win.name, exc)
        return model_cfg
    spec = {k: symmetry[k] for k in ("atoms", "magnetic_moments") if symmetry.get(k) is not None}
    return {**model_cfg, "wannier90": {**w, "symmetrize": spec or True}}


SHIPPED = "qgtflow:"  # prefix of a model file shipped with qgtflow (the package's data directory)


def _model_file(base: Path, name: str) -> Path:
    """A model file's path: relative to ``base``, or ``qgtflow:<file>`` for one shipped in qgtflow/data."""
    if name.startswith(SHIPPED):
        from importlib.resources import files

        return Path(str(files("qgtflow") / "data" / name[len(SHIPPED):]))
    return base / name


def _win_atoms(path: Path, suffix: str, model, length_unit: str):
    """The crystal of ``seedname.win`` beside a Wannier90 file ([[species, f1, f2, f3], ...]; None without it), for
    the study's point group (models/symmetry.py)."""
    from qgtflow.models import wannier

    seed = wannier._seed(Path(path), suffix)
    win = seed.with_name(seed.name + ".win")
    if not win.is_file():
        return None
    lattice = None
    if model.dim == 3:
        lattice = np.asarray(model.lattice, float) * wannier._length_factor(length_unit) / wannier._ANGSTROM
    return wannier.read_win_atoms(win, lattice)


def _checksum(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from None
