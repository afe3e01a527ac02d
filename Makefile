# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install the pinned dependencies first.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean install

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/regiesignaal demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Side-by-side benchmark (docs/performance.md): 10,000 and 100,000 cases on SQLite and
# PostgreSQL against plain baselines. BENCH_ARGS="--cases 1000000 --db sqlite" for more.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/benchmark.py $(BENCH_ARGS)

clean:
	rm -rf var/demo .pytest_cache .mypy_cache .hypothesis
