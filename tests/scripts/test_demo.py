"""The onboarding demo (``scripts/demo.py``) walks each scenario, stays up, and cleans up.

Each run is the demo as a subprocess, as an engineer runs it, with its own moto server and
throwaway PostgreSQL and Redis. Five runs start together (they share nothing but the CPU):
scenarios 1 to 4 with ``--no-wait``, and scenario 5 without it, which also proves the printed
``curl`` examples and Ctrl-C. The tests call ``scripts/demo.py`` directly rather than
``scripts/demo.sh``, which sets the machine up first; one test checks that ``demo.sh`` passes its
arguments through.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness.servers import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "scripts" / "demo.py"
RUN_TIMEOUT_S = 240  # a whole walk, start-up and teardown included, on a loaded machine
READY_LINE = "Press Ctrl-C to stop everything and clean up."
TRACE_ID = re.compile(r"trace id ([0-9a-f]{32}): (\d+) hops across (\d+) services")
TEMP_DIR = re.compile(r"(/\S*?(?:storefront-demo|harness-postgres)-[^/\s)]+)")


def demo_command(*arguments: str) -> list[str]:
    return [sys.executable, "-u", str(DEMO), *arguments]


def demo_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def stop(process: subprocess.Popen[str]) -> None:
    """End a demo still running after a failure: SIGTERM first, so that it tears down.

    SIGKILL only as the last resort: it would leave the demo's PostgreSQL running (``pg_ctl``
    detaches the server from the demo's process group).
    """
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass(frozen=True)
class Run:
    """A finished demo run."""

    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Started:
    """A ``--no-wait`` run in progress."""

    def __init__(self, scenario: int) -> None:
        self.process = subprocess.Popen(
            demo_command("--scenario", str(scenario), "--no-wait"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=demo_environment(),
            start_new_session=True,
        )
        self._run: Run | None = None

    def result(self) -> Run:
        if self._run is None:
            try:
                stdout, stderr = self.process.communicate(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                stop(self.process)
                stdout, stderr = self.process.communicate()
                pytest.fail(f"the demo did not finish within {RUN_TIMEOUT_S} s:\n{stdout}{stderr}")
            self._run = Run(self.process.returncode, stdout, stderr)
        return self._run

    def stop(self) -> None:
        stop(self.process)
        self.process.communicate()


@pytest.fixture(scope="module")
def waiting_demo() -> Iterator[subprocess.Popen[str]]:
    """Scenario 5 without ``--no-wait`` (its walk is checked too), started with the others."""
    process = subprocess.Popen(
        demo_command("--scenario", "5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
        env=demo_environment(),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    yield process
    stop(process)
    assert process.stdout is not None
    process.stdout.close()


@pytest.fixture(scope="module")
def walks(waiting_demo: subprocess.Popen[str]) -> Iterator[dict[int, Started]]:
    """Scenarios 1 to 4 walked with ``--no-wait``, started at once with the waiting run."""
    started = {scenario: Started(scenario) for scenario in (1, 2, 3, 4)}
    yield started
    for run in started.values():
        run.stop()


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def printed_ports(output: str) -> set[int]:
    return {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", output)}


def printed_temp_dirs(output: str) -> set[Path]:
    return {Path(name) for name in TEMP_DIR.findall(output)}


def assert_cleaned_up(output: str) -> None:
    ports = printed_ports(output)
    assert len(ports) >= 6, ports  # moto, PostgreSQL, Redis and the three services
    assert [port for port in ports if listening(port)] == []
    directories = printed_temp_dirs(output)
    assert {d.name.split("-")[0] for d in directories} >= {"storefront", "harness"}, directories
    assert [d for d in directories if d.exists()] == []


def steps(output: str) -> list[int]:
    return [int(number) for number in re.findall(r"^(\d+)\. ", output, re.MULTILINE)]


def test_scenario_1_narrates_every_step_and_one_trace_through_every_service(
    walks: dict[int, Started],
) -> None:
    run = walks[1].result()
    assert run.returncode == 0, run.explain()
    out = run.stdout
    assert steps(out) == list(range(1, 11)), run.explain()
    (trace_id, hop_count, service_count) = TRACE_ID.search(out).groups()  # type: ignore[union-attr]
    hop_lines = [line for line in out.splitlines() if line.strip().startswith("hop ")]
    assert len(hop_lines) == int(hop_count) >= 5
    services = {
        service
        for line in hop_lines
        for service in (
            "orders service",
            "fulfillment worker",
            "notifications worker",
            "analytics worker",
        )
        if service in line
    }
    assert len(services) == 4, hop_lines
    assert int(service_count) >= 4
    # The same id at the browser's request, in the SNS message's traceparent and on the hops.
    assert f"trace id {trace_id}\n" in out
    assert f"the notification's traceparent carries trace id {trace_id}" in out
    assert re.search(r"POST -> 201 in \d+ ms: order [0-9a-f-]{36} pending, total 2500", out)
    assert re.search(r"-> confirmed \(\d+ ms\); stock of MUG-1 now 3", out)
    assert "placed=1 fulfilled=1 rejected=0" in out
    assert re.search(r"^Order [0-9a-f-]{36} fulfilled", out, re.MULTILINE)
    assert_cleaned_up(out)


def test_scenario_2_caches_rate_limits_and_loses_no_order_of_a_burst(
    walks: dict[int, Started],
) -> None:
    run = walks[2].result()
    assert run.returncode == 0, run.explain()
    out = run.stdout
    assert steps(out) == [1, 3, 4, 5, 6, 8]  # 2 and 7 are configuration, not emulated
    assert "catalog cache over all 51 reads: misses=1 hits=50" in out
    assert "Cache-Control: public, max-age=60, s-maxage=300" in out
    assert re.search(r"10 x 201, 2 x 429 Retry-After: \d+ s", out), out
    assert "fulfillment queue: 30 messages waiting" in out
    assert re.search(r"30 of 30 orders confirmed in \d+ ms; fulfillment queue empty; DLQ 0", out)
    assert "(30 units reserved, one per order)" in out
    assert "None lost: 30 orders accepted, 30 fulfilled." in out
    assert_cleaned_up(out)


def test_scenario_3_serves_the_catalog_without_redis_and_parks_a_poison_event(
    walks: dict[int, Started],
) -> None:
    run = walks[3].result()
    assert run.returncode == 0, run.explain()
    out = run.stdout
    assert steps(out) == [1, 4]
    assert "accepting connections: False" in out
    assert re.search(r"3 x GET in \d+ ms -> \[200, 200, 200\]", out)
    assert "all from PostgreSQL (misses +3)" in out
    assert re.search(r"receives \(\d+ ms\) it is in storefront-fulfillment-dlq: 1 message", out)
    assert re.search(r"order [0-9a-f-]{36} is still pending: nothing was applied", out)
    assert "-> confirmed: the queue keeps flowing" in out
    assert_cleaned_up(out)


def test_scenario_4_rebuilds_the_lost_store_from_the_archive_with_the_same_totals(
    walks: dict[int, Started],
) -> None:
    run = walks[4].result()
    assert run.returncode == 0, run.explain()
    out = run.stdout
    assert steps(out) == list(range(1, 8))
    totals = "placed=3 fulfilled=2 rejected=1; revenue: MUG-1 6250; orders per minute: 3"
    assert out.count(f"dashboard: {totals}") == 2  # before the loss and after the rebuild
    assert "dropped; dashboard: placed=0 fulfilled=0 rejected=0; revenue: none" in out
    assert "forgot 6 idempotency records of the analytics consumer" in out
    assert re.search(r"replay analytics-rebuild-\S+: COMPLETED", out)
    assert "event store: 6 events again" in out
    assert "nothing twice: stock 0 -> 0, outbox rows 6 -> 6, 0 new notifications" in out
    assert "6 published outbox rows read: 0 appended, 6 already stored" in out
    assert_cleaned_up(out)


# --- Staying up, and Ctrl-C ------------------------------------------------------------------


class Output:
    """The lines a running process prints, collected by a thread."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def line_starting(self, prefix: str) -> str:
        return next(line.strip() for line in self.lines if line.strip().startswith(prefix))

    def join(self) -> None:
        self._thread.join(timeout=30)


