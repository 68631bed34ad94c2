"""The onboarding demo: the whole storefront on this machine, one scenario walked over real HTTP.

    scripts/demo.sh                  # scenario 1, then keep the services up until Ctrl-C
    scripts/demo.sh --scenario 2     # another scenario (1 to 5)
    scripts/demo.sh --no-wait        # walk the scenario, tear down, exit

``scripts/demo.sh`` sets up first (``scripts/bootstrap.sh test``) and then runs this file with the
virtual environment's Python. It starts a moto server, a throwaway PostgreSQL and a throwaway
redis-server on free ports on 127.0.0.1 (the test harness's own :mod:`tests.harness.servers`),
creates the AWS resources with :func:`storefront.bootstrap.bootstrap`, migrates the database, and
runs every service of :mod:`storefront.services`: the catalog, orders and analytics apps each
under its own uvicorn server, and the outbox relay and the three workers in threads. Then it walks
the chosen scenario, printing what happened at each hop, the status codes, the trace id and the
timings, and (without ``--no-wait``) prints the endpoints, how to get a token and ``curl``
examples, and waits. Ctrl-C (or SIGTERM) stops the servers, the workers and the relay, then moto,
PostgreSQL and Redis, and removes the temporary directories; a second Ctrl-C exits at once.

Exit status: 0 when the walk (and the wait) ended normally, 1 when a step did not happen within
its deadline or a server could not start, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the harness lives in tests/harness

import httpx  # noqa: E402
import psycopg  # noqa: E402
import uvicorn  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from tests.harness.servers import (  # noqa: E402
    HarnessError,
    free_port,
    run_moto,
    run_postgres,
    run_redis,
    wait_until,
)

SCENARIOS = {
    1: "Place an order",
    2: "Traffic spike",
    3: "A dependency fails",
    4: "Replay and recovery",
    5: "Abuse and attack",
}
PAGES = {
    1: "docs/scenarios/place-an-order.md",
    2: "docs/scenarios/traffic-spike.md",
    3: "docs/scenarios/a-dependency-fails.md",
    4: "docs/scenarios/replay-and-recovery.md",
    5: "docs/scenarios/abuse-and-attack.md",
}
PASSWORD = "Str0ng-Passw0rd!"  # noqa: S105 - a demo user's password on the local moto server
REGION = "eu-west-1"
ORDER_LIMIT = 10  # orders per client address per minute (the orders service's rate limiter)
STEP_TIMEOUT_S = 30.0  # how long a step may take before the demo gives up on it
SKU = "MUG-1"
PRICE_MINOR = 1_250
READY_LINE = "Press Ctrl-C to stop everything and clean up."


class DemoError(RuntimeError):
    """A step of the walk did not happen; the message says which."""


class Interrupted(Exception):  # noqa: N818 - it is a signal, not an error
    """SIGINT or SIGTERM arrived: tear everything down."""


# --- Output ----------------------------------------------------------------------------------


class Narrator:
    """Prints the narrative: plain text, flushed line by line, no colour."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self.log_path: Path | None = None  # the services' log, once it exists

    def log_tail(self, lines: int = 30) -> None:
        """Print the end of the services' log to stderr (the teardown removes the file)."""
        if self.log_path is None or not self.log_path.exists():
            return
        tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        print(f"The last {len(tail)} lines of {self.log_path}:", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr, flush=True)

    def line(self, text: str = "") -> None:
        """Print one line."""
        print(text, file=self._stream, flush=True)

    def heading(self, text: str) -> None:
        """Print a heading with a rule under it."""
        self.line()
        self.line(text)
        self.line("=" * len(text))

    def step(self, number: int | str, title: str) -> None:
        """Print a numbered step's title."""
        self.line()
        self.line(f"{number}. {title}")

    def detail(self, text: str) -> None:
        """Print what happened, indented under its step."""
        self.line(f"   {text}")


class Stopwatch:
    """Measures a block for the narrative (printed for the reader, never asserted)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.ms = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.ms = (time.perf_counter() - self._start) * 1000

    def __str__(self) -> str:
        return f"{self.ms:.0f} ms"


def poll(check: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT_S) -> None:
    """Wait for ``check`` with a deadline (the harness's :func:`wait_until`).

    Raises:
        DemoError: The deadline passed.
    """
    try:
        wait_until(check, what=what, timeout=timeout)
    except HarnessError as error:
        raise DemoError(str(error)) from error


# --- The platform ----------------------------------------------------------------------------


class ServiceServer:
    """One ASGI app under its own uvicorn server, in a thread, on a free loopback port."""

    def __init__(self, name: str, app: Any) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,  # the services' JSON logging stays in charge
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{name}")

    def start(self) -> None:
        """Start serving; returns once the port accepts connections.

        Raises:
            DemoError: uvicorn stopped before it was ready (the port was taken, for example).
        """
        self._thread.start()

        def ready() -> bool:
            if not self._thread.is_alive():
                raise DemoError(f"uvicorn for {self.name} exited before it was ready")
            return bool(self._server.started)

        poll(ready, f"uvicorn for {self.name} on port {self.port}")

    def stop(self) -> None:
        """Ask uvicorn to finish its requests and exit; wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=15)


class Worker:
    """A consumer's :meth:`~storefront.messaging.consumer.Consumer.run` loop in a thread."""

    def __init__(self, name: str, make: Callable[[], Any]) -> None:
        self.name = name
        self._make = make
        self.consumer: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling with a new consumer."""
        self.consumer = self._make()
        self._thread = threading.Thread(target=self.consumer.run, name=f"worker-{self.name}")
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the consumer to stop after the message in progress (returns at once)."""
        if self.consumer is not None:
            self.consumer.request_stop()

    def stop(self) -> None:
        """Stop gracefully: the message in progress finishes, the rest of its batch is released."""
        if self._thread is None:
            return
        self.consumer.request_stop()
        self._thread.join(timeout=30)
        self._thread = None


def stop_workers(workers: list[Worker]) -> None:
    """Ask every worker to stop at once, then wait for each (their long polls end together)."""
    for worker in workers:
        worker.request_stop()
    for worker in workers:
        worker.stop()


