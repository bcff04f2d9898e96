# thumpflow: `make run` starts the engine with the example configuration; `make test` runs the suite.
# Every target accepts PYTHON=/path/to/python3 (the interpreter the venv is built from).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= examples/thumpflow.yaml
STAMP := $(VENV)/.installed

.PHONY: run test test-deps lint typecheck unit bench lock clean

$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/thumpflow run --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-deps:
	scripts/test-deps.sh

test: $(STAMP) test-deps lint typecheck
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m thumpflow.cli.main bench $(BENCH_ARGS)

# Regenerate the hash-pinned lock files from pyproject.toml (needs `uv` on PATH).
lock:
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements/run.txt
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements/dev.txt

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
