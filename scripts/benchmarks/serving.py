"""Run a uvicorn server and the load generator as separate processes, and read their numbers.

:func:`uvicorn_server` starts one uvicorn process (one worker, the asyncio loop and the h11
parser that the pinned packages provide) on a free loopback port and waits until it answers;
:func:`peak_rss_mb` reads a process's peak resident memory from ``/proc/<pid>/status``
(``VmHWM``); :func:`load` runs :mod:`benchmarks.loadgen` in its own process and turns what it
prints into a :class:`benchmarks.results.HttpRun`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.results import REPO_ROOT, HttpRun, LatencySummary, LoadParameters
from tests.harness.servers import free_port, wait_until


@dataclass(frozen=True)
class Server:
    """A running server process.

    Attributes:
        port: Its loopback port.
        pid: Its process id (the process that serves, not a supervisor).
    """

    port: int
    pid: int

    def get_json(self, path: str) -> object:
        """One GET, decoded (for the benchmark's own endpoints)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()


def _environment(extra: Mapping[str, str]) -> dict[str, str]:
    paths = [str(REPO_ROOT), str(REPO_ROOT / "scripts"), str(REPO_ROOT / "examples")]
    return {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(paths)}


@contextlib.contextmanager
def _process(
    command: list[str], env: Mapping[str, str], port: int, ready_path: str
) -> Iterator[Server]:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-server-{port}.log"  # noqa: S108 - a local benchmark's log
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=_environment(env), stdout=output, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    server = Server(port=port, pid=process.pid)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{command[2:4]} exited:\n{log.read_text()[-3000:]}")
        try:
            server.get_json(ready_path)
        except (OSError, ValueError):
            return False
        return True

    try:
        wait_until(answers, what=f"server on port {port}", timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@contextlib.contextmanager
def uvicorn_server(factory: str, env: Mapping[str, str]) -> Iterator[Server]:
    """Serve ``factory`` (``module:function``) with one uvicorn worker until the context exits.

    Access logs are off: one log line per request would be measured as well.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with _process(command, env, port, "/bench/floor") as server:
        yield server


@contextlib.contextmanager
def canned_server() -> Iterator[Server]:
    """The load generator's canned-response server (its ceiling), until the context exits."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.loadgen", "serve", "--port", str(port)]
    with _process(command, {}, port, "/") as server:
        yield server


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (``VmHWM``), in MiB.

    Raises:
        RuntimeError: ``/proc/<pid>/status`` has no ``VmHWM`` line (not Linux, or the process
            is gone).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for process {pid}")


def measure(
    server: Server,
    parameters: LoadParameters,
    *,
    path: str,
    method: str = "GET",
    headers: list[str] | None = None,
    body: str = "",
    expect: int = 200,
) -> dict[str, Any]:
    """Run the load generator against ``server`` once; return what it printed (raw latencies).

    Args:
        server: The server to load.
        parameters: Duration, warm-up and concurrency.
        path: The request path; ``{n}`` becomes ``00000`` .. the product count minus one.
        method: The HTTP method.
        headers: Extra request headers (``name: value``).
        body: The request body.
        expect: The status of a successful answer.

    Raises:
        RuntimeError: The load generator failed, or no request completed.
    """
    command = [
        sys.executable, "-m", "benchmarks.loadgen", "run", "--port", str(server.port),
        "--method", method, "--path", path, "--count", str(parameters.products),
        "--expect", str(expect), "--concurrency", str(parameters.concurrency),
        "--warmup", str(parameters.warmup_s), "--duration", str(parameters.duration_s),
        "--body", body,
    ]  # fmt: skip
    for header in headers or []:
        command += ["--header", header]
    result = subprocess.run(
        command,
        env=_environment({}),
        capture_output=True,
        text=True,
        check=False,
        timeout=parameters.warmup_s + parameters.duration_s + 120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(result.stdout)
    if not measured["latencies_s"]:
        raise RuntimeError(f"no request completed against {path}: {measured['statuses']}")
    return measured


def summarise(
    rounds: list[dict[str, Any]], endpoint: str, peak_rss: float | None = None
) -> HttpRun:
    """One :class:`HttpRun` from one or more measured rounds (their samples pooled)."""
    requests = sum(r["requests"] for r in rounds)
    duration = sum(r["duration_s"] for r in rounds)
    return HttpRun(
        endpoint=endpoint.replace("BENCH-{n}", "{sku}"),
        requests=requests,
        errors=sum(r["errors"] for r in rounds),
        duration_s=duration,
        rps=round(requests / duration, 1),
        latency_ms=LatencySummary.from_samples([s for r in rounds for s in r["latencies_s"]]),
        server_peak_rss_mb=peak_rss,
    )


def load(
    server: Server,
    parameters: LoadParameters,
    *,
    path: str,
    method: str = "GET",
    headers: list[str] | None = None,
    body: str = "",
    expect: int = 200,
    measure_rss: bool = True,
) -> HttpRun:
    """:func:`measure` once and :func:`summarise`, with the server's peak RSS after the run."""
    measured = measure(
        server, parameters, path=path, method=method, headers=headers, body=body, expect=expect
    )
    rss = peak_rss_mb(server.pid) if measure_rss else None
    return summarise([measured], f"{method} {path}", rss)
