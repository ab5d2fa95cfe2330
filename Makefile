# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install the project with the pinned torch wheels first.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test quick-test lint

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
