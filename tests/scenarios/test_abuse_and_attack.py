"""Scenario 5, "Abuse and attack": each attack stopped at the service, with the right status.

The services are the last line: in production Cloudflare and AWS WAF stop much of this before it
reaches them (the page says where), but every service must hold on its own, because the edge can
be misconfigured or bypassed. What runs: the services of :mod:`storefront.services` through ASGI,
tokens from moto's Cognito (real RS256 signatures), the rate limiter on the real Redis. Not
emulated: Cloudflare, AWS WAF and API Gateway throttling.
"""

from __future__ import annotations

import base64
import json
import uuid

from sqlalchemy import func, select
from storefront.db.models import Order, OutboxEvent, Product

from tests.scenarios.shop import ORDER_LIMIT, Storefront


def nothing_written(shop: Storefront) -> bool:
    with shop.sessions() as session:
        orders = session.scalar(select(func.count(Order.id)))
        events = session.scalar(select(func.count(OutboxEvent.id)))
    return orders == events == 0


def with_claims(token: str, **changes: object) -> str:
    """The token with its claims changed and its signature kept: a forgery."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def unsigned(token: str) -> str:
    """The token re-issued with ``alg: none`` and no signature."""
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{token.split('.')[1]}."


def reason(response: object) -> str:
    return response.json()["detail"]["reason"]  # type: ignore[attr-defined]


def customer(shop: Storefront) -> str:
    return shop.add_customer(f"eve-{uuid.uuid4().hex[:8]}@example.com")


ORDER = {"lines": [{"sku": "MUG-1", "quantity": 1}]}


def test_missing_forged_and_unsigned_tokens_get_401_with_the_reason_and_write_nothing(
    storefront: Storefront,
) -> None:
    shop = storefront
    token = customer(shop)
    # --8<-- [start:tokens]
    attempts = {
        "missing bearer token": None,
        "malformed token": "not-a-jwt",
        # The payload says staff, the signature is the customer's: the signature check fails.
        "signature does not verify": with_claims(token, **{"cognito:groups": ["staff"]}),
        "unsupported signing algorithm": unsigned(token),  # alg: none is never accepted
    }
    for expected, attempt in attempts.items():
        response = shop.call("orders", "POST", "/orders", token=attempt, json=ORDER)
        assert response.status_code == 401, response.text
        assert reason(response) == expected
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert nothing_written(shop)
    # --8<-- [end:tokens]


def test_a_customer_calling_staff_endpoints_gets_403_on_every_service(
    storefront: Storefront,
) -> None:
    shop = storefront
    with shop.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))
    token = customer(shop)
    staff = shop.add_staff(f"sam-{uuid.uuid4().hex[:8]}@example.com")
    # --8<-- [start:roles]
    for service, method, path, body in (
        ("orders", "GET", "/staff/orders", None),
        ("analytics", "GET", "/analytics/funnel", None),
        ("catalog", "PUT", "/catalog/products/MUG-1/price", {"price_minor": 1}),
    ):
        refused = shop.call(service, method, path, token=token, json=body)
        assert refused.status_code == 403, refused.text
        assert reason(refused) == "requires role: staff"
        allowed = shop.call(service, method, path, token=staff, json=body)
        assert allowed.status_code == 200, allowed.text
    # --8<-- [end:roles]
    # The customer's attempt changed nothing; the staff member's change did, and the cache
    # entry was dropped after the commit, so the next read shows the new price.
    product = shop.call("catalog", "GET", "/catalog/products/MUG-1").json()
    assert product["price_minor"] == 1
    # Unknown products are a 404 with a reason, for readers and for staff alike.
    missing = shop.call("catalog", "GET", "/catalog/products/NO-SUCH-SKU")
    assert (missing.status_code, reason(missing)) == (404, "no product NO-SUCH-SKU")
    assert missing.headers["cache-control"] == "private, no-store"  # errors are never cached
    price = shop.call("catalog", "PUT", "/catalog/products/NO-SUCH-SKU/price", token=staff,
                      json={"price_minor": 1})  # fmt: skip
    assert price.status_code == 404


def test_invalid_and_oversized_payloads_get_422_or_400_with_reasons_never_500(
    storefront: Storefront,
) -> None:
    shop = storefront
    with shop.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))
    token = customer(shop)
    line = {"sku": "MUG-1", "quantity": 1}
    # --8<-- [start:payloads]
    invalid = {
        "no lines": {"lines": []},
        "too many lines": {"lines": [line] * 21},
        "zero quantity": {"lines": [{**line, "quantity": 0}]},
        "absurd quantity": {"lines": [{**line, "quantity": 10**9}]},
        "SQL in the SKU": {"lines": [{**line, "sku": "MUG-1'; DROP TABLE orders;--"}]},
        "a price sent by the client": {"lines": [{**line, "unit_price_minor": 0}]},
        # A longer body is refused before parsing (413: tests/proof/test_bad_input.py).
        "a 5,000-character SKU": {"lines": [{**line, "sku": "A" * 5_000}]},
    }
    for case, body in invalid.items():
        response = shop.call("orders", "POST", "/orders", token=token, json=body)
        assert response.status_code == 422, (case, response.text)
        assert response.json()["detail"][0]["msg"], case  # the field and the reason
    not_json = shop.call(
        "orders",
        "POST",
        "/orders",
        token=token,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 422
    unknown = shop.call("orders", "POST", "/orders", token=token, json={"lines": [
        {"sku": "NO-SUCH-SKU", "quantity": 1}]})  # fmt: skip
    assert unknown.status_code == 400
    assert reason(unknown) == "no product ['NO-SUCH-SKU']"
    assert nothing_written(shop)
    # --8<-- [end:payloads]


def test_a_burst_from_one_client_gets_429_with_retry_after_and_others_are_served(
    storefront: Storefront,
) -> None:
    shop = storefront
    attacker, neighbour = "198.51.100.7", "203.0.113.9"
    # --8<-- [start:burst]
    # The limiter runs before the token is checked: a burst costs one Redis call per request.
    for _ in range(ORDER_LIMIT):
        answer = shop.call("orders", "POST", "/orders", json=ORDER, peer=attacker)
        assert answer.status_code == 401
    limited = shop.call("orders", "POST", "/orders", json=ORDER, peer=attacker)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["detail"]["error"] == "rate_limited"
    # Claiming to be someone else through Cloudflare's header does not help: the peer is not a
    # Cloudflare address, so the header is ignored.
    spoofed = shop.call(
        "orders", "POST", "/orders", json=ORDER, peer=attacker,
        headers={"cf-connecting-ip": neighbour},
    )  # fmt: skip
    assert spoofed.status_code == 429
    # Another client is not affected.
    assert shop.call("orders", "POST", "/orders", json=ORDER, peer=neighbour).status_code == 401
    # --8<-- [end:burst]
