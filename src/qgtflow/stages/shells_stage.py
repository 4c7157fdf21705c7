"""Stage ``shells``: what the model-evaluated responses need from the model's Fermi shells on the study's grid.

Runs only for a study that requests such a response (``pockels_skew``) or ``impurities.born_tau``
(:func:`qgtflow.plan.shell_products`), so the reduce stage never builds the model. It diagonalises the model at
the δ-shell k-points of the grid (:mod:`qgtflow.reduce.skew`) and stores the smallest forward data:

Store schema (``shells.zarr``): coords ``mu`` [model energy], ``T`` [K or model energy], ``i, j, k`` (x/y/z);
``skew_s1``, ``skew_s2`` (mu, T, i, j, k) — S^(1), S^(2) of 004 Eq. 6 in model units with ħ = 1
([energy]² [length]^(3−d)), only with the product ``skew``; ``born_transport_time`` () — 1/⟨1/τ_k⟩ of the
symmetric Born rate at the first μ and T (s, or ħ/energy in natural units); attrs: grid, impurities, products,
provenance, fingerprint.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from qgtflow import gridsize, io
from qgtflow.reduce.responses import AXES

log = logging.getLogger(__name__)

S_FORMULA = ("004 Eq. 6 with w^A of AMBIGUITIES 004.5 (third-order Born, δ-correlated impurities), energy-shell "
             "projector matrices with linear-triangle/tetrahedron δ weights (reduce/skew.py); ħ = 1")
BORN_FORMULA = "004 text under Eq. 4: 1/τ = 1/<1/τ_k>, 1/τ_k = Σ_k' w^S (1 − cos θ), w^S = 2π n_i V0² |<u|u'>|² δ"


def _s_units(study, dim: int) -> str:
    """[energy]² [length]^(3−d) in the study's model units."""
    if study.units.natural:
        return "model energy^2" + (f" model length^{3 - dim}" if dim != 3 else "")
    power = 3 - dim
    return f"{study.units.energy}2" + ("" if power == 0 else f" {study.units.length}" + ("" if power == 1 else f"{power}"))


def shells_dataset(study, grid, products) -> xr.Dataset:
    """The shells store's variables of ``study`` on ``grid`` (see the module docstring)."""
    from qgtflow.reduce import skew
    from qgtflow.units import HBAR

    imp = study.config["impurities"]
    kT = np.array([study.units.kT(t) for t in study.temperature])
    mu = np.asarray(study.mu, float)
    deg = study.degeneracy_threshold
    energy_unit = "model energy" if study.units.natural else study.units.energy
    coords = {"mu": ("mu", mu, {"long_name": "chemical potential", "units": energy_unit}),
              "T": ("T", study.temperature, {"long_name": "temperature",
                                              "units": "model energy" if study.units.natural else "K"})}
    data = {}
    if "skew" in products:
        out = skew.skew_tensors(study.model, grid, mu, kT, imp["density"], imp["potential"], deg_tol=deg)
        units = _s_units(study, grid.dim)
        for name, key, what in (("skew_s1", "S1", "S^(1)"), ("skew_s2", "S2", "S^(2)")):
            data[name] = xr.Variable(("mu", "T", "i", "j", "k"), np.asarray(out[key]), {
                "units": units, "long_name": f"skew-scattering tensor {what}_αβγ (model units, ħ = 1)",
                "formula": S_FORMULA})
        for d in ("i", "j", "k"):
            coords[d] = (d, list(AXES[:grid.dim]))
    born = skew.transport_time(study.model, grid, float(mu[0]), float(kT[0]), imp["density"], imp["potential"],
                               deg_tol=deg)
    born_tau = born["tau"] * (HBAR / study.units.energy_si if not study.units.natural else 1.0)
    data["born_transport_time"] = xr.Variable((), float(born_tau), {
        "units": "model energy^-1" if study.units.natural else "s",
        "long_name": "Born transport time 1/<1/tau_k> at the first mu and T", "formula": BORN_FORMULA})
    attrs = io.provenance_attrs(study, "shells", {**grid.attrs(), "products": list(products),
                                                  "impurity_density": imp["density"],
                                                  "impurity_potential": imp["potential"],
                                                  "degeneracy_threshold": deg})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def run(study, kgrid_store: str, out: str | None = None, job: dict | None = None) -> xr.Dataset:
    """Compute the shells store of ``study`` on the grid of ``kgrid_store`` (refused unless its fingerprint is
    the planned one); writes ``out`` when given. ``job``: the job's inputs from the plan (default: from ``study``)."""
    from qgtflow.plan import check_store, grid_chain, shell_products

    size = gridsize.from_axes(io.store_attrs(kgrid_store)["grid_sizes"])
    if job is None:
        job = grid_chain(study, size)["shells"]
    check_store(kgrid_store, job["upstream"]["kgrid"])
    products = job.get("products") or shell_products(study)
    grid = study.make_grid(size)  # the uniform grid of the store (a refined store's base grid)
    log.info("shells %s: %s on the %s grid (%d k-points)", study.name, products, list(grid.sizes), grid.n_points)
    ds = shells_dataset(study, grid, products)
    ds.attrs[io.FINGERPRINT] = job["fingerprint"]
    if out is not None:
        io.write_dataset(ds, out)
    return ds
