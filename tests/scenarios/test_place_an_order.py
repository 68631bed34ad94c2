"""Scenario 1, "Place an order": one customer's order through every service, end to end.

What runs for real: the bootstrap's resources on a moto server over HTTP (Cognito, EventBridge,
SQS, SNS, S3, KMS), PostgreSQL, Redis, and every service of :mod:`storefront.services` (the apps
through ASGI, the workers polling their queues). What does not: Cloudflare, API Gateway, the ALB
and ECS (the apps are called directly), DocumentDB (mongomock), and delivery to a customer's
inbox (the test reads the email channel's queue, where SNS's filter policy put the message).
"""

from __future__ import annotations

import uuid

from opentelemetry import trace
from sqlalchemy import select
from storefront import aws, storage
from storefront.db.models import OutboxEvent, Product
from storefront.telemetry import carrier_from_current_context

from tests.scenarios.shop import PASSWORD, Storefront, body, messages

tracer = trace.get_tracer(__name__)


def test_an_order_reaches_every_service_and_the_dashboard_in_one_trace(
    storefront: Storefront,
) -> None:
    shop = storefront
    with shop.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"

    # --8<-- [start:sign-up]
    cognito = aws.client("cognito-idp")
    cognito.sign_up(
        ClientId=shop.client_id,
        Username=email,
        Password=PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    cognito.confirm_sign_up(ClientId=shop.client_id, Username=email, ConfirmationCode="123456")
    # A post-confirmation trigger does this in the account; moto runs no Lambda triggers.
    cognito.admin_add_user_to_group(
        UserPoolId=shop.record.user_pool_id, Username=email, GroupName="customers"
    )
    token = shop.sign_in(email)
    # --8<-- [end:sign-up]

    # --8<-- [start:browse]
    first = shop.call("catalog", "GET", "/catalog/products/MUG-1")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "sku": "MUG-1",
        "name": "Storefront mug",
        "price_minor": 1_250,
        "in_stock": True,
    }
    assert shop.redis.exists("catalog:product:MUG-1")  # the miss stored the product in Redis
    second = shop.call("catalog", "GET", "/catalog/products/MUG-1")
    assert second.json() == first.json()
    stats = shop.apps["catalog"].state.cache_stats
    assert (stats.misses, stats.hits) == (1, 1)  # a miss, then a hit: PostgreSQL read once
    # Anonymous and public: Cloudflare may keep it for s-maxage seconds.
    assert "s-maxage=300" in second.headers["cache-control"]
    assert second.headers["cache-control"].startswith("public")
    # --8<-- [end:browse]

    # --8<-- [start:place]
    with tracer.start_as_current_span("browser checkout") as checkout:
        placed = shop.call(
            "orders",
            "POST",
            "/orders",
            token=token,
            json={"lines": [{"sku": "MUG-1", "quantity": 2}]},
            headers=carrier_from_current_context(),  # traceparent, as the browser's SDK sends
        )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert (order["status"], order["total_minor"]) == ("pending", 2_500)
    assert placed.headers["cache-control"] == "private, no-store"
    with shop.sessions() as session:  # the order and its event, committed together
        (event,) = session.scalars(select(OutboxEvent)).all()
    assert (event.type, event.payload["order_id"]) == ("order.placed", order["order_id"])
    # --8<-- [end:place]

    # --8<-- [start:relay-and-consume]
    def everyone_is_done() -> bool:
        # fulfillment: order.placed; analytics: placed + fulfilled; notifications: fulfilled.
        done = shop.processed
        return (done.get("fulfillment"), done.get("analytics"), done.get("notifications")) == (
            1,
            2,
            1,
        )

    shop.run_until(everyone_is_done, what="the order to reach every service")
    status = shop.call("orders", "GET", f"/orders/{order['order_id']}", token=token)
    assert status.json()["status"] == "confirmed"
    with shop.sessions() as session:
        assert session.get(Product, "MUG-1").stock == 3  # type: ignore[union-attr]
        assert all(row.published_at for row in session.scalars(select(OutboxEvent)))
    # --8<-- [end:relay-and-consume]

    # --8<-- [start:receipt-and-notification]
    receipts = shop.record.buckets["receipts"]
    (notification,) = messages(shop.record.queues["notify-email"].url)
    sent = body(notification)
    assert (sent["type"], sent["order_id"]) == ("order.fulfilled", order["order_id"])
    head = storage.s3_client().head_object(Bucket=receipts.name, Key=sent["receipt_key"])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == receipts.kms_key_arn
    for channel in ("sms", "webhook"):  # the filter policies kept it out of the other channels
        assert messages(shop.record.queues[f"notify-{channel}"].url) == []
    # --8<-- [end:receipt-and-notification]

    # --8<-- [start:dashboard]
    staff = shop.add_staff(f"sam-{uuid.uuid4().hex[:8]}@example.com")
    funnel = shop.call("analytics", "GET", "/analytics/funnel", token=staff).json()
    assert (funnel["placed"], funnel["fulfilled"], funnel["rejected"]) == (1, 1, 0)
    revenue = shop.call("analytics", "GET", "/analytics/revenue-per-product", token=staff)
    assert revenue.json() == [{"sku": "MUG-1", "revenue_minor": 2_500, "units": 2}]
    per_minute = shop.call("analytics", "GET", "/analytics/orders-per-minute", token=staff)
    assert sum(row["orders"] for row in per_minute.json()) == 1
    # The customer is not staff: the dashboard says so.
    assert shop.call("analytics", "GET", "/analytics/funnel", token=token).status_code == 403
    # --8<-- [end:dashboard]

    # --8<-- [start:one-trace]
    trace_id = checkout.get_span_context().trace_id
    in_trace = {s.name for s in shop.spans.get_finished_spans() if s.context.trace_id == trace_id}
    queues = shop.record.queues
    for hop in (
        "POST /orders",  # the orders service's server span
        f"{queues['fulfillment'].name} process",
        f"{queues['analytics'].name} process",
        f"{queues['notifications'].name} process",
        "notifications publish",
    ):
        assert hop in in_trace, (hop, sorted(in_trace))
    # The trace continues through SNS into the channel queue's message attributes.
    traceparent = notification["MessageAttributes"]["traceparent"]["StringValue"]
    assert traceparent.split("-")[1] == format(trace_id, "032x")
    assert event.trace_context["traceparent"].split("-")[1] == format(trace_id, "032x")  # outbox
    # --8<-- [end:one-trace]


