# The README's commands. Each creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-pg lint openapi bench clean

PG_DIR := /tmp/ems-pg-test-$(PG_PORT)
PG_PORT ?= 55433

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)  ## serve on port 8000 with demo data (SQLite at ./var/ems.db)
	$(BIN)/ems-connector demo

test: lint  ## lint, then the whole test suite
	$(BIN)/python -m pytest -q

test-pg: $(STAMP)  ## the whole test suite against a throwaway PostgreSQL on 127.0.0.1
	url=$$(bash .ci/postgres start $(PG_DIR) $(PG_PORT)) && \
	EMS_TEST_POSTGRES_URL=$$url $(BIN)/python -m pytest -q; \
	status=$$?; bash .ci/postgres stop $(PG_DIR); exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

openapi: $(STAMP)  ## regenerate the checked-in openapi.yaml from the code
	$(BIN)/ems-connector openapi openapi.yaml

bench: $(STAMP)  ## write/read throughput and latency against the embedded default
	$(BIN)/python bench/lifecycle.py

clean:
	rm -rf $(VENV) var .pytest_cache
