# Quick start: `make up` runs the whole system on embedded defaults; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/fleetflow up

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy topics broker fleetflow edge_runtime cloud_hub agents_sim bench dashboard
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/fleetflow bench core --json

clean:
	rm -rf $(VENV) .fleetflow .pytest_cache .mypy_cache .ruff_cache .hypothesis
