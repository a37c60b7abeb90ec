# Airloop — every command a person needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo demo-loop up down status test test-fast test-integration test-compose test-ui bench bench-smoke evaluate-loop lint lock clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Airloop with its pinned dependencies

demo: $(STAMP) ## Start Airflow + MLflow, train once through the REST API, print the champion
	$(BIN)/airloop demo

demo-loop: $(STAMP) ## Replay 2013 against the closed loop (drift -> retrain -> deploy); prints a timeline (~20 min)
	$(BIN)/airloop demo-loop --pipeline flights

up: $(STAMP) ## Start the embedded services in the background (no run)
	$(BIN)/airloop up

down: ## Stop the services `make up`/`make demo` started
	@if [ -x $(BIN)/airloop ]; then $(BIN)/airloop down; else echo "nothing installed, nothing running"; fi

status: $(STAMP) ## Show which embedded services are running
	$(BIN)/airloop status

test: $(STAMP) ## All tests: unit, DAG validation, and integration on the real services (not the compose stack)
	$(BIN)/pytest -m "not compose"

test-fast: $(STAMP) ## Unit and DAG tests only (no services)
	$(BIN)/pytest -m "not integration and not compose"

test-compose: $(STAMP) ## docker-compose.yaml for real: images built offline, three Celery workers, two pipelines' runs, a promotion served (~8 min on overlay2, ~17 on vfs)
	$(BIN)/pytest -m compose tests/compose

test-integration: $(STAMP) ## Integration tests only (starts Airflow and MLflow on free ports)
	$(BIN)/pytest -m integration

test-ui: $(STAMP) ## Browser tests of the Airloop page (Debian's Chromium via Playwright; starts the services)
	$(BIN)/pytest tests/ui

bench: $(STAMP) ## Benchmarks vs MLflow serving, Evidently, GX, in-process runs (~25 min), then the loop replay (as evaluate-loop): benchmarks/RESULTS.md
	@command -v wrk >/dev/null || { echo "installing wrk (the HTTP load generator) with apt-get"; \
		apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
	$(BIN)/python -m benchmarks.run --size full

evaluate-loop: $(STAMP) ## Replay 2013 day by day: the policy against never and scheduled retraining (~100 min; bench_loop --quick ~10)
	$(BIN)/python -m benchmarks.run --size full loop

bench-smoke: $(STAMP) ## The same benchmarks at tiny sizes, into a temporary folder (part of `make test`)
	$(BIN)/pytest tests/benchmarks

lint: $(STAMP) ## ruff (with Airflow's AIR rules) and mypy
	$(BIN)/ruff check include dags plugins tests benchmarks
	$(BIN)/ruff format --check include dags plugins tests benchmarks
	$(BIN)/mypy

lock: ## Re-resolve requirements.lock from pyproject.toml
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev pyproject.toml -o requirements.lock

clean: down ## Stop services and delete .venv and the .airloop state folder
	rm -rf $(VENV) .airloop
