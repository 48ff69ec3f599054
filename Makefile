# The two commands of the README:
#   make study   - the CoDA study on the embedded world (Fashion-MNIST + the shipped tiny prior)
#   make test    - unit tests, a small end-to-end run, and nbval over the notebooks
# Both create .venv on first use and install the locked environment (requirements.lock, exact
# versions with hashes); later calls install nothing until pyproject.toml or the lock change.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
STAMP := $(VENV)/.coda-installed
# `make study`: IPC 10, 5 selection seeds x 1 network per method, the DC protocol shortened to
# STUDY_EPOCHS so that the whole study fits in about 22 minutes on 2 CPU cores (README: why that length).
# `make full`: the full protocol (300 epochs) at IPC 1, 10 and 50 with the same seeds.
RUN ?= study
FULL_RUN ?= full
IPCS ?= 10
SEEDS ?= 0 1 2 3 4
REPEATS ?= 1
STUDY_EPOCHS ?= 100
EPOCHS ?= $(STUDY_EPOCHS)
# fp32: the same numbers on every CPU (coda_utils.numerics); auto / bf16: the fast path, CPU-dependent
PRECISION ?= fp32
JOBS ?= 2
# Every stage of a run has THREADS threads: JOBS processes share the cores, and a process with
# two OpenMP threads on a core that another process keeps busy runs tens of times slower.
THREADS ?= 1
THREAD_ENV := OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS) NUMBA_NUM_THREADS=$(THREADS)
DEVICE ?= cpu
REAL_METHODS ?= coda_r kmeans herding
GEN_METHODS ?= unguided text_prompt coda_g
# the ceiling of a generator in the prior's latent space: R / random real through the VAE and back
CEILING_METHODS ?= vae_coda_r vae_random_real
RUN_DIR := runs/$(RUN)
# 06 redraws the ablation figures of notebook 05 when its points exist (None: not drawn; make full)
ABLATIONS ?= runs/ablations
# figures/ and results/ are the shipped ones: only `make study` and `make full` write them
FIGURES ?= $(RUN_DIR)/figures
PM := $(PY) -m papermill --log-output --progress-bar
comma := ,
empty :=
space := $(empty) $(empty)
SEEDS_YAML := [$(subst $(space),$(comma)$(space),$(strip $(SEEDS)))]
# 03 makes the sets of GEN_METHODS (its tutorial default makes coda_g only)
GEN_METHODS_YAML := [$(subst $(space),$(comma)$(space),$(strip $(GEN_METHODS)))]
# 02 exports the selections of REAL_METHODS (make no-noise-fill adds coda_r_no_noise_fill)
REAL_METHODS_YAML := [$(subst $(space),$(comma)$(space),$(strip $(REAL_METHODS)))]

.PHONY: study full soft-labels selection-generation no-noise-fill run publish readme paper test unit lint nbval notebooks lab prior data bench check-cuda lock clean-venv help

help:
	@echo "make study   the study on the embedded world: IPC 10, 5 selection seeds, every method ($(RUN_DIR)/, results/study.csv, README tables)"
	@echo "make full    the full protocol (dc, 300 epochs) at IPC 1, 10 and 50, 5 selection seeds (hours on a CPU)"
	@echo "make soft-labels   the soft-label protocol (rded, a teacher's labels) on the full run's IPC-10 sets (results/soft_labels.csv)"
	@echo "make no-noise-fill   R without the fill from HDBSCAN's noise beside R and random real, IPC 10 and 50 (results/no_noise_fill.csv)"
	@echo "make selection-generation   CoDA-G guided by the k-means and herding sets beside coda_g and the selections, IPC 1 and 10 (results/selection_generation.csv)"
	@echo "make test    the import contracts (make lint), unit tests, and nbval: the stored notebooks re-executed and compared"
	@echo "make lint   the import contracts of coda_utils's layers (pyproject.toml [tool.importlinter], docs/layout.md)"
	@echo "make notebooks   re-execute notebooks/ in place at their (tutorial) defaults, 00 -> 06, in notebooks/runs/tutorial"
	@echo "make lab     open JupyterLab on notebooks/ with the project's environment"
	@echo "make readme  rewrite the README's generated tables from results/*.csv (and the paper's LaTeX tables, results/tables/)"
	@echo "make paper   the paper's figures (PDF + PNG, figures/paper/) and LaTeX tables (results/tables/) from results/*.csv [PAPER_RUN=runs/study]"
	@echo "make lock    re-resolve requirements.lock (exact versions, hashes) and environment.yml"
	@echo "make prior   retrain the embedded prior (about 2 h 10 min on 2 cores; DEVICE=cuda: minutes)"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make check-cuda   a one-minute check of the CUDA code paths (on a GPU machine)"
	@echo "make run     any run: RUN=name IPCS='10' SEEDS='0 1 2 3 4' REPEATS=1 EPOCHS=100 PRECISION=fp32 JOBS=2 REDO=1"
	@echo "             (make study RUN=other: the study into runs/other, nothing published)"

# The environment, in three steps. (1) torch alone, at pyproject.toml's version (torch==2.13.0),
# from pip's configured index, or from TORCH_INDEX (passed as --index-url) when set: PyPI serves the
# platform's default build (Linux: the CUDA build, with its CUDA libraries; macOS, Windows: CPU),
# so a Linux machine picks its build with TORCH_INDEX, e.g.
#   make study TORCH_INDEX=https://download.pytorch.org/whl/cpu     (CPU only)
#   make study TORCH_INDEX=https://download.pytorch.org/whl/cu128   (CUDA 12.8)
# (2) every other package at the exact version and hash of the lock (--require-hashes --no-deps:
# nothing is resolved; the lock's markers pick the platform's and the Python's packages); (3) the
# project itself without dependencies. The stamp records what the venv was made from: the lock,
# pyproject.toml, this checkout's path and TORCH_INDEX. A venv made from exactly that (a fresh
# clone's mtimes do not matter) is used as it is; one made for another lock or another checkout
# (a venv shared between clones) is brought to this lock (pip changes only the packages pinned
# differently) and the project is installed from this checkout; one made with another TORCH_INDEX
# gets its torch reinstalled from this one. Without TORCH_INDEX a venv keeps the torch index it
# was made with (make test after make study TORCH_INDEX=...); TORCH_INDEX= (empty) goes back to pip's.
TORCH_STAMPED := $(patsubst torch:%,%,$(strip $(shell grep -o ' torch:.*' $(STAMP) 2>/dev/null)))
TORCH_INDEX ?= $(TORCH_STAMPED)
TORCH_FROM = $(if $(TORCH_INDEX), torch:$(TORCH_INDEX))
ENV_ID = $$(cat pyproject.toml $(LOCK) | sha256sum | cut -c1-16) $(CURDIR)$(TORCH_FROM)
PIP_INSTALL = $(PY) -m pip install -q --disable-pip-version-check
$(STAMP): pyproject.toml $(LOCK) $(if $(filter-out x$(TORCH_STAMPED),x$(TORCH_INDEX)),coda-torch-index-changed)
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(ENV_ID)" ]; then touch $(STAMP); exit 0; fi; \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	if [ -f $(STAMP) ]; then echo "$(VENV) was made from another lock, checkout or TORCH_INDEX ($$(cat $(STAMP))): bringing it to this one"; \
	    if [ "$$(grep -o ' torch:.*' $(STAMP))" != "$(TORCH_FROM)" ]; then \
	        $(PY) -m pip uninstall -q -y torch; fi; fi; \
	torch=$$($(PY) -m coda_utils.environment --torch-requirement) && \
	$(PIP_INSTALL) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$$torch" && \
	$(PIP_INSTALL) --require-hashes --no-deps -r $(LOCK) && \
	$(PIP_INSTALL) --no-deps --no-build-isolation -e . && \
	$(PY) -m coda_utils.environment --check-installed && \
	echo "$(ENV_ID)" > $(STAMP)
coda-torch-index-changed:

