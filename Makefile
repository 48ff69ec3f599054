# The two commands of the README:
#   make study   - the CoDA study on the embedded world (Fashion-MNIST + the shipped tiny prior)
#   make test    - unit tests, a small end-to-end run, and nbval over the notebooks
# Both create .venv on first use and install the project; later calls install nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.coda-installed
RUN ?= study
RUN_DIR := runs/$(RUN)
IPC ?= 10
REPEATS ?= 5
EPOCHS ?= 300
PM := $(PY) -m papermill --log-output --progress-bar

.PHONY: study test unit nbval prior data bench clean-venv help

help:
	@echo "make study   run the study on the embedded world (results in $(RUN_DIR)/, figures in figures/)"
	@echo "make test    run the unit tests and nbval over the notebooks"
	@echo "make prior   retrain the embedded prior (about 45 min on 2 cores)"
	@echo "make bench   run the benchmarks in benchmarks/"

$(STAMP): pyproject.toml environment.yml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned, so that no other package pulls a multi-GB CUDA build
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

data: $(STAMP)
	@$(PY) -c "from coda_utils.datasets import find_fashion_mnist; find_fashion_mnist()" 2>/dev/null \
	|| { if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	       echo "Installing Debian package dataset-fashion-mnist"; \
	       apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; \
	     fi; \
	     $(PY) -c "from coda_utils.datasets import find_fashion_mnist; print('Fashion-MNIST:', find_fashion_mnist())"; }

study: data
	@mkdir -p $(RUN_DIR)
	$(PM) notebooks/04_evaluate.ipynb $(RUN_DIR)/04_evaluate.ipynb \
	    -p method random_real -p ipc $(IPC) -p repeats $(REPEATS) -p epochs $(EPOCHS) -p run_dir $(RUN_DIR)

unit: data
	$(PY) -m pytest -q tests

nbval: data
	rm -rf build/nbval && $(PY) tests/execute_notebooks.py build/nbval
	$(PY) -m pytest -q --nbval build/nbval/*.ipynb --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

test: unit nbval

prior: data
	@mkdir -p runs/prior-build
	$(PM) notebooks/00_build_prior.ipynb runs/prior-build/00_build_prior.ipynb \
	    -p out_dir data/models/fashion-prior -p overwrite_shipped True -p work_dir runs/prior-build

bench: data
	$(PY) benchmarks/bench_evaluation.py

clean-venv:
	rm -rf $(VENV)
