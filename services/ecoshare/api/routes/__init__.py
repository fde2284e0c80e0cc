"""The API's routers, one module per resource."""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel

from ecoshare.api.context import ApiContext
from ecoshare.application.ports import RecordKind


def api_context(request: Request) -> ApiContext:
    """FastAPI dependency: the running API's adapters."""
    context: ApiContext = request.app.state.context
    return context


class ApiRecordWriter:
    """The use cases' record writer over the API's writer: each record is acknowledged
    and visible in this API's state before the request answers."""

    def __init__(self, context: ApiContext) -> None:
        self._context = context
        names = context.names
        self._topics: dict[RecordKind, str] = {
            "partner": names.partners,
            "agreement": names.agreements,
            "consent": names.consents,
            "api_key": context.keys_topic,
        }

    def write(self, kind: RecordKind, key: str, value: BaseModel | None) -> None:
        self._context.write(self._topics[kind], key, value)
