"""The worker task's entry point (``python -m storefront.services.worker``), run in-process.

The load test (``tests/proof/test_load_with_faults.py``) runs the same entry point as its own
OS process and SIGKILLs it; here it runs in the test's main thread, so coverage sees it, and is
stopped with SIGTERM as ECS stops a task.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid

import pytest
from sqlalchemy import func, select
from storefront import aws
from storefront.db import migrations
from storefront.db.engine import make_engine, make_session_factory
from storefront.db.models import Order, OrderLine, ProcessedMessage, Product
from storefront.events.envelope import EventEnvelope
from storefront.services import worker
from storefront.settings import get_settings
from storefront.topology import ORDER_PLACED

from tests.harness.servers import wait_until


def test_the_worker_command_applies_messages_until_sigterm_and_prints_its_counts(
    aws_environment: str,
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    migrations.upgrade(postgres_dsn)
    monkeypatch.setenv("STOREFRONT_DATABASE_URL", postgres_dsn)
    get_settings.cache_clear()
    engine = make_engine(postgres_dsn)
    sessions = make_session_factory(engine)
    order_id = uuid.uuid4()
    with sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Mug", price_minor=1_250, stock=3))
        session.flush()
        session.add(Order(id=order_id, customer="c-1", status="pending", total_minor=2_500))
        session.flush()
        session.add(OrderLine(order_id=order_id, line_no=1, sku="MUG-1", quantity=2,
                              unit_price_minor=1_250))  # fmt: skip
    queue_url = aws.client("sqs").create_queue(QueueName="fulfillment")["QueueUrl"]
    placed = EventEnvelope(
        type=ORDER_PLACED.detail_type,
        source=ORDER_PLACED.source,
        data={"order_id": str(order_id), "customer": "c-1", "total_minor": 2_500,
              "lines": [{"sku": "MUG-1", "quantity": 2, "unit_price_minor": 1_250}]},
    )  # fmt: skip
    body = {"detail-type": placed.type, "detail": placed.model_dump(mode="json")}
    aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))

    def stop_once_applied() -> None:
        def applied() -> bool:
            with sessions() as session:
                return session.scalar(select(func.count(ProcessedMessage.id))) == 1

        wait_until(applied, what="the message applied", timeout=30)
        os.kill(os.getpid(), signal.SIGTERM)  # what ECS sends when it stops the task

    stopper = threading.Thread(target=stop_once_applied)
    stopper.start()
    try:
        status = worker.main(
            ["fulfillment", "--queue-url", queue_url, "--wait-time-s", "1",
             "--visibility-timeout-s", "30", "--heartbeat-interval-s", "10"]
        )  # fmt: skip
    finally:
        stopper.join()
        get_settings.cache_clear()
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    assert (counts["worker"], counts["processed"], counts["failed"]) == ("fulfillment", 1, 0)
    with sessions() as session:
        assert session.get(Product, "MUG-1").stock == 1  # type: ignore[union-attr]
        assert session.get(Order, order_id).status == "confirmed"  # type: ignore[union-attr]
    engine.dispose()
