"""Every endpoint that takes input refuses malformed input with the exact 4xx, a reason, no write.

One table, one row per kind of bad input and endpoint: wrong types, oversized bodies, odd Unicode,
SQL and NoSQL injection strings, negative, zero and huge numbers, unknown fields, malformed JSON,
wrong content types, repeated SKUs, too many lines. Each row states the status it must get and a
fragment of the reason the body must carry (FastAPI's ``detail`` list for 422, the services'
``{"detail": {"error", "reason"}}`` otherwise). Around each request the test counts the rows of
every table and lists the Redis keys: a refusal writes nothing. The one Redis write allowed is the
rate limiter's count for the sender on ``POST /orders``: a bad request counts against the
sender's limit on purpose.

Scenario 5 (``tests/scenarios/test_abuse_and_attack.py``) has the first cases (no lines, zero and
absurd quantities, SQL ``DROP TABLE`` in a SKU, a client price, an unknown product); this table
goes on from there, over every endpoint.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from storefront.db.models import Order, OrderLine, OutboxEvent, ProcessedMessage, Product
from storefront.request_body import MAX_BODY_BYTES

from tests.scenarios.shop import Storefront

LINE = {"sku": "MUG-1", "quantity": 1}


@dataclass(frozen=True)
class Bad:
    """One malformed request and the answer it must get.

    Attributes:
        service: The app called.
        method: The HTTP method.
        path: The path, with any bad path parameter already in it (percent-encoded).
        status: The exact status expected.
        reason: A fragment the answer's reason must contain.
        body: A JSON body (sent as ``application/json``), or None.
        content: Raw bytes sent instead of ``body``.
        headers: Extra request headers (a content type).
        params: Query parameters.
        as_staff: Send a staff token instead of a customer's.
        chunked: Send ``content`` in chunks with no ``Content-Length``.
    """

    service: str
    method: str
    path: str
    status: int
    reason: str
    body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    as_staff: bool = False
    chunked: bool = False


def order(*lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ``POST /orders`` body."""
    return {"lines": list(lines), **extra}


def order_with(**line: Any) -> Bad:
    """A ``POST /orders`` whose only line has ``line``'s fields changed; 422 by default."""
    return Bad("orders", "POST", "/orders", 422, "", body=order({**LINE, **line}))


def post_order(status: int, reason: str, **request: Any) -> Bad:
    """A ``POST /orders`` with a raw request."""
    return Bad("orders", "POST", "/orders", status, reason, **request)


def new_price(status: int, reason: str, *, sku: str = "MUG-1", **request: Any) -> Bad:
    """A staff member's ``PUT /catalog/products/{sku}/price``."""
    path = f"/catalog/products/{sku}/price"
    return Bad("catalog", "PUT", path, status, reason, as_staff=True, **request)


def product(sku: str, reason: str = "String should match pattern") -> Bad:
    """An anonymous ``GET /catalog/products/{sku}`` (``sku`` percent-encoded)."""
    return Bad("catalog", "GET", f"/catalog/products/{sku}", 422, reason)


def dashboard(minutes: str, reason: str) -> Bad:
    """A staff member's ``GET /analytics/funnel?minutes=...``."""
    return Bad(
        "analytics",
        "GET",
        "/analytics/funnel",
        422,
        reason,
        params={"minutes": minutes},
        as_staff=True,
    )


def with_reason(bad: Bad, reason: str) -> Bad:
    """The row with its expected reason set."""
    return Bad(**{**vars(bad), "reason": reason})


TEN_THOUSAND = "A" * 10_000
PADDING = " " * MAX_BODY_BYTES  # JSON whitespace: still valid JSON, one byte over the limit
SQL = "MUG-1' UNION SELECT password FROM users--"
NOSQL = {"$gt": ""}
JSON = {"content-type": "application/json"}

