"""Hot-path hardening on the real broker and registry, with a real worker process.

Each test publishes as a hostile but correctly signed partner would, with a raw
confluent-kafka producer: poison values, replays to other partitions, and every kind
of refusal, then reads what subscribers and the quarantine topic received.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from ecoshare.codec.layout import compile_layout
from ecoshare.domain.partners import Role
from ecoshare.governance.partitioning import key_partition
from ecoshare.governance.supervisor import WorkerProcess
from tests.integration.governed_platform import (
    PARTITIONS,
    GovernedPlatform,
    agreement,
    location_availability,
    partner,
    put_all,
    quarantine_reason,
    raw_producer,
    read_all,
    read_quarantine,
    read_topic,
    signed_headers,
    store_status,
)
from tests.strategies import CATALOG

TYPE = "StoreStatusChanged"
FIELDS = {
    "event_id": "deliver",
    "location_id": "deliver",
    "status": "deliver",
    "effective_from": {"action": "generalise", "truncate_to": "hour"},
}


@pytest.fixture
def platform(
    bootstrap_servers: str, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> GovernedPlatform:
    governed = GovernedPlatform.prepare(
        bootstrap_servers, registry_url, tmp_path_factory.mktemp("hot")
    )
    with governed.control() as writer:
        put_all(
            writer,
            partners=[
                partner("postnl", Role.PUBLISHER),
                partner("carrier", Role.SUBSCRIBER),
            ],
            agreements=[
                agreement(
                    "hot",
                    "carrier",
                    FIELDS,
                    # read only after admission, like effective_from's transform
                    row_filters=[{"field": "postal_code", "op": "prefix", "prefixes": ["10"]}],
                )
            ],
        )
    return governed


@pytest.fixture
def worker(platform: GovernedPlatform) -> Iterator[WorkerProcess]:
    with platform.worker() as running:
        yield running


def _encoded(platform: GovernedPlatform, record: dict[str, Any]) -> tuple[bytes, bytes]:
    # A hostile client skips the SDK's size check: the encoder here takes any size.
    with platform.publisher("postnl", max_event_bytes=1 << 30) as publisher:
        _, key, value = publisher.encode(record, TYPE)
    return key, value


def _with_field(value: bytes, name: str, raw: bytes) -> bytes:
    layout = compile_layout(CATALOG.event_schema(TYPE))
    offsets = layout.offsets(value, 5)
    index = layout.field_index[name]
    return value[: offsets[index]] + raw + value[offsets[index + 1] :]


POISON = {
    "effective_from in an 11-byte varint (generalised after admission)": (
        "effective_from",
        b"\x80" * 10 + b"\x00",
    ),
    "effective_from beyond 64 bits": ("effective_from", b"\xff" * 9 + b"\x03"),
    "status enum index -1": ("status", b"\x01"),
    "status enum index 4 of 4": ("status", b"\x08"),
    "published_at in an 11-byte varint (read at admission)": (
        "published_at",
        b"\x80" * 10 + b"\x00",
    ),
    "postal_code of invalid UTF-8 (row filter field)": ("postal_code", b"\x04\xed\xa0\x80a"),
}


def test_each_poison_class_is_quarantined_and_the_events_after_it_delivered(
    platform: GovernedPlatform, worker: WorkerProcess
) -> None:
    pid = worker.pid
    producer = raw_producer(platform.bootstrap_servers)
    topic = platform.names.ingress(TYPE)
    after_each: list[str] = []
    for number, (name, raw) in enumerate(POISON.values(), start=1):
        key, value = _encoded(platform, store_status(30_000 + number * 50))
        poison = _with_field(value, name, raw)
        producer.produce(topic, key=key, value=poison, headers=signed_headers(poison, key))
        # the same location, so the same partition: it comes after the poison
        good = store_status(31_000 + number * 50)
        good_key, good_value = _encoded(platform, good)
        assert good_key == key
        producer.produce(topic, key=key, value=good_value, headers=signed_headers(good_value, key))
        after_each.append(str(good["event_id"]))
    producer.flush(10)

    delivered = {d.record["event_id"] for d in read_all(platform.subscriber("carrier"), 6, 60)}
    assert delivered == set(after_each)
    reasons = Counter(
        quarantine_reason(message) for message in read_quarantine(platform, len(POISON))
    )
    assert reasons == Counter({"invalid_value": len(POISON)})
    assert worker.alive() and worker.pid == pid  # the one process, never restarted
    assert worker.metric("ecoshare_events_quarantined_total") == len(POISON)


def test_a_delivered_event_replayed_to_every_other_partition_is_not_delivered_again(
    platform: GovernedPlatform, worker: WorkerProcess
) -> None:
    event = store_status(40_001)
    with platform.publisher("postnl") as publisher:
        publisher.publish(event, TYPE)
    subscriber = platform.subscriber("carrier")
    first = read_all(subscriber, 1, 60)
    assert [d.record["event_id"] for d in first] == [str(event["event_id"])]
    (original,) = [
        m
        for m in read_topic(platform.bootstrap_servers, platform.names.ingress(TYPE), 1)
        if m.key() == event["location_id"].encode()
    ]
    assert original.partition() == key_partition(original.key(), PARTITIONS)
    producer = raw_producer(platform.bootstrap_servers)
    for partition in range(PARTITIONS):  # every other partition, and the same one again
        producer.produce(
            original.topic(),
            key=original.key(),
            value=original.value(),
            headers=original.headers(),
            partition=partition,
        )
    later = store_status(40_051)  # same location, published after the replays
    with platform.publisher("postnl") as publisher:
        publisher.publish(later, TYPE)
    producer.flush(10)

    again = read_all(subscriber, 1, 60)
    assert [d.record["event_id"] for d in again] == [str(later["event_id"])]
    reasons = Counter(
        quarantine_reason(message) for message in read_quarantine(platform, PARTITIONS)
    )
    assert reasons == Counter({"wrong_partition": PARTITIONS - 1, "duplicate_event_id": 1})


def _decoded(registry: SchemaRegistryClient, value: bytes) -> dict[str, Any]:
    schema = json.loads(registry.get_schema(int.from_bytes(value[1:5], "big")).schema_str or "")
    parsed = fastavro.parse_schema(schema)
    return dict(fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, None))  # type: ignore[call-overload]


def test_the_quarantine_topic_holds_no_personal_field_for_any_reason(
    platform: GovernedPlatform, worker: WorkerProcess
) -> None:
    topic = platform.names.ingress(TYPE)
    producer = raw_producer(platform.bootstrap_servers)
    key, good = _encoded(platform, store_status(50_001))
    with platform.publisher("postnl") as publisher:
        _, _, availability = publisher.encode(
            location_availability(50_002, location_id="sp-0001", subject="owner-1"),
            "LocationAvailability",
        )
    oversize_key, oversize = _encoded(platform, {**store_status(50_003), "reason": "x" * 70_000})
    other_key, other = _encoded(platform, store_status(50_004))
    carrier_key, by_carrier = _encoded(platform, store_status(50_005, publisher_id="carrier"))
    home = key_partition(key, PARTITIONS)
    sends: list[tuple[bytes, bytes, list[tuple[str, bytes]], int | None]] = [
        (key, good, signed_headers(good, key), None),  # delivered
        (key, good, [], None),  # unauthenticated: no signature
        (
            key,
            good,
            signed_headers(good, key, signer="carrier"),
            None,
        ),  # unauthenticated: wrong key
        (key, good, signed_headers(good, key), None),  # duplicate
        (key, good, signed_headers(good, key), (home + 1) % PARTITIONS),  # wrong partition
        (b"sp-other", other, signed_headers(other, b"sp-other"), None),  # key is not the location
        (key, availability, signed_headers(availability, key), None),  # schema not for topic
        (oversize_key, oversize, signed_headers(oversize, oversize_key), None),  # oversize
        (  # publisher not allowed: the carrier holds no publisher role
            carrier_key,
            by_carrier,
            signed_headers(by_carrier, carrier_key, signer="carrier", publisher="carrier"),
            None,
        ),
    ]
    undecodable = [good[:-3], b"\x05" + good[1:], good[:1] + b"\x00\x0f\x42\x3f" + good[5:]]
    sends += [(key, value, signed_headers(value, key), None) for value in undecodable]
    for record_key, value, headers, partition in sends:
        options: dict[str, Any] = {"partition": partition} if partition is not None else {}
        producer.produce(topic, key=record_key, value=value, headers=headers, **options)
    producer.flush(10)

    quarantined = read_quarantine(platform, len(sends) - 1)
    reasons = Counter(quarantine_reason(message) for message in quarantined)
    assert reasons == Counter(
        {
            "unauthenticated_publisher": 2,
            "duplicate_event_id": 1,
            "wrong_partition": 1,
            "key_not_location": 1,
            "schema_not_for_topic": 1,
            "oversize_event": 1,
            "publisher_not_allowed": 1,
            "truncated_payload": 1,
            "bad_framing": 1,
            "unknown_schema_id": 1,
        }
    )
    registry = SchemaRegistryClient({"url": platform.registry_url})
    for message in quarantined:
        headers = dict(message.headers())
        if message.value() in undecodable:  # no field can be located in these
            assert headers["ecoshare-redaction"] == b"undecodable-kept-as-is"
            continue
        assert headers["ecoshare-redaction"] == b"personal-fields-nulled", quarantine_reason(
            message
        )
        record = _decoded(registry, message.value())
        assert record["contact_name"] is None and record["contact_phone"] is None
        assert b"Anna de Vries" not in message.value()
    assert other_key != b"sp-other"
    assert worker.alive()
