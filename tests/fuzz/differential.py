"""Differential fuzzer: a scanner against strict Avro readers built on fastavro and avro.

The contract every scanner of the hot path must meet (the Python one in
:mod:`ecoshare.codec.layout`, and any compiled port of it): it accepts an Avro body
exactly when a strict Avro reader would. "Strict" is what the Avro specification
allows and nothing more:

- an ``int`` is a zigzag varint of at most 5 bytes whose value fits in 32 bits, a
  ``long`` (also lengths, block counts and union indexes) at most 10 bytes within
  64 bits; non-minimal encodings within those lengths are valid;
- an enum index and a union branch lie within the symbols and branches (a negative
  index is refused, not read from the end of the list);
- a boolean is the byte 0 or 1, a string is valid UTF-8, lengths are not negative,
  ``fixed``, ``float`` and ``double`` have their sizes, and no byte follows the record.

Both oracles decode with the library's own reader; the avro oracle adds the checks
that library leaves out (int range and length, boolean bytes), the fastavro oracle
validates the decoded datum against the schema (ranges, symbols). A body is accepted
when every oracle accepts it. Logical types are removed before decoding: the bytes
of a ``timestamp-millis`` are a ``long``, whatever date they name.

Use :func:`hunt_differences` with any ``scan(schema, body) -> bool`` (True = accepted).
``python -m tests.fuzz.differential --seconds 600`` (``make fuzz``) runs it longer.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import random
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import avro.errors
import avro.io
import avro.schema
import fastavro
from fastavro.validation import validate

from ecoshare.codec.errors import CodecError
from ecoshare.codec.layout import compile_layout
from ecoshare.governance.cores import select_core

Schema = Any
Scan = Callable[[dict[str, Any], bytes], bool]
REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
CATALOG_SCHEMAS = tuple(
    json.loads(path.read_text())
    for path in sorted((REPO_ROOT / "schemas" / "events").glob("*.avsc"))
)

# -- oracles -------------------------------------------------------------------------


class _StrictDecoder(avro.io.BinaryDecoder):
    """avro's decoder with the checks it leaves to the application."""

    def read_boolean(self) -> bool:
        byte = self.read(1)[0]
        if byte > 1:
            raise avro.errors.InvalidAvroBinaryEncoding(f"boolean byte {byte}")
        return byte == 1

    def read_int(self) -> int:
        start = self.reader.tell()
        value = self.read_long()
        if self.reader.tell() - start > 5:
            raise avro.errors.InvalidAvroBinaryEncoding("int varint longer than 5 bytes")
        if not -(2**31) <= value < 2**31:
            raise avro.errors.InvalidAvroBinaryEncoding(f"int {value} outside 32 bits")
        return value


def _without_logical_types(schema: Schema) -> Schema:
    if isinstance(schema, list):
        return [_without_logical_types(branch) for branch in schema]
    if isinstance(schema, dict):
        stripped = {k: v for k, v in schema.items() if k != "logicalType"}
        if "fields" in stripped:
            stripped["fields"] = [
                {**child, "type": _without_logical_types(child["type"])}
                for child in stripped["fields"]
            ]
        for key in ("items", "values"):
            if key in stripped:
                stripped[key] = _without_logical_types(stripped[key])
        if stripped.get("type") in ("int", "long", "string", "bytes") and len(stripped) == 1:
            return stripped["type"]
        return stripped
    return schema


