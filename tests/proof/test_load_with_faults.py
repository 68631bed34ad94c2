"""Load with faults, nothing lost (issue 10).

A thousand orders are placed concurrently over HTTP (the orders and catalog apps served by a
real uvicorn on 127.0.0.1) while the fulfillment worker, a separate OS process
(``python -m storefront.services.worker``), is SIGKILLed and started again, Redis (the rate
limiter's and the cache's) is stopped and started again on the same port, and the outbox relay
loses the record of having published some events (so it publishes them twice). Afterwards every
committed order has exactly one decision and exactly one analytics record per event, the stock
adds up, and every dead-letter queue is empty.

``STOREFRONT_LOAD_ORDERS`` sets the number of orders (default 1000). The test asserts counts,
never timings; ``pytest -s`` prints the summary table, which is also attached to the report with
``record_property``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send
from storefront import aws
from storefront.cache import CatalogCache, make_redis
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.db.models import Order, OrderLine, OutboxEvent, ProcessedMessage, Product
from storefront.events.relay import OutboxRelay
from storefront.messaging.consumer import BatchOutcome, Consumer, ConsumerOptions
from storefront.ratelimit import RateLimiter
from storefront.services import analytics, catalog, fulfillment, orders

from tests.harness.servers import RedisProcess, free_port, run_restartable_redis, wait_until
from tests.scenarios.shop import Storefront

ORDERS = int(os.environ.get("STOREFRONT_LOAD_ORDERS", "1000"))
IN_FLIGHT = 48  # requests in flight at once
CUSTOMERS = 8
# Every simulated customer connects from 127.0.0.1, and the orders limiter keys on the client's
# address (storefront.edge.client_ip), so all of them share one budget. The production limit
# (10 orders per client per minute) would turn the run into a wait; this one still answers 429
# to bursts (the first IN_FLIGHT requests arrive at once), which the client retries after
# Retry-After, like a real client.
RATE_LIMIT, RATE_WINDOW_S = 20, 1.0
# A shorter visibility timeout than the queue's 60 s, so that the messages the killed worker had
# in flight come back within the run (SQS applies the same rule, only later).
VISIBILITY_S = 10
# Relay records "lost" (published, then the commit that marked them failed): published again.
REPUBLISHED = 50
PRODUCTS = {  # sku: (price in minor units, initial stock)
    "MUG-1": (1_250, 1_000_000),
    "TEE-1": (2_000, 1_000_000),
    "LAST-1": (9_900, ORDERS // 10),  # a fifth of the orders want 2 on average: it runs out
}
WORKER_POLL = ConsumerOptions(
    wait_time_s=1, visibility_timeout_s=VISIBILITY_S, heartbeat_interval_s=3.0,
    retry_delay_s=lambda _count: 0,
)  # fmt: skip
# The server keeps idle connections open longer than the client does (httpx: 5 s), or the server
# may close one just as the client sends the next request on it (a reset, not an answer).
KEEP_ALIVE_S = 75
DEADLINE_S = 900.0
WORK_QUEUES = (
    "fulfillment",
    "analytics",
    "notifications",
)  # for each phase; the counts are asserted, not the time taken


# --- The load -------------------------------------------------------------------------------


def order_bodies(count: int, seed: int = 10) -> list[dict[str, Any]]:
    """``count`` order bodies: one or two lines, a fifth of them wanting the scarce product."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    bodies = []
    for _ in range(count):
        skus = ["LAST-1"] if rng.random() < 0.2 else []
        skus += rng.sample(["MUG-1", "TEE-1"], rng.randint(1, 2 - len(skus)))
        bodies.append({"lines": [{"sku": s, "quantity": rng.randint(1, 3)} for s in skus]})
    return bodies


@dataclass
class LoadResult:
    """What the clients saw.

    Attributes:
        committed: The order ids answered with 201.
        retried: Answers that asked for a retry, by status (429, 503).
        unexpected: Any other answer or transport error (the test expects none).
        catalog_reads: Product reads answered 200 (served from the cache or PostgreSQL).
    """

    committed: list[str] = field(default_factory=list)
    retried: collections.Counter[int] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)
    catalog_reads: int = 0


