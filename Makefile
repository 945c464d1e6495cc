# The two commands of the README. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.segwl-installed

.PHONY: test demo install export clean-check export-check nbtest pytest lint
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

# ruff (pyproject.toml: 120 columns, one statement per line) over the package and tools.
lint: install
	$(BIN)/python tools/lint.py segwl tools

# The notebooks' examples write models and masks under a temporary folder of their own, removed afterwards, so that
# repeated runs do not fill the disk.
nbtest: install
	@t=$$(mktemp -d -t segwl-nbtest.XXXXXX); TMPDIR=$$t $(BIN)/nbdev-test --do-print --skip-folder-re '^jobs$$'; rc=$$?; rm -rf $$t; exit $$rc

pytest: install
	$(BIN)/pytest

SHELL := /bin/bash
test: install
	$(MAKE) --no-print-directory clean-check
	$(MAKE) --no-print-directory export-check
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory pytest

# `make demo MODELS=tiny-random` runs the same chain offline in about 25 s of CPU (meaningless masks: README).
DEMO_OUT ?= demo-out
MODELS   ?= real
demo: install
	$(BIN)/segwl demo --examples examples --out $(DEMO_OUT) --models $(MODELS)
