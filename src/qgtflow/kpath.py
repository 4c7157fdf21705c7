"""Band-structure paths and k-space planes of a model: what the bands stage samples.

A path is a list of (label, k-point) corners (Cartesian, model length⁻¹) sampled piecewise linearly;
``auto`` derives one from the model:

- periodic 2D: Γ → X (b₁/2) → V → Γ, with V the corner of the first Brillouin zone (Wigner–Seitz cell
  of the reciprocal lattice) next to X; hexagonal lattices get their usual labels Γ → M → K → Γ;
- periodic 3D: the same in the plane of b₁, b₂, then Γ → Z (b₃/2);
- k·p window [−kmax, kmax]^d: the line −X → Γ → X along k_x through the window.

A k-map plane: the reciprocal cell u b₁ + v b₂ (u, v ∈ [−½, ½]) for periodic models (3D: the plane of b₁, b₂
through Γ), the window's (k_x, k_y) box for k·p models (3D: at k_z = 0).
"""

from __future__ import annotations

import numpy as np

from qgtflow.errors import ConfigError

GAMMA = "Γ"


def _zone_corners_2d(b: np.ndarray) -> np.ndarray:
    """Corners of the first Brillouin zone of the 2D reciprocal lattice with rows ``b`` (Cartesian)."""
    from scipy.spatial import Voronoi

    shells = np.array([(i, j) for i in range(-2, 3) for j in range(-2, 3)], float) @ b
    vor = Voronoi(shells)
    origin = int(np.argmin(np.linalg.norm(shells, axis=1)))
    region = vor.regions[vor.point_region[origin]]
    return vor.vertices[region]


def _hexagonal(b: np.ndarray) -> bool:
    n1, n2 = np.linalg.norm(b[0]), np.linalg.norm(b[1])
    cos = abs(b[0] @ b[1]) / (n1 * n2)
    return abs(n1 - n2) < 1e-6 * n1 and abs(cos - 0.5) < 1e-6


def auto_path(model, window=None) -> list[tuple[str, list[float]]]:
    """The default path of ``model`` (module doc); ``window``: half-widths per axis of a k·p window."""
    d = model.dim
    if not model.periodic:
        kx = float(np.atleast_1d(window if window is not None else model.kmax)[0])
        x = np.zeros(d)
        x[0] = kx
        return [("−X", list(-x)), (GAMMA, [0.0] * d), ("X", list(x))]
    b = np.asarray(model.reciprocal_vectors, float)
    if d == 1:
        return [("−X", list(-b[0] / 2)), (GAMMA, [0.0]), ("X", list(b[0] / 2))]
    plane = b[:2, :2] if d == 2 else b[:2]
    x = b[0] / 2
    if d == 2:
        corners = _zone_corners_2d(plane)
    else:  # the zone corners in the plane of b1, b2: 2D problem in an orthonormal basis of that plane
        e1 = b[0] / np.linalg.norm(b[0])
        e2 = b[1] - (b[1] @ e1) * e1
        e2 /= np.linalg.norm(e2)
        basis = np.array([e1, e2])
        corners = _zone_corners_2d(plane @ basis.T) @ basis
    corner = corners[np.argmin(np.linalg.norm(corners - x[:d], axis=1))]
    names = ("M", "K") if d == 2 and _hexagonal(plane) else ("X", "V")
    path = [(GAMMA, [0.0] * d), (names[0], list(x)), (names[1], list(corner)), (GAMMA, [0.0] * d)]
    if d == 3:
        path.append(("Z", list(b[2] / 2)))
    return [(label, [float(v) for v in k]) for label, k in path]


def sample_path(corners, points: int):
    """Sample the polyline through ``corners`` [(label, k)] with about ``points`` points in all, spaced
    evenly in |k| (every corner is a sample). Returns k (N, d), k_distance (N,), tick distances, tick labels."""
    ks = np.array([np.asarray(k, float) for _, k in corners])
    seg = np.linalg.norm(np.diff(ks, axis=0), axis=1)
    total = seg.sum()
    parts, dist = [ks[:1]], [np.zeros(1)]
    start = 0.0
    for a, (length, k0, k1) in enumerate(zip(seg, ks[:-1], ks[1:])):
        n = max(1, int(round((points - 1) * length / total))) if total > 0 else 1
        t = np.arange(1, n + 1) / n
        parts.append(k0 + t[:, None] * (k1 - k0))
        dist.append(start + t * length)
        start += length
    ticks = np.concatenate([[0.0], np.cumsum(seg)])
    return np.concatenate(parts), np.concatenate(dist), ticks, [label for label, _ in corners]


def plane_points(model, points: int, window=None):
    """The k-map plane (module doc) on a points × points grid: k (points², d) in row-major (u, v) order,
    and the Cartesian k_x, k_y of each point (points, points)."""
    d = model.dim
    t = np.linspace(-0.5, 0.5, points)
    u, v = np.meshgrid(t, t, indexing="ij")
    if model.periodic:
        b = np.asarray(model.reciprocal_vectors, float)
        k = u.reshape(-1, 1) * b[0] + v.reshape(-1, 1) * b[1]
    else:
        half = np.broadcast_to(np.atleast_1d(np.asarray(window if window is not None else model.kmax, float)), (d,))
        k = np.zeros((points * points, d))
        k[:, 0], k[:, 1] = 2 * half[0] * u.ravel(), 2 * half[1] * v.ravel()
    return k, k[:, 0].reshape(points, points), k[:, 1].reshape(points, points)


def resolve_path(spec, model, window, key: str) -> list[tuple[str, list[float]]]:
    """The path of a study's ``bands.path`` (``auto`` or [[label, [k...]], ...]); one line naming the key on error."""
    if spec in (None, "auto"):
        return auto_path(model, window)
    out = []
    for n, item in enumerate(spec):
        label, k = item
        k = np.asarray(k, float)
        if k.shape != (model.dim,) or not np.all(np.isfinite(k)):
            raise ConfigError(f"{key}[{n}]", item, f"[label, k-point] with {model.dim} finite numbers "
                              "(Cartesian, model length units⁻¹)")
        out.append((str(label), [float(v) for v in k]))
    if len(out) < 2 or np.all(np.diff([k for _, k in out], axis=0) == 0):
        raise ConfigError(key, spec, "'auto' or at least two distinct [label, k-point] corners")
    return out
