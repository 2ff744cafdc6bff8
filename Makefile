# tinhieu: two commands for a newcomer, `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 2>/dev/null || pyenv which python3.12 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast chaos bench lint kafka clean help

help:
	@echo "make run    - embedded Apache Kafka + one worker + exchange ingest (Ctrl-C stops all)"
	@echo "make test   - install what is needed and run the whole test suite"
	@echo "make chaos  - long fault-injection run"
	@echo "make bench  - run the benchmarks under bench/"
	@echo "make lint   - ruff"

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "[LOI] python3.12 not found (pandas-ta needs Python 3.12): install it, e.g. 'pyenv install 3.12'"; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m tinhieu.run

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "not integration"

chaos: $(STAMP)
	TINHIEU_CHAOS_LONG=1 $(BIN)/python -m pytest -q -ra tests/integration/test_chaos.py

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .

kafka: $(STAMP)
	$(BIN)/python -m tinhieu.kafka_embedded run

clean:
	rm -rf $(VENV) var .pytest_cache