@dataclass
class Platform:
    """Everything the demo started, and the handles the scenarios use."""

    moto_url: str
    postgres: Any
    postgres_dir: Path
    redis_server: Any
    workdir: Path
    log_path: Path
    record: Any
    sessions: sessionmaker[Session]
    redis: Any
    store: Any
    spans: InMemorySpanExporter
    apps: dict[str, Any]
    servers: dict[str, ServiceServer]
    workers: dict[str, Worker]
    client_id: str
    http: httpx.Client
    stop_redis: Callable[[], None]
    users: dict[str, str] = field(default_factory=dict)  # email -> access token

    def url(self, service: str, path: str) -> str:
        """The full URL of ``path`` on ``service``'s uvicorn port."""
        return f"{self.servers[service].url}{path}"

    def queue_depth(self, key: str) -> int:
        """Messages in a queue, visible and in flight."""
        from storefront import aws

        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=self.record.queues[key].url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def sign_up(self, email: str, groups: tuple[str, ...] = ("customers",)) -> str:
        """Sign a user up on moto's Cognito, confirm them, add their groups, return a token."""
        from storefront import aws

        cognito = aws.client("cognito-idp")
        cognito.sign_up(
            ClientId=self.client_id,
            Username=email,
            Password=PASSWORD,
            UserAttributes=[{"Name": "email", "Value": email}],
        )
        cognito.admin_confirm_sign_up(UserPoolId=self.record.user_pool_id, Username=email)
        for group in groups:
            cognito.admin_add_user_to_group(
                UserPoolId=self.record.user_pool_id, Username=email, GroupName=group
            )
        token = self.sign_in(email)
        self.users[email] = token
        return token

    def sign_in(self, email: str) -> str:
        """``USER_PASSWORD_AUTH`` against moto's Cognito: the user's access token."""
        from storefront import aws

        result = aws.client("cognito-idp").initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]
        return str(result["AccessToken"])

    def order_status(self, order_id: str, token: str) -> str:
        """The order's status as the orders service reports it."""
        answer = self.http.get(self.url("orders", f"/orders/{order_id}"), headers=bearer(token))
        return str(answer.json()["status"])

    def stock(self) -> int:
        """The demo product's stock in PostgreSQL."""
        from storefront.db.models import Product

        with self.sessions() as session:
            product = session.get(Product, SKU)
            return product.stock if product else 0


def bearer(token: str | None, **extra: str) -> dict[str, str]:
    """Request headers with the token (if any) and any extra headers."""
    headers = dict(extra)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def visitor(address: str) -> dict[str, str]:
    """The header Cloudflare adds with the visitor's address (trusted from 127.0.0.1 here)."""
    return {"cf-connecting-ip": address}


def point_the_sdk_at(moto_url: str, workdir: Path) -> None:
    """Set the environment the way the services read it: AWS SDK variables and ``STOREFRONT_*``."""
    for name in [name for name in os.environ if name.startswith(("AWS_", "STOREFRONT_"))]:
        del os.environ[name]
    trusted = workdir / "trusted-proxies.txt"
    # The demo stands in for Cloudflare: its requests come from 127.0.0.1 and name the visitor
    # in CF-Connecting-IP. In production this file holds Cloudflare's published ranges only.
    trusted.write_text("127.0.0.1/32\n", encoding="utf-8")
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "STOREFRONT_TRUSTED_PROXY_RANGES_FILE": str(trusted),
        }
    )


def start_platform(stack: contextlib.ExitStack, say: Narrator, stock: int) -> Platform:
    """Start the servers and services; register their teardown on ``stack`` (last in, first out).

    Args:
        stack: Closing it stops everything, in the reverse order of starting.
        say: Where the narrative goes.
        stock: The demo product's starting stock.

    Returns:
        The running platform.
    """
    from storefront import bootstrap, telemetry
    from storefront.cache import CatalogCache, make_redis
    from storefront.db import migrations
    from storefront.db.engine import PoolSettings, make_engine, make_session_factory
    from storefront.db.models import Product
    from storefront.documents import EventStore, connect
    from storefront.events.relay import OutboxRelay
    from storefront.logs import configure_logging
    from storefront.messaging.consumer import ConsumerOptions
    from storefront.messaging.notifications import NotificationPublisher
    from storefront.ratelimit import RateLimiter
    from storefront.services import analytics, catalog, fulfillment, notifications, orders
    from storefront.settings import get_settings

    say.heading("Starting the platform on 127.0.0.1")
    started = time.perf_counter()
    stack.callback(say.detail, "demo directory removed")
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storefront-demo-")))
    log_path = workdir / "services.log"
    log_file = stack.enter_context(log_path.open("a", encoding="utf-8"))
    say.log_path = log_path
    # Every service's JSON log lines go to a file, so the narrative stays readable.
    configure_logging("storefront-demo", stream=log_file)
    spans = telemetry.configure("storefront-demo")  # no OTLP endpoint: spans stay in memory
    if spans is None:
        raise DemoError("telemetry must keep the spans in memory for the narrative")

    stack.callback(say.detail, "moto server stopped")
    moto_url = stack.enter_context(run_moto())
    say.detail(f"moto server (AWS APIs)  {moto_url}")
    stack.callback(say.detail, "PostgreSQL stopped, its directory removed")
    postgres = stack.enter_context(run_postgres())
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE storefront")
        postgres_dir = Path(str(admin.execute("SHOW data_directory").fetchone()[0])).parent  # type: ignore[index]
    say.detail(
        f"PostgreSQL {postgres.version:<12} 127.0.0.1:{postgres.port}  (files in {postgres_dir})"
    )
    redis_stack = contextlib.ExitStack()
    stack.callback(say.detail, "redis-server stopped")
    stack.callback(redis_stack.close)
    (workdir / "redis").mkdir()
    redis_server = redis_stack.enter_context(run_redis(workdir / "redis"))
    say.detail(f"redis-server            127.0.0.1:{redis_server.port}  (files in {workdir})")

    point_the_sdk_at(moto_url, workdir)
    get_settings.cache_clear()
    stack.callback(get_settings.cache_clear)
    record = bootstrap.bootstrap(apply_deny_statements=False)  # moto applies Deny statements
    os.environ.update(record.environment())
    # moto's tokens carry the real Cognito issuer, but moto serves the keys on its own address.
    os.environ["STOREFRONT_COGNITO_JWKS_URL"] = (
        f"{moto_url}/{record.user_pool_id}/.well-known/jwks.json"
    )
    dsn = postgres.dsn("storefront")
    os.environ["STOREFRONT_DATABASE_URL"] = dsn
    os.environ["STOREFRONT_REDIS_URL"] = redis_server.url
    get_settings.cache_clear()
    say.detail(
        f"bootstrap: {len(record.changes)} changes on moto (Cognito pool {record.user_pool_id}, "
        f"bus {record.event_bus_name}, {len(record.queues)} queues, topic, buckets)"
    )

    migrations.upgrade(dsn)
    engine = make_engine(dsn, PoolSettings(application_name="storefront-demo"))
    stack.callback(engine.dispose)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        session.add(Product(sku=SKU, name="Storefront mug", price_minor=PRICE_MINOR, stock=stock))
    say.detail(f"database migrated; product {SKU} seeded (price {PRICE_MINOR}, stock {stock})")

    client = make_redis(redis_server.url)
    stack.callback(client.close)
    store = EventStore(connect("mongomock://localhost/storefront"))  # DocumentDB's stand-in
    store.ensure_indexes()
    receipts = record.buckets["receipts"]
    notifier = notifications.Notifier(
        NotificationPublisher(record.topic_arn), receipts.name, str(receipts.kms_key_arn)
    )
    apps = {
        "catalog": catalog.create_app(sessions, CatalogCache(client)),
        "orders": orders.create_app(
            sessions, RateLimiter(client, limit=ORDER_LIMIT, window_s=60, name="orders")
        ),
        "analytics": analytics.create_app(store),
    }
    servers: dict[str, ServiceServer] = {}
    for name, app in apps.items():
        telemetry.instrument_app(app, engine=engine, redis_client=client)
        servers[name] = ServiceServer(name, app)
        servers[name].start()
        stack.callback(say.detail, f"{name} service's uvicorn stopped")
        stack.callback(servers[name].stop)
        say.detail(f"{name + ' service':<23} {servers[name].url}  (uvicorn)")

    relay = OutboxRelay(sessions, bus_name=record.event_bus_name)
    relay_stop = threading.Event()
    relay_thread = threading.Thread(
        target=relay.run_forever, args=(relay_stop,), kwargs={"idle_wait_s": 0.1}, name="relay"
    )
    relay_thread.start()
    stack.callback(say.detail, "outbox relay stopped")
    stack.callback(relay_thread.join, 30)
    stack.callback(relay_stop.set)

    # Short long-polls so a stop is quick; a failed message is retried at once (5 receives, then
    # the DLQ), so a poison message reaches the DLQ in seconds instead of minutes.
    options = ConsumerOptions(wait_time_s=1, retry_delay_s=lambda _count: 0, shutdown_grace_s=5)
    queues = record.queues
    workers = {
        "fulfillment": Worker(
            "fulfillment",
            lambda: fulfillment.consumer(queues["fulfillment"].url, sessions, options=options),
        ),
        "notifications": Worker(
            "notifications",
            lambda: notifications.consumer(
                queues["notifications"].url, sessions, notifier, options=options
            ),
        ),
        "analytics": Worker(
            "analytics",
            lambda: analytics.consumer(queues["analytics"].url, sessions, store, options=options),
        ),
    }
    for worker in workers.values():
        worker.start()
    stack.callback(say.detail, "workers stopped (each finished its message in progress)")
    stack.callback(stop_workers, list(workers.values()))
    say.detail("outbox relay and workers (fulfillment, notifications, analytics) polling")
    http = stack.enter_context(httpx.Client(timeout=15))
    (client_id,) = record.user_pool_client_ids.values()
    say.detail(f"(start-up took {(time.perf_counter() - started) * 1000:.0f} ms)")
    return Platform(
        moto_url=moto_url,
        postgres=postgres,
        postgres_dir=postgres_dir,
        redis_server=redis_server,
        workdir=workdir,
        log_path=log_path,
        record=record,
        sessions=sessions,
        redis=client,
        store=store,
        spans=spans,
        apps=apps,
        servers=servers,
        workers=workers,
        client_id=client_id,
        http=http,
        stop_redis=redis_stack.close,
    )


