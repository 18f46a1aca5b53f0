# Two entry points: `make run` (the main job) and `make test` (the test suite).
# Both create .venv and install everything on a fresh machine first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast coverage lint clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/snakemake --cores $(CORES)

# Two pytest-xdist workers, the longest tests first (tests/conftest.py).
test: setup
	$(BIN)/python -m pytest -v -n 2 --dist load --maxschedchunk 1 --durations=25

# The inner loop: the quick in-process tests (no Snakemake run, no process started, no stage CLI's whole work;
# tests/conftest.py marks the others `spawns` or `stage_cli`).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not spawns and not stage_cli" --durations=10

# Line coverage of deeplabv3_pipeline/ and scripts/ over the whole suite, subprocesses included (pyproject.toml).
coverage: setup
	rm -rf .coverage && mkdir -p .coverage
	$(BIN)/python -m pytest -q -n 2 --dist load --maxschedchunk 1 --cov --cov-report=  # (pytest-cov combines the processes' data)
	$(BIN)/python -m coverage report --format=total > .coverage/total.txt
	$(BIN)/python -m coverage report | tail -n 40

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules
	SNAKEMAKE=$(BIN)/snakemake bash .test/dry_run.sh

clean:
	rm -rf results .snakemake
