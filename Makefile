# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export OKO_HOME ?= $(CURDIR)/oko-data

# requirements.lock pins every package (with hashes) that `make venv` installs and CI tests.
# `make lock` regenerates it from pyproject.toml with uv, kept in its own small venv.
LOCK := requirements.lock
LOCK_TOOLS := .venv-lock
UV_VERSION := 0.13.9
UV := $(LOCK_TOOLS)/bin/uv
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release pyproject allows;
# a plain `make lock` keeps the current pins where they still fit.
LOCK_FLAGS ?=

.PHONY: demo test lint typecheck venv lock clean web-deps

venv: $(VENV)/.installed

# The standalone verifier (verifier/, the `oko-verify` command) needs only cryptography,
# which the lock already pins; it is installed editable without touching the lock.
$(VENV)/.installed: $(LOCK) pyproject.toml verifier/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) is needed (Oko targets Python 3.11)."; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e ./verifier
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(UV):
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

lock: $(UV)
	$(UV) pip compile pyproject.toml --extra test --group install --generate-hashes \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	    --custom-compile-command 'make lock' $(LOCK_FLAGS) -o $(LOCK)

demo: venv
	$(BIN)/oko demo --host 127.0.0.1 --port 8000

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

# axe-core for the browser tests (tests/web), from the npm registry, pinned by its lock
WEB_TEST_DEPS := tests/web/node_modules/.package-lock.json
web-deps: $(WEB_TEST_DEPS)

$(WEB_TEST_DEPS): tests/web/package.json tests/web/package-lock.json
	cd tests/web && npm ci --no-audit --no-fund
	touch $@

test: venv web-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(LOCK_TOOLS) oko-data
