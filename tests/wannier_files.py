"""Writers of Wannier90-format files for tests (the layouts of ``qgtflow.models.wannier``)."""

from __future__ import annotations

import numpy as np


def write_tb(path, lattice, blocks: dict, deg=None, centres=None, header="written for a qgtflow test", decimals=6,
             positions=None):
    """A ``seedname_tb.dat``: lattice (Å, rows), H(R) blocks {R: (n, n)} as given (raw, not divided by the
    degeneracies ``deg``, default all 1), and position blocks with the Cartesian ``centres`` (n, 3) on the
    diagonal of r(0) (zero elsewhere), plus ``positions`` {R: (n, n, 3) complex} (Å) when given.
    Values with ``decimals`` decimals, as Wannier90 prints 6."""
    Rs = list(blocks)
    n = next(iter(blocks.values())).shape[0]
    deg = [1] * len(Rs) if deg is None else list(deg)
    w = decimals + 8
    rows = [header] + ["".join(f"{x:16.10f}" for x in a) for a in np.asarray(lattice)] + [f"{n:12d}", f"{len(Rs):12d}"]
    rows += ["".join(f"{d:5d}" for d in deg[s:s + 15]) for s in range(0, len(deg), 15)]
    for R in Rs:
        rows += ["", f"{R[0]:5d}{R[1]:5d}{R[2]:5d}"]
        rows += [f"{i + 1:5d}{j + 1:5d}{blocks[R][i, j].real:{w}.{decimals}f}{blocks[R][i, j].imag:{w}.{decimals}f}"
                 for j in range(n) for i in range(n)]
    centres = np.zeros((n, 3)) if centres is None else np.asarray(centres, float)
    for R in Rs:
        rows += ["", f"{R[0]:5d}{R[1]:5d}{R[2]:5d}"]
        for j in range(n):
            for i in range(n):
                xyz = (centres[i] if (not any(R) and i == j) else np.zeros(3)).astype(complex)
                if positions is not None and R in positions:
                    xyz = xyz + positions[R][i, j]
                rows.append(f"{i + 1:5d}{j + 1:5d}"
                            + "".join(f"{v.real:{w}.{decimals}f}{v.imag:{w}.{decimals}f}" for v in xyz))
    path.write_text("\n".join(rows) + "\n")
    return path
