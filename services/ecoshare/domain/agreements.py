"""Data-sharing agreements: who receives which events, filtered and shaped how.

An agreement is default-deny: a field it does not list is never delivered, and an event
is delivered only when every row filter holds. Validation is strict (no unknown keys, no
operands that do not belong to the operation) and every message names the offending
field, so a mistake in an operator's YAML reads as what it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from ecoshare.domain.partners import PartnerId
from ecoshare.domain.timestamps import UtcTimestamp, to_epoch_millis

AVRO_INT_MAX = 2**31 - 1
ANY_PUBLISHER = "*"
MAX_PREFIX_RANGE = 10_000

Scalar = StrictStr | StrictInt | StrictFloat
RowFilterOp = Literal["equals", "in", "prefix", "range"]
TimeTruncation = Literal["hour", "day"]
NonEmpty = Annotated[str, Field(min_length=1)]
AgreementId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
PublisherRef = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,62})$")]

_OPERANDS: Mapping[str, tuple[str, ...]] = {
    "equals": ("value",),
    "in": ("values",),
    "prefix": ("prefixes",),
    "range": ("low", "high"),
}
_ALL_OPERANDS = ("value", "values", "prefixes", "low", "high")
_DIGITS = re.compile(r"^[0-9]+$")


def expand_prefix_range(low: str, high: str) -> tuple[str, ...]:
    """Every digit prefix from ``low`` to ``high`` inclusive, zero-padded to their width.

    ``expand_prefix_range("10", "19")`` is ``("10", "11", ..., "19")``: postal regions
    10xx-19xx. Both bounds must be digit strings of equal width with ``low <= high``;
    at most ``MAX_PREFIX_RANGE`` prefixes are produced.
    """
    if _DIGITS.match(low) is None or _DIGITS.match(high) is None:
        raise ValueError(f"prefix_range bounds must be digit strings, got {low!r} and {high!r}")
    if len(low) != len(high):
        raise ValueError(f"prefix_range bounds must have equal width, got {low!r} and {high!r}")
    first, last = int(low), int(high)
    if first > last:
        raise ValueError(f"prefix_range low {low!r} is above high {high!r}")
    if last - first + 1 > MAX_PREFIX_RANGE:
        raise ValueError(f"prefix_range {low!r}..{high!r} spans more than {MAX_PREFIX_RANGE}")
    return tuple(str(number).zfill(len(low)) for number in range(first, last + 1))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_kind(left: object, right: object) -> bool:
    """Both strings, or both numbers: the pairs a row filter compares."""
    both_str = isinstance(left, str) and isinstance(right, str)
    return both_str or (_is_number(left) and _is_number(right))


def _at_most(lower: object, upper: object) -> bool:
    """``lower <= upper`` for two strings or two numbers; False for any other pair."""
    if isinstance(lower, str) and isinstance(upper, str):
        return lower <= upper
    if (
        isinstance(lower, int | float)
        and isinstance(upper, int | float)
        and _same_kind(lower, upper)
    ):
        return lower <= upper
    return False


def comparable_value(value: object) -> object:
    """The form row filters compare: timestamps as epoch milliseconds, the rest as is."""
    if isinstance(value, datetime):
        return to_epoch_millis(value)
    return value


class RowFilter(BaseModel):
    """A condition on one field of an event.

    - ``equals``: the field equals ``value`` (``None`` matches a null field);
    - ``in``: the field equals one of ``values``;
    - ``prefix``: the field is a string starting with one of ``prefixes``; write postal
      regions 10xx-19xx as ``prefix_range: ["10", "19"]``, which expands to ``prefixes``;
    - ``range``: ``low <= field <= high`` (either bound may be left out), comparing
      strings with strings and numbers with numbers.

    Timestamps compare as epoch milliseconds. A missing field, or a value of another kind
    than the operand (a number against a string), never matches.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: NonEmpty
    op: RowFilterOp
    value: Scalar | None = None
    values: tuple[Scalar, ...] = ()
    prefixes: tuple[NonEmpty, ...] = ()
    low: Scalar | None = None
    high: Scalar | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand_prefix_range(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "prefix_range" not in data:
            return data
        expanded = dict(data)
        bounds = expanded.pop("prefix_range")
        where = f"row filter on {expanded.get('field')!r}"
        if "prefixes" in expanded:
            raise ValueError(f"{where}: give either prefixes or prefix_range, not both")
        if (
            isinstance(bounds, str)
            or not isinstance(bounds, Sequence)
            or len(bounds) != 2
            or not all(isinstance(bound, str) for bound in bounds)
        ):
            raise ValueError(f"{where}: prefix_range must be two digit strings, e.g. ['10', '19']")
        try:
            expanded["prefixes"] = expand_prefix_range(bounds[0], bounds[1])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        expanded.setdefault("op", "prefix")
        return expanded

    @model_validator(mode="after")
    def _check_operands(self) -> Self:
        where = f"row filter on {self.field!r} (op {self.op!r})"
        expected = _OPERANDS[self.op]
        stray = [
            name
            for name in _ALL_OPERANDS
            if name not in expected and getattr(self, name) not in (None, ())
        ]
        if stray:
            raise ValueError(
                f"{where}: takes only {' and '.join(expected)}; remove {', '.join(stray)}"
            )
        if self.op == "equals" and "value" not in self.model_fields_set:
            raise ValueError(f"{where}: needs value")
        if self.op == "in" and not self.values:
            raise ValueError(f"{where}: needs a non-empty values list")
        if self.op == "prefix" and not self.prefixes:
            raise ValueError(f"{where}: needs a non-empty prefixes list (or prefix_range)")
        if self.op == "range":
            if self.low is None and self.high is None:
                raise ValueError(f"{where}: needs low, high or both")
            if self.low is not None and self.high is not None:
                if not _same_kind(self.low, self.high):
                    raise ValueError(f"{where}: low and high must both be numbers or strings")
                if not _at_most(self.low, self.high):
                    raise ValueError(f"{where}: low {self.low!r} is above high {self.high!r}")
        return self

    def matches(self, record: Mapping[str, object]) -> bool:
        """True when the condition holds for ``record``; never raises for odd values."""
        if self.field not in record:
            return False
        actual = comparable_value(record[self.field])
        if self.op == "equals":
            if self.value is None:
                return actual is None
            return _same_kind(actual, self.value) and actual == self.value
        if self.op == "in":
            return any(_same_kind(actual, option) and actual == option for option in self.values)
        if self.op == "prefix":
            return isinstance(actual, str) and actual.startswith(self.prefixes)
        if self.low is not None and not _at_most(self.low, actual):
            return False
        return self.high is None or _at_most(actual, self.high)

    def to_avro(self) -> dict[str, Any]:
        """The ``RowFilter`` Avro dict (operands of other operations empty)."""
        return {
            "field": self.field,
            "op": self.op,
            "value": self.value,
            "values": list(self.values),
            "prefixes": list(self.prefixes),
            "low": self.low,
            "high": self.high,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Validate a ``RowFilter`` Avro dict, reading only the operands of its op."""
        op = record["op"]
        data: dict[str, Any] = {"field": record["field"], "op": op}
        for name in _OPERANDS.get(op, ()):
            data[name] = record.get(name)
        return cls.model_validate(data)


class FieldAction(StrEnum):
    """What happens to a field on its way to a subscriber."""

    DELIVER = "deliver"
    DROP = "drop"
    MASK = "mask"
    HASH = "hash"
    GENERALISE = "generalise"


class FieldRule(BaseModel):
    """The rule for one field.

    - ``deliver``: the value as published;
    - ``drop``: not delivered (the same as not listing the field);
    - ``mask``: text with all but the last ``keep_last`` characters replaced by ``*``;
    - ``hash``: HMAC-SHA256 hex keyed per subscriber, so subscribers cannot join on it;
    - ``generalise``: numbers rounded to ``decimals`` decimals (2 is about 1 km of
      latitude), or timestamps truncated to the UTC ``hour`` or ``day``.

    In YAML a bare action name (``status: deliver``) stands for ``{action: deliver}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: FieldAction
    decimals: Annotated[StrictInt, Field(ge=-9, le=15)] | None = None
    truncate_to: TimeTruncation | None = None
    keep_last: Annotated[StrictInt, Field(ge=0, le=AVRO_INT_MAX)] = 0

    @model_validator(mode="before")
    @classmethod
    def _from_action_name(cls, data: Any) -> Any:
        return {"action": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check_parameters(self) -> Self:
        action = self.action.value
        if self.action is FieldAction.GENERALISE:
            if (self.decimals is None) == (self.truncate_to is None):
                raise ValueError(
                    "generalise needs exactly one of decimals (numbers) or truncate_to (timestamps)"
                )
        elif self.decimals is not None or self.truncate_to is not None:
            raise ValueError(f"{action} takes no decimals or truncate_to; only generalise does")
        if self.keep_last and self.action is not FieldAction.MASK:
            raise ValueError(f"{action} takes no keep_last; only mask does")
        return self

    @property
    def grants(self) -> bool:
        """True when the rule puts the field into the delivered record."""
        return self.action is not FieldAction.DROP

    def to_avro(self) -> dict[str, Any]:
        """The ``FieldRule`` Avro dict."""
        return {
            "action": self.action.value,
            "decimals": self.decimals,
            "truncate_to": self.truncate_to,
            "keep_last": self.keep_last,
        }


class Limits(BaseModel):
    """Caps on what one agreement delivers; ``None`` means uncapped.

    ``max_events_per_minute`` is a token bucket refilled continuously (bursts up to the
    cap); ``max_events_per_day`` counts per UTC calendar day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_events_per_minute: Annotated[StrictInt, Field(ge=1, le=AVRO_INT_MAX)] | None = None
    max_events_per_day: Annotated[StrictInt, Field(ge=1, le=AVRO_INT_MAX)] | None = None

    def to_avro(self) -> dict[str, Any]:
        """The ``Limits`` Avro dict."""
        return {
            "max_events_per_minute": self.max_events_per_minute,
            "max_events_per_day": self.max_events_per_day,
        }


class Agreement(BaseModel):
    """One version of a data-sharing agreement.

    Invariants: ``version >= 1``; ``publishers`` and ``event_types`` are non-empty;
    ``valid_until`` (exclusive), when set, is after ``valid_from`` (inclusive); both are
    UTC at millisecond precision. Fields not in ``fields`` are never delivered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    agreement_id: AgreementId
    version: Annotated[StrictInt, Field(ge=1, le=AVRO_INT_MAX)]
    publishers: Annotated[frozenset[PublisherRef], Field(min_length=1)]
    subscriber: PartnerId
    event_types: Annotated[frozenset[NonEmpty], Field(min_length=1)]
    purpose: NonEmpty
    valid_from: UtcTimestamp
    valid_until: UtcTimestamp | None = None
    row_filters: tuple[RowFilter, ...] = ()
    fields: dict[str, FieldRule] = Field(default_factory=dict)
    limits: Limits | None = None
    consent_purpose: NonEmpty | None = None

    @model_validator(mode="after")
    def _check_validity(self) -> Self:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError(
                f"valid_until {self.valid_until.isoformat()} must be after "
                f"valid_from {self.valid_from.isoformat()}"
            )
        return self

    def __hash__(self) -> int:
        # Equal agreements share id and version; ``fields`` (a dict) is not hashable.
        return hash((self.agreement_id, self.version))

    @property
    def effective_consent_purpose(self) -> str:
        """The purpose a consent must name for personal fields under this agreement."""
        return self.consent_purpose if self.consent_purpose is not None else self.purpose

    @property
    def granted_fields(self) -> frozenset[str]:
        """Names of the fields the agreement puts into delivered records."""
        return frozenset(name for name, rule in self.fields.items() if rule.grants)

    def is_in_force(self, at: datetime) -> bool:
        """True when ``valid_from <= at < valid_until`` (``at`` must be aware)."""
        if at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until

    def names_publisher(self, publisher_id: str) -> bool:
        """True when the agreement names ``publisher_id`` or ``*`` (any publisher)."""
        return ANY_PUBLISHER in self.publishers or publisher_id in self.publishers

    def covers(self, publisher_id: str, event_type: str) -> bool:
        """True when the agreement names the event type and the publisher (or ``*``)."""
        return event_type in self.event_types and self.names_publisher(publisher_id)

    def row_filters_pass(self, record: Mapping[str, object]) -> bool:
        """True when every row filter holds for ``record`` (vacuously with none)."""
        return all(row_filter.matches(record) for row_filter in self.row_filters)

    def to_avro(self) -> dict[str, Any]:
        """The ``DataSharingAgreement`` Avro dict; sets become sorted arrays."""
        return {
            "agreement_id": self.agreement_id,
            "version": self.version,
            "publishers": sorted(self.publishers),
            "subscriber": self.subscriber,
            "event_types": sorted(self.event_types),
            "purpose": self.purpose,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "row_filters": [row_filter.to_avro() for row_filter in self.row_filters],
            "fields": {name: rule.to_avro() for name, rule in self.fields.items()},
            "limits": None if self.limits is None else self.limits.to_avro(),
            "consent_purpose": self.consent_purpose,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Validate a ``DataSharingAgreement`` Avro dict into the model."""
        data = dict(record)
        data["row_filters"] = [RowFilter.from_avro(item) for item in record["row_filters"]]
        return cls.model_validate(data)
