"""Projection: what one subscriber receives of one event, and its Avro schema.

This is the reference semantics; any faster path must produce equal records.

- The projected record holds exactly the fields the agreement grants (deliver, mask,
  hash, generalise), in catalog order, and nothing else.
- Every projected field is nullable. A personal field carries its value only when the
  caller's consent check allowed it, and ``None`` otherwise.
- ``mask`` and ``hash`` produce strings; ``generalise`` keeps the type; ``None`` stays
  ``None`` under every rule.
- Values are hashed and masked through :func:`canonical_text`: strings as they are,
  integers in decimal, floats by ``repr``, booleans as ``true``/``false`` and timestamps
  as epoch milliseconds in decimal (the number on the wire).
"""

from __future__ import annotations

import copy
import decimal
import hashlib
import hmac
import math
import sys
from collections.abc import Mapping, Set
from datetime import datetime
from typing import Any, overload

from ecoshare.domain.agreements import Agreement, FieldAction, FieldRule, TimeTruncation
from ecoshare.domain.classification import Classification
from ecoshare.domain.errors import FieldRuleMismatchError, HashKeyMissingError
from ecoshare.domain.timestamps import (
    MILLIS_PER_DAY,
    MILLIS_PER_HOUR,
    from_epoch_millis,
    to_epoch_millis,
)

DELIVER_NAMESPACE = "nl.ecoshare.deliver"
HASH_KEY_CONTEXT = b"ecoshare/field-hash/v1\x00"
PRIMITIVE_TYPES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NUMERIC_TYPES = frozenset({"int", "long", "float", "double"})
_NAMED_KINDS = frozenset({"record", "enum", "fixed"})
_TEXT_ACTIONS = frozenset({FieldAction.MASK, FieldAction.HASH})


def subscriber_hash_key(platform_secret: bytes, subscriber_id: str) -> bytes:
    """The 32-byte key that keys ``hash`` rules for one subscriber.

    HMAC-SHA256 of the subscriber id under the platform secret: distinct per subscriber,
    so hashed values of two subscribers cannot be joined, and stable while the secret is.
    """
    return hmac.new(
        platform_secret, HASH_KEY_CONTEXT + subscriber_id.encode(), hashlib.sha256
    ).digest()


def canonical_text(value: object) -> str:
    """The text that ``mask`` and ``hash`` operate on (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return str(to_epoch_millis(value))
    raise FieldRuleMismatchError(f"cannot mask or hash a {type(value).__name__}")


def mask_value(value: object, keep_last: int) -> str:
    """``value``'s canonical text with all but the last ``keep_last`` characters as ``*``.

    The length is preserved. When ``keep_last`` is not smaller than the length, every
    character is masked, so a mask never reveals a whole value.
    """
    text = canonical_text(value)
    kept = keep_last if 0 < keep_last < len(text) else 0
    return "*" * (len(text) - kept) + text[len(text) - kept :]


def hash_value(value: object, key: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``value``'s canonical text (UTF-8) under ``key``."""
    return hmac.new(key, canonical_text(value).encode(), hashlib.sha256).hexdigest()


NUMBER_LIMITS: Mapping[str, tuple[int | float, int | float]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "float": (-3.4028234663852886e38, 3.4028234663852886e38),
    "double": (-sys.float_info.max, sys.float_info.max),
}
"""The finite range of each Avro number type."""


