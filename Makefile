# Two entry points: `make dev` (the main job on a laptop) and `make test` (the whole suite).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup helm postgres chromium dev test lint typecheck unit bench ui ui-screenshots

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

chromium:
	scripts/install-chromium.sh

# The web UI's build ships in the package (ledgerflow/api/ui): rebuild it after changing ui/.
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

# The screenshots docs/ui/ and the README show, taken by the browser tests.
ui-screenshots: setup chromium
	LEDGERFLOW_UI_SCREENSHOTS=docs/ui $(BIN)/pytest -q -p no:cacheprovider tests/ui

dev: setup
	$(BIN)/ledgerflow dev

lint: setup
	$(BIN)/ruff check ledgerflow tests bench
	$(BIN)/ruff format --check ledgerflow tests bench

typecheck: setup
	$(BIN)/mypy

test: setup helm postgres chromium lint typecheck
	$(BIN)/python -m ledgerflow.schemas.export --check
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python -m bench.core
