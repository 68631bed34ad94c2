"""The orders service: place and cancel orders, one PostgreSQL transaction each, plus the outbox.

Placing an order writes the order, its lines and an ``order.placed`` event into the outbox in one
transaction (:func:`storefront.events.outbox.record`); the relay
(:class:`storefront.events.relay.OutboxRelay`) publishes the event to EventBridge afterwards. So
either the order and its event both exist, or neither does.

Answers, never a 500 for anything a client sends:

* 429 with ``Retry-After`` when one client places orders faster than the limiter allows;
* 401 without a valid Cognito access token (verified here, :mod:`storefront.auth`); 403 for a
  customer on the staff route (:func:`storefront.auth.require_role`);
* 422 for a malformed body (FastAPI's validation, with the field and the reason), 400 for an
  unknown product, 404 for someone else's order, 409 for an order that can no longer be cancelled;
* 503 with ``Retry-After`` when PostgreSQL is unreachable or the pool is exhausted: the
  transaction never committed, so nothing is half-written, and the client may retry.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from storefront.auth import Principal, Role, authenticated, require_role
from storefront.db.models import Order, OrderLine, Product
from storefront.edge import CachePolicyMiddleware, client_ip, get_trusted_ranges
from storefront.events import outbox
from storefront.events.envelope import EventEnvelope
from storefront.logs import get_logger
from storefront.ratelimit import RateLimiter, rate_limit
from storefront.request_body import RequestBodyMiddleware
from storefront.responses import error_responses, install_validation_handler
from storefront.settings import get_settings
from storefront.topology import ORDER_PLACED

_log = get_logger(__name__)
RETRY_AFTER_S = 5
Customer = Annotated[Principal, Depends(authenticated())]
"""A caller with a verified access token."""
Staff = Annotated[Principal, Depends(require_role(Role.STAFF))]
"""A caller with the staff role."""
ORDER_CANCELLED = "order.cancelled"
OrderStatus = Literal["pending", "confirmed", "shipped", "cancelled"]
"""The statuses an order can have (the ``status_known`` constraint of the orders table)."""


# --8<-- [start:order-body]
class LineIn(BaseModel):
    """One line of a new order."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "2" or true is not a quantity

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    quantity: int = Field(ge=1, le=100)