# Re-resolve the lock from pyproject.toml with uv (in its own throw-away venv): one universal lock
# for Linux, macOS and Windows and CPython LOCK_PYTHON and later, hashes of every file, no index
# or path of this machine, the versions of the existing lock kept where they still resolve. torch
# and its GPU runtime (triton, nvidia-*, cuda-*) are left out: the install's torch step brings
# them (a first pass finds their names). Then pin environment.yml to the same versions. Run after
# changing a dependency; commit both files.
UV_VERSION := 0.13.9
LOCK_PYTHON := 3.11
LOCK_UV = build/lock-venv/bin/uv pip compile -q --universal --python-version $(LOCK_PYTHON) --extra test --extra notebooks
lock:
	@test -x build/lock-venv/bin/uv && build/lock-venv/bin/uv --version | grep -q " $(UV_VERSION)" || \
	    { $(PYTHON) -m venv build/lock-venv && build/lock-venv/bin/pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"; }
	$(LOCK_UV) --no-header --no-annotate --output-file build/lock-all.txt pyproject.toml
	$(LOCK_UV) --generate-hashes --custom-compile-command "make lock" \
	    $$(grep -o -E '^(torch|triton|nvidia-[^= ]*|cuda-[^= ]*)==' build/lock-all.txt | sed 's/==$$//; s/^/--no-emit-package /') \
	    --output-file $(LOCK) pyproject.toml
	$(PYTHON) -m coda_utils.environment --write-environment-yml

data: $(STAMP)
	@$(PY) -c "from coda_utils.datasets import find_fashion_mnist; find_fashion_mnist()" 2>/dev/null \
	|| { if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	       echo "Installing Debian package dataset-fashion-mnist"; \
	       apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; \
	     fi; \
	     $(PY) -c "from coda_utils.datasets import find_fashion_mnist; print('Fashion-MNIST:', find_fashion_mnist())"; }

# --------------------------------------------------------------------------------------------
# A run: 01 encode -> 02 discover (every seed) -> 03 generate (every seed) -> 04 evaluate (one
# notebook per method and IPC, all seeds, JOBS at a time on one thread each) -> 06 figures.
# Evaluations of real selections start as soon as their sets exist (random real at once, R,
# k-means and herding after 02), so the second core works while 02 and 03 run. Each stage's
# executed notebook is its "done" mark: a second call skips finished stages; REDO=1 runs every
# stage again (each resumes what it can: caches, images, finished networks).
# --------------------------------------------------------------------------------------------
# papermill into a temporary name, renamed when the notebook finished: a failed stage is redone.
# A stage prints one line when it starts and one when it ends (its time; an evaluation also the
# networks its results file holds), e.g. "[12:03:41] 04 evaluate coda_g_ipc10 done in 7 min 5 s
# (5 networks in results.csv)"; its own output is in the executed notebook (under make -j2 two
# stages' bars and cell logs would interleave), and papermill's error, when a stage fails.
PM_STAGE := $(PY) -m papermill --no-progress-bar --log-level ERROR
stage_name = $(if $(filter 04_%,$(notdir $(1))),04 evaluate $(notdir $(patsubst %/,%,$(dir $(1)))),$(subst _, ,$(basename $(notdir $(1)))))
stage_networks = $(if $(filter 04_%,$(notdir $(1))), ($$(tail -n +2 $(dir $(1))results.csv 2>/dev/null | wc -l) networks in results.csv))
define papermill
	@mkdir -p $(dir $(2))
	@echo "[$$(date +%T)] $(call stage_name,$(2)) started"
	@start=$$(date +%s); $(PM_STAGE) $(1) $(2).part.ipynb $(3) && mv $(2).part.ipynb $(2) && \
	s=$$(( $$(date +%s) - start )) && echo "[$$(date +%T)] $(call stage_name,$(2)) done in $$((s / 60)) min $$((s % 60)) s$(call stage_networks,$(2))" || \
	{ echo "[$$(date +%T)] $(call stage_name,$(2)) FAILED: the error above; the notebook as far as it ran: $(2).part.ipynb"; exit 1; }
endef

EVAL_ARGS = -p ipc $(2) -y "selection_seeds: $(SEEDS_YAML)" -p repeats $(REPEATS) -p epochs $(EPOCHS) \
    -p precision $(PRECISION) -p run_dir $(RUN_DIR) -p threads $(THREADS) -p device $(DEVICE) -p progress False -p curve_every None \
    -p test_limit None

define ipc_rules
$(RUN_DIR)/02_discover_ipc$(1).ipynb: $(RUN_DIR)/01_encode.ipynb
	$$(call papermill,notebooks/02_discover.ipynb,$$@,-p ipc $(1) -y "selection_seeds: $$(SEEDS_YAML)" -y "methods: $$(REAL_METHODS_YAML)" -p run_dir $(RUN_DIR) -p figures_dir $(FIGURES) -p progress False)

$(RUN_DIR)/03_generate_ipc$(1).ipynb: $(RUN_DIR)/02_discover_ipc$(1).ipynb
	$$(call papermill,notebooks/03_generate.ipynb,$$@,-p ipc $(1) -y "selection_seeds: $$(SEEDS_YAML)" -y "methods: $$(GEN_METHODS_YAML)" -p run_dir $(RUN_DIR) -p figures_dir $(FIGURES) -p threads $(THREADS) -p progress False)

$(foreach m,$(REAL_METHODS),$(RUN_DIR)/eval/$(m)_ipc$(1)/04_evaluate.ipynb): $(RUN_DIR)/02_discover_ipc$(1).ipynb
$(foreach m,$(GEN_METHODS),$(RUN_DIR)/eval/$(m)_ipc$(1)/04_evaluate.ipynb): $(RUN_DIR)/03_generate_ipc$(1).ipynb
# (random real draws its sets in its own 04; the round trip of a set waits for the set)
$(RUN_DIR)/eval/vae_coda_r_ipc$(1)/04_evaluate.ipynb: $(RUN_DIR)/02_discover_ipc$(1).ipynb
$(RUN_DIR)/eval/vae_random_real_ipc$(1)/04_evaluate.ipynb: $(RUN_DIR)/eval/random_real_ipc$(1)/04_evaluate.ipynb

$(RUN_DIR)/eval/%_ipc$(1)/04_evaluate.ipynb:
	$$(call papermill,notebooks/04_evaluate.ipynb,$$@,-p methods $$* $$(call EVAL_ARGS,$$*,$(1)))
endef
$(foreach i,$(IPCS),$(eval $(call ipc_rules,$(i))))

# in this order: make starts the prerequisites of 06 in turn, so 03 (on the critical path) takes
# the first free core after 02, and the evaluations of real selections fill the other core
EVALS := $(foreach i,$(IPCS),$(foreach m,random_real $(GEN_METHODS) $(REAL_METHODS) $(CEILING_METHODS),$(RUN_DIR)/eval/$(m)_ipc$(i)/04_evaluate.ipynb))

$(RUN_DIR)/01_encode.ipynb:
	$(call papermill,notebooks/01_encode.ipynb,$@,-p run_dir $(RUN_DIR) -p figures_dir $(FIGURES) -p progress False)

$(RUN_DIR)/06_figures.ipynb: $(EVALS)
	$(call papermill,notebooks/06_figures.ipynb,$@,-p run_dir $(RUN_DIR) -p ipc $(firstword $(filter 10,$(IPCS)) $(IPCS)) -p figures_dir $(FIGURES) -p ablations_dir $(ABLATIONS))

run: data
	@start=$$(date +%s); \
	$(THREAD_ENV) $(MAKE) --no-print-directory -j$(JOBS) $(if $(REDO),-B) $(RUN_DIR)/06_figures.ipynb && \
	echo "make run: $(RUN_DIR) done in $$(( $$(date +%s) - start )) s; results in $(RUN_DIR)/results.md, $(RUN_DIR)/contrasts.md"

# The study and the full protocol. Run under their default names (runs/study, runs/full) they
# are the published runs: they alone write figures/, results/ and the README's tables; with
# RUN=other they write only into runs/other (e.g. to check that a second run reproduces the first).
study: data
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory run RUN=$(RUN) IPCS=10 EPOCHS=$(STUDY_EPOCHS) $(if $(filter study,$(RUN)),FIGURES=figures) && \
	$(if $(filter study,$(RUN)),$(PY) benchmarks/set_backgrounds.py --run $(RUN_DIR) --ipc 10 --out results/set_backgrounds.csv && \
	$(MAKE) --no-print-directory publish RUN=study NAME=study &&) \
	echo "make study: done in $$(( $$(date +%s) - start )) s"

full: data
	$(MAKE) --no-print-directory run RUN=$(FULL_RUN) IPCS="1 10 50" EPOCHS=300 ABLATIONS=None $(if $(filter full,$(FULL_RUN)),FIGURES=figures/full)
	$(if $(filter full,$(FULL_RUN)),$(MAKE) --no-print-directory publish RUN=full NAME=full_protocol)

# copy a run's hard-label results (one row per network) into results/NAME.csv and regenerate the README
publish: $(STAMP)
	$(PY) -m coda_utils.report collect $(RUN_DIR) --labels hard --out results/$(NAME).csv
	$(PY) -m coda_utils.report readme README.md
	$(PY) -m coda_utils.report latex --out results/tables

# --------------------------------------------------------------------------------------------
# The soft-label protocol (rded: a teacher relabels every augmented batch, RDED / SRe2L) on the
# IPC-10 sets of the full run, beside their dc rows of `make full`: 5 selection seeds x 1 network
# per method, 300 epochs. The first method's notebook trains the teacher (ConvNet-3, dc 50 epochs
# on all of target, cached in runs/full/teacher/) and the others wait for it. Its rows live in
# eval/<method>_ipc10_rded/ and are published apart (results/soft_labels.csv): soft and hard
# labels never share a table. About 25 min for the teacher and 2-3 min per network per core.
SOFT_RUN ?= $(FULL_RUN)
SOFT_IPC ?= 10
SOFT_METHODS ?= random_real coda_r kmeans coda_g vae_coda_r vae_random_real unguided text_prompt herding
SOFT_DIR := runs/$(SOFT_RUN)
SOFT_EVALS := $(foreach m,$(SOFT_METHODS),$(SOFT_DIR)/eval/$(m)_ipc$(SOFT_IPC)_rded/04_evaluate.ipynb)

$(SOFT_DIR)/eval/%_ipc$(SOFT_IPC)_rded/04_evaluate.ipynb:
	$(call papermill,notebooks/04_evaluate.ipynb,$@,-p methods $* -p protocol rded -p epochs None -p ipc $(SOFT_IPC) \
	    -y "selection_seeds: $(SEEDS_YAML)" -p repeats $(REPEATS) -p precision $(PRECISION) -p run_dir $(SOFT_DIR) \
	    -p threads $(THREADS) -p device $(DEVICE) -p progress False -p curve_every None -p test_limit None)
$(filter-out $(firstword $(SOFT_EVALS)),$(SOFT_EVALS)): $(firstword $(SOFT_EVALS))

soft-labels: data
	@start=$$(date +%s); \
	$(THREAD_ENV) $(MAKE) --no-print-directory RUN=$(SOFT_RUN) IPCS=$(SOFT_IPC) $(SOFT_DIR)/03_generate_ipc$(SOFT_IPC).ipynb && \
	$(THREAD_ENV) $(MAKE) --no-print-directory -j$(JOBS) $(if $(REDO),-B) $(SOFT_EVALS) && \
	$(if $(filter full,$(SOFT_RUN)),$(PY) -m coda_utils.report collect $(SOFT_DIR) --labels soft --out results/soft_labels.csv && \
	$(PY) -m coda_utils.report readme README.md &&) \
	echo "make soft-labels: $(SOFT_DIR) done in $$(( $$(date +%s) - start )) s"

# An experiment beyond the paper in the study's protocol (STUDY_EPOCHS, fp32, SEEDS): $(1) the target,
# also its published run's name; $(2) the run (runs/$(2)); $(3) its IPCs; $(4) the make variables it
# changes; $(5) its evaluations; $(6) the results file the published run writes (then the README).
define beyond_paper
	+@start=$$(date +%s); \
	$(THREAD_ENV) $(MAKE) --no-print-directory -j$(JOBS) $(if $(REDO),-B) RUN=$(2) IPCS="$(3)" \
	    $(4) EPOCHS=$(STUDY_EPOCHS) $(5) && \
	$(if $(filter $(1),$(2)),$(PY) -m coda_utils.report collect runs/$(2) --labels hard \
	    --out $(6) && $(PY) -m coda_utils.report readme README.md &&) \
	echo "make $(1): runs/$(2) done in $$(( $$(date +%s) - start )) s"
endef

# Selection x generation (issue 27, beyond the paper): does guided generation add anything to the
# selection it follows? CoDA-G from the k-means and herding sets (coda_g_kmeans, coda_g_herding:
# the same sampler, gamma and noise seeds as coda_g, only the representatives change) beside
# coda_g and the three selections, SG_IPCS, the study's protocol (STUDY_EPOCHS, fp32, SEEDS), into
# runs/selection-generation and results/selection_generation.csv (README block selection-generation).
SG_RUN ?= selection-generation
SG_IPCS ?= 1 10
SG_GEN := coda_g coda_g_kmeans coda_g_herding
SG_EVALS = $(foreach i,$(SG_IPCS),$(foreach m,$(SG_GEN) coda_r kmeans herding,runs/$(SG_RUN)/eval/$(m)_ipc$(i)/04_evaluate.ipynb))
selection-generation: data
	$(call beyond_paper,selection-generation,$(SG_RUN),$(SG_IPCS),GEN_METHODS="$(SG_GEN)",$(SG_EVALS),results/selection_generation.csv)

# R without the exactly-IPC step's fill from HDBSCAN's noise (issue 27, beyond the paper: the one
# variant of notebook 05's IPC-50 selection sweep above discovery on target_val, 5 seeds, paired),
# beside R and random real, NF_IPCS, the study's protocol (STUDY_EPOCHS, fp32, SEEDS, test), into
# runs/no-noise-fill and results/no_noise_fill.csv (README block no-noise-fill).
NF_RUN ?= no-noise-fill
NF_IPCS ?= 10 50
NF_EVALS = $(foreach i,$(NF_IPCS),$(foreach m,coda_r_no_noise_fill coda_r random_real,runs/$(NF_RUN)/eval/$(m)_ipc$(i)/04_evaluate.ipynb))
no-noise-fill: data
	$(call beyond_paper,no-noise-fill,$(NF_RUN),$(NF_IPCS),REAL_METHODS="$(REAL_METHODS) coda_r_no_noise_fill",$(NF_EVALS),results/no_noise_fill.csv)

readme: $(STAMP)
	$(PY) -m coda_utils.report readme README.md
	$(PY) -m coda_utils.report latex --out results/tables

# The paper's figures and tables from the published result files (a fresh clone's results/):
# figures/paper/*.pdf (vector, TrueType fonts) and *.png in the paper style at a two-column
# paper's widths, results/tables/*.tex (booktabs). The figures of a run's sets need its folder
# (PAPER_RUN, make study's runs/study): without it they are skipped, with a line saying so.
PAPER_RUN ?= runs/study
paper: $(STAMP)
	$(PY) -m coda_utils.report paper --out figures/paper --run-dir $(PAPER_RUN)
	$(PY) -m coda_utils.report latex --out results/tables

# --------------------------------------------------------------------------------------------
# The layers of coda_utils as import-linter contracts (pyproject.toml [tool.importlinter];
# docs/layout.md): no module imports a higher layer, at module level or inside a function, and no
# import goes round in a circle. `make unit` and `make test` check them first (make test once:
# its sub-make passes LINTED=1).
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache

# LINTED=1: `make test` checked the contracts and the data already (unit then starts as soon as a core is free)
unit: $(if $(LINTED),,lint data)
	$(PY) -m pytest -q -p no:cacheprovider tests

# nbval: the notebooks as stored (executed at their defaults by `make notebooks`) are re-executed
# from scratch and every output is compared with the stored one (tests/nbval_sanitize.cfg
# replaces only what legitimately changes: timings, rates, addresses, paths). The copies run in
# build/nbval/, so their run folder (build/nbval/runs/tutorial) starts empty. The notebooks form
# two chains that share nothing, run side by side on the two cores (one thread each, as every
# process of the study: coda_utils.numerics), and 06 draws from both:
#   NB_MAIN: 01 encode -> 02 discover -> 03 generate -> 04 evaluate (the run folder)
#   NB_SIDE: 00 build prior (its own folder) and 05 ablations (its own folder and latent cache),
#            also run apart (nbval-prior, nbval-ablations) so that `make test` can balance the cores
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))
NB_MAIN := $(filter notebooks/01_% notebooks/02_% notebooks/03_% notebooks/04_%,$(NOTEBOOKS))
NB_PRIOR := $(filter notebooks/00_%,$(NOTEBOOKS))
NB_ABLATIONS := $(filter notebooks/05_%,$(NOTEBOOKS))
NB_SIDE := $(NB_PRIOR) $(NB_ABLATIONS)
NB_LAST := $(filter-out $(NB_MAIN) $(NB_SIDE),$(NOTEBOOKS))
NBVAL = $(PY) -m pytest -q -p no:cacheprovider --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval
nbval_chain = $(if $(filter nbval-main,$1),$(NB_MAIN),$(if $(filter nbval-prior,$1),$(NB_PRIOR),$(if $(filter nbval-ablations,$1),$(NB_ABLATIONS),$(NB_SIDE))))
.PHONY: nbval-copy nbval-main nbval-side nbval-prior nbval-ablations
nbval-copy: data
	rm -rf build/nbval && mkdir -p build/nbval && cp $(NOTEBOOKS) build/nbval/