def test_an_order_beyond_the_stock_is_rejected_and_the_customer_told_without_a_receipt(
    storefront: Storefront,
) -> None:
    shop = storefront
    with shop.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=1))
    token = shop.add_customer(f"bo-{uuid.uuid4().hex[:8]}@example.com")
    placed = shop.call(
        "orders", "POST", "/orders", token=token, json={"lines": [{"sku": "MUG-1", "quantity": 2}]}
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    shop.run_until(lambda: shop.processed.get("notifications") == 1, what="the rejection")
    assert shop.call("orders", "GET", f"/orders/{order_id}", token=token).json()["status"] == (
        "cancelled"
    )
    with shop.sessions() as session:
        assert session.get(Product, "MUG-1").stock == 1  # type: ignore[union-attr]  # untouched
    (notification,) = messages(shop.record.queues["notify-email"].url)
    sent = body(notification)
    assert (sent["type"], sent["reason"]) == ("order.rejected", "not enough stock of MUG-1")
    assert "receipt_key" not in sent
    staff = shop.add_staff(f"sam-{uuid.uuid4().hex[:8]}@example.com")
    funnel = shop.call("analytics", "GET", "/analytics/funnel", token=staff).json()
    assert (funnel["placed"], funnel["fulfilled"], funnel["rejected"]) == (1, 0, 1)


def test_a_pending_order_can_be_cancelled_once_by_its_customer_only(
    storefront: Storefront,
) -> None:
    shop = storefront
    with shop.sessions.begin() as session:
        session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))
    token = shop.add_customer(f"cy-{uuid.uuid4().hex[:8]}@example.com")
    other = shop.add_customer(f"di-{uuid.uuid4().hex[:8]}@example.com")
    order_id = shop.call(
        "orders", "POST", "/orders", token=token, json={"lines": [{"sku": "MUG-1", "quantity": 1}]}
    ).json()["order_id"]
    path = f"/orders/{order_id}/cancel"
    assert shop.call("orders", "POST", path, token=other).status_code == 404  # not theirs
    cancelled = shop.call("orders", "POST", path, token=token)
    assert cancelled.json()["status"] == "cancelled"
    again = shop.call("orders", "POST", path, token=token)
    assert again.status_code == 409
    assert again.json()["detail"]["reason"] == "an order that is cancelled cannot be cancelled"
    # Fulfillment receives the order.placed after the cancellation and reserves nothing.
    shop.run_until(lambda: shop.processed.get("fulfillment") == 1, what="fulfillment")
    with shop.sessions() as session:
        assert session.get(Product, "MUG-1").stock == 5  # type: ignore[union-attr]
        types = sorted(session.scalars(select(OutboxEvent.type)))
    assert types == ["order.cancelled", "order.placed"]
