# meterline: the two commands of the README, and a few more.
#   make demo   create .venv (first time), run the pipeline end to end on the embedded default
#   make test   create .venv (first time), run ruff, mypy and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test up lint typecheck unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/meterline demo

up: $(STAMP)
	$(BIN)/meterline up

test: lint typecheck
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

integration: $(STAMP)
	$(BIN)/python -m pytest -m integration

clean:
	rm -rf $(VENV) .meterline .pytest_cache .mypy_cache .ruff_cache
