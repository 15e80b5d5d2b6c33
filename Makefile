# The two commands (see README): `make demo` runs the pipeline, `make test` the suite.
# Each does its own set-up first (scripts/setup.sh: Debian packages, .venv), idempotently.
.PHONY: setup demo test test-fast lint stack-up stack-down

VENV := .venv
CW := $(VENV)/bin/citywatch

setup:
	@bash scripts/setup.sh

demo: setup
	$(CW) demo

# The suite, after the cheap static checks (ruff, mypy over the installed layout): CI runs this.
test: setup
	$(VENV)/bin/ruff check citywatch edge stream hardware models center tests benchmarks
	bash scripts/typecheck.sh
	$(VENV)/bin/python -m pytest -q --durations=10

# The pure cores only, for a loop of seconds: nothing that starts a process, a service or a
# whole agent (marker `service`), needs the stack (`integration`) or is heavy (`slow`).
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: compiling and rewriting
# every test module again would double the collection time.
test-fast: setup
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -m pytest -q \
		-m "not integration and not service and not slow"

lint: setup
	$(VENV)/bin/ruff check citywatch edge stream hardware models center tests benchmarks
	$(VENV)/bin/python -m pytest -q tests/unit/test_architecture.py
	bash scripts/typecheck.sh

stack-up: setup
	$(CW) stack up

stack-down: setup
	$(CW) stack down

