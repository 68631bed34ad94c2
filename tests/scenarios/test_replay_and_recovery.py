"""Scenario 4, "Replay and recovery": the analytics store is lost and rebuilt with the same totals.

What runs for real: the bootstrap's bus, rules and archive on a moto server over HTTP (the
archive fills as events pass the bus, ``StartReplay`` and ``DescribeReplay`` are moto's), the
queues, PostgreSQL (the outbox and the consumers' idempotency records) and every service and
worker. What does not: moto replays synchronously and ignores the window and
``Destination.FilterArns`` (so fulfillment and notifications receive the replayed events too,
which this test turns into a proof that their idempotency records absorb them), and the event
store is mongomock, not DocumentDB.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from storefront import aws, recovery, storage
from storefront.db.models import OutboxEvent, Product
from storefront.messaging.consumer import BatchOutcome

from tests.harness.servers import wait_until
from tests.scenarios.shop import Storefront, messages

DASHBOARD = ("orders-per-minute", "revenue-per-product", "funnel")
EVENTS = 8  # 4 order.placed, 2 order.fulfilled, 2 order.rejected


def place_and_settle(shop: Storefront, token: str, lines: list[dict[str, Any]]) -> str:
    """Place an order and pump until fulfillment has decided it; returns its final status."""
    placed = shop.call("orders", "POST", "/orders", token=token, json={"lines": lines})
    assert placed.status_code == 201, placed.text
    path = f"/orders/{placed.json()['order_id']}"

    def decided() -> bool:
        return shop.call("orders", "GET", path, token=token).json()["status"] != "pending"

    shop.run_until(decided, what="fulfillment to decide the order")
    return str(shop.call("orders", "GET", path, token=token).json()["status"])


def dashboard(shop: Storefront, staff: str) -> dict[str, Any]:
    """The staff dashboard's three answers, as the browser gets them."""
    answers = {}
    for name in DASHBOARD:
        response = shop.call("analytics", "GET", f"/analytics/{name}", token=staff)
        assert response.status_code == 200, response.text
        answers[name] = response.json()
    return answers


def drain(shop: Storefront) -> dict[str, BatchOutcome]:
    """Poll every worker until a whole round receives nothing; each worker's counts."""
    totals = {name: BatchOutcome() for name in shop.workers}

    def round_receives_nothing() -> bool:
        shop.relay.drain()
        received = 0
        for name, worker in shop.workers.items():
            outcome = worker.poll_once()
            totals[name].add(outcome)
            received += outcome.received
        return received == 0

    wait_until(round_receives_nothing, what="every queue to be empty", timeout=20)
    return totals


def side_effects(shop: Storefront) -> dict[str, Any]:
    """What a second fulfillment or notification would change: stock, events, receipts."""
    receipts = shop.record.buckets["receipts"].name
    versions = storage.s3_client().list_object_versions(Bucket=receipts).get("Versions", [])
    with shop.sessions() as session:
        stock = {p.sku: p.stock for p in session.scalars(select(Product))}
        outbox = session.scalar(select(func.count()).select_from(OutboxEvent))
    return {"stock": stock, "outbox": outbox, "receipt_versions": len(versions)}


def a_day_of_trading(shop: Storefront) -> tuple[str, dict[str, Any]]:
    """Three products, four orders (two fulfilled, two rejected); the staff token and dashboard."""
    # --8<-- [start:trading]
    with shop.sessions.begin() as session:
        session.add_all(
            [
                Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=3),
                Product(sku="TEE-1", name="Storefront tee", price_minor=2_000, stock=1),
                Product(sku="CAP-1", name="Storefront cap", price_minor=900, stock=5),
            ]
        )
    ada = shop.add_customer(f"ada-{uuid.uuid4().hex[:8]}@example.com")
    bo = shop.add_customer(f"bo-{uuid.uuid4().hex[:8]}@example.com")
    mug, tee, cap = ({"sku": sku, "quantity": 1} for sku in ("MUG-1", "TEE-1", "CAP-1"))
    assert place_and_settle(shop, ada, [{**mug, "quantity": 2}]) == "confirmed"
    assert place_and_settle(shop, bo, [tee, {**cap, "quantity": 2}]) == "confirmed"
    assert place_and_settle(shop, ada, [{**mug, "quantity": 2}]) == "cancelled"  # 1 mug left
    assert place_and_settle(shop, bo, [tee]) == "cancelled"  # no tee left
    shop.run_until(lambda: shop.processed.get("analytics") == EVENTS, what="analytics")
    shop.run_until(lambda: shop.processed.get("notifications") == 4, what="notifications")

    staff = shop.add_staff(f"sam-{uuid.uuid4().hex[:8]}@example.com")
    before = dashboard(shop, staff)
    assert before["funnel"] == {
        "placed": 4,
        "fulfilled": 2,
        "rejected": 2,
        "open": 0,
        "fulfilment_rate": 0.5,
    }
    assert before["revenue-per-product"] == [
        {"sku": "MUG-1", "revenue_minor": 5_000, "units": 4},  # placed, rejected or not
        {"sku": "TEE-1", "revenue_minor": 4_000, "units": 2},
        {"sku": "CAP-1", "revenue_minor": 1_800, "units": 2},
    ]
    assert sum(row["orders"] for row in before["orders-per-minute"]) == 4
    # --8<-- [end:trading]
    return staff, before


