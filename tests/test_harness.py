"""The harness starts real servers and isolates tests from each other."""

from __future__ import annotations

from pathlib import Path

import boto3
import psycopg
import pytest
import redis

from tests.harness import servers


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_an_empty_postgres_database(postgres_dsn: str, attempt: int) -> None:
    with psycopg.connect(postgres_dsn) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        assert tables == 0, f"attempt {attempt} found tables left by another test"
        connection.execute("CREATE TABLE leftover (id int PRIMARY KEY)")


def test_postgres_is_a_real_server_that_enforces_constraints(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as connection:
        server_version = connection.execute("SHOW server_version_num").fetchone()[0]
        connection.execute("CREATE TABLE stock (sku text PRIMARY KEY, qty int CHECK (qty >= 0))")
        connection.execute("INSERT INTO stock VALUES ('sku-1', 1)")
        connection.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            connection.execute("UPDATE stock SET qty = qty - 2 WHERE sku = 'sku-1'")
        connection.rollback()
        assert connection.execute("SELECT qty FROM stock").fetchone()[0] == 1
    assert int(server_version) >= 140000


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_starts_with_an_empty_redis(redis_url: str, attempt: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0, f"attempt {attempt} found keys left by another test"
        client.set("leftover", "x")


def test_redis_is_a_real_server_that_expires_keys(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.info("server")["redis_version"]
        client.set("short-lived", "x", px=1)
        client.set("long-lived", "x", ex=60)
        assert 0 < client.pttl("long-lived") <= 60_000
        servers.wait_until(lambda: client.exists("short-lived") == 0, what="key expiry", timeout=5)
        assert client.exists("long-lived") == 1


@pytest.mark.parametrize("attempt", [1, 2])
def test_moto_state_is_reset_between_tests(aws_environment: str, attempt: int) -> None:
    sqs = boto3.client("sqs")
    assert sqs.list_queues().get("QueueUrls", []) == [], f"attempt {attempt} saw old queues"
    sqs.create_queue(QueueName="leftover")


def test_boto3_talks_http_to_the_moto_server(aws_environment: str) -> None:
    sqs = boto3.client("sqs")
    assert sqs.meta.endpoint_url == aws_environment
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in messages] == ["hello"]


def test_a_database_url_describes_an_existing_server(
    postgres_server: servers.PostgresServer,
) -> None:
    # What the fixture does with DATABASE_URL, pointed at the session's own server.
    url = postgres_server.dsn().replace("postgresql://", "postgresql+psycopg://")
    described = servers.postgres_from_url(url)
    with psycopg.connect(described.dsn("postgres")) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    with_password = servers.postgres_from_url("postgresql://app:p%40ss@db.internal:6432/x")
    assert with_password.dsn("t") == "postgresql://app:p%40ss@db.internal:6432/t"
    with pytest.raises(servers.HarnessError, match="postgresql://"):
        servers.postgres_from_url("mysql://db/x")


def test_a_redis_url_describes_an_existing_server(redis_server: servers.RedisServer) -> None:
    described = servers.redis_from_url(redis_server.url)
    with redis.Redis.from_url(described.url) as client:
        assert client.ping()
    with pytest.raises(servers.HarnessError, match="redis://"):
        servers.redis_from_url("memcached://cache:11211")


def test_a_restarted_redis_is_back_on_the_same_port_empty_and_clients_reconnect(
    tmp_path: Path,
) -> None:
    with servers.run_restartable_redis(tmp_path) as process:
        port = process.server.port
        client = redis.Redis.from_url(process.server.url, socket_connect_timeout=1)
        client.set("before-the-restart", "x")
        process.restart()
        assert (process.server.port, process.restarts, process.running) == (port, 1, True)
        assert client.exists("before-the-restart") == 0  # no persistence: a new, empty server
        client.set("after-the-restart", "x")  # the same client, reconnected
        assert client.get("after-the-restart") == b"x"
        process.stop()
        assert not process.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        process.start()
        assert client.ping()
        client.close()
    assert not process.running
