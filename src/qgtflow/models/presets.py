"""Every built-in model written as a symbolic study-file model (``model.hamiltonian``).

These are the same Hamiltonians as the hand-coded builders in ``builtin.py``, given the way a user
would type them; tests check that both give identical geometry fields. They double as examples of
the symbolic syntax (``qgtflow`` docs point here).
"""

from __future__ import annotations

import numpy as np

from qgtflow.models import builtin


def symbolic_preset(name: str) -> dict:
    """The ``model`` mapping of a study file that reproduces built-in ``name`` with its default parameters."""
    if name not in PRESETS:
        raise KeyError(f"no symbolic preset for '{name}'; presets: {sorted(PRESETS)}")
    return PRESETS[name]()


def _defaults(builder) -> dict:
    import inspect

    return {k: p.default for k, p in inspect.signature(builder).parameters.items()
            if k != "kmax" and isinstance(p.default, (int, float))}


def _massive_dirac():
    return {"name": "massive_dirac_symbolic", "params": _defaults(builtin.massive_dirac),
            "hamiltonian": {"matrix": [["mass", "v*(kx - I*ky)"], ["v*(kx + I*ky)", "-mass"]]},
            "spin": ["sigma_x", "sigma_y", "sigma_z"], "kmax": builtin.massive_dirac().kmax}


def _tilted_dirac():
    return {"name": "tilted_dirac_symbolic", "params": _defaults(builtin.tilted_dirac),
            "hamiltonian": {"terms": [["tilt*kx", "sigma_0"], ["v*kx", "sigma_x"], ["v*ky", "sigma_y"],
                                      ["mass", "sigma_z"]]}, "kmax": builtin.tilted_dirac().kmax}


def _warped_dirac():
    return {"name": "warped_dirac_symbolic", "params": _defaults(builtin.warped_dirac),
            "hamiltonian": {"terms": [["v*kx*(1 + alpha*kx)", "sigma_x"], ["v*ky*(1 + beta*ky)", "sigma_y"],
                                      ["mass", "sigma_z"]]}, "kmax": builtin.warped_dirac().kmax}


def _pt_toy_4band():
    return {"name": "pt_toy_4band_symbolic", "params": _defaults(builtin.pt_toy_4band),
            "hamiltonian": {"terms": [["v*kx", "tau_x sigma_x"], ["v*ky", "tau_x sigma_y"],
                                      ["m - b*(kx**2 + ky**2) + t*kx", "tau_z sigma_0"]]},
            "kmax": builtin.pt_toy_4band().kmax}


def _ndd_two_valley():
    p = _defaults(builtin.ndd_two_valley)
    return {"name": "ndd_two_valley_symbolic",
            "params": {"v": p["v"], "vprime": p["vprime"], "m": p["m"]},
            "hamiltonian": {"terms": [["vp*kz", "sigma_0"], ["v*tau*kx", "sigma_x"], ["v*ky", "sigma_y"],
                                      ["Delta + kz**2/(2*m)", "sigma_z"]]},
            "sectors": {"labels": ["1", "2"],
                        "params": {"tau": [1, -1], "Delta": [p["delta"], p["delta2"]],
                                   "vp": [p["vprime"], -p["vprime"]]}},
            "kmax": 4.0}


def _snte_surface_dirac():
    p = _defaults(builtin.snte_surface_dirac)
    return {"name": "snte_surface_dirac_symbolic", "params": p,
            "hamiltonian": {"terms": [["vx*kx", "sigma_y"], ["-s*vy*ky", "sigma_x"], ["beta", "sigma_z"],
                                      ["s*alpha*ky", "sigma_0"]]},
            "sectors": {"labels": ["s=+1", "s=-1"], "params": {"s": [1, -1]}},
            "spin": ["sigma_x", "sigma_y", "sigma_z"], "kmax": builtin.snte_surface_dirac().kmax}


def _bilayer_graphene_gapped():
    p = _defaults(builtin.bilayer_graphene_gapped)
    g_s = p.pop("g_s")
    return {"name": "bilayer_graphene_gapped_symbolic", "params": p,
            "hamiltonian": {"terms": [["s*v_t*kx - lam*(kx**2 - ky**2)", "sigma_x"],
                                      ["v_t*ky + 2*s*lam*kx*ky", "sigma_y"], ["delta", "sigma_z"]]},
            "sectors": {"labels": ["s=+1", "s=-1"], "params": {"s": [1, -1]}, "weights": [g_s, g_s]},
            "kmax": 0.5}


def _haldane():
    p = _defaults(builtin.haldane)
    a = p["a"]
    # nearest-neighbour vectors δ_j (A → B) and next-nearest b_j, Cartesian, lattice of builtin.haldane;
    # convention II phases e^{ik·d} with d the bond vector, as in TightBindingModel
    a1, a2 = np.array([1.0, 0.0]) * a, np.array([0.5, np.sqrt(3) / 2]) * a
    tau_b = (a1 + a2) / 3
    deltas = [tau_b + r1 * a1 + r2 * a2 for r1, r2 in [(0, 0), (-1, 0), (0, -1)]]
    bs = [r1 * a1 + r2 * a2 for r1, r2 in [(1, 0), (-1, 1), (0, -1)]]

    def dot(vec):
        return f"({float(vec[0])!r}*kx + {float(vec[1])!r}*ky)"

    offdiag = " + ".join(f"exp(I*{dot(d)})" for d in deltas)
    cos_sum = " + ".join(f"cos({dot(b)} + phi)" for b in bs)
    cos_sum_b = " + ".join(f"cos({dot(b)} - phi)" for b in bs)
    return {"name": "haldane_symbolic", "params": {k: p[k] for k in ("t1", "t2", "phi", "mass")},
            "lattice": [a1.tolist(), a2.tolist()],
            "hamiltonian": {"matrix": [[f"mass + 2*t2*({cos_sum})", f"t1*({offdiag})"],
                                       [f"t1*conjugate({offdiag})", f"-mass + 2*t2*({cos_sum_b})"]]}}


PRESETS = {
    "massive_dirac": _massive_dirac,
    "tilted_dirac": _tilted_dirac,
    "warped_dirac": _warped_dirac,
    "pt_toy_4band": _pt_toy_4band,
    "ndd_two_valley": _ndd_two_valley,
    "snte_surface_dirac": _snte_surface_dirac,
    "bilayer_graphene_gapped": _bilayer_graphene_gapped,
    "haldane": _haldane,
}
