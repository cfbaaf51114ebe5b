# backendai-hub: `make demo` serves the hub at http://127.0.0.1:8000, `make test` runs the suite.
# Both set up what they need: virtualenv, package, Node proxy, Docker engine, images, databases.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE ?= .state

.PHONY: demo demo-reset test test-fast venv docs node docker images postgres chromium bai-client bench clean help

help:
	@echo "make demo        set everything up and serve the hub at http://127.0.0.1:8000"
	@echo "make test        set everything up and run the whole suite"
	@echo "make test-fast   unit + integration tests only (no Docker, PostgreSQL or Chromium needed)"
	@echo "make images      build the air-gapped session images"
	@echo "make docs        build the documentation (warnings are errors) into docs/_build/html"
	@echo "make bench       run the benchmarks (see benchmarks/README.md)"
	@echo "make demo-reset  forget the demo's state (.demo/)"

# -- set-up steps (each cheap when already done) --------------------------------------------------
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[docs]'
	@touch $@

docs: $(VENV)/.docs-installed
	$(BIN)/sphinx-build -W --keep-going -n -b html docs/source docs/_build/html

node_modules/.bin/configurable-http-proxy: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js >= 18 and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node: node_modules/.bin/configurable-http-proxy

docker:
	@BACKENDAI_HUB_STATE=$(STATE) bash scripts/ensure-docker.sh

images: docker node
	bash kernels/build.sh r  # the R image too: the app tests (Shiny, R kernel) use it

postgres: | $(STATE)
	@bash scripts/ensure-postgres.sh > $(STATE)/pg_url.tmp || { rm -f $(STATE)/pg_url.tmp; exit 1; }
	@mv $(STATE)/pg_url.tmp $(STATE)/pg_url

chromium:
	@bash scripts/ensure-chromium.sh > /dev/null

bai-client:
	@bash scripts/ensure-bai-client.sh > /dev/null

$(STATE):
	@mkdir -p $(STATE)

# -- the two commands of the README ------------------------------------------------------------------
demo: venv node images
	$(BIN)/jupyterhub -f jupyterhub_config.py

demo-reset:
	@# vfolders with a quota are loop-mounted images that outlive the hub: unmount them first
	@awk '$$2 ~ "^$(CURDIR)/.demo/" {print $$2}' /proc/self/mounts | sort -r | xargs -r -n1 umount
	rm -rf .demo

test: venv docs node images postgres chromium bai-client
	BACKENDAI_HUB_STRICT=1 BACKENDAI_HUB_TEST_PG_URL=$$(cat $(STATE)/pg_url) CHROMIUM=$$(bash scripts/ensure-chromium.sh) \
	  BACKENDAI_CLIENT_PYTHON=$$(bash scripts/ensure-bai-client.sh) \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest tests/unit tests/integration $(PYTEST_ARGS)

bench: venv node images
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-bai .venv-labext node_modules labextension/node_modules labextension/lib labextension/.yarn \
	  labextension/backendai_hub_labextension/labextension .pytest_cache build *.egg-info docs/_build
