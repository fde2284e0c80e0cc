"""API docs work without internet, and OpenAPI describes event bodies from the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from ecoshare.api.app import create_app
from ecoshare.api.config import ApiConfig, ApiLimits
from ecoshare.catalog import load_catalog
from ecoshare.settings import Settings
from ecoshare.topics import TopicNames

CATALOG = load_catalog(Settings().schemas_dir)


@pytest.fixture(scope="module")
def client(bootstrap_servers: str, registry_url: str) -> Iterator[TestClient]:
    config = ApiConfig(
        bootstrap_servers=bootstrap_servers,
        schema_registry_url=registry_url,
        names=TopicNames(f"docs{uuid.uuid4().hex[:8]}."),
        operator_key="o" * 40,
        signing_secret=b"s" * 32,
        schemas_dir=Settings().schemas_dir,
        ingress_partitions=1,
        limits=ApiLimits(),
    )
    with TestClient(create_app(config)) as running:
        yield running


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_load_their_assets_from_the_api_itself(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assets = [part.split('"', 1)[0] for part in html.text.split('src="')[1:]]
    assets += [part.split('"', 1)[0] for part in html.text.split('href="')[1:]]
    assert assets
    for asset in assets:
        assert asset.startswith("/static-docs/"), f"{page} loads {asset} from elsewhere"
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    assert "cdn" not in html.text.lower()
    assert "fonts.googleapis" not in html.text


def _event_schema(openapi: dict[str, Any], event_type: str) -> dict[str, Any]:
    schema = openapi["components"]["schemas"][f"{event_type}Event"]
    # Resolve nothing: the event schemas are self-contained.
    return dict(schema)


def test_the_publish_body_is_each_event_type_from_the_avro_catalog(
    openapi: dict[str, Any],
) -> None:
    operation = openapi["paths"]["/v1/events/{event_type}"]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    references = {item.get("$ref") for item in content["schema"]["oneOf"]}
    for event_type in CATALOG.event_types:
        assert f"#/components/schemas/{event_type}Event" in references
        schema = _event_schema(openapi, event_type)
        avro_fields = [field["name"] for field in CATALOG.event_schema(event_type)["fields"]]
        assert list(schema["properties"]) == avro_fields
        assert "event_id" not in schema["required"]  # filled in by the platform
        assert "location_id" in schema["required"]
        assert schema["properties"]["postal_code"]["pattern"].startswith("^")
        assert schema["properties"]["contact_name"]["x-classification"] == "personal"
    [parameter] = [p for p in operation["parameters"] if p["name"] == "event_type"]
    assert parameter["schema"]["enum"] == list(CATALOG.event_types)


def test_every_example_is_valid_for_its_schema_and_bad_postcodes_are_not(
    openapi: dict[str, Any],
) -> None:
    examples = openapi["paths"]["/v1/events/{event_type}"]["post"]["requestBody"]["content"][
        "application/json"
    ]["examples"]
    for event_type in CATALOG.event_types:
        validator = Draft202012Validator(_event_schema(openapi, event_type))
        example = examples[event_type]["value"]
        assert list(validator.iter_errors(example)) == []
        assert list(validator.iter_errors(dict(example, postal_code="hello")))
        assert list(validator.iter_errors(dict(example, occurred_at=True)))
        assert list(validator.iter_errors(dict(example, unknown_field=1)))
        assert examples[f"{event_type}-batch"]["value"] == [example]
