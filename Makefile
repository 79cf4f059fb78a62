# Two commands for a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench reports clean

$(STAMP): requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/panoptool demo --out demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --doctest-modules panoptool tests

bench: $(STAMP)
	$(BIN)/panoptool bench

# everything in reports/ (about 2 hours on 2 cores; see scripts/make_reports.sh)
reports: $(STAMP)
	PANOPTOOL=$(BIN)/panoptool scripts/make_reports.sh

clean:
	rm -rf $(VENV) demo reports-work *.egg-info
