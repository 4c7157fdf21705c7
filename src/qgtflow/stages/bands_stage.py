"""Stage ``bands``: band energies and band-resolved geometry along a k-path and on a k-plane, from the model.

Store schema (``bands.zarr``, one per study), every variable with units, long_name and formula attrs:

- along the path (dim ``kpath``): ``energy`` (kpath, band) and the fields the plan derives
  (:func:`qgtflow.study.bands_fields`: ``bands.fields`` plus what the responses read, e.g.
  ``berry_curvature`` (kpath, band, i, j), ``quantum_metric``, ``quantum_metric_dipole_lambda``
  (kpath, band, i, j, k)); coords ``kvec`` (kpath, axis), ``k_distance`` (kpath), and per corner of the
  path (dim ``tick``) ``tick_label`` and ``tick_distance``;
- on the plane (dims ``ku``, ``kv``; :func:`qgtflow.kpath.plane_points`): ``kmap_energy`` and
  ``kmap_<field>`` of the derived k-map fields; coords ``kmap_kx``, ``kmap_ky`` (ku, kv).

Fields come from :func:`qgtflow.geometry.fields.compute_fields` (the geometry stage's kernel) at those k;
Λ from :mod:`qgtflow.geometry.qmd`. No grid and no other store is read.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from qgtflow import io, kpath
from qgtflow.geometry import qmd
from qgtflow.geometry.fields import CORE_FIELDS, FIELD_SPECS, OPTIONAL_FIELDS, FieldSpec, compute_fields, field_units
from qgtflow.guards import require_finite_fields
from qgtflow.kgrid import AXES

log = logging.getLogger(__name__)

CART = ("i", "j", "k", "l")
LAMBDA_SPEC = FieldSpec(qmd.NAME, ("band", "i", "j", "k"), qmd.ENERGY_POWER, qmd.LENGTH_POWER, qmd.LONG_NAME,
                        qmd.FORMULA)


def spec(name: str) -> FieldSpec:
    return LAMBDA_SPEC if name == qmd.NAME else FIELD_SPECS[name]


def band_fields(model, k: np.ndarray, names, threshold: float) -> dict[str, np.ndarray]:
    """{name: (N, band, …)} of ``energy`` and ``names`` at ``k`` (Λ from the velocity and 𝒢)."""
    kernel = {"energy"} | set(names) | (set(qmd.NEEDS) if qmd.NAME in names else set())
    core = tuple(f for f in CORE_FIELDS if f in kernel)
    optional = tuple(f for f in OPTIONAL_FIELDS if f in kernel)
    fields = compute_fields(model, k, threshold, optional=optional, core=core)
    require_finite_fields(model, k, fields)
    if qmd.NAME in names:
        fields[qmd.NAME] = qmd.quantum_metric_dipole_lambda(fields["velocity"], fields["bcp"])
    return {name: fields[name] for name in ["energy", *names]}


def _variable(name, values, lead_dims, units) -> xr.Variable:
    s = spec(name)
    return xr.Variable(lead_dims + s.dims, values, {"long_name": s.long_name, "units": field_units(s, units),
                                                    "formula": s.formula})


def compute(study, fields: dict, window) -> xr.Dataset:
    """The bands dataset of ``study`` (module doc) for the derived ``fields`` {"path": [...], "kmap": [...]}."""
    model, cfg = study.model, study.config["bands"]
    threshold = study.degeneracy_threshold
    length = "model length" if study.units.natural else study.units.length
    kunit = f"{length}^-1"
    corners = kpath.resolve_path(cfg["path"], model, window, f"{study.where}bands.path")
    k, distance, ticks, labels = kpath.sample_path(corners, int(cfg["points"]))
    data = {name: _variable(name, v, ("kpath",), study.units)
            for name, v in band_fields(model, k, fields["path"], threshold).items()}
    n = int(cfg["kmap"]["points"])
    kmap, kx, ky = kpath.plane_points(model, n, window)
    for name, v in band_fields(model, kmap, fields["kmap"], threshold).items():
        var = _variable(name, v.reshape((n, n) + v.shape[1:]), ("ku", "kv"), study.units)
        var.attrs["long_name"] += " on the k-map plane"
        data[f"kmap_{name}"] = var
    nb, dim = model.nbands, model.dim
    plane = ("reciprocal cell u b1 + v b2, u, v in [-1/2, 1/2]" if model.periodic else
             "k·p window [-kmax_x, kmax_x] x [-kmax_y, kmax_y]" + (", kz = 0" if dim == 3 else ""))
    coords = {
        "band": ("band", np.arange(nb)),
        "band_sector": ("band", model.band_sector.astype(str), {"long_name": "sector (valley / block) of the band"}),
        "axis": list(AXES[:dim]), **{c: list(AXES[:dim]) for c in CART},
        "kvec": (("kpath", "axis"), k, {"long_name": "crystal momentum along the path", "units": kunit}),
        "k_distance": ("kpath", distance, {"long_name": "distance along the path", "units": kunit}),
        "tick_distance": ("tick", ticks, {"long_name": "distance of the path's corners", "units": kunit}),
        "tick_label": ("tick", np.array(labels, dtype=str), {"long_name": "label of the path's corner"}),
        "kmap_kx": (("ku", "kv"), kx, {"long_name": f"k_x on the k-map plane ({plane})", "units": kunit}),
        "kmap_ky": (("ku", "kv"), ky, {"long_name": f"k_y on the k-map plane ({plane})", "units": kunit}),
    }
    return xr.Dataset(data, coords=coords)


def run(study, out: str, job: dict | None = None) -> xr.Dataset:
    """Write the bands store of ``study`` to ``out`` (checksummed, flagged complete when written).

    ``job``: the job's inputs from the plan (:func:`qgtflow.plan.bands_job`: derived fields and window,
    fingerprint); default: derived from ``study`` (a fully validated study)."""
    if job is None:
        from qgtflow.plan import bands_job

        job = bands_job(study)
    ds = compute(study, job["fields"], job["window"])
    ds.attrs = io.provenance_attrs(study, "bands", {
        io.FINGERPRINT: job["fingerprint"], "degeneracy_threshold": study.degeneracy_threshold,
        "path": ", ".join(str(v) for v in ds["tick_label"].values),
        "field_convention": "velocity = dε/dk (ħ absorbed); *_dipole_density[..., a, b, c] = ∂_c F^ab; "
                            "degenerate groups averaged (band sums = group traces)"})
    io.write_dataset(ds, out)
    log.info("bands %s: %d path points, %d² map points, fields %s", study.name, ds.sizes["kpath"],
             ds.sizes["ku"], job["fields"])
    return ds