# --8<-- [start:bad-input-table]
BAD_INPUT: dict[str, Bad] = {
    # Wrong types: the models are strict, so "2", true and 1.5 are not quantities.
    "orders: quantity as a string": with_reason(order_with(quantity="2"), "valid integer"),
    "orders: quantity as a boolean": with_reason(order_with(quantity=True), "valid integer"),
    "orders: quantity as a fraction": with_reason(order_with(quantity=1.5), "valid integer"),
    "orders: lines as an object": post_order(422, "valid list", body={"lines": LINE}),
    "orders: body as a JSON array": post_order(422, "valid dictionary", body=[LINE]),
    "orders: body as JSON null": post_order(422, "valid dictionary", content=b"null", headers=JSON),
    "orders: empty body": post_order(422, "Field required", content=b"", headers=JSON),
    "catalog: price as a string": new_price(422, "valid integer", body={"price_minor": "1250"}),
    "analytics: minutes as a word": dashboard("sixty", "valid integer"),
    # Numbers out of range: negative, zero, just over the cap, beyond 64 bits.
    "orders: negative quantity": with_reason(order_with(quantity=-1), "greater than or equal to 1"),
    "orders: quantity over the cap": with_reason(
        order_with(quantity=101), "less than or equal to 100"
    ),
    "orders: quantity beyond 64 bits": with_reason(
        order_with(quantity=2**64), "less than or equal to 100"
    ),
    "catalog: negative price": new_price(
        422, "greater than or equal to 0", body={"price_minor": -1}
    ),
    "catalog: huge price": new_price(
        422, "less than or equal to 100000000", body={"price_minor": 10**20}
    ),
    "analytics: zero minutes": dashboard("0", "greater than or equal to 1"),
    "analytics: negative minutes": dashboard("-5", "greater than or equal to 1"),
    "analytics: huge minutes": dashboard(str(10**30), "less than or equal to 1440"),
    # Odd Unicode: NUL, a lone surrogate (escaped, as JSON allows), right-to-left override, emoji.
    "orders: NUL in a SKU": with_reason(order_with(sku="MUG\x00-1"), "should match pattern"),
    "orders: lone surrogate in a SKU": post_order(
        422,
        "valid string",
        content=b'{"lines": [{"sku": "MUG-\\ud800", "quantity": 1}]}',
        headers=JSON,
    ),
    "orders: right-to-left override in a SKU": with_reason(
        order_with(sku="MUG-\u202e1"), "should match pattern"
    ),
    "orders: emoji in a SKU": with_reason(
        order_with(sku="MUG-\N{HOT BEVERAGE}"), "should match pattern"
    ),
    "orders: 10,000-character SKU": post_order(
        413, "larger than 8192 bytes", body=order({**LINE, "sku": TEN_THOUSAND})
    ),
    "catalog: emoji in a SKU": product("MUG-%E2%98%95"),
    "catalog: NUL in a SKU": product("MUG-%00"),
    "catalog: encoded lone surrogate in a SKU": product("MUG-%ED%A0%80"),
    "catalog: 10,000-character SKU": product(TEN_THOUSAND, "at most 64 characters"),
    "orders: 10,000-character status": Bad(
        "orders",
        "GET",
        "/staff/orders",
        422,
        "Input should be",
        params={"status": TEN_THOUSAND},
        as_staff=True,
    ),
    # Injection: SQL in bodies, paths and queries; NoSQL operators where a value should be.
    "orders: SQL UNION in a SKU": with_reason(order_with(sku=SQL), "should match pattern"),
    "catalog: SQL OR in a SKU": product("MUG-1%27%20OR%20%271%27%3D%271"),
    "catalog: SQL comment in the price path": new_price(
        422, "should match pattern", sku="MUG-1%27--", body={"price_minor": 1}
    ),
    "orders: SQL in an order id": Bad("orders", "GET", "/orders/1%20OR%201%3D1", 422, "valid UUID"),
    "orders: SQL in the status filter": Bad(
        "orders",
        "GET",
        "/staff/orders",
        422,
        "Input should be 'pending'",
        params={"status": "x' OR '1'='1"},
        as_staff=True,
    ),
    "orders: NoSQL operator as a SKU": with_reason(order_with(sku=NOSQL), "valid string"),
    "orders: NoSQL operator as a quantity": with_reason(
        order_with(quantity={"$gt": 0}), "valid integer"
    ),
    "catalog: NoSQL operator as a price": new_price(
        422, "valid integer", body={"price_minor": {"$gt": 0}}
    ),
    "analytics: NoSQL operator as minutes": dashboard('{"$gt": 0}', "valid integer"),
    # Unknown fields: nothing beyond the model is accepted.
    "orders: unknown top-level field": post_order(
        422, "Extra inputs are not permitted", body=order(LINE, coupon="FREE")
    ),
    "catalog: unknown field in a price change": new_price(
        422, "Extra inputs are not permitted", body={"price_minor": 1, "currency": "EUR"}
    ),
    # Lines: one product per line, at most 20 lines.
    "orders: duplicate SKUs in lines": post_order(
        422, "repeated: MUG-1", body=order(LINE, {**LINE, "quantity": 100})
    ),
    "orders: too many lines": post_order(
        422,
        "at most 20 items",
        body=order(*({"sku": f"SKU-{n}", "quantity": 1} for n in range(21))),
    ),
    # Malformed JSON, not UTF-8, the wrong content type.
    "orders: trailing comma": post_order(
        422, "JSON decode error", content=b'{"lines": [],}', headers=JSON
    ),
    "orders: truncated JSON": post_order(
        422, "JSON decode error", content=b'{"lines": [{"sku": "MUG-1"', headers=JSON
    ),
    "catalog: single-quoted JSON": new_price(
        422, "JSON decode error", content=b"{'price_minor': 1}", headers=JSON
    ),
    "orders: UTF-16 body": post_order(
        400, "not UTF-8", content='{"lines": []}'.encode("utf-16"), headers=JSON
    ),
    "orders: form-encoded body": post_order(
        415,
        "must be application/json",
        content=b"sku=MUG-1&quantity=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    "catalog: JSON sent as text/plain": new_price(
        415,
        "must be application/json",
        content=b'{"price_minor": 1}',
        headers={"content-type": "text/plain"},
    ),
    # Oversized bodies: refused before they are parsed, with or without Content-Length.
    "orders: body one byte over the limit": post_order(
        413,
        "larger than 8192 bytes",
        content=json.dumps(order(LINE)).encode() + PADDING.encode(),
        headers=JSON,
    ),
    "orders: chunked body with no length": post_order(
        413, "larger than 8192 bytes", content=b"[" * 100_000, headers=JSON, chunked=True
    ),
    "catalog: oversized price change": new_price(
        413, "larger than 8192 bytes", body={"price_minor": 1, "note": TEN_THOUSAND}
    ),
    "orders: oversized body on cancel": Bad(
        "orders",
        "POST",
        f"/orders/{uuid.UUID(int=0)}/cancel",
        413,
        "larger than 8192 bytes",
        body={"note": TEN_THOUSAND},
    ),
}
# --8<-- [end:bad-input-table]


