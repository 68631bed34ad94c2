"""The fulfillment worker: reserves stock for each ``order.placed`` and records the outcome.

For every order it receives (from its SQS queue, fed by an EventBridge rule) it reserves each
line's stock with a conditional ``UPDATE ... WHERE stock >= quantity``, so two workers racing for
the last unit cannot both win (and the ``CHECK (stock >= 0)`` constraint backs that up). Then, in
the same transaction as the consumer's idempotency record, it either confirms the order and
records ``order.fulfilled`` in the outbox, or undoes nothing (no line was reserved: the
transaction is rolled back to a savepoint) and records ``order.rejected`` with the reason.

Stand-in: the orders and fulfillment services share one database here; in production each owns
its tables and fulfillment would keep its own copy of the stock.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from storefront.db.models import Order, Product
from storefront.events import outbox
from storefront.events.envelope import EventEnvelope
from storefront.messaging.consumer import Consumer, ConsumerOptions, InvalidMessageError, Message
from storefront.topology import ORDER_FULFILLED, ORDER_PLACED, ORDER_REJECTED

NAME = "fulfillment"
SCHEMA_VERSIONS = frozenset({1})
"""The ``order.placed`` schema versions this worker understands (others go to the DLQ)."""


class OutOfStockError(Exception):
    """A line cannot be reserved."""


def _reserve(session: Session, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        reserved = session.execute(
            update(Product)
            .where(Product.sku == line["sku"], Product.stock >= line["quantity"])
            .values(stock=Product.stock - line["quantity"], version=Product.version + 1)
            .execution_options(synchronize_session=False)
        )
        if reserved.rowcount != 1:
            raise OutOfStockError(f"not enough stock of {line['sku']}")


# --8<-- [start:fulfill]
def handle(message: Message, session: Session) -> None:
    """Reserve an order's stock and record ``order.fulfilled`` or ``order.rejected``.

    Raises:
        InvalidMessageError: Not an ``order.placed`` event (it ends in the DLQ).
    """
    event = message.envelope
    if event is None or event.type != ORDER_PLACED.detail_type:
        raise InvalidMessageError("fulfillment handles order.placed events only")
    if event.schema_version not in SCHEMA_VERSIONS:
        raise InvalidMessageError(f"order.placed schema version {event.schema_version} unknown")
    order = session.get(Order, uuid.UUID(event.data["order_id"]))
    if order is None or order.status != "pending":
        return  # cancelled before we got to it: nothing to reserve
    outcome, extra = ORDER_FULFILLED, {}
    try:
        with session.begin_nested():  # a savepoint: a failed reservation reserves nothing
            _reserve(session, event.data["lines"])
    except OutOfStockError as error:
        outcome, extra = ORDER_REJECTED, {"reason": str(error)}
    order.status = "confirmed" if outcome is ORDER_FULFILLED else "cancelled"
    data = {key: event.data[key] for key in ("order_id", "customer", "total_minor", "lines")}
    outbox.record(
        session,
        EventEnvelope(
            type=outcome.detail_type,
            source=outcome.source,
            correlation_id=event.correlation_id,
            data={**data, **extra},
        ),
    )


# --8<-- [end:fulfill]


def consumer(
    queue_url: str,
    sessions: sessionmaker[Session],
    *,
    options: ConsumerOptions | None = None,
    sqs: Any = None,
) -> Consumer:
    """The fulfillment worker's consumer (``BootstrapRecord.queues["fulfillment"]``)."""
    return Consumer(NAME, queue_url, handle, sessions, options=options, sqs=sqs)
