"""eigh_small: closed form (n = 2), Jacobi (3 <= n <= JACOBI_MAX_N) and LAPACK fallback."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange

from qgtflow.geometry.eigh import JACOBI_MAX_N, _eigh_jacobi, eigh_small, eigh_small_ws

# ---------------------------------------------------------------------------------------------
# compiled batch drivers (the way the geometry kernel calls eigh_small: from njit code, per matrix)


@njit(cache=True)
def _batch(H):
    N, n = H.shape[0], H.shape[1]
    E = np.empty((N, n))
    U = np.empty((N, n, n), np.complex128)
    for k in range(N):
        eigh_small(H[k], E[k], U[k])
    return E, U


@njit(cache=True)
def _batch_ws(H):
    N, n = H.shape[0], H.shape[1]
    E = np.empty((N, n))
    U = np.empty((N, n, n), np.complex128)
    work = np.empty((n, n), np.complex128)
    for k in range(N):
        eigh_small_ws(H[k], E[k], U[k], work)
    return E, U


@njit(cache=True)
def _batch_jacobi(H):
    N, n = H.shape[0], H.shape[1]
    E = np.empty((N, n))
    U = np.empty((N, n, n), np.complex128)
    work = np.empty((n, n), np.complex128)
    for k in range(N):
        _eigh_jacobi(H[k], E[k], U[k], work)
    return E, U


@njit(parallel=True, cache=True)
def _batch_parallel(H):
    N, n = H.shape[0], H.shape[1]
    E = np.empty((N, n))
    U = np.empty((N, n, n), np.complex128)
    for k in prange(N):
        eigh_small(H[k], E[k], U[k])
    return E, U


# ---------------------------------------------------------------------------------------------
# helpers


def _herm(rng, N, n):
    A = rng.standard_normal((N, n, n)) + 1j * rng.standard_normal((N, n, n))
    return np.ascontiguousarray(0.5 * (A + np.conj(np.swapaxes(A, 1, 2))))


def _unitary(rng, n):
    Q, R = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    return Q * (np.diag(R) / np.abs(np.diag(R)))


def _check(H, E, U, tol_e=1e-12, tol_r=1e-12, tol_o=1e-13, ref=True):
    """Ascending E, orthonormal U, H U = U diag(E), E = numpy's (all relative to ||H||_2)."""
    H = np.asarray(H)
    n = H.shape[-1]
    norm = np.linalg.norm(H, ord=2, axis=(-2, -1))[:, None]
    scale = np.where(norm > 0, norm, 1.0)
    assert np.all(np.isfinite(E)) and np.all(np.isfinite(U))
    assert np.all(np.diff(E, axis=-1) >= 0), "eigenvalues not ascending"
    if ref:
        w = np.linalg.eigvalsh(H)
        assert np.max(np.abs(E - w) / scale) < tol_e
    resid = H @ U - U * E[:, None, :]
    assert np.max(np.abs(resid).max(axis=(-2, -1)) / scale[:, 0]) < tol_r
    gram = np.conj(np.swapaxes(U, -1, -2)) @ U
    assert np.max(np.abs(gram - np.eye(n))) < tol_o
    recon = (U * E[:, None, :]) @ np.conj(np.swapaxes(U, -1, -2))
    assert np.max(np.abs(recon - H).max(axis=(-2, -1)) / scale[:, 0]) < tol_r


# ---------------------------------------------------------------------------------------------
# random matrices, all paths


@pytest.mark.parametrize("n", list(range(1, 11)))
def test_random_vs_numpy(n):
    rng = np.random.default_rng(100 + n)
    H = _herm(rng, 300, n)
    E, U = _batch(H)
    _check(H, E, U)
    E2, U2 = _batch_ws(H)
    np.testing.assert_array_equal(E, E2)
    np.testing.assert_array_equal(U, U2)
    # non-degenerate spectra: eigenvectors agree with LAPACK up to a phase
    w, v = np.linalg.eigh(H)
    gap = np.min(np.diff(w, axis=-1), axis=-1) if n > 1 else np.ones(len(H))
    ok = gap > 1e-3
    overlap = np.abs(np.einsum("kij,kij->kj", np.conj(v[ok]), U[ok]))
    assert np.max(np.abs(overlap - 1.0)) < 1e-9


@pytest.mark.parametrize("n", list(range(2, 13)))
def test_jacobi_path_directly(n):
    """The Jacobi routine itself, also on either side of the cutoff."""
    rng = np.random.default_rng(200 + n)
    H = _herm(rng, 100, n)
    E, U = _batch_jacobi(H)
    _check(H, E, U)


def test_cutoff_is_reasonable():
    assert 3 <= JACOBI_MAX_N <= 12


def test_parallel_caller():
    rng = np.random.default_rng(7)
    for n in (2, 4, JACOBI_MAX_N + 1):
        H = _herm(rng, 200, n)
        E, U = _batch_parallel(H)
        _check(H, E, U)


# ---------------------------------------------------------------------------------------------
# degenerate and ill-scaled cases


def _pauli():
    s0 = np.eye(2, dtype=complex)
    sx = np.array([[0, 1], [1, 0]], dtype=complex)
    sy = np.array([[0, -1j], [1j, 0]], dtype=complex)
    sz = np.array([[1, 0], [0, -1]], dtype=complex)
    return s0, sx, sy, sz


def _pt_symmetric_4x4(rng, N):
    """d0 + sum_i d_i Gamma_i with five anticommuting Dirac matrices: E = d0 ± |d|, each twice."""
    s0, sx, sy, sz = _pauli()
    gam = [np.kron(sx, sx), np.kron(sx, sy), np.kron(sx, sz), np.kron(sy, s0), np.kron(sz, s0)]
    out = np.empty((N, 4, 4), complex)
    for k in range(N):
        d = rng.standard_normal(6)
        out[k] = d[0] * np.eye(4) + sum(d[i + 1] * gam[i] for i in range(5))
    return out


def test_pt_symmetric_double_degeneracy():
    rng = np.random.default_rng(1)
    H = _pt_symmetric_4x4(rng, 500)
    # also the un-rotated toy-model form: v tx (kx sx + ky sy) + (m - b k^2) tz + t kx
    s0, sx, sy, sz = _pauli()
    extra = []
    for kx, ky in rng.uniform(-1.2, 1.2, size=(200, 2)):
        extra.append(np.kron(sx, kx * sx + ky * sy) + (0.1 - kx * kx - ky * ky) * np.kron(sz, s0)
                     + 0.5 * kx * np.eye(4))
    extra.append(np.kron(sx, 0 * sx) + 0.1 * np.kron(sz, s0))  # k = 0
    H = np.concatenate([H, np.array(extra)])
    E, U = _batch(H)
    _check(H, E, U)
    # exact pairs
    assert np.max(np.abs(E[:, 0] - E[:, 1])) < 1e-13 * np.abs(E).max()
    assert np.max(np.abs(E[:, 2] - E[:, 3])) < 1e-13 * np.abs(E).max()


@pytest.mark.parametrize("shape", [(2, 2), (2, 3), (3, 2), (2, 4), (4, 2), (3, 3), (2, 5)])
def test_kron_degeneracies(shape):
    """kron(I_a, B) and kron(B, I_a): every eigenvalue of B with multiplicity a."""
    a, b = shape
    rng = np.random.default_rng(a * 10 + b)
    B = _herm(rng, 100, b)
    Ia = np.eye(a)
    H = np.concatenate([np.array([np.kron(Ia, x) for x in B]), np.array([np.kron(x, Ia) for x in B])])
    E, U = _batch(H)
    _check(H, E, U)
    wb = np.linalg.eigvalsh(np.concatenate([B, B]))
    np.testing.assert_allclose(E, np.repeat(wb, a, axis=1), atol=1e-13 * np.abs(wb).max())


@pytest.mark.parametrize("n", list(range(1, 11)))
def test_multiples_of_identity_and_zero(n):
    H = np.array([c * np.eye(n, dtype=complex) for c in (0.0, 1.0, -3.5, 1e-300, 1e300)])
    E, U = _batch(H)
    _check(H, E, U, ref=False)
    want = np.array([0.0, 1.0, -3.5, 1e-300, 1e300])[:, None] * np.ones(n)
    if n <= JACOBI_MAX_N:  # exact on the closed-form / Jacobi paths (LAPACK rescales)
        np.testing.assert_array_equal(E, want)
        np.testing.assert_array_equal(U, np.broadcast_to(np.eye(n), U.shape))
    else:
        np.testing.assert_allclose(E, want, rtol=1e-15)


@pytest.mark.parametrize("n", list(range(1, 11)))
def test_diagonal(n):
    rng = np.random.default_rng(300 + n)
    d = rng.standard_normal((50, n))
    d[0] = np.arange(n)[::-1]  # reversed order
    d[1] = np.repeat([1.0, -2.0], n)[:n]  # degenerate, interleaved
    H = np.array([np.diag(x).astype(complex) for x in d])
    E, U = _batch(H)
    _check(H, E, U)
    np.testing.assert_array_equal(E, np.sort(d, axis=1))
    if n <= JACOBI_MAX_N:
        # exact permutation matrices
        assert np.all((U == 0) | (U == 1))


