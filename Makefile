# Quick start: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,demo,app]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/densekit demo

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf runs outputs demo_out
