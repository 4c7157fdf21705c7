"""Exactly symmetric Slater–Koster tight-binding models built independently of qgtflow.models.symmetrize (for its
tests): zincblende (T_d) or diamond (O_h with fractional translations) with s + p orbitals per atom in Wannier90's
order or as its sp3 hybrids, optionally with spin–orbit coupling λ L·S on the p shells (Wannier90's interlaced
spinors)."""

from __future__ import annotations

import numpy as np

A_FCC = 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # cubic a = 1 (any length unit)
SP3 = 0.5 * np.array([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]], float)  # over [s, x, y, z]
W90_SP = [0, 3, 1, 2]  # Wannier90's s, pz, px, py from [s, x, y, z]
LEVI = np.zeros((3, 3, 3))
for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    LEVI[i, j, k], LEVI[j, i, k] = 1.0, -1.0
PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])


def _sk(u, ss, sp_ab, sp_ba, pps, ppp):
    """The (4, 4) s, x, y, z block from atom a to atom b along the unit vector u (Slater–Koster)."""
    E = np.zeros((4, 4))
    E[0, 0] = ss
    E[0, 1:] = sp_ab * u
    E[1:, 0] = -sp_ba * u
    E[1:, 1:] = ppp * np.eye(3) + (pps - ppp) * np.outer(u, u)
    return E


def zincblende(species=("Ga", "As"), basis="sp3", soc=0.0, second=True):
    """(lattice, atoms, projections, table {R: (n, n)}) of a zincblende crystal (diamond when both species are
    the same: the parameters are then equal too)."""
    diamond = species[0] == species[1]
    onsite = {0: (-4.0, 1.5), 1: (-4.0, 1.5) if diamond else (-6.0, 2.0)}
    atoms = [[species[0], 0.0, 0.0, 0.0], [species[1], 0.25, 0.25, 0.25]]
    tau = np.array([a[1:] for a in atoms]) @ A_FCC
    first = dict(ss=-1.6, pps=2.5, ppp=-0.8)
    sps = {(0, 1): 1.9, (1, 0): 1.9 if diamond else 2.3}
    shell2 = {0: dict(ss=-0.1, pps=0.3, ppp=-0.05, sp=0.12), 1: dict(ss=-0.1, pps=0.3, ppp=-0.05, sp=0.12)
              if diamond else dict(ss=-0.07, pps=0.2, ppp=-0.04, sp=0.09)}
    n_orb = 4
    T = SP3 if basis == "sp3" else np.eye(4)[W90_SP]  # rows: Wannier functions over [s, x, y, z]
    table = {}
    rng = range(-2, 3)
    for R in [(i, j, k) for i in rng for j in rng for k in rng]:
        H = np.zeros((2 * n_orb, 2 * n_orb))
        for a in range(2):
            for b in range(2):
                d = np.array(R) @ A_FCC + tau[b] - tau[a]
                dist = np.linalg.norm(d)
                if dist < 1e-9:
                    E = np.diag([onsite[a][0]] + [onsite[a][1]] * 3)
                elif abs(dist - np.sqrt(3) / 4) < 1e-9:
                    E = _sk(d / dist, first["ss"], sps[(a, b)], sps[(b, a)], first["pps"], first["ppp"])
                elif second and abs(dist - np.sqrt(2) / 2) < 1e-9 and a == b:
                    p = shell2[a]
                    E = _sk(d / dist, p["ss"], p["sp"], p["sp"], p["pps"], p["ppp"])
                else:
                    continue
                H[a * 4:(a + 1) * 4, b * 4:(b + 1) * 4] = T @ E @ T.T
        if np.any(H):
            table[R] = H.astype(complex)
    proj = {species[0]: basis} if diamond else {species[0]: basis, species[1]: basis}
    if not soc:
        return A_FCC, atoms, proj, table
    L = -1j * LEVI  # (L_k)_ij = −i ε_kij on x, y, z
    Lsp = np.zeros((3, 4, 4), complex)
    Lsp[:, 1:, 1:] = L
    block = sum(np.kron(T @ Lsp[k] @ T.T, PAULI[k] / 2) for k in range(3))
    spin = {R: np.kron(m, np.eye(2)) for R, m in table.items()}
    spin[(0, 0, 0)] = spin[(0, 0, 0)] + soc * np.kron(np.eye(2), block)
    return A_FCC, atoms, proj, spin


