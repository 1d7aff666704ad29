# attnviz — every target sets itself up first; a second run reinstalls nothing.
PYTHON        ?= python3
VENV          ?= .venv
# The one place the torch version is set. On the reference machine this takes the CPU wheel on
# disk; elsewhere PyPI's normal build. Override: make setup TORCH_VERSION=2.6.0
TORCH_VERSION ?= 2.13.0
# Every other package's exact version: a pip constraints file written by `make lock` from an
# environment that passed `make test` (Python 3.11, Linux). `make setup LOCK=` installs unlocked.
LOCK          ?= .ci/constraints.txt
BIN           := $(VENV)/bin
STAMP         := $(VENV)/.attnviz-installed
PORT          ?= 8888
PYTEST_ARGS   ?=
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT    := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test demo bench handouts clean help lock

help:
	@echo "make lab    - set up, then open JupyterLab on notebooks/00_start_here.ipynb (127.0.0.1:$(PORT))"
	@echo "make test   - set up, then run the test suite"
	@echo "make demo   - write demo/spread.html with the attnviz CLI"
	@echo "make bench  - run the benchmarks into benchmarks/results/"
	@echo "make handouts - execute every notebook (fast; FAST=0 for full) into handouts/*.html, offline pages"
	@echo "make lock   - re-resolve the newest allowed versions into $(LOCK) (then: rm -rf $(VENV) && make test)"

setup: $(STAMP)

CONSTRAIN     := $(if $(LOCK),-c $(LOCK),)

$(STAMP): pyproject.toml Makefile $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(CONSTRAIN) --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAIN) "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet $(CONSTRAIN) -e ".[dev]"
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
	$(BIN)/python -m attnviz.studies.handouts --out handouts $(if $(filter 0,$(FAST)),--full,)

# Resolve the newest versions pyproject.toml allows in a scratch venv and write them to $(LOCK):
# every package but torch (set above) and attnviz itself. Commit the lock after `make test` passes on it.
LOCK_VENV     := $(VENV)-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	@{ echo "# attnviz's locked environment: pip constraints, written by \`make lock\` on $$(date -u +%Y-%m-%d)"; \
	   echo "# ($$($(LOCK_VENV)/bin/python -c 'import platform; print("Python", platform.python_version(), platform.system(), platform.machine())')). torch is set in the Makefile (TORCH_VERSION)."; \
	   $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable \
	     | grep -v -i -E '^(torch|attnviz|setuptools|wheel|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)[=@ ]' | sort -f; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf $(LOCK_VENV)
	@echo "wrote $(LOCK) ($$(grep -c '==' $(LOCK)) packages); now: rm -rf $(VENV) && make test, then commit it"

clean:
	rm -rf demo handouts .pytest_cache
