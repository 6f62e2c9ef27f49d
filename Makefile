# Quick start: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean results-sr

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,demo,app]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/densekit demo

test: $(STAMP)
	$(BIN)/python -m pytest

# the shipped SR weights against the published networks, and the recipe table of
# docs/results/results-sr.md, measured anew (needs ../shared/data/sr)
results-sr: $(STAMP)
	$(BIN)/python scripts/sr_results.py

clean:
	rm -rf runs outputs demo_out
