# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install, initialise ./data, load the sample corpus, serve the API on :8000
#   make test  - create .venv, install with the test extras, run ruff, mypy and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COLLECTION ?= samples
PYTEST_ARGS ?=
# Test files run in parallel worker processes (pytest-xdist), a file per worker at a time; 0 runs them in this one.
# At most 4: each worker loads the model and makes its own PostgreSQL database.
PYTEST_WORKERS ?= auto

.PHONY: run test install install-test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

run: install
	$(BIN)/ragstore init
	$(BIN)/ragstore ingest samples/corpus --collection $(COLLECTION)
	$(BIN)/ragstore serve

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-test
	$(BIN)/mypy

pytest: install-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/core.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
