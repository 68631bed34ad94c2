"""The analytics service: every event into the event store, and a staff dashboard over it.

The worker consumes the analytics queue (an EventBridge rule sends it every ``storefront.*``
event) and appends each envelope to the DocumentDB event store
(:meth:`storefront.documents.EventStore.append`, idempotent on the event id). The dashboard is a
small FastAPI app whose routes need the ``staff`` role (the JWT is verified here): orders per
minute, revenue per product and the order funnel over the last ``minutes`` minutes.

The consumer's PostgreSQL idempotency record and the append are not one transaction (DocumentDB
is another database); the append is idempotent on its own, so a redelivery after a crash between
the two stores nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from sqlalchemy.orm import Session, sessionmaker

from storefront.auth import Principal, Role, require_role
from storefront.documents import EventStore
from storefront.edge import CachePolicyMiddleware
from storefront.messaging.consumer import Consumer, ConsumerOptions, InvalidMessageError, Message
from storefront.responses import error_responses

NAME = "analytics"
Minutes = Annotated[int, Query(ge=1, le=24 * 60)]
Staff = Annotated[Principal, Depends(require_role(Role.STAFF))]


def handler(store: EventStore) -> Any:
    """The worker's handler: append the message's event to ``store``."""

    # --8<-- [start:append-event]
    def handle(message: Message, _session: Session) -> None:
        if message.envelope is None:
            raise InvalidMessageError("analytics stores domain events only")
        store.append(message.envelope)

    # --8<-- [end:append-event]
    return handle


def consumer(
    queue_url: str,
    sessions: sessionmaker[Session],
    store: EventStore,
    *,
    options: ConsumerOptions | None = None,
    sqs: Any = None,
) -> Consumer:
    """The analytics worker's consumer (``BootstrapRecord.queues["analytics"]``)."""
    return Consumer(NAME, queue_url, handler(store), sessions, options=options, sqs=sqs)


# --8<-- [start:dashboard]
def create_app(store: EventStore) -> FastAPI:
    """The dashboard's ASGI app (staff only).

    Args:
        store: The event store.

    Returns:
        The app.
    """
    app = FastAPI(title="analytics", responses=error_responses(401, 403))  # every route: staff

    def window(minutes: int) -> tuple[datetime, datetime]:
        until = datetime.now(UTC) + timedelta(minutes=1)
        return until - timedelta(minutes=minutes + 1), until

    @app.get("/analytics/orders-per-minute")
    def orders_per_minute(_: Staff, minutes: Minutes = 60) -> list[Any]:
        return [
            {"minute": minute.isoformat(), "orders": orders}
            for minute, orders in store.orders_per_minute(*window(minutes))
        ]

    @app.get("/analytics/revenue-per-product")
    def revenue(_: Staff, minutes: Minutes = 60) -> list[Any]:
        return [vars(row) for row in store.revenue_per_product(*window(minutes))]

    @app.get("/analytics/funnel")
    def funnel(_: Staff, minutes: Minutes = 60) -> dict[str, Any]:
        result = store.funnel(*window(minutes))
        return {**vars(result), "open": result.open, "fulfilment_rate": result.fulfilment_rate}

    # Personal answers: never stored by Cloudflare or a browser.
    app.add_middleware(CachePolicyMiddleware, public_prefixes=())
    return app


# --8<-- [end:dashboard]
