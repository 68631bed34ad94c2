"""Schemathesis fuzzes each service app against its own OpenAPI schema (issue 10).

For every operation of the catalog, orders and analytics apps, Hypothesis generates requests from
the schema FastAPI serves at ``/openapi.json``: valid ones (positive mode) and ones that break the
schema (negative mode), with a valid staff token from moto's Cognito, and again with no token and
with a forged one. Every answer is held to the schema (status, content type, headers, body) and
must not be a 5xx; invalid input must be refused with a 4xx; with a valid token, schemathesis'
``ignored_auth`` check replays the request without the token and with a wrong one and fails if
the operation answers as if authenticated. Generation is derandomized, so CI sees the same
examples on every run.

The apps are the real ones (:mod:`tests.scenarios.shop`): PostgreSQL, Redis, moto's Cognito.
Products are seeded, and some examples are steered to the seeded SKUs and a placed order, so the
happy paths (201, 200) are reached and checked too, not only the refusals.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from storefront.db.models import Product

from tests.scenarios.shop import Storefront

# --8<-- [start:settings]
EXAMPLES_PER_STRATEGY = 15
"""Examples Hypothesis draws per operation and strategy (a bounded, short run)."""

FUZZ = settings(
    max_examples=EXAMPLES_PER_STRATEGY,
    deadline=None,  # the apps run on real servers: a slow first request is not a failure
    derandomize=True,  # the same examples on every run, so CI is reproducible
    database=None,  # derandomized: nothing to replay from an example database
    # Hypothesis measures the whole request (PostgreSQL, Redis, token checks) as data generation
    # time; that slowness is the servers', not a badly built strategy's.
    suppress_health_check=[HealthCheck.too_slow],
)

SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""Every answer: no 5xx, and status, content type, headers and body as the schema declares."""
# --8<-- [end:settings]

SEEDED = ("MUG-1", "TEE-2", "CAP-3")


def seed(shop: Storefront) -> tuple[str, str]:
    """Products, a staff member and one placed order; returns (staff token, order id)."""
    with shop.sessions.begin() as session:
        for number, sku in enumerate(SEEDED, start=1):
            session.add(
                Product(sku=sku, name=f"Product {number}", price_minor=100 * number, stock=5)
            )
    staff = shop.add_staff(f"fuzz-{uuid.uuid4().hex[:8]}@example.com")
    placed = shop.call(
        "orders", "POST", "/orders", token=staff, json={"lines": [{"sku": "MUG-1", "quantity": 2}]}
    )
    assert placed.status_code == 201, placed.text
    # The analytics dashboard then has an event to report on.
    shop.run_until(lambda: shop.processed.get("analytics", 0) >= 1, what="the event stored")
    return staff, placed.json()["order_id"]


def forged(token: str) -> str:
    """The token with its signature reversed: well-formed, but signed by no one."""
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[::-1]}"


def with_seeded_skus(case: Any) -> Any:
    """The generated order with its lines' SKUs replaced by seeded ones (one line each)."""
    if isinstance(case.body, dict) and isinstance(case.body.get("lines"), list):
        lines = case.body["lines"][: len(SEEDED)]
        case.body = {
            **case.body,
            "lines": [{**line, "sku": sku} for line, sku in zip(lines, SEEDED, strict=False)],
        }
    return case


def strategies(operation: Any, order_id: str, *, authenticated: bool) -> list[Any]:
    """What to draw examples from: the schema's positive and negative cases, plus steered ones."""
    drawn = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if not authenticated:
        return drawn
    parameters = {p.name for p in operation.path_parameters}
    if "sku" in parameters:
        sku = st.sampled_from(SEEDED)
        drawn.append(sku.flatmap(lambda s: operation.as_strategy(path_parameters={"sku": s})))
    if "order_id" in parameters:
        drawn.append(operation.as_strategy(path_parameters={"order_id": order_id}))
    if operation.method.upper() == "POST" and operation.path == "/orders":
        drawn.append(operation.as_strategy(GenerationMode.POSITIVE).map(with_seeded_skus))
    return drawn


def fuzz(
    shop: Storefront,
    service: str,
    *,
    token: str | None,
    order_id: str,
    expect: Callable[[Any, Any], None],
) -> dict[int, int]:
    """Run every operation of ``service`` through the checks; return how often each status came.

    Args:
        shop: The running platform.
        service: The app to fuzz.
        token: The bearer token sent with every request (None: no ``Authorization`` header).
        order_id: A placed order, for steered examples.
        expect: Called with each case and response for the test's own assertion.
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", shop.apps[service])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    statuses: dict[int, int] = {}
    # --8<-- [start:fuzz-loop]
    for result in schema.get_all_operations():
        operation = result.ok()
        for strategy in strategies(operation, order_id, authenticated=token is not None):

            @FUZZ
            @given(case=strategy)
            def run(case: Any) -> None:
                # The rate limiter is proven in scenario 5; here it would turn every order after
                # the tenth into a 429, so each example starts with its counters cleared.
                for key in shop.redis.scan_iter("ratelimit:*"):
                    shop.redis.delete(key)
                negative = case.meta is not None and case.meta.generation.mode.is_negative
                checks = [*SCHEMA_CHECKS, ignored_auth] if token else list(SCHEMA_CHECKS)
                if negative:
                    checks.append(negative_data_rejection)
                response = case.call_and_validate(headers=headers, checks=checks)
                expect(case, response)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            run()
    # --8<-- [end:fuzz-loop]
    return statuses


def secured(case: Any) -> bool:
    """Whether the case's operation declares a security requirement."""
    return bool(case.operation.definition.raw.get("security"))


# --8<-- [start:unauthenticated]
def refused_before_authentication(response: Any) -> bool:
    """A refusal of the body's form, made before the token is looked at.

    The body middleware (413 too large, 415 not JSON, 400 not UTF-8) runs before routing, and
    FastAPI parses a JSON body before it resolves the route's dependencies (422 ``json_invalid``).
    Such an answer says nothing about the resource; everything else must wait for the token.
    """
    if response.status_code in (400, 413, 415):
        return True
    if response.status_code == 422:
        return all(error["type"] == "json_invalid" for error in response.json()["detail"])
    return False


def refused_as_unauthenticated(case: Any, response: Any) -> None:
    """Without a valid token, a secured operation answers 401 with the reason."""
    if secured(case) and not refused_before_authentication(response):
        assert response.status_code == 401, (case.as_curl_command(), response.text)
        assert response.json()["detail"]["error"] == "invalid_token"


# --8<-- [end:unauthenticated]


def anything_conforming(_case: Any, _response: Any) -> None:
    """No assertion beyond the schemathesis checks."""


# --8<-- [start:tests]
@pytest.mark.parametrize("service", ["catalog", "orders", "analytics"])
def test_fuzzing_finds_no_5xx_no_schema_violation_and_no_access_without_a_valid_token(
    storefront: Storefront, service: str
) -> None:
    staff, order_id = seed(storefront)
    statuses = fuzz(storefront, service, token=staff, order_id=order_id, expect=anything_conforming)
    # Both sides were exercised: accepted requests and refused ones.
    assert any(200 <= status < 300 for status in statuses), statuses
    assert any(400 <= status < 500 for status in statuses), statuses
    for token in (None, forged(staff)):
        refused = fuzz(
            storefront, service, token=token, order_id=order_id, expect=refused_as_unauthenticated
        )
        assert 401 in refused, refused


# --8<-- [end:tests]
