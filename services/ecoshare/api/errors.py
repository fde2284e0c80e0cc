"""JSON error bodies for every failure the API answers, 4xx and 5xx alike.

Every error reads ``{"error": "<code>", "message": "<sentence>", "details": [...]}``;
``details`` lists field problems (``{"field": ..., "message": ...}``) where there are
some. Handlers raise :class:`ApiError`; FastAPI's own 404/405/422 answers are rewritten
into the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str
    message: str
    details: list[ErrorDetail] = []


class ApiError(Exception):
    """An answer other than success, raised from a handler or a dependency."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = [dict(item) for item in details]
        self.headers = dict(headers or {})


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Sequence[Mapping[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "error": code or _CODES.get(status, "error"),
        "message": message,
        "details": [dict(item) for item in details],
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _location(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return f"{where}:{'.'.join(rest)}" if rest else where
    return ".".join(parts)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in getattr(request.app.state, "routes", ()):
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
            methods.update(route.methods or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """JSON bodies for every error; ``app.state.routes`` lists the routes for ``Allow``."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.message, code=exc.code, details=exc.details, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource; see /docs for the API"
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; list them all.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
        return error_response(exc.status_code, message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": _location(error.get("loc", ())), "message": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        return error_response(422, "the request does not match the API", details=details)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal error; see the API log")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Bad request",
        401: "No API key, or a wrong or revoked one",
        403: "The key may not access this resource",
        404: "Not found",
        413: "Request body too large",
        415: "The body is not application/json",
        422: "The request does not match the API",
        429: "Rate limit of the key exceeded; see Retry-After",
    }.items()
}
