"""A limit on request bodies: at most :data:`MAX_BODY_BYTES`, and JSON only.

The services' bodies are small (the largest, an order of 20 lines, is under 2 KB), so anything
much bigger is a mistake or an attack, and parsing it costs memory and CPU before validation can
refuse it. :class:`RequestBodyMiddleware` answers before the app sees the request:

Only methods that carry a body (``POST``, ``PUT``, ``PATCH``) are inspected; FastAPI never reads
the body of the others.

* ``413 Content Too Large`` when ``Content-Length`` says more than ``max_bytes``, or when a body
  sent without one (chunked) grows past it: the body is read at most ``max_bytes + 1`` bytes far;
* ``415 Unsupported Media Type`` when a request carries a body that is not ``application/json``
  (or a ``+json`` type): FastAPI would otherwise try to validate the raw bytes;
* ``400 Bad Request`` when the body is not UTF-8, the only encoding JSON may use between systems
  (RFC 8259, section 8.1): FastAPI would answer its own ``There was an error parsing the body``,
  without the services' error body. Malformed JSON in UTF-8 stays FastAPI's 422 ``json_invalid``,
  which names the position.

Both answer with the services' error body (:mod:`storefront.responses`). The limit of 8 KiB is
the size above which AWS WAF's core rule set blocks a body (its ``SizeRestrictions_BODY`` rule)
and the most AWS WAF can inspect behind an ALB; API Gateway sends WAF up to 16 KB by default. So
a body a service accepts is one the WAF's managed rules could read in full, wherever the WAF sits
(the sources are on the page "Fuzzing and bad input").
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --8<-- [start:body-limit]
MAX_BODY_BYTES = 8 * 1024
"""The largest body a service accepts (8 KiB)."""


def _refusal(status: int, error: str, reason: str) -> JSONResponse:
    return JSONResponse({"detail": {"error": error, "reason": reason}}, status_code=status)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class RequestBodyMiddleware:
    """ASGI middleware refusing bodies over ``max_bytes`` (413), not JSON (415) or not UTF-8 (400).

    Args:
        app: The wrapped application.
        max_bytes: The largest body accepted.
        methods: The methods whose bodies are inspected.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        methods: frozenset[str] = frozenset({"POST", "PUT", "PATCH"}),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.methods = methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized or non-JSON body; otherwise pass the request on, body replayed."""
        if scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value.decode("latin-1") for name, value in scope["headers"]}
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            reason = "Content-Length is not a number"
            await _refusal(400, "malformed_body", reason)(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if size and not _is_json(headers.get(b"content-type", "")):
            reason = "the body must be application/json"
            await _refusal(415, "unsupported_media_type", reason)(scope, receive, send)
            return
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            reason = f"the body is not UTF-8 (invalid byte at position {error.start})"
            await _refusal(400, "malformed_body", reason)(scope, receive, send)
            return
        message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([message], receive), send)

    def _too_large(self) -> JSONResponse:
        reason = f"the body is larger than {self.max_bytes} bytes"
        return _refusal(413, "payload_too_large", reason)


# --8<-- [end:body-limit]


def _replay(messages: list[Message], then: Receive) -> Receive:
    """A ``receive`` that returns ``messages``, then hands over to the server's ``then``."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive
