"""The AsyncAPI 3.0 document of the ecosystem: what flows where, in which shape.

Generated from the event catalog and the data-sharing agreements, never written by
hand:

- per event type, its **ingress channel** (``ingress.<EventType>``) and a ``send``
  operation: what publishers produce, with the catalog's Avro schema (custom
  attributes ``classification`` and ``format`` kept) and an example;
- per agreement, the subscriber's **delivery channel**
  (``deliver.<subscriber>.<EventType>``) and a ``receive`` operation, with the
  projected Avro schema that subscriber receives under that agreement version.

Payloads are Avro (``schemaFormat`` ``application/vnd.apache.avro;version=1.9.0``) in
the Confluent wire format: the Kafka message binding says the schema id travels in
the payload. A partner's view keeps the ingress channels it may publish to and its own
delivery channels only. Pure: no I/O; the caller passes the catalog and agreements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ecoshare.catalog.event_catalog import Catalog
from ecoshare.config.topics import TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.errors import FieldRuleMismatchError
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.projection import projected_schema

ASYNCAPI_VERSION = "3.0.0"
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"
KAFKA_BINDING_VERSION = "0.5.0"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")

_INGRESS_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["ecoshare-publisher", "ecoshare-signature"],
    "properties": {
        "ecoshare-publisher": {"type": "string", "description": "The publishing partner's id."},
        "ecoshare-signature": {
            "type": "string",
            "description": "Keyed BLAKE2b-256 MAC of the event type and the value bytes, "
            "under the partner's signing key (the SDK adds it).",
        },
    },
}
_DELIVERY_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ecoshare-event-id": {"type": "string", "description": "The published event's id."},
        "ecoshare-agreement": {
            "type": "string",
            "description": "The agreement and version the delivery was decided under.",
        },
    },
}


def _safe_id(text: str) -> str:
    """An AsyncAPI component or channel key (letters, digits, ``_`` and ``-``)."""
    return _ID_UNSAFE.sub("_", text)


def _kafka_message_binding() -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", "description": "The location id."},
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def _event_message(catalog: Catalog, event_type: str) -> dict[str, Any]:
    schema = catalog.event_schema(event_type)
    message: dict[str, Any] = {
        "name": event_type,
        "title": f"{event_type} v{catalog.version(event_type)}",
        "summary": str(schema.get("doc", event_type)),
        "contentType": "application/octet-stream",
        "headers": _INGRESS_HEADERS,
        "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": schema},
        "bindings": _kafka_message_binding(),
    }
    example = catalog.example(event_type)
    if example is not None:
        message["examples"] = [{"name": f"{event_type}-example", "payload": example}]
    return message


def _delivery_message(
    catalog: Catalog, agreement: Agreement, event_type: str
) -> dict[str, Any] | None:
    try:
        schema = projected_schema(catalog.event_schema(event_type), agreement, agreement.subscriber)
    except FieldRuleMismatchError:
        return None
    validity = f"valid from {agreement.valid_from.isoformat()}"
    if agreement.valid_until is not None:
        validity += f" until {agreement.valid_until.isoformat()}"
    return {
        "name": f"{event_type} for {agreement.subscriber}",
        "title": f"{event_type} under {agreement.agreement_id} v{agreement.version}",
        "summary": (
            f"What {agreement.subscriber} receives of {event_type} from "
            f"{', '.join(sorted(agreement.publishers))} for {agreement.purpose}, {validity}."
        ),
        "contentType": "application/octet-stream",
        "headers": _DELIVERY_HEADERS,
        "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": schema},
        "bindings": _kafka_message_binding(),
    }


def asyncapi_document(
    catalog: Catalog,
    agreements: Iterable[Agreement],
    names: TopicNames,
    *,
    version: str,
    bootstrap_servers: str | None = None,
    partner: Partner | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the catalog and agreements (as a JSON-ready dict).

    With ``partner``, that partner's view: the ingress channels only if it holds the
    publisher role, and only the delivery channels of agreements it subscribes under.
    """
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    may_publish = partner is None or (partner.enabled and Role.PUBLISHER in partner.roles)
    for event_type in catalog.event_types if may_publish else ():
        channel_id = f"ingress-{_safe_id(event_type)}"
        message_id = _safe_id(event_type)
        messages[message_id] = _event_message(catalog, event_type)
        channels[channel_id] = {
            "address": names.ingress(event_type),
            "title": f"Ingress of {event_type}",
            "description": (
                f"Publishers produce {event_type} events here, keyed by location id and "
                "signed; the governance workers validate, deduplicate and fan them out."
            ),
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        }
        operations[f"publish-{_safe_id(event_type)}"] = {
            "action": "send",
            "title": f"Publish {event_type}",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
        }
    wanted = sorted(
        (
            agreement
            for agreement in agreements
            if partner is None or agreement.subscriber == partner.partner_id
        ),
        key=lambda item: (item.subscriber, item.agreement_id),
    )
    for agreement in wanted:
        for event_type in sorted(agreement.event_types):
            if event_type not in catalog.event_types:
                continue
            message = _delivery_message(catalog, agreement, event_type)
            if message is None:
                continue
            channel_id = _safe_id(f"deliver-{agreement.subscriber}-{event_type}")
            message_id = _safe_id(f"{event_type}-{agreement.agreement_id}-v{agreement.version}")
            messages[message_id] = message
            channel = channels.setdefault(
                channel_id,
                {
                    "address": names.delivery(agreement.subscriber, event_type),
                    "title": f"{event_type} delivered to {agreement.subscriber}",
                    "description": (
                        f"Governed {event_type} deliveries of {agreement.subscriber}, "
                        "projected under its agreements; only this subscriber reads it."
                    ),
                    "messages": {},
                },
            )
            channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
            operation_id = _safe_id(f"receive-{agreement.subscriber}-{event_type}")
            operation = operations.setdefault(
                operation_id,
                {
                    "action": "receive",
                    "title": f"{agreement.subscriber} receives {event_type}",
                    "channel": {"$ref": f"#/channels/{channel_id}"},
                    "messages": [],
                },
            )
            operation["messages"].append({"$ref": f"#/channels/{channel_id}/messages/{message_id}"})
    title = "ecoshare event catalog"
    if partner is not None:
        title += f" as seen by {partner.partner_id}"
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Events as partners publish them (ingress channels) and as each subscriber "
                "receives them under its data-sharing agreements (delivery channels). "
                "Payloads are Avro in the Confluent wire format (magic byte, schema id, "
                "body); fields carry a `classification` and, where the catalog documents "
                "one, a `format`."
            ),
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
    if bootstrap_servers:
        document["servers"] = {
            "kafka": {
                "host": bootstrap_servers.split(",")[0],
                "protocol": "kafka",
                "description": "The platform's Kafka (or Kafka-compatible) broker.",
            }
        }
        for channel in channels.values():
            channel["servers"] = [{"$ref": "#/servers/kafka"}]
    return document