# --8<-- [start:load]
async def place_orders(
    base_url: str, tokens: list[str], bodies: list[dict[str, Any]]
) -> LoadResult:
    """Place every order over HTTP, ``IN_FLIGHT`` at a time; retry 429 and 503 after Retry-After.

    Every fifth order first reads its first product from the catalog, as a shopper would.
    """
    result = LoadResult()
    gate = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(number: int, body: dict[str, Any]) -> None:
            headers = {"authorization": f"Bearer {tokens[number % len(tokens)]}"}
            async with gate:
                if number % 5 == 0:
                    read = await client.get(f"/catalog/products/{body['lines'][0]['sku']}")
                    if read.status_code != 200:
                        result.unexpected.append(f"catalog {read.status_code}: {read.text}")
                    result.catalog_reads += read.status_code == 200
                while True:
                    answer = await client.post("/orders", json=body, headers=headers)
                    if answer.status_code == 201:
                        result.committed.append(answer.json()["order_id"])
                        return
                    if answer.status_code not in (429, 503):
                        result.unexpected.append(f"{answer.status_code}: {answer.text}")
                        return
                    result.retried[answer.status_code] += 1
                    await asyncio.sleep(
                        float(answer.headers["retry-after"])
                    )  # the client's back-off

        await asyncio.gather(*(one(number, body) for number, body in enumerate(bodies)))
    return result


# --8<-- [end:load]


# --- The platform's processes and threads -----------------------------------------------------


def route_by_path(apps: dict[str, ASGIApp]) -> ASGIApp:
    """One ASGI app in front of the catalog and orders apps (the ALB's path rules' stand-in)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        name = "catalog" if scope.get("path", "").startswith("/catalog/") else "orders"
        await apps[name](scope, receive, send)

    return app


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False,
        log_level="warning", timeout_keep_alive=KEEP_ALIVE_S,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# --8<-- [start:worker-process]
def start_worker_process(queue_url: str, database_url: str, log: Path) -> subprocess.Popen[str]:
    """Start the fulfillment worker as its own OS process, as its ECS task would run it."""
    command = [
        sys.executable, "-m", "storefront.services.worker", fulfillment.NAME,
        "--queue-url", queue_url, "--wait-time-s", "1",
        "--visibility-timeout-s", str(VISIBILITY_S), "--heartbeat-interval-s", "3",
    ]  # fmt: skip
    environment = {**os.environ, "STOREFRONT_DATABASE_URL": database_url}
    with log.open("a") as stderr:
        return subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True
        )


# --8<-- [end:worker-process]


class Background:
    """Threads that run until told to stop: the relay and the in-process workers."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.consumers: list[Consumer] = []
        self.outcomes: dict[str, BatchOutcome] = {}

    def run(self, name: str, target: Callable[[], object]) -> None:
        """Run ``target`` in a daemon thread; an exception is kept for the test to raise."""

        def guarded() -> None:
            try:
                target()
            except BaseException as error:  # re-raised in the test's thread by close()
                self.errors.append(error)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def consume(self, consumer: Consumer) -> None:
        """Run a consumer until :meth:`close`; its counts end up in ``outcomes``."""
        self.consumers.append(consumer)
        key = f"{consumer.name}-{len(self.consumers)}"

        def target() -> None:
            self.outcomes[key] = consumer.run()

        self.run(f"{consumer.name}-consumer", target)

    def close(self) -> None:
        """Stop everything, wait for it, raise the first error a thread had."""
        self.stop.set()
        for consumer in self.consumers:
            consumer.request_stop()
        for thread in self._threads:
            thread.join(timeout=60)
        if self.errors:
            raise self.errors[0]


# --- Reading the outcome ----------------------------------------------------------------------


def scalar(sessions: sessionmaker[Session], query: Any) -> int:
    """One count from PostgreSQL."""
    with sessions() as session:
        return int(session.scalar(query) or 0)


