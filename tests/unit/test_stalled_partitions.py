"""`ecoshare status` names ingress partitions that have lag and make no progress."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from ecoshare.adapters.metrics import GovernanceMetrics
from ecoshare.cli.status import STALLED_AFTER_SECONDS, stalled_partitions


def _worker_metrics(stalled: dict[int, float]) -> str:
    registry = CollectorRegistry()
    metrics = GovernanceMetrics(registry)
    for partition, seconds in stalled.items():
        metrics.set_partition_stalled("ingress.StoreStatusChanged", partition, seconds)
    return generate_latest(registry).decode()


def test_only_partitions_stalled_past_the_threshold_are_named() -> None:
    first = _worker_metrics({0: 0.0, 1: STALLED_AFTER_SECONDS + 12})
    second = _worker_metrics({2: STALLED_AFTER_SECONDS - 1, 3: 95.0})
    assert stalled_partitions([first, second]) == {
        ("ingress.StoreStatusChanged", "1"): STALLED_AFTER_SECONDS + 12,
        ("ingress.StoreStatusChanged", "3"): 95.0,
    }


def test_two_workers_reporting_one_partition_give_the_longer_stall() -> None:
    before = _worker_metrics({1: 40.0})
    after = _worker_metrics({1: 70.0})
    assert stalled_partitions([before, after]) == {("ingress.StoreStatusChanged", "1"): 70.0}


def test_a_forgotten_partition_is_not_reported() -> None:
    registry = CollectorRegistry()
    metrics = GovernanceMetrics(registry)
    metrics.set_partition_stalled("ingress.StoreStatusChanged", 1, 80.0)
    metrics.forget_partition("ingress.StoreStatusChanged", 1)
    assert stalled_partitions([generate_latest(registry).decode()]) == {}