def request_from_curl(command: str, variables: dict[str, str]) -> httpx.Request:
    """The request a printed ``curl`` command line makes (shell variables expanded)."""
    words = shlex.split(re.sub(r"\$(\w+)", lambda m: variables[m[1]], command))
    assert words[0] == "curl", command
    method, headers, body, url = "GET", {}, None, None
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest).encode()
            method = "POST" if method == "GET" else method
        elif not word.startswith("-"):
            url = word
    assert url, command
    return httpx.Request(method, url, headers=headers, content=body)


def test_the_demo_stays_up_with_working_curl_examples_until_ctrl_c_cleans_everything_up(
    waiting_demo: subprocess.Popen[str],
) -> None:
    process = waiting_demo
    output = Output(process.stdout)
    try:
        wait_until(
            lambda: READY_LINE in output.lines or process.poll() is not None,
            what="the demo's Ctrl-C prompt",
            timeout=RUN_TIMEOUT_S,
        )
        assert READY_LINE in output.lines, output.text()
        with httpx.Client(timeout=15) as client:
            # The printed InitiateAuth call gives a token, and the printed calls work with it.
            answer = client.send(request_from_curl(output.line_starting("curl -s -X POST"), {}))
            assert answer.status_code == 200, answer.text
            token = answer.json()["AuthenticationResult"]["AccessToken"]
            printed = output.line_starting("export STAFF_TOKEN=").split("=", 1)[1]
            variables = {"TOKEN": token, "STAFF_TOKEN": printed}
            product = client.send(
                request_from_curl(output.line_starting("curl -i http://"), variables)
            )
            assert (product.status_code, product.json()["sku"]) == (200, "MUG-1")
            placed = client.send(
                request_from_curl(output.line_starting("curl -i -X POST"), variables)
            )
            assert placed.status_code == 201, placed.text
            assert placed.json()["status"] == "pending"
            staff_line = next(
                line.strip()
                for line in output.lines
                if line.strip().startswith("curl") and "/staff/orders" in line
            )
            pending = client.send(request_from_curl(staff_line, variables))
            assert pending.status_code == 200, pending.text
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {RUN_TIMEOUT_S} s of SIGINT:\n{output.text()}")
        assert process.returncode == 0, output.text()
    finally:
        stop(process)
        output.join()
    text = output.text()
    assert_scenario_5_walked(text)
    assert "SIGINT received." in text
    assert text.rstrip().endswith("temporary directories removed; done.")
    assert_cleaned_up(text)


