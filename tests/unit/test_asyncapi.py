"""The AsyncAPI 3.0 document generated from the catalog and the agreements.

It is validated against the AsyncAPI JSON Schema of the npm package @asyncapi/specs,
vendored in tests/data/asyncapi/ (see its README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from ecoshare.catalog.asyncapi import AVRO_SCHEMA_FORMAT, asyncapi_document
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.governance_file import load_governance_file
from ecoshare.config.settings import Settings
from ecoshare.config.topics import TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"
CATALOG = load_catalog(Settings().schemas_dir)
DOCUMENT = load_governance_file(ROOT / "examples" / "postnl" / "governance.yaml").document
AGREEMENTS: list[Agreement] = list(DOCUMENT.agreements)
PARTNERS: dict[str, Partner] = {partner.partner_id: partner for partner in DOCUMENT.partners}


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_the_whole_document_validates(validator: Draft7Validator) -> None:
    document = asyncapi_document(
        CATALOG,
        AGREEMENTS,
        TopicNames(""),
        version="0.1.0",
        bootstrap_servers="127.0.0.1:9092",
    )
    assert _errors(validator, document) == []
    assert document["asyncapi"] == "3.0.0"


def test_an_invalid_document_is_caught_by_the_schema(validator: Draft7Validator) -> None:
    # The validation is real: a channel without its required shape is refused.
    document = asyncapi_document(CATALOG, AGREEMENTS, TopicNames(""), version="0.1.0")
    document["operations"]["publish-StoreStatusChanged"]["action"] = "publish"
    assert _errors(validator, document)


def test_ingress_channels_carry_the_catalog_schema_and_an_example() -> None:
    document = asyncapi_document(CATALOG, AGREEMENTS, TopicNames("p."), version="0.1.0")
    channel = document["channels"]["ingress-StoreStatusChanged"]
    assert channel["address"] == "p.ingress.StoreStatusChanged"
    message = document["components"]["messages"]["StoreStatusChanged"]
    assert message["payload"]["schemaFormat"] == AVRO_SCHEMA_FORMAT
    assert message["payload"]["schema"] == CATALOG.event_schema("StoreStatusChanged")
    assert message["examples"][0]["payload"]["postal_code"] == "1012 LG"
    operation = document["operations"]["publish-StoreStatusChanged"]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": "#/channels/ingress-StoreStatusChanged"}


def test_each_subscriber_gets_its_delivery_channel_with_the_projected_schema() -> None:
    document = asyncapi_document(CATALOG, AGREEMENTS, TopicNames(""), version="0.1.0")
    channel = document["channels"]["deliver-carrier-south-StoreStatusChanged"]
    assert channel["address"] == "deliver.carrier-south.StoreStatusChanged"
    [reference] = channel["messages"].values()
    message_id = reference["$ref"].rsplit("/", 1)[-1]
    schema = document["components"]["messages"][message_id]["payload"]["schema"]
    fields = {field["name"]: field for field in schema["fields"]}
    # The south carrier's agreement generalises geo and never grants contact_subject_id.
    assert fields["latitude"]["transform"] == {"action": "generalise", "decimals": 2}
    assert "contact_subject_id" not in fields
    assert schema["agreement_id"] == "status-to-carrier-south"
    operation = document["operations"]["receive-carrier-south-StoreStatusChanged"]
    assert operation["action"] == "receive"
    subscribers = {
        channel["address"].split(".")[1]
        for channel in document["channels"].values()
        if channel["address"].startswith("deliver.")
    }
    assert subscribers == {agreement.subscriber for agreement in AGREEMENTS}


def test_a_partner_sees_only_its_own_view(validator: Draft7Validator) -> None:
    carrier = asyncapi_document(
        CATALOG, AGREEMENTS, TopicNames(""), version="0.1.0", partner=PARTNERS["carrier-north"]
    )
    assert _errors(validator, carrier) == []
    assert sorted(c["address"] for c in carrier["channels"].values()) == [
        "deliver.carrier-north.StoreStatusChanged"
    ]
    publisher = asyncapi_document(
        CATALOG, AGREEMENTS, TopicNames(""), version="0.1.0", partner=PARTNERS["retail-chain"]
    )
    assert _errors(validator, publisher) == []
    assert sorted(c["address"] for c in publisher["channels"].values()) == [
        f"ingress.{event_type}" for event_type in CATALOG.event_types
    ]
    assert "as seen by retail-chain" in publisher["info"]["title"]
