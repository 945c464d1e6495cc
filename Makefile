# The two commands of the README. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.segwl-installed

.PHONY: test check demo install export clean-check export-check nbtest pytest pytest-fast lint docs docs-install lab \
        lab-install outputs
.DELETE_ON_ERROR:

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when pyproject.toml's content changes (not its time: nbdev-export rewrites the file unchanged).
install: | $(BIN)/python
	@if ! cmp -s pyproject.toml $(STAMP); then \
	  $(BIN)/pip install torch==2.14.1 torchvision==0.29.1 && \
	  $(BIN)/pip install -e ".[dev,ray]" && cp pyproject.toml $(STAMP); \
	else echo "ok: .venv is up to date with pyproject.toml"; fi

# Fails when a command changes what git would see: the committed tree must already be clean and exported.
define unchanged
	@before=$$(find $(2) -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -exec sha256sum {} + | sort); \
	$(1) >/dev/null; \
	after=$$(find $(2) -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -exec sha256sum {} + | sort); \
	if [ "$$before" != "$$after" ]; then echo "FAIL: '$(1)' changed files under $(2): $(3)"; \
	  diff <(echo "$$before") <(echo "$$after") | grep '^[<>]' | awk '{print $$3}' | sort -u; exit 1; fi; \
	echo "ok: $(1) changes nothing under $(2)"
endef

clean-check: install
	$(call unchanged,$(BIN)/nbdev-clean,nbs,notebooks were not clean - commit the cleaned notebooks)

# nbdev-export writes segwl/*.py; the papermill job ships inside the package as a copy of nbs/jobs/pipeline.ipynb.
EXPORT := $(BIN)/nbdev-export && cp nbs/jobs/pipeline.ipynb segwl/jobs/pipeline.ipynb
export: install
	$(EXPORT)

export-check: install
	$(call unchanged,$(EXPORT),segwl,segwl/ disagrees with nbs/ - edit notebooks then run make export)

# ruff (pyproject.toml: 120 columns, one statement per line, no unused import or variable) over the package, the
# tools, the tests and the benchmarks.
lint: install
	$(BIN)/python tools/lint.py segwl tools tests bench

# The notebooks' examples write models and masks under a temporary folder of their own, removed afterwards, so that
# repeated runs do not fill the disk.
nbtest: install
	@t=$$(mktemp -d -t segwl-nbtest.XXXXXX); TMPDIR=$$t $(BIN)/nbdev-test --do-print --skip-folder-re '^jobs$$'; rc=$$?; rm -rf $$t; exit $$rc

# pytest-xdist: one worker per core (`make test PYTEST_WORKERS=0` runs in one process). Tests that share a costly
# module fixture (the Ray instance, the papermill job) carry an xdist_group mark: --dist loadgroup keeps each group
# on one worker.
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup
pytest: install
	$(PYTEST) --durations=10

# The edit loop's tests: every test not marked slow (pyproject.toml's markers say what slow means).
pytest-fast: install
	$(PYTEST) -q -m 'not slow'

SHELL := /bin/bash
test: install
	$(MAKE) --no-print-directory clean-check
	$(MAKE) --no-print-directory export-check
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory pytest

# Runs the module notebooks in place (as nbdev-test runs them, slow and cuda cells skipped) and keeps the outputs of
# their cheap cells: figures, short results (tools/run_notebooks.py says which). `make outputs NBS="nbs/03_points.ipynb"`
# runs only those; NBS=--tutorials adds nbs/tutorials/. Commit the notebooks afterwards: clean-check passes with them.
NBS ?=
outputs: install
	$(BIN)/python tools/run_notebooks.py $(NBS)

# Under a minute, for the edit loop: the same checks as `make test` but nbdev-test and the slow tests.
check: install
	$(MAKE) --no-print-directory clean-check
	$(MAKE) --no-print-directory export-check
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory pytest-fast

# `make demo MODELS=tiny-random` runs the same chain offline in about 25 s of CPU (meaningless masks: README).
DEMO_OUT ?= demo-out
MODELS   ?= real
demo: install
	$(BIN)/segwl demo --examples examples --out $(DEMO_OUT) --models $(MODELS)

# The documentation site, from the notebooks themselves (docs/conf.py): Sphinx + myst-nb, offline, not executed.
# Only the `docs` extra's tools are installed (no torch): a fresh clone builds it in a minute. Open _site/html/index.html.
DOCS_STAMP := $(VENV)/.segwl-docs-installed
docs-install: | $(BIN)/python
	@if ! cmp -s pyproject.toml $(DOCS_STAMP); then \
	  $(BIN)/pip install -q $$($(BIN)/python tools/extras.py docs) && cp pyproject.toml $(DOCS_STAMP); \
	else echo "ok: the docs tools are up to date with pyproject.toml"; fi

docs: docs-install
	rm -rf _site
	$(BIN)/sphinx-build -q -b html -c docs -d _site/doctrees nbs _site/html
	@echo "the site: $(CURDIR)/_site/html/index.html"

# JupyterLab on the walkthrough, with segwl installed as `make install` does. Without a display (or to pick the
# browser yourself): `make lab LAB_ARGS=--no-browser` prints the URL to open.
LAB_STAMP := $(VENV)/.segwl-lab-installed
LAB_ARGS  ?=
lab-install: install
	@if ! cmp -s pyproject.toml $(LAB_STAMP); then \
	  $(BIN)/pip install -q $$($(BIN)/python tools/extras.py lab) && cp pyproject.toml $(LAB_STAMP); \
	else echo "ok: JupyterLab is up to date with pyproject.toml"; fi

# The walkthrough is the default page, so the URL printed opens it too; as root (a container), JupyterLab refuses to
# start without --allow-root.
WALKTHROUGH := nbs/tutorials/walkthrough.ipynb
lab: lab-install
	$(BIN)/jupyter-lab --LabApp.default_url=/lab/tree/$(WALKTHROUGH) $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)
