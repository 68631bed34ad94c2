"""Start real PostgreSQL and Redis servers and a moto server on free loopback ports.

Each server runs in a temporary directory for one test session and is stopped at its end. Tests
get isolation per test from the function-scoped fixtures in ``tests/conftest.py`` (a fresh
database, a flushed Redis, a reset moto), not by restarting servers.

Readiness is always polled against a deadline; nothing here sleeps for a fixed time to wait.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

START_TIMEOUT_S = 30.0


class HarnessError(RuntimeError):
    """A server could not be found or started; the message says what to install or check."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass.

    Raises:
        HarnessError: The deadline passed; the message names what was awaited.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(delay)  # back-off between polls, not a synchronisation sleep
        delay = min(delay * 2, 0.2)
    raise HarnessError(f"{what} was not ready within {timeout:.0f} s")


def postgres_bindir() -> Path:
    """Find the PostgreSQL server binaries (initdb, pg_ctl, postgres).

    Looks on PATH first, then where Debian and Ubuntu install them (``/usr/lib/postgresql/N/bin``,
    newest first), then Homebrew's prefix.
    """
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += sorted(Path("/opt/homebrew/opt").glob("postgresql@*/bin"), reverse=True)
    candidates += sorted(Path("/usr/local/opt").glob("postgresql@*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "pg_ctl").exists() and (candidate / "initdb").exists():
            return candidate
    raise HarnessError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/bootstrap.sh test"
    )


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: pick the account to run it as, or None if not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise HarnessError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL server.

    Attributes:
        host: 127.0.0.1 for a server the harness started.
        port: The TCP port it listens on.
        user: A user allowed to create databases (the superuser, trusted on loopback, for a
            server the harness started).
        version: The server's ``server_version``.
        password: The user's password, where the server needs one (from ``DATABASE_URL``).
    """

    host: str
    port: int
    user: str
    version: str
    password: str | None = None

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string for one database."""
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"postgresql://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{database}"
        )


def postgres_from_url(url: str) -> PostgresServer:
    """Describe an existing server from a ``DATABASE_URL`` (its user must create databases).

    Raises:
        HarnessError: The URL is not a ``postgresql://`` URL.
    """
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in {"postgresql", "postgres"}:
        raise HarnessError(f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme}://")
    return PostgresServer(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        version="",
        password=unquote(parts.password) if parts.password else None,
    )


@contextlib.contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """Initialise a cluster in a new temporary directory and run it until the context exits.

    The directory is made here rather than taken from pytest: when the suite runs as root the
    server runs as an unprivileged account, which must be able to reach its directory (pytest's
    own temporary root is private to root).
    """
    with (
        tempfile.TemporaryDirectory(prefix="harness-postgres-") as name,
        _postgres_in(Path(name)) as server,
    ):
        yield server


@contextlib.contextmanager
def _postgres_in(workdir: Path) -> Iterator[PostgresServer]:
    import psycopg

    bindir = postgres_bindir()
    run_as = _unprivileged_user()
    data = workdir / "pgdata"
    sockets = workdir / "pgsocket"
    sockets.mkdir(parents=True)
    if run_as:
        account = pwd.getpwnam(run_as)
        for path in (workdir, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    prefix = ["runuser", "-u", run_as, "--"] if run_as else []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=False, cwd=workdir
        )
        if result.returncode != 0:
            log = workdir / "pg.log"
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise HarnessError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}{tail}")
        return result

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
        "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
    port = free_port()
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(workdir / "pg.log"),
        "-w", "-t", str(int(START_TIMEOUT_S)), "start")  # fmt: skip
    try:
        server = PostgresServer(host="127.0.0.1", port=port, user="postgres", version="")
        with psycopg.connect(server.dsn(), connect_timeout=5) as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]
        yield PostgresServer(host=server.host, port=port, user=server.user, version=version)
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")


@dataclass(frozen=True)
class RedisServer:
    """A running throwaway redis-server.

    Attributes:
        host: Always 127.0.0.1.
        port: The TCP port it listens on.
    """

    host: str
    port: int

    @property
    def url(self) -> str:
        """A ``redis://`` URL for database 0."""
        return f"redis://{self.host}:{self.port}/0"


def redis_from_url(url: str) -> RedisServer:
    """Describe an existing server from a ``REDIS_URL`` (tests flush it: never point it at data).

    Raises:
        HarnessError: The URL is not a ``redis://`` URL.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise HarnessError(f"REDIS_URL must be a redis:// URL, not {parts.scheme}://")
    return RedisServer(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)


class RedisProcess:
    """A redis-server with no persistence that a test can stop and start again on the same port.

    A restart is what an ElastiCache node replacement looks like to a client: the same address,
    connections dropped, every key gone (``--save ""`` and ``--appendonly no``).

    Args:
        workdir: The server's directory (its log file lives there).
        port: The port to listen on; a free one when None.

    Attributes:
        server: The address clients use (the same across restarts).
        restarts: How many times :meth:`restart` stopped and started it.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise HarnessError("redis-server not found; run scripts/bootstrap.sh test")
        self._binary = binary
        self._workdir = workdir
        self.server = RedisServer(host="127.0.0.1", port=port or free_port())
        self._process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        Raises:
            HarnessError: It exited or did not answer within ``START_TIMEOUT_S``.
        """
        import redis

        port = self.server.port
        log = self._workdir / "redis.log"
        self._process = process = subprocess.Popen(
            [self._binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._workdir), "--logfile", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)

        def ready() -> bool:
            if process.poll() is not None:
                raise HarnessError(
                    f"redis-server exited with {process.returncode}:\n"
                    + log.read_text(errors="replace")
                )
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(ready, what=f"redis-server on port {port}")
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 10 s) and wait until the process is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop the server and start a new, empty one on the same port."""
        self.stop()
        self.start()
        self.restarts += 1


@contextlib.contextmanager
def run_restartable_redis(workdir: Path) -> Iterator[RedisProcess]:
    """Run a :class:`RedisProcess` until the context exits (for tests that restart Redis)."""
    process = RedisProcess(workdir)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def run_redis(workdir: Path) -> Iterator[RedisServer]:
    """Run redis-server with no persistence in ``workdir`` until the context exits."""
    with run_restartable_redis(workdir) as process:
        yield process.server


@contextlib.contextmanager
def run_moto() -> Iterator[str]:
    """Run moto in server mode on a free loopback port; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
