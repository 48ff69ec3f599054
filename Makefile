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
REPEATS ?= 2
EPOCHS ?= 200
JOBS ?= 2
DEVICE ?= cpu
METHODS ?= random_real coda_r kmeans herding unguided text_prompt coda_g
PM := $(PY) -m papermill --log-output --progress-bar

.PHONY: study test unit nbval prior data bench check-cuda clean-venv help

help:
	@echo "make study   run the study on the embedded world (results in $(RUN_DIR)/, figures in figures/)"
	@echo "make test    run the unit tests and nbval over the notebooks"
	@echo "make prior   retrain the embedded prior (about 90 min on 2 cores; DEVICE=cuda: minutes)"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make check-cuda   a one-minute check of the CUDA code paths (on a GPU machine)"
	@echo "study options: IPC=10 REPEATS=2 EPOCHS=200 JOBS=2 RUN=study REDO=1 (rerun finished stages)"

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

# The study: 01 encode -> 02 discover -> 03 generate -> 04 evaluate (one run per method, JOBS at a
# time) -> 06 figures. Each stage's executed notebook is its "done" mark: a second call skips
# finished stages; `make study REDO=1` runs every stage again (a stage resumes what it can).
STAGES := $(RUN_DIR)/01_encode.ipynb $(RUN_DIR)/02_discover_ipc$(IPC).ipynb $(RUN_DIR)/03_generate_ipc$(IPC).ipynb
EVALS := $(foreach m,$(METHODS),$(RUN_DIR)/eval/$(m)_ipc$(IPC)/04_evaluate.ipynb)
# papermill into a temporary name, renamed when the notebook finished: a failed stage is redone
define papermill
	@mkdir -p $(dir $(2))
	$(PM) $(1) $(2).part.ipynb $(3) && mv $(2).part.ipynb $(2)
endef

study: data
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j$(JOBS) $(if $(REDO),-B) $(RUN_DIR)/06_figures.ipynb && \
	echo "make study: $(RUN_DIR) done in $$(( $$(date +%s) - start )) s; results in $(RUN_DIR)/results.md"

$(RUN_DIR)/01_encode.ipynb:
	$(call papermill,notebooks/01_encode.ipynb,$@,-p run_dir $(RUN_DIR))

$(RUN_DIR)/02_discover_ipc$(IPC).ipynb: $(RUN_DIR)/01_encode.ipynb
	$(call papermill,notebooks/02_discover.ipynb,$@,-p ipc $(IPC) -p run_dir $(RUN_DIR))

$(RUN_DIR)/03_generate_ipc$(IPC).ipynb: $(RUN_DIR)/02_discover_ipc$(IPC).ipynb
	$(call papermill,notebooks/03_generate.ipynb,$@,-p ipc $(IPC) -p run_dir $(RUN_DIR))

# one evaluation per method, on one thread each so that JOBS of them share the cores
$(RUN_DIR)/eval/%_ipc$(IPC)/04_evaluate.ipynb: $(RUN_DIR)/03_generate_ipc$(IPC).ipynb
	$(call papermill,notebooks/04_evaluate.ipynb,$@,-p distilled $(if $(filter random_real,$*),random_real,$(RUN_DIR)/sets/$*_ipc$(IPC)) \
	    -p method $* -p ipc $(IPC) -p repeats $(REPEATS) -p epochs $(EPOCHS) -p run_dir $(dir $@) \
	    -p figures_dir $(dir $@) -p threads 1)

$(RUN_DIR)/06_figures.ipynb: $(EVALS)
	$(call papermill,notebooks/06_figures.ipynb,$@,-p run_dir $(RUN_DIR) -p ipc $(IPC))

unit: data
	$(PY) -m pytest -q tests

nbval: data
	rm -rf build/nbval && $(PY) tests/execute_notebooks.py build/nbval
	$(PY) -m pytest -q --nbval build/nbval/*.ipynb --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

test: unit nbval

prior: data
	@mkdir -p runs/prior-build
	$(PM) notebooks/00_build_prior.ipynb runs/prior-build/00_build_prior.ipynb \
	    -p out_dir data/models/fashion-prior -p overwrite_shipped True -p work_dir runs/prior-build -p device $(DEVICE)

bench: data
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_discovery.py

check-cuda: data
	$(PY) benchmarks/check_cuda.py

clean-venv:
	rm -rf $(VENV)
