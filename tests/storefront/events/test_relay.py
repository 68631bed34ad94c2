"""The relay publishes committed events to EventBridge (moto) exactly as the outbox holds them.

Received through a rule that targets an SQS queue, as the consumers receive them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from storefront.db.models import Order, OutboxEvent
from storefront.events import outbox
from storefront.events.envelope import EventEnvelope
from storefront.events.relay import OutboxRelay, RelayResult
from storefront.settings import get_settings

from tests.harness.servers import wait_until
from tests.storefront.events.eventbus import BUS, SOURCE, Bus


def order_placed(n: int = 0, **data: Any) -> EventEnvelope:
    return EventEnvelope(type="order.placed", source=SOURCE, data={"order_id": f"o-{n}", **data})


def commit_events(sessions: sessionmaker[Session], events: list[EventEnvelope]) -> None:
    with sessions.begin() as session:
        for event in events:
            outbox.record(session, event)


def envelope_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [EventEnvelope.from_eventbridge(message).id.hex for message in messages]


def unsent(sessions: sessionmaker[Session]) -> list[OutboxEvent]:
    with sessions() as session:
        return list(
            session.scalars(select(OutboxEvent).where(OutboxEvent.published_at.is_(None))).all()
        )


class Clock:
    """The relay's idea of now, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Crash(BaseException):
    """The relay's process dies (not an exception it could handle)."""


