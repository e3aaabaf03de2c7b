"""The outermost piece of each app: a request id on every exchange, headers on every answer.

- Every request gets an id (a well-formed `X-Request-ID` from a proxy is kept, anything else
  replaced), returned in the `X-Request-ID` header and put on every log line written while
  the request runs; unhandled errors name it in their body, so a user's report finds the
  log line, and the log line holds nothing else.
- Every answer says `X-Content-Type-Options: nosniff`; every HTML answer without its own
  Content-Security-Policy gets the app's default one (the pages set stricter ones).
- A body over the size limit that the route never read is refused by Starlette with a
  plain-text 413 after the route ran; it is turned into the apps' JSON error here, so every
  413 carries the machine-readable code `too_large`.

Pure ASGI (no web library): the middleware runs under any ASGI app.
"""

import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from runtime.edge.csp import DEFAULT_HTML_POLICY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-ID"
_SCOPE_KEY = "sauti.request_id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{8,64}")
_current: ContextVar[str | None] = ContextVar("sauti_request_id", default=None)

# Codes of the HTTP errors the framework raises itself (not a domain error).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def request_id(scope: Scope) -> str:
    """This request's id: the proxy's if well formed, else a new random one (kept in scope)."""
    rid = scope.get(_SCOPE_KEY)
    if isinstance(rid, str):
        return rid
    given = _header(scope, b"x-request-id")
    rid = given if given is not None and _WELL_FORMED.fullmatch(given) else secrets.token_hex(8)
    scope[_SCOPE_KEY] = rid
    return rid


def current_request_id() -> str | None:
    """The id of the request this code runs for, if any (for log records)."""
    return _current.get()


def error_json(code: str, message: str) -> bytes:
    """The body of every refusal, `{"error": {"code", "message"}}` (contracts.v1.ErrorResponse)."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class EdgeMiddleware:
    """Request ids, `nosniff` everywhere, a default CSP on HTML, JSON for every 413."""

    def __init__(self, app: ASGIApp, *, html_policy: str = DEFAULT_HTML_POLICY) -> None:
        self.app = app
        self.html_policy = html_policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = _current.set(rid)
        replaced = False

        async def send_with_headers(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {bytes(k).lower() for k, _ in headers}
                content_type = next(
                    (bytes(v).lower() for k, v in headers if bytes(k).lower() == b"content-type"),
                    b"",
                )
                if message["status"] == 413 and content_type.startswith(b"text/plain"):
                    replaced = True
                    body = error_json("too_large", "the request body is too large")
                    headers = [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ]
                    names = {b"content-type", b"content-length"}
                    await send({**message, "headers": [*headers, *_extra(rid, names)]})
                    await send({"type": "http.response.body", "body": body})
                    return
                if (
                    content_type.startswith(b"text/html")
                    and b"content-security-policy" not in names
                ):
                    headers.append((b"content-security-policy", self.html_policy))
                message["headers"] = [*headers, *_extra(rid, names)]
            elif replaced:
                return  # the plain-text body of a replaced 413
            await send(message)

        await self.app(scope, receive, send_with_headers)
        # Left set when the app raised: the server's own error line then still names it.
        _current.reset(token)


def _extra(rid: str, names: set[bytes]) -> list[tuple[bytes, bytes]]:
    extra = [(b"x-request-id", rid.encode())]
    if b"x-content-type-options" not in names:
        extra.append((b"x-content-type-options", b"nosniff"))
    return extra
