# Two entry points for a fresh clone (see README):
#   make run   — install into .venv and run the default workflow on a local Dask cluster
#   make test  — install into .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[workflow,test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/qgtflow run --cores all
	$(BIN)/qgtflow report

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_stages.py

clean:
	rm -rf results .snakemake
