"""What every service's metrics share: the prefix, a registry whose scrape is
consistent, build info, and the ``/metrics`` endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server

PREFIX = "ecoshare"


class ConsistentRegistry(CollectorRegistry):
    """A registry whose scrape never sees a batch half applied.

    :meth:`collect` holds :attr:`update_lock`; writers that must change several series
    as one fact (a batch's counters) hold it too, via :meth:`GovernanceMetrics.update`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.update_lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self.update_lock:
            families = list(super().collect())
        yield from families


def register_build_info(registry: CollectorRegistry, service: str, version: str) -> Gauge:
    """Register ``ecoshare_build_info{service,version} 1`` on ``registry``."""
    build_info = Gauge(
        f"{PREFIX}_build_info",
        "Always 1; labels name the running service and its version.",
        ["service", "version"],
        registry=registry,
    )
    build_info.labels(service, version).set(1)
    return build_info


_SUFFIXES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def series_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every series name ``registry`` can expose, with the ``_total``/``_bucket``/...
    suffixes, including labelled metrics that have no labelled child yet."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(
            f"{family.name}{suffix}" for suffix in _SUFFIXES_BY_TYPE.get(family.type, ("",))
        )
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int
) -> tuple[WSGIServer, int]:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    ``port`` 0 picks a free port; the port actually bound is returned with the server.
    Stop it with :func:`stop_metrics_server`.
    """
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, int(server.server_address[1])


def stop_metrics_server(server: WSGIServer) -> None:
    """Stop serving and release the port."""
    server.shutdown()
    server.server_close()
