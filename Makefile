# One set of commands for developers, the README and CI.
PYTHON ?= python

.PHONY: test lint check format

test:
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

check: lint test

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
