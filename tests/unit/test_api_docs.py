"""OpenAPI event bodies generated from the Avro catalog, and the docs assets shipped."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ecoshare.api.docs import docs_assets_dir, publish_request_body
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.settings import Settings

CATALOG = load_catalog(Settings().schemas_dir)


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    return publish_request_body(CATALOG)


def test_the_docs_assets_ship_with_the_installed_packages() -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        asset = docs_assets_dir() / name
        assert asset.is_file(), asset
        assert asset.stat().st_size > 10_000


def test_the_publish_body_is_each_event_type_from_the_avro_catalog(body: dict[str, Any]) -> None:
    schemas = body["x-event-schemas"]
    references = {
        item.get("$ref") for item in body["content"]["application/json"]["schema"]["oneOf"]
    }
    for event_type in CATALOG.event_types:
        assert f"#/components/schemas/{event_type}Event" in references
        schema = schemas[f"{event_type}Event"]
        avro_fields = [field["name"] for field in CATALOG.event_schema(event_type)["fields"]]
        assert list(schema["properties"]) == avro_fields
        assert "event_id" not in schema["required"]  # filled in by the platform
        assert "location_id" in schema["required"]
        postal_code = schema["properties"]["postal_code"]
        assert postal_code["pattern"].startswith("^")
        assert "1234 AB" in postal_code["description"]
        assert schema["properties"]["contact_name"]["x-classification"] == "personal"
        occurred_at = schema["properties"]["occurred_at"]["oneOf"]
        assert {branch["type"] for branch in occurred_at} == {"string", "integer"}


def test_every_example_is_valid_for_its_schema_and_bad_values_are_not(
    body: dict[str, Any],
) -> None:
    examples = body["content"]["application/json"]["examples"]
    for event_type in CATALOG.event_types:
        validator = Draft202012Validator(body["x-event-schemas"][f"{event_type}Event"])
        example = examples[event_type]["value"]
        assert list(validator.iter_errors(example)) == []
        assert "event_id" not in example and "publisher_id" not in example
        assert list(validator.iter_errors(dict(example, postal_code="hello")))
        assert list(validator.iter_errors(dict(example, occurred_at=True)))
        assert list(validator.iter_errors(dict(example, unknown_field=1)))
        assert examples[f"{event_type}-batch"]["value"] == [example]