# --- Traces ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hop:
    """One service's part of a trace: its entry span and what ran under it.

    Attributes:
        service: Who did the work (``orders service``, ``fulfillment worker``...).
        name: The entry span's name.
        offset_ms: When it started, after the trace's first span.
        duration_ms: How long it took.
        sql: PostgreSQL statements under it.
        redis: Redis commands under it.
        aws: AWS API calls under it (``SNS.Publish``...).
    """

    service: str
    name: str
    offset_ms: float
    duration_ms: float
    sql: int
    redis: int
    aws: tuple[str, ...]


_ROUTE_OWNERS = (("/catalog", "catalog"), ("/orders", "orders"), ("/staff", "orders"))


def _own_service(span: ReadableSpan) -> str | None:
    """The service a span starts, if it is an entry span (a request or a message)."""
    attributes = span.attributes or {}
    if span.kind is SpanKind.SERVER:
        route = str(attributes.get("http.route") or "")
        owner = next((name for prefix, name in _ROUTE_OWNERS if route.startswith(prefix)), None)
        return f"{owner or 'analytics'} service"
    group = attributes.get("messaging.consumer.group.name")
    if span.kind is SpanKind.CONSUMER and group:
        return f"{group} worker"
    return None


def hops(spans: list[ReadableSpan], trace_id: int) -> list[Hop]:
    """The hops of one trace, in the order they started.

    Args:
        spans: Finished spans (the in-memory exporter's).
        trace_id: The trace to describe.

    Returns:
        One hop per entry span (the trace's root, each request a service served, each message
        a worker processed), with the statements and calls made under it.
    """
    mine = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in mine if s.context is not None}

    def entry(span: ReadableSpan) -> ReadableSpan:
        current = span
        while _own_service(current) is None:
            parent = by_id.get(current.parent.span_id) if current.parent else None
            if parent is None:
                return current  # the trace's root (the demo's "browser" span)
            current = parent
        return current

    counts: dict[int, dict[str, Any]] = {}
    for span in mine:
        head = entry(span)
        tally = counts.setdefault(head.context.span_id, {"sql": 0, "redis": 0, "aws": []})  # type: ignore[union-attr]
        if span is head:
            continue
        attributes = span.attributes or {}
        if attributes.get("db.system") == "postgresql":
            tally["sql"] += 1
        elif attributes.get("db.system") == "redis":
            tally["redis"] += 1
        elif attributes.get("rpc.system") == "aws-api":
            tally["aws"].append(span.name)
    first = min((s.start_time or 0) for s in mine) if mine else 0
    result = []
    for span_id, tally in counts.items():
        head = by_id[span_id]
        result.append(
            Hop(
                service=_own_service(head) or "demo (the browser)",
                name=head.name,
                offset_ms=((head.start_time or 0) - first) / 1e6,
                duration_ms=((head.end_time or 0) - (head.start_time or 0)) / 1e6,
                sql=tally["sql"],
                redis=tally["redis"],
                aws=tuple(tally["aws"]),
            )
        )
    return sorted(result, key=lambda hop: hop.offset_ms)


