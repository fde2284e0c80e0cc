"""The HTTP API: operator and partner endpoints, HTTP publish, SSE and webhooks.

``create_app`` wires everything; ``python -m ecoshare.api`` serves it with uvicorn.
OpenAPI is at ``/openapi.json``, interactive docs at ``/docs`` (served from the installed
packages, no CDN), the AsyncAPI document at ``/asyncapi.json``, liveness at ``/healthz``,
Prometheus metrics at ``/metrics`` with the operator key (or without a key on the
internal ``ECOSHARE_API_METRICS_PORT``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry

from ecoshare import __version__
from ecoshare.adapters.metrics import HttpMetrics, register_build_info
from ecoshare.api.config import ApiConfig
from ecoshare.api.context import ApiContext
from ecoshare.api.docs import install_docs
from ecoshare.api.errors import ERROR_RESPONSES, install_error_handlers
from ecoshare.api.limits import BodySizeLimit, RequestMetrics
from ecoshare.api.request_guards import JsonRequestGuard, SecurityHeaders
from ecoshare.api.routes import (
    agreements,
    catalog,
    consents,
    deliveries,
    events,
    operations,
    partners,
    webhooks,
)

DESCRIPTION = """\
Governed, audited sharing of live business events between ecosystem partners.

Authenticate with `Authorization: Bearer <key>` (or `X-API-Key: <key>`): the operator
key acts for the whole ecosystem, a partner key for its own partner only (other
partners' resources answer 403). Every error is JSON:
`{"error": code, "message": text, "details": [{"field", "message"}]}`.
Request bodies are UTF-8 `application/json` (415 otherwise), nested at most a bounded
depth (400 beyond). Failed authentications are limited per client address (429).
"""


def create_app(config: ApiConfig) -> FastAPI:
    """The API application; its adapters start and stop with the app's lifespan."""
    registry = CollectorRegistry()
    register_build_info(registry, "api", __version__)
    context = ApiContext(config, registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(context.start)
        try:
            yield
        finally:
            await run_in_threadpool(context.stop)

    app = FastAPI(
        title="ecoshare API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # A slash redirect would build its Location from the request's Host header.
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    install_error_handlers(app)
    routers = [
        module.router
        for module in (
            partners,
            agreements,
            consents,
            events,
            deliveries,
            webhooks,
            operations,
            catalog,
        )
    ]
    for router in routers:
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(operations.service_router)
    app.state.routes = [
        route for router in (*routers, operations.service_router) for route in router.routes
    ]
    install_docs(app, context.catalog)
    # The last added runs first: headers on every answer, then metrics, size, JSON.
    app.add_middleware(JsonRequestGuard, max_depth=config.limits.max_json_depth)
    app.add_middleware(BodySizeLimit, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=HttpMetrics(registry, "api"))
    app.add_middleware(SecurityHeaders)
    return app
