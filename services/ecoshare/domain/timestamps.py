"""Timestamps as the catalog carries them: UTC, millisecond precision.

Avro ``timestamp-millis`` stores milliseconds since the Unix epoch. Models keep aware
``datetime`` values normalised to UTC and truncated to whole milliseconds, so that a
model survives an Avro round trip unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLIS_PER_HOUR = 3_600_000
MILLIS_PER_DAY = 86_400_000


def to_utc_millis(value: datetime) -> datetime:
    """``value`` in UTC, truncated towards the past to a whole millisecond.

    Raises ``ValueError`` for a naive datetime: the platform never guesses a time zone.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware (UTC)")
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


def to_epoch_millis(value: datetime) -> int:
    """Whole milliseconds since the Unix epoch of an aware ``value`` (floor)."""
    delta = to_utc_millis(value) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_epoch_millis(millis: int) -> datetime:
    """The aware UTC datetime ``millis`` milliseconds after the Unix epoch."""
    return EPOCH + timedelta(milliseconds=millis)


UtcTimestamp = Annotated[AwareDatetime, AfterValidator(to_utc_millis)]
"""An aware datetime, normalised to UTC at millisecond precision on validation."""
