# Lambda-architecture retail analytics pipeline. `make` (or `make help`) lists every target.
# Every target runs from the project's own files; settings are RETAIL_* environment variables (docs/settings.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
RETAIL := .venv/bin/retail
PYTEST := .venv/bin/pytest
RATE ?= 200
DURATION ?= 30
SEED ?= 42
DEMO_EVENTS ?= 30000
DEMO_SECONDS ?= 300

.PHONY: help setup up down status produce demo test test-fast lint lint-code audit format clean serve dashboard bench-serve

help: ## list every target with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

setup: ## install everything missing: uv, the locked venv, JVM jars from Maven Central, class-data archives for faster JVM starts (idempotent)
	@bash scripts/setup.sh

up: setup ## start the local Kafka broker (KRaft, 127.0.0.1:9092) and create the topics
	@$(RETAIL) up

down: ## stop everything this project started: background services, Airflow, the broker, the clusters (no process left behind)
	@if [ -x $(RETAIL) ]; then $(RETAIL) stop; $(RETAIL) airflow stop; $(RETAIL) down; \
		$(RETAIL) cluster spark down; $(RETAIL) cluster kafka down; else echo "nothing to stop (no venv)"; fi

status: ## show what runs, where, and the topics (broker, background services, Airflow, the clusters)
	@$(RETAIL) status || true
	@$(RETAIL) airflow status || true
	@$(RETAIL) cluster spark status | head -1 || true
	@$(RETAIL) cluster kafka status | head -4 || true

produce: ## send generated events to Kafka: make produce RATE=200 DURATION=30
	@$(RETAIL) produce --rate $(RATE) --duration $(DURATION)

demo: ## make setup, then a retailer's day end to end: broker, speed layer, API, dashboard, yesterday + live events, one Airflow batch run (services keep running: make down)
	@started=$$(date +%s.%N); $(MAKE) --no-print-directory setup && \
		$(RETAIL) demo --started-at $$started --seed $(SEED) --yesterday-events $(DEMO_EVENTS) --live-seconds $(DEMO_SECONDS)

test: ## setup, lint (incl. the import contracts), audit, then the whole suite, cluster tests included (own brokers and clusters on free ports; installs chromium and the s3 jars); ends with the 15 slowest tests and the wall time
	@started=$$(date +%s); status=0; \
	{ bash scripts/setup.sh --browser && \
	  .venv/bin/python infra/fetch_jars.py --group s3 && \
	  $(MAKE) --no-print-directory lint-code && \
	  PATH="$$HOME/.local/bin:$$PATH" .venv/bin/python -m infra.audit --offline-ok && \
	  $(PYTEST) tests; } || status=$$?; \
	elapsed=$$(( $$(date +%s) - started )); \
	printf 'make test: %s in %dm%02ds of wall time (setup, lint, audit and the suite)\n' \
		"$$([ $$status = 0 ] && echo passed || echo FAILED)" $$((elapsed / 60)) $$((elapsed % 60)); \
	exit $$status

test-fast: setup ## unit tests only (no broker, no cluster, no Airflow, no browser)
	@$(PYTEST) tests -m "not integration and not airflow and not browser and not cluster"

lint: setup ## ruff lint + format check + the layering rules (import-linter contracts in pyproject.toml) + notebooks without outputs
	@$(MAKE) --no-print-directory lint-code

lint-code:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .
	@.venv/bin/lint-imports
	@.venv/bin/python -m infra.notebook check

audit: setup ## dependency vulnerability audit of uv.lock (pip-audit; OSV, then PyPI); findings explained in audit-exceptions.txt
	@PATH="$$HOME/.local/bin:$$PATH" .venv/bin/python -m infra.audit

format: setup ## apply ruff's formatting and safe fixes
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

serve: setup ## run the serving layer's HTTP JSON API on 127.0.0.1:8000 (docs/serving.md)
	@$(RETAIL) serve

dashboard: setup ## run the live Dash dashboard on 127.0.0.1:8050 (docs/serving.md)
	@$(RETAIL) dashboard

bench-serve: setup ## p50/p95 of the merged query over 30 days of minute data and of a dashboard refresh -> BENCHMARKS.md
	@.venv/bin/python -m benchmarks.serving

