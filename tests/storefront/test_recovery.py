"""The recovery module: replay requests and their error paths, and the rebuild from the outbox.

The error paths (``FAILED``, ``CANCELLED``, the deadline) run against a real boto3 ``events``
client whose requests botocore's ``Stubber`` answers: moto completes every replay inside
``StartReplay``, so it can never show a replay failing or still running. The Stubber also checks
every request against the EventBridge API model (name pattern and length, parameter types). The
replay itself runs on moto over HTTP with the real bootstrap; the outbox rebuild on a real
PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from sqlalchemy.orm import Session, sessionmaker
from storefront import aws, recovery
from storefront import bootstrap as b
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.documents import EventStore, connect
from storefront.events import outbox
from storefront.events.envelope import EventEnvelope
from storefront.settings import get_settings

NOW = datetime.now(UTC).replace(microsecond=0)
ARCHIVE = "arn:aws:events:eu-west-1:123456789012:archive/storefront-archive"
BUS = "arn:aws:events:eu-west-1:123456789012:event-bus/storefront-events"
RULE = "arn:aws:events:eu-west-1:123456789012:rule/storefront-events/storefront-to-analytics"
WINDOW = {"since": NOW - timedelta(hours=2), "until": NOW - timedelta(minutes=15)}


class FakeClock:
    """Monotonic seconds that move only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "events",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - never sent: the Stubber answers
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_start(stubber: Stubber) -> None:
    stubber.add_response(
        "start_replay",
        {"ReplayArn": f"{ARCHIVE}/replay", "State": "STARTING"},
        {
            "ReplayName": ANY,
            "Description": "test",
            "EventSourceArn": ARCHIVE,
            "EventStartTime": WINDOW["since"],
            "EventEndTime": WINDOW["until"],
            "Destination": {"Arn": BUS, "FilterArns": [RULE]},
        },
    )


def expect_states(stubber: Stubber, *states: str, reason: str = "") -> None:
    for state in states:
        response: dict[str, Any] = {"State": state}
        if reason and state in recovery.REPLAY_FAILED:
            response["StateReason"] = reason
        stubber.add_response("describe_replay", response, {"ReplayName": ANY})


def replay(client: Any, clock: FakeClock, timeout_s: float = 60) -> recovery.ReplayResult:
    return recovery.replay_archive(
        archive_arn=ARCHIVE,
        bus_arn=BUS,
        rule_arns=[RULE],
        description="test",
        timeout_s=timeout_s,
        poll_interval_s=15,
        events_client=client,
        clock=clock,
        sleep=clock.sleep,
        **WINDOW,
    )


