"""Compiled scanners over Avro record bodies.

The governance hot path never fully decodes an event. For each writer schema it
compiles, once, a Python function that walks the binary body and returns the byte
offset where every top-level field starts. With those offsets a projection can copy
the bytes of fields that pass unchanged, decode only the fields that policies read,
and re-encode only the fields it transforms. The scanner still validates the whole
body (lengths, enum indexes, union branches, UTF-8, no trailing bytes), so what it
accepts is exactly what a full Avro decoder would accept.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecoshare.codec.errors import (
    CodecError,
    InvalidValueError,
    TrailingBytesError,
    TruncatedPayloadError,
)

Schema = Any  # an Avro schema in its JSON form: str, list (union) or dict
Scanner = Callable[[bytes, int], tuple[int, ...]]
FieldReader = Callable[[bytes, int, int], Any]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_MAX_VARINT_BYTES = 10
_MAX_INT_VARINT_BYTES = 5
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def read_varint(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """Continue a ``long`` varint whose first byte ``first`` (>= 0x80) was read before
    ``pos``; return (zigzag-encoded value, next position).

    A ``long`` takes at most 10 bytes and its zigzag value fits in 64 bits (the tenth
    byte carries one bit), as a strict Avro reader requires; anything else is an
    :class:`InvalidValueError`, never a value other readers would decode differently.
    """
    return _read_bounded_varint(buf, pos, first, 64, _MAX_VARINT_BYTES, "a long")


def read_int_varint(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """As :func:`read_varint`, for an ``int``: at most 5 bytes, value within 32 bits."""
    return _read_bounded_varint(buf, pos, first, 32, _MAX_INT_VARINT_BYTES, "an int")


def _read_bounded_varint(
    buf: bytes, pos: int, first: int, bits: int, max_bytes: int, a_type: str
) -> tuple[int, int]:
    """The continuation of a varint of at most ``max_bytes`` bytes whose zigzag value
    fits in ``bits`` bits; anything longer or wider is an :class:`InvalidValueError`."""
    value = first & 0x7F
    shift = 7
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> bits:
                raise InvalidValueError(f"{a_type.split()[-1]} outside {bits} bits")
            return value, pos
        shift += 7
        if shift >= 7 * max_bytes:
            raise InvalidValueError(f"varint longer than {max_bytes} bytes for {a_type}")


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a zigzag ``long`` varint at ``pos``; return (value, next position)."""
    byte = buf[pos]
    pos += 1
    if byte >= 0x80:
        byte, pos = read_varint(buf, pos, byte)
    return (byte >> 1) ^ -(byte & 1), pos


