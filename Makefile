# meterline: the two commands of the README, and a few more.
#   make demo   create .venv (first time), run the pipeline end to end on the embedded default
#   make test   create .venv (first time), run ruff, mypy and the whole test suite
#               (installs headless Chromium from Debian first if it is missing: `make browser`,
#               and Node.js with npm for the Node OTLP example's test: `make node`)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test up dashboard lint typecheck unit integration browser node bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/meterline demo

up: $(STAMP)
	$(BIN)/meterline up

test: lint typecheck browser node
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

integration: $(STAMP) browser node
	$(BIN)/python -m pytest -m integration

dashboard: $(STAMP)
	$(BIN)/meterline dashboard

# Headless Chromium and its driver (Debian packages) for the dashboard's browser test.
# Installs only what is missing, as root or through sudo. A failed install does not stop
# `make test`: the browser test then fails and says that Chromium is missing.
CHROMIUM_PACKAGES := chromium chromium-driver fonts-dejavu-core
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		exit 0; \
	elif ! command -v apt-get >/dev/null; then \
		echo "make browser: no apt-get here; install Chromium and chromedriver yourself" \
			"(or set METERLINE_CHROMIUM / METERLINE_CHROMEDRIVER)" >&2; \
	else \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "make browser: installing $(CHROMIUM_PACKAGES) (Debian packages) ..."; \
		{ $$sudo apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
				$(CHROMIUM_PACKAGES) >/dev/null; } \
		|| echo "make browser: installing Chromium failed; the dashboard browser test will fail" >&2; \
	fi

# Node.js and npm for tests/producers/gateway/test_otlp_node_integration.py, which runs
# examples/node-otlp (its own `npm ci` goes to a cache outside the repo, see that test).
# Only when missing: Debian's nodejs (18.19+) and npm satisfy the example's engines. A failed
# install does not stop `make test`: that test then fails and says that npm is missing.
node:
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
		exit 0; \
	elif ! command -v apt-get >/dev/null; then \
		echo "make node: no apt-get here; install Node.js (>= 18.19) and npm yourself" >&2; \
	else \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "make node: installing nodejs npm (Debian packages) ..."; \
		{ $$sudo apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
				nodejs npm >/dev/null; } \
		|| echo "make node: installing Node.js failed; the Node OTLP example test will fail" >&2; \
	fi

clean:
	rm -rf $(VENV) .meterline .pytest_cache .mypy_cache .ruff_cache
