"""Every unit a store carries is one pint reads (cf_xarray's UDUNITS-style registry plus qgtflow's definitions,
:func:`qgtflow.units.unit_registry`), with the right dimensionality; natural-unit outputs carry their SI unit and
factor; Hall conductivities their value in e²/h; every store the same CF/provenance attrs.

Generic on purpose: every store of the session's tiny workflow run and every variable of an in-process
``evaluate`` are read, so outputs added later are covered without a new test."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import qgtflow
from qgtflow import io
from qgtflow.reduce.responses import RESPONSES
from qgtflow.units import NATURAL_ENERGY, NATURAL_LENGTH, UnitSystem, unit_registry

CF_ATTRS = ("Conventions", "title", "history", "source", "qgtflow_version", io.FINGERPRINT)
STUDY = {"model": {"name": "massive_dirac", "params": {"v": 1.0, "mass": 0.1}},
         "kgrid": {"sizes": [8], "kmax": 1.0}, "mu": [0.15, 0.3],
         "responses": ["sigma_drude", "sigma_ahe", "sigma_bcd", "berry_curvature_dipole"]}


@pytest.fixture(scope="module")
def ureg():
    return unit_registry()


def dims_of(ureg, units: str):
    return ureg.parse_units(units).dimensionality


def quantify_all(ureg, ds: xr.Dataset, where: str) -> dict[str, str]:
    """{name: units} of every variable and coordinate with units, each quantified with pint (values × unit);
    float variables without units fail."""
    found = {}
    for name, var in ds.variables.items():
        units = var.attrs.get("units")
        if units is None:
            assert var.dtype.kind != "f" or name == "chunk_done", f"{where}: float variable {name} has no units"
            continue
        q = ureg.Quantity(np.asarray(var.values), units)  # raises on an unparseable string
        assert q.shape == var.shape
        found[name] = units
    return found


def test_tiny_run_stores_quantify(tiny_run_workspace, ureg):
    stores = sorted(Path(tiny_run_workspace.results).rglob("*.zarr"))
    kinds = {p.name for p in stores}
    assert {"kgrid.zarr", "geometry.zarr", "responses.zarr", "convergence.zarr"} <= kinds, kinds
    energy, length = dims_of(ureg, "J"), dims_of(ureg, "m")
    for path in stores:
        ds = io.open_store(path) if path.name != "convergence.zarr" else xr.open_zarr(path)
        missing = [a for a in CF_ATTRS if not ds.attrs.get(a)]
        assert not missing, f"{path}: no {missing}"
        units = quantify_all(ureg, ds, str(path))
        assert units, path
        checks = {"kvec": 1 / length, "weight": length ** -2, "energy": energy, "velocity": energy * length,
                  "berry_curvature": length ** 2, "quantum_metric": length ** 2, "mu": energy,
                  "T": dims_of(ureg, "K"), "sigma_drude": dims_of(ureg, "S"), "sigma_drude_values": dims_of(ureg, "S"),
                  "sigma_drude_extrapolated": dims_of(ureg, "S"), "grid_spacing": 1 / length}
        for name, expected in checks.items():
            if name in units:
                assert dims_of(ureg, units[name]) == expected, (path, name, units[name])
        ds.close()


def test_readme_one_liner_quantifies_a_store(tiny_run_workspace, ureg):
    import pint_xarray  # noqa: F401  (registers the .pint accessor)

    path = next(Path(tiny_run_workspace.results).rglob("responses.zarr"))
    ds = io.open_store(path).pint.quantify(unit_registry=ureg)
    assert str(ds.sigma_drude.pint.to("mS").pint.units) == "millisiemens"


@pytest.fixture(scope="module")
def evaluated():
    natural = qgtflow.evaluate({**STUDY, "units": "natural", "temperature": [0.02], "tau": 10.0})
    physical = qgtflow.evaluate({**STUDY, "temperature": [100.0], "tau": 1e-13})
    return natural, physical


def test_evaluate_quantifies_with_natural_and_si_units(evaluated, ureg):
    natural, physical = evaluated
    nat, phys = quantify_all(ureg, natural, "natural"), quantify_all(ureg, physical, "physical")
    E, L = dims_of(ureg, NATURAL_ENERGY), dims_of(ureg, NATURAL_LENGTH)
    assert dims_of(ureg, nat["mu"]) == E and dims_of(ureg, nat["T"]) == E
    assert dims_of(ureg, nat["berry_curvature_dipole"]) == L  # ∫[dk] ∂Ω: length in 2D
    assert dims_of(ureg, phys["mu"]) == dims_of(ureg, "eV")
    for name in ("sigma_drude", "sigma_ahe"):  # 2D sheet conductances
        assert dims_of(ureg, phys[name]) == dims_of(ureg, "S")
        assert dims_of(ureg, nat[name]) == dims_of(ureg, "e2 hbar-1")
    assert dims_of(ureg, phys["sigma_bcd"]) == dims_of(ureg, "A m V-2")
    for name in ("sigma_drude", "sigma_ahe", "sigma_bcd"):  # natural attrs name the SI unit: same physics
        a = natural[name].attrs
        si = ureg.Quantity(1.0, a["units"].replace(NATURAL_ENERGY, "J").replace(NATURAL_LENGTH, "m"))
        assert si.to(a["units_si"]).magnitude == pytest.approx(a["si_factor"], rel=1e-12)
        assert a["units_si"] == physical[name].attrs["units"]


def test_hall_conductivity_in_e2_over_h(evaluated, ureg):
    for ds in evaluated:
        a = ds.sigma_ahe.attrs
        factor = ureg.Quantity(1.0, a["units"]).to(a["e2_over_h_units"]).magnitude
        assert factor == pytest.approx(a["e2_over_h_factor"], rel=1e-12)
    assert evaluated[1].sigma_ahe.attrs["e2_over_h_factor"] == pytest.approx(25812.807459, rel=1e-9)  # h/e² in Ω


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_every_response_natural_units_match_its_si_units(dim, ureg):
    """e^a ħ^b E^c L^d of each response (E = 1 J, L = 1 m) is si_factor × its SI unit: the natural exponents and
    the SI unit are written independently, so a wrong one shows."""
    nat = UnitSystem(natural=True)
    for name, resp in RESPONSES.items():
        a = resp.unit_attrs(nat, dim)
        q = ureg.Quantity(1.0, a["units"].replace(NATURAL_ENERGY, "J").replace(NATURAL_LENGTH, "m"))
        assert math.isclose(q.to(a["units_si"]).magnitude, a["si_factor"], rel_tol=1e-12), (name, a)


def test_model_units_parse_in_compounds(ureg):
    """cf_xarray aliases C to °C, which alone would make e, eV and meV in compound units temperatures."""
    for energy in ("eV", "meV"):
        units = UnitSystem(energy=energy, length="angstrom")
        q = ureg.Quantity(2.0, units.model_units(1, 2))
        assert q.to("J m2").magnitude == pytest.approx(2.0 * units.energy_si * units.length_si ** 2, rel=1e-12)
    assert ureg.Quantity(1.0, "e2 hbar-1").to("S").magnitude == pytest.approx(2.434134806e-4, rel=1e-9)
