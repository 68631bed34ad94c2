"""The SQS consumer against a moto server over HTTP and a real PostgreSQL.

The queues, rules and DLQs come from the real bootstrap. moto moves a message to the DLQ after
``maxReceiveCount`` receives and honours visibility timeouts; it never delivers a message twice
on its own, so the duplicate test publishes the same event twice (what a relay crash does).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from storefront import aws, telemetry
from storefront import bootstrap as b
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.db.models import ProcessedMessage, Product
from storefront.events.envelope import EventEnvelope
from storefront.messaging.consumer import (
    BatchOutcome,
    Consumer,
    ConsumerOptions,
    InvalidMessageError,
    Message,
    install_signal_handlers,
)
from storefront.settings import get_settings
from storefront.topology import ORDER_FULFILLED, ORDER_PLACED, ORDER_REJECTED

from tests.harness.servers import wait_until

FAST = ConsumerOptions(wait_time_s=1, retry_delay_s=lambda _count: 0)


@pytest.fixture
def record(aws_environment: str) -> Iterator[b.BootstrapRecord]:
    get_settings.cache_clear()
    yield b.bootstrap(apply_deny_statements=False)
    get_settings.cache_clear()


@pytest.fixture
def sessions(postgres_dsn: str) -> Iterator[sessionmaker[Session]]:
    migrations.upgrade(postgres_dsn)
    engine = make_engine(postgres_dsn, PoolSettings(application_name="consumer-tests"))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def sqs(record: b.BootstrapRecord) -> Any:
    return aws.client("sqs")


def publish(record: b.BootstrapRecord, *envelopes: EventEnvelope) -> None:
    response = aws.client("events").put_events(
        Entries=[e.to_eventbridge_entry(record.event_bus_name) for e in envelopes]
    )
    assert response["FailedEntryCount"] == 0, response


def order_placed(sku: str = "SKU-1", **data: Any) -> EventEnvelope:
    return EventEnvelope(
        type=ORDER_PLACED.detail_type,
        source=ORDER_PLACED.source,
        data={"order_id": str(uuid.uuid4()), "sku": sku, **data},
    )


def stock_handler(calls: list[Message]) -> Any:
    """Adds the event's product: the handler's effect, in the consumer's transaction."""

    def handle(message: Message, session: Session) -> None:
        calls.append(message)
        assert message.envelope is not None
        session.add(Product(sku=message.envelope.data["sku"], name="n", price_minor=1))
        if message.envelope.data.get("fail"):
            raise RuntimeError("the handler failed after its write")

    return handle


def count(sessions: sessionmaker[Session], column: Any) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(column))) or 0


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def drain(consumer: Consumer, until: Any, timeout: float = 30) -> BatchOutcome:
    total = BatchOutcome()

    def step() -> bool:
        total.add(consumer.poll_once())
        return bool(until())

    wait_until(step, what="the consumer to get there", timeout=timeout)
    return total


def test_a_duplicate_delivery_is_processed_once(
    record: b.BootstrapRecord, sessions: sessionmaker[Session], sqs: Any
) -> None:
    event = order_placed()
    publish(record, event)
    publish(record, event)  # the relay published it again after a crash: same envelope id
    calls: list[Message] = []
    consumer = Consumer(
        "fulfillment",
        record.queues["fulfillment"].url,
        stock_handler(calls),
        sessions,
        options=FAST,
    )
    outcome = drain(consumer, lambda: queue_depth(sqs, record.queues["fulfillment"].url) == 0)
    assert (outcome.processed, outcome.duplicates, outcome.failed) == (1, 1, 0)
    assert [m.key for m in calls] == [str(event.id)]
    assert count(sessions, Product.sku) == 1
    with sessions() as session:
        (row,) = session.scalars(select(ProcessedMessage)).all()
    assert (row.consumer, row.message_id) == ("fulfillment", str(event.id))


def test_the_same_message_for_another_consumer_is_not_a_duplicate(
    record: b.BootstrapRecord, sessions: sessionmaker[Session]
) -> None:
    event = order_placed()
    publish(record, event)  # reaches the fulfillment and the analytics queues
    seen: list[str] = []

    def handler(name: str) -> Any:
        return lambda message, _session: seen.append(f"{name}:{message.key}")

    for name in ("fulfillment", "analytics"):
        consumer = Consumer(name, record.queues[name].url, handler(name), sessions, options=FAST)
        assert consumer.poll_once().processed == 1
    assert seen == [f"fulfillment:{event.id}", f"analytics:{event.id}"]


def test_a_failing_handler_commits_nothing_and_leaves_the_message_in_the_queue(
    record: b.BootstrapRecord, sessions: sessionmaker[Session], sqs: Any
) -> None:
    publish(record, order_placed(fail=True))
    calls: list[Message] = []
    url = record.queues["fulfillment"].url
    consumer = Consumer("fulfillment", url, stock_handler(calls), sessions, options=FAST)
    assert consumer.poll_once().failed == 1
    assert count(sessions, Product.sku) == 0  # the handler's write was rolled back
    assert count(sessions, ProcessedMessage.id) == 0  # and so was the idempotency record
    assert queue_depth(sqs, url) == 1  # not deleted
    again = sqs.receive_message(
        QueueUrl=url, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
    )
    assert again["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_poison_message_ends_in_the_dlq_after_max_receive_count_receives(
    record: b.BootstrapRecord, sessions: sessionmaker[Session], sqs: Any
) -> None:
    event = order_placed(fail=True)
    publish(record, event)
    calls: list[Message] = []
    url, dlq = record.queues["fulfillment"].url, record.queues["fulfillment-dlq"].url
    consumer = Consumer("fulfillment", url, stock_handler(calls), sessions, options=FAST)
    drain(consumer, lambda: queue_depth(sqs, dlq) == 1)
    assert [m.receive_count for m in calls] == [1, 2, 3, 4, 5]  # maxReceiveCount is 5
    assert queue_depth(sqs, url) == 0
    (moved,) = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
    assert EventEnvelope.from_eventbridge(moved["Body"]).id == event.id  # intact, for a redrive
    assert count(sessions, ProcessedMessage.id) == 0


def test_an_event_without_a_valid_envelope_never_reaches_the_handler_and_ends_in_the_dlq(
    record: b.BootstrapRecord, sessions: sessionmaker[Session], sqs: Any
) -> None:
    aws.client("events").put_events(
        Entries=[
            {
                "EventBusName": record.event_bus_name,
                "Source": ORDER_PLACED.source,
                "DetailType": ORDER_PLACED.detail_type,
                "Detail": json.dumps({"schema_version": 1, "data": {}}),  # no type, no source
            }
        ]
    )
    calls: list[Message] = []
    url, dlq = record.queues["fulfillment"].url, record.queues["fulfillment-dlq"].url
    consumer = Consumer("fulfillment", url, stock_handler(calls), sessions, options=FAST)
    outcome = drain(consumer, lambda: queue_depth(sqs, dlq) == 1)
    assert outcome.failed == 5
    assert calls == []


def test_a_long_handler_keeps_its_message_invisible_with_the_heartbeat(
    aws_environment: str, sessions: sessionmaker[Session]
) -> None:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="slow-work", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="slow")
    rival = aws.client("sqs")

    def slow(stolen: list[str]) -> Any:
        def handle(_message: Message, _session: Session) -> None:
            # Work for about 5 s (over twice the visibility timeout) while a rival consumer polls.
            for _ in range(5):
                got = rival.receive_message(QueueUrl=url, WaitTimeSeconds=1)
                stolen.extend(m["Body"] for m in got.get("Messages", []))

        return handle

    stolen: list[str] = []
    options = ConsumerOptions(wait_time_s=1, visibility_timeout_s=2, heartbeat_interval_s=0.5)
    consumer = Consumer("slow", url, slow(stolen), sessions, options=options)
    assert consumer.poll_once().processed == 1
    assert stolen == []
    assert consumer.heartbeats >= 4

    # Without the heartbeat the same work loses its message to the rival: the test can fail.
    sqs.send_message(QueueUrl=url, MessageBody="slow again")
    unguarded = ConsumerOptions(wait_time_s=1, visibility_timeout_s=2, heartbeat_interval_s=None)
    stolen_unguarded: list[str] = []
    Consumer("slow", url, slow(stolen_unguarded), sessions, options=unguarded).poll_once()
    assert "slow again" in stolen_unguarded


def test_receives_are_long_polls_for_batches_of_ten(
    record: b.BootstrapRecord, sessions: sessionmaker[Session]
) -> None:
    url = record.queues["analytics"].url
    client = aws.client("sqs")
    receives: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.sqs.ReceiveMessage", lambda params, **_: receives.append(params)
    )
    aws.client("sqs").send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": json.dumps({"n": i})} for i in range(10)],
    )
    seen: list[int] = []
    consumer = Consumer(
        "analytics",
        url,
        lambda message, _s: seen.append(message.json()["n"]),
        sessions,
        sqs=client,
    )
    outcome = consumer.poll_once()
    assert outcome.received == outcome.processed == len(seen) >= 1
    assert receives[0]["WaitTimeSeconds"] == 20
    assert receives[0]["MaxNumberOfMessages"] == 10