def generalise_number(value: object, decimals: int, kind: str | None = None) -> int | float:
    """``round(value, decimals)``, saturated into the Avro number type ``kind``.

    A float stays a float, an int stays an int. Rounding is Python's (half to even on
    the binary value); 2 decimals of latitude is about 1.1 km. Non-finite floats are
    returned unchanged. When rounding would leave the type's range (an ``int`` near
    2**31 rounded to tens, a ``double`` near its maximum rounded to 10**308), the value
    is cut towards zero to ``decimals`` instead, which is always in range: the result
    stays a multiple of the rounding step and never exceeds the type. ``kind`` is the
    delivered field's type (``int``, ``long``, ``float``, ``double``); unknown, ints are
    held to ``long`` and floats to ``double``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldRuleMismatchError(f"cannot round a {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        return value
    low, high = NUMBER_LIMITS[kind or ("long" if isinstance(value, int) else "double")]
    try:
        rounded = round(value, decimals)
    except OverflowError:  # a double rounded past the largest double
        rounded = math.inf
    if low <= rounded <= high:
        return rounded
    if isinstance(value, int):
        step: int = 10 ** max(0, -decimals)
        cut = abs(value) // step * step
        return cut if value >= 0 else -cut
    exact = decimal.Context(prec=800, rounding=decimal.ROUND_DOWN)  # every double fits
    cut_float = float(exact.quantize(decimal.Decimal(value), decimal.Decimal(1).scaleb(-decimals)))
    return cut_float if low <= cut_float <= high else math.copysign(0.0, value)


@overload
def generalise_timestamp(value: int, unit: TimeTruncation) -> int: ...
@overload
def generalise_timestamp(value: datetime, unit: TimeTruncation) -> datetime: ...
def generalise_timestamp(value: int | datetime, unit: TimeTruncation) -> int | datetime:
    """Truncate a timestamp towards the past to the start of its UTC hour or day.

    Accepts epoch milliseconds (returns milliseconds) or an aware datetime (returns an
    aware UTC datetime). The few milliseconds values whose hour or day starts before
    the smallest Avro ``long`` saturate to the first whole hour or day after it: a
    truncation never writes a value outside the ``long`` it came from.
    """
    step = MILLIS_PER_HOUR if unit == "hour" else MILLIS_PER_DAY
    if isinstance(value, datetime):
        millis = to_epoch_millis(value)
        return from_epoch_millis(millis - millis % step)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldRuleMismatchError(f"cannot truncate a {type(value).__name__} to the {unit}")
    truncated = value - value % step
    return truncated if truncated >= -(2**63) else truncated + step


def apply_field_rule(value: object, rule: FieldRule, hash_key: bytes | None) -> object:
    """The value a granted ``rule`` delivers for ``value`` (``None`` stays ``None``).

    Raises :class:`HashKeyMissingError` for a hash rule without a key, whatever the value.
    """
    if rule.action is FieldAction.HASH:
        if hash_key is None:
            raise HashKeyMissingError("a hash rule needs the subscriber's hash key")
        return None if value is None else hash_value(value, hash_key)
    if value is None:
        return None
    if rule.action is FieldAction.MASK:
        return mask_value(value, rule.keep_last)
    if rule.action is FieldAction.GENERALISE:
        if rule.decimals is not None:
            return generalise_number(value, rule.decimals)
        if rule.truncate_to is not None and isinstance(value, datetime | int):
            return generalise_timestamp(value, rule.truncate_to)
        raise FieldRuleMismatchError(f"cannot truncate a {type(value).__name__}")
    if rule.action is FieldAction.DROP:
        raise ValueError("a drop rule grants nothing to apply")
    return value


def projected_field_names(
    agreement: Agreement, classification: Mapping[str, Classification]
) -> tuple[str, ...]:
    """Names of the event's fields the agreement grants, in catalog order.

    ``classification`` lists the event's fields in catalog order.
    """
    return tuple(
        name
        for name in classification
        if (rule := agreement.fields.get(name)) is not None and rule.grants
    )


def project_record(
    record: Mapping[str, object],
    agreement: Agreement,
    classification: Mapping[str, Classification],
    personal_allowed: Set[str],
    hash_key: bytes | None,
) -> dict[str, object]:
    """The record the subscriber receives under ``agreement``.

    ``classification`` gives the event's fields in catalog order; ``personal_allowed``
    names the personal fields an active consent covers (other personal fields become
    ``None``); ``hash_key`` is the subscriber's key (needed only by hash rules).
    A field missing from ``record`` projects as ``None``.
    """
    projected: dict[str, object] = {}
    for name, field_class in classification.items():
        rule = agreement.fields.get(name)
        if rule is None or not rule.grants:
            continue
        if field_class is Classification.PERSONAL and name not in personal_allowed:
            projected[name] = None
            continue
        projected[name] = apply_field_rule(record.get(name), rule, hash_key)
    return projected


def _non_null_branches(avro_type: Any) -> list[Any]:
    if isinstance(avro_type, list):
        return [branch for branch in avro_type if branch != "null"]
    return [avro_type]


def _is_numeric(avro_type: Any) -> bool:
    if isinstance(avro_type, str):
        return avro_type in _NUMERIC_TYPES
    return (
        isinstance(avro_type, Mapping)
        and avro_type.get("type") in _NUMERIC_TYPES
        and "logicalType" not in avro_type
    )


def _is_timestamp_millis(avro_type: Any) -> bool:
    return (
        isinstance(avro_type, Mapping)
        and avro_type.get("type") == "long"
        and avro_type.get("logicalType") == "timestamp-millis"
    )


def field_rule_problems(event_schema: Mapping[str, Any], agreement: Agreement) -> list[str]:
    """Why the agreement's field rules cannot apply to this event schema (empty if fine).

    ``generalise`` with ``decimals`` needs a number field; with ``truncate_to`` a
    ``timestamp-millis`` field. Rules for fields the schema lacks are ignored here.
    """
    problems: list[str] = []
    event_name = event_schema.get("name", "?")
    for field in event_schema["fields"]:
        rule = agreement.fields.get(field["name"])
        if rule is None or rule.action is not FieldAction.GENERALISE:
            continue
        branches = _non_null_branches(field["type"])
        if rule.decimals is not None and not all(_is_numeric(branch) for branch in branches):
            problems.append(
                f"field {field['name']!r} of {event_name}: generalise with decimals "
                "needs a number field"
            )
        if rule.truncate_to is not None and not all(
            _is_timestamp_millis(branch) for branch in branches
        ):
            problems.append(
                f"field {field['name']!r} of {event_name}: generalise with truncate_to "
                "needs a timestamp-millis field"
            )
    return problems


def agreement_schema_problems(
    agreement: Agreement, event_schemas: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Everything wrong with ``agreement`` against the catalog's event schemas.

    ``event_schemas`` maps event type to its Avro schema (with classification
    attributes). Reports unknown event types, fields or filter fields unknown to the
    covered event types, rules that do not fit the field type, and row filters on
    personal fields (a filter on a personal value would disclose it without consent).
    """
    problems: list[str] = []
    covered = sorted(agreement.event_types)
    for event_type in covered:
        if event_type not in event_schemas:
            problems.append(f"event type {event_type!r} is not in the catalog")
    known = [event_schemas[event_type] for event_type in covered if event_type in event_schemas]
    field_sets = {
        schema["name"].rsplit(".", 1)[-1]: {field["name"]: field for field in schema["fields"]}
        for schema in known
    }
    for name in agreement.fields:
        if not any(name in fields for fields in field_sets.values()):
            problems.append(f"field {name!r} is in none of {', '.join(covered)}")
    for row_filter in agreement.row_filters:
        for event_name, fields in field_sets.items():
            field = fields.get(row_filter.field)
            if field is None:
                problems.append(
                    f"row filter field {row_filter.field!r} is not in {event_name}; "
                    f"no {event_name} event would pass"
                )
            elif field.get("classification") == Classification.PERSONAL.value:
                problems.append(
                    f"row filter on personal field {row_filter.field!r} of {event_name} "
                    "would disclose it without consent"
                )
    for schema in known:
        problems.extend(field_rule_problems(schema, agreement))
    return problems


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _collect_named_types(
    avro_type: Any, namespace: str | None, named: dict[str, Mapping[str, Any]]
) -> None:
    if isinstance(avro_type, list):
        for branch in avro_type:
            _collect_named_types(branch, namespace, named)
        return
    if not isinstance(avro_type, Mapping):
        return
    kind = avro_type.get("type")
    if kind in _NAMED_KINDS:
        full = _full_name(avro_type["name"], avro_type.get("namespace", namespace))
        named[full] = avro_type
        inner_namespace = full.rpartition(".")[0] or None
        for field in avro_type.get("fields", ()):
            _collect_named_types(field["type"], inner_namespace, named)
    elif kind == "array":
        _collect_named_types(avro_type["items"], namespace, named)
    elif kind == "map":
        _collect_named_types(avro_type["values"], namespace, named)


