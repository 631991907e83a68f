# Two commands for a newcomer: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3

export PIPENV_PIPFILE := $(CURDIR)/Pipfile
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_IGNORE_VIRTUALENVS := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
export PIPENV_VERBOSITY := -1
# The Pipfile names its index through this variable; by default it is pip's own default index.
export PIPENV_INDEX_URL ?= $(shell $(PYTHON) -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')

PIPENV := $(PYTHON) -m pipenv
RUN := cd code && $(PIPENV) run
COVERED := spycloud_relay/api/*,spycloud_relay/spycloud/*,spycloud_relay/ctim/*,spycloud_relay/state/*,spycloud_relay/tiles/*,spycloud_relay/sync/*
# Every tool's settings are in pyproject.toml; coverage, which runs from code/, is told where.
export COVERAGE_RCFILE := $(CURDIR)/pyproject.toml

.PHONY: install redis-server lint ruff format-check typecheck format test test-fast test-dates demo bench soak clean docker-test docker-daemon docker-daemon-stop

.venv/.installed: Pipfile Pipfile.lock
	@$(PYTHON) -m pipenv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet pipenv
	$(PIPENV) install --dev --deploy
	@touch $@

install: .venv/.installed

# ruff's lint rules, the format check and mypy, over the whole repository (from its root).
lint: ruff format-check typecheck

ruff: install
	$(PIPENV) run ruff check

format-check: install
	$(PIPENV) run ruff format --check

typecheck: install
	$(PIPENV) run mypy

# Rewrites files: ruff's safe fixes (what it cannot fix is listed), then its formatter.
format: install
	$(PIPENV) run ruff check --fix --exit-zero
	$(PIPENV) run ruff format

# The state tests run a real redis-server (code/tests/redis_server.py): Debian's, installed
# when it is missing (as root, non-interactive, as docker-test installs Docker).
redis-server:
	@command -v redis-server >/dev/null || (apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server) \
		</dev/null

# lint (ruff, the format check, mypy), then the whole suite with coverage.
test: lint redis-server
	$(RUN) coverage erase
	$(RUN) coverage run -m pytest
	$(RUN) coverage report --include='$(COVERED)' --fail-under=90

# The pure tests only (mapping, settings, properties, files that must agree): no server, no
# socket, in seconds. Hypothesis runs its `fast` profile here (fewer examples).
test-fast: install
	$(RUN) pytest -m pure -q --hypothesis-profile=fast

# The whole suite with the clock moved by each of DATES (libfaketime offsets): it must pass
# on any day. make test-dates DATES='+37d -200d'
DATES ?= +100d +192d -200d
test-dates: install redis-server
	$(RUN) python tests/on_dates.py $(DATES)

demo: install
	$(RUN) python demo.py

# make bench BENCH_ARGS='--latency-ms 100 --clients 32'
bench: install
	$(RUN) python ../bench/bench.py $(BENCH_ARGS)

# make soak SOAK_ARGS='--seconds 120': mixed load with SpyCloud faults; fails on a surprise
soak: install
	$(RUN) python ../bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf .venv code/.coverage .pytest_cache .mypy_cache .ruff_cache

# Docker (kept out of `make test`). docker-test builds the image from ./Dockerfile, runs it
# against the simulator and the local JWKS issuer, and removes all it started; it uses a
# running Docker daemon, or installs and starts one of its own (root, Debian). See README.
docker-test: install
	bash docker/docker-test.sh </dev/null

# Helpers: a lasting dockerd on the default socket (with a base image), so that repeated
# `make docker-test` runs skip starting a daemon and making a base image; and its stop.
docker-daemon:
	bash docker/engine.sh start </dev/null

docker-daemon-stop:
	bash docker/engine.sh stop
