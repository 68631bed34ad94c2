"""A small HTTP/1.1 load generator, run as its own process, plus a canned server to calibrate it.

    python -m benchmarks.loadgen run --port 8000 --path /catalog/products/P-{n} --count 100
    python -m benchmarks.loadgen serve --port 8001

``run`` opens ``--concurrency`` keep-alive connections on loopback; each sends one request, reads
the whole answer and sends the next (a closed loop, so the request rate is what the server
sustains). Requests during the first ``--warmup`` seconds are not measured; then every request
that starts and finishes inside the ``--duration`` window counts. It prints one JSON object:
completed requests, errors (a failed connection or an unexpected status, warm-up included),
the window's length and every latency in seconds, for :mod:`benchmarks.results` to summarise.

It speaks HTTP over raw asyncio streams rather than with httpx: an httpx client costs more CPU
per request than the server under test, so it would measure itself. ``serve`` answers every
request with the same few bytes and does nothing else; the load generator's rate against it is
its own ceiling on this machine, reported next to the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CANNED = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


@dataclass
class Tally:
    """What the connections observed.

    Attributes:
        latencies_s: Latency of every measured request.
        errors: Failed requests (warm-up included).
        statuses: Count per status code seen.
    """

    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def build_request(
    method: str, host: str, port: int, path: str, headers: list[str], body: bytes
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}", "accept: application/json"]
    lines += headers
    if body:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one whole answer; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        raise ValueError("answer without content-length (chunked answers are not supported)")
    if int(length[1]):
        await reader.readexactly(int(length[1]))
    return status


# --8<-- [start:closed-loop]
async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    expect: int,
    window: tuple[float, float],
    tally: Tally,
) -> None:
    start, end = window
    index = offset
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (began := time.perf_counter()) < end:
            writer.write(requests[index % len(requests)])
            index += 1
            try:
                status = await _read_answer(reader)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                tally.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            finished = time.perf_counter()
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if status != expect:
                tally.errors += 1
            elif began >= start and finished <= end:
                tally.latencies_s.append(finished - began)
    finally:
        writer.close()


# --8<-- [end:closed-loop]


async def generate(
    *,
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    expect: int = 200,
) -> Tally:
    """Load the server from ``concurrency`` connections; measure after the warm-up."""
    tally = Tally()
    start = time.perf_counter() + warmup_s
    window = (start, start + duration_s)
    await asyncio.gather(
        *(
            _connection(host, port, requests, n * 7919, expect, window, tally)
            for n in range(concurrency)
        )
    )
    return tally


async def serve(host: str, port: int) -> None:
    """Answer every request with the same canned JSON, until killed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(head)
                if length and int(length[1]):
                    await reader.readexactly(int(length[1]))
                writer.write(_CANNED)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the generator or the canned server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="load a server and print the measurements as JSON")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--method", default="GET")
    run.add_argument("--path", required=True, help="'{n}' is replaced by 0 .. count-1")
    run.add_argument("--count", type=int, default=1, help="distinct paths, requested in turn")
    run.add_argument("--header", action="append", default=[], help="'name: value'")
    run.add_argument("--body", default="", help="request body (JSON)")
    run.add_argument("--expect", type=int, default=200, help="the status that counts as success")
    run.add_argument("--concurrency", type=int, default=16)
    run.add_argument("--warmup", type=float, default=2.0)
    run.add_argument("--duration", type=float, default=10.0)
    canned = commands.add_parser("serve", help="a canned-response server to calibrate against")
    canned.add_argument("--host", default="127.0.0.1")
    canned.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(serve(args.host, args.port))
        return
    requests = [
        build_request(
            args.method,
            args.host,
            args.port,
            args.path.replace("{n}", f"{n:05d}"),
            args.header,
            args.body.encode(),
        )
        for n in range(args.count)
    ]
    tally = asyncio.run(
        generate(
            host=args.host,
            port=args.port,
            requests=requests,
            concurrency=args.concurrency,
            warmup_s=args.warmup,
            duration_s=args.duration,
            expect=args.expect,
        )
    )
    json.dump(
        {
            "requests": len(tally.latencies_s),
            "errors": tally.errors,
            "duration_s": args.duration,
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "latencies_s": tally.latencies_s,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
