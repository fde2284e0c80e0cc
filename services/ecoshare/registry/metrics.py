"""Prometheus metrics of the registry, on an explicit CollectorRegistry.

A registry of its own (not prometheus-client's global one) keeps two apps in one
process, as in tests, from colliding on metric names.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ecoshare import __version__


class RegistryMetrics:
    """Request counts and latencies per route template, the schema count and build info."""

    def __init__(
        self,
        schema_count: Callable[[], int],
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "ecoshare_registry_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "ecoshare_registry_request_duration_seconds",
            "Time to answer an HTTP request, in seconds, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        schemas = Gauge(
            "ecoshare_registry_schemas",
            "Distinct schema ids the registry serves.",
            registry=self.registry,
        )
        schemas.set_function(lambda: float(schema_count()))
        build_info = Gauge(
            "ecoshare_build_info",
            "Always 1; labels name the running version and service.",
            ["version", "service"],
            registry=self.registry,
        )
        build_info.labels(version=__version__, service="registry").set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.request_duration.labels(method=method, route=route).observe(seconds)
