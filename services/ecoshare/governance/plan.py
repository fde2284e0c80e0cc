"""Delivery plans: an agreement compiled against a writer schema, once per version.

A plan turns a scanned event body (see :mod:`ecoshare.codec.layout`) into the bytes of
the subscriber's projected record without decoding it: runs of fields that pass
unchanged are copied as one slice, personal fields are copied or nulled depending on
consent, and only transformed fields (mask, hash, generalise) are decoded, changed and
re-encoded. ``tests/unit/test_engine_equivalence.py`` proves a plan's output decodes
to exactly what the reference projection (:func:`ecoshare.domain.projection.project_record`)
computes, for generated events, agreements and consents, and
``tests/unit/test_native_plan.py`` that the native renderer writes the same bytes as the
Python one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecoshare.codec.layout import RecordLayout, encode_long, encode_string
from ecoshare.domain import projection
from ecoshare.domain.agreements import Agreement, FieldAction, FieldRule, RowFilter
from ecoshare.domain.classification import Classification

Render = Callable[[bytes, Sequence[int], frozenset[str]], bytes]
RowPredicate = Callable[[bytes, Sequence[int]], bool]
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_NULL = b"\x00"
_SECOND_BRANCH = b"\x02"


def _is_optional_pair(avro_type: Any) -> bool:
    """Exactly ``["null", T]``, the one union shape a plan compiles (unlike
    the projection, which takes any union holding null, as nullable)."""
    return isinstance(avro_type, list) and len(avro_type) == 2 and avro_type[0] == "null"


def _non_null(avro_type: Any) -> Any:
    return avro_type[1] if _is_optional_pair(avro_type) else avro_type


def _base_name(avro_type: Any) -> str:
    if isinstance(avro_type, dict):
        return str(avro_type.get("type"))
    return str(avro_type)


def _encoder_for(avro_type: Any) -> Callable[[Any], bytes]:
    nullable = _is_optional_pair(avro_type)
    base = _base_name(_non_null(avro_type))
    encode: Callable[[Any], bytes]
    if base == "string":
        encode = encode_string
    elif base in ("int", "long"):
        encode = encode_long
    elif base == "double":
        encode = _DOUBLE.pack
    elif base == "float":
        encode = _FLOAT.pack
    elif base == "boolean":
        encode = lambda value: b"\x01" if value else b"\x00"  # noqa: E731
    elif base == "enum":
        symbols = list(_non_null(avro_type)["symbols"])
        encode = lambda value: encode_long(symbols.index(value))  # noqa: E731
    else:
        raise ValueError(f"cannot transform a field of type {base}")
    if not nullable:
        return encode
    return lambda value: _NULL if value is None else _SECOND_BRANCH + encode(value)


def _transform_for(rule: FieldRule, hash_key: bytes, kind: str) -> Callable[[Any], Any]:
    """The value transform of ``rule`` for a field of Avro type ``kind``; its result
    is always a valid value of that type (see :func:`projection.generalise_number`)."""
    if rule.action is FieldAction.MASK:
        keep = rule.keep_last
        return lambda value: None if value is None else projection.mask_value(value, keep)
    if rule.action is FieldAction.HASH:
        return lambda value: None if value is None else projection.hash_value(value, hash_key)
    if rule.truncate_to is not None:
        unit = rule.truncate_to
        return lambda value: None if value is None else projection.generalise_timestamp(value, unit)
    decimals = rule.decimals if rule.decimals is not None else 0
    return lambda value: (
        None if value is None else projection.generalise_number(value, decimals, kind)
    )


@dataclass(frozen=True)
class DeliveryPlan:
    """One agreement version compiled for one writer schema."""

    agreement: Agreement
    schema: dict[str, Any]
    personal_fields: tuple[str, ...]
    fields_delivered: tuple[str, ...]
    fields_dropped: tuple[str, ...]
    fields_transformed: tuple[tuple[str, str], ...]
    render: Render
    row_filter: RowPredicate | None
    render_ops: tuple[Any, ...] = ()
    """The same rendering as data, for the compiled core (``ecoshare._native.Plan``):
    ``("copy", first, stop)`` copies fields first..stop-1, ``("const", bytes)``,
    ``("branch2", field)`` puts union branch 1 before a field's bytes, ``("call",
    field, fn)`` appends ``fn(body, start, end)``, ``("round_double", field, decimals,
    fn)`` rounds a double as ``fn`` does (natively where that is exact, else by ``fn``),
    ``("personal", name, op)`` is op when ``name`` is consented and null otherwise."""


def compile_plan(
    layout: RecordLayout,
    event_schema: Mapping[str, Any],
    agreement: Agreement,
    classification: Mapping[str, Classification],
    hash_key: bytes,
) -> DeliveryPlan:
    """Compile ``agreement`` against the writer schema ``layout`` was compiled from."""
    schema = projection.projected_schema(event_schema, agreement, agreement.subscriber)
    index = layout.field_index
    writer_types = layout.field_types
    parts: list[str] = []
    scope: dict[str, Any] = {}
    run_start: int | None = None
    run_end = -1

    ops: list[tuple[Any, ...]] = []

    def close_run() -> None:
        nonlocal run_start
        if run_start is not None:
            parts.append(f"body[o[{run_start}]:o[{run_end + 1}]]")
            ops.append(("copy", run_start, run_end + 1))
            run_start = None

    personal: list[str] = []
    transformed: list[tuple[str, str]] = []
    for field in schema["fields"]:
        name = field["name"]
        rule = agreement.fields[name]
        is_personal = classification.get(name) is Classification.PERSONAL
        if is_personal:
            personal.append(name)
        position = index.get(name)
        if position is None:  # granted, but this writer version lacks the field
            close_run()
            parts.append(repr(_NULL))
            ops.append(("const", _NULL))
            continue
        writer_type = writer_types[name]
        plain = rule.action is FieldAction.DELIVER
        # The bytes of a value are the same whatever its named types are called; what
        # differs is the union index a nullable delivered field puts in front.
        same_shape = _is_optional_pair(writer_type) == _is_optional_pair(field["type"])
        if plain and not is_personal and same_shape:
            if run_start is not None and position == run_end + 1:
                run_end = position
            else:
                close_run()
                run_start = run_end = position
            continue
        close_run()
        span = f"o[{position}], o[{position + 1}]"
        op: tuple[Any, ...]
        if plain:
            expression = (
                f"body[o[{position}]:o[{position + 1}]]"
                if same_shape
                else f"b'\\x02' + body[o[{position}]:o[{position + 1}]]"
            )
            op = ("copy", position, position + 1) if same_shape else ("branch2", position)
        elif (
            rule.action is FieldAction.GENERALISE
            and rule.decimals is not None
            and writer_type == "double"
            and field["type"] == "double"
        ):
            # Rounding a double in place: unpack, round (saturating), pack.
            transformed.append((name, rule.action.value))
            scope["_unpack_double"] = _DOUBLE.unpack_from
            scope["_pack_double"] = _DOUBLE.pack
            scope["_round_double"] = projection.generalise_number
            expression = (
                f"_pack_double(_round_double(_unpack_double(body, o[{position}])[0], "
                f"{rule.decimals}, 'double'))"
            )
            op = ("round_double", position, rule.decimals, _rounded_double(rule.decimals))
        else:
            transformed.append((name, rule.action.value))
            reader = layout.readers[name]
            transform = _transform_for(rule, hash_key, _base_name(_non_null(writer_type)))
            encode = _encoder_for(field["type"])
            scope[f"_r{position}"] = reader
            scope[f"_t{position}"] = transform
            scope[f"_e{position}"] = encode
            expression = f"_e{position}(_t{position}(_r{position}(body, {span})))"
            op = ("call", position, _transformed(reader, transform, encode))
        if is_personal:
            expression = f"({expression} if {name!r} in allowed else {_NULL!r})"
            op = ("personal", name, op)
        parts.append(expression)
        ops.append(op)
    close_run()
    source = "def render(body, o, allowed):\n    return b''.join((" + ", ".join(parts) + ",))\n"
    exec(compile(source, f"<plan {agreement.agreement_id}:{agreement.version}>", "exec"), scope)  # noqa: S102 - source built above from validated field names
    delivered = tuple(field["name"] for field in schema["fields"])
    return DeliveryPlan(
        agreement=agreement,
        schema=schema,
        personal_fields=tuple(personal),
        fields_delivered=delivered,
        fields_dropped=tuple(name for name in layout.field_names if name not in delivered),
        fields_transformed=tuple(transformed),
        render=scope["render"],
        row_filter=_compile_row_filter(layout, agreement),
        render_ops=tuple(ops),
    )


def _rounded_double(decimals: int) -> Callable[[bytes, int, int], bytes]:
    def rounded(body: bytes, start: int, end: int) -> bytes:
        value = _DOUBLE.unpack_from(body, start)[0]
        return _DOUBLE.pack(projection.generalise_number(value, decimals, "double"))

    return rounded


def _transformed(
    reader: Callable[[bytes, int, int], Any],
    transform: Callable[[Any], Any],
    encode: Callable[[Any], bytes],
) -> Callable[[bytes, int, int], bytes]:
    def transformed(body: bytes, start: int, end: int) -> bytes:
        return encode(transform(reader(body, start, end)))

    return transformed


def _compile_row_filter(layout: RecordLayout, agreement: Agreement) -> RowPredicate | None:
    """A predicate over the scanned body equal to ``agreement.row_filters_pass``.

    Prefix, ``in`` and ``equals`` filters on text fields (the common regional and
    location-list filters) compile to a direct test on the decoded value; any other
    filter goes through :meth:`RowFilter.matches` on the fields it reads.
    """
    if not agreement.row_filters:
        return None
    tests: list[Callable[[bytes, Sequence[int]], bool]] = []
    for item in agreement.row_filters:
        position = layout.field_index.get(item.field)
        reader = layout.readers.get(item.field)
        if position is None or reader is None:
            return lambda body, offsets: False  # a missing field never matches
        tests.append(_field_test(item, position, reader))
    if len(tests) == 1:
        return tests[0]
    return lambda body, offsets: all(test(body, offsets) for test in tests)


def row_filter_ops(layout: RecordLayout, agreement: Agreement) -> tuple[Any, ...] | None:
    """The row filter of :func:`_compile_row_filter` as data, for the compiled core:
    ``("prefix", field, prefixes, test)`` and ``("in", field, options, test)`` on text
    fields, ``("call", test)`` for any other filter, ``("never",)`` when a filtered
    field is missing; ``test`` is that filter's Python predicate, which the native
    core uses for fields that are not plain or nullable strings."""
    if not agreement.row_filters:
        return None
    ops: list[tuple[Any, ...]] = []
    for item in agreement.row_filters:
        position = layout.field_index.get(item.field)
        reader = layout.readers.get(item.field)
        if position is None or reader is None:
            return (("never",),)
        test = _field_test(item, position, reader)
        if item.op == "prefix":
            ops.append(("prefix", position, tuple(item.prefixes), test))
        elif item.op == "in" and all(isinstance(option, str) for option in item.values):
            ops.append(("in", position, tuple(item.values), test))
        else:
            ops.append(("call", test))
    return tuple(ops)


def _field_test(
    item: RowFilter, position: int, reader: Callable[[bytes, int, int], Any]
) -> Callable[[bytes, Sequence[int]], bool]:
    after = position + 1
    if item.op == "prefix":
        prefixes = tuple(item.prefixes)

        def starts_with(body: bytes, offsets: Sequence[int]) -> bool:
            value = reader(body, offsets[position], offsets[after])
            return isinstance(value, str) and value.startswith(prefixes)

        return starts_with
    if item.op == "in" and all(isinstance(option, str) for option in item.values):
        options = frozenset(item.values)

        def one_of(body: bytes, offsets: Sequence[int]) -> bool:
            value = reader(body, offsets[position], offsets[after])
            return isinstance(value, str) and value in options

        return one_of
    name = item.field

    def general(body: bytes, offsets: Sequence[int]) -> bool:
        return item.matches({name: reader(body, offsets[position], offsets[after])})

    return general
