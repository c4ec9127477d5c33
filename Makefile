PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements-lock.txt
PYTEST_ARGS ?=

.PHONY: test test-all demo records bench lock clean docs docs-serve notebooks

# The virtualenv is built from nothing, against the committed lock of exact versions.
.venv: pyproject.toml requirements-lock.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[test]"
	touch $(VENV)

# The tiny end-to-end runs of the trained experiments, the notebooks and the longest trainings
# are marked slow; `make test` leaves them out to stay under 5 minutes on 2 cores. Compiling is
# most of the suite's CPU time (thousands of tiny programs, each run once or twice), so it
# compiles fast: XLA's backend (LLVM) optimisation off and XLA:CPU's older, quicker-to-compile
# elementwise emitters (they round differently; the suite passes under both, and the ReLU
# kernel's gradient at coinciding points had to be made robust to it). `make test-all` runs
# everything with the default compiler settings, as users get them. Idle workers steal queued
# tests (--dist worksteal), so no worker is left alone with the longest tests at the end.
TEST_XLA_FLAGS := --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true \
	--xla_cpu_use_fusion_emitters=false
test: .venv
	XLA_FLAGS="$(TEST_XLA_FLAGS) $$XLA_FLAGS" $(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not slow" $(PYTEST_ARGS)

test-all: .venv
	$(BIN)/python -m pytest -q -n 2 --dist worksteal $(PYTEST_ARGS)

# The showcase: every family of the library at a budget that finishes in minutes; failed
# scientific checks are results (the scorecard says which), not errors.
demo: .venv
	$(BIN)/dynajax reproduce --suite demo --out runs/demo --force

# The whole quick suite as run records in results/, then the scorecard (hours on 2 cores).
records: .venv
	$(BIN)/dynajax reproduce --suite quick --record --force
	$(BIN)/dynajax scorecard

bench: .venv
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[test,bench]"
	$(BIN)/python -m benchmarks all --json runs/benchmarks.json

# The documentation site in site/, built offline: the notebooks executed first (each under a time
# limit; their outputs are cached in notebooks/*.ipynb and reused while the notebook, the library
# and the lock are unchanged), then a strict MkDocs build (broken links, missing API entries,
# undocumented public names and assets from other hosts fail it). The scorecard page shows
# results/README.md, so it must be up to date with the records.
docs: notebooks
	@if [ -d results ]; then $(BIN)/dynajax scorecard --check; fi
	DYNAJAX_DOCS_NOTEBOOKS=notebooks NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Live preview on http://127.0.0.1:8000 (the notebooks as executed by `make notebooks`, if they were).
docs-serve: .venv
	DYNAJAX_DOCS_NOTEBOOKS=$$( [ -n "$$(ls notebooks/*.ipynb 2>/dev/null)" ] && echo notebooks ) \
		NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# notebooks/*.ipynb with their outputs, for Jupyter or Colab (and for the site).
notebooks: .venv
	$(BIN)/python docs/_ext/notebooks.py

# Refresh the lock deliberately: resolve the ranges in pyproject, then rerun the suite.
lock:
	rm -rf /tmp/dynajax-lock && $(PY) -m venv /tmp/dynajax-lock
	/tmp/dynajax-lock/bin/pip install --quiet -e ".[test,bench,notebooks]"
	/tmp/dynajax-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > $(LOCK)

clean:
	rm -rf $(VENV) runs .pytest_cache
