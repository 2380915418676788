# The two set-up commands of the README:
#   make course   create .venv, install everything, register the kernel, open the course in JupyterLab
#   make test     create or reuse .venv, install, run the whole test suite
#   make explore  the same set-up, then open the Memory Explorer app (Voila, no code shown)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KERNEL := hope-lite
# JupyterLab refuses to run as root (containers, cloud machines) unless told it may
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# JupyterLab settings of the environment: no Jupyter news pop-up, no update check
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
# Without a CUDA driver, take torch's CPU build (a local wheel on our CI machines). Users elsewhere
# can point pip at PyTorch's CPU index: make course TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_CPU ?= torch==2.13.0
TORCH_PIP_ARGS ?=

.PHONY: course explore test install kernel browser book bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	@if $(BIN)/python -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install --quiet "torch>=2.4"; \
	else $(BIN)/pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_CPU)"; fi
	$(BIN)/pip install --quiet -e ".[test]"

kernel: install
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "hope_lite (Python 3)" >/dev/null
	mkdir -p $(LAB_SETTINGS) && cp tools/jupyterlab/overrides.json $(LAB_SETTINGS)/overrides.json

course: kernel
	$(BIN)/jupyter lab --ip=127.0.0.1 $(ALLOW_ROOT) notebooks/00_start_here.ipynb

# the Memory Explorer (widgets/explorer.ipynb) served by Voila on 127.0.0.1 (Voila runs as root as
# is, no flag needed); its Export button writes to build/explorer/
explore: kernel
	$(BIN)/python -m hope_lite explore --ip=127.0.0.1 --export-dir=build/explorer

test: kernel browser
	$(BIN)/python -m pytest

# Debian's headless Chromium for tests/test_browser.py (playwright drives it; no browser download)
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium already installed"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "apt-get could not install chromium: tests/test_browser.py will skip"; \
	else echo "no chromium and no root apt-get: tests/test_browser.py will skip"; fi

# run every notebook with papermill into build/notebooks/, then the static book build/book/index.html
book: kernel
	$(BIN)/python tools/notebooks.py build

bench: install
	$(BIN)/python benchmarks/titans_memory.py

clean:
	rm -rf $(VENV) build .pytest_cache
