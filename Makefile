# The two commands of the README. Both create ./.venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

## Start the gateway on the embedded default (SQLite + the offline demo model) on :8080.
run: install
	$(BIN)/flywheel serve

## Lint, then run every test (real gateway, real SQLite and PostgreSQL, fake upstream; Debian's
## prometheus and chromium are installed first when missing, for the tests that drive them).
test: install-dev
	bash scripts/install-test-tools.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The issue's performance targets (latency, throughput, streaming, recorder, memory), ~10 min.
bench: install-dev
	$(BIN)/python -m bench
