"""docs/paper-panels.md: every default study and report figure the panel inventory names exists in config/config.yaml."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_inventory_names_existing_studies_and_figures():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rows = [line.split("|")[1:-1] for line in (ROOT / "docs" / "paper-panels.md").read_text().splitlines()
            if re.match(r"\| 00[0-4] \|", line)]
    assert {r[0].strip() for r in rows} == {"000", "001", "002", "003", "004"}
    studies = {s for r in rows for s in re.findall(r"`([A-Za-z0-9_]+)`", r[3])}
    assert studies and studies <= set(config["studies"]), studies - set(config["studies"])
    figures = {f["name"] for f in config["report"]["figures"]}
    named = {w for r in rows for w in re.findall(r"\b(?:fig|table)[A-Za-z0-9]*_[A-Za-z0-9_]+", r[4])}
    assert named and named <= figures, named - figures
