"""The spin operator of a Wannier90 model from ``seedname.spn`` and the gauge of ``seedname.chk``.

``seedname.spn`` (pw2wannier90 ``write_spn``; formatted or Fortran unformatted) holds the Pauli matrix elements
⟨ψ_nk|σ^c|ψ_mk⟩ of the num_bands ab-initio Bloch states on the Monkhorst–Pack mesh: a header line (60 characters),
``num_bands num_kpts``, then per k-point the upper triangle, m = 1..num_bands, n = 1..m, each entry the three
components x, y, z of ⟨ψ_n|σ|ψ_m⟩ (formatted: one ``Re Im`` line per component; unformatted: one record of
3·num_bands(num_bands+1)/2 complex numbers per k-point, the component fastest).

``seedname.chk`` (Wannier90 checkpoint, Fortran unformatted) gives the gauge: V(k) = U^opt(k) U(k) (num_bands ×
num_wann; U^opt only after disentanglement, on the bands inside the outer window). The Wannier-gauge spin is
S^W(k) = V(k)† S(k) V(k) and S(R) = (1/N_k) Σ_k e^{−2πi k·R} S^W(k) (Wang et al. PRB 74, 195118 (2006) Eq. 31, with σ
for r). The model's spin interface (``Model.spin``, 003) is one k-independent matrix per component: qgtflow uses
S(R = 0) between Wannier functions of one centre, the exact operator when the Wannier functions are spinors of
definite spin at their centres; what it leaves out (max |S(R ≠ 0)| and S(0) between different centres, both zero
for ideal spinor Wannier functions) is measured, logged and recorded in the model's convention label, and
refused above ``tolerance``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from qgtflow.errors import ModelError
from qgtflow.models.wannier import regular_file

log = logging.getLogger(__name__)

__all__ = ["read_chk", "read_spn", "wannier_spin"]

SAME_CENTRE_ANG = 1e-3  # Å: Wannier centres closer than this count as one site


def _records(path: Path, kind: str):
    """Fortran sequential records of ``path`` (4-byte markers), as a list of bytes; ModelError if malformed."""
    regular_file(path, kind)  # a FIFO would block, /dev/zero fill the memory
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {kind} file {path}: {exc.strerror or exc}") from exc
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ModelError(f"{kind} file {path}: truncated record marker at byte {pos}; expected a Fortran "
                             "unformatted file")
        n = int(np.frombuffer(data, "<i4", 1, pos)[0])
        end = pos + 4 + n
        if n < 0 or end + 4 > len(data) or int(np.frombuffer(data, "<i4", 1, end)[0]) != n:
            raise ModelError(f"{kind} file {path}: record {len(out) + 1} at byte {pos} is malformed (length {n}); "
                             "expected a Fortran unformatted file")
        out.append(data[pos + 4:end])
        pos = end + 4
    return out


def _is_formatted(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read Wannier90 .spn file {path}: {exc.strerror or exc}") from exc
    return not (len(head) == 4 and int(np.frombuffer(head, "<i4")[0]) in range(1, 1025) and head[1:4] == b"\0\0\0")


def _positive_sizes(kind: str, path: Path, **sizes: int) -> None:
    """Refuse a count (num_bands, num_kpts, num_wann) below 1 before arrays of that size are made."""
    for name, value in sizes.items():
        if value < 1:
            raise ModelError(f"{kind} file {path}: {name} = {value}; expected a positive integer")


def read_spn(path) -> np.ndarray:
    """``seedname.spn`` → S (num_kpts, 3, num_bands, num_bands): S[k, c, n, m] = ⟨ψ_nk|σ^c|ψ_mk⟩."""
    path = Path(path)
    kind = "Wannier90 .spn"
    regular_file(path, kind)
    if _is_formatted(path):
        try:
            lines = path.read_text().splitlines()
            nb, nk = (int(x) for x in lines[1].split())
            _positive_sizes(kind, path, num_bands=nb, num_kpts=nk)
            vals = np.array([ln.split() for ln in lines[2:] if ln.strip()], float)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise ModelError(f"{kind} file {path}: {exc}; expected a header line, 'num_bands num_kpts' and one "
                             "'Re Im' line per matrix element") from None
        npair = nb * (nb + 1) // 2
        if vals.ndim != 2 or vals.shape != (nk * 3 * npair, 2):
            raise ModelError(f"{kind} file {path}: {vals.shape[0] if vals.ndim else 0} data lines of "
                             f"{vals.shape[1] if vals.ndim == 2 else '?'} numbers; expected {nk * 3 * npair} "
                             f"lines 'Re Im' (num_kpts = {nk}, num_bands = {nb})")
        flat = (vals[:, 0] + 1j * vals[:, 1]).reshape(nk, npair, 3)
    else:
        recs = _records(path, kind)
        if len(recs) < 2 or len(recs[1]) != 8:
            raise ModelError(f"{kind} file {path}: no 'num_bands num_kpts' record; expected a Fortran unformatted "
                             ".spn (header, sizes, one record per k-point)")
        nb, nk = (int(x) for x in np.frombuffer(recs[1], "<i4"))
        _positive_sizes(kind, path, num_bands=nb, num_kpts=nk)
        npair = nb * (nb + 1) // 2
        if len(recs) != 2 + nk or any(len(r) != 16 * 3 * npair for r in recs[2:]):
            raise ModelError(f"{kind} file {path}: {len(recs) - 2} k-point records; expected num_kpts = {nk} records "
                             f"of {3 * npair} complex numbers (num_bands = {nb})")
        flat = np.stack([np.frombuffer(r, "<c16") for r in recs[2:]]).reshape(nk, npair, 3)
    if not np.all(np.isfinite(flat)):
        raise ModelError(f"{kind} file {path}: non-finite matrix elements; expected finite numbers")
    m_idx, n_idx = np.tril_indices(nb)  # pairs (m, n ≤ m) in file order: entry = ⟨ψ_n|σ|ψ_m⟩
    S = np.zeros((nk, 3, nb, nb), complex)
    S[:, :, n_idx, m_idx] = np.moveaxis(flat, 2, 1)
    S[:, :, m_idx, n_idx] = np.conj(np.moveaxis(flat, 2, 1))
    return S


def read_chk(path) -> dict:
    """``seedname.chk`` → {num_bands, num_wann, kpoints (num_kpts, 3) reduced, mp_grid, V (num_kpts, num_bands,
    num_wann), centres (num_wann, 3) Å, lattice (3, 3) Å}."""
    path = Path(path)
    kind = "Wannier90 .chk"
    recs = _records(path, kind)
    it = iter(recs)

    def nxt(dtype, what):
        try:
            return np.frombuffer(next(it), dtype)
        except StopIteration:
            raise ModelError(f"{kind} file {path}: ends before {what}; expected a complete checkpoint") from None

    try:
        nxt("u1", "the header")
        nb = int(nxt("<i4", "num_bands")[0])
        _positive_sizes(kind, path, num_bands=nb)
        nxt("<i4", "num_exclude_bands")
        nxt("<i4", "exclude_bands")
        lattice = nxt("<f8", "the real lattice").reshape(3, 3, order="F")
        nxt("<f8", "the reciprocal lattice")
        nk = int(nxt("<i4", "num_kpts")[0])
        _positive_sizes(kind, path, num_kpts=nk)
        mp = tuple(int(x) for x in nxt("<i4", "mp_grid"))
        kpts = nxt("<f8", "the k-points").reshape(nk, 3)
        nxt("<i4", "nntot")
        nw = int(nxt("<i4", "num_wann")[0])
        _positive_sizes(kind, path, num_wann=nw)
        nxt("u1", "the checkpoint string")
        disentangled = bool(nxt("<i4", "have_disentangled")[0])
        if disentangled:
            nxt("<f8", "omega_invariant")
            lwindow = nxt("<i4", "lwindow").reshape(nk, nb).astype(bool)
            ndimwin = nxt("<i4", "ndimwin")
            u_opt = nxt("<c16", "u_matrix_opt").reshape(nk, nw, nb).swapaxes(1, 2)
        u = nxt("<c16", "u_matrix").reshape(nk, nw, nw).swapaxes(1, 2)
        nxt("u1", "m_matrix")
        centres = nxt("<f8", "the Wannier centres").reshape(nw, 3)
    except (ValueError, IndexError) as exc:  # a record of the wrong size for the counts before it
        raise ModelError(f"{kind} file {path}: {exc}; expected a Wannier90 checkpoint") from None
    if disentangled and not all(0 <= ndimwin[k] == lwindow[k].sum() for k in range(nk)):
        raise ModelError(f"{kind} file {path}: ndimwin {ndimwin.tolist()[:8]} does not count the bands of lwindow; "
                         "expected a Wannier90 checkpoint")
    if disentangled:
        V = np.zeros((nk, nb, nw), complex)
        for k in range(nk):
            V[k, lwindow[k]] = u_opt[k, :ndimwin[k]] @ u[k]
    else:
        V = u
    return {"num_bands": nb, "num_wann": nw, "kpoints": kpts, "mp_grid": mp, "V": V, "centres": centres,
            "lattice": lattice}


def wannier_spin(spn_path, chk_path, num_wann: int, tolerance: float) -> tuple[np.ndarray, float]:
    """(σ (3, n, n), what was left out) — S(R = 0) in the Wannier gauge between Wannier functions of one centre,
    and max(|S(R ≠ 0)| over the neighbouring cells, |S(0)| between different centres)."""
    S = read_spn(spn_path)
    chk = read_chk(chk_path)
    nk, _, nb, _ = S.shape
    if nb != chk["num_bands"] or nk != len(chk["kpoints"]) or chk["num_wann"] != num_wann:
        raise ModelError(f"Wannier90 .spn file {spn_path}: num_bands = {nb}, num_kpts = {nk}; expected those of "
                         f"{Path(chk_path).name} ({chk['num_bands']}, {len(chk['kpoints'])}) and num_wann = "
                         f"{chk['num_wann']} equal to the model's {num_wann}")
    V = chk["V"]
    SW = np.einsum("kbi,kcbd,kdj->kcij", np.conj(V), S, V)  # V† S V per k and component
    grid = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), -1).reshape(-1, 3)
    phases = np.exp(-2j * np.pi * chk["kpoints"] @ grid.T) / nk  # (nk, 27)
    SR = np.einsum("kr,kcij->rcij", phases, SW)
    zero = int(np.flatnonzero((grid == 0).all(axis=1))[0])
    spin = SR[zero]
    spin = 0.5 * (spin + np.conj(np.swapaxes(spin, -1, -2)))
    c = chk["centres"]
    same = np.linalg.norm(c[:, None] - c[None], axis=-1) < SAME_CENTRE_ANG
    left = max(float(np.abs(np.delete(SR, zero, axis=0)).max(initial=0.0)),
               float(np.abs(np.where(same, 0, spin)).max(initial=0.0)))
    spin = np.where(same, spin, 0)
    if left > tolerance:
        raise ModelError(f"Wannier90 .spn file {spn_path}: spin matrix elements between different Wannier centres or "
                         f"cells up to {left:.3g}; expected at most spn_tolerance = {tolerance:g} (the model's spin "
                         "operator is one matrix per component: S(R = 0) on each centre)")
    log.info("spin operator from %s and %s: S(R = 0) on each Wannier centre; largest element left out %.3g",
             spn_path, chk_path, left)
    return spin, left
