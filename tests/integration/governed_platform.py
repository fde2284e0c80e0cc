"""Helpers to run governance workers against the session's real broker and registry."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from ecoshare.adapters.kafka.admin import ensure_topics
from ecoshare.adapters.kafka.control_records import ControlRecordWriter
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.catalog.registration import register_catalog
from ecoshare.codec.audit_blocks import DecisionRecord, decode_audit_block
from ecoshare.config.settings import REPO_ROOT
from ecoshare.config.topics import EVENT_TYPES, TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.identity import (
    PUBLISHER_HEADER,
    SIGNATURE_HEADER,
    partner_signing_key,
    sign_event,
)
from ecoshare.domain.partners import Partner, Role
from ecoshare.governance.control_plane import ControlKind, control_writer
from ecoshare.governance.supervisor import WorkerProcess
from ecoshare.governance.topics import governed_topics
from ecoshare.sdk import Publisher, Subscriber

SECRET = "integration-secret"
SCHEMAS = REPO_ROOT / "schemas"
PARTITIONS = 4
STORE_STATUS = "StoreStatusChanged"


@dataclass
class GovernedPlatform:
    bootstrap_servers: str
    registry_url: str
    names: TopicNames
    state_dir: Path

    @classmethod
    def prepare(
        cls, bootstrap_servers: str, registry_url: str, state_dir: Path
    ) -> GovernedPlatform:
        names = TopicNames(f"g{uuid.uuid4().hex[:8]}.")
        ensure_topics(bootstrap_servers, governed_topics(names, EVENT_TYPES, PARTITIONS))
        register_catalog(load_catalog(SCHEMAS), registry_url, names)
        return cls(bootstrap_servers, registry_url, names, state_dir)

    def worker(self, index: int = 0) -> WorkerProcess:
        return WorkerProcess(
            bootstrap_servers=self.bootstrap_servers,
            schema_registry_url=self.registry_url,
            signing_secret=SECRET,
            state_dir=self.state_dir,
            topic_prefix=self.names.prefix,
            ingress_partitions=PARTITIONS,
            worker_id=f"worker-{index}",
            log_path=self.state_dir
            / f"worker-{self.names.prefix}{index}-{uuid.uuid4().hex[:4]}.log",
        )

    def control(self) -> ControlRecordWriter:
        return control_writer(self.bootstrap_servers, self.names)

    def publisher(
        self, partner_id: str, *, signer: str | None = None, max_event_bytes: int | None = None
    ) -> Publisher:
        options = {} if max_event_bytes is None else {"max_event_bytes": max_event_bytes}
        return Publisher(
            bootstrap_servers=self.bootstrap_servers,
            schema_registry_url=self.registry_url,
            partner_id=partner_id,
            signing_key=partner_signing_key(SECRET.encode(), signer or partner_id, 1),
            schemas_dir=SCHEMAS,
            topic_prefix=self.names.prefix,
            **options,
        )

    def subscriber(self, subscriber_id: str, event_type: str = "StoreStatusChanged") -> Subscriber:
        return Subscriber(
            bootstrap_servers=self.bootstrap_servers,
            schema_registry_url=self.registry_url,
            subscriber_id=subscriber_id,
            event_type=event_type,
            topic_prefix=self.names.prefix,
        )


def put_all(
    writer: ControlRecordWriter,
    partners: Iterable[Partner] = (),
    agreements: Iterable[Agreement] = (),
    consents: Iterable[ConsentRecord] = (),
) -> None:
    for partner in partners:
        writer.put(ControlKind.PARTNER, partner.partner_id, partner.model_dump(mode="json"))
    for agreement in agreements:
        writer.put(ControlKind.AGREEMENT, agreement.agreement_id, agreement.model_dump(mode="json"))
    for consent in consents:
        writer.put(ControlKind.CONSENT, consent.consent_id, consent.model_dump(mode="json"))


def partner(partner_id: str, *roles: Role) -> Partner:
    return Partner(partner_id=partner_id, name=partner_id.title(), roles=frozenset(roles))


def agreement(
    agreement_id: str, subscriber: str, fields: dict[str, Any], **extra: Any
) -> Agreement:
    return Agreement.model_validate(
        {
            "agreement_id": agreement_id,
            "version": 1,
            "publishers": ["*"],
            "subscriber": subscriber,
            "event_types": ["StoreStatusChanged"],
            "purpose": "parcel-delivery",
            "valid_from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "fields": fields,
            **extra,
        }
    )


def consent(consent_id: str, subject: str, grantee: str, **extra: object) -> ConsentRecord:
    """postnl's consent, given yesterday, for ``subject``'s personal fields to ``grantee``."""
    return ConsentRecord.model_validate(
        {
            "consent_id": consent_id,
            "subject": subject,
            "controller": "postnl",
            "grantee": grantee,
            "purpose": "parcel-delivery",
            "scope": ["personal"],
            "given_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            **extra,
        }
    )


def put_north_and_south(governed: GovernedPlatform) -> None:
    """postnl publishes; carrier-north gets every event's status, carrier-south the
    postal code of events in postal areas starting with 5 (the fault tests' ecosystem)."""
    with governed.control() as writer:
        put_all(
            writer,
            partners=[
                partner("postnl", Role.PUBLISHER),
                partner("carrier-north", Role.SUBSCRIBER),
                partner("carrier-south", Role.SUBSCRIBER),
            ],
            agreements=[
                agreement("north", "carrier-north", {"event_id": "deliver", "status": "deliver"}),
                agreement(
                    "south",
                    "carrier-south",
                    {"event_id": "deliver", "postal_code": "deliver"},
                    row_filters=[{"field": "postal_code", "op": "prefix", "prefixes": ["5"]}],
                ),
            ],
        )


def raw_producer(bootstrap_servers: str) -> Producer:
    """A plain producer, as a hostile or hand-written client would use: no size check,
    and the SDK's partitioner, so that a keyed record lands where the platform expects."""
    return Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "message.max.bytes": 2_000_000,
            "partitioner": "murmur2_random",
        }
    )


