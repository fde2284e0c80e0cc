# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-packages kafka-jars demo test check lint typecheck bench bench-engine bench-tansu-history bench-broker-profile bench-combined-writes bench-worker-profile bench-rss soak fuzz clean asyncapi-schema

# The install also builds the compiled governance core (native/, Rust) with cargo;
# rustup installs cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs native/src/*/*.rs)

$(STAMP): pyproject.toml $(NATIVE_SOURCES)
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

# Both brokers, about 15 minutes on 2 shared cores (BENCH_BROKERS=tansu for one), then
# the workers' memory over 1,000,000 events on each (bench-rss, about 8 minutes more).
bench: $(STAMP) kafka-jars
	$(BIN)/python -m bench.governed_throughput
	$(BIN)/python -m bench.worker_rss

# The engine alone, in-process: native core against the Python reference, µs per event.
bench-engine: $(STAMP)
	$(BIN)/python -m bench.engine_inprocess

# Differential fuzzing of the scanner against strict Avro readers (fastavro, avro);
# `make test` runs it for a few seconds. Differences are saved as corpus cases.
FUZZ_SECONDS ?= 600
FUZZ_SEED ?= $(shell date +%s)
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.differential --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED) \
		--save tests/fuzz/corpus
	$(BIN)/python -m tests.fuzz.differential --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED) \
		--save tests/fuzz/corpus --core native

# The embedded broker's fetch latency at 1k..10k stored batches per partition (~3 min).
bench-tansu-history: $(STAMP)
	$(BIN)/python -m bench.tansu_history

# The Apache Kafka broker under Java Flight Recorder during the 2,000 events/s latency
# phase: where its CPU goes (~1 min; BENCH_PROFILE_MODE=checkpoints for that mode).
bench-broker-profile: $(STAMP) kafka-jars
	$(BIN)/python -m bench.broker_profile

# Tansu at 2,000 events/s with the audit blocks and checkpoints written after every
# batch and together once a second: progress and audit records, latency (~3 min).
bench-combined-writes: $(STAMP)
	$(BIN)/python -m bench.combined_writes

# One worker under cProfile, and what an idle worker costs the broker (~2 min).
bench-worker-profile: $(STAMP)
	$(BIN)/python -m bench.worker_profile

# A worker's memory over 1,000,000 events on Apache Kafka and on Tansu, with the default
# duplicate windows and with windows full (about 4 minutes a broker on 2 cores;
# BENCH_RSS_EVENTS=100000 to shorten, BENCH_BROKERS=kafka for one). Writes
# bench/rss-results.json and merges its curves into bench/results.json.
bench-rss: $(STAMP) kafka-jars
	$(BIN)/python -m bench.worker_rss

# Not in CI: 1,000 events/s for 30 minutes on each broker (SOAK_ARGS="--minutes 5" to shorten).
soak: $(STAMP) kafka-jars
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf native/target services/ecoshare/_native*.so
	rm -rf $(VENV) .ecoshare .cache .pytest_cache .mypy_cache .ruff_cache

# The AsyncAPI JSON Schema the tests validate against, vendored in tests/data/asyncapi/
# from the npm package @asyncapi/specs; this refreshes it (needs npm).
ASYNCAPI_SPECS_VERSION := 6.11.1
asyncapi-schema:
	rm -rf .cache/asyncapi-specs && mkdir -p .cache/asyncapi-specs
	cd .cache/asyncapi-specs && npm pack --silent @asyncapi/specs@$(ASYNCAPI_SPECS_VERSION) && tar xzf asyncapi-specs-$(ASYNCAPI_SPECS_VERSION).tgz
	cp '.cache/asyncapi-specs/package/schemas/3.0.0-without-$$id.json' tests/data/asyncapi/asyncapi-3.0.0.schema.json
	cp .cache/asyncapi-specs/package/LICENSE .cache/asyncapi-specs/package/NOTICE tests/data/asyncapi/
