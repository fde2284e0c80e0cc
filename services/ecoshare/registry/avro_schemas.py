"""Parsing Avro schema text into the two forms the registry keeps.

* ``text``: the schema as submitted, re-serialised as compact JSON. Whitespace goes, but
  every attribute stays where the author put it, including custom ones such as the
  field-level ``"classification"`` our governance relies on.
* ``identity``: the schema as Avro understands it, serialised with sorted keys. Two
  submissions that differ only in whitespace, key order or the spelling of a primitive
  (``"string"`` versus ``{"type": "string"}``) share an identity, hence a schema id.
  Unlike Avro's Parsing Canonical Form it keeps docs, defaults and custom attributes,
  because those change what a schema means to its readers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
from avro.name import Names

from ecoshare.registry.errors import InvalidSchemaError

AVRO = "AVRO"


@dataclass(frozen=True, slots=True)
class ParsedSchema:
    """A valid Avro schema in its stored ``text`` and its deduplication ``identity``."""

    text: str
    identity: str
    avro: avro.schema.Schema


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; other Avro implementations would refuse the schema.
    raise ValueError(f"{name} is not valid JSON")


def _compact(document: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def parse_schema(text: str) -> ParsedSchema:
    """Parse Avro schema JSON, or raise InvalidSchemaError (42201) saying what is wrong."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from exc
    try:
        parsed = avro.schema.make_avsc_object(document, Names())
    except (avro.errors.AvroException, TypeError, ValueError, AttributeError) as exc:
        # TypeError/AttributeError: avro assumes well-formed shapes (e.g. fields being a
        # list of objects) and fails with these on JSON of the wrong shape.
        raise InvalidSchemaError(f"Invalid schema: {exc}") from exc
    return ParsedSchema(
        text=_compact(document),
        identity=_compact(parsed.to_json(), sort_keys=True),
        avro=parsed,
    )