.PHONY: notebook notebook-strip
notebook: setup ## JupyterLab for notebooks/ on 127.0.0.1:RETAIL_NOTEBOOK_PORT (8888) with a login token (RETAIL_NOTEBOOK_TOKEN or generated; URL printed once)
	@PATH="$$HOME/.local/bin:$$PATH" uv sync --frozen --quiet --group notebook
	@.venv/bin/python -m infra.notebook lab

notebook-strip: ## remove outputs and execution counts from notebooks/*.ipynb (committed notebooks must have none)
	@.venv/bin/python -m infra.notebook strip

clean: down ## delete everything the pipeline wrote (var/: lake, checkpoints, broker data) but keep the jar cache
	@rm -rf var/lake var/checkpoints var/kafka var/kafka-cluster var/spark-cluster var/airflow test-artifacts
	@echo "removed var/lake var/checkpoints var/kafka var/kafka-cluster var/spark-cluster var/airflow test-artifacts"

.PHONY: speed bench-speed
speed: up ## run the speed layer until Ctrl-C (Kafka -> bronze, quarantine, rollups, inventory, alerts)
	@$(RETAIL) speed

bench-speed: setup ## benchmark the speed layer (throughput, event->served latency, backlog drain) -> BENCHMARKS.md
	@.venv/bin/python -m benchmarks.speed

# --- batch layer (docs/batch.md) ------------------------------------------------------------------
DATE ?=
EVENTS ?= 10000000
.PHONY: batch airflow airflow-down bench-batch

batch: setup ## recompute, validate and publish the exact batch views for a UTC day: make batch DATE=YYYY-MM-DD (default yesterday)
	@$(RETAIL) batch $(if $(DATE),--date $(DATE),)

airflow: setup ## start local Airflow (api-server, scheduler, dag-processor on 127.0.0.1) with the nightly batch DAG; prints the login
	@$(RETAIL) airflow start

airflow-down: ## stop local Airflow (by process group; `make down` does this too)
	@$(RETAIL) airflow stop

bench-batch: setup ## Spark vs DuckDB over EVENTS (10M) generated events, the nightly run of a small day, its growth over 1/10/30 days of history -> BENCHMARKS.md
	@.venv/bin/python -m benchmarks.batch --events $(EVENTS) --reuse

# --- scale-out: Spark's and Kafka's own clustering on this machine (docs/scale-out.md) ---------------------
.PHONY: spark-cluster spark-cluster-down kafka-cluster kafka-cluster-down setup-s3 bench-scale-out bench-jvm

spark-cluster: setup ## start a Spark standalone master + 2 workers (1 core, 1g each) on 127.0.0.1:7077 (then RETAIL_SPARK_MASTER=spark://127.0.0.1:7077)
	@$(RETAIL) cluster spark up

spark-cluster-down: ## stop the Spark standalone cluster (workers, executors, master; by process group)
	@$(RETAIL) cluster spark down

kafka-cluster: setup ## start a 3-node Kafka cluster (KRaft, replication 3, min.insync.replicas 2) on 127.0.0.1:9192-9194 with the topics
	@$(RETAIL) cluster kafka up

kafka-cluster-down: ## stop the 3-node Kafka cluster (by process group)
	@$(RETAIL) cluster kafka down

setup-s3: setup ## fetch the jars for a lake on s3a:// (hadoop-aws + the AWS SDK modules it needs, 13 MB) into var/cache/jars/s3
	@.venv/bin/python infra/fetch_jars.py --group s3

bench-jvm: setup ## JVM start-up with and without the class-data archives `make setup` builds (Spark driver, Kafka broker) -> BENCHMARKS.md
	@.venv/bin/python -m benchmarks.jvm_start

bench-scale-out: setup ## time the batch job on local[2] vs the 2-worker Spark cluster, and speed latency on both -> docs/scale-out.md numbers
	@.venv/bin/python -m benchmarks.scale_out

# --- every benchmark, repeated: medians, spread, the stack's memory, plots ------------------------------------
REPEATS ?= 3
ONLY ?= speed,batch,serve,memory
.PHONY: bench

bench: setup ## every benchmark REPEATS (3) times (ONLY=speed,batch,serve,memory), medians + min-max, the running stack's memory (PSS) -> BENCHMARKS.md, docs/bench/*.png
	@.venv/bin/python -m benchmarks.all --repeats $(REPEATS) --only $(ONLY)
