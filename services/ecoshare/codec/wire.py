"""Confluent wire format: magic byte 0, big-endian 4-byte schema id, then the Avro body."""

from __future__ import annotations

import struct

from ecoshare.codec.errors import FramingError

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header for ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def header_for(schema_id: int) -> bytes:
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def schema_id_of(message: bytes) -> int:
    """The schema id of a framed message; FramingError if the framing is wrong."""
    if len(message) < HEADER_SIZE:
        raise FramingError(f"message of {len(message)} bytes is shorter than the 5-byte header")
    if message[0] != MAGIC_BYTE:
        raise FramingError(f"magic byte is {message[0]}, expected 0")
    return int.from_bytes(message[1:5], "big")
