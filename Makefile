PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
LINT_STAMP := $(VENV)/.installed-lint
TORCH_VERSION := 2.13.0
# Two pytest processes: the end-to-end searches wait on process starts and Ray as much as they
# compute, so two of them side by side fill 2 cores; whole files go to one process (loadfile),
# so a module's shared reference search runs once, in the order tests/conftest.py sorts them
# (the long search files first; xdist would otherwise start the files with the most tests first).
TEST_WORKERS ?= 2

.PHONY: install demo test test-fast test-faults lint bench docs clean

# torch goes in pinned first: an unpinned resolve pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e '.[test,docs]'
	$(PIP) install -q --no-deps pytorchvideo==0.1.5
	touch $(STAMP)

# The linters on top, for make lint and pre-commit only: a fresh clone's make test skips their ~10 s.
$(LINT_STAMP): $(STAMP)
	$(PIP) install -q -e '.[test,docs,lint]'
	touch $(LINT_STAMP)

install: $(STAMP) $(LINT_STAMP)

demo: $(STAMP)
	$(VENV)/bin/x3dsearch expand --target-gflops 0.25

# Everything but the fault injection (kill -9, killed nodes, full disks: tests marked `fault`), which
# test-faults runs; CI runs both.
test: $(STAMP)
	$(PY) -m pytest -q -m "not fault" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-faults: $(STAMP)
	$(PY) -m pytest -q -m fault -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

# ruff on everything Python in the repository, mypy on the package (rules: pyproject.toml).
lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The documentation site into site/; --strict turns a broken link or a page left out of the nav into an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	for f in experiments/benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build site *.egg-info
