"""The API's routers, one module per resource."""

from __future__ import annotations

from fastapi import Request

from ecoshare.api.context import ApiContext


def api_context(request: Request) -> ApiContext:
    """FastAPI dependency: the running API's adapters."""
    context: ApiContext = request.app.state.context
    return context
