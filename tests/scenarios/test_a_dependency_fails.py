"""Scenario 3, "A dependency fails" (the parts proven so far): PostgreSQL and Redis go away.

PostgreSQL is made to fail for real: the test terminates the orders service's own server
connection (``pg_terminate_backend``) in the middle of its transaction, or points the service at
a port where nothing listens. Redis is made to fail by pointing the cache at a closed port.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from storefront import aws
from storefront.cache import CatalogCache, make_redis
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.db.models import Order, OutboxEvent, Product
from storefront.events.envelope import EventEnvelope
from storefront.messaging.consumer import Consumer, InvalidMessageError, Message
from storefront.messaging.notifications import NotificationPublisher
from storefront.services import analytics, catalog, fulfillment, notifications, orders, worker

from tests.harness.servers import free_port, wait_until
from tests.scenarios.shop import WORKER_OPTIONS, Storefront

ORDER = {"lines": [{"sku": "MUG-1", "quantity": 1}]}


def add_mug(shop: Storefront) -> None:
    with shop.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))


def counts(shop: Storefront) -> tuple[int, int]:
    with shop.sessions() as session:
        return (
            session.scalar(select(func.count(Order.id))) or 0,
            session.scalar(select(func.count(OutboxEvent.id))) or 0,
        )


def test_postgresql_lost_mid_transaction_answers_503_and_leaves_nothing_half_written(
    storefront: Storefront, postgres_dsn: str
) -> None:
    shop = storefront
    add_mug(shop)
    token = shop.add_customer("lin@example.com")

    # --8<-- [start:connection-lost]
    # The connection dies mid-transaction: the order row is written, its lines are not.
    def kill_mid_transaction(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO order_lines"):
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    event.listen(shop.engine, "before_cursor_execute", kill_mid_transaction)
    try:
        response = shop.call("orders", "POST", "/orders", token=token, json=ORDER)
    finally:
        event.remove(shop.engine, "before_cursor_execute", kill_mid_transaction)
    assert response.status_code == 503, response.text
    assert response.json()["detail"]["error"] == "database_unavailable"
    assert response.headers["retry-after"] == "5"
    assert counts(shop) == (0, 0)  # no order without its event, no event without its order
    # The pool replaces the dead connection: the retry succeeds, with exactly one event.
    retried = shop.call("orders", "POST", "/orders", token=token, json=ORDER)
    assert retried.status_code == 201, retried.text
    assert counts(shop) == (1, 1)
    # --8<-- [end:connection-lost]


def test_postgresql_unreachable_answers_503_with_retry_after(storefront: Storefront) -> None:
    shop = storefront
    token = shop.add_customer("kim@example.com")
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/storefront"
    engine = make_engine(nowhere, PoolSettings(connect_timeout_s=1, pool_timeout_s=1))
    shop.apps["orders"] = orders.create_app(make_session_factory(engine))
    try:
        response = shop.call("orders", "POST", "/orders", token=token, json=ORDER)
        read = shop.call(
            "orders", "GET", f"/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}", token=token
        )
    finally:
        engine.dispose()
    assert response.status_code == 503, response.text
    assert read.status_code == 503, read.text
    assert response.headers["retry-after"] == "5"


def test_redis_down_the_catalog_serves_from_postgresql(storefront: Storefront) -> None:
    shop = storefront
    add_mug(shop)
    # --8<-- [start:redis-down]
    down = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    app = shop.apps["catalog"] = catalog.create_app(shop.sessions, CatalogCache(down))
    for _ in range(2):
        response = shop.call("catalog", "GET", "/catalog/products/MUG-1")
        assert response.status_code == 200, response.text  # degraded, not failed
        assert response.json()["price_minor"] == 1_250
    assert (app.state.cache_stats.misses, app.state.cache_stats.hits) == (2, 0)
    # --8<-- [end:redis-down]
    down.close()


def queue_depth(url: str) -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def place_order(shop: Storefront, email: str) -> str:
    add_mug(shop)
    token = shop.add_customer(email)
    placed = shop.call("orders", "POST", "/orders", token=token, json=ORDER)
    assert placed.status_code == 201, placed.text
    shop.relay.drain()
    return str(placed.json()["order_id"])


def fulfilled_events(shop: Storefront) -> int:
    with shop.sessions() as session:
        query = select(func.count(OutboxEvent.id)).where(OutboxEvent.type == "order.fulfilled")
        return session.scalar(query) or 0


def stock(shop: Storefront) -> int:
    with shop.sessions() as session:
        return session.get(Product, "MUG-1").stock  # type: ignore[union-attr]


def test_a_consumer_that_crashes_mid_message_gets_it_again_and_applies_it_once(
    storefront: Storefront,
) -> None:
    shop = storefront
    place_order(shop, "ola@example.com")
    url = shop.record.queues["fulfillment"].url
    # --8<-- [start:crash]
    crashes = [RuntimeError("the task was killed after the work, before the commit")]

    def crash_once(message: Message, session: Session) -> None:
        fulfillment.handle(message, session)  # stock reserved, order.fulfilled recorded...
        if crashes:
            raise crashes.pop()  # ...and then the process dies: the transaction never commits

    worker = Consumer(fulfillment.NAME, url, crash_once, shop.sessions, options=WORKER_OPTIONS)
    first = worker.poll_once()
    assert (first.failed, stock(shop), fulfilled_events(shop)) == (1, 5, 0)  # nothing kept
    wait_until(lambda: worker.poll_once().processed == 1, what="the redelivery", timeout=20)
    assert (stock(shop), fulfilled_events(shop)) == (4, 1)  # applied exactly once
    assert queue_depth(url) == 0
    # --8<-- [end:crash]


def test_a_poison_event_goes_to_the_dlq_and_is_redriven_after_the_fix(
    storefront: Storefront,
) -> None:
    shop = storefront
    add_mug(shop)
    token = shop.add_customer("pia@example.com")
    placed = shop.call("orders", "POST", "/orders", token=token, json=ORDER)
    order_id = uuid.UUID(placed.json()["order_id"])
    url, dlq = shop.record.queues["fulfillment"].url, shop.record.queues["fulfillment-dlq"].url
    sqs = aws.client("sqs")
    # --8<-- [start:poison]
    # The orders service was deployed with schema version 2 before fulfillment understood it.
    with shop.sessions.begin() as session:
        session.scalars(select(OutboxEvent)).one().schema_version = 2
    shop.relay.drain()
    worker = fulfillment.consumer(url, shop.sessions, options=WORKER_OPTIONS)
    wait_until(lambda: [worker.poll_once()] and queue_depth(dlq) == 1, what="the move to the DLQ")
    assert queue_depth(url) == 0  # out of the way after maxReceiveCount (5) receives
    assert (stock(shop), fulfilled_events(shop)) == (5, 0)  # nothing applied

    # The DLQ alarm fires (it watches ApproximateNumberOfMessagesVisible); the fix is deployed
    # (here: a worker that reads version 2 as version 1), then the DLQ is redriven.
    def knows_version_2(message: Message, session: Session) -> None:
        assert message.envelope is not None
        upgraded = message.envelope.model_copy(update={"schema_version": 1})
        fulfillment.handle(replace(message, envelope=upgraded), session)

    fixed = Consumer(fulfillment.NAME, url, knows_version_2, shop.sessions, options=WORKER_OPTIONS)
    (moved,) = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody=moved["Body"])  # what a redrive does
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=moved["ReceiptHandle"])
    wait_until(lambda: fixed.poll_once().processed == 1, what="the redriven event")
    assert (queue_depth(url), queue_depth(dlq)) == (0, 0)
    assert (stock(shop), fulfilled_events(shop)) == (4, 1)
    # --8<-- [end:poison]
    with shop.sessions() as session:
        assert session.get(Order, order_id).status == "confirmed"  # type: ignore[union-attr]


def test_events_a_worker_does_not_handle_are_refused_so_they_end_in_the_dlq(
    storefront: Storefront,
) -> None:
    shop = storefront
    unknown = EventEnvelope(type="order.shipped", source="storefront.orders", data={})
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": json.dumps(
            {"detail-type": unknown.type, "detail": unknown.model_dump(mode="json")}
        ),
    }
    not_an_event = {**raw, "Body": "plain text"}
    notifier = notifications.Notifier(NotificationPublisher(shop.record.topic_arn), "b", "k")
    with shop.sessions() as session:
        for handle, message in (
            (fulfillment.handle, raw),
            (notifier.handle, raw),
            (analytics.handler(shop.store), not_an_event),
        ):
            with pytest.raises(InvalidMessageError):
                handle(Message.from_sqs(message), session)


def test_a_worker_exits_on_sigterm_and_puts_the_previous_handler_back(
    storefront: Storefront,
) -> None:
    shop = storefront
    consumer = fulfillment.consumer(
        shop.record.queues["fulfillment"].url, shop.sessions, options=WORKER_OPTIONS
    )
    default = signal.getsignal(signal.SIGTERM)

    def stop_like_ecs() -> None:
        wait_until(lambda: signal.getsignal(signal.SIGTERM) is not default, what="the handler")
        os.kill(os.getpid(), signal.SIGTERM)  # what ECS sends when it stops the task

    killer = threading.Thread(target=stop_like_ecs)
    killer.start()
    outcome = worker.run(consumer)  # returns once the signal is handled
    killer.join()
    assert consumer.stopping
    assert (outcome.failed, outcome.released) == (0, 0)
    assert signal.getsignal(signal.SIGTERM) is default  # the previous handler is back
