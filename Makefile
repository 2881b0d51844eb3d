# reuse-accel: `make demo` runs the main job, `make test` runs the test suite.
# Both bootstrap a virtual environment in .venv with the project and its tools from PyPI.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint verilog clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/reuse-accel demo --out out/demo

test: $(STAMP)
	PYTHONWARNINGS=error $(BIN)/python -m pytest -q

bench: $(STAMP)
	for bench in benches/bench_*.py; do $(BIN)/python $$bench || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check hw sw sim synth tests benches data tools

verilog: $(STAMP)
	$(BIN)/reuse-accel generate -o out/verilog

clean:
	rm -rf out build .pytest_cache
