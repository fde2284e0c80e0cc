"""The platform's Prometheus metrics catalog.

Every metric is constructed on a :class:`~prometheus_client.CollectorRegistry` handed in
by the caller, never on the process-global default registry, so tests and several
services in one process never collide.

Conventions (checked by ``tests/unit/test_metrics_catalog.py``):

- every name starts with ``ecoshare_``; counters end in ``_total``; durations and
  timestamps are in seconds and end in ``_seconds``; ratios end in ``_ratio``;
- label values come from bounded sets only: partner ids, event types, reasons from a
  closed vocabulary, agreement ids, topics and partitions. Event ids, location ids or
  anything else that grows with traffic never become a label.

One module per service: :mod:`.governance` (workers), :mod:`.health` (health
evaluator), :mod:`.http` (HTTP services); :mod:`.exposition` holds what they share
(the consistent registry, build info, the scrape endpoint).
"""

from ecoshare.adapters.metrics.exposition import (
    PREFIX,
    ConsistentRegistry,
    register_build_info,
    series_names,
    start_metrics_server,
    stop_metrics_server,
)
from ecoshare.adapters.metrics.governance import (
    BATCH_PROCESSING_BUCKETS,
    CONSENT_ENFORCEMENT_BUCKETS,
    DELIVERY_LATENCY_BUCKETS,
    EVENT_PROCESSING_BUCKETS,
    DeclaredSeries,
    GovernanceMetrics,
)
from ecoshare.adapters.metrics.health import HealthMetrics
from ecoshare.adapters.metrics.http import HTTP_DURATION_BUCKETS, HttpMetrics

__all__ = [
    "BATCH_PROCESSING_BUCKETS",
    "CONSENT_ENFORCEMENT_BUCKETS",
    "DELIVERY_LATENCY_BUCKETS",
    "EVENT_PROCESSING_BUCKETS",
    "HTTP_DURATION_BUCKETS",
    "PREFIX",
    "ConsistentRegistry",
    "DeclaredSeries",
    "GovernanceMetrics",
    "HealthMetrics",
    "HttpMetrics",
    "register_build_info",
    "series_names",
    "start_metrics_server",
    "stop_metrics_server",
]
