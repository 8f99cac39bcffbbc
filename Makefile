# Two commands matter: `make dev-hub` and `make test`. Both build the virtualenv themselves,
# from uv.lock (every dependency and tool pinned, hashes checked). `make lock` after editing
# pyproject.toml's dependencies; `make test` refuses a lock that no longer matches it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv from PATH if there is one, else a pinned copy from PyPI in .uv/ (only python3 needed).
UV_VERSION := 0.13.9
UV ?= $(or $(shell command -v uv 2>/dev/null),.uv/bin/uv)
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Bytecode is compiled when installing (as pip does), and for our own packages before every run:
# this machine sets PYTHONDONTWRITEBYTECODE, so without it every process (each CLI command, each
# hub a test starts) compiles every module it imports from source, 2-3x the CLI's start-up time.
export UV_COMPILE_BYTECODE := 1
PACKAGES := statehub workplans registry sync
COMPILE = $(BIN)/python -m compileall -q -j 0 $(PACKAGES) >/dev/null
# Tiers `make test-fast` leaves out (markers applied in tests/conftest.py).
SLOW_TIERS := not browser and not postgres and not node
# pytest-xdist workers for `make unit` / `test-fast` (`make unit PYTEST_WORKERS=0` runs in one process).
# Much of the suite waits on hub processes, git and PostgreSQL, so two workers overlap those waits
# on a 2-core machine. --dist loadfile keeps each module on one worker: its module-scoped hub
# servers and browser start once.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: dev-hub test test-fast lint typecheck unit venv compile lock clean web node-test-deps bench

.uv/bin/uv:
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	touch $(STAMP)

compile: $(STAMP)
	$(COMPILE)

venv: $(STAMP) compile

lock: | $(UV)
	$(UV) lock

dev-hub: $(STAMP) compile
	$(BIN)/python -m statehub.devhub

lint: $(STAMP)
	$(BIN)/ruff check statehub workplans registry sync tests bench
	$(BIN)/ruff format --check statehub workplans registry sync tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) compile
	$(BIN)/pytest -q $(XDIST)

test: lint typecheck unit

# The quick loop: SQLite only, no browser, PostgreSQL or node tests.
test-fast: $(STAMP) compile
	$(BIN)/pytest -q $(XDIST) --backends sqlite -m '$(SLOW_TIERS)'

# The web UI's built assets (statehub/web/static/) are committed; rebuild them after changing web/src.
web:
	cd web && npm ci --no-audit --no-fund && node build.mjs

# npm packages of the stock-Yjs interop test (tests/node); the test also runs this when they are missing.
node-test-deps:
	cd tests/node && npm ci --no-audit --no-fund

# Speed targets (ADR-003): rebuild/refresh against a bare tomllib+sqlite3 floor, reads against bare Litestar.
bench: $(STAMP) compile
	$(BIN)/python bench/rebuild.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) .uv .mypy_cache .pytest_cache .ruff_cache
