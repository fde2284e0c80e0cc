"""Run the schema registry in the foreground until SIGTERM or SIGINT.

    python -m ecoshare.registry --bootstrap-servers HOST:PORT --port PORT \\
        [--host 127.0.0.1] [--topic _schemas] [--log-level INFO]

The HTTP port is bound only after the store has caught up with its topic, so a registry
that answers ``GET /`` serves every schema written before it started.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn

from ecoshare.application.bootstrap import start_service_logs
from ecoshare.errors import EcoshareError
from ecoshare.registry.app import create_app
from ecoshare.registry.metrics import RegistryMetrics
from ecoshare.registry.service import SchemaRegistry
from ecoshare.registry.store import DEFAULT_TOPIC, KafkaSchemaStore

logger = logging.getLogger("ecoshare.registry")


class _StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """Raised in the main thread by the first SIGTERM/SIGINT."""


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ecoshare.registry",
        description="Confluent-compatible Avro schema registry backed by a Kafka topic.",
    )
    parser.add_argument("--bootstrap-servers", required=True, help="Kafka HOST:PORT list.")
    parser.add_argument("--port", type=int, required=True, help="HTTP port to listen on.")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help="Compacted topic of the state.")
    parser.add_argument("--log-level", default="INFO", help="Python log level.")
    return parser.parse_args(argv)


def _install_stop_handlers() -> None:
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # uvicorn installs its own handlers while serving and, after its graceful
        # shutdown, re-raises the signal into this one; from here on we only unwind.
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise _StopRequested(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parse_arguments(argv)
    start_service_logs(arguments.log_level)
    _install_stop_handlers()
    store = KafkaSchemaStore(arguments.bootstrap_servers, arguments.topic)
    try:
        store.start()
        registry = SchemaRegistry(store)
        app = create_app(registry, RegistryMetrics(schema_count=registry.schema_count))
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=arguments.host,
                port=arguments.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        logger.info(
            "schema registry starting on http://%s:%d (topic %s on %s)",
            arguments.host,
            arguments.port,
            arguments.topic,
            arguments.bootstrap_servers,
        )
        server.run()
    except _StopRequested as stop:
        logger.info("stopping on %s", stop)
    except EcoshareError as exc:
        logger.error("the schema registry could not start: %s", exc)
        return 1
    finally:
        store.close()
    logger.info("schema registry stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
