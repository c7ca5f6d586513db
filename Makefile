# datamix — run `make help` for the list of targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU build of PyTorch, installed before the project so that no CUDA build is pulled in.
TORCH_SPEC ?= torch==2.13.0
DEMO_ROOT ?= demo-data
JOBS ?= 2
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint demo bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev,train]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install torch (CPU) + datamix with dev and train extras
	@echo "installed into $(VENV)"

test: $(STAMP) ## Run the test suite (slow/gpu/network tests deselected)
	$(VENV)/bin/pytest -q

test-all: $(STAMP) ## Run every test including slow ones
	$(VENV)/bin/pytest -q -m "not gpu and not network"

lint: $(STAMP) ## Ruff lint
	$(VENV)/bin/ruff check datamix tests

demo: $(STAMP) ## End to end on synthetic data: synth -> normalize -> build -> export -> lint (CPU, minutes)
	$(VENV)/bin/datamix synth --root $(DEMO_ROOT) --scale small
	$(VENV)/bin/datamix normalize --root $(DEMO_ROOT) --jobs $(JOBS)
	$(VENV)/bin/datamix build --recipe demo --root $(DEMO_ROOT) --jobs $(JOBS) --force
	$(VENV)/bin/datamix inspect $(DEMO_ROOT)/mixes/demo
	$(VENV)/bin/datamix export $(DEMO_ROOT)/mixes/demo --format llava-json --out $(DEMO_ROOT)/demo.json --force
	$(VENV)/bin/datamix lint $(DEMO_ROOT)/mixes/demo

bench: $(STAMP) ## Benchmarks (CPU; minutes) -> bench-results.json
	rm -f bench-results.json
	$(PY) benchmarks/bench_normalize.py --out bench-results.json
	$(PY) benchmarks/bench_build.py --out bench-results.json
	@$(PY) -c "import json; [print(f\"{r['name']:<34} {r['value']:>10} {r['unit']:<10} x{r['ratio']}\") for r in json.load(open('bench-results.json'))]"

clean: ## Remove demo data, caches and build outputs (keeps .venv)
	rm -rf $(DEMO_ROOT) .pytest_cache .ruff_cache build *.egg-info bench-results.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
