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
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dask,sim]'
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache haiper-demo.duckdb* haiper-demo-manifest.txt haiper-demo-media

# The Prefect server these targets talk to; override with `make deploy PREFECT_API_URL=...` or
# an exported PREFECT_API_URL. Guide: docs/deployments.md.
# `make server PREFECT_PORT=4300` moves it (and the targets below follow).
PREFECT_PORT ?= 4200
server deploy worker serve: export PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api

# The UI asks the API on PREFECT_SERVER_API_PORT: it must match the port the server listens on.
server: install
	PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
		$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# Deploys module entrypoints with a pull step that runs on the worker (deployments/steps.py):
# nothing of this machine's paths is stored. HAIPER_SYNC_HOME is unset to keep it that way.
deploy: install
	env -u HAIPER_SYNC_HOME $(BIN)/python -m deployments.bootstrap
	env -u HAIPER_SYNC_HOME $(BIN)/prefect --no-prompt deploy --all

# Flow runs start in $HAIPER_SYNC_HOME (default: this checkout) and read HAIPER_API_KEY from
# this environment, else the Secret block `haiper-api-key`. A plain
# `.venv/bin/prefect worker start --pool haiper-sync` works too, with PREFECT_API_URL exported
# (this target sets it) and the venv's `prefect` (another one lacks haiper-sync).
worker: install
	HAIPER_SYNC_HOME="$${HAIPER_SYNC_HOME:-$(CURDIR)}" \
		$(BIN)/prefect worker start --pool haiper-sync --type process

serve: install
	$(BIN)/python -m deployments.serve

chaos: install
	$(BIN)/python -m pytest -m chaos

# Several minutes: 10,000 IDs at 50 ms latency, a rerun, a 1,000,000-ID manifest, a rate-limited
# run; then the requests each strategy, night and budget spends (bench/requests.py); then the
# media archive (bench/media.py: 2,000 x 256 KB + 20 x 50 MB and one 300 MB file, to a directory
# and to moto's S3, obstore vs fsspec vs aiohttp; about 3 GB through loopback, some minutes).
bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/requests.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/media.py
