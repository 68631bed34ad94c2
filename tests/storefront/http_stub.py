"""A tiny HTTP server on a free loopback port that answers with canned responses and counts hits.

It stands in for third parties the storefront calls over HTTP: a Cognito JWKS endpoint (so tests
can sign tokens with a key of their own and rotate it) or an OpenTelemetry Collector's OTLP/HTTP
receiver.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Response:
    """What the stub answers on one path."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class StubServer:
    """A running stub: set ``responses[path]``; read ``hits[path]`` and ``bodies[path]``.

    Paths without a response answer 404.
    """

    url: str
    responses: dict[str, Response] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def run_stub() -> Iterator[StubServer]:
    """Serve until the context exits."""
    stub: StubServer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            with stub.lock:
                stub.hits[path] += 1
                stub.bodies.setdefault(path, []).append(body)
                response = stub.responses.get(path, Response(404, b'{"error":"not found"}'))
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = _answer  # noqa: N815 - the names http.server dispatches to
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub = StubServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="http-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
