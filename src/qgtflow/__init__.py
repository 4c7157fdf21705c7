"""qgtflow: band quantum geometry to converged, unit-carrying response tensors.

Public entry points:

- :func:`qgtflow.evaluate` — one study at one grid, no workflow engine.
- ``qgtflow`` command line (``evaluate``, ``run``, ``report``).
"""

__version__ = "0.1.0"

from qgtflow.errors import QgtflowError, ConfigError, ModelError  # noqa: E402


def evaluate(study, **kwargs):
    """Evaluate one study (dict, YAML path or :class:`~qgtflow.study.Study`) at one grid.

    Returns the response dataset; see :func:`qgtflow.api.evaluate`.
    """
    from qgtflow.api import evaluate as _evaluate

    return _evaluate(study, **kwargs)


__all__ = ["evaluate", "QgtflowError", "ConfigError", "ModelError", "__version__"]