def print_hops(say: Narrator, trace_hex: str, trace_hops: list[Hop]) -> None:
    """Print a trace's hops as a table."""
    services = {hop.service for hop in trace_hops}
    say.detail(f"trace id {trace_hex}: {len(trace_hops)} hops across {len(services)} services")
    for hop in trace_hops:
        work = [f"{hop.sql} SQL"] if hop.sql else []
        work += [f"{hop.redis} Redis"] if hop.redis else []
        work += [f"AWS {', '.join(hop.aws)}"] if hop.aws else []
        say.detail(
            f"  hop  +{hop.offset_ms:7.1f} ms  {hop.service:<21} {hop.name:<34} "
            f"{hop.duration_ms:7.1f} ms  {'; '.join(work)}"
        )


# --- Scenario 1: place an order --------------------------------------------------------------


def walk_place_an_order(p: Platform, say: Narrator) -> None:
    """Scenario 1: sign up, browse, order, fulfillment, receipt, dashboard, one trace."""
    from storefront import aws, storage
    from storefront.db.models import OutboxEvent
    from storefront.telemetry import carrier_from_current_context

    tracer = trace.get_tracer("storefront.demo")
    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    # --8<-- [start:scenario-1]
    say.step(1, "Sign up and sign in (Cognito on moto)")
    with Stopwatch() as took:
        token = p.sign_up(email)
    claims = jwt_claims(token)
    say.detail(f"{email} signed up, confirmed and signed in ({took}): an RS256 access token")
    say.detail(f"claims: token_use={claims['token_use']}, groups={claims['cognito:groups']}")

    say.step(2, "Browse: GET the product from the catalog service (anonymous)")
    product_url = p.url("catalog", f"/catalog/products/{SKU}")
    with Stopwatch() as took:
        first = p.http.get(product_url)
    say.detail(f"GET {product_url} -> {first.status_code} in {took}: {first.json()}")
    say.detail(f"Cache-Control: {first.headers['cache-control']} (Cloudflare may keep it)")

    say.step(3, "Read again: Redis answers, PostgreSQL is not touched")
    with Stopwatch() as took:
        second = p.http.get(product_url)
    stats = p.apps["catalog"].state.cache_stats
    say.detail(
        f"GET -> {second.status_code} in {took}; "
        f"catalog cache misses={stats.misses} hits={stats.hits}"
    )
    say.detail(
        f"Redis holds catalog:product:{SKU}: {bool(p.redis.exists(f'catalog:product:{SKU}'))}"
    )

    say.step(4, "Place the order: POST /orders with the token (and the browser's traceparent)")
    with tracer.start_as_current_span("browser checkout") as checkout, Stopwatch() as took:
        placed = p.http.post(
            p.url("orders", "/orders"),
            json={"lines": [{"sku": SKU, "quantity": 2}]},
            headers=bearer(token, **carrier_from_current_context()),
        )
    if placed.status_code != 201:
        raise DemoError(f"POST /orders answered {placed.status_code}: {placed.text}")
    order = placed.json()
    trace_id = checkout.get_span_context().trace_id
    trace_hex = format(trace_id, "032x")
    say.detail(
        f"POST -> 201 in {took}: order {order['order_id']} {order['status']}, "
        f"total {order['total_minor']}; Cache-Control: {placed.headers['cache-control']}"
    )
    say.detail("the order, its lines and an order.placed outbox row: one PostgreSQL transaction")
    say.detail(f"trace id {trace_hex}")

    say.step(5, "The outbox relay publishes order.placed to EventBridge")
    with Stopwatch() as took:

        def published() -> bool:
            with p.sessions() as session:
                row = session.scalars(
                    select(OutboxEvent).where(OutboxEvent.correlation_id == order["order_id"])
                ).first()
                return bool(row and row.published_at)

        poll(published, "the relay to publish order.placed")
    say.detail(f"PutEvents on bus {p.record.event_bus_name} {took} after the commit; row published")

    say.step(6, "EventBridge rules deliver it to the fulfillment and analytics queues")
    fulfillment_queue = p.record.queues["fulfillment"].name
    with Stopwatch() as took:
        poll(lambda: delivered(hops(trace_spans(p), trace_id)), "the workers to receive it")
    say.detail(f"{took} later the fulfillment worker had it from {fulfillment_queue},")
    say.detail(f"and the analytics worker from {p.record.queues['analytics'].name} (long polls)")

    say.step(7, "Fulfillment reserves the stock and confirms the order")
    with Stopwatch() as took:
        poll(lambda: p.order_status(order["order_id"], token) == "confirmed", "confirmation")
    say.detail(
        f"GET /orders/{order['order_id']} -> confirmed ({took}); stock of {SKU} now {p.stock()}"
    )
    say.detail("order.fulfilled recorded in the outbox with the idempotency record, then relayed")

    say.step(8, "Notifications: a receipt in S3 (SSE-KMS) and an email notification via SNS")
    email_queue = p.record.queues["notify-email"].url
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []

    def notified() -> bool:
        found.extend(
            sqs.receive_message(
                QueueUrl=email_queue, WaitTimeSeconds=0, MessageAttributeNames=["All"]
            ).get("Messages", [])
        )
        return bool(found)

    with Stopwatch() as took:
        poll(notified, "the notification in the email channel's queue")
    sent = json.loads(found[0]["Body"])
    receipts = p.record.buckets["receipts"]
    head = storage.s3_client().head_object(Bucket=receipts.name, Key=sent["receipt_key"])
    say.detail(
        f"receipt s3://{receipts.name}/{sent['receipt_key']} "
        f"({head['ServerSideEncryption']}, the bucket's KMS key), {took} after the confirmation"
    )
    say.detail(
        f"SNS -> {p.record.queues['notify-email'].name}: {sent['type']} "
        f"(the filter policy kept it out of the sms and webhook queues)"
    )
    notification_trace = found[0]["MessageAttributes"]["traceparent"]["StringValue"].split("-")[1]
    say.detail(f"the notification's traceparent carries trace id {notification_trace}")

    say.step(9, "Analytics: the staff dashboard counts the sale")
    staff = p.sign_up(f"sam-{uuid.uuid4().hex[:6]}@example.com", groups=("staff",))
    funnel_url = p.url("analytics", "/analytics/funnel")

    def counted() -> bool:
        return p.http.get(funnel_url, headers=bearer(staff)).json().get("fulfilled") == 1

    poll(counted, "the dashboard to count the fulfilled order")
    funnel = p.http.get(funnel_url, headers=bearer(staff)).json()
    revenue = p.http.get(
        p.url("analytics", "/analytics/revenue-per-product"), headers=bearer(staff)
    ).json()
    say.detail(
        f"GET /analytics/funnel (staff) -> placed={funnel['placed']} "
        f"fulfilled={funnel['fulfilled']} rejected={funnel['rejected']}"
    )
    say.detail(f"GET /analytics/revenue-per-product -> {revenue}")
    refused = p.http.get(funnel_url, headers=bearer(token))
    say.detail(f"the same request with the customer's token -> {refused.status_code}")

    say.step(10, "One trace across every hop")
    poll(lambda: trace_complete(hops(trace_spans(p), trace_id)), "every hop's span")
    print_hops(say, trace_hex, hops(trace_spans(p), trace_id))
    say.line()
    say.line(f"Order {order['order_id']} fulfilled: receipt stored, customer notified, counted.")
    # --8<-- [end:scenario-1]


