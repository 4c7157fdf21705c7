"""Writers of Wannier90-format files for tests (the layouts of ``qgtflow.models.wannier``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tb(path, lattice, blocks: dict, deg=None, centres=None, header="written for a qgtflow test", decimals=6,
             positions=None):
    """A ``seedname_tb.dat``: lattice (Å, rows), H(R) blocks {R: (n, n)} as given (raw, not divided by the
    degeneracies ``deg``, default all 1), and position blocks with the Cartesian ``centres`` (n, 3) on the
    diagonal of r(0) (zero elsewhere), plus ``positions`` {R: (n, n, 3) complex} (Å) when given.
    Values with ``decimals`` decimals, as Wannier90 prints 6. Vectorised: also writes the benchmarks' 100 MB files."""
    path = Path(path)
    Rs = list(blocks)
    n = next(iter(blocks.values())).shape[0]
    deg = [1] * len(Rs) if deg is None else list(deg)
    value = f"%{decimals + 8}.{decimals}f"
    ij = np.array([(i + 1, j + 1) for j in range(n) for i in range(n)])  # Wannier90's order: i fastest
    centres = np.zeros((n, 3)) if centres is None else np.asarray(centres, float)
    with open(path, "w") as f:
        f.write("\n".join([header] + ["".join(f"{x:16.10f}" for x in a) for a in np.asarray(lattice)]
                          + [f"{n:12d}", f"{len(Rs):12d}"]
                          + ["".join(f"{d:5d}" for d in deg[s:s + 15]) for s in range(0, len(deg), 15)]) + "\n")
        for R in Rs:
            m = np.asarray(blocks[R]).T.reshape(-1)
            f.write(f"\n{R[0]:5d}{R[1]:5d}{R[2]:5d}\n")
            np.savetxt(f, np.column_stack([ij, m.real, m.imag]), fmt="%5d%5d" + value * 2)
        for R in Rs:
            xyz = np.zeros((n, n, 3), complex)
            if not any(R):
                xyz[np.arange(n), np.arange(n)] = centres
            if positions is not None and R in positions:
                xyz = xyz + positions[R]
            xyz = xyz.transpose(1, 0, 2).reshape(-1, 3)
            f.write(f"\n{R[0]:5d}{R[1]:5d}{R[2]:5d}\n")
            np.savetxt(f, np.column_stack([ij, np.stack([xyz.real, xyz.imag], axis=2).reshape(-1, 6)]),
                       fmt="%5d%5d" + value * 6)
    return path


def write_spn(path, S, formatted=True, header="written for a qgtflow test"):
    """A ``seedname.spn``: S (num_kpts, 3, num_bands, num_bands) = ⟨ψ_n|σ^c|ψ_m⟩, upper triangle m ≥ n per k-point,
    the component fastest (pw2wannier90's layout); formatted text or Fortran unformatted."""
    nk, _, nb, _ = S.shape
    m_idx, n_idx = np.tril_indices(nb)
    per_k = np.moveaxis(S[:, :, n_idx, m_idx], 1, 2)  # (nk, pair, 3)
    if formatted:
        rows = [header, f"{nb:10d}{nk:10d}"]
        rows += [f"{v.real:26.16e}{v.imag:26.16e}" for v in per_k.reshape(-1)]
        path.write_text("\n".join(rows) + "\n")
        return path
    from scipy.io import FortranFile

    with FortranFile(path, "w") as f:
        f.write_record(np.frombuffer(header.ljust(60)[:60].encode(), "S1"))
        f.write_record(np.array([nb, nk], "<i4"))
        for k in range(nk):
            f.write_record(np.ascontiguousarray(per_k[k]).astype("<c16"))
    return path


def write_chk(path, lattice, kpoints, mp_grid, u, centres, u_opt=None, lwindow=None):
    """A Wannier90 ``seedname.chk`` (Fortran unformatted) with the records qgtflow reads: u (num_kpts, num_wann,
    num_wann) and, when disentangled, u_opt (num_kpts, num_bands, num_wann) with lwindow (num_kpts, num_bands)."""
    from scipy.io import FortranFile

    nk, nw = u.shape[0], u.shape[1]
    nb = nw if u_opt is None else u_opt.shape[1]
    lattice = np.asarray(lattice, float)
    with FortranFile(path, "w") as f:
        f.write_record(np.frombuffer(b"written for a qgtflow test".ljust(33), "S1"))
        f.write_record(np.array([nb], "<i4"))
        f.write_record(np.array([0], "<i4"))
        f.write_record(np.zeros(0, "<i4"))
        f.write_record(lattice.reshape(-1, order="F"))
        f.write_record((2 * np.pi * np.linalg.inv(lattice).T).reshape(-1, order="F"))
        f.write_record(np.array([nk], "<i4"))
        f.write_record(np.array(mp_grid, "<i4"))
        f.write_record(np.asarray(kpoints, float).reshape(-1))
        f.write_record(np.array([12], "<i4"))
        f.write_record(np.array([nw], "<i4"))
        f.write_record(np.frombuffer(b"postwann".ljust(20), "S1"))
        f.write_record(np.array([0 if u_opt is None else 1], "<i4"))
        if u_opt is not None:
            f.write_record(np.array([1.0]))
            f.write_record(np.asarray(lwindow, "<i4").reshape(-1))
            f.write_record(np.asarray(lwindow, bool).sum(axis=1).astype("<i4"))
            f.write_record(np.ascontiguousarray(np.swapaxes(u_opt, 1, 2)).astype("<c16").reshape(-1))
        f.write_record(np.ascontiguousarray(np.swapaxes(u, 1, 2)).astype("<c16").reshape(-1))
        f.write_record(np.zeros(nk * 12 * nw * nw, "<c16"))
        f.write_record(np.asarray(centres, float).reshape(-1))
        f.write_record(np.ones(nw))
    return path