def depth(url: str) -> int:
    """Messages in a queue, visible or in flight (moto's approximate counts are exact)."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def processed(sessions: sessionmaker[Session], consumer: str) -> int:
    """Messages a consumer has applied (its idempotency records)."""
    return scalar(
        sessions,
        select(func.count(ProcessedMessage.id)).where(ProcessedMessage.consumer == consumer),
    )


# --- The test ---------------------------------------------------------------------------------


@pytest.fixture
def moto_parses_input_paths_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's EventBridge fast enough for thousands of events (the emulator, not the code).

    moto 5.2.5 builds a new JSONPath parser (ply's tables) for every input path of every event it
    delivers to a target, some 30 ms each, three targets per event. Parsing is a pure function of
    the path, so its results are cached; the moto server runs in this process, so the cache
    applies to it.
    """
    import jsonpath_ng.ext

    monkeypatch.setattr(jsonpath_ng.ext, "parse", functools.cache(jsonpath_ng.ext.parse))


@dataclass
class Faults:
    """The faults injected, and when (counts at the moment of injection)."""

    worker_kills: int = 0
    processed_at_kill: int = 0
    redis_restarts: int = 0
    committed_at_redis_restart: int = 0
    republished: int = 0


def inject_faults(
    sessions: sessionmaker[Session],
    worker: dict[str, subprocess.Popen[str]],
    restart_worker: Callable[[], subprocess.Popen[str]],
    redis_process: RedisProcess,
    faults: Faults,
    background: Background,
    second_worker: Consumer,
) -> None:
    """Kill the worker process, restart Redis, make the relay publish some events twice."""
    # --8<-- [start:faults]
    # 1. SIGKILL the fulfillment worker once it has applied a tenth of the orders (a batch of
    #    up to ten messages is in its hands), then start it again, and a second worker too.
    threshold = max(ORDERS // 10, 1)
    wait_until(
        lambda: processed(sessions, fulfillment.NAME) >= threshold,
        what="a tenth of the orders fulfilled",
        timeout=DEADLINE_S,
    )
    worker["process"].kill()  # SIGKILL: no handler runs, nothing is released or committed
    worker["process"].communicate(timeout=30)
    faults.worker_kills += 1
    faults.processed_at_kill = processed(sessions, fulfillment.NAME)
    worker["process"] = restart_worker()
    background.consume(second_worker)

    # 2. Restart Redis on the same port once half the orders are committed.
    half = ORDERS // 2
    wait_until(
        lambda: scalar(sessions, select(func.count(Order.id))) >= half,
        what="half of the orders committed",
        timeout=DEADLINE_S,
    )
    faults.committed_at_redis_restart = scalar(sessions, select(func.count(Order.id)))
    redis_process.restart()
    faults.redis_restarts = redis_process.restarts

    # 3. The relay "dies" after PutEvents, before its commit, for REPUBLISHED placed events:
    #    they are unsent again, and the relay publishes them a second time.
    with sessions.begin() as session:
        ids = session.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.type == "order.placed", OutboxEvent.published_at.is_not(None))
            .limit(REPUBLISHED)
        ).all()
        session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=None)
        )
    faults.republished = len(ids)
    # --8<-- [end:faults]


