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
# make demo: steps of CLIP pretraining of the tiny tower (batches of 64 captioned images); its hard
# negatives swap the synthetic palette's colour names within a caption
CLIP_STEPS ?= 600
CLIP_SWAP = $$($(PY) -c 'from datamix.synth import COLORS; print(",".join(COLORS))')
# training (make stage1 stage2): MODEL=7b|13b|tiny, NGPUS (per node), MIX / MIX1 (stage-1 mix), OUT, extra ARGS;
# HOSTFILE=F: multi-node through `deepspeed --hostfile F` (DeepSpeed's "host slots=N" lines; OUT on shared
# storage), LAUNCHER_ARGS: more launcher options (e.g. --master_addr HOST --launcher openmpi), EXPORT=0: stage2
# without the export (the other nodes of a --no_ssh launch)
MODEL ?= 7b
NGPUS ?= 1
ROOT ?= data
MIX1 ?= $(ROOT)/mixes/llava15_pretrain_558k
MIX ?= $(ROOT)/mixes/llava15_665k
OUT ?= runs/$(MODEL)
ARGS ?=
HOSTFILE ?=
LAUNCHER_ARGS ?=
EXPORT ?= 1
DEEPSPEED_LAUNCH = $(VENV)/bin/deepspeed $(if $(HOSTFILE),--hostfile $(HOSTFILE) )--num_gpus $(NGPUS) $(LAUNCHER_ARGS) --module trainer
LAUNCH = $(if $(HOSTFILE),$(DEEPSPEED_LAUNCH),$(if $(filter 1,$(NGPUS)),$(PY) -m trainer,$(DEEPSPEED_LAUNCH)))
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint demo demo-data stage1 stage2 bench clean

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

test: $(STAMP) ## Run the test suite (slow/gpu/network/compat tests deselected; the 15 slowest listed)
	$(VENV)/bin/pytest -q --durations=15

test-all: $(STAMP) ## Run every test including slow ones
	$(VENV)/bin/pytest -q -m "not gpu and not network and not compat"

.PHONY: test-compat
test-compat: $(STAMP) ## Load a tiny export with transformers 5 / 4.57 / 4.46 / 4.37 and vLLM, each in a venv under .compat-venvs/
	$(VENV)/bin/pytest -q -s -m compat tests/compat

lint: $(STAMP) ## ruff check + ruff format --check over all code, mypy over datamix/ and trainer/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo-data: $(STAMP) ## Synthetic raw data -> normalize -> build the demo mix and the stage-1 mix
	$(VENV)/bin/datamix synth --root $(DEMO_ROOT) --scale small
	$(VENV)/bin/datamix normalize --root $(DEMO_ROOT) --jobs $(JOBS)
	$(VENV)/bin/datamix build --recipe demo --root $(DEMO_ROOT) --jobs $(JOBS) --force
	$(VENV)/bin/datamix build --recipe llava15_pretrain_558k --root $(DEMO_ROOT) --jobs $(JOBS) --force
	$(VENV)/bin/datamix inspect $(DEMO_ROOT)/mixes/demo
	$(VENV)/bin/datamix export $(DEMO_ROOT)/mixes/demo --format llava-json --out $(DEMO_ROOT)/demo.json --force
	$(VENV)/bin/datamix lint $(DEMO_ROOT)/mixes/demo
	$(VENV)/bin/datamix contamination $(DEMO_ROOT)/mixes/demo --root $(DEMO_ROOT) --examples 2

demo: demo-data ## Everything end to end on CPU: data, tiny stage 1 + 2, export, eval (ends with a JSON line)
	rm -rf $(DEMO_ROOT)/runs $(DEMO_ROOT)/export
	$(PY) -m trainer clip --config recipes/train/tiny_stage1.yaml --set data.mix=$(DEMO_ROOT)/mixes/llava15_pretrain_558k \
		--out $(DEMO_ROOT)/runs/tiny_clip --steps $(CLIP_STEPS) --batch-size 64 --swap-words "$(CLIP_SWAP)"
	$(PY) -m trainer train --config recipes/train/tiny_stage1.yaml --set data.mix=$(DEMO_ROOT)/mixes/llava15_pretrain_558k \
		--set model.vision_tower=$(DEMO_ROOT)/runs/tiny_clip --set output_dir=$(DEMO_ROOT)/runs/tiny_stage1
	$(PY) -m trainer train --config recipes/train/tiny_stage2.yaml --set data.mix=$(DEMO_ROOT)/mixes/demo \
		--set model.vision_tower=$(DEMO_ROOT)/runs/tiny_clip \
		--set pretrained_projector=$(DEMO_ROOT)/runs/tiny_stage1 --set output_dir=$(DEMO_ROOT)/runs/tiny_stage2
	$(PY) -m trainer export --checkpoint $(DEMO_ROOT)/runs/tiny_stage2/final --out $(DEMO_ROOT)/export
	$(PY) examples/ask_fresh_shapes.py $(DEMO_ROOT)/export --n 60
	$(PY) -m trainer eval --model $(DEMO_ROOT)/export --mix $(DEMO_ROOT)/mixes/demo/eval \
		--match '^What colou?r is the' --export $(DEMO_ROOT)/export --out $(DEMO_ROOT)/eval.json

stage1: $(STAMP) ## Stage 1 (projector alignment) of MODEL on MIX1 -> OUT/stage1 (NGPUS, HOSTFILE, ARGS="--set k=v ...")
	$(LAUNCH) train --config recipes/train/$(if $(filter tiny,$(MODEL)),tiny,llava15_$(MODEL))_stage1.yaml \
		--set data.mix=$(MIX1) --set output_dir=$(OUT)/stage1 $(ARGS)

stage2: $(STAMP) ## Stage 2 (instruction tuning) of MODEL on MIX from OUT/stage1 -> OUT/stage2, then OUT/export
	$(LAUNCH) train --config recipes/train/$(if $(filter tiny,$(MODEL)),tiny,llava15_$(MODEL))_stage2.yaml \
		--set data.mix=$(MIX) --set pretrained_projector=$(OUT)/stage1 --set output_dir=$(OUT)/stage2 $(ARGS)
	$(if $(filter 1,$(EXPORT)),$(PY) -m trainer export --checkpoint $(OUT)/stage2/final --out $(OUT)/export)

bench: $(STAMP) ## Benchmarks (CPU; minutes) -> bench-results.json
	rm -f bench-results.json
	$(PY) benchmarks/bench_normalize.py --out bench-results.json
	$(PY) benchmarks/bench_build.py --out bench-results.json
	$(PY) benchmarks/bench_loader.py --n 1000 --out bench-results.json
	$(PY) benchmarks/bench_train_step.py --out bench-results.json
	@$(PY) -c "import json; [print(f\"{r['name']:<34} {str(r['value']):>10} {r['unit']:<10} x{r['ratio']}\") for r in json.load(open('bench-results.json'))]"

clean: ## Remove demo data, caches and build outputs (keeps .venv)
	rm -rf $(DEMO_ROOT) runs .pytest_cache .ruff_cache build *.egg-info bench-results.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