@pytest.mark.parametrize("n", list(range(2, 11)))
@pytest.mark.parametrize("off", [1e-14, 1e-10, 1e-300])
def test_nearly_diagonal(n, off):
    rng = np.random.default_rng(400 + n)
    N = 100
    d = rng.standard_normal((N, n))
    d[:10] = np.round(d[:10])  # some (near-)degenerate diagonals
    O = off * (rng.standard_normal((N, n, n)) + 1j * rng.standard_normal((N, n, n)))
    H = np.array([np.diag(x) for x in d]) + O
    H = 0.5 * (H + np.conj(np.swapaxes(H, 1, 2)))
    E, U = _batch(H)
    _check(H, E, U)
    # well-separated diagonals: eigenvectors are close to unit vectors
    dd = np.sort(d, axis=1)
    ok = np.min(np.diff(dd, axis=1), axis=1) > 1e-2
    assert np.max(1.0 - np.abs(U[ok]).max(axis=1)) < 1e-6


@pytest.mark.parametrize("n", list(range(2, 11)))
@pytest.mark.parametrize("scale", [1e-8, 1e8, 1e-150, 1e150])
def test_scaled(n, scale):
    rng = np.random.default_rng(500 + n)
    H0 = _herm(rng, 100, n)
    H = H0 * scale
    E, U = _batch(H)
    _check(H, E, U)
    E0, U0 = _batch(H0)
    np.testing.assert_allclose(E / scale, E0, rtol=0, atol=1e-13 * np.abs(E0).max())


@pytest.mark.parametrize("n", list(range(2, 9)))
def test_large_dynamic_range(n):
    """Graded matrices (entries spanning 1e-8..1e8) and a dominant single entry."""
    rng = np.random.default_rng(600 + n)
    g = 10.0 ** np.linspace(-8, 8, n)
    H0 = _herm(rng, 100, n)
    H = H0 * g[:, None] * g[None, :]
    E, U = _batch(H)
    _check(H, E, U)
    H2 = _herm(rng, 100, n)
    H2[:, 0, 0] = 1e12
    E2, U2 = _batch(H2)
    _check(H2, E2, U2)


def test_two_by_two_branches():
    H = np.array([
        [[2, 0], [0, 1]],            # diagonal, needs swap
        [[1, 1e-20j], [-1e-20j, 1]],  # degenerate diagonal, tiny coupling
        [[1, 1e-16], [1e-16, 1 + 1e-10]],
        [[1 + 1e-10, 1e-16j], [-1e-16j, 1]],
        [[0, 1 + 1j], [1 - 1j, 0]],
        [[-5, 2 - 1j], [2 + 1j, 3]],
        [[3, 2 - 1j], [2 + 1j, -5]],
        [[1e200, 1e190], [1e190, -1e200]],
        [[1e-200, 1e-210j], [-1e-210j, 0]],
    ], dtype=complex)
    E, U = _batch(H)
    _check(H, E, U)
    np.testing.assert_array_equal(U[0], [[0, 1], [1, 0]])


def test_nearly_hermitian_input_uses_hermitian_part():
    rng = np.random.default_rng(9)
    for n in (2, 4):
        H = _herm(rng, 50, n)
        noisy = H + 1e-14 * (rng.standard_normal(H.shape) + 1j * rng.standard_normal(H.shape))
        E, U = _batch(np.ascontiguousarray(noisy))
        _check(H, E, U, tol_e=1e-12, tol_r=1e-12)


@pytest.mark.parametrize("n", list(range(2, JACOBI_MAX_N + 1)))
def test_extreme_range(n):
    """Subnormal and near-overflow magnitudes (closed-form and Jacobi paths scale by 2**k)."""
    rng = np.random.default_rng(700 + n)
    H0 = _herm(rng, 50, n)
    for k, tol in ((-1030, 1e-11), (-1070, None), (1020 - int(np.ceil(np.log2(n))), 1e-13)):
        H = _ldexp(H0, k)
        E0 = np.linalg.eigvalsh(_ldexp(H, -k))  # of the matrix actually represented (exact)
        E, U = _batch(H)
        assert np.all(np.isfinite(E)) and np.all(np.isfinite(U))
        if tol is not None:  # (at 2**-1070 the subnormal output grid is ~2**k/16: no check)
            np.testing.assert_allclose(np.ldexp(E, -k), E0, rtol=0, atol=tol * np.abs(E0).max())
        gram = np.conj(np.swapaxes(U, -1, -2)) @ U
        assert np.max(np.abs(gram - np.eye(n))) < 1e-13
        if k > 0:
            _check(H, E, U, ref=False)


def _ldexp(H, k):
    return np.ldexp(H.real, k) + 1j * np.ldexp(H.imag, k)


@pytest.mark.parametrize("n", [2, 3, 4, JACOBI_MAX_N])
def test_nonfinite_input_terminates(n):
    H = np.eye(n, dtype=complex)[None].copy()
    H[0, 0, n - 1] = H[0, n - 1, 0] = np.nan
    E, U = _batch(H)  # must return (bounded sweeps), result is garbage
    assert E.shape == (1, n)