def assert_scenario_5_walked(out: str) -> None:
    """Scenario 5's key lines: each attack refused with the right status and reason."""
    assert steps(out) == [5, 6, 7]
    assert re.search(r"without a token -> \[(401, ){10}429\]", out), out
    assert "no token -> 401 'missing bearer token'" in out
    assert "(groups changed to staff) -> 401 'signature does not verify'" in out
    assert out.count("-> 403 'requires role: staff'") == 3
    assert "zero quantity -> 422 'body.lines.0.quantity: Input should be greater" in out
    assert "a price sent by the client -> 422 'body.lines.0.unit_price_minor: Extra inputs" in out
    assert "an unknown product -> 400" in out
    assert "orders written: 0." in out


# --- Arguments -------------------------------------------------------------------------------


def test_an_unknown_scenario_is_refused_with_the_choices_and_status_2() -> None:
    result = subprocess.run(
        demo_command("--scenario", "9"),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "argument --scenario: invalid choice: 9 (choose from 1, 2, 3, 4, 5)" in result.stderr
    assert "Starting the platform" not in result.stdout  # refused before anything started


def test_demo_sh_passes_its_arguments_to_the_demo() -> None:
    process = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "demo.sh"), "--scenario", "9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)  # the set-up (bootstrap.sh) included
    except subprocess.TimeoutExpired:
        stop(process)  # it ignored the argument and started the demo
        stdout, stderr = process.communicate()
    assert process.returncode == 2, stdout + stderr
    assert "invalid choice: 9" in stderr
    assert "usage: scripts/demo.sh [-h] [--scenario N] [--no-wait]" in stderr
