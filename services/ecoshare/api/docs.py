"""API documentation served from the installed packages, with event bodies from the catalog.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from
``/static-docs``, which serves the assets the pinned ``fastapi-offline`` package ships:
the pages work without internet. ``/openapi.json`` describes the body of
``POST /v1/events/{event_type}`` per event type as JSON Schema generated from the Avro
catalog, with each type's documented example; the event type path parameter lists the
catalog's types.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ecoshare.catalog.event_catalog import Catalog
from ecoshare.domain.formats import format_of

STATIC_URL = "/static-docs"
PUBLISH_PATH = "/v1/events/{event_type}"
FILLED_IN = ("event_id", "publisher_id", "published_at")
"""Envelope fields the platform fills in when a JSON event leaves them out."""


def docs_assets_dir() -> Path:
    """Swagger UI and ReDoc bundles as the pinned fastapi-offline package ships them."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


_TIMESTAMP = {
    "oneOf": [
        {"type": "string", "format": "date-time", "description": "ISO 8601 with a time zone"},
        {"type": "integer", "description": "epoch milliseconds"},
    ]
}
_PRIMITIVE = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer", "format": "int32"},
    "long": {"type": "integer", "format": "int64"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "null": {"type": "null"},
}


def json_schema_of(avro_type: Any, *, filled_in: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON Schema of the JSON an Avro type is published as over HTTP.

    Timestamps are ISO 8601 text or epoch milliseconds; fields with a default, and the
    ``filled_in`` envelope fields, may be left out; field docs become descriptions;
    a catalog ``format`` becomes a ``pattern``; the classification is kept as
    ``x-classification``.
    """
    if isinstance(avro_type, list):
        branches = [json_schema_of(branch) for branch in avro_type]
        return branches[0] if len(branches) == 1 else {"anyOf": branches}
    if isinstance(avro_type, str):
        return dict(_PRIMITIVE.get(avro_type, {}))
    kind = avro_type.get("type")
    if avro_type.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
        return copy.deepcopy(_TIMESTAMP)
    if kind == "record":
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in avro_type["fields"]:
            properties[field["name"]] = _field_schema(field)
            if "default" not in field and field["name"] not in filled_in:
                required.append(field["name"])
        schema: dict[str, Any] = {
            "type": "object",
            "title": avro_type["name"],
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        if avro_type.get("doc"):
            schema["description"] = avro_type["doc"]
        return schema
    if kind == "enum":
        return {"type": "string", "enum": list(avro_type["symbols"])}
    if kind == "array":
        return {"type": "array", "items": json_schema_of(avro_type["items"])}
    if kind == "map":
        return {"type": "object", "additionalProperties": json_schema_of(avro_type["values"])}
    if kind == "fixed":
        return {"type": "string", "contentEncoding": "base64"}
    return json_schema_of(kind)


def _field_schema(field: Mapping[str, Any]) -> dict[str, Any]:
    schema = json_schema_of(field["type"])
    value_format = format_of(field)
    if value_format is not None:
        pattern = {"pattern": f"^{value_format.pattern.pattern}$"}
        if "anyOf" in schema:
            schema["anyOf"] = [
                {**branch, **pattern} if branch.get("type") == "string" else branch
                for branch in schema["anyOf"]
            ]
        else:
            schema.update(pattern)
    description = str(field.get("doc", ""))
    if value_format is not None:
        description = f"{description} Must be {value_format.description}.".strip()
    if description:
        schema["description"] = description
    if field.get("classification"):
        schema["x-classification"] = field["classification"]
    return schema


def publish_example(catalog: Catalog, event_type: str) -> dict[str, Any] | None:
    """The catalog's example as a partner would POST it (envelope left to the platform)."""
    example = catalog.example(event_type)
    if example is None:
        return None
    return {name: value for name, value in example.items() if name not in FILLED_IN}


def publish_request_body(catalog: Catalog) -> dict[str, Any]:
    """The request body of ``POST /v1/events/{event_type}``: one event or a batch."""
    events = {
        event_type: json_schema_of(catalog.event_schema(event_type), filled_in=FILLED_IN)
        for event_type in catalog.event_types
    }
    one_of_events = [{"$ref": f"#/components/schemas/{name}Event"} for name in events]
    examples: dict[str, Any] = {}
    for event_type in catalog.event_types:
        example = publish_example(catalog, event_type)
        if example is not None:
            examples[event_type] = {
                "summary": f"One {event_type} (POST to /v1/events/{event_type})",
                "value": example,
            }
            examples[f"{event_type}-batch"] = {
                "summary": f"A batch of {event_type} events",
                "value": [example],
            }
    return {
        "required": True,
        "description": (
            "One event (a JSON object) or a batch (a JSON array) of the type named in the "
            "path; the body must match that type's schema."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        *one_of_events,
                        {
                            "type": "array",
                            "items": {"oneOf": one_of_events},
                            "minItems": 1,
                            "description": "A batch of events of the path's type",
                        },
                    ]
                },
                "examples": examples,
            }
        },
        "x-event-schemas": {f"{name}Event": schema for name, schema in events.items()},
    }


def _with_catalog(document: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    body = publish_request_body(catalog)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("x-event-schemas"))
    operation = document.get("paths", {}).get(PUBLISH_PATH, {}).get("post")
    if operation is not None:
        operation["requestBody"] = body
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "event_type" and parameter.get("in") == "path":
                parameter["schema"] = {"type": "string", "enum": list(catalog.event_types)}
    return document


def install_docs(app: FastAPI, catalog: Catalog) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets locally; put the catalog in OpenAPI.

    The app must be created with ``docs_url=None, redoc_url=None``.
    """
    app.mount(STATIC_URL, StaticFiles(directory=docs_assets_dir()), name="static-docs")

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_catalog(generate(), catalog)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