@dataclass
class _Oracles:
    """Parsed forms of one schema for both oracle libraries (parsing is the slow part)."""

    avro_reader: avro.io.DatumReader
    fastavro_schema: Any

    @classmethod
    def of(cls, schema: dict[str, Any]) -> _Oracles:
        plain = _without_logical_types(schema)
        parsed = avro.schema.parse(json.dumps(plain))
        return cls(avro.io.DatumReader(parsed), fastavro.parse_schema(plain, _write_hint=False))

    def avro_accepts(self, body: bytes) -> bool:
        stream = io.BytesIO(body)
        try:
            self.avro_reader.read(_StrictDecoder(stream))
        except Exception:
            return False
        return stream.tell() == len(body)

    def fastavro_accepts(self, body: bytes) -> bool:
        stream = io.BytesIO(body)
        try:
            datum = fastavro.schemaless_reader(stream, self.fastavro_schema, None)  # type: ignore[call-overload]
            valid = validate(datum, self.fastavro_schema, raise_errors=False, strict=True)
        except Exception:
            return False
        return bool(valid) and stream.tell() == len(body)


_ORACLES: dict[str, _Oracles] = {}


def _oracles_for(schema: dict[str, Any]) -> _Oracles:
    key = json.dumps(schema, sort_keys=True)
    found = _ORACLES.get(key)
    if found is None:
        found = _ORACLES[key] = _Oracles.of(schema)
    return found


@dataclass(frozen=True)
class OracleVerdict:
    accepted: bool
    avro: bool
    fastavro: bool


def oracle_verdict(schema: dict[str, Any], body: bytes) -> OracleVerdict:
    """What a strict reader says of ``body``: accepted only if every oracle accepts."""
    oracles = _oracles_for(schema)
    by_avro = oracles.avro_accepts(body)
    by_fastavro = oracles.fastavro_accepts(body)
    return OracleVerdict(by_avro and by_fastavro, by_avro, by_fastavro)


_LAYOUTS: dict[str, Any] = {}
_NATIVE_LAYOUTS: dict[str, Any] = {}


def native_scan(schema: dict[str, Any], body: bytes) -> bool:
    """The compiled scanner (``ecoshare._native``) as a ``Scan``; it must be built."""
    key = json.dumps(schema, sort_keys=True)
    layout = _NATIVE_LAYOUTS.get(key)
    if layout is None:
        native = select_core("native")
        assert native is not None
        layout = _NATIVE_LAYOUTS[key] = native.Layout(schema)
    try:
        layout.scan(body, 0)
    except CodecError:
        return False
    return True


def python_scan(schema: dict[str, Any], body: bytes) -> bool:
    """The reference scanner as a ``Scan``: True when the compiled scanner accepts."""
    key = json.dumps(schema, sort_keys=True)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _LAYOUTS[key] = compile_layout(schema)
    try:
        layout.offsets(body)
    except CodecError:
        return False
    return True


# -- generation ----------------------------------------------------------------------

_INT_EDGES = (0, 1, -1, 63, -64, 64, -65, 2**31 - 1, -(2**31), 2**15, -(2**20))
_LONG_EDGES = (*_INT_EDGES, 2**63 - 1, -(2**63), 2**32, -(2**32) - 1, 2**53 + 1)
_TEXT = ("", "a", "Amsterdam", "é", "€uro", "😀", "\u0000", "1012 AB", "x" * 130)


