# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install the project with the pinned torch wheels first.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test quick-test lint test-floors

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install torch==2.14.1 torchvision==0.29.1 -e '.[test,validation]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cxrds demo --out cxrds-demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/python -m pytest

# Checks an install in about two minutes: the fast tests (no classifier study, no multi-process runs, no long training).
quick-test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow"

# Every dependency at the floor pyproject.toml declares (torch pinned as above), in its own venv, then the fast
# tests: proves the floors are true. Not part of `make test`; needs PyPI. See docs/dependencies.md. docs/cli.md is
# the help text of the typer that generated it, so its staleness check is left to `make test`.
FLOORS_VENV ?= .venv-floors
test-floors:
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(PYTHON) .ci/floors.py test validation > $(FLOORS_VENV)/floors.txt
	$(FLOORS_VENV)/bin/pip install -c $(FLOORS_VENV)/floors.txt torch==2.14.1 torchvision==0.29.1 -e '.[test,validation]'
	$(FLOORS_VENV)/bin/python -m pytest -q -m "not slow" $(PYTEST_ARGS) \
		--deselect tests/test_docs.py::test_docs_cli_and_schema_references_are_up_to_date
