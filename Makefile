# tinhieu: two commands for a newcomer, `make run` and `make test`.
SHELL := /bin/bash
# First python3.12 that really runs: PATH, pyenv's versions (the shim may point elsewhere), system.
PYTHON ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 \
	$$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed

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
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,deep]' --config-settings editable_mode=compat
	@touch $(STAMP)

# The dashboard's JavaScript libraries (web/package-lock.json): again when the lockfile
# changes. Without npm the worker still runs and the page at / says what to install.
$(WEB_STAMP): web/package.json web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix web --no-audit --no-fund && touch $(WEB_STAMP); \
	else echo "[CANH BAO] npm not found: the dashboard needs 'npm ci --prefix web' (Node.js 18+)"; fi

run: $(STAMP) $(WEB_STAMP)
	$(BIN)/python -m tinhieu.run

test: $(STAMP) $(WEB_STAMP)
	$(BIN)/ruff check .
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
	rm -rf $(VENV) var .pytest_cache web/node_modules
