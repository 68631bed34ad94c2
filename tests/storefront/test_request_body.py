"""The body limit: 413 over 8 KiB (declared or streamed), 415 for non-JSON, 400 for non-UTF-8."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from starlette.types import Message
from storefront.request_body import MAX_BODY_BYTES, RequestBodyMiddleware

from tests.harness.servers import free_port, wait_until


def echo_app(seen: list[bytes]) -> FastAPI:
    """An app that records and echoes the size of every body it receives."""
    app = FastAPI()

    @app.api_route("/echo", methods=["GET", "POST", "PUT"])
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(body)
        return {"size": len(body)}

    app.add_middleware(RequestBodyMiddleware)
    return app


def send(app: Any, method: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, "/echo", **kwargs)

    return anyio.run(go)


async def pieces(content: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


JSON = {"content-type": "application/json"}


def test_the_limit_is_8_kib_and_a_body_of_exactly_that_size_passes_intact() -> None:
    seen: list[bytes] = []
    body = b'"' + b"a" * (MAX_BODY_BYTES - 2) + b'"'
    answer = send(echo_app(seen), "POST", content=body, headers=JSON)
    assert MAX_BODY_BYTES == 8192
    assert (answer.status_code, answer.json()) == (200, {"size": MAX_BODY_BYTES})
    assert seen == [body]


def test_a_declared_length_over_the_limit_gets_413_and_the_app_never_runs() -> None:
    seen: list[bytes] = []
    answer = send(echo_app(seen), "POST", content=b" " * (MAX_BODY_BYTES + 1), headers=JSON)
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": {"error": "payload_too_large", "reason": "the body is larger than 8192 bytes"}
    }
    assert seen == []


def test_a_streamed_body_is_cut_off_at_the_limit_and_a_smaller_one_is_reassembled() -> None:
    seen: list[bytes] = []
    app = echo_app(seen)
    big = send(app, "POST", content=pieces(b" " * (MAX_BODY_BYTES * 3)), headers=JSON)
    small = send(app, "POST", content=pieces(b"[" + b"1," * 2000 + b"1]"), headers=JSON)
    assert big.status_code == 413
    assert small.status_code == 200
    assert seen == [b"[" + b"1," * 2000 + b"1]"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/merge-patch+json", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("", 415),
    ],
)
def test_only_json_bodies_pass(content_type: str, status: int) -> None:
    answer = send(echo_app([]), "PUT", content=b"{}", headers={"content-type": content_type})
    assert answer.status_code == status
    if status == 415:
        assert answer.json()["detail"]["reason"] == "the body must be application/json"


def test_a_body_that_is_not_utf8_gets_400_with_the_position() -> None:
    answer = send(echo_app([]), "POST", content=b'{"a": "\xff"}', headers=JSON)
    assert answer.status_code == 400
    assert answer.json()["detail"] == {
        "error": "malformed_body",
        "reason": "the body is not UTF-8 (invalid byte at position 7)",
    }


def test_requests_without_a_body_and_get_requests_are_not_inspected() -> None:
    seen: list[bytes] = []
    app = echo_app(seen)
    assert send(app, "POST").status_code == 200  # no body, no content type: nothing to refuse
    # GET is not inspected: the app receives the body as sent (FastAPI routes never read it).
    assert send(app, "GET", content=b"x" * (MAX_BODY_BYTES + 1)).status_code == 200
    assert seen == [b"", b"x" * (MAX_BODY_BYTES + 1)]


def run_raw(
    headers: list[tuple[bytes, bytes]], messages: list[Message], *, receives: int = 1
) -> list[Message]:
    """Call the middleware on a raw ASGI scope; return what the app received, then what it sent."""
    received: list[Message] = []
    sent: list[Message] = []

    async def app(_scope: Any, receive: Any, send: Any) -> None:
        for _ in range(receives):
            received.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def go() -> None:
        pending = list(messages)

        async def receive() -> Message:
            return pending.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
        await RequestBodyMiddleware(app)(scope, receive, send)

    anyio.run(go)
    return [*received, *sent]


def test_a_content_length_that_is_not_a_number_gets_400() -> None:
    (start, _body) = run_raw([(b"content-length", b"12abc")], [])
    assert start["status"] == 400


def test_a_client_that_disconnects_before_its_body_is_passed_on_to_the_app() -> None:
    (received, start, _body) = run_raw([], [{"type": "http.disconnect"}])
    assert received == {"type": "http.disconnect"}
    assert start["status"] == 204


def test_after_the_replayed_body_the_app_hears_the_servers_own_messages() -> None:
    body = {"type": "http.request", "body": b"{}", "more_body": False}
    json_type = [(b"content-type", b"application/json")]
    (replayed, after, start, _body) = run_raw(
        json_type, [body, {"type": "http.disconnect"}], receives=2
    )
    assert replayed == body
    assert after == {"type": "http.disconnect"}
    assert start["status"] == 204


def test_lifespan_events_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Any, _receive: Any, _send: Any) -> None:
        calls.append(scope["type"])

    async def nothing() -> Message:
        return {}

    async def ignore(_message: Message) -> None:
        return None

    anyio.run(RequestBodyMiddleware(app), {"type": "lifespan"}, nothing, ignore)
    assert calls == ["lifespan"]


@pytest.fixture
def served() -> Iterator[str]:
    """The echo app behind uvicorn: a real HTTP server sends the chunked body."""
    server = uvicorn.Server(
        uvicorn.Config(echo_app([]), host="127.0.0.1", port=free_port(), log_config=None)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_over_real_http_a_chunked_body_over_the_limit_gets_413(served: str) -> None:
    def chunked() -> Iterator[bytes]:
        yield from (b" " * 1024 for _ in range(64))  # 64 KiB, no Content-Length

    big = httpx.post(f"{served}/echo", content=chunked(), headers=JSON, timeout=10)
    small = httpx.post(f"{served}/echo", content=b'{"a": 1}', headers=JSON, timeout=10)
    assert big.status_code == 413
    assert (small.status_code, small.json()) == (200, {"size": 8})
