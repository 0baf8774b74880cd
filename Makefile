# Two commands do all set-up on a fresh machine:
#   make lab    create .venv, install the locked packages, open the course in JupyterLab
#   make test   create .venv if needed, then run every unit test and every notebook under nbval
# Everything runs offline once installed: no model or data set is downloaded.
#
# Install switches (README, "Install"):
#   PYTHON=python3.13     the interpreter the environment is made from (3.11 or newer)
#   TORCH=auto|cpu|cuda   auto: PyTorch's CPU-only build on Linux without an NVIDIA GPU, else PyPI's
#                         build; cpu: the CPU build (PyPI's build when its index is unreachable);
#                         cuda: PyPI's build (on Linux that is the CUDA one: several GB more)
#   INSTALLER=auto|uv|pip auto: uv when it is on PATH, already in VENV, or pip can install it; else pip
#   VENV=.venv            where the environment goes

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.txt
TORCH ?= auto
INSTALLER ?= auto
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Asked once before installing: when it does not answer, uv installs from its cache only (--offline).
PYPI_PROBE ?= https://pypi.org/simple/pip/
# uv does not read pip's configuration: hand it pip's local wheel folders (find-links), if any.
FIND_LINKS ?= $(sort $(PIP_FIND_LINKS) $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
# Packages that only PyPI's CUDA build of torch needs: left out of the lock install, so a CPU
# build stays small; a CUDA build brings them itself (torch pins their exact versions).
CUDA_ONLY := ^(nvidia-|cuda-|triton==|torch==)
# Results are bitwise reproducible only at a fixed thread count; stored outputs were made with 2.
export OMP_NUM_THREADS := 2
export MKL_NUM_THREADS := 2
# Stored outputs are bitwise reproducible only on the same CPU code path: pin the vector kernels of
# PyTorch, MKL and oneDNN to AVX2 so that an AVX-512 machine computes what an AVX2 machine did
# (measured: unpinned, notebook 04's losses moved in the third decimal between two such machines).
export ATEN_CPU_CAPABILITY := avx2
export MKL_CBWR := AVX2
export ONEDNN_MAX_CPU_ISA := AVX2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

NBVAL_FLAGS := --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout=300
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# Extra arguments for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --ServerApp.port=8899"
# (tests/test_lab_smoke.py starts the course through this very target, on 127.0.0.1).
LAB_ARGS ?=

# Notebook claims (lib/core/claims.py) raise when false only in strict mode: on for tests and stored
# outputs, off in `make lab`, where a learner who changes a seed sees a ✗ line instead of a traceback.
test test-lib test-notebooks execute bench-course: export COURSE_STRICT := 1
# The tests run the notebooks with other training seeds than their stored outputs were made with
# (COURSE_SEED=10: training seeds 10, 11, 12 instead of 0, 1, 2; data and untrained models keep
# theirs). Every claim must still hold, and every output nbval compares must still match, which
# proves that none of them depends on a training run (CONTRIBUTING.md, "Numbers from training").
test test-notebooks: export COURSE_SEED := 10
# Stored outputs are seed 0's, whatever the shell has set.
execute: export COURSE_SEED :=

.PHONY: lab test test-lib test-notebooks install lock execute bench bench-course prepare clean

# The environment: torch first (the build TORCH asks for), then the lock, then the course itself.
# Lock and pyproject are the inputs; `make lock` regenerates the lock from pyproject.toml.
$(STAMP): $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed; $(PYTHON) is $$($(PYTHON) --version 2>&1). Try: make PYTHON=python3.11 ..."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info >= (3, 14))' || \
	  echo "warning: $(PYTHON) is newer than the Pythons this course was tested on (3.11 and 3.13)"
	@set -e; start=$$(date +%s); \
	$(PYTHON) -m venv $(VENV); \
	reach() { $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$$1" >/dev/null 2>&1; }; \
	offline=""; \
	if ! reach $(PYPI_PROBE); then offline=1; echo "PyPI is unreachable: installing from local caches and wheels only"; fi; \
	uv=""; \
	if [ "$(INSTALLER)" != pip ]; then \
	  if command -v uv >/dev/null 2>&1; then uv=$$(command -v uv); \
	  elif [ -x $(BIN)/uv ]; then uv=$(abspath $(BIN))/uv; \
	  elif [ -z "$$offline" ] && $(BIN)/python -m pip install --quiet uv >/dev/null 2>&1; then uv=$(abspath $(BIN))/uv; \
	  elif [ "$(INSTALLER)" = uv ]; then echo "INSTALLER=uv but uv is not on PATH and pip could not install it"; exit 1; \
	  else echo "uv is not available: installing with pip (slower)"; fi; \
	fi; \
	links=""; for d in $(FIND_LINKS); do links="$$links --find-links $$d"; done; \
	if [ -n "$$uv" ]; then inst="$$uv pip install --python $(BIN)/python $$links $${offline:+--offline}"; \
	else inst="$(BIN)/python -m pip install --quiet"; fi; \
	tv=$$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' $(LOCK)); \
	mode="$(TORCH)"; \
	if [ "$$mode" = auto ]; then \
	  if [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then mode=cpu; else mode=cuda; fi; \
	fi; \
	case "$$mode" in cpu|cuda) ;; *) echo "TORCH must be auto, cpu or cuda, got '$$mode'"; exit 1;; esac; \
	if [ "$$mode" = cpu ] && [ "$$(uname -s)" = Linux ] && reach $(TORCH_CPU_INDEX)/torch/; then \
	  echo "torch $$tv: the CPU-only build from $(TORCH_CPU_INDEX)"; \
	  $$inst --no-deps --index-url $(TORCH_CPU_INDEX) "torch==$$tv+cpu"; \
	elif [ "$$mode" = cpu ] && [ "$$(uname -s)" = Linux ]; then \
	  echo "torch $$tv: the CPU-only index $(TORCH_CPU_INDEX) could not be reached: PyPI's build instead (a local CPU wheel wins if one is in: $(or $(FIND_LINKS),no find-links))"; \
	  $$inst "torch==$$tv"; \
	else echo "torch $$tv from PyPI"; $$inst "torch==$$tv"; fi; \
	grep -vE '$(CUDA_ONLY)' $(LOCK) > $(VENV)/lock-without-torch.txt; \
	$$inst -r $(VENV)/lock-without-torch.txt; \
	$$inst --no-deps -e .; \
	$(BIN)/python -c 'import torch; print("installed torch", torch.__version__, "(CUDA", torch.version.cuda, ")")'; \
	echo "installed with $$([ -n "$$uv" ] && echo uv || echo pip) in $$(( $$(date +%s) - start )) s; environment: $$(du -sh $(VENV) | cut -f1)"
	touch $(STAMP)

install: $(STAMP)

# Regenerate the lock from pyproject.toml (keeps the current pins unless you add --upgrade):
#   make lock   or   uv pip compile pyproject.toml --extra test --extra lab --universal --python-version 3.11 -o requirements.txt
# uv from PATH, else the one `make install` put in the environment.
UV ?= $(or $(shell command -v uv 2>/dev/null),$(wildcard $(BIN)/uv))
lock:
	@test -n "$(UV)" || { echo "make lock needs uv: pip install uv (or run make install first)"; exit 1; }
	$(UV) pip compile pyproject.toml --extra test --extra lab --universal --python-version 3.11 -o $(LOCK) $(LOCK_ARGS)


# JupyterLab opens without asking "get notified about official Jupyter news?" and without checking
# for updates (both would reach the internet): the course's defaults for those two settings are in
# docs/jupyter/labconfig/default_setting_overrides.json, read through JUPYTER_CONFIG_PATH (a learner can
# still turn either on under Settings; a JUPYTER_CONFIG_PATH the shell sets is kept, after ours).
lab: export JUPYTER_CONFIG_PATH := $(CURDIR)/docs/jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/START_HERE.ipynb --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

# The tests start make themselves (make -n, make lab): they must see the Makefile's defaults, not
# this run's command-line variables (VENV=.venv-py3.13 in CI), which make passes on to its recipes
# both in MAKEFLAGS and as environment variables.
CLEAN_MAKE_ENV := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u VENV -u PYTHON -u TORCH -u INSTALLER

test: $(STAMP)
	$(CLEAN_MAKE_ENV) $(BIN)/python -m pytest tests $(NOTEBOOKS) $(NBVAL_FLAGS) -p no:cacheprovider -v

# Fast unit tests only; `make test` also runs the ones marked slow (JupyterLab smoke test, benchmarks).
test-lib: $(STAMP)
	$(CLEAN_MAKE_ENV) $(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider -q

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest $(NOTEBOOKS) $(NBVAL_FLAGS) -p no:cacheprovider -q

# Re-run one notebook in the pinned environment and store its outputs: make execute NB=notebooks/04_training_and_hooks.ipynb
execute: $(STAMP)
	cd $(dir $(NB)) && $(abspath $(BIN))/jupyter nbconvert --to notebook --execute --inplace $(notdir $(NB)) --ExecutePreprocessor.timeout=900

bench: $(STAMP)
	$(BIN)/python -m lib.experiments.bench

# Every notebook under nbval, one at a time, timed: the whole-course budget (python -m lib.experiments.bench --course --json)
bench-course: $(STAMP)
	$(BIN)/python -m lib.experiments.bench --course

prepare: $(STAMP)
	$(BIN)/python -m lib.experiments.prepare

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