class EventsWrapper:
    """Forwards to the real (moto) client, with hooks to fail, block or crash a call."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[int] = []
        self.fail_indexes: set[int] = set()
        self.block: threading.Event | None = None
        self.entered = threading.Event()
        self.crash_after_publish = False
        self.fail_code = "ThrottlingException"

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls.append(len(Entries))
        self.entered.set()
        if self.block is not None:
            assert self.block.wait(timeout=20), "the test never unblocked PutEvents"
        forwarded = [e for i, e in enumerate(Entries) if i not in self.fail_indexes]
        real_results = iter(self.real.put_events(Entries=forwarded)["Entries"] if forwarded else [])
        results = [
            {"ErrorCode": self.fail_code, "ErrorMessage": "Rate exceeded"}
            if i in self.fail_indexes
            else next(real_results)
            for i in range(len(Entries))
        ]
        self.fail_indexes = set()  # fail once
        if self.crash_after_publish:
            raise Crash
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_a_committed_transaction_publishes_exactly_its_events(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    events = [order_placed(n) for n in range(3)]
    commit_events(sessions, events)

    result = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events).drain()
    messages = bus.received(3)

    assert result == RelayResult(claimed=3, published=3)
    assert sorted(envelope_ids(messages)) == sorted(event.id.hex for event in events)
    assert {m["detail-type"] for m in messages} == {"order.placed"}
    assert {m["source"] for m in messages} == {SOURCE}
    assert unsent(sessions) == []


def test_a_rolled_back_transaction_publishes_nothing(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    with sessions() as session:
        session.add(Order(customer="sub-1", total_minor=100))
        outbox.record(session, order_placed(1))
        session.flush()
        session.rollback()
    committed = order_placed(2)
    commit_events(sessions, [committed])

    result = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events).drain()

    assert result.published == 1
    assert envelope_ids(bus.received(1)) == [committed.id.hex]
    assert bus.waiting() == 0


def test_the_published_event_carries_its_envelope_and_trace(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("place order"):
        event = order_placed(5, total_minor=700)
    commit_events(sessions, [event])

    OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events).drain()
    (message,) = bus.received(1)

    assert EventEnvelope.from_eventbridge(message) == event
    assert message["detail"]["trace_context"]["traceparent"].startswith("00-")


def test_batches_are_split_into_requests_of_at_most_ten(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    commit_events(sessions, [order_placed(n) for n in range(25)])
    wrapper = EventsWrapper(bus.events)

    result = OutboxRelay(sessions, bus_name=bus.name, events_client=wrapper).drain()

    assert wrapper.calls == [10, 10, 5]
    assert result.published == 25
    assert len(set(envelope_ids(bus.received(25)))) == 25


def test_requests_stay_under_the_byte_limit(sessions: sessionmaker[Session], bus: Bus) -> None:
    commit_events(sessions, [order_placed(n, note="x" * 1000) for n in range(6)])
    wrapper = EventsWrapper(bus.events)

    relay = OutboxRelay(sessions, bus_name=bus.name, events_client=wrapper, max_request_bytes=2600)
    result = relay.drain()

    assert wrapper.calls == [2, 2, 2]
    assert result.published == 6


def test_failed_entries_are_retried_and_the_rest_stay_sent(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    events = [order_placed(n) for n in range(5)]
    commit_events(sessions, events)
    wrapper = EventsWrapper(bus.events)
    wrapper.fail_indexes = {1, 3}
    clock = Clock()
    relay = OutboxRelay(sessions, bus_name=bus.name, events_client=wrapper, clock=clock)

    first = relay.run_once()
    retry_at = clock.now + timedelta(seconds=1)  # retry_base_s
    left = unsent(sessions)
    too_soon = relay.run_once()
    clock.advance(1)
    second = relay.run_once()

    assert first == RelayResult(claimed=5, published=3, failed=2)
    assert {row.id for row in left} == {events[1].id, events[3].id}
    assert all(row.attempts == 1 for row in left)
    assert all(row.last_error == "ThrottlingException: Rate exceeded" for row in left)
    assert all(row.next_attempt_at == retry_at for row in left)
    assert too_soon == RelayResult()
    assert second == RelayResult(claimed=2, published=2)
    assert Counter(envelope_ids(bus.received(5))) == Counter(e.id.hex for e in events)


def test_the_delay_between_attempts_doubles_up_to_the_cap(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    commit_events(sessions, [order_placed(1)])
    wrapper = EventsWrapper(bus.events)
    clock = Clock()
    relay = OutboxRelay(
        sessions, bus_name=bus.name, events_client=wrapper, clock=clock, retry_cap_s=5
    )

    delays = []
    for _ in range(5):
        wrapper.fail_indexes = {0}
        relay.run_once()
        (row,) = unsent(sessions)
        assert row.next_attempt_at is not None
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        clock.now = row.next_attempt_at

    assert delays == [1, 2, 4, 5, 5]


def test_an_entry_eventbridge_calls_invalid_is_parked_at_once(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    event = order_placed(1)
    commit_events(sessions, [event])
    wrapper = EventsWrapper(bus.events)
    wrapper.fail_code = "InvalidArgument"
    wrapper.fail_indexes = {0}

    result = OutboxRelay(sessions, bus_name=bus.name, events_client=wrapper).run_once()

    (row,) = unsent(sessions)
    assert result == RelayResult(claimed=1, parked=1)
    assert row.attempts == 12  # the default max_attempts: never claimed again
    assert (row.last_error or "").startswith("InvalidArgument")


def test_an_entry_that_keeps_failing_is_parked_not_dropped(
    sessions: sessionmaker[Session], bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    event = order_placed(1)
    commit_events(sessions, [event])
    wrapper = EventsWrapper(bus.events)
    clock = Clock()
    relay = OutboxRelay(
        sessions, bus_name=bus.name, events_client=wrapper, max_attempts=2, clock=clock
    )

    results = []
    for _ in range(3):
        wrapper.fail_indexes = {0}
        results.append(relay.run_once())
        clock.advance(3600)

    (row,) = unsent(sessions)
    assert [r.claimed for r in results] == [1, 1, 0]  # parked rows are not claimed again
    assert results[1].parked == 1
    assert row.attempts == 2
    assert "ThrottlingException" in (row.last_error or "")
    assert f"outbox event {event.id} (order.placed) parked" in caplog.text


def test_an_invalid_or_oversized_row_is_parked_and_the_others_are_published(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    good = order_placed(1)
    huge = order_placed(2, blob="x" * 300_000)
    commit_events(sessions, [good, huge])
    with sessions.begin() as session:  # written by a buggy producer, bypassing the envelope
        session.add(
            OutboxEvent(
                id=uuid.uuid4(),
                type="NotAType",
                schema_version=1,
                source=SOURCE,
                occurred_at=good.time,
                payload={},
                attempts=0,
            )
        )

    result = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events).drain()
    parked = {row.type: row for row in unsent(sessions)}

    assert result == RelayResult(claimed=3, published=1, parked=2)
    assert envelope_ids(bus.received(1)) == [good.id.hex]
    assert "invalid event" in (parked["NotAType"].last_error or "")
    assert "exceeds 262144" in (parked["order.placed"].last_error or "")


def test_a_failed_request_leaves_every_row_for_the_next_run(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    commit_events(sessions, [order_placed(n) for n in range(3)])

    clock = Clock()
    broken = OutboxRelay(
        sessions, bus_name="no-such-bus", events_client=bus.events, clock=clock
    ).run_once()
    clock.advance(1)
    fixed = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events, clock=clock).drain()

    assert broken == RelayResult(claimed=3, failed=3)
    assert fixed.published == 3
    assert len(bus.received(3)) == 3


def test_two_relays_running_at_once_publish_each_event_once(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    events = [order_placed(n) for n in range(8)]
    commit_events(sessions, events)
    slow = EventsWrapper(bus.events)
    slow.block = threading.Event()
    first = OutboxRelay(sessions, bus_name=bus.name, events_client=slow, batch_size=4)
    second = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events, batch_size=4)
    results: dict[str, RelayResult] = {}

    thread = threading.Thread(target=lambda: results.update(first=first.run_once()))
    thread.start()
    # The first relay holds its 4 rows locked, publishing; the second runs meanwhile.
    wait_until(slow.entered.is_set, what="the first relay to publish", timeout=10)
    results["second"] = second.drain()
    slow.block.set()
    thread.join(timeout=20)

    assert results["first"].published == 4
    assert results["second"].published == 4
    assert Counter(envelope_ids(bus.received(8))) == Counter(e.id.hex for e in events)
    assert bus.waiting() == 0


def test_a_relay_that_crashes_before_marking_sent_republishes_on_restart(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    event = order_placed(1)
    commit_events(sessions, [event])
    crashing = EventsWrapper(bus.events)
    crashing.crash_after_publish = True

    with pytest.raises(Crash):
        OutboxRelay(sessions, bus_name=bus.name, events_client=crashing).run_once()
    still_unsent = [row.id for row in unsent(sessions)]
    restarted = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events).drain()
    messages = bus.received(2)

    assert still_unsent == [event.id]
    assert restarted.published == 1
    assert envelope_ids(messages) == [event.id.hex, event.id.hex]  # the same event, twice
    assert messages[0]["id"] != messages[1]["id"]  # EventBridge saw two events
    assert unsent(sessions) == []


def test_run_forever_publishes_new_events_until_stopped(
    sessions: sessionmaker[Session], bus: Bus
) -> None:
    stop = threading.Event()
    relay = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events)
    thread = threading.Thread(target=relay.run_forever, args=(stop, 0.05))
    thread.start()
    try:
        event = order_placed(1)
        commit_events(sessions, [event])
        messages = bus.received(1)
    finally:
        stop.set()
        thread.join(timeout=10)

    assert envelope_ids(messages) == [event.id.hex]
    assert not thread.is_alive()


def test_run_forever_survives_a_database_outage(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    from storefront.db.engine import PoolSettings, make_engine, make_session_factory

    from tests.harness.servers import free_port

    dead = make_engine(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", PoolSettings(connect_timeout_s=2)
    )
    stop = threading.Event()
    relay = OutboxRelay(make_session_factory(dead), bus_name=bus.name, events_client=bus.events)
    thread = threading.Thread(target=relay.run_forever, args=(stop, 0.05))
    thread.start()
    wait_until(lambda: "outbox relay run failed" in caplog.text, what="a logged failure")
    stop.set()
    thread.join(timeout=10)
    dead.dispose()

    assert not thread.is_alive()


def test_the_bus_and_client_default_to_the_settings(
    sessions: sessionmaker[Session], bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = order_placed(1)
    commit_events(sessions, [event])
    monkeypatch.setenv("STOREFRONT_EVENT_BUS_NAME", BUS)
    get_settings.cache_clear()
    try:
        OutboxRelay(sessions).drain()
    finally:
        get_settings.cache_clear()

    assert envelope_ids(bus.received(1)) == [event.id.hex]


def test_drain_stops_after_max_runs(sessions: sessionmaker[Session], bus: Bus) -> None:
    commit_events(sessions, [order_placed(n) for n in range(3)])

    result = OutboxRelay(sessions, bus_name=bus.name, events_client=bus.events, batch_size=2).drain(
        max_runs=1
    )

    assert result == RelayResult(claimed=2, published=2)
    assert len(unsent(sessions)) == 1
