# One entry point. Every target creates (or reuses) .venv, so a fresh clone needs only python3 >= 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-fast lint format bench serve clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "spx-data needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,scale]'
	@touch $(STAMP)

## demo: set everything up, then run the main job on the built-in ThetaTerminal simulator
demo: $(STAMP)
	$(BIN)/spx-data demo

## test: the default test suite, everything but the reliability suite (~6 min on 2 cores: two
##   workers, each test file on one of them)
test: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow and not live' -n 2 --dist loadfile

## test-slow: the reliability suite (faults, crashes, disk full, corruption, bad inputs; CI runs it),
##   printing the counts each test reports (retries per cause, where each SIGKILL landed, ...)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m 'slow and not live' -rA

## test-fast: everything but the slow, daemon and browser tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow and not daemon and not browser and not postgres and not celery and not live' -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/dagster definitions validate -w workspace.yaml

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

serve: $(STAMP)
	$(BIN)/spx-data serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
