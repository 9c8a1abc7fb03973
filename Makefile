# Two commands on a fresh machine with Python 3.11:
#   make demo   -> sets up .venv and runs the search notebook on the generated corpus
#   make test   -> sets up .venv and runs the whole test suite (what CI runs)
# and, to work in the notebooks:
#   make lab    -> a working copy of the notebooks under lab/ (never the tracked files), opened in JupyterLab
#
# torch is pinned to 2.13.0: on a CPU-only machine that has the CPU wheel this takes it
# (no CUDA download); on a GPU box pip serves the normal CUDA build of the same version.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
export PYTHONHASHSEED := 0
# Playwright (the dev extra, for tests/test_browser.py) drives Debian's chromium; it never
# downloads a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# Headless figures for the tests only: a notebook kernel inherits the environment, and
# with MPLBACKEND=Agg an executed notebook (make demo) would hold no figures.
test test-fast bench: export MPLBACKEND := Agg
# The tests: idle OpenMP threads sleep instead of spinning, since CI's 2-core machine is
# shared (spinning threads made a busy machine's search epoch several times slower).
# Elsewhere emodarts_core chooses by the load (see emodarts_core/runtime/threads.py).
test test-fast: export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup notebook-filter demo lab test test-fast notebooks-clean bench clean

setup: $(STAMP) notebook-filter

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv (from the package index, several times faster than pip) where it is on the PATH or can
	@# be installed into the venv; pip otherwise. Both show their progress and read the same
	@# sources: uv gets pip's find-links (a local torch wheel) through UV_FIND_LINKS.
	@set -e; uv="$$(command -v uv || true)"; \
	if [ -z "$$uv" ]; then \
	  echo "installing uv into $(VENV) (pip is the fallback)"; \
	  if $(PY) -m pip install --disable-pip-version-check --progress-bar off uv; then uv="$(VENV)/bin/uv"; fi; \
	fi; \
	if [ -n "$$uv" ]; then \
	  links="$${UV_FIND_LINKS:-$${PIP_FIND_LINKS:-$$($(PY) -m pip config get global.find-links 2>/dev/null || true)}}"; \
	  install() { echo "+ uv pip install $$*"; UV_FIND_LINKS="$$links" "$$uv" pip install --python $(PY) "$$@"; }; \
	else \
	  $(PY) -m pip install --upgrade pip; \
	  install() { echo "+ pip install $$*"; $(PY) -m pip install "$$@"; }; \
	fi; \
	install "$(TORCH)"; \
	install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) tools/warm_up.py
	touch $(STAMP)

# The git filter named in .gitattributes: nbstripout strips outputs and run metadata when a
# notebook is staged, so a notebook run in place never commits its outputs. --keep-id keeps
# the cells' ids (nbstripout would renumber them); the extra keys are what papermill and a
# kernel add (papermill's record of the run with its paths, timings and parameters, the
# full language_info); papermill's injected-parameters cell is dropped; and
# tools/check_notebooks_clean.py --filter removes the empty tag lists papermill adds, so
# that a tracked notebook executed in place and staged equals the committed one.
# Only in a git checkout.
NB_EXTRA_KEYS := metadata.papermill cell.metadata.papermill cell.metadata.execution metadata.widgets \
    metadata.language_info.codemirror_mode metadata.language_info.file_extension metadata.language_info.mimetype \
    metadata.language_info.nbconvert_exporter metadata.language_info.pygments_lexer metadata.language_info.version
notebook-filter: $(STAMP)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    $(PY) -m nbstripout --install --attributes .gitattributes && \
	    git config filter.nbstripout.clean '"$(abspath $(PY))" -m nbstripout --keep-id --extra-keys "$(NB_EXTRA_KEYS)" --drop-tagged-cells injected-parameters | "$(abspath $(PY))" tools/check_notebooks_clean.py --filter' && \
	    echo "git filter nbstripout installed: notebooks are staged without outputs"; fi

# The search notebook at the `demo` profile's size (emodarts_core/params/demo.yaml), in a
# fresh run directory each time; the README gives its measured time.
DEMO_NOTEBOOK := runs/03_search_demo.ipynb
DEMO_RUN      := runs/search_demo
demo: setup
	rm -rf $(DEMO_RUN)
	mkdir -p runs
	env -u MPLBACKEND $(PY) -m papermill notebooks/03_search.ipynb $(DEMO_NOTEBOOK) \
	    -f "$$($(PY) -m emodarts_core.params demo)" -p run_dir $(DEMO_RUN) --log-output --progress-bar
	@echo "executed notebook: $(abspath $(DEMO_NOTEBOOK))"
	@echo "run directory:     $(abspath $(DEMO_RUN))"

# A working copy of the notebooks under lab/ (ignored by git), made once and then kept (it
# holds your answers and outputs), opened in JupyterLab; runs/ and figures land there too.
# As root (a container), JupyterLab refuses to start without --allow-root.
lab: setup
	test -d lab || $(PY) -m emodarts_core.notebooks copy lab
	cd lab && $(abspath $(VENV))/bin/jupyter lab $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)

test: $(STAMP)
	$(PY) tools/check_notebooks_clean.py
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) tools/prepare_smoke_notebooks.py build/nbval
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax build/nbval

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow" -p no:cacheprovider

notebooks-clean: $(STAMP)
	$(PY) tools/check_notebooks_clean.py --strip

bench: $(STAMP)
	# the same-run ratio against the plain form (docs/PERFORMANCE.md)
	$(PY) -m emodarts_core.bench --preset small --order 1
	# the paper's space: absolute figures (its plain step needs about 12 GB at batch 16)
	$(PY) -m emodarts_core.bench --preset paper --order 1 2 --checkpointing --no-plain
	$(PY) -m emodarts_core.bench --preset paper --order 1 --no-plain
	$(PY) -m emodarts_core.bench --preset paper --order 1 --checkpointing --partial-channels 4 --no-plain
	$(PY) -m emodarts_core.bench --preset paper --order 1 --partial-channels 4 --no-plain

clean:
	rm -rf $(VENV) runs build .pytest_cache  # never lab/: it holds your work

# One-shot check on a machine with a GPU (tools/gpu_check.py): the device tests on CUDA, the bench at
# batch 16 and 64 with and without mixed precision, a 3-epoch EmoDB search and retrain (the
# generated corpus without EmoDB); one JSON report, within 8 minutes.
.PHONY: gpu-check
gpu-check: export MPLBACKEND := Agg
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py --device cuda --out runs/gpu_check/report.json