@pytest.mark.usefixtures("moto_parses_input_paths_once")
def test_orders_under_load_with_a_killed_worker_and_a_restarted_redis_lose_nothing(
    storefront: Storefront,
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    shop = storefront
    started = time.monotonic()
    with shop.sessions.begin() as session:
        for sku, (price, stock) in PRODUCTS.items():
            session.add(Product(sku=sku, name=sku, price_minor=price, stock=stock))
    tokens = [shop.add_customer(f"load-{number}@example.com") for number in range(CUSTOMERS)]
    queues = shop.record.queues
    sqs = aws.client("sqs")
    sqs.set_queue_attributes(
        QueueUrl=queues["fulfillment"].url, Attributes={"VisibilityTimeout": str(VISIBILITY_S)}
    )

    # Each part gets its own connection pool, as each would be its own ECS task.
    def pool(name: str, size: int = 5) -> sessionmaker[Session]:
        engine = make_engine(postgres_dsn, PoolSettings(application_name=name, pool_size=size))
        engines.append(engine)
        return make_session_factory(engine)

    engines: list[Any] = []
    background = Background()
    faults = Faults()
    log = tmp_path / "worker.log"
    worker: dict[str, subprocess.Popen[str]] = {}
    outputs: list[str] = []

    def restart_worker() -> subprocess.Popen[str]:
        return start_worker_process(queues["fulfillment"].url, postgres_dsn, log)

    with run_restartable_redis(tmp_path) as redis_process:
        redis_client = make_redis(redis_process.server.url)
        limiter = RateLimiter(redis_client, limit=RATE_LIMIT, window_s=RATE_WINDOW_S, name="load")
        catalog_app = catalog.create_app(pool("catalog"), CatalogCache(redis_client))
        apps: dict[str, ASGIApp] = {
            "orders": orders.create_app(pool("orders", 10), limiter),
            "catalog": catalog_app,
        }
        # The relay holds its claim's transaction open while PutEvents runs: its sessions get an
        # idle-in-transaction limit above the slowest call (moto's, here), as relay.py asks.
        relay_pool = PoolSettings(application_name="relay", idle_in_transaction_timeout_ms=120_000)
        relay_engine = make_engine(postgres_dsn, relay_pool)
        engines.append(relay_engine)
        relay = OutboxRelay(make_session_factory(relay_engine), bus_name=shop.record.event_bus_name)
        background.run("relay", lambda: relay.run_forever(background.stop, idle_wait_s=0.2))
        for _ in range(2):  # two analytics tasks: the analytics queue gets two events per order
            background.consume(
                analytics.consumer(
                    queues["analytics"].url, pool("analytics", 2), shop.store, options=WORKER_POLL
                )
            )
        # The notifications worker's stand-in: it only records each decision it receives (moto's
        # queues slow down as they grow, so the queue is drained rather than left to fill).
        background.consume(
            Consumer(
                "notifications", queues["notifications"].url, lambda _message, _session: None,
                pool("notifications", 2), options=WORKER_POLL,
            )
        )  # fmt: skip
        second_worker = fulfillment.consumer(
            queues["fulfillment"].url, pool("fulfillment-2", 2), options=WORKER_POLL
        )
        worker["process"] = restart_worker()
        try:
            background.run(
                "faults",
                lambda: inject_faults(
                    shop.sessions, worker, restart_worker, redis_process, faults,
                    background, second_worker,
                ),
            )  # fmt: skip
            with serve(route_by_path(apps)) as base_url:
                load = asyncio.run(place_orders(base_url, tokens, order_bodies(ORDERS)))
            committed = set(load.committed)
            loaded = time.monotonic()

            # --8<-- [start:drained]
            # Drained: the outbox published, every event applied once, the work queues empty.
            def drained() -> bool:
                unsent = select(func.count(OutboxEvent.id)).where(
                    OutboxEvent.published_at.is_(None)
                )
                events = scalar(shop.sessions, select(func.count(OutboxEvent.id)))
                return (
                    faults.republished == REPUBLISHED
                    and scalar(shop.sessions, unsent) == 0
                    and processed(shop.sessions, fulfillment.NAME) == len(committed)
                    and processed(shop.sessions, analytics.NAME) == events
                    and processed(shop.sessions, "notifications") == len(committed)
                    and all(depth(queues[key].url) == 0 for key in WORK_QUEUES)
                )

            wait_until(drained, what="the outbox and the queues drained", timeout=DEADLINE_S)
            # --8<-- [end:drained]
        finally:
            background.close()
            process = worker.get("process")
            if process is not None:
                process.send_signal(signal.SIGTERM)  # a graceful stop, as ECS does it
                out, _ = process.communicate(timeout=60)
                outputs.append(out)
            redis_client.close()
            for engine in engines:
                engine.dispose()

    # --8<-- [start:invariants]
    with shop.sessions() as session:
        placed_ids = {str(i) for i in session.scalars(select(Order.id))}
        decisions = collections.Counter(
            row.payload["order_id"]
            for row in session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.type.in_(["order.fulfilled", "order.rejected"])
                )
            )
        )
        kinds = collections.Counter(session.scalars(select(OutboxEvent.type)).all())
        statuses = collections.Counter(session.scalars(select(Order.status)).all())
        outbox_ids = {str(i) for i in session.scalars(select(OutboxEvent.id))}
        reserved = dict(
            session.execute(
                select(OrderLine.sku, func.sum(OrderLine.quantity))
                .join(Order)
                .where(Order.status == "confirmed")
                .group_by(OrderLine.sku)
            ).all()
        )
        stock = dict(session.execute(select(Product.sku, Product.stock)).all())
        records = session.execute(
            select(
                func.count(ProcessedMessage.id),
                func.count(
                    func.distinct(ProcessedMessage.consumer + ":" + ProcessedMessage.message_id)
                ),
            )
        ).one()
    documents = list(shop.store.events.find({}, {"_id": 1, "type": 1, "aggregate_id": 1}))
    per_document = collections.Counter(document["_id"] for document in documents)
    per_order = collections.defaultdict(collections.Counter)
    for document in documents:
        per_order[document["aggregate_id"]][document["type"]] += 1
    dead_letters = {key: depth(queue.url) for key, queue in queues.items() if key.endswith("dlq")}
    fulfillment_duplicates = sum(
        outcome.duplicates for name, outcome in background.outcomes.items()
        if name.startswith(fulfillment.NAME)
    ) + sum(json.loads(out)["duplicates"] for out in outputs if out.strip())  # fmt: skip
    analytics_duplicates = sum(
        outcome.duplicates for name, outcome in background.outcomes.items()
        if name.startswith(analytics.NAME)
    )  # fmt: skip

    assert load.unexpected == [], load.unexpected[:5]  # every answer was 201, 429 or 503
    assert len(load.committed) == len(committed) == ORDERS  # every order committed once...
    assert placed_ids == committed  # ...and nothing committed that the client was not told of
    assert decisions.keys() == committed  # no committed order without its decision
    assert set(decisions.values()) == {1}  # and none with two
    assert statuses["confirmed"] == kinds["order.fulfilled"]
    assert statuses["cancelled"] == kinds["order.rejected"]
    assert statuses["confirmed"] + statuses["cancelled"] == ORDERS  # none left pending
    for sku, (_, initial) in PRODUCTS.items():
        assert initial - reserved.get(sku, 0) == stock[sku] >= 0, sku  # stock adds up
    assert kinds["order.rejected"] > 0  # the scarce product ran out: both outcomes were taken
    assert set(per_document.values()) == {1}  # one analytics record per event...
    assert per_document.keys() == outbox_ids  # ...for every event, and no other
    assert per_order.keys() == committed  # no order in analytics that was not committed
    assert all(  # one placed and one decision per order
        counts["order.placed"] == 1 and counts["order.fulfilled"] + counts["order.rejected"] == 1
        for counts in per_order.values()
    )
    assert records[0] == records[1]  # processed-message records are unique
    assert dead_letters == dict.fromkeys(dead_letters, 0)
    assert processed(shop.sessions, "notifications") == ORDERS  # one notification per decision
    assert (faults.worker_kills, faults.redis_restarts, faults.republished) == (1, 1, REPUBLISHED)
    assert analytics_duplicates >= REPUBLISHED  # the republished events were absorbed...
    assert fulfillment_duplicates >= REPUBLISHED  # ...by both consumers' idempotency records
    # --8<-- [end:invariants]

    summary = {
        "orders placed (N)": ORDERS,
        "committed (201)": len(committed),
        "retried after 429": load.retried[429],
        "retried after 503": load.retried[503],
        "fulfilled": kinds["order.fulfilled"],
        "rejected (out of stock)": kinds["order.rejected"],
        "analytics records": len(documents),
        "duplicates absorbed (fulfillment)": fulfillment_duplicates,
        "duplicates absorbed (analytics)": analytics_duplicates,
        "events published twice by the relay": faults.republished,
        "worker kills (SIGKILL)": faults.worker_kills,
        "orders fulfilled at the kill": faults.processed_at_kill,
        "Redis restarts": faults.redis_restarts,
        "orders committed at the Redis restart": faults.committed_at_redis_restart,
        "catalog reads (200)": load.catalog_reads,
        "DLQ depth (all DLQs)": sum(dead_letters.values()),
        "placing the orders (s, not asserted)": round(loaded - started, 1),
        "runtime (s, not asserted)": round(time.monotonic() - started, 1),
    }
    table = "\n".join(f"{name:<40} {value:>8}" for name, value in summary.items())
    record_property("load_with_faults", summary)
    with capsys.disabled():
        print(f"\nLoad with faults, nothing lost\n{table}")
