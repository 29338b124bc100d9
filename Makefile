# The two commands of the README: `make run` and `make test`. Both create .venv with python3.11
# and install into it; a second call skips the install while pyproject.toml is unchanged.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# pip on this workplace's machines warns about every local index path it skips: keep the log readable
PIP_QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
# pip byte-compiles every installed module (35 of the 105 s a fresh install takes here, torch's
# thousands of files); Python compiles the few a run imports, once, on first import
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check --no-compile -q

.PHONY: install run test lint bench docs wheel-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e . $(PIP_QUIET)
	$(BIN)/python -c "import gsr_bench, torch, mlflow"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]' $(PIP_QUIET)
	$(BIN)/python -c "import gsr_bench, torch, mlflow, pytest"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/gsr-bench run --all

test: $(VENV)/.installed-dev
	$(BIN)/pytest -n 2 --benchmark-disable

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gsr_bench methods datasets tests examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed-dev
	$(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-autosave --benchmark-columns=min,median,mean,ops

# the contributors' API reference, from the docstrings; warnings are errors (CI runs it)
API_MODULES := gsr_bench.api gsr_bench.hookspecs
$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP_INSTALL) 'pdoc>=14' $(PIP_QUIET)
	touch $@

docs: $(VENV)/.installed-docs
	$(BIN)/python -W error -m pdoc -d google -o docs/api $(API_MODULES)

# the package outside the repository: wheel and sdist built, the wheel installed in a fresh venv
wheel-check: $(VENV)/.installed-dev
	PYTHON=$(PYTHON) scripts/wheel_check.sh

clean:
	rm -rf $(VENV) results docs/api .pytest_cache .mypy_cache .ruff_cache
