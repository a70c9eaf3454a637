# The two commands of the README are `make demo` and `make test`; both set up what they need.
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: test demo up down status lint docs clean chaos soak

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

## The whole test suite: the quality gate, unit tests, then integration against real Kafka and PostgreSQL.
test: lint
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
