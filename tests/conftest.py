import os

from qgtflow.runtime import kernel_source_digest  # standard library only: numba is not imported yet

# one cache per kernel source digest, as qgtflow's own (runtime.numba_cache_root): numba would load a kernel compiled
# against an older version of a module it inlines
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "qgtflow-numba",
                                                      f"src-{kernel_source_digest()}"))
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from qgtflow.models import TightBindingModel  # noqa: E402


def random_lattice_model(seed: int = 3, nbands: int = 3, hopping: float = 0.12):
    """A 2D lattice model with random complex hoppings: no symmetry forces anything to vanish.

    On-site energies are spread (spacing 3) so the bands stay separated by a sizeable gap: the
    integrands are then smooth on the grids used in tests.
    """
    rng = np.random.default_rng(seed)
    lattice = np.array([[1.0, 0.0], [0.3, 1.1]])
    positions = rng.uniform(0, 1, (nbands, 2))
    hops = []
    for R in [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0)]:
        for i in range(nbands):
            for j in range(nbands):
                t = (rng.normal() + 1j * rng.normal()) * hopping
                hops.append((R, i, j, t))
                hops.append((tuple(-r for r in R), j, i, np.conj(t)))
    for i in range(nbands):
        for j in range(i + 1, nbands):
            t = (rng.normal() + 1j * rng.normal()) * hopping
            hops.append(((0, 0), i, j, t))
            hops.append(((0, 0), j, i, np.conj(t)))
    onsite = 3.0 * (np.arange(nbands) - (nbands - 1) / 2) + 0.3 * rng.normal(size=nbands)
    return TightBindingModel("random_lattice", lattice, positions, hops, onsite=onsite, params={"seed": seed})


@pytest.fixture
def lattice_model():
    return random_lattice_model()


@pytest.fixture(scope="session")
def snakemake_env(tmp_path_factory) -> dict:
    """Environment for Snakemake subprocesses of tests that do not use SLURM.

    The installed SLURM executor plugin runs ``scontrol show config`` whenever Snakemake starts
    (its import builds the plugin's settings), which blocks ~9 s (until its 10 s timeout) on a
    machine whose SLURM client finds no controller. A stub ``scontrol`` that fails at once makes
    the plugin fall back to its defaults, exactly as on a machine without SLURM.
    """
    stub = tmp_path_factory.mktemp("no-scontrol")
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    return {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="session")
def tiny_run_workspace(tmp_path_factory, snakemake_env):
    """The session's one real workflow run (tests/tiny_run.py), shared by the rerun and workflow tests."""
    from tests import tiny_run

    return tiny_run.start(tmp_path_factory, snakemake_env)
