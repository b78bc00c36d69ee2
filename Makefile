# 0xinf developer commands. Every target creates the virtualenv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test chaos lint fmt bench migrate api worker install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)            ## run PostgreSQL, Temporal, worker and API on embedded defaults
	$(BIN)/oxinf dev

test: $(STAMP)           ## run the whole suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chaos: $(STAMP)          ## only the chaos tests (also part of `make test`)
	$(BIN)/python -m pytest tests/chaos $(PYTEST_ARGS)

lint: $(STAMP)           ## ruff, import boundaries (import-linter), mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy api config domain edge workflows activities schema web scripts cli.py devstack.py worker.py

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)          ## relay overhead and throughput against DESIGN.md §11
	$(BIN)/python -m bench

migrate: $(STAMP)
	$(BIN)/oxinf migrate

api: $(STAMP)
	$(BIN)/oxinf api

worker: $(STAMP)
	$(BIN)/oxinf worker

clean:                   ## remove local data (database, Temporal history, secrets)
	rm -rf .oxinf