def _standalone_type(
    avro_type: Any,
    namespace: str | None,
    named: Mapping[str, Mapping[str, Any]],
    emitted: set[str],
) -> Any:
    """``avro_type`` rewritten to stand in another schema: named types fully qualified,
    each defined once (at first use) and referenced by full name afterwards."""
    if isinstance(avro_type, str):
        if avro_type in PRIMITIVE_TYPES:
            return avro_type
        full = _full_name(avro_type, namespace)
        if full in emitted or full not in named:
            return full
        return _standalone_type(named[full], namespace, named, emitted)
    if isinstance(avro_type, list):
        return [_standalone_type(branch, namespace, named, emitted) for branch in avro_type]
    kind = avro_type.get("type")
    if kind in _NAMED_KINDS:
        full = _full_name(avro_type["name"], avro_type.get("namespace", namespace))
        if full in emitted:
            return full
        emitted.add(full)
        inner_namespace, _, short = full.rpartition(".")
        definition = {key: copy.deepcopy(value) for key, value in avro_type.items()}
        definition["name"] = short
        if inner_namespace:
            definition["namespace"] = inner_namespace
        if kind == "record":
            definition["fields"] = [
                {
                    **copy.deepcopy(dict(field)),
                    "type": _standalone_type(field["type"], inner_namespace, named, emitted),
                }
                for field in avro_type["fields"]
            ]
        return definition
    if kind == "array":
        return {
            **avro_type,
            "items": _standalone_type(avro_type["items"], namespace, named, emitted),
        }
    if kind == "map":
        return {
            **avro_type,
            "values": _standalone_type(avro_type["values"], namespace, named, emitted),
        }
    return copy.deepcopy(dict(avro_type))


