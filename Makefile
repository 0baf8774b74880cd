# Two commands do all set-up on a fresh machine:
#   make lab    create .venv, install the pinned packages, open the course in JupyterLab
#   make test   create .venv if needed, then run every unit test and every notebook under nbval
# Everything runs offline once installed: no model or data set is downloaded.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
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

.PHONY: lab test test-lib test-notebooks install execute bench bench-course prepare clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests $(NOTEBOOKS) $(NBVAL_FLAGS) -p no:cacheprovider -v

# Fast unit tests only; `make test` also runs the ones marked slow (JupyterLab smoke test, benchmarks).
test-lib: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider -q

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest $(NOTEBOOKS) $(NBVAL_FLAGS) -p no:cacheprovider -q

# Re-run one notebook in the pinned environment and store its outputs: make execute NB=notebooks/04_training_and_hooks.ipynb
execute: $(STAMP)
	cd $(dir $(NB)) && ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace $(notdir $(NB)) --ExecutePreprocessor.timeout=900

bench: $(STAMP)
	$(BIN)/python -m lib.bench

# Every notebook under nbval, one at a time, timed: the whole-course budget (python -m lib.bench --course --json)
bench-course: $(STAMP)
	$(BIN)/python -m lib.bench --course

prepare: $(STAMP)
	$(BIN)/python -m lib.prepare

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