def perturbed(table, size=0.02, seed=1):
    """The table plus random Hermitian-paired perturbations of every block (relative ``size`` of the largest)."""
    rng = np.random.default_rng(seed)
    scale = max(np.abs(m).max() for m in table.values())
    out = {R: m.copy() for R, m in table.items()}
    for R in sorted(table):
        if R in out and R >= tuple(-r for r in R):
            n = len(table[R])
            dH = size * scale * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
            if R == (0, 0, 0):
                dH = (dH + dH.conj().T) / 2
                out[R] = out[R] + dH
            else:
                out[R] = out[R] + dH
                mR = tuple(-r for r in R)
                out[mR] = out[mR] + dH.conj().T
    return out


def zincblende_positions(species=("Ga", "As"), basis="sp3", spinors=False, c=(0.05, 0.03, -0.02)):
    """Absolute position matrix elements {R: (n, n, 3)} covariant under the crystal's group: the centres at the
    atoms, on-site ⟨s|r_α|p_β⟩ = c0 δ_αβ and nearest-neighbour ⟨s_a|r_α|p_bβ⟩ = ⟨p_aβ|r_α|s_b⟩ = c1 δ_αβ + c2 u_α u_β
    (u the bond direction; real: time-reversal even, Hermitian-paired by construction)."""
    atoms = [[species[0], 0.0, 0.0, 0.0], [species[1], 0.25, 0.25, 0.25]]
    tau = np.array([a[1:] for a in atoms]) @ A_FCC
    T = SP3 if basis == "sp3" else np.eye(4)[W90_SP]
    out = {}
    rng = range(-1, 2)
    for R in [(i, j, k) for i in rng for j in rng for k in rng]:
        r = np.zeros((8, 8, 3))
        for a in range(2):
            for b in range(2):
                d = np.array(R) @ A_FCC + tau[b] - tau[a]
                dist = np.linalg.norm(d)
                E = np.zeros((4, 4, 3))
                if dist < 1e-9:
                    for al in range(3):
                        E[0, 1 + al, al] = E[1 + al, 0, al] = c[0]
                        E[:, :, al] += tau[a][al] * np.eye(4)
                elif abs(dist - np.sqrt(3) / 4) < 1e-9:
                    u = d / dist
                    t = c[1] * np.eye(3) + c[2] * np.outer(u, u)  # [α, β]
                    E[0, 1:, :] = t.T
                    E[1:, 0, :] = t.T
                else:
                    continue
                r[a * 4:(a + 1) * 4, b * 4:(b + 1) * 4] = np.einsum("ij,jkc,lk->ilc", T, E, T)
        if np.any(r):
            out[R] = np.einsum("ijc,st->isjtc", r, np.eye(2)).reshape(16, 16, 3) if spinors else r.astype(complex)
    return {R: m.astype(complex) for R, m in out.items()}


def perturbed_positions(rtab, size=0.002, seed=2):
    """Random Hermitian-paired perturbations of a position table (relative ``size`` of its largest element)."""
    rng = np.random.default_rng(seed)
    scale = max(np.abs(m).max() for m in rtab.values())
    out = {R: m.copy() for R, m in rtab.items()}
    for R in sorted(rtab):
        mR = tuple(-r for r in R)
        if R >= mR:
            n = len(rtab[R])
            d = size * scale * (rng.normal(size=(n, n, 3)) + 1j * rng.normal(size=(n, n, 3)))
            if R == mR:
                out[R] = out[R] + (d + np.conj(np.swapaxes(d, 0, 1))) / 2
            else:
                out[R] = out[R] + d
                out[mR] = out[mR] + np.conj(np.swapaxes(d, 0, 1))
    return out
