"""The partner SDK and catalog registration against the real broker and registry."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.catalog.registration import register_catalog
from ecoshare.config.settings import REPO_ROOT
from ecoshare.config.topics import TopicNames
from ecoshare.sdk import EventTooLargeError, EventValidationError, Publisher
from tests.integration.governed_platform import read_topic, store_status


def test_registering_the_catalog_twice_keeps_the_ids(
    registry_url: str, topic_names: TopicNames
) -> None:
    catalog = load_catalog(REPO_ROOT / "schemas")
    first = register_catalog(catalog, registry_url, topic_names)
    again = register_catalog(catalog, registry_url, topic_names)
    assert [(r.subject, r.schema_id) for r in first] == [(r.subject, r.schema_id) for r in again]
    client = SchemaRegistryClient({"url": registry_url})
    registered = client.get_latest_version(f"{topic_names.ingress('StoreStatusChanged')}-value")
    assert '"classification"' in (registered.schema.schema_str or "")


def _postnl_publisher(
    bootstrap_servers: str, registry_url: str, topic_names: TopicNames, **options: Any
) -> Publisher:
    return Publisher(
        bootstrap_servers=bootstrap_servers,
        schema_registry_url=registry_url,
        partner_id="postnl",
        signing_key=b"k" * 32,
        schemas_dir=REPO_ROOT / "schemas",
        topic_prefix=topic_names.prefix,
        **options,
    )


def test_an_invalid_event_names_its_field_and_sends_nothing(
    bootstrap_servers: str, registry_url: str, topic_names: TopicNames
) -> None:
    topic = topic_names.ingress("StoreStatusChanged")
    ensure_topics(bootstrap_servers, [TopicSpec(topic, 2)])
    publisher = _postnl_publisher(bootstrap_servers, registry_url, topic_names)
    bad = store_status(1) | {"status": "HALF_OPEN"}
    with pytest.raises(EventValidationError) as raised:
        publisher.publish(bad, "StoreStatusChanged")
    assert raised.value.field == "status"
    missing = {k: v for k, v in store_status(2).items() if k != "postal_code"}
    with pytest.raises(EventValidationError) as raised:
        publisher.publish(missing, "StoreStatusChanged")
    assert raised.value.field == "postal_code"
    publisher.publish(store_status(3), "StoreStatusChanged")
    publisher.flush()
    (only,) = list(read_topic(bootstrap_servers, topic, 1, 15))
    assert only.key() == store_status(3)["location_id"].encode()
    assert dict(only.headers())["ecoshare-publisher"] == b"postnl"
    assert str(uuid.UUID(int=3, version=4)).encode() in only.value()


def test_the_sdk_refuses_catalog_format_violations_and_oversize_events(
    bootstrap_servers: str, registry_url: str, topic_names: TopicNames
) -> None:
    topic = topic_names.ingress("StoreStatusChanged")
    ensure_topics(bootstrap_servers, [TopicSpec(topic, 1)])
    publisher = _postnl_publisher(
        bootstrap_servers, registry_url, topic_names, max_event_bytes=4096
    )
    with pytest.raises(EventValidationError) as raised:
        publisher.publish(store_status(1, postal_code="hello"), "StoreStatusChanged")
    assert raised.value.field == "postal_code"
    assert "is not a Dutch postcode" in raised.value.message
    with pytest.raises(EventTooLargeError) as too_large:
        publisher.publish(store_status(2) | {"reason": "x" * 5000}, "StoreStatusChanged")
    assert too_large.value.limit == 4096 and too_large.value.size > 4096
    # A postcode without its space is written the catalog's way.
    publisher.publish(store_status(3, postal_code="1012AB"), "StoreStatusChanged")
    publisher.flush()
    (only,) = list(read_topic(bootstrap_servers, topic, 1, 15))
    assert b"1012 AB" in only.value()
    assert str(uuid.UUID(int=3, version=4)).encode() in only.value()
    publisher.close()
