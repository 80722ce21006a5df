# Lambda-architecture retail analytics pipeline. `make` (or `make help`) lists every target.
# Every target runs from the project's own files; settings are RETAIL_* environment variables (docs/settings.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
RETAIL := .venv/bin/retail
PYTEST := .venv/bin/pytest
RATE ?= 200
DURATION ?= 30

.PHONY: help setup up down status produce demo test test-fast lint format clean

help: ## list every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: ## install everything missing: uv, the locked venv, JVM jars from Maven Central (idempotent)
	@bash scripts/setup.sh

up: setup ## start the local Kafka broker (KRaft, 127.0.0.1:9092) and create the topics
	@$(RETAIL) up

down: ## stop every local service this project started (no process left behind)
	@if [ -x $(RETAIL) ]; then $(RETAIL) down; else echo "nothing to stop (no venv)"; fi

status: ## show what runs, where, and the topics
	@$(RETAIL) status || true

produce: ## send generated events to Kafka: make produce RATE=200 DURATION=30
	@$(RETAIL) produce --rate $(RATE) --duration $(DURATION)

demo: up ## set up and run the pipeline on embedded defaults (see README: what runs so far)
	@$(RETAIL) produce --rate $(RATE) --duration $(DURATION) --late-ratio 0.02 --duplicate-ratio 0.01 --malformed-ratio 0.005

test: setup ## run the whole test suite (starts and stops its own broker on free ports)
	@$(PYTEST) tests

test-fast: setup ## unit tests only (no broker, no Airflow, no browser)
	@$(PYTEST) tests -m "not integration and not airflow and not browser"

lint: setup ## ruff lint + format check
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: setup ## apply ruff's formatting and safe fixes
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

clean: down ## delete everything the pipeline wrote (var/: lake, checkpoints, broker data) but keep the jar cache
	@rm -rf var/lake var/checkpoints var/kafka var/airflow test-artifacts
	@echo "removed var/lake var/checkpoints var/kafka var/airflow test-artifacts"
