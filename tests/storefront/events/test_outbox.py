"""Outbox rows commit and roll back with the business change they describe."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from storefront.db.models import Order, OutboxEvent
from storefront.events import outbox
from storefront.events.envelope import EventEnvelope


def placed(order_id: uuid.UUID) -> EventEnvelope:
    return EventEnvelope(
        type="order.placed",
        source="storefront.orders",
        correlation_id="req-7",
        data={"order_id": str(order_id), "total_minor": 700},
    )


def test_the_event_row_commits_with_the_order(sessions: sessionmaker[Session]) -> None:
    order_id = uuid.uuid4()
    event = placed(order_id)
    with sessions.begin() as session:
        session.add(Order(id=order_id, customer="sub-1", total_minor=700))
        outbox.record(session, event)

    with sessions() as session:
        row = session.get_one(OutboxEvent, event.id)
        assert session.get(Order, order_id) is not None
        assert row.published_at is None
        assert row.attempts == 0
        assert outbox.envelope_of(row) == event


def test_a_rolled_back_order_leaves_no_event(sessions: sessionmaker[Session]) -> None:
    order_id = uuid.uuid4()
    with sessions() as session:
        session.add(Order(id=order_id, customer="sub-1", total_minor=700))
        outbox.record(session, placed(order_id))
        session.flush()  # the rows reached the database inside the transaction
        session.rollback()

    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
        assert session.get(Order, order_id) is None


def test_a_failing_business_write_takes_the_event_with_it(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.add(Order(customer="sub-1", status="lost", total_minor=0))  # violates a CHECK
        outbox.record(session, placed(uuid.uuid4()))
        try:
            session.commit()
        except Exception:
            session.rollback()

    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