class _SchemaMaker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.named: list[str] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def record(self, depth: int) -> dict[str, Any]:
        name = self.name("R")
        fields = [
            {"name": f"f{index}", "type": self.any(depth + 1)}
            for index in range(self.rng.randint(1 if depth == 0 else 0, 7 if depth == 0 else 3))
        ]
        self.named.append(name)
        return {"type": "record", "name": name, "fields": fields}

    def any(self, depth: int, in_union: bool = False) -> Schema:
        rng = self.rng
        roll = rng.random()
        if depth > 3 or roll < 0.45:
            return rng.choice(
                ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
            )
        if roll < 0.52:
            name = self.name("E")
            self.named.append(name)
            symbols = [f"S{index}" for index in range(rng.randint(1, 5))]
            return {"type": "enum", "name": name, "symbols": symbols}
        if roll < 0.57:
            name = self.name("F")
            self.named.append(name)
            return {"type": "fixed", "name": name, "size": rng.randint(1, 6)}
        if roll < 0.62 and self.named:
            return rng.choice(self.named)
        if roll < 0.72:
            return {"type": "array", "items": self.sized(depth + 1)}
        if roll < 0.8:
            return {"type": "map", "values": self.any(depth + 1)}
        if roll < 0.9 and not in_union:
            return self.union(depth + 1)
        if roll < 0.95:
            return rng.choice(
                (
                    {"type": "long", "logicalType": "timestamp-millis"},
                    {"type": "int", "logicalType": "date"},
                )
            )
        return self.record(depth + 1)

    def sized(self, depth: int) -> Schema:
        """A type whose values take at least one byte (array items)."""
        while True:
            candidate = self.any(depth)
            if candidate != "null" and not (
                isinstance(candidate, dict) and candidate.get("type") == "record"
            ):
                if isinstance(candidate, str) and candidate.startswith("R"):
                    continue
                return candidate

    def union(self, depth: int) -> list[Any]:
        branches: list[Any] = []
        kinds: set[str] = set()
        for _ in range(self.rng.randint(1, 4)):
            branch = self.any(depth, in_union=True)
            kind = branch if isinstance(branch, str) else branch.get("type")
            if isinstance(branch, dict) and "name" in branch:
                kind = branch["name"]
            if isinstance(branch, dict) and "logicalType" in branch:
                kind = branch["type"]
            if kind in kinds:
                continue
            kinds.add(kind)
            branches.append(branch)
        if self.rng.random() < 0.6 and "null" not in kinds:
            branches.insert(0, "null")
        return branches


def random_schema(rng: random.Random) -> dict[str, Any]:
    """A random record schema using every Avro type, nested, with named references."""
    while True:
        schema = _SchemaMaker(rng).record(0)
        try:  # a union may have dropped the definition a later reference names
            avro.schema.parse(json.dumps(_without_logical_types(schema)))
        except avro.errors.AvroException:
            continue
        return schema


class _Named:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema)

    def _collect(self, schema: Schema) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch)
        elif isinstance(schema, dict):
            if "name" in schema and schema.get("type") in ("record", "enum", "fixed"):
                self.types[schema["name"].rsplit(".", 1)[-1]] = schema
                if "namespace" in schema:
                    self.types[f"{schema['namespace']}.{schema['name']}"] = schema
            for child in schema.get("fields", ()):
                self._collect(child["type"])
            for key in ("items", "values"):
                if key in schema:
                    self._collect(schema[key])

    def resolve(self, schema: Schema) -> Schema:
        if isinstance(schema, str) and schema in self.types:
            return self.types[schema]
        if isinstance(schema, str):
            for name, found in self.types.items():
                if name.rsplit(".", 1)[-1] == schema:
                    return found
        return schema


def _kind(schema: Schema) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


