"""The SNS publisher against moto over HTTP: filter policies route by channel, traces continue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker
from storefront import aws, telemetry
from storefront import bootstrap as b
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.messaging.consumer import Consumer, ConsumerOptions, Message
from storefront.messaging.notifications import NotificationPublisher
from storefront.settings import get_settings


@pytest.fixture
def record(aws_environment: str) -> Iterator[b.BootstrapRecord]:
    get_settings.cache_clear()
    yield b.bootstrap(apply_deny_statements=False)
    get_settings.cache_clear()


@pytest.fixture
def publisher(record: b.BootstrapRecord) -> NotificationPublisher:
    return NotificationPublisher(record.topic_arn)


def receive_all(record: b.BootstrapRecord, queue: str) -> list[dict[str, Any]]:
    response = aws.client("sqs").receive_message(
        QueueUrl=record.queues[queue].url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        MessageAttributeNames=["All"],
    )
    return response.get("Messages", [])


def test_the_filter_policy_delivers_each_notification_only_to_its_channel_queue(
    record: b.BootstrapRecord, publisher: NotificationPublisher
) -> None:
    publisher.publish("email", {"to": "ada@example.com", "template": "order-shipped"})
    publisher.publish("sms", {"to": "+15550100", "text": "Shipped"})
    email, sms, webhook = (receive_all(record, f"notify-{c}") for c in ("email", "sms", "webhook"))
    assert [json.loads(m["Body"])["to"] for m in email] == ["ada@example.com"]
    assert [json.loads(m["Body"])["to"] for m in sms] == ["+15550100"]
    assert webhook == []


def test_raw_delivery_hands_over_the_body_and_the_attributes_untouched(
    record: b.BootstrapRecord, publisher: NotificationPublisher
) -> None:
    publisher.publish(
        "webhook", "plain text body", message_id="n-42", attributes={"receiver": "acme"}
    )
    (message,) = receive_all(record, "notify-webhook")
    assert message["Body"] == "plain text body"  # no SNS JSON envelope around it
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["channel"] == "webhook"
    assert attributes["message_id"] == "n-42"
    assert attributes["receiver"] == "acme"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"channel": "pigeon", "message": {"a": 1}}, "unknown channel 'pigeon'"),
        ({"channel": "email", "message": ""}, "needs a body"),
        (
            {"channel": "email", "message": "x", "attributes": {"channel": "sms"}},
            "are set by the publisher",
        ),
        (
            {"channel": "email", "message": "x", "attributes": {f"a{i}": "v" for i in range(9)}},
            "SQS delivers at most 10",
        ),
    ],
)
def test_bad_notifications_are_refused_before_anything_is_published(
    record: b.BootstrapRecord,
    publisher: NotificationPublisher,
    arguments: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        publisher.publish(**arguments)
    assert all(receive_all(record, f"notify-{c}") == [] for c in ("email", "sms", "webhook"))


@pytest.fixture
def sessions(postgres_dsn: str) -> Iterator[sessionmaker[Session]]:
    migrations.upgrade(postgres_dsn)
    engine = make_engine(postgres_dsn, PoolSettings(application_name="notification-tests"))
    yield make_session_factory(engine)
    engine.dispose()


def test_a_notification_published_twice_is_sent_once_and_continues_the_trace(
    record: b.BootstrapRecord,
    publisher: NotificationPublisher,
    sessions: sessionmaker[Session],
) -> None:
    spans = telemetry.configure("storefront-tests")
    assert spans is not None
    spans.clear()
    with trace.get_tracer("tests").start_as_current_span("order.fulfilled handler") as parent:
        for _ in range(2):  # a retried publish reuses the notification's id
            publisher.publish("email", {"to": "ada@example.com"}, message_id="order-1:shipped")
    sent: list[Message] = []
    consumer = Consumer(
        "email-worker",
        record.queues["notify-email"].url,
        lambda message, _session: sent.append(message),
        sessions,
        options=ConsumerOptions(wait_time_s=1),
    )
    outcome = consumer.poll_once()
    assert (outcome.processed, outcome.duplicates) == (1, 1)
    assert [m.key for m in sent] == ["order-1:shipped"]
    finished = spans.get_finished_spans()
    publishes = [s for s in finished if s.name == "notifications publish"]
    (processed,) = [
        s
        for s in finished
        if s.name.endswith(" process") and s.attributes.get("storefront.duplicate") is False
    ]
    assert {s.parent.span_id for s in publishes} == {parent.get_span_context().span_id}
    assert processed.context.trace_id == parent.get_span_context().trace_id
    # The consumer continues the publish: its parent is our publish span or, where the botocore
    # instrumentation is active (another test installed it), the SNS "send" span inside it, which
    # then carries the context in the message attributes itself.
    publish_ids = {s.context.span_id for s in publishes}
    sns_calls = {
        s.context.span_id
        for s in finished
        if s.parent is not None and s.parent.span_id in publish_ids
    }
    assert processed.parent.span_id in publish_ids | sns_calls
