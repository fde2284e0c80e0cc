"""Errors of the codec layer; each carries the quarantine reason code it maps to."""

from ecoshare.errors import EcoshareError


class CodecError(EcoshareError):
    """A payload could not be read as the Avro record it claims to be."""

    reason = "undecodable_payload"


class FramingError(CodecError):
    """The Confluent wire framing (magic byte 0, 4-byte schema id) is missing or wrong."""

    reason = "bad_framing"


class TruncatedPayloadError(CodecError):
    """The Avro body ends before the record does."""

    reason = "truncated_payload"


class TrailingBytesError(CodecError):
    """Bytes remain after the record ends: the writer used another schema."""

    reason = "trailing_bytes"


class InvalidValueError(CodecError):
    """A value is out of its type's domain (enum index, union branch, UTF-8, length)."""

    reason = "invalid_value"
