"""User-facing error types: printed without a traceback by the command line."""

import re

SHOWN_CHARACTERS = 200  # of a refused value quoted in a config error: 1001 atoms were a 22 kB line


def shown(value) -> str:
    """repr(value), cut to :data:`SHOWN_CHARACTERS` with its size said when longer."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    size = f"{len(value)} items" if isinstance(value, (list, tuple, dict)) else f"{len(text)} characters"
    return f"{text[:SHOWN_CHARACTERS - 40]}... ({type(value).__name__} of {size})"


class QgtflowError(Exception):
    """Base class for errors caused by user input (config, model, files, environment)."""


class ConfigError(QgtflowError):
    """A study or workflow configuration value is missing, mistyped or out of range."""

    def __init__(self, key: str, value, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"config key '{key}': got {shown(value)}; expected {expected}")


class ModelError(QgtflowError):
    """A Hamiltonian is malformed: wrong shape, non-Hermitian, NaN parameters, bad files."""


class StoreError(QgtflowError):
    """A zarr store is missing, incomplete or was produced from a different configuration."""


class PreflightError(QgtflowError):
    """The computation would exceed a ceiling or what the machine has (or SLURM would refuse its jobs)."""


def one_line(message) -> str:
    """``message`` as the one line a user error is printed on: line breaks (e.g. inside a library's message quoted
    in ours, such as spglib's) become single spaces."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip()
