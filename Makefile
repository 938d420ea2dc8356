# `make test`: install what is missing (venv, rig servers; cached), then the whole suite
# (tests/unit and tests/integration).
PYTHON := .venv/bin/python

.PHONY: setup test

setup:
	bash rig/setup.sh

test: setup
	$(PYTHON) -m pytest
