# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install the pinned dependencies first.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench attention clean install

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/regiesignaal demo

# mypy checks the one import package through a view of symbolic links (pyproject.toml);
# its messages name the repository's paths.
TYPECHECK := build/typecheck/regiesignaal
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	@for d in engine fixtures jobs notifications; do ln -s ../../../$$d $(TYPECHECK)/$$d; done
	@for f in regiesignaal/*.py; do ln -s ../../../$$f $(TYPECHECK)/; done
	@$(BIN)/mypy > build/typecheck/mypy.log 2>&1; rc=$$?; \
	  sed 's#build/typecheck/regiesignaal/##' build/typecheck/mypy.log; exit $$rc

test: lint
	$(BIN)/pytest

# Side-by-side benchmark (docs/performance.md): 10,000 and 100,000 cases on SQLite and
# PostgreSQL against plain baselines. BENCH_ARGS="--cases 1000000 --db sqlite" for more.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/benchmark.py $(BENCH_ARGS)

# What the people read after 15 working days without action at 20,000 cases (issue 16):
# mail lines, items under "Vandaag", signals per case, digest and agenda length.
ATTENTION_ARGS ?=
attention: $(STAMP)
	$(BIN)/python bench/attention.py $(ATTENTION_ARGS)

clean:
	rm -rf var/demo build .pytest_cache .mypy_cache .hypothesis
