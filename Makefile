# attnviz — every target sets itself up first; a second run reinstalls nothing.
PYTHON        ?= python3
VENV          ?= .venv
# The one place the torch version is set. On the reference machine this takes the CPU wheel on
# disk; elsewhere PyPI's normal build. Override: make setup TORCH_VERSION=2.6.0
TORCH_VERSION ?= 2.13.0
BIN           := $(VENV)/bin
STAMP         := $(VENV)/.attnviz-installed
PORT          ?= 8888
PYTEST_ARGS   ?=
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT    := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test demo bench handouts clean help

help:
	@echo "make lab    - set up, then open JupyterLab on notebooks/00_start_here.ipynb (127.0.0.1:$(PORT))"
	@echo "make test   - set up, then run the test suite"
	@echo "make demo   - write demo/spread.html with the attnviz CLI"
	@echo "make bench  - run the benchmarks into benchmarks/results/"
	@echo "make handouts - execute every notebook (fast; FAST=0 for full) into handouts/*.html, offline pages"

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m attnviz.assets install
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $@

lab: setup
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --notebook-dir=. $(ALLOW_ROOT) \
		--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	@mkdir -p demo
	$(BIN)/attnviz spread --window 64 --layers 6 --length 1024 --placement prefix --n-tokens 20 --out demo/spread.html
	$(BIN)/attnviz spread --window 64 --layers 6 --length 1024 --placement prefix --n-tokens 20 --global-prompt --out demo/spread-global.html

bench: setup
	$(BIN)/python -m benchmarks

# Execute notebooks/*.ipynb (ATTNVIZ_FAST=1; FAST=0 for the full runs) and export offline HTML to handouts/.
FAST          ?= 1
handouts: setup
	$(BIN)/python -m attnviz.handouts --out handouts $(if $(filter 0,$(FAST)),--full,)

clean:
	rm -rf demo handouts .pytest_cache
