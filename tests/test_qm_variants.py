"""001 Table 1: the three forms of σ^qm are −(e³/ħ)∫[α ∂_i𝒢^jk − β(∂_k𝒢^ij + ∂_j𝒢^ik)] f0 with (α, β) = WPD (1, ½),
LKA (2, ½), QK (½, 1). Two integrals span them, so 2 QK = 7 WPD − 3 LKA for every component; WPD (= Eq. 13) has
σ_iii = 0 and a vanishing cyclic sum, whence QK_iii = −(3/2) LKA_iii. Checked in both integration forms."""

import numpy as np
import pytest

import qgtflow


@pytest.fixture(scope="module")
def variants():
    out = {}
    for form in ("sea", "surface"):
        study = {"model": {"name": "pt_toy_4band", "params": {"t": 0.9}}, "kgrid": {"sizes": [96], "kmax": 1.2},
                 "mu": [0.15, 0.25], "temperature": [60.0], "fermi_form": form,
                 "responses": ["sigma_qm", "sigma_qm_variant"]}
        out[form] = qgtflow.evaluate(study, n_workers=0)
    return out


@pytest.mark.parametrize("form", ["sea", "surface"])
def test_table1_relations(variants, form):
    ds = variants[form]
    v = {name: ds.sigma_qm_variant.sel(variant=name).values for name in ("wpd", "lka", "qk")}
    big = max(np.abs(x).max() for x in v.values())
    assert big > 0
    np.testing.assert_allclose(v["wpd"], ds.sigma_qm.values, atol=1e-12 * big)
    np.testing.assert_allclose(2 * v["qk"], 7 * v["wpd"] - 3 * v["lka"], atol=1e-10 * big)
    wpd = ds.sigma_qm_variant.sel(variant="wpd")
    cyclic = wpd + wpd.transpose(..., "j", "k", "i").values + wpd.transpose(..., "k", "i", "j").values
    assert float(np.abs(cyclic).max()) < 1e-10 * big
    for c in "xy":
        d = {n: ds.sigma_qm_variant.sel(variant=n, i=c, j=c, k=c).values for n in v}
        assert np.abs(d["wpd"]).max() < 1e-10 * big
        np.testing.assert_allclose(d["qk"], -1.5 * d["lka"], atol=1e-10 * big)