def read_int(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a zigzag ``int`` varint at ``pos``; return (value, next position)."""
    byte = buf[pos]
    pos += 1
    if byte >= 0x80:
        byte, pos = read_int_varint(buf, pos, byte)
    return (byte >> 1) ^ -(byte & 1), pos


def encode_long(value: int) -> bytes:
    """Zigzag varint encoding of an Avro long (ValueError outside 64 bits: encoding it
    would silently write another value)."""
    if not LONG_MIN <= value <= LONG_MAX:
        raise ValueError(f"{value} is outside the range of an Avro long")
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while encoded & ~0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def encode_string(value: str) -> bytes:
    raw = value.encode()
    return encode_long(len(raw)) + raw


@dataclass
class _Names:
    """Named types seen so far while walking a schema, as Avro resolves references."""

    types: dict[str, dict[str, Any]] = field(default_factory=dict)

    def define(self, schema: dict[str, Any], namespace: str | None) -> str | None:
        name = schema["name"]
        space = schema.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        self.types[full] = schema
        self.types.setdefault(name, schema)
        return full.rsplit(".", 1)[0] if "." in full else space

    def resolve(self, ref: str, namespace: str | None) -> dict[str, Any]:
        for candidate in (f"{namespace}.{ref}" if namespace else ref, ref):
            if candidate in self.types:
                return self.types[candidate]
        raise CodecError(f"unknown named type {ref!r}")


class _ScannerSource:
    """Generates the Python source of a scanner for one record schema."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.names = _Names()
        self._counter = 0

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def emit_length(self, indent: int) -> None:
        self.emit(indent, "b = buf[pos]; pos += 1")
        self.emit(indent, "if b >= 0x80: b, pos = read_varint(buf, pos, b)")
        self.emit(indent, "n = (b >> 1) ^ -(b & 1)")
        self.emit(indent, "if n < 0: raise InvalidValueError('negative length')")

    def emit_skip(
        self, schema: Schema, indent: int, namespace: str | None, capture: str | None = None
    ) -> None:
        """Code that steps over one value; with ``capture``, also decodes it into that
        variable (strings, ints, longs and unions of null with those)."""
        if isinstance(schema, list):
            self.emit_union(schema, indent, namespace, capture)
            return
        if isinstance(schema, dict):
            kind = schema["type"]
            if kind in _PRIMITIVES or kind not in _COMPLEX:
                self.emit_skip(kind, indent, namespace, capture)
                return
        else:
            kind = schema
            if kind not in _PRIMITIVES:
                self.emit_skip(self.names.resolve(kind, namespace), indent, namespace)
                return
        if capture is not None and kind in ("int", "long"):
            varint = "read_int_varint" if kind == "int" else "read_varint"
            self.emit(indent, "b = buf[pos]; pos += 1")
            self.emit(indent, f"if b >= 0x80: b, pos = {varint}(buf, pos, b)")
            self.emit(indent, f"{capture} = (b >> 1) ^ -(b & 1)")
            return
        if capture is not None and kind == "string":
            self.emit_length(indent)
            self.emit(indent, "s = buf[pos:pos + n]; pos += n")
            self.emit(indent, "if len(s) != n: raise TruncatedPayloadError('string cut short')")
            self.emit(indent, f"{capture} = s.decode()")
            return
        if capture is not None and kind == "null":
            self.emit(indent, f"{capture} = None")
            return
        if kind == "null":
            return
        if kind == "boolean":
            self.emit(indent, "if buf[pos] > 1: raise InvalidValueError('boolean byte > 1')")
            self.emit(indent, "pos += 1")
        elif kind in ("int", "long"):
            # One-byte values are always in range; longer ones are checked for length
            # and range (an int beyond 32 bits or an over-long varint is invalid).
            varint = "read_int_varint" if kind == "int" else "read_varint"
            self.emit(indent, "b = buf[pos]; pos += 1")
            self.emit(indent, f"if b >= 0x80: b, pos = {varint}(buf, pos, b)")
        elif kind == "float":
            self.emit(indent, "pos += 4")
        elif kind == "double":
            self.emit(indent, "pos += 8")
        elif kind == "bytes":
            self.emit_length(indent)
            self.emit(indent, "pos += n")
        elif kind == "string":
            self.emit_length(indent)
            self.emit(indent, "s = buf[pos:pos + n]; pos += n")
            self.emit(indent, "if len(s) != n: raise TruncatedPayloadError('string cut short')")
            self.emit(indent, "if not s.isascii(): s.decode()")
        elif kind == "enum":
            self.names.define(schema, namespace)
            count = len(schema["symbols"])
            self.emit(indent, "b = buf[pos]; pos += 1")
            self.emit(indent, "if b >= 0x80: b, pos = read_int_varint(buf, pos, b)")
            # Zigzag: odd values are negative indexes, which no symbol has.
            self.emit(
                indent, f"if b & 1 or b >= {count * 2}: raise InvalidValueError('enum index')"
            )
        elif kind == "fixed":
            self.names.define(schema, namespace)
            if int(schema["size"]):
                self.emit(indent, f"pos += {int(schema['size'])}")
        elif kind == "record" or kind == "error":
            inner = self.names.define(schema, namespace)
            for child in schema["fields"]:
                self.emit_skip(child["type"], indent, inner)
        elif kind in ("array", "map"):
            self.emit_collection(schema, indent, namespace)
        else:
            raise CodecError(f"unsupported Avro type {kind!r}")

    def emit_union(
        self,
        branches: Sequence[Schema],
        indent: int,
        namespace: str | None,
        capture: str | None = None,
    ) -> None:
        self.emit(indent, "b = buf[pos]; pos += 1")
        self.emit(indent, "if b >= 0x80: b, pos = read_varint(buf, pos, b)")
        for index, branch in enumerate(branches):
            keyword = "if" if index == 0 else "elif"
            self.emit(indent, f"{keyword} b == {index * 2}:")
            before = len(self.lines)
            self.emit_skip(branch, indent + 1, namespace, capture)
            if len(self.lines) == before:
                self.emit(indent + 1, "pass")
        self.emit(indent, "else: raise InvalidValueError('union branch out of range')")

    def emit_collection(self, schema: dict[str, Any], indent: int, namespace: str | None) -> None:
        counter = self.fresh("c")
        self.emit(indent, "while True:")
        self.emit(indent + 1, "b = buf[pos]; pos += 1")
        self.emit(indent + 1, "if b >= 0x80: b, pos = read_varint(buf, pos, b)")
        self.emit(indent + 1, f"{counter} = (b >> 1) ^ -(b & 1)")
        self.emit(indent + 1, f"if {counter} == 0: break")
        self.emit(indent + 1, f"if {counter} < 0:")
        self.emit(indent + 2, f"{counter} = -{counter}")
        self.emit(indent + 2, "b = buf[pos]; pos += 1")
        self.emit(indent + 2, "if b >= 0x80: b, pos = read_varint(buf, pos, b)")
        self.emit(indent + 1, f"for _ in range({counter}):")
        if schema["type"] == "map":
            self.emit_skip("string", indent + 2, namespace)
            self.emit_skip(schema["values"], indent + 2, namespace)
        else:
            before = len(self.lines)
            self.emit_skip(schema["items"], indent + 2, namespace)
            width = self.fixed_width(schema["items"], namespace)
            if width is not None:
                # Items that read no byte (float, double, fixed, null, records of
                # those) are stepped over at once: a loop over a hostile count of
                # billions would never meet the end of the body.
                del self.lines[before - 1 :]
                self.emit(indent + 1, f"pos += {counter} * {width}" if width else "pass")

    def fixed_width(self, schema: Schema, namespace: str | None) -> int | None:
        """The encoded size of every value of ``schema``, if it is one constant."""
        if isinstance(schema, list):
            return None
        if isinstance(schema, str):
            if schema not in _PRIMITIVES:
                return self.fixed_width(self.names.resolve(schema, namespace), namespace)
            return {"null": 0, "float": 4, "double": 8}.get(schema)
        kind = schema["type"]
        if kind == "fixed":
            return int(schema["size"])
        if kind in ("record", "error"):
            total = 0
            for child in schema["fields"]:
                width = self.fixed_width(child["type"], namespace)
                if width is None:
                    return None
                total += width
            return total
        if kind in _PRIMITIVES or kind not in _COMPLEX:
            return self.fixed_width(kind, namespace)
        return None


_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})
_CAPTURABLE = frozenset({"string", "int", "long", "null"})