class _Encoder:
    """An Avro encoder that can put one deviation at the ``target``-th value it writes.

    With no target it writes what fastavro would, except that it may choose valid but
    unusual encodings (padded varints, sized or split collection blocks), which a
    strict reader must accept too.
    """

    def __init__(self, rng: random.Random, named: _Named, target: int | None) -> None:
        self.rng = rng
        self.named = named
        self.target = target
        self.position = 0
        self.out = bytearray()

    def deviate(self) -> bool:
        self.position += 1
        return self.position == self.target

    def varint(self, value: int, *, pad: int = 0) -> None:
        zigzag = (value << 1) ^ (value >> 127)
        while True:
            byte = zigzag & 0x7F
            zigzag >>= 7
            if zigzag or pad > 0:
                self.out.append(byte | 0x80)
                if not zigzag:
                    pad -= 1
                    if pad == 0:
                        self.out.append(0)
                        return
            else:
                self.out.append(byte)
                return

    def number(self, value: int, limit_bytes: int) -> None:
        """A valid varint, sometimes padded up to ``limit_bytes`` bytes."""
        length = len(_varint_bytes(value))
        if length < limit_bytes and self.rng.random() < 0.05:
            self.varint(value, pad=self.rng.randint(1, limit_bytes - length))
        else:
            self.varint(value)

    def bad_number(self, value: int, bits: int, limit_bytes: int) -> None:
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:  # padded past the limit
            length = len(_varint_bytes(value))
            self.varint(value, pad=max(1, limit_bytes - length + rng.randint(0, 3)))
        elif choice == 1:  # just outside the range
            edge = 2 ** (bits - 1)
            self.varint(rng.choice((edge, -edge - 1, edge + rng.randint(0, 2**bits))))
        elif choice == 2:  # the last byte of a maximal varint carries too many bits
            self.out += b"\xff" * (limit_bytes - 1) + bytes([rng.randint(1, 0x7F)])
        else:  # padded exactly to the limit: valid
            length = len(_varint_bytes(value))
            if length < limit_bytes:
                self.varint(value, pad=limit_bytes - length)
            else:
                self.varint(value)

    def write(self, schema: Schema, datum: Any) -> None:
        schema = self.named.resolve(schema)
        kind = _kind(schema)
        rng = self.rng
        deviate = self.deviate()
        if kind == "null":
            if deviate:
                self.out.append(rng.randrange(256))
        elif kind == "boolean":
            self.out.append(rng.randint(2, 255) if deviate else int(datum))
        elif kind in ("int", "long"):
            bits, limit = (32, 5) if kind == "int" else (64, 10)
            if deviate:
                self.bad_number(datum, bits, limit)
            else:
                self.number(datum, limit)
        elif kind == "float":
            self.out += struct.pack("<f", datum)[: 3 if deviate else 4]
        elif kind == "double":
            self.out += struct.pack("<d", datum)[: 7 if deviate else 8]
        elif kind in ("bytes", "string"):
            raw = datum.encode() if kind == "string" else datum
            if deviate:
                choice = rng.randrange(4)
                if choice == 0 and kind == "string":
                    raw = raw + rng.choice((b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"))
                    self.number(len(raw), 10)
                elif choice == 1:
                    self.varint(len(raw) + rng.choice((-1, 1, 2**40)))
                elif choice == 2:
                    self.varint(-rng.randint(1, 5))
                else:
                    self.bad_number(len(raw), 64, 10)
            else:
                self.number(len(raw), 10)
            self.out += raw
        elif kind == "fixed":
            raw = bytes(datum)
            self.out += raw[:-1] if deviate else raw
        elif kind == "enum":
            symbols = schema["symbols"]
            index = symbols.index(datum)
            if deviate:
                choice = rng.randrange(3)
                if choice == 0:
                    self.varint(-rng.randint(1, len(symbols) + 2))
                elif choice == 1:
                    self.varint(len(symbols) + rng.randint(0, 3))
                else:
                    self.bad_number(index, 32, 5)
            else:
                self.number(index, 5)
        elif kind == "union":
            index, value = datum
            if deviate:
                choice = rng.randrange(3)
                if choice == 0:
                    self.varint(-rng.randint(1, 3))
                    return
                if choice == 1:
                    self.varint(len(schema) + rng.randint(0, 2))
                    return
                self.bad_number(index, 64, 10)
            else:
                self.number(index, 10)
            self.write(schema[index], value)
        elif kind == "record":
            for child, value in zip(schema["fields"], datum, strict=True):
                self.write(child["type"], value)
        elif kind in ("array", "map"):
            self.collection(schema, datum, deviate)
        else:  # pragma: no cover - the generator makes no other kinds
            raise AssertionError(kind)

    def collection(self, schema: dict[str, Any], items: list[Any], deviate: bool) -> None:
        rng = self.rng
        is_map = schema["type"] == "map"
        inner = schema["values"] if is_map else schema["items"]

        def write_items(chunk: list[Any]) -> None:
            for item in chunk:
                if is_map:
                    key, value = item
                    self.write("string", key)
                    self.write(inner, value)
                else:
                    self.write(inner, item)

        if deviate and items:
            choice = rng.randrange(3)
            if choice == 0:  # a count that does not match the items
                self.varint(len(items) + rng.choice((-1, 1)))
                write_items(items)
                self.out.append(0)
                return
            if choice == 1:  # a negative count whose size is a bad varint
                self.varint(-len(items))
                self.bad_number(0, 64, 10)
                write_items(items)
                self.out.append(0)
                return
        split = rng.randint(0, len(items))
        for chunk in (items[:split], items[split:]):
            if not chunk:
                continue
            if rng.random() < 0.3:  # a sized block (negative count, then byte size)
                mark = len(self.out)
                write_items(chunk)
                block = bytes(self.out[mark:])
                del self.out[mark:]
                self.varint(-len(chunk))
                self.varint(len(block))
                self.out += block
            else:
                self.varint(len(chunk))
                write_items(chunk)
        if deviate and not items:
            self.varint(rng.randint(1, 3))
        self.out.append(0)


def _varint_bytes(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 127)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def random_datum(schema: Schema, named: _Named, rng: random.Random, depth: int = 0) -> Any:
    """A valid value of ``schema`` in the encoder's form (unions as (branch, value),
    records as lists, maps as item lists)."""
    schema = named.resolve(schema)
    kind = _kind(schema)
    if kind == "null":
        return None
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice(_INT_EDGES) if rng.random() < 0.3 else rng.randint(-(2**31), 2**31 - 1)
    if kind == "long":
        return rng.choice(_LONG_EDGES) if rng.random() < 0.3 else rng.randint(-(2**63), 2**63 - 1)
    if kind == "float":
        return rng.choice((0.0, -1.5, 3.25, float("inf")))
    if kind == "double":
        return rng.choice((0.0, 52.3731, -4.89, float("nan"), 1e308))
    if kind == "string":
        return rng.choice(_TEXT)
    if kind == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 6)))
    if kind == "fixed":
        return bytes(rng.randrange(256) for _ in range(schema["size"]))
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "union":
        index = rng.randrange(len(schema))
        return (index, random_datum(schema[index], named, rng, depth + 1))
    if kind == "record":
        return [random_datum(child["type"], named, rng, depth + 1) for child in schema["fields"]]
    count = rng.randint(0, 3 if depth < 3 else 0)
    if kind == "map":
        return [
            (rng.choice(_TEXT), random_datum(schema["values"], named, rng, depth + 1))
            for _ in range(count)
        ]
    return [random_datum(schema["items"], named, rng, depth + 1) for _ in range(count)]


