"""Scenario 2, "Traffic spike": what absorbs a burst at each layer, and no order is lost.

What runs for real: the services of :mod:`storefront.services` through ASGI, PostgreSQL, Redis
(the catalog cache, its stampede lock and the orders rate limiter), the bootstrap's queues,
rules and bus on a moto server over HTTP, and several fulfillment consumers polling one queue
at the same time. The CDK app is synthesized in process for the configuration moto cannot run:
API Gateway's stage throttling, the AWS WAF rate rule and the ECS autoscaling policies are
asserted in the templates, not exercised. Cloudflare is not emulated: the tests check the
``Cache-Control`` headers that let it cache, not the share of a burst it would absorb.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from infrastructure.services import api_services
from sqlalchemy import event, func, select
from storefront import aws, storage
from storefront.db.models import Order, OutboxEvent, ProcessedMessage, Product
from storefront.events.relay import OutboxRelay
from storefront.messaging.consumer import BatchOutcome
from storefront.services import fulfillment

from tests.infrastructure.synthesis import Synthesized
from tests.scenarios.shop import ORDER_LIMIT, PASSWORD, WORKER_OPTIONS, Storefront

SKUS = ("MUG-1", "TEE-1", "CAP-1", "BAG-1", "PIN-1")


def add_products(shop: Storefront, stock: int = 1_000) -> None:
    with shop.sessions.begin() as session:
        for number, sku in enumerate(SKUS, start=1):
            session.add(
                Product(sku=sku, name=f"Product {sku}", price_minor=number * 500, stock=stock)
            )


def directives(cache_control: str) -> dict[str, str | None]:
    """``Cache-Control`` as a mapping of directive to value (None for a bare directive)."""
    found: dict[str, str | None] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        found[name.lower()] = value or None
    return found


class ProductReads:
    """Counts the statements that read the products table (a SQLAlchemy engine event)."""

    def __init__(self, shop: Storefront) -> None:
        self.count = 0
        self._engine = shop.engine
        self._lock = threading.Lock()

    def __enter__(self) -> ProductReads:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM products" in statement:
            with self._lock:
                self.count += 1


def test_catalog_reads_are_cacheable_at_the_edge_and_personal_answers_never_are(
    storefront: Storefront,
) -> None:
    shop = storefront
    add_products(shop)
    customer = shop.add_customer(f"amy-{uuid.uuid4().hex[:8]}@example.com")
    staff = shop.add_staff(f"sol-{uuid.uuid4().hex[:8]}@example.com")
    # --8<-- [start:edge-headers]
    anonymous = shop.call("catalog", "GET", "/catalog/products/MUG-1")
    assert anonymous.status_code == 200
    policy = directives(anonymous.headers["cache-control"])
    assert "public" in policy  # what Cloudflare may store (its Cache Rule makes JSON eligible)
    assert (policy["s-maxage"], policy["max-age"]) == ("300", "60")  # Cloudflare, browsers
    # Personal or authenticated answers: Cloudflare stores none of them, whatever the route.
    placed = shop.call("orders", "POST", "/orders", token=customer,
                       json={"lines": [{"sku": "MUG-1", "quantity": 1}]})  # fmt: skip
    assert placed.status_code == 201, placed.text
    personal = {
        "catalog read with a token": shop.call(
            "catalog", "GET", "/catalog/products/MUG-1", token=customer
        ),
        "order placed": placed,
        "order read": shop.call(
            "orders", "GET", f"/orders/{placed.json()['order_id']}", token=customer
        ),
        "staff dashboard": shop.call("analytics", "GET", "/analytics/funnel", token=staff),
        "unknown product": shop.call("catalog", "GET", "/catalog/products/NO-SUCH-SKU"),
    }
    for case, response in personal.items():
        assert response.status_code < 500, (case, response.text)
        assert response.headers["cache-control"] == "private, no-store", case
    # Static assets in S3: content-hashed files for a year, entry points revalidated.
    assets = shop.record.buckets["assets"].name
    s3 = storage.s3_client()
    for key, expected in (
        ("app.3f9c2a1b.js", "public, max-age=31536000, immutable"),
        ("index.html", "public, max-age=60, must-revalidate"),
    ):
        storage.upload_asset(assets, key, b"...", content_type="text/plain")
        assert s3.head_object(Bucket=assets, Key=key)["CacheControl"] == expected
    # --8<-- [end:edge-headers]


def test_a_burst_of_catalog_reads_reaches_postgresql_once_per_sku(storefront: Storefront) -> None:
    shop = storefront
    add_products(shop)
    # --8<-- [start:hit-rate]
    reads = 500
    with ProductReads(shop) as database:
        for number in range(reads):
            response = shop.call("catalog", "GET", f"/catalog/products/{SKUS[number % len(SKUS)]}")
            assert response.status_code == 200, response.text
    stats = shop.apps["catalog"].state.cache_stats
    hit_rate = stats.hits / reads
    print(f"{reads} reads: {stats.hits} hits, {stats.misses} misses, hit rate {hit_rate:.1%}")
    assert (stats.misses, stats.hits) == (len(SKUS), reads - len(SKUS))  # one miss per SKU
    assert database.count == len(SKUS)  # PostgreSQL read once per SKU, not once per request
    assert hit_rate >= 0.99
    # --8<-- [end:hit-rate]


def test_concurrent_first_reads_of_a_cold_key_let_one_reach_postgresql(
    storefront: Storefront,
) -> None:
    shop = storefront
    add_products(shop)
    readers = 8
    cache_key = "catalog:product:MUG-1"
    # --8<-- [start:stampede]
    # Hold PostgreSQL's answer until every reader has looked in Redis and missed, so that all of
    # them arrive while the key is cold (a hot key expiring under a burst).
    missed: set[int] = set()
    all_missed = threading.Condition()
    redis_get = shop.redis.get

    def get(key: str) -> Any:
        value = redis_get(key)
        if key == cache_key and value is None:
            with all_missed:
                missed.add(threading.get_ident())
                all_missed.notify_all()
        return value

    def hold_until_all_missed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM products" in statement:
            with all_missed:
                assert all_missed.wait_for(lambda: len(missed) == readers, timeout=10)

    shop.redis.get = get  # the catalog's cache shares this client
    answers: list[int] = []

    def read() -> None:
        answers.append(shop.call("catalog", "GET", "/catalog/products/MUG-1").status_code)

    event.listen(shop.engine, "before_cursor_execute", hold_until_all_missed)
    try:
        with ProductReads(shop) as database:
            threads = [threading.Thread(target=read) for _ in range(readers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        event.remove(shop.engine, "before_cursor_execute", hold_until_all_missed)
        del shop.redis.get  # the client's own method again
    assert answers == [200] * readers
    assert len(missed) == readers  # every reader found the key cold...
    assert database.count == 1  # ...and the stampede lock let one of them reach PostgreSQL
    assert shop.apps["catalog"].state.cache_stats.misses == 1
    # --8<-- [end:stampede]


def orders_written(shop: Storefront) -> tuple[int, int]:
    with shop.sessions() as session:
        return (
            session.scalar(select(func.count(Order.id))) or 0,
            session.scalar(select(func.count(OutboxEvent.id))) or 0,
        )


def test_one_client_bursting_orders_gets_429_with_retry_after_and_others_are_served(
    storefront: Storefront,
) -> None:
    shop = storefront
    add_products(shop)
    burster = shop.add_customer(f"bob-{uuid.uuid4().hex[:8]}@example.com")
    other = shop.add_customer(f"cat-{uuid.uuid4().hex[:8]}@example.com")
    order = {"lines": [{"sku": "MUG-1", "quantity": 1}]}
    # --8<-- [start:rate-limit]
    answers = [
        shop.call("orders", "POST", "/orders", token=burster, json=order, peer="198.51.100.7")
        for _ in range(ORDER_LIMIT + 5)
    ]
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: ORDER_LIMIT, 429: 5}  # the limit, then refusals
    for refused in answers[ORDER_LIMIT:]:
        assert 1 <= int(refused.headers["retry-after"]) <= 60  # within the 60-second window
        detail = refused.json()["detail"]
        assert detail["error"] == "rate_limited"
        assert detail["reason"].startswith(f"More than {ORDER_LIMIT} requests in 60 seconds")
    assert answers[0].headers["ratelimit-remaining"] == str(ORDER_LIMIT - 1)
    # Another client, at the same moment, is served.
    served = shop.call("orders", "POST", "/orders", token=other, json=order, peer="203.0.113.9")
    assert served.status_code == 201, served.text
    # The refused requests wrote nothing: one order and one event per 201.
    assert orders_written(shop) == (ORDER_LIMIT + 1, ORDER_LIMIT + 1)
    # --8<-- [end:rate-limit]


# API Gateway's account-level throttling quota per Region (the page's footnote; checked
# 2026-12-03): the stage's targets must stay well below it.
ACCOUNT_THROTTLE_RPS, ACCOUNT_THROTTLE_BURST = 10_000, 5_000


def test_api_gateway_throttles_the_stage_and_aws_waf_rate_limits_each_client(
    prod: Synthesized,
) -> None:
    # --8<-- [start:throttling]
    stage = prod.one("api", "AWS::ApiGateway::Stage")
    throttles = {
        (s["ResourcePath"], s["HttpMethod"]): (s["ThrottlingRateLimit"], s["ThrottlingBurstLimit"])
        for s in stage["MethodSettings"]
    }
    assert throttles == {
        ("/*", "*"): (500, 1_000),  # requests per second, steady and burst, stage-wide
        ("/~1cart~1checkout", "POST"): (50, 100),  # the expensive method gets less
    }
    assert all(
        r < ACCOUNT_THROTTLE_RPS and b < ACCOUNT_THROTTLE_BURST for r, b in throttles.values()
    )
    [acl] = prod.resources("edge", "AWS::WAFv2::WebACL").values()
    [rate] = [r for r in acl["Properties"]["Rules"] if "RateBasedStatement" in r["Statement"]]
    statement = rate["Statement"]["RateBasedStatement"]
    assert (statement["Limit"], statement["EvaluationWindowSec"]) == (1_000, 300)
    assert statement["AggregateKeyType"] == "FORWARDED_IP"  # per client, not per Cloudflare node
    assert rate["Action"] == {"Block": {}}
    # --8<-- [end:throttling]


def queue_counts(url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue, as SQS reports them."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def stock_left(shop: Storefront) -> int:
    with shop.sessions() as session:
        return session.scalar(select(func.sum(Product.stock))) or 0


def customer_tokens(shop: Storefront, count: int) -> list[str]:
    """Sign up, confirm and sign in ``count`` customers, as ``add_customer`` does, on one client."""
    cognito, pool = aws.client("cognito-idp"), shop.record.user_pool_id
    tokens = []
    for _ in range(count):
        email = f"c-{uuid.uuid4().hex[:8]}@example.com"
        cognito.sign_up(ClientId=shop.client_id, Username=email, Password=PASSWORD,
                        UserAttributes=[{"Name": "email", "Value": email}])  # fmt: skip
        cognito.admin_confirm_sign_up(UserPoolId=pool, Username=email)
        cognito.admin_add_user_to_group(UserPoolId=pool, Username=email, GroupName="customers")
        tokens.append(
            cognito.initiate_auth(
                ClientId=shop.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
            )["AuthenticationResult"]["AccessToken"]
        )
    return tokens


def test_a_burst_of_orders_waits_in_sqs_and_scaled_out_workers_fulfil_each_exactly_once(
    storefront: Storefront,
) -> None:
    shop = storefront
    add_products(shop, stock=100)  # 500 units across the SKUs
    queue, dlq = (shop.record.queues[k].url for k in ("fulfillment", "fulfillment-dlq"))
    customers, orders_each = 20, ORDER_LIMIT  # each from its own address, within its limit
    # --8<-- [start:buffer]
    # The burst: 200 orders while no fulfillment task is running.
    placed: list[str] = []
    for number, token in enumerate(customer_tokens(shop, customers)):
        for line in range(orders_each):
            sku = SKUS[(number + line) % len(SKUS)]
            answer = shop.call("orders", "POST", "/orders", token=token, peer=f"10.1.0.{number}",
                               json={"lines": [{"sku": sku, "quantity": 2}]})  # fmt: skip
            assert answer.status_code == 201, answer.text  # accepted: one local transaction
            placed.append(answer.json()["order_id"])
    total = customers * orders_each
    # The outbox relay puts them on the bus, one PutEvents request (10 rows) per claim.
    relay = OutboxRelay(shop.sessions, bus_name=shop.record.event_bus_name, batch_size=10)
    assert relay.drain().published == total
    assert queue_counts(queue) == (total, 0)  # the backlog waits in SQS, nothing is dropped
    # --8<-- [end:buffer]

    # --8<-- [start:scale-out]
    # The backlog-per-task policy starts more tasks: three consumers poll the same queue at once.
    workers = [fulfillment.consumer(queue, shop.sessions, options=WORKER_OPTIONS) for _ in range(3)]
    outcomes = [BatchOutcome() for _ in workers]

    def drain(index: int) -> None:
        while (outcome := workers[index].poll_once()).received:  # until a receive comes back empty
            outcomes[index].add(outcome)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    print("processed per task:", [o.processed for o in outcomes])
    assert sum(o.processed for o in outcomes) == total
    assert sum(o.failed for o in outcomes) == 0
    # No order lost, none fulfilled twice; the queue and its dead-letter queue are empty.
    with shop.sessions() as session:
        statuses = Counter(session.scalars(select(Order.status)))
        fulfilled = Counter(
            event.correlation_id
            for event in session.scalars(
                select(OutboxEvent).where(OutboxEvent.type == "order.fulfilled")
            )
        )
        records = session.scalar(
            select(func.count(ProcessedMessage.id)).where(
                ProcessedMessage.consumer == "fulfillment"
            )
        )
    assert statuses == {"confirmed": total}
    assert set(fulfilled) == set(placed)  # every order placed was fulfilled...
    assert set(fulfilled.values()) == {1}  # ...exactly once
    assert records == total
    assert stock_left(shop) == 5 * 100 - 2 * total  # each order's two units reserved once
    assert queue_counts(queue) == queue_counts(dlq) == (0, 0)
    # --8<-- [end:scale-out]


def test_workers_scale_out_on_the_backlog_per_task_and_api_services_on_requests(
    prod: Synthesized,
) -> None:
    policies = prod.resources("compute", "AWS::ApplicationAutoScaling::ScalingPolicy")
    # --8<-- [start:worker-scaling]
    [backlog] = [
        p["Properties"]
        for p in policies.values()
        if p["Properties"].get("PolicyName") == "storefront-prod-fulfillment-backlog-per-task"
    ]
    tracking = backlog["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 100  # messages waiting per running task
    assert (tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (60, 300)
    metrics = tracking["CustomizedMetricSpecification"]["Metrics"]
    [visible] = [m for m in metrics if m["Id"] == "visible0"]
    assert visible["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert "Fulfillment" in str(visible["MetricStat"]["Metric"]["Dimensions"])
    [expression] = [m for m in metrics if m.get("ReturnData")]
    assert expression["Expression"] == "(visible0) / running"
    worker = prod.settings.worker
    assert (worker.min_tasks, worker.max_tasks) == (1, 10)  # so up to 1,000 waiting at target
    # --8<-- [end:worker-scaling]
    target_id = backlog["ScalingTargetId"]["Ref"]
    target = prod.resources("compute", "AWS::ApplicationAutoScaling::ScalableTarget")[target_id]
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 10)
    # The age of the oldest message adds tasks in steps when the backlog stops moving: the
    # alarm fires at 300 s; +1 task from there, +3 from 900 s, at most once a minute.
    [steps] = [
        p["Properties"]["StepScalingPolicyConfiguration"]
        for p in policies.values()
        if p["Properties"]["PolicyType"] == "StepScaling"
        and p["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    ]
    assert steps["Cooldown"] == 60
    assert steps["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 600, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 600, "ScalingAdjustment": 3},
    ]
    requests = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in policies.values()
        if p["Properties"]
        .get("TargetTrackingScalingPolicyConfiguration", {})
        .get("PredefinedMetricSpecification", {})
        .get("PredefinedMetricType")
        == "ALBRequestCountPerTarget"
    ]
    assert len(requests) == len(api_services())
    assert all(p["TargetValue"] == 1_000 for p in requests)
    assert all(p["ScaleOutCooldown"] == 60 for p in requests)
