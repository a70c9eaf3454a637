# The two commands of the README are `make demo` and `make test`; both set up what they need.
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
LOCKS   := requirements/runtime.lock requirements/dev.lock
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) | cksum | cut -d' ' -f1)

.PHONY: test demo up down status lint docs clean chaos soak lock

# The venv holds exactly dev.lock (every package pinned and hash-checked: no indirect dependency drifts),
# then the project itself, editable, adding nothing.
$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

## The lock files, from pyproject.toml: dev.lock (the venv: the dependencies and the dev extra), then runtime.lock
## (the image: the dependencies alone), constrained to dev.lock's versions so the image runs what the tests ran.
## One universal resolution (every platform's markers) for Python 3.11, with every file's sha256. Versions already
## locked are kept while pyproject.toml allows them; `make lock UPGRADE=--upgrade` takes the newest allowed.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet \
        --custom-compile-command 'make lock' $(UPGRADE)
lock: $(STAMP)
	@mkdir -p requirements
	$(LOCK) --extra dev --output-file requirements/dev.lock
	$(LOCK) --constraint requirements/dev.lock --output-file requirements/runtime.lock

## The whole test suite: the quality gate, unit tests, then integration against real Kafka and PostgreSQL.
## First, the tools some tests drive (Jaeger, kubeconform, helm) and the operators' CRDs start building and
## downloading in the background, at the lowest CPU priority (a no-op once this machine has them): the tests
## that need kubeconform and helm run last (tests/conftest.py), by when the build is done or nearly.
test: $(STAMP)
	$(BIN)/python -m deploy.local.tools --background
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m deploy.local.stack up
	$(BIN)/python -m deploy.local.browser
	$(BIN)/pytest

## The fault suite: every scenario (SIGKILLs, broker and PostgreSQL restarts, rebalance storm, zombie,
## SIGTERM drain, poison, partitions from PostgreSQL and from Kafka, disk full, clock jump, stuck outbox)
## against the whole stack, compared with an independent oracle; prints a table.
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

## Load and soak: the highest steady rate the stack holds, for 10 minutes; latency and memory.
soak: $(STAMP)
	$(BIN)/python -m tests.chaos.soak

## The demo: local stack, the four services, a simulated sales org streamed through ingest.
demo: $(STAMP)
	$(BIN)/python -m deploy.demo

up down status: $(STAMP)
	$(BIN)/python -m deploy.local.stack $@

## One quality gate: ruff and mypy (strict).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## Machine-readable contract from the code: OpenAPI per service, JSON Schema per event, AsyncAPI.
docs: $(STAMP)
	$(BIN)/python -m shared.docs docs/api

clean:
	rm -rf $(VENV) .local
