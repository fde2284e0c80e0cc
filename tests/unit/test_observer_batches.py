"""A batch's delivery latencies are observed as one update per bucket, with the same
result as one observation each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from ecoshare.governance.observer import observe_all

BUCKETS = (0.005, 0.05, 0.5, 1.0, 5.0)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("latency_seconds", "latency", buckets=BUCKETS, registry=registry)


@given(st.lists(st.sampled_from([0.0, *BUCKETS]) | st.floats(0, 20), max_size=50))
def test_observing_a_batch_at_once_equals_observing_each(values: list[float]) -> None:
    each_registry, each = _histogram()
    for value in values:
        each.observe(value)
    batch_registry, batch = _histogram()
    observe_all(batch, values)
    assert _samples(batch_registry) == _samples(each_registry)


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]
