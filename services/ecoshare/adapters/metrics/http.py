"""Requests served by the HTTP services (API, registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from ecoshare.adapters.metrics.exposition import PREFIX

HTTP_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class HttpMetrics:
    """Requests served by an HTTP service.

    ``route`` is the route template (``/partners/{partner_id}``), never the raw path, so
    the label set stays bounded.

    Attributes: ``requests`` [``ecoshare_http_requests_total``]
    {service, method, route, status} and ``request_duration_seconds``
    [``ecoshare_http_request_duration_seconds``] {service, method, route}.
    """

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests served, by route template and status code.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.request_duration_seconds = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to serve an HTTP request (until the response starts), in seconds.",
            ["service", "method", "route"],
            registry=registry,
            buckets=HTTP_DURATION_BUCKETS,
        )

    def observe(self, method: str, route: str, status: int, duration_seconds: float) -> None:
        """Record one served request."""
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.request_duration_seconds.labels(self.service, method, route).observe(duration_seconds)
