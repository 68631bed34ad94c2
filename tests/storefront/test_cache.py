"""Cache-aside against a real redis-server: hits, lifetimes, one load per stampede, outages."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from storefront.cache import CatalogCache, make_redis, product_key, product_keys
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.db.models import Product

from tests.harness.servers import free_port, wait_until


class Loader:
    """A loader that counts its calls, optionally blocking until released."""

    def __init__(self, value: Any, *, block: bool = False) -> None:
        self.value = value
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        self.started.set()
        assert self.release.wait(timeout=10), "the test never released the loader"
        return self.value


class SpyRedis(redis.Redis):
    """Records which threads polled for a lock (``EXISTS`` is only called while waiting)."""

    waiting_threads: set[int]

    def exists(self, *names: Any) -> Any:
        self.waiting_threads.add(threading.get_ident())
        return super().exists(*names)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = make_redis(redis_url)
    yield client
    client.close()


def test_a_miss_loads_once_and_the_next_read_is_a_hit(client: redis.Redis) -> None:
    cache = CatalogCache(client)
    loader = Loader({"sku": "MUG", "price_minor": 1299})

    first = cache.get_or_load("product:MUG", loader)
    second = cache.get_or_load("product:MUG", loader)

    assert first == second == {"sku": "MUG", "price_minor": 1299}
    assert loader.calls == 1
    assert client.get("catalog:product:MUG") == b'{"sku":"MUG","price_minor":1299}'


def test_each_lifetime_lies_within_ttl_and_ttl_plus_jitter_and_they_differ(
    client: redis.Redis,
) -> None:
    cache = CatalogCache(client, ttl_s=100, jitter_s=20, rng=random.Random(7))  # noqa: S311 - test jitter

    for n in range(20):
        cache.get_or_load(f"product:{n}", Loader({"n": n}))
    lifetimes = [client.pttl(f"catalog:product:{n}") for n in range(20)]

    assert all(99_000 < ms <= 120_000 for ms in lifetimes), lifetimes
    assert len({round(ms / 1000) for ms in lifetimes}) > 1, "no jitter"


def test_a_missing_product_is_cached_briefly_as_not_found(client: redis.Redis) -> None:
    cache = CatalogCache(client, ttl_s=300, negative_ttl_s=15)
    loader = Loader(None)

    assert cache.get_or_load("product:NOPE", loader) is None
    assert cache.get_or_load("product:NOPE", loader) is None

    assert loader.calls == 1
    assert 0 < client.ttl("catalog:product:NOPE") <= 15


def test_without_negative_caching_every_miss_asks_the_database(client: redis.Redis) -> None:
    cache = CatalogCache(client, negative_ttl_s=None)
    loader = Loader(None)

    cache.get_or_load("product:NOPE", loader)
    cache.get_or_load("product:NOPE", loader)

    assert loader.calls == 2
    assert client.exists("catalog:product:NOPE") == 0


def test_concurrent_callers_on_a_cold_hot_key_cause_exactly_one_load(redis_url: str) -> None:
    spy = SpyRedis.from_url(redis_url)
    spy.waiting_threads = set()
    cache = CatalogCache(spy, wait_s=10)
    loader = Loader({"sku": "HOT"}, block=True)
    callers = 12
    results: list[Any] = []

    def read() -> None:
        results.append(cache.get_or_load("product:HOT", loader))

    threads = [threading.Thread(target=read) for _ in range(callers)]
    for thread in threads:
        thread.start()
    # Hold the load until every other caller is waiting for it.
    wait_until(loader.started.is_set, what="the first load", timeout=10)
    wait_until(
        lambda: len(spy.waiting_threads) == callers - 1,
        what="the other callers to wait",
        timeout=10,
    )
    loader.release.set()
    for thread in threads:
        thread.join(timeout=10)
    spy.close()

    assert loader.calls == 1
    assert results == [{"sku": "HOT"}] * callers


def test_when_the_lock_holder_dies_the_next_caller_loads(client: redis.Redis) -> None:
    cache = CatalogCache(client, wait_s=10)
    client.set("catalog:product:ORPHAN:lock", "dead-holder", px=150)  # its holder crashed
    loader = Loader({"sku": "ORPHAN"})

    value = cache.get_or_load("product:ORPHAN", loader)

    assert value == {"sku": "ORPHAN"}
    assert loader.calls == 1
    assert client.get("catalog:product:ORPHAN:lock") is None  # our own lock was released


def test_a_caller_that_waits_past_its_deadline_loads_by_itself(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CatalogCache(client, wait_s=0.1)
    client.set("catalog:product:SLOW:lock", "busy-holder", px=60_000)
    loader = Loader({"sku": "SLOW"})

    with caplog.at_level(logging.WARNING, logger="storefront.cache"):
        value = cache.get_or_load("product:SLOW", loader)

    assert value == {"sku": "SLOW"}
    assert loader.calls == 1
    assert "wait timed out" in caplog.text
    assert client.get("catalog:product:SLOW:lock") == b"busy-holder"  # not ours to delete


class RacingRedis(redis.Redis):
    """Another caller stores the value between our miss and our lock."""

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("nx"):
            super().set("catalog:product:RACE", b'{"sku":"RACE","by":"other"}')
        return super().set(name, value, *args, **kwargs)


def test_a_value_stored_by_another_caller_just_before_our_lock_is_used(redis_url: str) -> None:
    racing = RacingRedis.from_url(redis_url)
    cache = CatalogCache(racing)
    loader = Loader({"sku": "RACE", "by": "us"})

    value = cache.get_or_load("product:RACE", loader)
    racing.close()

    assert value == {"sku": "RACE", "by": "other"}
    assert loader.calls == 0


def test_a_corrupt_entry_is_treated_as_a_miss(client: redis.Redis) -> None:
    cache = CatalogCache(client)
    client.set("catalog:product:BAD", b"\xff not json")
    loader = Loader({"sku": "BAD"})

    assert cache.get_or_load("product:BAD", loader) == {"sku": "BAD"}
    assert loader.calls == 1


def test_redis_down_serves_from_the_loader_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    down = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    now = [0.0]
    cache = CatalogCache(down, outage_backoff_s=5, clock=lambda: now[0])
    loader = Loader({"sku": "MUG"})

    with caplog.at_level(logging.ERROR, logger="storefront.cache"):
        first = cache.get_or_load("product:MUG", loader)
        second = cache.get_or_load("product:MUG", loader)  # within the back-off: Redis skipped
        errors_during_backoff = len(caplog.records)
        now[0] = 6.0
        third = cache.get_or_load("product:MUG", loader)  # back-off over: Redis tried again
        cache.invalidate("product:MUG")

    assert first == second == third == {"sku": "MUG"}
    assert loader.calls == 3
    assert errors_during_backoff == 1
    assert len(caplog.records) == 3
    assert "cache unavailable" in caplog.records[0].getMessage()
    assert "ConnectionError" in caplog.records[0].getMessage()


def test_a_redis_that_rejects_writes_still_serves_the_value_once(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CatalogCache(client)
    loader = Loader({"sku": "FULL"})
    original = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", 1)  # with noeviction, every SET now fails with OOM
    try:
        with caplog.at_level(logging.ERROR, logger="storefront.cache"):
            value = cache.get_or_load("product:FULL", loader)
    finally:
        client.config_set("maxmemory", original)

    assert value == {"sku": "FULL"}
    assert loader.calls == 1
    assert "OutOfMemoryError" in caplog.text


class DroppingRedis(redis.Redis):
    """The connection drops after the load: storing the value fails."""

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("nx"):
            raise redis.ConnectionError("connection reset by peer")
        return super().set(name, value, *args, **kwargs)


def test_a_value_whose_store_fails_is_returned_without_loading_again(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    dropping = DroppingRedis.from_url(redis_url)
    cache = CatalogCache(dropping)
    loader = Loader({"sku": "LOST"})

    with caplog.at_level(logging.ERROR, logger="storefront.cache"):
        value = cache.get_or_load("product:LOST", loader)
    lock_left = dropping.exists("catalog:product:LOST:lock")
    dropping.close()

    assert value == {"sku": "LOST"}
    assert loader.calls == 1
    assert lock_left == 0
    assert "connection reset by peer" in caplog.text


@pytest.fixture
def engine(postgres_dsn: str) -> Iterator[Engine]:
    migrations.upgrade(postgres_dsn)
    engine = make_engine(postgres_dsn, PoolSettings())
    yield engine
    engine.dispose()


def load_product(engine: Engine, sku: str) -> dict[str, Any] | None:
    with make_session_factory(engine)() as session:
        product = session.get(Product, sku)
        if product is None:
            return None
        return {"sku": product.sku, "name": product.name, "price_minor": product.price_minor}


def test_a_committed_write_invalidates_and_the_next_read_sees_it(
    client: redis.Redis, engine: Engine
) -> None:
    cache = CatalogCache(client)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(Product(sku="MUG", name="Mug", price_minor=1299, stock=5))
    before = cache.get_or_load(product_key("MUG"), lambda: load_product(engine, "MUG"))

    with factory.begin() as session:
        session.get_one(Product, "MUG").price_minor = 999
        cache.invalidate_on_commit(session, *product_keys(["MUG"]))
        cache.invalidate_on_commit(session, product_key("MUG"))  # twice is harmless
        still_cached_inside_the_transaction = client.exists(cache.key(product_key("MUG")))
    after = cache.get_or_load(product_key("MUG"), lambda: load_product(engine, "MUG"))

    assert before == {"sku": "MUG", "name": "Mug", "price_minor": 1299}
    assert still_cached_inside_the_transaction == 1
    assert after == {"sku": "MUG", "name": "Mug", "price_minor": 999}


def test_a_rolled_back_write_leaves_the_cache_alone(client: redis.Redis, engine: Engine) -> None:
    cache = CatalogCache(client)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(Product(sku="CUP", name="Cup", price_minor=500, stock=5))
    cache.get_or_load(product_key("CUP"), lambda: load_product(engine, "CUP"))

    with factory() as session:
        session.get_one(Product, "CUP").price_minor = 1
        cache.invalidate_on_commit(session, product_key("CUP"))
        session.rollback()
        session.commit()  # a later commit of the same session has nothing to invalidate

    assert client.exists(cache.key(product_key("CUP"))) == 1
    assert load_product(engine, "CUP") == {"sku": "CUP", "name": "Cup", "price_minor": 500}
