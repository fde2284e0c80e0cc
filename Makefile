# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-packages kafka-jars demo test check lint typecheck bench bench-tansu-history bench-worker-profile soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests need (promtool and prometheus); installs only what is missing.
system-packages:
	bash .ci/install-system-packages

# The Apache Kafka broker's jars (Maven, cached under ~/.cache/ecoshare/); needs Java and Maven.
kafka-jars: $(STAMP)
	$(BIN)/python -m ecoshare.adapters.kafka_broker

demo: $(STAMP)
	$(BIN)/ecoshare demo

# Integration and e2e tests run on both brokers (pytest --broker=tansu,kafka).
test: $(STAMP) system-packages kafka-jars
	$(BIN)/python -m pytest -q tests --broker=tansu,kafka

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Both brokers, about 15 minutes on 2 shared cores (BENCH_BROKERS=tansu for one).
bench: $(STAMP) kafka-jars
	$(BIN)/python -m bench.governed_throughput

# The embedded broker's fetch latency at 1k..10k stored batches per partition (~3 min).
bench-tansu-history: $(STAMP)
	$(BIN)/python -m bench.tansu_history

# One worker under cProfile, and what an idle worker costs the broker (~2 min).
bench-worker-profile: $(STAMP)
	$(BIN)/python -m bench.worker_profile

# Not in CI: 1,000 events/s for 30 minutes on each broker (SOAK_ARGS="--minutes 5" to shorten).
soak: $(STAMP) kafka-jars
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .ecoshare .pytest_cache .mypy_cache .ruff_cache