# NBVAL_COPIED=1: the caller copied them already (`make test`: the chains then start in the order given)
nbval-main nbval-side nbval-prior nbval-ablations: $(if $(NBVAL_COPIED),,nbval-copy)
	$(NBVAL) $(addprefix build/nbval/,$(notdir $(call nbval_chain,$@)))
nbval: data
	$(MAKE) --no-print-directory -j2 --output-sync=target nbval-main nbval-side
	$(NBVAL) $(addprefix build/nbval/,$(notdir $(NB_LAST)))

# Re-execute the stored notebooks in place, at their defaults, in one run folder
# (notebooks/runs/tutorial: the folder a reader's JupyterLab uses), the two chains side by side
# and then 06, and copy their figures to figures/tutorial/. Run it whenever the prior, a default
# or the code behind an output changes.
.PHONY: notebooks-main notebooks-side
notebooks-main notebooks-side:
	@for nb in $(if $(filter notebooks-main,$@),$(NB_MAIN),$(NB_SIDE)); do \
	    $(PM) --cwd notebooks $$nb build/$$nb && mv build/$$nb $$nb || exit 1; \
	done
notebooks: data
	rm -rf notebooks/runs/tutorial && mkdir -p build/notebooks
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j2 --output-sync=target notebooks-main notebooks-side && \
	for nb in $(NB_LAST); do $(PM) --cwd notebooks $$nb build/$$nb && mv build/$$nb $$nb || exit 1; done; \
	rm -rf figures/tutorial && mkdir -p figures/tutorial && \
	cp notebooks/runs/tutorial/figures/*.png notebooks/runs/tutorial/prior/figures/*.png figures/tutorial/ && \
	echo "make notebooks: done in $$(( $$(date +%s) - start )) s"

# JupyterLab on notebooks/ with this environment's kernel (the notebooks chain with their defaults);
# LAB_ARGS="--no-browser --port 8890" for a remote machine
LAB_ARGS ?=
lab: data
	$(PY) -m jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# the import contracts, then the unit tests and the nbval chains on the two cores (the main chain
# beside 00, then the unit tests; 05 when the main chain ends: about equal halves), then 06
test: lint data
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory nbval-copy && \
	$(MAKE) --no-print-directory -j2 --output-sync=target LINTED=1 NBVAL_COPIED=1 nbval-main nbval-prior unit nbval-ablations && \
	$(NBVAL) $(addprefix build/nbval/,$(notdir $(NB_LAST))) && \
	echo "make test: done in $$(( $$(date +%s) - start )) s"

# PRIOR_BASE=dir: fine-tune that finished prior's networks instead of training the stages before
# (the shipped prior is the second prior, git show 654a04d:data/models/fashion-prior, fine-tuned so)
PRIOR_BASE ?=
prior: data
	@mkdir -p runs/prior-build
	$(PM) notebooks/00_build_prior.ipynb runs/prior-build/00_build_prior.ipynb -f notebooks/params/prior.yaml \
	    -p out_dir data/models/fashion-prior -p overwrite_shipped True -p work_dir runs/prior-build -p device $(DEVICE) \
	    -p figures_dir figures $(if $(PRIOR_BASE),-p base_prior $(PRIOR_BASE))

bench: data
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_discovery.py
	$(PY) benchmarks/bench_numerics.py

check-cuda: data
	$(PY) benchmarks/check_cuda.py

clean-venv:
	rm -rf $(VENV)
