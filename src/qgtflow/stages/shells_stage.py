"""Stage ``shells``: what the model-evaluated responses need from the model's Fermi shells on the study's grid.

Runs only for a study that requests such a response (``pockels_skew``, 002's Kubo ``sigma_nonlocal`` /
``ndd_delta_n_kubo``, ``ndd_alpha_sea``) or ``impurities.born_tau``
(:func:`qgtflow.plan.shell_products`), so the reduce stage never builds the model. It diagonalises the model at
the δ-shell k-points of the grid (:mod:`qgtflow.reduce.skew`) and stores the smallest forward data:

Store schema (``shells.zarr``): coords ``mu`` [model energy], ``T`` [K or model energy], ``i, j, k`` (x/y/z);
``skew_s1``, ``skew_s2`` (mu, T, i, j, k) — S^(1), S^(2) of 004 Eq. 6 in model units with ħ = 1
([energy]² [length]^(3−d)), product ``skew``; ``born_transport_time`` () — 1/⟨1/τ_k⟩ of the symmetric Born
rate at the first μ and T (s, or ħ/energy in natural units), product ``born_tau``; ``kubo_sigma`` (sign, band_part,
omega, complex_part, mu, T, i, j, q) — 002 Eq. 11's σ_ijq at ±ω in model units for the q directions (coord ``q``) the
requested responses read, product ``kubo_nonlocal`` (its ω, η and q directions from the plan value ``kubo_inputs``);
``alpha_sea`` (mu, T) — 002 Eq. 15's Fermi-sea α_xy(f) of two-band sectors in model units, product ``alpha_sea``;
a product is made by its maker
in ``qgtflow.reduce.kinds.SHELL_PRODUCTS`` (a new model-evaluated response registers its own there);
attrs: grid, impurities, products, provenance, fingerprint.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from qgtflow import gridsize, io
from qgtflow.reduce.responses import AXES

log = logging.getLogger(__name__)

def shells_dataset(study, grid, products, plan_values: dict | None = None) -> xr.Dataset:
    """The shells store's variables of ``study`` on ``grid``: each product's maker (reduce/kinds.SHELL_PRODUCTS),
    with the job's plan value it declares (kinds.SHELL_PRODUCT_PLAN_VALUES) from ``plan_values``."""
    from qgtflow.reduce.kinds import SHELL_PRODUCT_PLAN_VALUES, SHELL_PRODUCTS

    energy_unit = study.units.energy_unit
    coords = {"mu": ("mu", np.asarray(study.mu, float), {"long_name": "chemical potential", "units": energy_unit}),
              "T": ("T", study.temperature, {"long_name": "temperature", "units": study.units.temperature_unit})}
    data = {}
    for product in products:
        extra = ([plan_values[SHELL_PRODUCT_PLAN_VALUES[product]]] if product in SHELL_PRODUCT_PLAN_VALUES else [])
        data.update(SHELL_PRODUCTS[product](study, grid, *extra))
    for d in ("i", "j", "k"):
        if any(d in v.dims for v in data.values()):
            coords[d] = (d, list(AXES[:grid.dim]))
    imp = study.config.get("impurities") or {}
    attrs = io.provenance_attrs(study, "shells", {**grid.attrs(), "products": list(products),
                                                  **{f"impurity_{k}": imp[k] for k in ("density", "potential")
                                                     if imp.get(k) is not None},
                                                  "degeneracy_threshold": study.degeneracy_threshold})
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
    ds = shells_dataset(study, grid, products, job)
    ds.attrs[io.FINGERPRINT] = job["fingerprint"]
    if out is not None:
        io.write_dataset(ds, out)
    return ds