def test_a_lost_analytics_store_is_rebuilt_from_the_archive_with_the_same_totals(
    storefront: Storefront,
) -> None:
    shop = storefront
    since = datetime.now(UTC) - timedelta(minutes=1)
    staff, before = a_day_of_trading(shop)
    notified = messages(shop.record.queues["notify-email"].url)
    assert len(notified) == 4  # one per decided order; the queue is empty now
    effects = side_effects(shop)
    assert effects["receipt_versions"] == 2  # the two fulfilled orders

    # --8<-- [start:lose]
    shop.store.events.drop()  # the store is lost
    assert dashboard(shop, staff) == {
        "orders-per-minute": [],
        "revenue-per-product": [],
        "funnel": {
            "placed": 0,
            "fulfilled": 0,
            "rejected": 0,
            "open": 0,
            "fulfilment_rate": None,
        },
    }
    # --8<-- [end:lose]

    # --8<-- [start:naive-replay]
    # A replay alone rebuilds nothing: the analytics consumer's idempotency records say it has
    # already processed every one of these events, so it deletes them without appending.
    naive = recovery.replay_archive(
        archive_arn=shop.record.archive_arn,
        bus_arn=shop.record.event_bus_arn,
        rule_arns=[shop.record.rule_arns["analytics"]],
        since=since,
        until=datetime.now(UTC),
        archive_delay=timedelta(0),  # moto archives during PutEvents; AWS advises 10 minutes
    )
    assert naive.state == "COMPLETED"
    assert drain(shop)["analytics"].duplicates == EVENTS
    assert shop.store.events.count_documents({}) == 0
    # --8<-- [end:naive-replay]

    # --8<-- [start:rebuild]
    rebuild = recovery.rebuild_analytics_from_archive(
        shop.record,
        shop.sessions,
        shop.store,
        since=since,
        until=datetime.now(UTC),
        archive_delay=timedelta(0),  # moto archives during PutEvents; AWS advises 10 minutes
    )
    assert rebuild.forgotten_records == EVENTS
    assert "type_occurred_at" in shop.store.events.index_information()  # indexes recreated
    replay = aws.client("events").describe_replay(ReplayName=rebuild.replay.name)
    assert replay["State"] == "COMPLETED"
    assert replay["Destination"]["FilterArns"] == [shop.record.rule_arns["analytics"]]
    outcomes = drain(shop)
    assert outcomes["analytics"].processed == EVENTS  # every event appended again
    assert dashboard(shop, staff) == before  # the same answers as before the loss
    # --8<-- [end:rebuild]

    # --8<-- [start:nothing-twice]
    # moto ignores FilterArns: fulfillment got the 4 order.placed again, notifications the 4
    # decisions. Their idempotency records absorbed every copy (real EventBridge would have
    # delivered none of them: the replay is filtered to the analytics rule).
    assert (outcomes["fulfillment"].received, outcomes["fulfillment"].processed) == (4, 0)
    assert outcomes["fulfillment"].duplicates == 4
    assert (outcomes["notifications"].received, outcomes["notifications"].processed) == (4, 0)
    assert outcomes["notifications"].duplicates == 4
    assert side_effects(shop) == effects  # no stock reserved twice, no new event, no receipt
    assert messages(shop.record.queues["notify-email"].url) == []  # nobody notified twice
    # --8<-- [end:nothing-twice]

    # --8<-- [start:replay-again]
    again = recovery.rebuild_analytics_from_archive(
        shop.record,
        shop.sessions,
        shop.store,
        since=since,
        until=datetime.now(UTC),
        archive_delay=timedelta(0),
    )
    assert again.replay.name != rebuild.replay.name  # every replay has its own name
    assert drain(shop)["analytics"].processed == EVENTS  # handled again: every append a no-op
    assert shop.store.events.count_documents({}) == EVENTS
    assert dashboard(shop, staff) == before
    # And from the event log: every one of these events is already stored.
    log = recovery.rebuild_from_outbox(shop.sessions, shop.store, since, datetime.now(UTC))
    assert (log.read, log.appended, log.already_stored) == (EVENTS, 0, EVENTS)
    # --8<-- [end:replay-again]


def test_a_lost_analytics_store_is_rebuilt_from_the_outbox_with_the_same_totals(
    storefront: Storefront,
) -> None:
    shop = storefront
    since = datetime.now(UTC) - timedelta(minutes=1)
    staff, before = a_day_of_trading(shop)
    effects = side_effects(shop)

    # --8<-- [start:from-outbox]
    shop.store.events.drop()
    assert dashboard(shop, staff)["funnel"]["placed"] == 0
    # The outbox keeps published rows (published_at set), so they are the event log.
    rebuilt = recovery.rebuild_from_outbox(
        shop.sessions, shop.store, since, datetime.now(UTC), batch_size=3
    )
    assert (rebuilt.read, rebuilt.appended, rebuilt.already_stored) == (EVENTS, EVENTS, 0)
    assert dashboard(shop, staff) == before
    again = recovery.rebuild_from_outbox(shop.sessions, shop.store, since, datetime.now(UTC))
    assert (again.appended, again.already_stored) == (0, EVENTS)  # append returned False
    assert dashboard(shop, staff) == before
    # No queue was involved: nothing reached fulfillment or notifications.
    assert all(outcome.received == 0 for outcome in drain(shop).values())
    assert side_effects(shop) == effects
    # --8<-- [end:from-outbox]
