# Only python3 (3.11+) and make are assumed; everything else lands in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HS     := $(BIN)/haiper-sync
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install demo test lint unit chaos bench simulate server deploy worker serve clean

install: $(HS)

# Reinstall whenever the pins change; -c pins every transitive dependency too.
$(HS): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dask]'
	@touch $(HS)

demo: install
	$(HS) demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest -m "not integration and not chaos"

simulate: install
	$(HS) simulate --port 8765

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache haiper-demo.duckdb* haiper-demo-manifest.txt
