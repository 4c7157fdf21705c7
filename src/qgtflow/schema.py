"""The study JSON schema: the one place for study defaults and ranges, parsed once per process."""

from __future__ import annotations

import copy
import functools
from importlib import resources

import yaml


def study_schema() -> dict:
    """The study JSON schema (also referenced by the workflow config schema): a copy of its one parse
    per process (parsing it took about half of every load_study)."""
    return copy.deepcopy(_parsed_study_schema())


@functools.cache
def _parsed_study_schema() -> dict:
    text = resources.files("qgtflow").joinpath("schemas/study.schema.yaml").read_text()
    return yaml.safe_load(text)
