# Two commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# The interpreter that bootstraps uv: resolved before .venv/bin joins PATH.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV := PYTHON=$(PYTHON) bash scripts/uv.sh
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

.PHONY: help setup demo test lint bench bench-quick airflow browser services compose-tool clean

help:
	@echo "make demo   - set up .venv, run the whole pipeline (dvc repro), push to the local remote, summarize"
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make bench  - run the benchmark suite (bench/results.json, bench/results.md, bench/ratios.png)"
	@echo "make airflow - start Airflow standalone (SQLite) with this project's dags/ and plugins/"

# uv is bootstrapped with pip when missing (scripts/uv.sh); .venv comes from the committed uv.lock.
setup: .venv/.synced
.venv/.synced: pyproject.toml uv.lock
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	@touch $@

demo: setup
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "make demo needs a git checkout (DVC tracks the pipeline in git)"; exit 2; }
	dvc repro
	dvc push
	@echo
	dataops info data/tfrecords --report reports/validation.json
	@echo
	@echo "TFRecords: $(CURDIR)/data/tfrecords   DVC remote: $(CURDIR)/.dvcstore"

test: setup
	$(CURDIR)/.venv/bin/python -m pytest

lint: setup
	ruff check dataops dags plugins tests bench examples
	ruff format --check dataops dags plugins tests bench examples
	mypy dataops

bench: setup
	python bench/run.py

bench-quick: setup
	python bench/run.py --quick

airflow: setup
	bash scripts/airflow-standalone.sh

# Headless Chromium for the browser test (Debian's package); needs root and apt.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "chromium not installed: the browser test will be skipped"

# Postgres and Redis for the production-topology test (tests/release/test_publish_prod_stack.py),
# which starts and stops its own servers on loopback; needs root and apt.
services:
	@{ command -v redis-server >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null) ; } || \
		echo "postgresql/redis-server not installed: the production-topology test will be skipped"
	@# Debian's postgresql package starts a cluster on install; the test runs its own.
	@-command -v pg_ctlcluster >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | awk '{print $$1, $$2}' | while read v c; do pg_ctlcluster $$v $$c stop 2>/dev/null; done; true

# Debian's docker-compose (1.29) validates docker-compose.yml without a Docker engine (tests/test_compose.py).
compose-tool:
	@command -v docker-compose >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) ; } || \
		echo "docker-compose not installed: the compose file test will be skipped"

clean:
	rm -rf data reports/runs .dvcstore
