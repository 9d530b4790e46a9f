# Two commands for a new user: `make demo` and `make test`. Both bootstrap .venv from requirements.lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint dev bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gp-pipelines demo

test: $(STAMP)
	@bash .ci/install-browser || echo "warning: could not install chromium; the browser tests will say so"
	$(BIN)/ruff check gp_pipelines tests bench
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg list defs --columns key,group,kinds
	$(BIN)/python -m pytest

dev: $(STAMP)
	$(BIN)/gp-pipelines dev

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check gp_pipelines tests bench
	$(BIN)/ruff format --check gp_pipelines tests bench

# Re-resolve the pinned set from pyproject.toml (run after changing dependencies, then commit the lock).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e '.[test]'
	( echo '# Exact versions for every install (make demo / make test). Regenerate with: make lock'; \
	  .lockvenv/bin/pip freeze --all --exclude-editable | grep -v "^pip==" | grep -vi '^gp.pipelines' ) > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .gp .pytest_cache .ruff_cache
