"""Benchmark the write path: orders through the outbox and the relay, and the SQS consumer.

1. Orders: the orders service in one uvicorn process (the real app: a Cognito access token
   verified on every request, the Redis rate limiter's script, then the order, its lines and its
   ``order.placed`` outbox row in one PostgreSQL transaction), loaded with ``POST /orders`` by
   the load generator in its own process.
2. Relay: :class:`storefront.events.relay.OutboxRelay` drains the outbox those orders left,
   publishing to the EventBridge bus on moto (which routes to the SQS queues the bootstrap made).
3. SQS consumer: the same number of messages is drained from a queue on moto by
   :class:`storefront.messaging.consumer.Consumer` with ``MaxNumberOfMessages`` 1 and 10, in
   alternating rounds (a no-op handler, so what is measured is receive, idempotency record and
   delete).

moto is not AWS: it runs in this process (one Python interpreter, a thread per request), with no
network between the client and the "service" and none of AWS's own latency. Its absolute rates
say little about EventBridge or SQS; the ratio between single and batched receives is the point.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from storefront import aws
from storefront import bootstrap as bootstrap_module
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.db.models import OutboxEvent
from storefront.events.relay import OutboxRelay
from storefront.messaging.consumer import Consumer, ConsumerOptions
from storefront.settings import get_settings

from benchmarks.infrastructure import Databases, product_sku
from benchmarks.results import Drain, LoadParameters, WritePath
from benchmarks.serving import load, uvicorn_server
from tests.harness.servers import run_moto

FACTORY = "benchmarks.apps:orders_app"
DRAIN_TIMEOUT_S = 300.0
PASSWORD = "Str0ng-Passw0rd!"  # noqa: S105 - a benchmark user's password on moto


def parameters(*, quick: bool) -> LoadParameters:
    """The order load: half a second with ``quick``, else ten seconds."""
    if quick:  # few orders: the relay then drains them at moto's pace
        return LoadParameters(duration_s=0.5, warmup_s=0.2, concurrency=2, products=20)
    return LoadParameters(duration_s=10.0, warmup_s=3.0, concurrency=16, products=1_000)


@contextmanager
def aws_on_moto() -> Iterator[dict[str, str]]:
    """Moto in server mode, with this process's AWS variables pointing at it; yields them."""
    with run_moto() as endpoint:
        variables = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        get_settings.cache_clear()
        try:
            yield variables
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            get_settings.cache_clear()


def customer_token(record: bootstrap_module.BootstrapRecord) -> str:
    """Sign up, confirm and sign in a customer on moto's Cognito; return the access token."""
    cognito = aws.client("cognito-idp")
    (client_id,) = record.user_pool_client_ids.values()
    email = "bench@example.com"
    cognito.sign_up(
        ClientId=client_id,
        Username=email,
        Password=PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    cognito.admin_confirm_sign_up(UserPoolId=record.user_pool_id, Username=email)
    cognito.admin_add_user_to_group(
        UserPoolId=record.user_pool_id, Username=email, GroupName="customers"
    )
    result = cognito.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return str(result["AuthenticationResult"]["AccessToken"])


def _timed(items: int, seconds: float) -> Drain:
    return Drain(items=items, seconds=round(seconds, 3), per_second=round(items / seconds, 1))


def drain_consumer(sessions: Any, messages: int, batch: int, *, queue: str = "q") -> Drain:
    """Fill a new queue with ``messages`` messages and time a consumer receiving ``batch`` at once.

    Raises:
        RuntimeError: A message failed (the handler does nothing, so none should).
    """
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"bench-consumer-{queue}-{batch}")["QueueUrl"]
    for first in range(0, messages, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"n": n})}
                for n in range(first, min(first + 10, messages))
            ],
        )
    consumer = Consumer(
        f"bench-{queue}-{batch}",
        url,
        lambda _message, _session: None,
        sessions,
        sqs=sqs,
        options=ConsumerOptions(wait_time_s=0, max_messages=batch, heartbeat_interval_s=None),
    )
    processed = failed = 0
    start = time.perf_counter()
    deadline = start + DRAIN_TIMEOUT_S
    # A tight loop, not wait_until: its back-off between polls would be measured as well.
    while processed + failed < messages:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the consumer (batch {batch}) drained {processed} of {messages}")
        outcome = consumer.poll_once()
        processed += outcome.processed
        failed += outcome.failed
    elapsed = time.perf_counter() - start
    if failed:
        raise RuntimeError(f"{failed} messages failed in the consumer benchmark")
    return _timed(processed, elapsed)


def compare_consumers(sessions: Any, *, rounds: int, messages: int) -> tuple[Drain, Drain]:
    """Drain single and batched in alternating rounds, so that a busy moment hits both alike."""
    totals = {1: [0, 0.0], 10: [0, 0.0]}
    for round_number in range(rounds):
        for batch in (1, 10):
            drained = drain_consumer(sessions, messages, batch, queue=f"r{round_number}")
            totals[batch][0] += drained.items
            totals[batch][1] += drained.seconds
    return _timed(*totals[1]), _timed(*totals[10])


def run(databases: Databases, *, quick: bool) -> WritePath:
    """Measure orders/s, the relay's events/s and the consumer single vs batched."""
    load_parameters = parameters(quick=quick)
    database_url = databases.fresh_database("bench_orders", load_parameters.products)
    databases.flush_redis()
    with aws_on_moto() as aws_variables:
        record = bootstrap_module.bootstrap(apply_deny_statements=False)
        endpoint = aws_variables["AWS_ENDPOINT_URL"]
        service_environment = {
            **aws_variables,
            **record.environment(),
            "STOREFRONT_COGNITO_JWKS_URL": (
                f"{endpoint}/{record.user_pool_id}/.well-known/jwks.json"
            ),
            "BENCH_DATABASE_URL": database_url,
            "BENCH_REDIS_URL": databases.redis.url,
        }
        token = customer_token(record)
        order = json.dumps({"lines": [{"sku": product_sku(0), "quantity": 1}]})
        with uvicorn_server(FACTORY, service_environment) as server:
            orders = load(
                server,
                load_parameters,
                path="/orders",
                method="POST",
                headers=[f"authorization: Bearer {token}"],
                body=order,
                expect=201,
            )

        # The relay holds its transaction open while PutEvents runs (see storefront.events.relay):
        # its idle-in-transaction limit must outlast a slow call, here moto's under load.
        engine = make_engine(
            database_url,
            PoolSettings(application_name="bench-relay", idle_in_transaction_timeout_ms=300_000),
        )
        try:
            sessions = make_session_factory(engine)
            with sessions() as session:
                backlog = session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                )
            relay = OutboxRelay(sessions, bus_name=record.event_bus_name)
            start = time.perf_counter()
            relayed = relay.drain(max_runs=100_000)
            relay_seconds = time.perf_counter() - start
            if relayed.published != backlog:
                raise RuntimeError(f"the relay published {relayed.published} of {backlog} events")
            single, batched = compare_consumers(
                sessions, rounds=1 if quick else 5, messages=30 if quick else 100
            )
        finally:
            engine.dispose()
    return WritePath(
        parameters=load_parameters,
        orders=orders,
        relay=_timed(relayed.published, relay_seconds),
        sqs_single=single,
        sqs_batch=batched,
    )