def _is_nullable(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def _zero_value(avro_type: Any, named: Mapping[str, Mapping[str, Any]]) -> Any:
    """A default for a non-null field: the type's zero value, or an enum's first symbol."""
    base = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    if isinstance(base, str) and base in named:
        return _zero_value(named[base], named)
    if base in ("int", "long"):
        return 0
    if base in ("float", "double"):
        return 0.0
    if base == "boolean":
        return False
    if base == "enum":
        return avro_type["symbols"][0]
    if base in ("string", "bytes"):
        return ""
    raise FieldRuleMismatchError(f"no default for a granted field of type {base!r}")


def projected_schema(
    event_schema: Mapping[str, Any], agreement: Agreement, subscriber_id: str
) -> dict[str, Any]:
    """The Avro schema of what ``subscriber_id`` receives of this event type.

    A record named like the event type in namespace ``nl.ecoshare.deliver`` whose fields
    are the granted fields in catalog order. Each keeps its published type, so that a
    subscriber reads ``location_id`` as a plain string and the hot path can copy the
    published bytes unchanged, except that mask and hash make text, and a personal field
    (null whenever consent is missing) or a field that was nullable is ``["null", T]``.
    Every field has a default (null for nullable fields, else the type's zero value or
    first enum symbol), so granting or revoking a field changes the schema in a
    FULL-compatible way; changing a field's type (deliver → hash of a number) does not.
    Field ``doc`` and ``classification`` are kept; transformed fields carry a
    ``transform`` attribute; the record carries ``agreement_id``, ``agreement_version``
    and ``subscriber_id``. Raises :class:`FieldRuleMismatchError` when a rule does not
    fit its field's type.
    """
    problems = field_rule_problems(event_schema, agreement)
    if problems:
        raise FieldRuleMismatchError("; ".join(problems))
    event_namespace = event_schema.get("namespace")
    event_full = _full_name(event_schema["name"], event_namespace)
    record_namespace = event_full.rpartition(".")[0] or None
    named: dict[str, Mapping[str, Any]] = {}
    for field in event_schema["fields"]:
        _collect_named_types(field["type"], record_namespace, named)
    emitted: set[str] = set()
    fields: list[dict[str, Any]] = []
    for field in event_schema["fields"]:
        rule = agreement.fields.get(field["name"])
        if rule is None or not rule.grants:
            continue
        if rule.action in _TEXT_ACTIONS:
            branches: list[Any] = ["string"]
        else:
            branches = [
                _standalone_type(branch, record_namespace, named, emitted)
                for branch in _non_null_branches(field["type"])
            ]
        nullable = (
            _is_nullable(field["type"])
            or field.get("classification") == Classification.PERSONAL.value
            or len(branches) != 1
        )
        projected: dict[str, Any] = {"name": field["name"]}
        if nullable:
            projected["type"] = ["null", *branches]
            projected["default"] = None
        else:
            projected["type"] = branches[0]
            projected["default"] = _zero_value(branches[0], named)
        if "doc" in field:
            projected["doc"] = field["doc"]
        if "classification" in field:
            projected["classification"] = field["classification"]
        if rule.action is not FieldAction.DELIVER:
            projected["transform"] = rule.model_dump(mode="json", exclude_defaults=True)
        fields.append(projected)
    event_type = event_full.rpartition(".")[2]
    return {
        "type": "record",
        "name": event_type,
        "namespace": DELIVER_NAMESPACE,
        "doc": (
            f"{event_type} as delivered to {subscriber_id} under agreement "
            f"{agreement.agreement_id} version {agreement.version}."
        ),
        "fields": fields,
        "agreement_id": agreement.agreement_id,
        "agreement_version": agreement.version,
        "subscriber_id": subscriber_id,
    }