def test_stopping_finishes_the_message_in_progress_and_releases_the_rest(
    record: b.BootstrapRecord, sessions: sessionmaker[Session], sqs: Any
) -> None:
    url = record.queues["analytics"].url
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    started, go = threading.Event(), threading.Event()
    handled: list[str] = []

    def handler(message: Message, _session: Session) -> None:
        started.set()
        assert go.wait(10)
        handled.append(message.body)

    consumer = Consumer("analytics", url, handler, sessions, options=FAST)
    outcome: list[BatchOutcome] = []
    runner = threading.Thread(target=lambda: outcome.append(consumer.run()))
    runner.start()
    assert started.wait(10)
    consumer.request_stop()
    go.set()
    runner.join(10)
    assert not runner.is_alive()
    received = outcome[0].received
    assert (outcome[0].processed, outcome[0].released) == (1, received - 1)
    # The released messages are visible again at once, for another task.
    released = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert len(released.get("Messages", [])) == 3 - 1


def test_a_handler_that_outlives_the_stop_deadline_is_released_and_run_returns(
    record: b.BootstrapRecord, sessions: sessionmaker[Session], sqs: Any
) -> None:
    url = record.queues["analytics"].url
    sqs.send_message(QueueUrl=url, MessageBody="stuck")
    started, go = threading.Event(), threading.Event()

    def handler(_message: Message, _session: Session) -> None:
        started.set()
        go.wait(30)

    options = ConsumerOptions(wait_time_s=1, shutdown_grace_s=0.5)
    consumer = Consumer("analytics", url, handler, sessions, options=options)
    runner = threading.Thread(target=consumer.run)
    runner.start()
    assert started.wait(10)
    stop_requested = time.monotonic()
    consumer.request_stop()
    runner.join(10)
    assert not runner.is_alive()
    assert time.monotonic() - stop_requested < 5
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in again] == ["stuck"]  # released, not lost
    # If the abandoned handler commits after all, its record makes a redelivery a no-op: the
    # handler never runs a second time and the message does not stay behind.
    go.set()
    wait_until(lambda: count(sessions, ProcessedMessage.id) == 1, what="the late commit")
    sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[{"Id": "0", "ReceiptHandle": again[0]["ReceiptHandle"], "VisibilityTimeout": 0}],
    )
    second_run: list[Message] = []
    late = Consumer("analytics", url, lambda m, _s: second_run.append(m), sessions, options=FAST)
    drain(late, lambda: queue_depth(sqs, url) == 0)
    assert second_run == []


def test_sigterm_stops_a_running_consumer(
    record: b.BootstrapRecord, sessions: sessionmaker[Session]
) -> None:
    consumer = Consumer(
        "analytics", record.queues["analytics"].url, lambda *_: None, sessions, options=FAST
    )
    previous = signal.getsignal(signal.SIGTERM)
    restore = install_signal_handlers(consumer)
    runner = threading.Thread(target=consumer.run)
    runner.start()
    try:
        signal.raise_signal(signal.SIGTERM)
        runner.join(10)
    finally:
        restore()
    assert not runner.is_alive()
    assert consumer.stopping
    assert signal.getsignal(signal.SIGTERM) is previous
    assert consumer.poll_once() == BatchOutcome()  # a stopped consumer polls no more