def _capturable(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return all(_capturable(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        return avro_type.get("type") in _CAPTURABLE
    return avro_type in _CAPTURABLE


def _compile_scanner(schema: dict[str, Any], captures: Sequence[str] = ()) -> Scanner:
    """The scanner; with ``captures``, it returns (offsets, values of those fields)."""
    source = _ScannerSource()
    namespace = source.names.define(schema, None)
    fields = schema["fields"]
    wanted = {name: f"v{index}" for index, name in enumerate(captures)}
    source.emit(0, "def scan(buf, pos):")
    for variable in wanted.values():
        source.emit(1, f"{variable} = None")
    source.emit(1, "end = len(buf)")
    source.emit(1, "try:")
    for index, child in enumerate(fields):
        source.emit(2, f"o{index} = pos")
        capture = wanted.get(child["name"]) if _capturable(child["type"]) else None
        source.emit_skip(child["type"], 2, namespace, capture)
    source.emit(1, "except IndexError:")
    source.emit(2, "raise TruncatedPayloadError('payload ends inside the record') from None")
    source.emit(1, "except UnicodeDecodeError as exc:")
    source.emit(2, "raise InvalidValueError(f'string is not UTF-8: {exc}') from None")
    source.emit(1, "if pos != end:")
    source.emit(2, "if pos > end: raise TruncatedPayloadError('payload ends inside the record')")
    source.emit(2, "raise TrailingBytesError(f'{end - pos} bytes after the record')")
    offsets = ", ".join(f"o{index}" for index in range(len(fields)))
    if captures:
        values = ", ".join(wanted.values())
        source.emit(1, f"return ({offsets}, pos), ({values},)")
    else:
        source.emit(1, f"return ({offsets}, pos)")
    namespace_dict: dict[str, Any] = {
        "read_varint": read_varint,
        "read_int_varint": read_int_varint,
        "InvalidValueError": InvalidValueError,
        "TruncatedPayloadError": TruncatedPayloadError,
        "TrailingBytesError": TrailingBytesError,
    }
    exec(compile("\n".join(source.lines), f"<scanner {schema['name']}>", "exec"), namespace_dict)  # noqa: S102 - source generated above from a schema, never from input
    scanner: Scanner = namespace_dict["scan"]
    return scanner


def _reader_for(schema: Schema, names: _Names, namespace: str | None) -> FieldReader:
    """A decoder of one value from its byte span, for the types policies read."""
    if isinstance(schema, dict) and schema["type"] in _PRIMITIVES:
        schema = schema["type"]
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        schema = names.resolve(schema, namespace)
    if schema == "string":

        def read_string(buf: bytes, start: int, end: int) -> Any:
            length, pos = read_long(buf, start)
            return buf[pos : pos + length].decode()

        return read_string
    if schema == "int":
        return lambda buf, start, end: read_int(buf, start)[0]
    if schema == "long":
        return lambda buf, start, end: read_long(buf, start)[0]
    if schema == "double":
        return lambda buf, start, end: _DOUBLE.unpack_from(buf, start)[0]
    if schema == "float":
        return lambda buf, start, end: _FLOAT.unpack_from(buf, start)[0]
    if schema == "boolean":
        return lambda buf, start, end: buf[start] == 1
    if schema == "null":
        return lambda buf, start, end: None
    if schema == "bytes":

        def read_bytes(buf: bytes, start: int, end: int) -> Any:
            length, pos = read_long(buf, start)
            return bytes(buf[pos : pos + length])

        return read_bytes
    if isinstance(schema, dict) and schema["type"] == "enum":
        symbols = tuple(schema["symbols"])
        return lambda buf, start, end: symbols[read_int(buf, start)[0]]
    if isinstance(schema, dict) and schema["type"] == "fixed":
        return lambda buf, start, end: bytes(buf[start:end])
    if isinstance(schema, list):
        branches = [_reader_for(branch, names, namespace) for branch in schema]

        def read_union(buf: bytes, start: int, end: int) -> Any:
            index, pos = read_long(buf, start)
            return branches[index](buf, pos, end)

        return read_union
    raise CodecError(f"no span reader for Avro type {schema!r}")


@dataclass(frozen=True)
class RecordLayout:
    """A compiled view of one writer schema: scanner, per-field readers and types."""

    name: str
    field_names: tuple[str, ...]
    field_types: Mapping[str, Schema]
    field_index: Mapping[str, int]
    scan: Scanner
    readers: Mapping[str, FieldReader]
    captured: tuple[str, ...] = ()
    scan_reading: Callable[[bytes, int], tuple[tuple[int, ...], tuple[Any, ...]]] | None = None

    def offsets(self, body: bytes, start: int = 0) -> tuple[int, ...]:
        """Start offset of every field, then the end; raises a CodecError subclass."""
        return self.scan(body, start)

    def read(self, name: str, body: bytes, offsets: Sequence[int]) -> Any:
        """Decode one field from a scanned body."""
        index = self.field_index[name]
        return self.readers[name](body, offsets[index], offsets[index + 1])

    def read_record(self, body: bytes, offsets: Sequence[int]) -> dict[str, Any]:
        """Decode every field (used off the hot path: quarantine redaction, dry runs)."""
        return {name: self.read(name, body, offsets) for name in self.field_names}


def compile_layout(schema: Mapping[str, Any], captures: Sequence[str] = ()) -> RecordLayout:
    """Compile a record schema (JSON form) into its scanner and field readers.

    Top-level fields may have any Avro type; readers exist for primitive, enum, fixed
    and union-of-those fields (what row filters, keys and transforms need). With
    ``captures`` (top-level string, int or long fields, possibly nullable), a second
    scanner ``scan_reading`` also returns those fields' values, decoded in passing: the
    fields every event needs (ids, key, timestamps) cost no second read. A captured
    field missing from the schema reads as None.
    """
    record = dict(schema)
    if record.get("type") != "record":
        raise CodecError("only record schemas can be compiled")
    scanner = _compile_scanner(record)
    scan_reading = _compile_scanner(record, captures) if captures else None
    names = _Names()
    namespace = names.define(record, None)
    readers: dict[str, FieldReader] = {}
    types: dict[str, Schema] = {}
    for child in record["fields"]:
        types[child["name"]] = child["type"]
        _define_nested(child["type"], names, namespace)
        try:
            readers[child["name"]] = _reader_for(child["type"], names, namespace)
        except CodecError:
            continue
    field_names = tuple(child["name"] for child in record["fields"])
    return RecordLayout(
        name=record["name"],
        field_names=field_names,
        field_types=types,
        field_index={name: index for index, name in enumerate(field_names)},
        scan=scanner,
        readers=readers,
        captured=tuple(captures),
        scan_reading=scan_reading,  # type: ignore[arg-type]
    )


def _define_nested(schema: Schema, names: _Names, namespace: str | None) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _define_nested(branch, names, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("enum", "fixed"):
            names.define(schema, namespace)
        elif kind == "record":
            inner = names.define(schema, namespace)
            for child in schema["fields"]:
                _define_nested(child["type"], names, inner)
        elif kind == "array":
            _define_nested(schema["items"], names, namespace)
        elif kind == "map":
            _define_nested(schema["values"], names, namespace)
