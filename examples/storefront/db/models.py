"""The storefront's tables as SQLAlchemy 2 declarative models (the TypeORM entities' stand-in).

Three groups of tables:

* The catalog and orders: ``products`` (stock can never go below zero: a ``CHECK`` constraint, so
  an oversell fails in the database even when two requests race), ``orders`` and ``order_lines``.
  Money is an integer number of minor units (cents), never a float.
* ``outbox_events``: the transactional outbox. A service writes its business rows and the event
  row in one transaction; the relay (:mod:`storefront.events.relay`) publishes the rows later.
* ``processed_messages``: the consumers' idempotency record. A consumer inserts
  ``(consumer, message_id)`` in the transaction that applies the message; the unique constraint
  makes a redelivered message a no-op.

The Alembic migrations in :mod:`storefront.db.migrations` create exactly these tables (a test
compares them with autogenerate).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names, so migrations can drop what they created (Alembic cannot drop
# an anonymous constraint) and autogenerate compares names, not guesses.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The declarative base of every storefront table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --8<-- [start:product-model]
class Product(Base):
    """A catalog product and its stock.

    Attributes:
        sku: The stock-keeping unit, the product's natural key.
        name: The display name.
        price_minor: The unit price in minor units (cents) of the store's currency.
        stock: Units available; the ``CHECK`` constraint rejects a negative value.
        version: Optimistic-locking counter, incremented by SQLAlchemy on every update.
    """

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads a plain dict


# --8<-- [end:product-model]


class Order(Base):
    """A customer's order.

    Attributes:
        id: The order id (a UUID made by the application, so it is known before the insert).
        customer: The customer's id (the Cognito ``sub``).
        status: ``pending``, ``confirmed``, ``shipped`` or ``cancelled``.
        total_minor: The order total in minor units.
        created_at: When the order was placed (database clock, UTC).
        lines: The order's lines.
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'shipped', 'cancelled')", name="status_known"
        ),
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        Index("ix_orders_customer_created_at", "customer", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    customer: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", lazy="selectin"
    )


class OrderLine(Base):
    """One product line of an order, priced when the order was placed.

    Attributes:
        order_id: The order.
        line_no: The line's position in the order (1, 2, ...).
        sku: The product.
        quantity: Units ordered (at least one).
        unit_price_minor: The product's price when ordered, in minor units.
    """

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price_not_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), ForeignKey("products.sku"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    order: Mapped[Order] = relationship(back_populates="lines")


# --8<-- [start:outbox-model]
class OutboxEvent(Base):
    """An event waiting in the transactional outbox (written with the business change).

    Attributes:
        id: The event id; also the EventBridge entry's id in ``detail`` and the consumers'
            idempotency key, so a republished event is recognised as a duplicate.
        type: The event type (``order.placed``), EventBridge's ``detail-type``.
        schema_version: The version of the ``payload`` schema.
        source: The producing service, EventBridge's ``source``.
        occurred_at: When the change happened (UTC).
        correlation_id: The id that ties the event to the request that caused it.
        payload: The event's data.
        trace_context: W3C trace headers (``traceparent``) of the span that recorded it.
        published_at: When the relay published it; NULL while unsent.
        attempts: How many times the relay tried to publish it.
        next_attempt_at: After a failed attempt, the relay leaves the row alone until then
            (exponential back-off); NULL when it may be tried at once.
        last_error: The last publishing error, for operators.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        # The relay's query: unsent rows, oldest first. A partial index stays small because
        # published rows drop out of it.
        Index(
            "ix_outbox_events_unsent",
            "occurred_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    type: Mapped[str] = mapped_column(String(128))
    schema_version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    trace_context: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(1000))


# --8<-- [end:outbox-model]


# --8<-- [start:processed-message-model]
class ProcessedMessage(Base):
    """A message a consumer has already applied (the idempotency record).

    Insert it in the same transaction as the message's effects; a redelivery then violates
    ``uq_processed_messages_consumer`` and the consumer skips it.

    Attributes:
        id: A surrogate key (a UUID made by the application: no sequence, so no ``nextval``,
            which would pin the session behind RDS Proxy).
        consumer: The consumer's name (one service may run several).
        message_id: The event id from the envelope (not the SQS message id, which changes
            when EventBridge or the outbox relay delivers the same event twice).
        processed_at: When it was applied.
    """

    __tablename__ = "processed_messages"
    __table_args__ = (UniqueConstraint("consumer", "message_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    consumer: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(128))
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


# --8<-- [end:processed-message-model]