def _raw_mutation(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(7)
        where = rng.randint(0, len(data))
        if choice == 0 and data:
            data[where % len(data)] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:
            data[where % len(data)] = rng.choice((0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, 0xC0))
        elif choice == 2:
            data.insert(where, rng.choice((0x00, 0x80, 0xFF, 0x01)))
        elif choice == 3 and data:
            del data[where % len(data)]
        elif choice == 4:
            del data[where:]
        elif choice == 5:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        elif data:
            start = rng.randrange(len(data))
            data[start:start] = data[start : start + rng.randint(1, 4)]
    return bytes(data)


def generated_bodies(
    rng: random.Random, bodies_per_schema: int = 150
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Endless (schema, body): valid events, structurally mutated and byte-mutated ones,
    over the event catalog's schemas and random ones."""
    while True:
        if rng.random() < 0.3:
            schema = copy.deepcopy(rng.choice(CATALOG_SCHEMAS))
        else:
            schema = random_schema(rng)
        named = _Named(schema)
        for _ in range(bodies_per_schema):
            datum = random_datum(schema, named, rng)
            roll = rng.random()
            target = None
            if roll < 0.55:
                probe = _Encoder(rng, named, None)
                probe.write(schema, datum)
                target = rng.randint(1, max(1, probe.position))
            encoder = _Encoder(rng, named, target)
            encoder.write(schema, datum)
            body = bytes(encoder.out)
            if roll >= 0.7:
                body = _raw_mutation(body, rng)
            yield schema, body


# -- the hunt ------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """A body the scanner judges otherwise than the strict reader."""

    schema: dict[str, Any]
    body: bytes
    oracle: OracleVerdict
    scanner: bool | str  # the verdict, or the exception the scanner raised

    def as_corpus_case(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "schema": self.schema,
            "body_hex": self.body.hex(),
            "accepted": self.oracle.accepted,
        }


@dataclass
class FuzzReport:
    tried: int = 0
    accepted: int = 0
    seconds: float = 0.0
    differences: list[Difference] = field(default_factory=list)
    avro_only_refusals: int = 0  # the avro oracle refused what fastavro accepted
    fastavro_only_refusals: int = 0

    def summary(self) -> str:
        return (
            f"{self.tried} bodies tried in {self.seconds:.0f} s ({self.accepted} valid), "
            f"{len(self.differences)} differences; fastavro alone accepted "
            f"{self.avro_only_refusals} bodies a strict reader refuses, avro alone "
            f"{self.fastavro_only_refusals}"
        )


def hunt_differences(
    scan: Scan,
    *,
    seconds: float,
    seed: int = 0,
    max_differences: int = 20,
) -> FuzzReport:
    """Feed generated bodies to ``scan`` and to the oracles for ``seconds``.

    ``scan(schema, body)`` returns True when it accepts ``body`` as a record of
    ``schema`` (the JSON form) and False when it refuses it; an exception counts as a
    difference. Stops early after ``max_differences`` differences.
    """
    rng = random.Random(seed)
    report = FuzzReport()
    started = time.monotonic()
    deadline = started + seconds
    bodies = generated_bodies(rng)
    while time.monotonic() < deadline and len(report.differences) < max_differences:
        for _ in range(50):
            schema, body = next(bodies)
            verdict = oracle_verdict(schema, body)
            report.tried += 1
            report.accepted += verdict.accepted
            if verdict.avro != verdict.fastavro:
                if verdict.fastavro:
                    report.avro_only_refusals += 1
                else:
                    report.fastavro_only_refusals += 1
            scanned: bool | str
            try:
                scanned = scan(schema, body)
            except Exception as exc:
                scanned = f"{type(exc).__name__}: {exc}"
            if scanned is not verdict.accepted:
                report.differences.append(Difference(schema, body, verdict, scanned))
    report.seconds = time.monotonic() - started
    return report


def corpus_cases() -> list[dict[str, Any]]:
    """The regression corpus: bodies that once told a scanner and the oracles apart."""
    return [json.loads(path.read_text()) for path in sorted(CORPUS_DIR.glob("*.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--save", type=Path, help="write differences as corpus cases here")
    parser.add_argument(
        "--core", choices=("python", "native"), default="python", help="the scanner to fuzz"
    )
    options = parser.parse_args()
    scan = native_scan if options.core == "native" else python_scan
    report = hunt_differences(scan, seconds=options.seconds, seed=options.seed)
    print(f"seed {options.seed}: {report.summary()}")
    for number, difference in enumerate(report.differences):
        print(
            f"  oracle {'accepts' if difference.oracle.accepted else 'refuses'}, scanner "
            f"{difference.scanner}: {difference.body.hex()} for {json.dumps(difference.schema)}"
        )
        if options.save:
            options.save.mkdir(parents=True, exist_ok=True)
            path = options.save / f"found-{options.seed}-{number}.json"
            path.write_text(json.dumps(difference.as_corpus_case(path.stem), indent=1) + "\n")
    raise SystemExit(1 if report.differences else 0)


if __name__ == "__main__":
    main()
