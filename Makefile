# e2eai — the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov in its own venv: its pins (boto3, protobuf, packaging) clash with the platform's.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
TORCH := torch==2.13.0

help: ## List the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install e2eai with its locked dependencies
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	# torch first and alone: a resolver that sees a looser torch pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -r requirements.lock $(TORCH)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

tools: $(TOOLS_STAMP) ## Create .venv-tools with checkov (for `e2eai manifests validate`)
$(TOOLS_STAMP): requirements-tools.lock
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet -r requirements-tools.lock
	$(TOOLS_VENV)/bin/pip check
	touch $@

run: install ## Run the whole loop locally on the embedded defaults (real 2013 flights)
	$(BIN)/e2eai run

system-deps: ## Install the OS packages tests use (PostgreSQL, Redis, Chromium, Fashion-MNIST), when missing
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install tools system-deps ## Lint and run the test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest --durations=25

test-fast: install tools ## Tests without the slow (real-data, multi-process) ones
	$(BIN)/pytest -m "not slow"

lint: install ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install ## Run the benchmarks in bench/ (not part of the tests)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lock: install ## Re-freeze requirements.lock from the current venv
	{ head -2 requirements.lock; $(BIN)/pip freeze --exclude-editable | grep -v '^torch=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean: ## Remove local run outputs (keeps .venv)
	rm -rf runs feature_repo/data

lock-tools: tools ## Re-freeze requirements-tools.lock from .venv-tools
	{ head -2 requirements-tools.lock; $(TOOLS_VENV)/bin/pip freeze; } > requirements-tools.lock.new
	mv requirements-tools.lock.new requirements-tools.lock

.PHONY: help install tools lock-tools system-deps run test test-fast lint format bench lock clean