def trace_spans(p: Platform) -> list[ReadableSpan]:
    """Every finished span so far."""
    return list(p.spans.get_finished_spans())


def delivered(trace_hops: list[Hop]) -> bool:
    """Whether the fulfillment and analytics workers both processed the order's event."""
    services = {hop.service for hop in trace_hops}
    return {"fulfillment worker", "analytics worker"} <= services


def trace_complete(trace_hops: list[Hop]) -> bool:
    """Whether a scenario-1 order's trace has every worker's hop (analytics sees two events)."""
    services = [hop.service for hop in trace_hops]
    return (
        "orders service" in services
        and "fulfillment worker" in services
        and "notifications worker" in services
        and services.count("analytics worker") >= 2
    )


def jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, decoded without verification (for display only)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# --- Scenario 2: a traffic spike -------------------------------------------------------------

ORDER = {"lines": [{"sku": SKU, "quantity": 1}]}
HOT_READS = 50
BURST_SHOPPERS = 10
ORDERS_PER_SHOPPER = 3


def walk_traffic_spike(p: Platform, say: Narrator) -> None:
    """Scenario 2: cache hits, the rate limiter's 429, and SQS absorbing a burst of orders."""
    from storefront.db.models import Order

    # --8<-- [start:scenario-2]
    say.step(1, "The Cloudflare cache: the catalog marks anonymous answers cacheable")
    product_url = p.url("catalog", f"/catalog/products/{SKU}")
    first = p.http.get(product_url)
    say.detail(f"GET {product_url} -> {first.status_code}")
    say.detail(f"Cache-Control: {first.headers['cache-control']}: Cloudflare may answer repeats")
    say.line("Step 2 (AWS WAF's rate rule, API Gateway's throttling) is configuration the demo")
    say.line("does not emulate (moto stores a stage's throttling without enforcing it).")

    say.step(3, "A burst from one client: the rate limiter answers 429 with Retry-After")
    token = p.sign_up(f"bo-{uuid.uuid4().hex[:6]}@example.com")
    address, neighbour = "198.51.100.7", "203.0.113.9"
    orders_url = p.url("orders", "/orders")
    with Stopwatch() as took:
        burst = [
            p.http.post(orders_url, json=ORDER, headers=bearer(token, **visitor(address)))
            for _ in range(ORDER_LIMIT + 2)
        ]
    limited = [answer for answer in burst if answer.status_code == 429]
    if not limited:
        raise DemoError("the burst was never rate limited")
    accepted = sum(answer.status_code == 201 for answer in burst)
    say.detail(
        f"{len(burst)} x POST /orders from {address} in {took}: {accepted} x 201, "
        f"{len(limited)} x 429 Retry-After: {limited[0].headers['retry-after']} s"
    )
    say.detail(f"429 body: {limited[0].json()['detail']}")
    other = p.http.post(orders_url, json=ORDER, headers=bearer(token, **visitor(neighbour)))
    say.detail(f"the same moment, another visitor ({neighbour}) -> {other.status_code}")

    say.step(4, f"Redis: {HOT_READS} reads of the hot product that passed the edge")
    stats = p.apps["catalog"].state.cache_stats
    with Stopwatch() as took:
        answers = [p.http.get(product_url) for _ in range(HOT_READS)]
    statuses = sorted({answer.status_code for answer in answers})
    say.detail(f"{HOT_READS} x GET -> {statuses} in {took}")
    say.detail(
        f"catalog cache over all {HOT_READS + 1} reads: misses={stats.misses} hits={stats.hits}: "
        f"PostgreSQL was read {stats.misses} time(s), Redis answered the rest"
    )

    say.step(5, "Orders and the outbox: a burst of orders, each one local transaction")
    poll(
        lambda: pending_orders(p) == 0 and p.queue_depth("fulfillment") == 0,
        "the earlier orders to be fulfilled",
    )
    p.workers["fulfillment"].stop()
    say.detail("(the fulfillment worker is stopped first, so the backlog shows in step 6)")
    shoppers = [
        p.sign_up(f"cy{n}-{uuid.uuid4().hex[:6]}@example.com") for n in range(BURST_SHOPPERS)
    ]
    stock_before = p.stock()
    total = BURST_SHOPPERS * ORDERS_PER_SHOPPER

    def place(number: int) -> httpx.Response:
        shopper = number % BURST_SHOPPERS
        headers = bearer(shoppers[shopper], **visitor(f"192.0.2.{shopper + 10}"))
        with httpx.Client(timeout=15) as client:
            return client.post(orders_url, json=ORDER, headers=headers)

    with Stopwatch() as took, ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(pool.map(place, range(total)))
    if any(answer.status_code != 201 for answer in placed):
        raise DemoError(f"an order of the burst was refused: {[a.status_code for a in placed]}")
    ids = [answer.json()["order_id"] for answer in placed]
    say.detail(f"{total} orders from {BURST_SHOPPERS} shoppers accepted (201) in {took}")

    say.step(6, "SQS: the fulfillment queue holds the backlog")
    poll(lambda: p.queue_depth("fulfillment") == total, "the relay to publish the burst")
    say.detail(f"fulfillment queue: {p.queue_depth('fulfillment')} messages waiting")
    say.line("Step 7 (ECS adding fulfillment tasks on the backlog) is not emulated: the demo")
    say.line("starts its one worker again instead.")

    say.step(8, "The fulfillment worker drains the backlog: none lost, none twice")
    p.workers["fulfillment"].start()

    def confirmed() -> int:
        with p.sessions() as session:
            query = select(func.count(Order.id)).where(
                Order.id.in_([uuid.UUID(i) for i in ids]), Order.status == "confirmed"
            )
            return int(session.scalar(query) or 0)

    with Stopwatch() as took:
        poll(lambda: confirmed() == total and p.queue_depth("fulfillment") == 0, "the drain")
    stock_after = p.stock()
    say.detail(
        f"{confirmed()} of {total} orders confirmed in {took}; fulfillment queue empty; "
        f"DLQ {p.queue_depth('fulfillment-dlq')} messages"
    )
    say.detail(
        f"stock of {SKU}: {stock_before} -> {stock_after} "
        f"({stock_before - stock_after} units reserved, one per order)"
    )
    if stock_before - stock_after != total:
        raise DemoError("the stock does not match the orders")
    say.line()
    say.line(f"None lost: {total} orders accepted, {total} fulfilled.")
    # --8<-- [end:scenario-2]