class NewOrder(BaseModel):
    """The body of ``POST /orders``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lines: list[LineIn] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _one_line_per_product(self) -> NewOrder:
        """Refuse a SKU on two lines: repeated lines would get round the quantity limit."""
        counts = Counter(line.sku for line in self.lines)
        if repeated := sorted(sku for sku, count in counts.items() if count > 1):
            raise ValueError(f"each product goes on one line; repeated: {', '.join(repeated)}")
        return self


# --8<-- [end:order-body]


def order_body(order: Order) -> dict[str, Any]:
    """An order as the API shows it."""
    return {
        "order_id": str(order.id),
        "status": order.status,
        "total_minor": order.total_minor,
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price_minor": line.unit_price_minor}
            for line in order.lines
        ],
    }


@contextmanager
def _database_or_503() -> Iterator[None]:
    """Turn "the database cannot be reached" into a 503 the client may retry."""
    try:
        yield
    except (OperationalError, PoolTimeoutError) as error:
        _log.error("database_unavailable", error=type(error).__name__)
        raise HTTPException(
            503,
            {"error": "database_unavailable", "reason": "orders are unavailable, retry later"},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from error


# --8<-- [start:place-order]
def place_order(session: Session, customer: str, new: NewOrder) -> Order:
    """Price the lines; write the order and its ``order.placed`` event in ``session``'s transaction.

    Raises:
        HTTPException: 400 when a product does not exist.
    """
    skus = {line.sku for line in new.lines}
    prices = dict(
        session.execute(select(Product.sku, Product.price_minor).where(Product.sku.in_(skus))).all()
    )
    if unknown := sorted(skus - prices.keys()):
        raise HTTPException(400, {"error": "unknown_product", "reason": f"no product {unknown}"})
    order = Order(id=uuid.uuid4(), customer=customer, status="pending", total_minor=0)
    for number, line in enumerate(new.lines, start=1):
        price = prices[line.sku]
        order.lines.append(
            OrderLine(line_no=number, sku=line.sku, quantity=line.quantity, unit_price_minor=price)
        )
        order.total_minor += price * line.quantity
    session.add(order)
    outbox.record(
        session,
        EventEnvelope(
            type=ORDER_PLACED.detail_type,
            source=ORDER_PLACED.source,
            correlation_id=str(order.id),
            data={"order_id": str(order.id), "customer": customer, **order_body(order)},
        ),
    )
    return order


# --8<-- [end:place-order]


def client_key(request: Request) -> str:
    """The rate limiter's key: the visitor's address (Cloudflare's header only if trusted)."""
    peer = request.client.host if request.client else ""
    return client_ip(peer, request.headers, get_trusted_ranges(get_settings()))


def create_app(sessions: sessionmaker[Session], limiter: RateLimiter | None = None) -> FastAPI:
    """The orders service's ASGI app.

    Args:
        sessions: Sessions on the orders database.
        limiter: Limits order placement per client (429 with ``Retry-After`` above it); checked
            before the token and the body, so a burst costs one Redis call per request.

    Returns:
        The app.
    """
    app = FastAPI(title="orders")

    def owned(session: Session, order_id: uuid.UUID, principal: Principal) -> Order:
        order = session.get(Order, order_id)
        if order is None or order.customer != principal.subject:
            raise HTTPException(404, {"error": "not_found", "reason": "no such order"})
        return order

    # --8<-- [start:orders-routes]
    limits = [Depends(rate_limit(limiter, client_key))] if limiter else []

    @app.post(
        "/orders",
        status_code=201,
        dependencies=limits,
        responses=error_responses(400, 401, 413, 415, 429, 503),
    )
    def create(new: NewOrder, principal: Customer) -> dict[str, Any]:
        with _database_or_503(), sessions.begin() as session:
            return order_body(place_order(session, principal.subject, new))

    @app.post(
        "/orders/{order_id}/cancel", responses=error_responses(400, 401, 404, 409, 413, 415, 503)
    )
    def cancel(order_id: uuid.UUID, principal: Customer) -> dict[str, Any]:
        with _database_or_503(), sessions.begin() as session:
            order = owned(session, order_id, principal)
            if order.status != "pending":
                reason = f"an order that is {order.status} cannot be cancelled"
                raise HTTPException(409, {"error": "not_cancellable", "reason": reason})
            order.status = "cancelled"
            outbox.record(
                session,
                EventEnvelope(
                    type=ORDER_CANCELLED,
                    source=ORDER_PLACED.source,
                    correlation_id=str(order.id),
                    data={"order_id": str(order.id), "customer": order.customer},
                ),
            )
            return order_body(order)

    # --8<-- [end:orders-routes]

    @app.get("/orders/{order_id}", responses=error_responses(401, 404, 503))
    def read(order_id: uuid.UUID, principal: Customer) -> dict[str, Any]:
        with _database_or_503(), sessions() as session:
            return order_body(owned(session, order_id, principal))

    @app.get("/staff/orders", responses=error_responses(401, 403, 503))
    def pending(_staff: Staff, status: OrderStatus = "pending") -> list[Any]:
        with _database_or_503(), sessions() as session:
            query = select(Order).where(Order.status == status).order_by(Order.created_at)
            return [order_body(order) for order in session.scalars(query.limit(100))]

    # Personal answers: never stored by Cloudflare or a browser.
    install_validation_handler(app)
    app.add_middleware(RequestBodyMiddleware)
    app.add_middleware(CachePolicyMiddleware, public_prefixes=())
    return app