def signed_headers(
    value: bytes,
    key: bytes,
    *,
    signer: str = "postnl",
    publisher: str = "postnl",
    event_type: str = STORE_STATUS,
) -> list[tuple[str, bytes]]:
    """The headers a publisher sends: its id, and the signature under ``signer``'s key."""
    signing_key = partner_signing_key(SECRET.encode(), signer, 1)
    return [
        (PUBLISHER_HEADER, publisher.encode()),
        (SIGNATURE_HEADER, sign_event(signing_key, event_type, key, value)),
    ]


def wait_until(condition: Callable[[], bool], what: str, timeout_seconds: float = 60.0) -> None:
    """Poll ``condition`` every 0.1 s; fail naming ``what`` if it does not hold in time."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_seconds:.0f} s: {what}")
        time.sleep(0.1)


def read_all(subscriber: Subscriber, expected: int, timeout_seconds: float = 60.0) -> list[Any]:
    """Deliveries until ``expected`` arrived, then one more second to catch extras."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    extra_until: float | None = None
    while time.monotonic() < deadline:
        delivery = subscriber.poll(0.2)
        if delivery is not None:
            got.append(delivery)
        if len(got) >= expected:
            extra_until = extra_until or time.monotonic() + 1.0
            if time.monotonic() > extra_until:
                break
    return got


def read_until_seen(
    subscriber: Subscriber, event_ids: Iterable[str], timeout_seconds: float = 60.0
) -> list[Any]:
    """Deliveries until every one of ``event_ids`` arrived, then one more second to catch
    repeats. Every delivery read is returned, those of other events (an earlier test's,
    on a topic a module shares) too: the caller picks its own by event id."""
    missing = set(event_ids)
    got: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    extra_until: float | None = None
    while time.monotonic() < deadline:
        delivery = subscriber.poll(0.2)
        if delivery is not None:
            got.append(delivery)
            missing.discard(delivery.record["event_id"])
        if not missing:
            extra_until = extra_until or time.monotonic() + 1.0
            if time.monotonic() > extra_until:
                break
    return got


