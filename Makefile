# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and installs what it needs into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-test

.PHONY: demo test install bench gpu-check kernel-report clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[models]'
	touch $@
	@echo "installed into $(VENV): the command is $(VENV)/bin/tinygrad-dot (or: source $(VENV)/bin/activate)"

# PyTorch is an optional cross-check in the tests (they skip, saying why, without
# it). It is installed only where a local CPU wheel exists, as on our CI machines:
# from PyPI it would be a multi-GB CUDA build.
TORCH_CPU_WHEEL := $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl))

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]' $(TORCH_CPU_WHEEL)
	touch $@ $(VENV)/.installed
	@echo "installed into $(VENV): the command is $(VENV)/bin/tinygrad-dot (or: source $(VENV)/bin/activate)"

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m tinygrad_dot demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/gemm.py
	$(PY) benchmarks/train.py

# On a machine with an NVIDIA GPU: GPU tests, memcheck, then the GEMM benchmark (logs under $$OUT if set).
gpu-check: $(STAMP)
	PYTHON=$(PY) bash benchmarks/gpu_check.sh

# Every kernel variant from its SASS (NVRTC + nvdisasm, no GPU needed): the hot K loop's FMA share and
# shared-memory bytes per FMA, registers, spills, shared memory, blocks per SM; JSON and SASS under build/.
kernel-report: $(STAMP)
	$(PY) -m tinygrad_dot.gemm.report --json build/kernel-report.json --sass-dir build/sass

clean:
	rm -rf $(VENV) build dist *.egg-info
