"""The envelope every domain event travels in, from the outbox through EventBridge to SQS.

The envelope is the ``detail`` of the EventBridge event, so a consumer reading the SQS message
(the EventBridge event as JSON) finds it under ``detail``; :meth:`EventEnvelope.from_eventbridge`
parses it back. EventBridge's own ``id`` changes when an event is published twice; the
envelope's ``id`` does not, which is why consumers deduplicate on it.

``trace_context`` carries the W3C ``traceparent`` of the span that recorded the event, so the
consumer's span joins the producer's trace (:func:`storefront.telemetry.context_from_carrier`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from storefront.telemetry import carrier_from_current_context

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


def _now() -> datetime:
    return datetime.now(UTC)


# --8<-- [start:event-envelope]
class EventEnvelope(BaseModel):
    """A domain event and its metadata.

    Attributes:
        id: Unique per event; the consumers' idempotency key.
        type: What happened, as ``<aggregate>.<past-tense verb>`` (``order.placed``); the
            EventBridge ``detail-type`` that rules match on.
        schema_version: The version of ``data``'s schema; consumers reject versions they do not
            know (into their DLQ) instead of misreading them.
        time: When it happened, in UTC.
        source: The producing service (``storefront.orders``); the EventBridge ``source``.
        correlation_id: Ties the event to the request or message that caused it.
        trace_context: W3C trace headers of the producing span.
        data: The event's payload.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=128)
    schema_version: int = Field(default=1, ge=1)
    time: AwareDatetime = Field(default_factory=_now)
    source: str = Field(min_length=1, max_length=128)
    correlation_id: str | None = Field(default=None, max_length=128)
    trace_context: dict[str, str] = Field(default_factory=carrier_from_current_context)
    data: dict[str, Any]

    @field_validator("time")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    # --8<-- [end:event-envelope]

    def detail_json(self) -> str:
        """The envelope as the JSON text of the EventBridge ``Detail``."""
        return self.model_dump_json()

    # --8<-- [start:eventbridge-entry]
    def to_eventbridge_entry(self, bus_name: str) -> dict[str, Any]:
        """The ``PutEvents`` entry that publishes this event on ``bus_name``."""
        return {
            "EventBusName": bus_name,
            "Source": self.source,
            "DetailType": self.type,
            "Time": self.time,
            "Detail": self.detail_json(),
        }

    # --8<-- [end:eventbridge-entry]

    @staticmethod
    def entry_size(entry: dict[str, Any]) -> int:
        """The entry's size as EventBridge counts it against the ``PutEvents`` limit.

        ``Time`` counts 14 bytes; ``Source``, ``DetailType``, ``Detail`` and each of
        ``Resources`` count their UTF-8 bytes
        (https://docs.aws.amazon.com/eventbridge/latest/userguide/calculate-putevents-entry-size.html,
        checked 2026-12-03).
        """
        size = 14 if entry.get("Time") is not None else 0
        for field in ("Source", "DetailType", "Detail"):
            size += len(str(entry.get(field) or "").encode())
        size += sum(len(resource.encode()) for resource in entry.get("Resources", []))
        return size

    # --8<-- [start:envelope-from-eventbridge]
    @classmethod
    def from_eventbridge(cls, event: dict[str, Any] | str) -> EventEnvelope:
        """The envelope inside an EventBridge event (an SQS message body, parsed or not).

        Raises:
            ValueError: The body is not JSON, or carries no valid envelope
                (``pydantic.ValidationError`` is a ``ValueError``); let the message go to the
                DLQ through the queue's redrive policy.
        """
        if isinstance(event, str):
            event = json.loads(event)
        return cls.model_validate(event.get("detail") if isinstance(event, dict) else None)

    # --8<-- [end:envelope-from-eventbridge]