def test_a_completed_replay_was_restricted_to_the_given_rules_and_polled_until_done(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    expect_start(stubber)  # the Stubber fails the call unless FilterArns is exactly [RULE]
    expect_states(stubber, "STARTING", "RUNNING", "COMPLETED")
    clock = FakeClock()
    result = replay(client, clock)
    assert (result.state, result.polls, result.rule_arns) == ("COMPLETED", 3, (RULE,))
    assert clock.sleeps == [15, 15]  # waited between polls, never after the last


def test_a_failed_replay_raises_with_eventbridge_s_reason(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_start(stubber)
    expect_states(stubber, "RUNNING", "FAILED", reason="KMS key disabled")
    with pytest.raises(recovery.ReplayFailedError, match="ended FAILED: KMS key disabled") as info:
        replay(client, FakeClock())
    assert (info.value.state, info.value.reason) == ("FAILED", "KMS key disabled")


def test_a_cancelled_replay_raises_too(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_start(stubber)
    expect_states(stubber, "CANCELLING", "CANCELLED")
    with pytest.raises(recovery.ReplayFailedError, match="ended CANCELLED: no reason given"):
        replay(client, FakeClock())


def test_a_replay_still_running_at_the_deadline_raises_and_polls_no_more(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    expect_start(stubber)
    expect_states(stubber, *["RUNNING"] * 5)  # polls at 0, 15, 30, 45 and 60 s
    clock = FakeClock()
    with pytest.raises(recovery.ReplayTimeoutError, match="still RUNNING after 60 s") as info:
        replay(client, clock, timeout_s=60)
    assert info.value.state == "RUNNING"
    assert clock.now == 60  # the Stubber's fixture also checks no response was left unused


def test_a_state_the_code_does_not_know_is_an_error_not_a_wait(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    expect_start(stubber)
    stubber.add_response("describe_replay", {"State": "PAUSED"}, {"ReplayName": ANY})
    with pytest.raises(RuntimeError, match="unknown state 'PAUSED'"):
        replay(client, FakeClock())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rule_arns": []}, "an unfiltered replay reaches every rule"),
        ({"until": WINDOW["since"]}, "must end after it starts"),
        ({"until": NOW - timedelta(minutes=5)}, "may not have reached the archive yet"),
        ({"name": "rebuild analytics"}, "1 to 64 of letters"),
        ({"name": "r" * 65}, "1 to 64 of letters"),
        ({"description": "d" * 513}, "over 512 characters"),
    ],
)
def test_a_bad_replay_request_is_refused_before_any_call(
    stubbed: tuple[Any, Stubber], change: dict[str, Any], message: str
) -> None:
    client, _ = stubbed  # no response queued: any call would fail the test
    arguments: dict[str, Any] = {
        "archive_arn": ARCHIVE,
        "bus_arn": BUS,
        "rule_arns": [RULE],
        "now": NOW,
        "events_client": client,
        **WINDOW,
    }
    with pytest.raises(ValueError, match=message):
        recovery.start_replay(**(arguments | change))


def test_replay_names_are_unique_valid_and_at_most_64_characters() -> None:
    names = {recovery.replay_name(now=NOW) for _ in range(20)}
    assert len(names) == 20
    long = recovery.replay_name("x" * 100, now=NOW)
    assert len(long) == recovery.REPLAY_NAME_MAX
    assert re.fullmatch(r"x+-\d{8}T\d{6}Z-[0-9a-f]{8}", long)
    assert all(recovery.REPLAY_NAME_PATTERN.match(name) for name in names | {long})
    with pytest.raises(ValueError, match="replay purpose"):
        recovery.replay_name("analytics/rebuild")


# --- On moto: the archive fills from the bus, and a replay reaches the analytics queue ---------


@pytest.fixture
def record(aws_environment: str) -> Iterator[b.BootstrapRecord]:
    get_settings.cache_clear()
    yield b.bootstrap(apply_deny_statements=False)
    get_settings.cache_clear()


def envelope_ids(queue_url: str) -> list[str]:
    """The envelope ids of every message in a queue (received and deleted)."""
    sqs = aws.client("sqs")
    ids: list[str] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in batch:
            ids.append(json.loads(message["Body"])["detail"]["id"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return ids


def test_on_moto_a_replay_redelivers_the_archived_event_with_its_envelope_id(
    record: b.BootstrapRecord,
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    event = EventEnvelope(type="order.placed", source="storefront.orders", data={"order_id": "o-1"})
    aws.client("events").put_events(Entries=[event.to_eventbridge_entry(record.event_bus_name)])
    analytics_queue = record.queues["analytics"].url
    assert envelope_ids(analytics_queue) == [str(event.id)]  # the live delivery

    result = recovery.replay_archive(
        archive_arn=record.archive_arn,
        bus_arn=record.event_bus_arn,
        rule_arns=[record.rule_arns["analytics"]],
        since=since,
        until=datetime.now(UTC),
        archive_delay=timedelta(0),  # moto archives during PutEvents
        poll_interval_s=0,
    )
    assert result.state == "COMPLETED"
    assert envelope_ids(analytics_queue) == [str(event.id)]  # again, same envelope id
    described = aws.client("events").describe_replay(ReplayName=result.name)
    assert described["Destination"] == {
        "Arn": record.event_bus_arn,
        "FilterArns": [record.rule_arns["analytics"]],
    }


# --- The rebuild from the outbox -------------------------------------------------------------


@pytest.fixture
def sessions(postgres_dsn: str) -> Iterator[sessionmaker[Session]]:
    migrations.upgrade(postgres_dsn)
    engine = make_engine(postgres_dsn, PoolSettings(pool_size=2, max_overflow=0))
    yield make_session_factory(engine)
    engine.dispose()


def test_the_outbox_rebuild_appends_published_events_of_the_window_only(
    sessions: sessionmaker[Session],
) -> None:
    def at(minutes: int, published: bool, attempts: int = 1) -> EventEnvelope:
        event = EventEnvelope(
            type="order.placed",
            source="storefront.orders",
            time=NOW + timedelta(minutes=minutes),
            data={"order_id": f"o-{minutes}", "lines": []},
        )
        with sessions.begin() as session:
            row = outbox.record(session, event)
            row.published_at = NOW if published else None
            row.attempts = attempts
        return event

    inside = [at(1, True), at(2, True), at(2, True), at(3, True)]
    at(4, False)  # unsent: the relay will publish it and the live path append it
    at(5, False, attempts=12)  # parked: never published, so never seen by anyone
    at(90, True)  # outside the window
    store = EventStore(connect("mongomock://localhost/recovery-test"))
    window = (NOW, NOW + timedelta(minutes=60))

    first = recovery.rebuild_from_outbox(sessions, store, *window, batch_size=2)
    assert (first.read, first.appended, first.already_stored) == (4, 4, 0)
    assert {doc["_id"] for doc in store.events.find()} == {str(e.id) for e in inside}
    again = recovery.rebuild_from_outbox(sessions, store, *window)
    assert (again.read, again.appended, again.already_stored) == (4, 0, 4)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"until": NOW}, "must end after it starts"),
        ({"batch_size": 0}, "at least 1"),
    ],
)
def test_a_bad_outbox_rebuild_is_refused(arguments: dict[str, Any], message: str) -> None:
    store = EventStore(connect("mongomock://localhost/recovery-refused"))
    with pytest.raises(ValueError, match=message):
        recovery.rebuild_from_outbox(
            None,  # type: ignore[arg-type]  # refused before the database is used
            store,
            **({"since": NOW, "until": NOW + timedelta(minutes=1)} | arguments),
        )
