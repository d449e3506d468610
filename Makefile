# Set-up from nothing: `make demo` runs the main job, `make test` runs the tests (ruff + pytest).
# Both create the virtual environment .venv and install this package with its test extra into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint install clean gpu-check

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/filternet demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q tests

# The inner loop: everything but the slow end-to-end tests (markers e2e, compile; CI runs them all).
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -q tests -m "not e2e and not compile"

# The GPU path once (compile, AMP, training, prediction, benchmark); GPU_CHECK_ARGS="--device cpu" for the dry run.
# On a GPU machine without make or venv: docs/benchmarks.md, "On a GPU".
gpu-check: $(STAMP)
	$(BIN)/filternet gpu-check $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