def pending_orders(p: Platform) -> int:
    """Orders not yet decided."""
    from storefront.db.models import Order

    with p.sessions() as session:
        return int(session.scalar(select(func.count(Order.id)).where(Order.status == "pending")))


# --- Scenario 3: a dependency fails ----------------------------------------------------------


def walk_a_dependency_fails(p: Platform, say: Narrator) -> None:
    """Scenario 3: Redis stopped (the catalog serves from PostgreSQL); a poison event's DLQ."""
    from storefront import aws
    from storefront.db.models import Order, OutboxEvent
    from storefront.services.orders import NewOrder, place_order

    # --8<-- [start:scenario-3]
    say.line("Steps 2 (PostgreSQL lost mid-transaction), 3 (a worker killed mid-message) and 5")
    say.line(
        "(the redrive after the fix) are proved by tests/scenarios/test_a_dependency_fails.py."
    )
    say.step(1, "Redis is stopped: the catalog still serves, from PostgreSQL")
    product_url = p.url("catalog", f"/catalog/products/{SKU}")
    stats = p.apps["catalog"].state.cache_stats
    p.http.get(product_url)
    p.http.get(product_url)
    say.detail(f"with Redis: 2 reads -> misses={stats.misses} hits={stats.hits}")
    port = p.redis_server.port
    p.stop_redis()
    say.detail(f"redis-server on port {port} stopped; accepting connections: {listening(port)}")
    misses_before = stats.misses
    with Stopwatch() as took:
        answers = [p.http.get(product_url) for _ in range(3)]
    say.detail(f"3 x GET in {took} -> {[a.status_code for a in answers]} {answers[-1].json()}")
    say.detail(
        f"all from PostgreSQL (misses +{stats.misses - misses_before}): degraded, not failed"
    )
    if any(answer.status_code != 200 for answer in answers):
        raise DemoError("the catalog failed without Redis")
    token = p.sign_up(f"kim-{uuid.uuid4().hex[:6]}@example.com")
    order = p.http.post(p.url("orders", "/orders"), json=ORDER, headers=bearer(token))
    say.detail(f"POST /orders -> {order.status_code}: the rate limiter fails open (logged)")

    say.step(4, "A poison event: every attempt fails, SQS moves it to the DLQ")
    with p.sessions.begin() as session:  # an orders deployment ahead of fulfillment
        poisoned = place_order(session, "demo-v2", NewOrder.model_validate(ORDER))
        session.flush()
        row = session.scalars(
            select(OutboxEvent).where(OutboxEvent.correlation_id == str(poisoned.id))
        ).one()
        row.schema_version = 2
    say.detail(f"order {poisoned.id} written with an order.placed of schema version 2,")
    say.detail("which the fulfillment worker does not know (it raises, the message stays queued)")
    sqs = aws.client("sqs")
    redrive = json.loads(
        sqs.get_queue_attributes(
            QueueUrl=p.record.queues["fulfillment"].url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
    )
    with Stopwatch() as took:
        poll(lambda: p.queue_depth("fulfillment-dlq") == 1, "the poison event in the DLQ")
    say.detail(
        f"after maxReceiveCount={redrive['maxReceiveCount']} receives ({took}) it is in "
        f"{p.record.queues['fulfillment-dlq'].name}: 1 message"
    )
    with p.sessions() as session:
        status = session.get(Order, poisoned.id).status  # type: ignore[union-attr]
    say.detail(f"order {poisoned.id} is still {status}: nothing was applied")
    after = p.http.post(p.url("orders", "/orders"), json=ORDER, headers=bearer(token))
    follow_up = after.json()["order_id"]
    poll(lambda: p.order_status(follow_up, token) == "confirmed", "the next order")
    say.detail(f"the next order {follow_up} -> confirmed: the queue keeps flowing")
    say.line()
    say.line("Redis down: degraded, not failed. The poison event waits in the DLQ for a fix.")
    # --8<-- [end:scenario-3]


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- Scenario 4: replay and recovery --------------------------------------------------------


def dashboard(p: Platform, staff: str) -> dict[str, Any]:
    """The staff dashboard's three answers."""
    return {
        name: p.http.get(p.url("analytics", f"/analytics/{name}"), headers=bearer(staff)).json()
        for name in ("funnel", "revenue-per-product", "orders-per-minute")
    }


def summary(board: dict[str, Any]) -> str:
    """The dashboard in one line."""
    funnel = board["funnel"]
    revenue = ", ".join(f"{r['sku']} {r['revenue_minor']}" for r in board["revenue-per-product"])
    orders = sum(row["orders"] for row in board["orders-per-minute"])
    return (
        f"placed={funnel['placed']} fulfilled={funnel['fulfilled']} "
        f"rejected={funnel['rejected']}; revenue: {revenue or 'none'}; orders per minute: {orders}"
    )


def outbox_rows(p: Platform) -> int:
    """Rows in the outbox (a second fulfillment would add one)."""
    from storefront.db.models import OutboxEvent

    with p.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def drain_email_queue(p: Platform) -> int:
    """Receive and delete every notification in the email channel's queue; how many there were."""
    from storefront import aws

    sqs, url, count = aws.client("sqs"), p.record.queues["notify-email"].url, 0
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        count += len(batch)
    return count


def walk_replay_and_recovery(p: Platform, say: Narrator) -> None:
    """Scenario 4: the analytics store is lost and rebuilt by an archive replay, same totals."""
    from datetime import UTC, datetime, timedelta

    from storefront import recovery

    # --8<-- [start:scenario-4]
    since = datetime.now(UTC) - timedelta(minutes=1)
    say.step(1, "A morning of trading; the bus's archive keeps every storefront.* event")
    staff = p.sign_up(f"sam-{uuid.uuid4().hex[:6]}@example.com", groups=("staff",))
    outcomes = []
    for name, quantity in (("ada", 2), ("bo", 1), ("cy", 2)):  # 3 mugs in stock
        token = p.sign_up(f"{name}-{uuid.uuid4().hex[:6]}@example.com")
        lines = {"lines": [{"sku": SKU, "quantity": quantity}]}
        order_id = p.http.post(p.url("orders", "/orders"), json=lines, headers=bearer(token))
        order_id = order_id.json()["order_id"]
        poll(lambda: p.order_status(order_id, token) != "pending", "the order to be decided")  # noqa: B023
        outcomes.append(f"{name} {quantity} -> {p.order_status(order_id, token)}")
    say.detail(f"orders: {'; '.join(outcomes)}")
    events = 3 + 2 + 1  # placed, fulfilled, rejected
    poll(lambda: p.store.events.count_documents({}) == events, "analytics to store every event")
    poll(lambda: p.queue_depth("notifications") == 0, "the notifications")
    notified = drain_email_queue(p)
    before = dashboard(p, staff)
    say.detail(f"event store: {events} events; {notified} customers notified by email")
    say.detail(f"archive {p.record.archive_arn.rsplit('/', 1)[-1]} holds them too")
    say.detail(f"dashboard: {summary(before)}")

    say.step(2, "The event store is lost")
    p.store.events.drop()
    say.detail(f"events collection dropped; dashboard: {summary(dashboard(p, staff))}")
    stock, rows = p.stock(), outbox_rows(p)

    say.step(3, "The recovery job: forget the analytics records, replay the window, wait")
    with Stopwatch() as took:
        rebuild = recovery.rebuild_analytics_from_archive(
            p.record,
            p.sessions,
            p.store,
            since=since,
            until=datetime.now(UTC),
            archive_delay=timedelta(0),  # moto archives during PutEvents
        )
    say.detail(f"forgot {rebuild.forgotten_records} idempotency records of the analytics consumer")
    say.detail(
        f"replay {rebuild.replay.name}: {rebuild.replay.state} after "
        f"{rebuild.replay.polls} DescribeReplay call(s), {took}"
    )

    say.step(4, "The replayed events reach the analytics queue")
    say.detail("moto ignores FilterArns, so fulfillment and notifications get copies as well;")
    say.detail("their idempotency records absorb them (real EventBridge sends none to them)")

    say.step(5, "The analytics worker appends them again, once each")
    with Stopwatch() as took:
        poll(lambda: p.store.events.count_documents({}) == events, "the rebuilt store")
        poll(
            lambda: all(
                p.queue_depth(q) == 0 for q in ("analytics", "fulfillment", "notifications")
            ),
            "every copy to be processed",
        )
    say.detail(f"event store: {p.store.events.count_documents({})} events again ({took})")

    say.step(6, "The dashboard answers as before the loss")
    after = dashboard(p, staff)
    say.detail(f"dashboard: {summary(after)}")
    if after != before:
        raise DemoError(f"the rebuilt dashboard differs: {after} != {before}")
    say.detail("the same totals as before the loss")
    again = drain_email_queue(p)
    say.detail(
        f"nothing twice: stock {stock} -> {p.stock()}, outbox rows {rows} -> {outbox_rows(p)}, "
        f"{again} new notifications"
    )

    say.step(7, "The alternative with no AWS call: rebuild from the outbox")
    log = recovery.rebuild_from_outbox(p.sessions, p.store, since, datetime.now(UTC))
    say.detail(
        f"{log.read} published outbox rows read: {log.appended} appended, "
        f"{log.already_stored} already stored"
    )
    say.line()
    say.line("Rebuilt: the same totals, and nobody charged, shipped or emailed twice.")
    # --8<-- [end:scenario-4]


# --- Scenario 5: abuse and attack ------------------------------------------------------------


def tampered(token: str, **claims: object) -> str:
    """The token with its claims changed and its signature kept: a forgery."""
    header, _payload, signature = token.split(".")
    forged = {**jwt_claims(token), **claims}
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def reason_of(answer: httpx.Response) -> str:
    """The reason the service gave."""
    detail = answer.json()["detail"]
    if isinstance(detail, list):  # FastAPI's validation errors: the field and the message
        return "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    return str(detail.get("reason", detail))


def walk_abuse_and_attack(p: Platform, say: Narrator) -> None:
    """Scenario 5: no token, a tampered token, the wrong role, invalid orders, a burst."""
    from storefront.db.models import Order

    # --8<-- [start:scenario-5]
    say.line("Steps 1 to 4 (Cloudflare, AWS WAF, API Gateway, the ALB) are configuration that the")
    say.line("demo does not emulate: it calls the services directly, and they hold on their own.")
    orders_url = p.url("orders", "/orders")

    say.step(5, "A burst from one client: 429 with Retry-After, before the token is checked")
    attacker, neighbour = "198.51.100.66", "203.0.113.19"
    burst = [
        p.http.post(orders_url, json=ORDER, headers=visitor(attacker))
        for _ in range(ORDER_LIMIT + 1)
    ]
    codes = [answer.status_code for answer in burst]
    say.detail(f"{len(burst)} x POST /orders from {attacker} without a token -> {codes}")
    if codes[-1] != 429:
        raise DemoError("the burst was not rate limited")
    say.detail(
        f"429 Retry-After: {burst[-1].headers['retry-after']} s; {burst[-1].json()['detail']}"
    )
    other = p.http.post(orders_url, json=ORDER, headers=visitor(neighbour))
    say.detail(f"another visitor ({neighbour}) -> {other.status_code}: not limited")

    say.step(6, "Tokens and roles: 401 with the reason, 403 for a customer on staff endpoints")
    token = p.sign_up(f"eve-{uuid.uuid4().hex[:6]}@example.com")
    eve = visitor("192.0.2.66")  # her own address: the burst above does not limit her
    attempts = {
        "no token": None,
        "a tampered token (groups changed to staff)": tampered(
            token, **{"cognito:groups": ["staff"]}
        ),
    }
    for what, attempt in attempts.items():
        answer = p.http.post(orders_url, json=ORDER, headers=bearer(attempt, **eve))
        say.detail(
            f"{what} -> {answer.status_code} {reason_of(answer)!r}; "
            f"WWW-Authenticate: {answer.headers.get('www-authenticate', '')}"
        )
    for service, method, path, body in (
        ("orders", "GET", "/staff/orders", None),
        ("analytics", "GET", "/analytics/funnel", None),
        ("catalog", "PUT", f"/catalog/products/{SKU}/price", {"price_minor": 1}),
    ):
        answer = p.http.request(
            method, p.url(service, path), json=body, headers=bearer(token, **eve)
        )
        say.detail(f"customer {method} {path} -> {answer.status_code} {reason_of(answer)!r}")

    say.step(7, "Invalid orders: 422 with the field and the reason, never a 500")
    for what, body in (
        ("zero quantity", {"lines": [{"sku": SKU, "quantity": 0}]}),
        (
            "a price sent by the client",
            {"lines": [{"sku": SKU, "quantity": 1, "unit_price_minor": 0}]},
        ),
        ("no lines", {"lines": []}),
        ("an unknown product", {"lines": [{"sku": "NO-SUCH-SKU", "quantity": 1}]}),
    ):
        answer = p.http.post(orders_url, json=body, headers=bearer(token, **eve))
        say.detail(f"{what} -> {answer.status_code} {reason_of(answer)!r}")
    with p.sessions() as session:
        written = session.scalar(select(func.count(Order.id)))
    say.line()
    say.line(f"Every attack refused with a reason; orders written: {written}.")
    # --8<-- [end:scenario-5]


WALKS: dict[int, Callable[[Platform, Narrator], None]] = {
    1: walk_place_an_order,
    2: walk_traffic_spike,
    3: walk_a_dependency_fails,
    4: walk_replay_and_recovery,
    5: walk_abuse_and_attack,
}
STOCK = {2: 1_000, 4: 3}  # the spike needs more mugs; in scenario 4 the third order is rejected


# --- The playground --------------------------------------------------------------------------


def print_playground(p: Platform, say: Narrator) -> None:
    """Print the endpoints, how to get a token, and curl examples for each service."""
    email, staff_email = "you@example.com", "staff@example.com"
    token = p.sign_up(email)
    staff = p.sign_up(staff_email, groups=("staff",))
    auth = {
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": p.client_id,
        "AuthParameters": {"USERNAME": email, "PASSWORD": PASSWORD},
    }
    python = REPO_ROOT / ".venv" / "bin" / "python"
    one_liner = (
        'import boto3; print(boto3.client("cognito-idp", endpoint_url="' + p.moto_url + '", '
        f'region_name="{REGION}", aws_access_key_id="testing", aws_secret_access_key="testing")'
        f'.initiate_auth(ClientId="{p.client_id}", AuthFlow="USER_PASSWORD_AUTH", '
        f'AuthParameters={{"USERNAME": "{email}", "PASSWORD": "{PASSWORD}"}})'
        '["AuthenticationResult"]["AccessToken"])'
    )
    catalog, orders, analytics = (p.servers[n].url for n in ("catalog", "orders", "analytics"))
    say.heading("The platform stays up: try it")
    say.line("Endpoints (each service describes its API at /openapi.json):")
    for name, server in p.servers.items():
        say.line(f"  {name + ' service':<19} {server.url}")
    say.line(f"  {'moto (AWS APIs)':<19} {p.moto_url}")
    say.line(f"  {'PostgreSQL':<19} {p.postgres.dsn('storefront')}")
    say.line(f"  {'Redis':<19} {p.redis_server.url}")
    say.line()
    say.line(f"Users (password {PASSWORD}): {email} (customers), {staff_email} (staff).")
    say.line("Get a customer's access token from moto's Cognito (InitiateAuth needs no signature):")
    say.line(
        f"  curl -s -X POST {p.moto_url}/ "
        "-H 'Content-Type: application/x-amz-json-1.1' "
        "-H 'X-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth' "
        f"-d {shlex.quote(json.dumps(auth, separators=(',', ':')))}"
    )
    say.line("or with the AWS CLI:")
    say.line(
        f"  aws cognito-idp initiate-auth --endpoint-url {p.moto_url} --region {REGION} "
        f"--no-sign-request --client-id {p.client_id} --auth-flow USER_PASSWORD_AUTH "
        f"--auth-parameters {shlex.quote(f'USERNAME={email},PASSWORD={PASSWORD}')} "
        "--query AuthenticationResult.AccessToken --output text"
    )
    say.line("or with Python:")
    say.line(f"  {python} -c {shlex.quote(one_liner)}")
    say.line()
    say.line("Tokens made just now:")
    say.line(f"  export TOKEN={token}")
    say.line(f"  export STAFF_TOKEN={staff}")
    say.line()
    say.line("Then:")
    say.line(f"  curl -i {catalog}/catalog/products/{SKU}")
    say.line(
        f'  curl -i -X POST {orders}/orders -H "Authorization: Bearer $TOKEN" '
        f"-H 'Content-Type: application/json' -d '{json.dumps(ORDER, separators=(',', ':'))}'"
    )
    say.line(f'  curl -i {orders}/orders/ORDER_ID -H "Authorization: Bearer $TOKEN"')
    say.line(f'  curl -i {orders}/staff/orders -H "Authorization: Bearer $STAFF_TOKEN"')
    say.line(f'  curl -i {analytics}/analytics/funnel -H "Authorization: Bearer $STAFF_TOKEN"')
    say.line()
    say.line(f"The services' JSON logs: {p.log_path}")
    say.line(READY_LINE)


# --- Running it ------------------------------------------------------------------------------


def install_signal_handlers(say: Narrator) -> None:
    """First SIGINT or SIGTERM: raise :class:`Interrupted` (tear down). Second: exit at once."""
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signal.Signals(signum).name)
        say.line("Second interrupt: exiting at once, without cleaning up.")
        os._exit(130)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def wait_for_interrupt() -> None:
    """Block until a signal handler raises :class:`Interrupted`."""
    forever = threading.Event()
    while not forever.wait(3600):
        pass


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line (argparse exits with status 2 and the reason on a bad argument)."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Run the storefront on this machine and walk one scenario.",
    )
    parser.add_argument(
        "--scenario",
        type=int,
        default=1,
        choices=sorted(SCENARIOS),
        metavar="N",
        help="; ".join(f"{n}: {title}" for n, title in SCENARIOS.items()) + " (default 1)",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="tear down after the walk instead of waiting"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the platform, walk the scenario, wait for Ctrl-C (unless ``--no-wait``), clean up.

    Returns:
        The exit status.
    """
    arguments = parse_arguments(argv)
    say = Narrator()
    install_signal_handlers(say)
    number = arguments.scenario
    teardown = Stopwatch()
    try:
        with contextlib.ExitStack() as stack:
            stack.push(teardown.__exit__)  # the last step: the whole teardown measured
            try:
                platform = start_platform(stack, say, STOCK.get(number, 5))
                say.heading(f"Scenario {number}: {SCENARIOS[number]} ({PAGES[number]})")
                WALKS[number](platform, say)
                if not arguments.no_wait:
                    print_playground(platform, say)
                    wait_for_interrupt()
            except Interrupted as signal_name:
                say.line()
                say.line(f"{signal_name} received.")
            except (DemoError, HarnessError):
                say.log_tail()  # before the teardown removes it
                raise
            finally:
                say.heading("Tearing down")
                teardown.__enter__()
    except Interrupted:
        pass  # a signal during the teardown: the teardown carried on regardless
    except (DemoError, HarnessError) as error:
        print(f"demo: {error}", file=sys.stderr, flush=True)
        return 1
    say.detail(f"(teardown took {teardown})")
    say.detail("temporary directories removed; done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
