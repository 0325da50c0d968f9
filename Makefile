# One set of commands for developers, the README and CI.
PYTHON ?= python

.PHONY: test lint check format

# Two workers (pytest-xdist): the suite's tests are independent, and most wait on child
# processes; on this project's 2-core CI machine two take it from 8.5 to about 6 minutes.
TEST_WORKERS ?= 2

test:
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -n $(TEST_WORKERS)

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

check: lint test

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
