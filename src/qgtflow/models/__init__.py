"""Hamiltonians: the :class:`Model` interface, k·p polynomials, tight-binding, built-ins."""

from qgtflow.models.base import Model
from qgtflow.models.builtin import BUILTIN_MODELS, build_model
from qgtflow.models.polynomial import PolynomialModel
from qgtflow.models.tight_binding import TightBindingModel

__all__ = ["Model", "PolynomialModel", "TightBindingModel", "BUILTIN_MODELS", "build_model"]
