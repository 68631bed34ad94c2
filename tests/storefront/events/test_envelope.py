"""The envelope validates events, carries the trace and round-trips through EventBridge's shape."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError
from storefront.events.envelope import EventEnvelope


def test_a_new_event_gets_an_id_a_utc_time_and_version_one() -> None:
    event = EventEnvelope(type="order.placed", source="storefront.orders", data={"order": "o-1"})

    assert isinstance(event.id, uuid.UUID)
    assert event.time.tzinfo == UTC
    assert abs(datetime.now(UTC) - event.time) < timedelta(seconds=5)
    assert event.schema_version == 1


def test_a_time_in_another_zone_is_stored_in_utc() -> None:
    paris = datetime(2026, 12, 3, 10, 0, tzinfo=timezone(timedelta(hours=1)))

    event = EventEnvelope(type="order.placed", source="s", time=paris, data={})

    assert event.time == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "OrderPlaced"),  # not <aggregate>.<verb>
        ("type", "order"),
        ("source", ""),
        ("schema_version", 0),
        ("time", datetime(2026, 12, 3, 9, 0)),  # naive: which zone?
        ("unexpected", "x"),
    ],
)
def test_an_invalid_event_is_rejected_with_the_field_named(field: str, value: object) -> None:
    arguments: dict[str, object] = {"type": "order.placed", "source": "s", "data": {}}
    arguments[field] = value

    with pytest.raises(ValidationError) as raised:
        EventEnvelope(**arguments)  # type: ignore[arg-type]

    assert field in str(raised.value)


def test_the_trace_context_of_the_current_span_is_captured() -> None:
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("place order") as span:
        event = EventEnvelope(type="order.placed", source="s", data={})
        trace_id = format(span.get_span_context().trace_id, "032x")

    assert event.trace_context["traceparent"].split("-")[1] == trace_id


def test_without_a_span_the_trace_context_is_empty() -> None:
    assert EventEnvelope(type="order.placed", source="s", data={}).trace_context == {}


def test_the_eventbridge_entry_carries_the_whole_envelope_as_detail() -> None:
    event = EventEnvelope(
        type="order.placed", source="storefront.orders", correlation_id="req-1", data={"n": 1}
    )

    entry = event.to_eventbridge_entry("storefront-events")

    assert entry["EventBusName"] == "storefront-events"
    assert entry["Source"] == "storefront.orders"
    assert entry["DetailType"] == "order.placed"
    assert json.loads(entry["Detail"])["id"] == str(event.id)
    assert json.loads(entry["Detail"])["correlation_id"] == "req-1"


def test_a_consumer_parses_the_envelope_back_from_the_eventbridge_event() -> None:
    event = EventEnvelope(type="order.placed", source="s", data={"order": "o-1"})
    eventbridge_event = {
        "id": "eventbridge-assigned",
        "detail-type": "order.placed",
        "source": "s",
        "detail": json.loads(event.detail_json()),
    }

    assert EventEnvelope.from_eventbridge(eventbridge_event) == event
    assert EventEnvelope.from_eventbridge(json.dumps(eventbridge_event)) == event


def test_a_message_without_an_envelope_is_rejected() -> None:
    with pytest.raises(ValidationError):
        EventEnvelope.from_eventbridge({"detail": {"hello": "world"}})
    with pytest.raises(ValidationError):
        EventEnvelope.from_eventbridge("[1, 2]")
    with pytest.raises(ValueError, match="Expecting value"):
        EventEnvelope.from_eventbridge("not json")


def test_the_entry_size_counts_bytes_as_eventbridge_does() -> None:
    entry = {
        "Time": datetime.now(UTC),
        "Source": "src",
        "DetailType": "a.b",
        "Detail": '{"é":1}',
        "Resources": ["arn:1"],
    }

    assert EventEnvelope.entry_size(entry) == 14 + 3 + 3 + 8 + 5  # "é" is two bytes
    assert EventEnvelope.entry_size({"Source": "s", "DetailType": "t"}) == 2
