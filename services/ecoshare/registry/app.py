"""The registry's HTTP face: the part of Confluent's REST API that Confluent clients use.

Endpoints are thin: parse the request, call :class:`SchemaRegistry` in a worker thread
(its calls may wait on Kafka, which must not stall the event loop), shape the answer the
way Confluent's registry does. Every error leaves as ``{"error_code", "message"}`` JSON;
the codes are Confluent's, so clients branch on them unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecoshare.registry.avro_schemas import AVRO
from ecoshare.registry.compatibility import parse_level
from ecoshare.registry.errors import (
    InvalidCompatibilityLevelError,
    MalformedRequestError,
    RegistryError,
    SchemaNotFoundError,
    UnsupportedMediaTypeError,
)
from ecoshare.registry.metrics import RegistryMetrics
from ecoshare.registry.service import (
    RegisteredSchema,
    SchemaRegistry,
    SchemaRequest,
    VersionSpec,
    parse_version,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPTED_BODY_TYPES = frozenset(
    {
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    }
)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
_UNMATCHED_ROUTE = "unmatched"


class RegistryResponse(JSONResponse):
    media_type = MEDIA_TYPE


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").strip().lower() == "true"


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise MalformedRequestError(f"Query parameter {name!r} must be an integer") from None


def _page(items: list[T], request: Request) -> list[T]:
    """Confluent's ``offset``/``limit`` paging; a limit below 1 means no limit."""
    offset = max(_int_param(request, "offset", 0), 0)
    limit = _int_param(request, "limit", -1)
    page = items[offset:]
    return page[:limit] if limit > 0 else page


