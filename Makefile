# Two entry points: `make dev` (the main job on a laptop) and `make test` (the whole suite).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup helm postgres dev test lint typecheck unit bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

helm:
	scripts/install-helm.sh

postgres:
	scripts/install-postgres.sh

dev: setup
	$(BIN)/ledgerflow dev

lint: setup
	$(BIN)/ruff check ledgerflow tests bench
	$(BIN)/ruff format --check ledgerflow tests bench

typecheck: setup
	$(BIN)/mypy

test: setup helm postgres lint typecheck
	$(BIN)/python -m ledgerflow.schemas.export --check
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python -m bench.core
