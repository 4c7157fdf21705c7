"""Grid sizes of a study (``kgrid.sizes`` entries): points per axis, one integer (isotropic) or one per axis
(anisotropic Monkhorst–Pack grid such as [3, 3, 4]). Only the standard library: the Snakefile's plan uses it.

A size's label names its directory and its jobs: ``8`` → "8", ``[3, 3, 4]`` → "3x3x4" (``n3x3x4``).
"""

from __future__ import annotations

LABEL_PATTERN = r"\d+(?:x\d+){0,2}"  # the workflow's size wildcard


def normalise(size):
    """An int, or a tuple of ints for one number per axis (a one-element list is that number)."""
    if isinstance(size, (list, tuple)):
        values = tuple(int(n) for n in size)
        return values[0] if len(values) == 1 else values
    return int(size)


def label(size) -> str:
    size = normalise(size)
    return "x".join(str(n) for n in size) if isinstance(size, tuple) else str(size)


def parse(text):
    """The size of a label ("8" → 8, "3x3x4" → (3, 3, 4)); sizes pass through normalised."""
    if not isinstance(text, str):
        return normalise(text)
    parts = [int(p) for p in text.split("x")]
    return parts[0] if len(parts) == 1 else tuple(parts)


def ordering_problem(sizes) -> str | None:
    """None when every grid refines the one before (no axis coarser, at least one finer), else what is wrong."""
    sizes = [normalise(s) for s in sizes]
    width = max((len(s) for s in sizes if isinstance(s, tuple)), default=1)
    axes = [s if isinstance(s, tuple) else (s,) * width for s in sizes]
    if len({len(a) for a in axes}) > 1:
        return "the same number of points per axis in every anisotropic size"
    for prev, cur in zip(axes, axes[1:]):
        if any(c < p for p, c in zip(prev, cur)) or cur == prev:
            return "strictly increasing grid sizes (each grid at least as fine on every axis and finer on one)"
    return None


def from_axes(per_axis):
    """The size of a grid with these points per axis (a store's ``grid_sizes``): the int when all agree."""
    values = tuple(int(n) for n in per_axis)
    return values[0] if len(set(values)) == 1 else values
