"""Ecosystem health: reciprocity, coverage, freshness and agreement use, computed
continuously from the audit trail and the control plane.

- :class:`EcosystemHealth` is the pure model (time passed in);
- :class:`HealthMonitor` follows the topics and keeps :class:`HealthMetrics` set;
"""

from ecoshare.health.feed import audit_observations
from ecoshare.health.model import (
    DEFAULT_BUCKET,
    DEFAULT_FRESHNESS_SLA,
    DEFAULT_IDLE_AFTER,
    DEFAULT_MAX_LOCATIONS_PER_STREAM,
    DEFAULT_UNLISTED_SLA,
    DEFAULT_WINDOW,
    AcceptedEvent,
    DecisionTally,
    EcosystemHealth,
    HealthObservation,
)
from ecoshare.health.monitor import HealthMonitor

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_FRESHNESS_SLA",
    "DEFAULT_IDLE_AFTER",
    "DEFAULT_MAX_LOCATIONS_PER_STREAM",
    "DEFAULT_UNLISTED_SLA",
    "DEFAULT_WINDOW",
    "AcceptedEvent",
    "DecisionTally",
    "EcosystemHealth",
    "HealthMonitor",
    "HealthObservation",
    "audit_observations",
]
