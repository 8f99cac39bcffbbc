# Two commands matter: `make dev-hub` and `make test`. Both build the virtualenv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev-hub test lint typecheck unit venv clean web node-test-deps bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

dev-hub: $(STAMP)
	$(BIN)/python -m statehub.devhub

lint: $(STAMP)
	$(BIN)/ruff check statehub workplans registry sync tests bench
	$(BIN)/ruff format --check statehub workplans registry sync tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# The web UI's built assets (statehub/web/static/) are committed; rebuild them after changing web/src.
web:
	cd web && npm ci --no-audit --no-fund && node build.mjs

# npm packages of the stock-Yjs interop test (tests/node); the test also runs this when they are missing.
node-test-deps:
	cd tests/node && npm ci --no-audit --no-fund

# Speed targets (ADR-003): rebuild/refresh against a bare tomllib+sqlite3 floor, reads against bare Litestar.
bench: $(STAMP)
	$(BIN)/python bench/rebuild.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
