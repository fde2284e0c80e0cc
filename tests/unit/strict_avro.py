"""An independent strict Avro binary reader: the oracle the compiled scanner is held to.

Written the plain way, straight from the Avro specification, with no concern for
speed: ``int`` (and enum indexes) at most 5 bytes and within 32 bits; ``long`` (and
lengths, block counts and union indexes, which the avro and fastavro readers read as a
``long``) at most 10 bytes and within 64 bits; booleans 0 or 1; indexes in range;
lengths not negative; strings UTF-8; nothing after the record. The test that uses it
also checks it against the ``avro`` package, so the oracle is itself held to a third
implementation.
"""

from __future__ import annotations

import struct
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class RefusalError(Exception):
    """The body is not a valid value; ``kind`` is truncated, invalid or trailing."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class StrictReader:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.named: dict[str, Any] = {}

    def read_record(self, body: bytes) -> dict[str, Any]:
        self.body = body
        self.pos = 0
        value = self.read(self.schema, None)
        if self.pos != len(body):
            raise RefusalError("trailing", f"{len(body) - self.pos} bytes after the record")
        return value  # type: ignore[no-any-return]

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.body):
            raise RefusalError("truncated", "body ends inside a value")
        chunk = self.body[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def varint(self, max_bytes: int) -> int:
        raw = 0
        for index in range(max_bytes):
            byte = self.take(1)[0]
            raw |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                return raw
        raise RefusalError("invalid", f"varint longer than {max_bytes} bytes")

    def long(self) -> int:
        raw = self.varint(10)
        if raw >= 1 << 64:
            raise RefusalError("invalid", "long beyond 64 bits")
        return (raw >> 1) ^ -(raw & 1)

    def int(self) -> int:
        raw = self.varint(5)
        if raw >= 1 << 32:
            raise RefusalError("invalid", "int beyond 32 bits")
        return (raw >> 1) ^ -(raw & 1)

    def length(self) -> int:
        value = self.long()
        if value < 0:
            raise RefusalError("invalid", "negative length")
        return value

    def string(self) -> str:
        raw = self.take(self.length())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RefusalError("invalid", str(exc)) from None

    def full_name(self, schema: dict[str, Any], namespace: str | None) -> tuple[str, str | None]:
        name = schema["name"]
        space = schema.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        self.named[full] = schema
        self.named.setdefault(name, schema)
        return full, (full.rsplit(".", 1)[0] if "." in full else space)

    def read(self, schema: Any, namespace: str | None) -> Any:
        if isinstance(schema, list):
            index = self.long()  # as avro, fastavro and the hot-path scanners read it
            if not 0 <= index < len(schema):
                raise RefusalError("invalid", f"union branch {index}")
            return self.read(schema[index], namespace)
        if isinstance(schema, str) and schema not in PRIMITIVES:
            found = self.named.get(f"{namespace}.{schema}") if namespace else None
            return self.read(found or self.named[schema], namespace)
        kind = schema if isinstance(schema, str) else schema["type"]
        if isinstance(kind, (dict, list)):
            return self.read(kind, namespace)
        if kind == "null":
            return None
        if kind == "boolean":
            byte = self.take(1)[0]
            if byte > 1:
                raise RefusalError("invalid", "boolean byte > 1")
            return byte == 1
        if kind == "int":
            return self.int()
        if kind == "long":
            return self.long()
        if kind == "float":
            return struct.unpack("<f", self.take(4))[0]
        if kind == "double":
            return struct.unpack("<d", self.take(8))[0]
        if kind == "bytes":
            return self.take(self.length())
        if kind == "string":
            return self.string()
        if kind == "enum":
            self.full_name(schema, namespace)
            index = self.int()
            if not 0 <= index < len(schema["symbols"]):
                raise RefusalError("invalid", f"enum index {index}")
            return schema["symbols"][index]
        if kind == "fixed":
            self.full_name(schema, namespace)
            return self.take(schema["size"])
        if kind in ("record", "error"):
            _, inner = self.full_name(schema, namespace)
            return {field["name"]: self.read(field["type"], inner) for field in schema["fields"]}
        if kind in ("array", "map"):
            items: list[Any] = []
            while True:
                count = self.long()
                if count == 0:
                    break
                if count < 0:
                    count = -count
                    self.long()
                zero_width = kind == "array" and _zero_width(schema["items"])
                for _ in range(1 if zero_width else count):
                    key = self.string() if kind == "map" else None
                    value = self.read(schema["values" if kind == "map" else "items"], namespace)
                    items.append((key, value) if kind == "map" else value)
            return dict(items) if kind == "map" else items
        raise ValueError(f"unknown type {kind}")


def _zero_width(schema: Any) -> bool:
    """Items that take no bytes (null): counting them one by one could take forever."""
    return schema == "null" or (isinstance(schema, dict) and schema.get("type") == "null")
