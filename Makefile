# sensor-display: `make run` to try it, `make test` to check it, `make bench` to measure it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PYTEST_ARGS ?=

.PHONY: run test soak image-test lint format bench assets clean help

help:
	@echo "make run    - start Redis, a demo producer, the recorder and the web server on :9999"
	@echo "make test   - install what the tests need and run every test"
	@echo "make bench  - the benchmarks, side by side with stock flask-sse"
	@echo "make soak   - ten minutes of open pages at 72 points/s: memory stays flat"
	@echo "make image-test - build both images, run the compose stack and the arm producer (needs Docker)"
	@echo "make lint   - ruff, and import-linter for the layers"

$(VENV)/.local: requirements/base.txt requirements/web.txt requirements/producer.txt requirements/pi.txt requirements/local.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/local.txt
	touch $@

$(VENV)/.dev: $(VENV)/.local requirements/dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

# Chart.js and its adapter from the npm registry (lockfile), copied into
# web/static/vendor; never committed, never a CDN.
web/static/vendor/.stamp: package.json package-lock.json scripts/vendor-assets.mjs
	@command -v npm >/dev/null || { echo "npm is needed once to fetch Chart.js (install Node.js)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent vendor
	touch $@

assets: web/static/vendor/.stamp

run: $(VENV)/.local assets
	$(PY) -m devtools.run

# Two workers, whole files each (module fixtures stay shared); then the tests
# marked `serial` alone. Both parts always run; either failing fails the target
# (exit 5, nothing selected, is not a failure: PYTEST_ARGS may name one file).
TEST_WORKERS ?= 2
test: $(VENV)/.dev assets
	@status=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m 'not soak and not serial' $(PYTEST_ARGS) \
		|| [ $$? -eq 5 ] || status=1; \
	$(PY) -m pytest -m 'serial and not soak' $(PYTEST_ARGS) || [ $$? -eq 5 ] || status=1; \
	exit $$status

# Ten minutes of open pages at 72 points/s: memory stays flat (tests/test_page_soak.py).
soak: $(VENV)/.dev assets
	$(PY) -m pytest -m soak tests/test_page_soak.py $(PYTEST_ARGS)

# The images and the compose stack on a real Docker engine (tests/test_images.py,
# also part of `make test`); docs/deploy.md, "Images in CI".
image-test: $(VENV)/.dev
	$(PY) -m pytest tests/test_images.py $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.dev assets
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules web/static/vendor .pytest_cache .ruff_cache
