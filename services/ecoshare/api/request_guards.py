"""What every request and response passes through before a handler sees it.

- :class:`JsonRequestGuard`: a request body is JSON, declared as such, UTF-8, and no
  deeper than a bound, all checked on the raw bytes *before* anything parses them (a
  recursive parser fed ``[[[[...`` tens of thousands deep would exhaust the stack).
- :class:`SecurityHeaders`: the response headers a security review expects of an API.

Both are plain ASGI middleware, so their answers do not depend on the route.
"""

from __future__ import annotations

import functools
import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@functools.lru_cache(maxsize=4)
def _bounded_nesting(max_depth: int) -> re.Pattern[bytes]:
    """Balanced brackets at most ``max_depth`` deep, strings as opaque atoms.

    Every quantifier is possessive, so matching never backtracks: linear in the input.
    """
    level = rb'(?:"[^"]*+")*+'
    for _ in range(max_depth):
        level = rb'(?:"[^"]*+"|\[' + level + rb"\])*+"
    return re.compile(level)


_OPEN_CLOSE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')


def json_nesting_exceeds(raw: bytes, max_depth: int) -> bool:
    """Whether arrays and objects in ``raw`` nest deeper than ``max_depth`` (or unbalanced).

    Never recursive and linear: a hostile megabyte costs tens of milliseconds. Escaped
    backslashes go first, then escaped quotes (what is left of a run of backslashes
    tells whether the quote after it is escaped); then everything but quotes and
    brackets, with ``{}`` read as ``[]`` (the depth bound holds for both alike, and a
    mismatch is the parser's to name). What remains must be balanced brackets and
    strings, at most ``max_depth`` deep. Anything else is too deep or not JSON at all;
    either way a parser must not see it.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = unescaped.translate(_OPEN_CLOSE, _NOT_STRUCTURE)
    return _bounded_nesting(max_depth).fullmatch(structure) is None


def _media_type(value: bytes) -> tuple[str, dict[str, str]]:
    text = value.decode("latin-1")
    kind, *params = text.split(";")
    parameters: dict[str, str] = {}
    for param in params:
        name, _, param_value = param.partition("=")
        parameters[name.strip().lower()] = param_value.strip().strip('"').lower()
    return kind.strip().lower(), parameters


def _error_body(error: str, message: str) -> bytes:
    return json.dumps({"error": error, "message": message, "details": []}).encode()


async def _answer(send: Send, status: int, error: str, message: str) -> None:
    payload = _error_body(error, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class JsonRequestGuard:
    """Refuses request bodies that are not bounded, UTF-8 ``application/json``.

    A body other than ``application/json`` (charset, if named, ``utf-8``) answers 415;
    one that is not UTF-8, or nests deeper than ``max_depth``, answers 400. Requests
    without a body pass untouched. The body is read here (its size is bounded by the
    body-size limit outside) and handed on unchanged.
    """

    def __init__(self, app: ASGIApp, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # The client left: nothing to answer.
                return
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if body.strip():
            refusal = self._refusal(scope, body)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refusal(self, scope: Scope, body: bytes) -> tuple[int, str, str] | None:
        declared = [value for name, value in scope.get("headers", []) if name == b"content-type"]
        kind, parameters = _media_type(declared[0]) if len(declared) == 1 else ("", {})
        if kind != "application/json" or parameters.get("charset", "utf-8") != "utf-8":
            return (
                415,
                "unsupported_media_type",
                "send the body as Content-Type: application/json (UTF-8)",
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, "bad_request", "the body is not JSON: it is not UTF-8"
        if json_nesting_exceeds(body, self.max_depth):
            return (
                400,
                "bad_request",
                f"the body is not JSON of at most {self.max_depth} levels: its arrays "
                "and objects nest deeper, or do not close",
            )
        return None


_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Not on HTML: the interactive docs are the one page meant for a browser.
_NOT_HTML = [(b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")]
_HTTPS_ONLY = [(b"strict-transport-security", b"max-age=31536000")]


class SecurityHeaders:
    """Adds the API's security headers to every response, errors and streams alike.

    ``Cache-Control: no-store`` everywhere: answers carry keys, secrets shown once and
    partner data, none of which a cache should keep.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                replaced = {name for name, _ in _ALWAYS}
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in replaced
                ]
                headers.extend(_ALWAYS)
                content_type = next(
                    (value for name, value in headers if name.lower() == b"content-type"), b""
                )
                if not content_type.lower().startswith(b"text/html"):
                    headers.extend(_NOT_HTML)
                if https:
                    headers.extend(_HTTPS_ONLY)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
