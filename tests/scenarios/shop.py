"""The whole storefront on the test harness: moto (over HTTP), PostgreSQL, Redis, mongomock.

The ``storefront`` fixture bootstraps the AWS resources on moto with the real bootstrap (bucket
``Deny`` statements off: moto applies them unconditionally), migrates a fresh database, builds
every service from :mod:`storefront.services`, and keeps the spans in memory
(:func:`storefront.telemetry.configure` without an OTLP endpoint). Nothing here is a mock of the
services: the apps are called through ASGI as uvicorn would call them, and the workers poll the
real (moto) queues.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from storefront import aws, telemetry
from storefront import bootstrap as b
from storefront.cache import CatalogCache, make_redis
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.documents import EventStore, connect
from storefront.events.relay import OutboxRelay
from storefront.messaging.consumer import Consumer, ConsumerOptions
from storefront.messaging.notifications import NotificationPublisher
from storefront.ratelimit import RateLimiter
from storefront.services import analytics, catalog, fulfillment, notifications, orders
from storefront.settings import get_settings

from tests.harness.servers import wait_until

ORDER_LIMIT = 10  # orders per client per minute
PASSWORD = "Str0ng-Passw0rd!"  # noqa: S105 - a test user's password on moto
# The workers poll without waiting: moto delivers during PutEvents and Publish, so an empty
# receive means the queue is empty now. A failed message is retried at once.
WORKER_OPTIONS = ConsumerOptions(wait_time_s=0, retry_delay_s=lambda _count: 0)


@dataclass
class Storefront:
    """The running platform and the handles a scenario needs."""

    record: b.BootstrapRecord
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Any
    store: EventStore
    spans: InMemorySpanExporter
    apps: dict[str, FastAPI]
    relay: OutboxRelay
    workers: dict[str, Consumer]
    client_id: str
    processed: dict[str, int] = field(default_factory=dict)

    def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        peer: str = "127.0.0.1",
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP request to a service's ASGI app, from the address ``peer``."""
        headers = dict(headers or {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.apps[service], client=(peer, 50_000))
            async with httpx.AsyncClient(transport=transport, base_url="http://storefront") as c:
                return await c.request(method, path, headers=headers, **kwargs)

        return anyio.run(go)

    def sign_in(self, email: str) -> str:
        """The user's access token (``USER_PASSWORD_AUTH`` against moto's Cognito)."""
        result = aws.client("cognito-idp").initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]
        return str(result["AccessToken"])

    def add_staff(self, email: str) -> str:
        """Create a staff member (an administrator's job) and return their access token."""
        cognito = aws.client("cognito-idp")
        pool = self.record.user_pool_id
        cognito.admin_create_user(
            UserPoolId=pool,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}],
            MessageAction="SUPPRESS",
        )
        cognito.admin_set_user_password(
            UserPoolId=pool, Username=email, Password=PASSWORD, Permanent=True
        )
        cognito.admin_add_user_to_group(UserPoolId=pool, Username=email, GroupName="staff")
        return self.sign_in(email)

    def add_customer(self, email: str) -> str:
        """Sign up and confirm a customer, as in scenario 1, and return their access token."""
        cognito = aws.client("cognito-idp")
        cognito.sign_up(
            ClientId=self.client_id,
            Username=email,
            Password=PASSWORD,
            UserAttributes=[{"Name": "email", "Value": email}],
        )
        cognito.admin_confirm_sign_up(UserPoolId=self.record.user_pool_id, Username=email)
        cognito.admin_add_user_to_group(
            UserPoolId=self.record.user_pool_id, Username=email, GroupName="customers"
        )
        return self.sign_in(email)

    def pump(self) -> None:
        """One round of the background work: the outbox relay, then one poll per worker."""
        self.relay.drain()
        for name, worker in self.workers.items():
            self.processed[name] = self.processed.get(name, 0) + worker.poll_once().processed

    def run_until(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        """Pump until ``check`` holds (a deadline, never a sleep)."""

        def step() -> bool:
            self.pump()
            return check()

        wait_until(step, what=what, timeout=timeout)


@pytest.fixture
def storefront(
    aws_environment: str, postgres_dsn: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Storefront]:
    """The platform, bootstrapped and wired, with settings pointing at it."""
    spans = telemetry.configure("storefront-scenarios")
    assert spans is not None, "telemetry must keep spans in memory in the tests"
    get_settings.cache_clear()
    record = b.bootstrap(apply_deny_statements=False)
    for name, value in record.environment().items():
        monkeypatch.setenv(name, value)
    # moto's tokens carry the real Cognito issuer, but moto serves the keys on its own address.
    monkeypatch.setenv(
        "STOREFRONT_COGNITO_JWKS_URL",
        f"{aws_environment}/{record.user_pool_id}/.well-known/jwks.json",
    )
    get_settings.cache_clear()

    migrations.upgrade(postgres_dsn)
    engine = make_engine(postgres_dsn, PoolSettings(application_name="scenarios"))
    sessions = make_session_factory(engine)
    client = make_redis(redis_url)
    store = EventStore(connect("mongomock://localhost/storefront"))
    store.ensure_indexes()
    receipts = record.buckets["receipts"]
    assert receipts.kms_key_arn is not None
    notifier = notifications.Notifier(
        NotificationPublisher(record.topic_arn), receipts.name, receipts.kms_key_arn
    )
    apps = {
        "catalog": catalog.create_app(sessions, CatalogCache(client)),
        "orders": orders.create_app(
            sessions, RateLimiter(client, limit=ORDER_LIMIT, window_s=60, name="orders")
        ),
        "analytics": analytics.create_app(store),
    }
    for app in apps.values():
        telemetry.instrument_app(app, engine=engine, redis_client=client)
    queues = record.queues
    workers = {
        "fulfillment": fulfillment.consumer(
            queues["fulfillment"].url, sessions, options=WORKER_OPTIONS
        ),
        "notifications": notifications.consumer(
            queues["notifications"].url, sessions, notifier, options=WORKER_OPTIONS
        ),
        "analytics": analytics.consumer(
            queues["analytics"].url, sessions, store, options=WORKER_OPTIONS
        ),
    }
    (client_id,) = record.user_pool_client_ids.values()
    yield Storefront(
        record=record,
        engine=engine,
        sessions=sessions,
        redis=client,
        store=store,
        spans=spans,
        apps=apps,
        relay=OutboxRelay(sessions, bus_name=record.event_bus_name),
        workers=workers,
        client_id=client_id,
    )
    client.close()
    engine.dispose()
    get_settings.cache_clear()


def messages(queue_url: str) -> list[dict[str, Any]]:
    """Every message waiting in a queue, received and deleted (a channel worker's view)."""
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in batch:
            found.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def body(message: dict[str, Any]) -> Any:
    """A raw-delivered SNS message's body, decoded."""
    return json.loads(message["Body"])