def test_eventbridge_rules_route_only_the_matching_events(
    record: b.BootstrapRecord, sqs: Any
) -> None:
    placed, fulfilled, rejected = (
        EventEnvelope(type=t.detail_type, source=t.source, data={})
        for t in (ORDER_PLACED, ORDER_FULFILLED, ORDER_REJECTED)
    )
    foreign = EventEnvelope(type=ORDER_PLACED.detail_type, source="partner.orders", data={})
    publish(record, placed, fulfilled, rejected, foreign)

    def types(queue: str) -> list[str]:
        got = sqs.receive_message(
            QueueUrl=record.queues[queue].url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        return sorted(json.loads(m["Body"])["detail-type"] for m in got.get("Messages", []))

    assert types("fulfillment") == ["order.placed"]
    assert types("notifications") == ["order.fulfilled", "order.rejected"]
    assert types("analytics") == ["order.fulfilled", "order.placed", "order.rejected"]
    for queue in ("fulfillment", "notifications", "analytics"):
        assert types(queue) == []  # nothing else arrived, the foreign event included
        assert queue_depth(sqs, record.queues[f"{queue}-delivery-dlq"].url) == 0


def test_the_trace_id_survives_the_hop_through_eventbridge_and_sqs(
    record: b.BootstrapRecord, sessions: sessionmaker[Session]
) -> None:
    spans = telemetry.configure("storefront-tests")
    assert spans is not None
    spans.clear()
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("POST /orders") as producer:
        event = order_placed()  # the envelope captures the current trace context
        publish(record, event)
    consumer = Consumer(
        "fulfillment", record.queues["fulfillment"].url, lambda *_: None, sessions, options=FAST
    )
    assert consumer.poll_once().processed == 1
    (span,) = [s for s in spans.get_finished_spans() if s.name.endswith(" process")]
    assert span.context.trace_id == producer.get_span_context().trace_id
    assert span.parent is not None
    assert span.parent.span_id == producer.get_span_context().span_id
    assert span.attributes["messaging.destination.name"] == "storefront-fulfillment"


def test_a_failed_message_is_recorded_on_its_span(
    record: b.BootstrapRecord, sessions: sessionmaker[Session]
) -> None:
    spans = telemetry.configure("storefront-tests")
    assert spans is not None
    spans.clear()
    publish(record, order_placed(fail=True))
    consumer = Consumer(
        "fulfillment", record.queues["fulfillment"].url, stock_handler([]), sessions, options=FAST
    )
    consumer.poll_once()
    (span,) = [s for s in spans.get_finished_spans() if s.name.endswith(" process")]
    assert span.status.status_code.name == "ERROR"
    assert span.events[0].name == "exception"


def raw_message(body: str, **attributes: str) -> dict[str, Any]:
    return {
        "MessageId": "sqs-id",
        "ReceiptHandle": "handle",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "3"},
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
    }


def test_messages_without_an_envelope_use_the_message_id_attribute_or_the_sqs_id() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    notification = Message.from_sqs(
        raw_message(
            '{"to": "a@example.com"}', message_id="n-1", traceparent=traceparent, channel="email"
        )
    )
    assert notification.key == "n-1"
    assert notification.envelope is None
    assert notification.carrier == {"traceparent": traceparent}
    assert notification.receive_count == 3
    assert notification.json() == {"to": "a@example.com"}
    plain = Message.from_sqs(raw_message("not json"))
    assert plain.key == "sqs-id"
    with pytest.raises(InvalidMessageError, match="not JSON"):
        plain.json()
    with pytest.raises(InvalidMessageError, match="without a valid envelope"):
        Message.from_sqs(raw_message(json.dumps({"detail-type": "x", "detail": {}})))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"wait_time_s": 21}, "wait_time_s"),
        ({"max_messages": 11}, "max_messages"),
        ({"max_messages": 0}, "max_messages"),
        ({"visibility_timeout_s": 43_201}, "visibility_timeout_s"),
        ({"visibility_timeout_s": 10, "heartbeat_interval_s": 10}, "heartbeat_interval_s"),
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s"),
    ],
)
def test_options_outside_the_sqs_limits_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsumerOptions(**options)


class FlakySqs:
    """A real (moto) client whose visibility changes fail, as throttling would."""

    def __init__(self, fail_with: str) -> None:
        self._client = aws.client("sqs")
        self._fail_with = fail_with
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def change_message_visibility_batch(self, **arguments: Any) -> Any:
        self.attempts += 1
        if self._fail_with == "error":
            raise RuntimeError("throttled")
        return {
            "Successful": [],
            "Failed": [
                {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid"} for e in arguments["Entries"]
            ],
        }


@pytest.mark.parametrize("failure", ["error", "failed-entries"])
def test_heartbeat_and_release_failures_are_logged_not_fatal(
    record: b.BootstrapRecord,
    sessions: sessionmaker[Session],
    failure: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = record.queues["analytics"].url
    aws.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"fail": True}))
    flaky = FlakySqs(failure)
    beats = threading.Event()

    def handler(message: Message, _session: Session) -> None:
        wait_until(lambda: flaky.attempts >= 2, what="two heartbeats")
        beats.set()
        raise RuntimeError("and then the handler fails")

    options = ConsumerOptions(
        wait_time_s=1, visibility_timeout_s=2, heartbeat_interval_s=0.2, retry_delay_s=lambda n: 0
    )
    consumer = Consumer("analytics", url, handler, sessions, sqs=flaky, options=options)
    assert consumer.poll_once().failed == 1
    assert beats.is_set()
    assert "heartbeat failed" in caplog.text
    if failure == "error":
        assert "could not change the visibility" in caplog.text
