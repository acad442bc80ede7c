# Tailor — the two commands (`make demo`, `make test`) do all set-up on a fresh clone.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MXVENV := .venv-mxnet
SHARED_DATASETS := $(abspath ../shared/datasets)

# Demo and tests never touch the network: point named datasets at the shared mirror when it exists.
ifneq ($(wildcard $(SHARED_DATASETS)/fashion-mnist),)
export TAILOR_DATASET_MIRROR ?= file://$(SHARED_DATASETS)
endif
# Two threads spinning in OpenMP collapse ~4x when the other core is busy (docs/MEASURED.md).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv mxnet chromium postgresql bentoml wrk demo test test-fast lint format bench clean screenshots

help:
	@echo "make demo   - set up .venv and run the Fashion-MNIST job end to end"
	@echo "make test   - set up .venv (+ the MXNet peer venv) and run lint + the test suite"
	@echo "make test-fast - lint + the tests not marked slow (the inner loop)"
	@echo "make bench  - run the benchmarks in bench/ (long)"

venv: $(VENV)/.installed

# torch first, pinned: pip takes the CPU wheel from local disk; a bare `torch` would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,pretrained,cluster]'
	touch $@

# MXNet 1.9.1 is the reference implementation our RecordIO files and benchmarks are checked against.
mxnet: $(MXVENV)/.installed

$(MXVENV)/.installed:
	test -d $(MXVENV) || $(PY) -m venv $(MXVENV)
	$(MXVENV)/bin/pip install -q --disable-pip-version-check mxnet==1.9.1 'numpy<1.24' 'opencv-python-headless<4.11'
	touch $@

# The console's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
# Idempotent: a no-op once /usr/bin/chromium exists. CI runs as root; elsewhere sudo asks.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver)

# The PostgreSQL tests start a throwaway cluster from Debian's PostgreSQL 15 binaries (never a service).
postgresql:
	@test -x /usr/lib/postgresql/15/bin/initdb || \
		($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# --durations: the slowest tests in every run's log, to keep the suite within its ~20 minutes.
test: venv mxnet chromium postgresql lint
	TAILOR_MXNET_PYTHON=$(abspath $(MXVENV))/bin/python $(BIN)/pytest -q --durations=25

# The inner loop: everything but the tests marked `slow` (training runs, browsers, whole servers, MXNet).
test-fast: venv lint
	$(BIN)/pytest -q -m "not slow"

demo: venv
	$(BIN)/python -m tailor.cli.main demo

# BentoML (the serving bench's baseline) in its own venv so the main venv's dependencies stay clean.
BENTOVENV := .venv-bentoml
bentoml: $(BENTOVENV)/.installed

$(BENTOVENV)/.installed:
	test -d $(BENTOVENV) || $(PY) -m venv $(BENTOVENV)
	$(BENTOVENV)/bin/pip install -q --disable-pip-version-check 'bentoml==1.4.*' onnxruntime pillow numpy
	touch $@

# wrk (Debian package) drives the serving bench's HTTP load.
wrk:
	@command -v wrk >/dev/null || apt-get install -y -q wrk

bench: venv mxnet bentoml wrk postgresql
	TAILOR_MXNET_PYTHON=$(abspath $(MXVENV))/bin/python $(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(MXVENV) .pytest_cache .ruff_cache build dist src/*.egg-info

# The console pictures README shows, taken by the browser tests.
screenshots: venv chromium
	TAILOR_SCREENSHOTS_DIR=$(abspath docs/screenshots) $(BIN)/pytest -q tests/console
