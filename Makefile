# Set-up and main commands. Each target creates .venv on first use.
#   make bench  - run the quick benchmark suite and write its report
#   make test   - type-check the package and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN ?= runs/quick-$(shell date +%Y%m%d-%H%M%S)

.PHONY: bench test typecheck clean

# torch is installed first and pinned to the CPU build that pip finds on this
# kind of machine; installing the project afterwards keeps it.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

bench: $(VENV)/.installed
	$(BIN)/otbench run benchmarks/quick.toml --out $(RUN)

test: $(VENV)/.installed
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

typecheck: $(VENV)/.installed
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs
