"""Band-geometry fields per k-point and band (the geometry stage's numerics)."""

from qgtflow.geometry.fields import FIELD_SPECS, compute_fields

__all__ = ["FIELD_SPECS", "compute_fields"]
