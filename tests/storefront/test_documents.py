"""The event store on mongomock, and the DocumentDB connection settings without a server.

No MongoDB-compatible server can be installed here (see ``storefront.documents``): the store and
its pipelines run on mongomock, and the ``mongodb://`` handling is tested by the options it builds
and the pymongo client it configures (which connects lazily, so no server is contacted).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import pymongo
import pytest
from storefront import documents as d
from storefront.events.envelope import EventEnvelope
from storefront.settings import get_settings
from storefront.topology import ORDER_FULFILLED, ORDER_PLACED, ORDER_REJECTED

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> d.EventStore:
    database = d.connect(f"mongomock://localhost/test-{uuid.uuid4().hex[:8]}")
    store = d.EventStore(database)
    store.ensure_indexes()
    return store


def event(kind: Any, order_id: str, at: datetime, **data: Any) -> EventEnvelope:
    return EventEnvelope(
        type=kind.detail_type,
        source=kind.source,
        time=at,
        data={"order_id": order_id, **data},
        trace_context={},
    )


def placed(order_id: str, at: datetime, *lines: tuple[str, int, int]) -> EventEnvelope:
    return event(
        ORDER_PLACED,
        order_id,
        at,
        lines=[{"sku": s, "quantity": q, "unit_price_minor": p} for s, q, p in lines],
    )


def test_an_event_is_appended_once_however_often_it_is_delivered(store: d.EventStore) -> None:
    envelope = placed("o-1", T0, ("SKU-A", 1, 500))
    assert store.append(envelope) is True
    assert store.append(envelope) is False  # a redelivery
    assert store.events.count_documents({}) == 1
    (stored,) = store.history("o-1")
    assert stored.id == str(envelope.id)
    assert stored.occurred_at == T0
    assert stored.aggregate == "order"


def test_a_redelivered_event_with_a_microsecond_time_is_a_duplicate_not_a_conflict(
    store: d.EventStore,
) -> None:
    # A BSON date keeps milliseconds; live events carry microseconds.
    envelope = placed("o-1", T0.replace(microsecond=123_456), ("SKU-A", 1, 500))
    assert store.append(envelope) is True
    assert store.append(envelope) is False
    (stored,) = store.history("o-1")
    assert stored.occurred_at == T0.replace(microsecond=123_000)


def test_another_event_reusing_an_id_is_an_error_not_an_overwrite(store: d.EventStore) -> None:
    original = placed("o-1", T0, ("SKU-A", 1, 500))
    store.append(original)
    impostor = original.model_copy(update={"data": {"order_id": "o-1", "lines": []}})
    with pytest.raises(d.EventConflictError, match=str(original.id)):
        store.append(impostor)
    assert store.history("o-1")[0].data["lines"] == [
        {"sku": "SKU-A", "quantity": 1, "unit_price_minor": 500}
    ]


def test_the_store_has_the_indexes_its_queries_use(store: d.EventStore) -> None:
    indexes = store.events.index_information()
    assert indexes["type_occurred_at"]["key"] == [("type", 1), ("occurred_at", 1)]
    assert indexes["aggregate_occurred_at"]["key"] == [("aggregate_id", 1), ("occurred_at", 1)]
    store.ensure_indexes()  # idempotent
    assert len(store.events.index_information()) == 3


def test_orders_per_minute_counts_placed_orders_in_the_window(store: d.EventStore) -> None:
    store.append(placed("o-1", T0 + timedelta(seconds=5)))
    store.append(placed("o-2", T0 + timedelta(seconds=59)))
    store.append(placed("o-3", T0 + timedelta(minutes=2, seconds=1)))
    store.append(placed("o-4", T0 + timedelta(minutes=10)))  # outside the window
    store.append(placed("o-0", T0 - timedelta(seconds=1)))  # before it
    store.append(event(ORDER_FULFILLED, "o-1", T0 + timedelta(seconds=30)))  # not a placement
    rows = store.orders_per_minute(T0, T0 + timedelta(minutes=10))
    assert rows == [(T0, 2), (T0 + timedelta(minutes=2), 1)]


def test_revenue_per_product_sums_quantity_times_price_and_ranks(store: d.EventStore) -> None:
    store.append(placed("o-1", T0, ("SKU-A", 2, 1_000), ("SKU-B", 1, 300)))
    store.append(placed("o-2", T0 + timedelta(minutes=1), ("SKU-B", 10, 300)))
    store.append(placed("o-3", T0 + timedelta(minutes=2), ("SKU-C", 1, 50)))
    store.append(placed("o-4", T0 + timedelta(hours=2), ("SKU-C", 100, 50)))  # outside
    top = store.revenue_per_product(T0, T0 + timedelta(hours=1), limit=2)
    assert top == [
        d.ProductRevenue(sku="SKU-B", revenue_minor=3_300, units=11),
        d.ProductRevenue(sku="SKU-A", revenue_minor=2_000, units=2),
    ]
    with pytest.raises(ValueError, match="limit"):
        store.revenue_per_product(T0, T0 + timedelta(hours=1), limit=0)


def test_the_funnel_counts_each_order_once_per_stage(store: d.EventStore) -> None:
    for n in range(4):
        store.append(placed(f"o-{n}", T0 + timedelta(seconds=n)))
    store.append(event(ORDER_FULFILLED, "o-0", T0 + timedelta(minutes=1)))
    # o-1's fulfilment was published twice with two ids (two relays): still one order.
    store.append(event(ORDER_FULFILLED, "o-1", T0 + timedelta(minutes=1)))
    store.append(event(ORDER_FULFILLED, "o-1", T0 + timedelta(minutes=2)))
    store.append(event(ORDER_REJECTED, "o-2", T0 + timedelta(minutes=1), reason="out of stock"))
    funnel = store.funnel(T0, T0 + timedelta(hours=1))
    assert funnel == d.Funnel(placed=4, fulfilled=2, rejected=1)
    assert funnel.open == 1
    assert funnel.fulfilment_rate == pytest.approx(2 / 3)
    empty = store.funnel(T0 + timedelta(days=1), T0 + timedelta(days=2))
    assert (empty.placed, empty.open, empty.fulfilment_rate) == (0, 0, None)


def test_a_window_must_end_after_it_starts(store: d.EventStore) -> None:
    with pytest.raises(ValueError, match="end must be after"):
        store.orders_per_minute(T0, T0)


def test_events_of_other_aggregates_use_their_own_id_or_the_event_id(store: d.EventStore) -> None:
    stock = EventEnvelope(
        type="product.restocked", source="storefront.catalog", data={"product_id": "p-9"}
    )
    anonymous = EventEnvelope(type="store.opened", source="storefront.ops", data={})
    assert d.StoredEvent.from_envelope(stock).aggregate_id == "p-9"
    assert d.StoredEvent.from_envelope(anonymous).aggregate_id == str(anonymous.id)


# --- Configuration ---------------------------------------------------------------------------


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_the_default_backend_is_mongomock(fresh_settings: pytest.MonkeyPatch) -> None:
    config = d.documents_config()
    assert config.backend == "mongomock"
    assert config.database == "storefront"
    assert config.uri == "mongodb://localhost/storefront"
    assert config.options == {}
    assert d.connect().name == "storefront"


def test_a_documentdb_url_gets_the_options_documentdb_requires() -> None:
    config = d.documents_config("mongodb://app:s3cret@docdb.cluster.example:27017/analytics")
    assert config.backend == "pymongo"
    assert config.database == "analytics"
    assert config.options == {
        "tls": True,
        "tlsCAFile": "global-bundle.pem",
        "replicaSet": "rs0",
        "readPreference": "secondaryPreferred",
        "retryWrites": False,
    }


def test_options_in_the_url_win_over_the_documentdb_defaults() -> None:
    local = d.documents_config("mongodb://localhost:27017/?tls=false&retryWrites=true")
    assert local.database == "storefront"
    assert local.options == {"replicaSet": "rs0", "readPreference": "secondaryPreferred"}
    engine8 = d.documents_config("mongodb://h/db?RETRYWRITES=true&readpreference=primary")
    assert "retryWrites" not in engine8.options
    assert "readPreference" not in engine8.options


def test_the_same_code_gets_a_configured_pymongo_client_from_a_documentdb_url(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    fresh_settings.setenv(
        "STOREFRONT_DOCUMENTS_URL",
        f"mongodb://app:pw@docdb.cluster.invalid:27017/analytics?tlsCAFile={certifi.where()}",
    )
    database = d.connect()
    try:
        assert isinstance(database.client, pymongo.MongoClient)
        assert database.name == "analytics"
        options = database.client.options
        assert options.replica_set_name == "rs0"
        assert options.read_preference == pymongo.ReadPreference.SECONDARY_PREFERRED
        assert options.retry_writes is False
        assert options.pool_options._ssl_context is not None  # TLS on
        assert database.client.codec_options.tz_aware is True
        assert d.EventStore(database).events.name == "events"
    finally:
        database.client.close()


def test_a_missing_ca_bundle_is_reported_before_any_connection(tmp_path: Path) -> None:
    missing = tmp_path / "global-bundle.pem"
    with pytest.raises(ValueError, match=r"tlsCAFile .* does not exist"):
        d.connect(f"mongodb://h:27017/db?tlsCAFile={missing}")
    with pytest.raises(ValueError, match=r"global-bundle\.pem' does not exist"):
        d.connect("mongodb://h:27017/db")  # the default bundle is not in the working directory


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db", "use mongodb://"),
        ("mongodb+srv://cluster.example/db", "use mongodb://"),
        ("mongodb://h/db?tls=maybe", "tls must be true or false"),
        ("mongodb://h/db?retryWrites=1", "retryWrites must be true or false"),
    ],
)
def test_unusable_urls_are_rejected_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        d.documents_config(url)


def test_the_in_memory_backend_without_mongomock_says_what_to_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mongomock", None)  # as in an image without test extras
    with pytest.raises(ValueError, match="set STOREFRONT_DOCUMENTS_URL"):
        d.connect("mongomock://localhost/storefront")
