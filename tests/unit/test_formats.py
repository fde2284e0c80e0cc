"""Formats the catalog documents on fields (the Dutch postcode), checked at publishing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ecoshare.catalog.event_catalog import CatalogError, load_catalog
from ecoshare.config.settings import Settings
from ecoshare.domain.formats import FORMATS, conform

SCHEMAS = Settings().schemas_dir


@pytest.mark.parametrize("event_type", ["StoreStatusChanged", "LocationAvailability"])
def test_the_catalog_documents_the_postcode_format(event_type: str) -> None:
    schema = load_catalog(SCHEMAS).event_schema(event_type)
    field = next(item for item in schema["fields"] if item["name"] == "postal_code")
    assert field["format"] == "nl-postcode"
    assert "1234 AB" in FORMATS["nl-postcode"].description


def test_a_value_breaking_its_format_is_named_with_the_expected_form() -> None:
    schema = load_catalog(SCHEMAS).event_schema("StoreStatusChanged")
    _, problems = conform(schema, {"postal_code": "hello", "city": "hello"})
    assert problems == [
        (
            "postal_code",
            "'hello' is not a Dutch postcode: four digits (not starting with 0), a space "
            'and two capital letters, e.g. "1234 AB"',
        )
    ]


@pytest.mark.parametrize(
    ("value", "canonical"), [("1012 LG", "1012 LG"), ("1012LG", "1012 LG"), ("9999 ZZ", "9999 ZZ")]
)
def test_valid_postcodes_are_written_canonically(value: str, canonical: str) -> None:
    schema = load_catalog(SCHEMAS).event_schema("StoreStatusChanged")
    record, problems = conform(schema, {"postal_code": value})
    assert problems == []
    assert record["postal_code"] == canonical


@pytest.mark.parametrize("value", ["0123 AB", "1234 ab", "12345 AB", "1234  AB", "", "1234 A"])
def test_invalid_postcodes_are_refused(value: str) -> None:
    schema = load_catalog(SCHEMAS).event_schema("StoreStatusChanged")
    assert conform(schema, {"postal_code": value})[1]


def test_nested_records_are_checked_with_their_path() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "fields": [
            {
                "name": "address",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Address",
                        "fields": [
                            {"name": "postal_code", "type": "string", "format": "nl-postcode"}
                        ],
                    },
                ],
            }
        ],
    }
    record, problems = conform(schema, {"address": {"postal_code": "3511AZ"}})
    assert problems == []
    assert record == {"address": {"postal_code": "3511 AZ"}}
    assert conform(schema, {"address": {"postal_code": "x"}})[1][0][0] == "address.postal_code"
    assert conform(schema, {"address": None}) == ({"address": None}, [])


def test_the_catalog_refuses_an_unknown_format(tmp_path: Path) -> None:
    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    path = tmp_path / "schemas" / "events" / "StoreStatusChanged.v1.avsc"
    schema = json.loads(path.read_text())
    next(f for f in schema["fields"] if f["name"] == "city")["format"] = "city-name"
    path.write_text(json.dumps(schema))
    with pytest.raises(CatalogError, match=r"field .*city has format 'city-name'"):
        load_catalog(tmp_path / "schemas")
