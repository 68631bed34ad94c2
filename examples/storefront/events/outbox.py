"""Record domain events in the transactional outbox, in the caller's transaction.

Call :func:`record` with the session that writes the business row, inside its transaction
(``tests/storefront/events/test_outbox.py`` commits an order and its event together). Both rows
commit together or not at all: a rolled-back order never announces itself, and a
committed one is always announced (eventually, by the relay).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from storefront.db.models import OutboxEvent
from storefront.events.envelope import EventEnvelope


# --8<-- [start:outbox-record]
def record(session: Session, event: EventEnvelope) -> OutboxEvent:
    """Add ``event`` to the outbox as part of ``session``'s current transaction.

    Args:
        session: The session that writes the business change.
        event: The event describing the change.

    Returns:
        The pending outbox row (flushed with the session's other changes).
    """
    row = OutboxEvent(
        id=event.id,
        type=event.type,
        schema_version=event.schema_version,
        source=event.source,
        occurred_at=event.time,
        correlation_id=event.correlation_id,
        payload=event.data,
        trace_context=dict(event.trace_context),
        attempts=0,
    )
    session.add(row)
    return row


# --8<-- [end:outbox-record]


def envelope_of(row: OutboxEvent) -> EventEnvelope:
    """The envelope an outbox row holds (what the relay publishes)."""
    return EventEnvelope(
        id=row.id,
        type=row.type,
        schema_version=row.schema_version,
        time=row.occurred_at,
        source=row.source,
        correlation_id=row.correlation_id,
        trace_context=row.trace_context or {},
        data=row.payload,
    )
