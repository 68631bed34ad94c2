"""Fixtures shared by the whole suite: real servers, isolated per test, and the built site."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis
import urllib3

from tests.harness import servers

if TYPE_CHECKING:
    from tests.infrastructure.synthesis import Synthesized

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root directory."""
    return REPO_ROOT


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    """One real PostgreSQL server for the session: ``DATABASE_URL``'s, else a new one."""
    if os.environ.get("DATABASE_URL"):
        yield servers.postgres_from_url(os.environ["DATABASE_URL"])
        return
    with servers.run_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: servers.PostgresServer) -> Iterator[str]:
    """A connection string to a fresh, empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.dsn(name)
    finally:
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.RedisServer]:
    """One real redis-server for the session: ``REDIS_URL``'s, or a new one on a free port."""
    if os.environ.get("REDIS_URL"):
        yield servers.redis_from_url(os.environ["REDIS_URL"])
        return
    with servers.run_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: servers.RedisServer) -> Iterator[str]:
    """The server's URL; every key is deleted after the test."""
    yield redis_server.url
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()


# --- moto (AWS APIs over real HTTP) ---------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the session; the code under test talks HTTP to it."""
    with servers.run_moto() as endpoint:
        yield endpoint


@pytest.fixture
def aws_environment(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point boto3 at the moto server with fake credentials; reset moto's state afterwards.

    The code under test reads only the standard variables (``AWS_ENDPOINT_URL`` and friends), so
    the same code runs against moto, LocalStack or AWS.
    """
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    yield moto_endpoint
    urllib3.request("POST", f"{moto_endpoint}/moto-api/reset", timeout=10)


# --- The CDK app, synthesized once per session ----------------------------------------------


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The production CDK app, as the technology pages describe it (synthesized offline)."""
    # Imported here: loading the CDK starts a Node.js process, which only these tests need.
    from tests.infrastructure.synthesis import synthesize_prod

    return synthesize_prod(tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The dev CDK app with every opt-in switched on."""
    from tests.infrastructure.synthesis import synthesize_variant

    return synthesize_variant(tmp_path_factory.mktemp("cdk-variant"))


# --- The built site -------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltSite:
    """The result of one ``mkdocs build --strict``.

    Attributes:
        directory: Where the site was written.
        returncode: mkdocs' exit status.
        output: What mkdocs printed (stdout and stderr).
        without_network: True when the build ran in a network namespace with no network.
    """

    directory: Path
    returncode: int
    output: str
    without_network: bool


def network_isolation_prefix() -> list[str]:
    """The command prefix that runs a command with no network, or [] where that is impossible.

    ``unshare --net`` gives the command a network namespace holding only a loopback interface that
    is down; ``--map-root-user`` lets an unprivileged user create it.
    """
    if not sys.platform.startswith("linux"):
        return []
    probe = subprocess.run(
        ["unshare", "--net", "--map-root-user", "true"], capture_output=True, check=False
    )
    return ["unshare", "--net", "--map-root-user"] if probe.returncode == 0 else []


def build_site(config: Path, site_dir: Path) -> BuiltSite:
    """Run ``mkdocs build --strict`` for a config file, offline where the OS allows it."""
    prefix = network_isolation_prefix()
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run(
        [
            *prefix,
            str(mkdocs),
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        cwd=config.parent,
    )
    return BuiltSite(
        directory=site_dir,
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        without_network=bool(prefix),
    )


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The repository's site, built once per session with ``mkdocs build --strict``."""
    return build_site(REPO_ROOT / "mkdocs.yml", tmp_path_factory.mktemp("site"))


@pytest.fixture
def site_copy(tmp_path: Path) -> Path:
    """A copy of everything the build reads, to break on purpose."""
    for name in ("docs", "scripts", "diagrams", "examples", "tests"):
        shutil.copytree(
            REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser suite last.

    Playwright's sync API keeps an asyncio event loop running in the main thread until its session
    fixture ends, so ``anyio.run`` (used by the FastAPI tests) would fail in any test after it.
    """
    items.sort(key=lambda item: item.nodeid.startswith("tests/browser/"))