@dataclass(frozen=True)
class State:
    """What the platform holds: row counts, product prices, Redis keys."""

    rows: dict[str, int]
    prices: dict[str, int]
    redis_keys: frozenset[str]


def state(shop: Storefront) -> State:
    """A snapshot of everything a request could write."""
    with shop.sessions() as session:
        rows = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Product, Order, OrderLine, OutboxEvent, ProcessedMessage)
        }
        prices = dict(session.execute(select(Product.sku, Product.price_minor)).all())
    keys = {key.decode() if isinstance(key, bytes) else key for key in shop.redis.scan_iter()}
    return State(rows=rows, prices=prices, redis_keys=frozenset(keys))


def reason_of(body: Any) -> str:
    """The human-readable reason of a refusal, in either shape."""
    detail = body["detail"]
    if isinstance(detail, list):  # FastAPI's validation error: each field and its message
        return "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in detail)
    return f"{detail['error']}: {detail['reason']}"


async def chunks(content: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """``content`` in pieces, so httpx streams it without a ``Content-Length``."""
    for start in range(0, len(content), size):
        yield content[start : start + size]


@pytest.fixture
def shop(storefront: Storefront) -> Storefront:
    """The platform with data in every table: products, one order, its event, a processed one."""
    with storefront.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))
    token = storefront.add_customer(f"ann-{uuid.uuid4().hex[:8]}@example.com")
    placed = storefront.call("orders", "POST", "/orders", token=token, json=order(LINE))
    assert placed.status_code == 201, placed.text
    storefront.run_until(lambda: storefront.processed.get("analytics", 0) >= 1, what="a processed")
    storefront.call("catalog", "GET", "/catalog/products/MUG-1")  # a cache entry in Redis
    return storefront


# --8<-- [start:bad-input-test]
def test_bad_input_gets_the_exact_4xx_with_a_reason_and_writes_nothing(
    shop: Storefront, subtests: pytest.Subtests
) -> None:
    customer = shop.add_customer(f"bob-{uuid.uuid4().hex[:8]}@example.com")
    staff = shop.add_staff(f"sam-{uuid.uuid4().hex[:8]}@example.com")
    for number, (case, bad) in enumerate(BAD_INPUT.items(), start=1):
        with subtests.test(case):
            peer = f"198.51.100.{number}"  # one client per case: the limiter never interferes
            request: dict[str, Any] = {"headers": bad.headers, "params": bad.params}
            if bad.content is not None:
                request["content"] = chunks(bad.content) if bad.chunked else bad.content
            elif bad.body is not None:
                request["json"] = bad.body
            token = staff if bad.as_staff else customer
            before = state(shop)
            response = shop.call(
                bad.service, bad.method, bad.path, token=token, peer=peer, **request
            )

            assert response.status_code == bad.status, response.text
            assert response.headers["content-type"] == "application/json"
            assert bad.reason in reason_of(response.json()), response.text
            after = state(shop)
            assert (after.rows, after.prices) == (before.rows, before.prices), "rows written"
            # The limiter may have counted the attempt (POST /orders, before the body is read).
            assert after.redis_keys - before.redis_keys <= {f"ratelimit:orders:{peer}"}


# --8<-- [end:bad-input-test]