def _schema_id(request: Request) -> int:
    raw = request.path_params["schema_id"]
    try:
        return int(raw)
    except ValueError:
        raise SchemaNotFoundError(f"Schema {raw} not found") from None


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 415 for other media types, 400 for bad JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in _ACCEPTED_BODY_TYPES:
        raise UnsupportedMediaTypeError(
            f"Unsupported media type {content_type!r}; send {MEDIA_TYPE} or application/json"
        )
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequestError(f"Malformed JSON request body: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedRequestError("The request body must be a JSON object")
    return body


def _registered_body(registered: RegisteredSchema) -> dict[str, Any]:
    return {
        "subject": registered.subject,
        "version": registered.version,
        "id": registered.schema_id,
        "guid": registered.guid,
        "schema": registered.schema,
    }


class _Endpoints:
    """The request handlers, bound to one :class:`SchemaRegistry`."""

    def __init__(self, registry: SchemaRegistry, metrics: RegistryMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    async def root(self, _request: Request) -> Response:
        return RegistryResponse({})

    async def metrics_text(self, _request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def schema_types(self, _request: Request) -> Response:
        return RegistryResponse([AVRO])

    async def mode(self, _request: Request) -> Response:
        # Import mode and read-only mode are not offered; Confluent clients ask anyway.
        return RegistryResponse({"mode": "READWRITE"})

    async def contexts(self, _request: Request) -> Response:
        return RegistryResponse(["."])

    # -- schemas by id ----------------------------------------------------------------

    async def schema_by_id(self, request: Request) -> Response:
        found = await run_in_threadpool(self.registry.schema_by_id, _schema_id(request))
        return RegistryResponse({"schema": found.schema, "guid": found.guid})

    async def raw_schema_by_id(self, request: Request) -> Response:
        found = await run_in_threadpool(self.registry.schema_by_id, _schema_id(request))
        return Response(found.schema, media_type=MEDIA_TYPE)

    async def schema_by_guid(self, request: Request) -> Response:
        found = await run_in_threadpool(self.registry.schema_by_guid, request.path_params["guid"])
        return RegistryResponse({"schema": found.schema, "id": found.schema_id})

    async def schema_versions(self, request: Request) -> Response:
        usages = await run_in_threadpool(
            lambda: self.registry.schema_usages(
                _schema_id(request), include_deleted=_flag(request, "deleted")
            )
        )
        return RegistryResponse(
            _page([{"subject": u.subject, "version": u.version} for u in usages], request)
        )

    async def schema_subjects(self, request: Request) -> Response:
        usages = await run_in_threadpool(
            lambda: self.registry.schema_usages(
                _schema_id(request), include_deleted=_flag(request, "deleted")
            )
        )
        return RegistryResponse(_page(sorted({u.subject for u in usages}), request))

    # -- subjects ---------------------------------------------------------------------

    async def subjects(self, request: Request) -> Response:
        subjects = self.registry.subjects(
            prefix=request.query_params.get("subjectPrefix", ""),
            include_deleted=_flag(request, "deleted"),
            deleted_only=_flag(request, "deleted_only"),
        )
        return RegistryResponse(_page(subjects, request))

    async def lookup(self, request: Request) -> Response:
        schema_request = SchemaRequest.from_body(await _json_object(request))
        registered = await run_in_threadpool(
            lambda: self.registry.lookup(
                request.path_params["subject"],
                schema_request,
                include_deleted=_flag(request, "deleted"),
            )
        )
        return RegistryResponse(_registered_body(registered))

    async def delete_subject(self, request: Request) -> Response:
        deleted = await run_in_threadpool(
            lambda: self.registry.delete_subject(
                request.path_params["subject"], permanent=_flag(request, "permanent")
            )
        )
        return RegistryResponse(deleted)

    async def versions(self, request: Request) -> Response:
        versions = await run_in_threadpool(
            lambda: self.registry.versions(
                request.path_params["subject"],
                include_deleted=_flag(request, "deleted"),
                deleted_only=_flag(request, "deleted_only"),
            )
        )
        return RegistryResponse(_page(versions, request))

    async def register(self, request: Request) -> Response:
        schema_request = SchemaRequest.from_body(await _json_object(request))
        registered = await run_in_threadpool(
            self.registry.register, request.path_params["subject"], schema_request
        )
        # Without "schema" the client keeps the text it sent, so its caches stay keyed
        # by that text.
        return RegistryResponse(
            {
                "id": registered.schema_id,
                "version": registered.version,
                "guid": registered.guid,
                "subject": registered.subject,
            }
        )

    async def version(self, request: Request) -> Response:
        registered = await self._version(request)
        return RegistryResponse(_registered_body(registered))

    async def raw_version_schema(self, request: Request) -> Response:
        registered = await self._version(request)
        return Response(registered.schema, media_type=MEDIA_TYPE)

    async def _version(self, request: Request) -> RegisteredSchema:
        version = parse_version(request.path_params["version"])
        return await run_in_threadpool(
            lambda: self.registry.version(
                request.path_params["subject"], version, include_deleted=_flag(request, "deleted")
            )
        )

    async def delete_version(self, request: Request) -> Response:
        version = parse_version(request.path_params["version"])
        deleted = await run_in_threadpool(
            lambda: self.registry.delete_version(
                request.path_params["subject"], version, permanent=_flag(request, "permanent")
            )
        )
        return RegistryResponse(deleted)

    # -- compatibility ----------------------------------------------------------------

    async def compatibility_with_version(self, request: Request) -> Response:
        return await self._compatibility(request, parse_version(request.path_params["version"]))

    async def compatibility_with_versions(self, request: Request) -> Response:
        return await self._compatibility(request, None)

    async def _compatibility(self, request: Request, version: VersionSpec | None) -> Response:
        schema_request = SchemaRequest.from_body(await _json_object(request))
        problems = await run_in_threadpool(
            self.registry.compatibility_problems,
            request.path_params["subject"],
            schema_request,
            version,
        )
        body: dict[str, Any] = {"is_compatible": not problems}
        if _flag(request, "verbose"):
            body["messages"] = problems
        return RegistryResponse(body)

    # -- configuration ----------------------------------------------------------------

    async def get_global_config(self, _request: Request) -> Response:
        return RegistryResponse({"compatibilityLevel": self.registry.global_level().value})

    async def get_subject_config(self, request: Request) -> Response:
        level = self.registry.subject_level(
            request.path_params["subject"], default_to_global=_flag(request, "defaultToGlobal")
        )
        return RegistryResponse({"compatibilityLevel": level.value})

    async def put_global_config(self, request: Request) -> Response:
        return await self._put_config(request, None)

    async def put_subject_config(self, request: Request) -> Response:
        return await self._put_config(request, request.path_params["subject"])

    async def _put_config(self, request: Request, subject: str | None) -> Response:
        body = await _json_object(request)
        requested = body.get("compatibility", body.get("compatibilityLevel"))
        if requested is None:
            raise InvalidCompatibilityLevelError(requested)
        level = await run_in_threadpool(self.registry.set_level, subject, parse_level(requested))
        return RegistryResponse({"compatibility": level.value})

    async def delete_global_config(self, _request: Request) -> Response:
        old = await run_in_threadpool(self.registry.delete_level, None)
        return RegistryResponse({"compatibilityLevel": old.value})

    async def delete_subject_config(self, request: Request) -> Response:
        old = await run_in_threadpool(self.registry.delete_level, request.path_params["subject"])
        return RegistryResponse({"compatibilityLevel": old.value})


class _MetricsMiddleware:
    """Counts and times every request under its route template, never its raw path."""

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # Stays 500 if the app raises before it starts a response.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records the matched route in the shared scope.
            route = getattr(scope.get("route"), "path", _UNMATCHED_ROUTE)
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            self.metrics.observe(method, route, status, time.perf_counter() - started)


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    if exc.http_status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return RegistryResponse(exc.to_body(), status_code=exc.http_status)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return RegistryResponse(
        {"error_code": exc.status_code, "message": f"HTTP {exc.status_code} {exc.detail}"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _unexpected_error(_request: Request, exc: Exception) -> Response:
    logger.error("unexpected error answering a request", exc_info=exc)
    return RegistryResponse(
        {"error_code": 50001, "message": f"Internal error: {type(exc).__name__}"},
        status_code=500,
    )


def create_app(registry: SchemaRegistry, metrics: RegistryMetrics) -> Starlette:
    """The registry's ASGI app over an already started :class:`SchemaRegistry`."""
    e = _Endpoints(registry, metrics)

    def route(path: str, endpoint: Callable[[Request], Any], *methods: str) -> Route:
        return Route(path, endpoint, methods=list(methods or ("GET",)))

    routes = [
        route("/", e.root),
        route("/metrics", e.metrics_text),
        route("/schemas/types", e.schema_types),
        route("/schemas/ids/{schema_id}", e.schema_by_id),
        route("/schemas/ids/{schema_id}/schema", e.raw_schema_by_id),
        route("/schemas/ids/{schema_id}/versions", e.schema_versions),
        route("/schemas/ids/{schema_id}/subjects", e.schema_subjects),
        route("/schemas/guids/{guid}", e.schema_by_guid),
        route("/subjects", e.subjects),
        route("/subjects/{subject}", e.lookup, "POST"),
        route("/subjects/{subject}", e.delete_subject, "DELETE"),
        route("/subjects/{subject}/versions", e.versions),
        route("/subjects/{subject}/versions", e.register, "POST"),
        route("/subjects/{subject}/versions/{version}", e.version),
        route("/subjects/{subject}/versions/{version}", e.delete_version, "DELETE"),
        route("/subjects/{subject}/versions/{version}/schema", e.raw_version_schema),
        route(
            "/compatibility/subjects/{subject}/versions/{version}",
            e.compatibility_with_version,
            "POST",
        ),
        route("/compatibility/subjects/{subject}/versions", e.compatibility_with_versions, "POST"),
        route("/config", e.get_global_config),
        route("/config", e.put_global_config, "PUT"),
        route("/config", e.delete_global_config, "DELETE"),
        route("/config/{subject}", e.get_subject_config),
        route("/config/{subject}", e.put_subject_config, "PUT"),
        route("/config/{subject}", e.delete_subject_config, "DELETE"),
        route("/mode", e.mode),
        route("/mode/{subject}", e.mode),
        route("/contexts", e.contexts),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_MetricsMiddleware, metrics=metrics)],
        exception_handlers={
            RegistryError: _registry_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