def read_topic(
    bootstrap_servers: str, topic: str, expected: int, timeout_seconds: float = 30.0
) -> Iterator[Any]:
    """Raw messages of every partition of ``topic`` (no group), until ``expected`` seen."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + timeout_seconds
    try:
        while seen < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                if message is not None and message.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(str(message.error()))
                continue
            if any(name == "ecoshare-marker" for name, _ in message.headers() or ()):
                continue  # position markers the workers write; they carry nothing
            seen += 1
            yield message
    finally:
        consumer.close()


def audit_decisions(
    platform: GovernedPlatform, timeout_seconds: float = 15.0
) -> Counter[tuple[str, str]]:
    """How many audit decisions each (event id, subscriber) has on the audit topic, read
    to its end (``timeout_seconds`` without a new block ends the read)."""
    return Counter(
        (record.event_id, record.subscriber_id)
        for message in read_topic(
            platform.bootstrap_servers, platform.names.audit, 10**9, timeout_seconds
        )
        for record in decode_audit_block(message.value())
        if isinstance(record, DecisionRecord)
    )


def read_quarantine(platform: GovernedPlatform, expected: int) -> list[Message]:
    """The first ``expected`` records of the platform's quarantine topic."""
    return list(read_topic(platform.bootstrap_servers, platform.names.quarantine, expected))


def quarantine_reason(message: Message) -> str:
    """The reason a worker gave for quarantining ``message`` (its header)."""
    reason = dict(message.headers() or ())["ecoshare-reason"]
    assert isinstance(reason, bytes), reason
    return reason.decode()


def store_status(
    number: int,
    *,
    publisher_id: str = "postnl",
    postal_code: str = "1012 AB",
    subject: str | None = "owner-1",
    published_at: datetime | None = None,
) -> dict[str, Any]:
    now = published_at or datetime.now(UTC)
    millis = int(now.timestamp() * 1000)
    return {
        "event_id": str(uuid.UUID(int=number, version=4)),
        "publisher_id": publisher_id,
        "location_id": f"sp-{number % 50:04d}",
        "location_name": f"PostNL-punt {number}",
        "status": ("OPEN", "CLOSED", "TEMPORARILY_CLOSED", "LIMITED")[number % 4],
        "reason": "lockdown",
        "opening_hours_today": "09:00-17:30",
        "effective_from": millis,
        "effective_until": None,
        "street": "Damrak",
        "house_number": str(number),
        "postal_code": postal_code,
        "city": "Amsterdam",
        "latitude": 52.3731234,
        "longitude": 4.8924567,
        "contact_subject_id": subject,
        "contact_name": "Anna de Vries" if subject else None,
        "contact_phone": "+31 6 12345678" if subject else None,
        "occurred_at": millis,
        "published_at": millis,
    }


def location_availability(
    number: int,
    *,
    publisher_id: str = "postnl",
    location_id: str | None = None,
    available: int = 3,
    subject: str | None = None,
) -> dict[str, Any]:
    """A LocationAvailability event, event id derived from ``number``, stamped now."""
    millis = int(time.time() * 1000)
    return {
        "event_id": str(uuid.UUID(int=number, version=4)),
        "publisher_id": publisher_id,
        "location_id": location_id or f"locker-{number % 40:03d}",
        "location_name": f"Pakketautomaat {number}",
        "category": None,
        "capacity_kind": "PARCEL_LOCKER_SLOTS",
        "available": available,
        "capacity": 60,
        "postal_code": "1012 AB",
        "city": "Amsterdam",
        "latitude": 52.37,
        "longitude": 4.89,
        "contact_subject_id": subject,
        "contact_name": "Anna de Vries" if subject else None,
        "contact_phone": "+31 6 12345678" if subject else None,
        "occurred_at": millis,
        "published_at": millis,
    }
