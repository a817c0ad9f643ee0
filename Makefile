# The two commands of the README. Both install exactly what uv.lock names into ./.venv first;
# uv itself is pinned here and installed with pip into ./.tools.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
BIN := .venv/bin

# uv uses this machine's Python and never downloads one.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test test-clients lint lock bench profile screenshots install install-dev

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

## The gateway's own dependencies (leaves test tools alone if `make test` installed them).
install: $(UV)
	$(UV) sync --frozen --no-default-groups --inexact

install-dev: $(UV)
	$(UV) sync --frozen

## Start the gateway on the embedded default (SQLite + the offline demo model) on :8080.
run: install
	$(BIN)/flywheel serve

## Lint, then run every test (real gateway, real SQLite and PostgreSQL, fake upstream; Debian's
## prometheus and chromium are installed first when missing, for the tests that drive them),
## then the SDK-facing tests again with each older openai major.
test: install-dev
	bash scripts/install-test-tools.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(MAKE) test-clients

## The tests marked `sdk`, each in a venv of its own with an older openai major (.venv-openai2...).
## openai 1.x cannot sit beside the litellm we ship (it needs openai>=2.20): uv picks an older
## litellm there, so the litellm provider's tests are left to the other environments.
test-clients: $(UV)
	$(call sdk_tests,2,)
	$(call sdk_tests,1,--deselect tests/test_litellm_provider.py)

define sdk_tests
	UV_PROJECT_ENVIRONMENT=.venv-openai$(1) $(UV) sync --frozen --quiet \
		--no-default-groups --group dev --group openai-$(1)
	@.venv-openai$(1)/bin/python -c 'import openai; print("SDK-facing tests with openai", openai.__version__)'
	.venv-openai$(1)/bin/pytest -m sdk -q $(2)
endef

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Refresh uv.lock to the newest versions pyproject.toml allows; review the diff, run `make test`.
lock: $(UV)
	$(UV) lock --upgrade

## Retake the console screenshots in docs/console/ (the README shows them) in real Chromium.
screenshots: install-dev
	FLYWHEEL_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_console.py tests/test_console_pages.py -k sqlite

## The issue's performance targets (latency, throughput, streaming, recorder, memory), ~10 min.
bench: install-dev
	$(BIN)/python -m bench

## Where each microsecond of a request goes: py-spy samples one Flywheel under the bench's load.
## Options after PROFILE=, e.g. `make profile PROFILE="--api responses --stream --target postgres"`.
profile: $(UV)
	$(UV) sync --frozen --group profile
	$(BIN)/python -m bench.profile $(PROFILE)
