# Arbiter: `make demo` runs the embedded demo; `make test` runs the whole suite against
# throwaway PostgreSQL and Redis.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch: on this machine kind pip takes it from local disk in seconds, where an
# open range would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
DEMO_PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: demo test lint format clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@DEBUG=1 $(PY) manage.py migrate --noinput -v0
	@DEBUG=1 $(PY) manage.py seed_demo
	@DEBUG=1 $(PY) manage.py serve_demo --port $(DEMO_PORT)

test: $(STAMP)
	tests/services.sh $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf var .pytest_cache
