"""Least privilege, proven from the calls the services make (issue 10).

The end-to-end run drives scenario-1 traffic through the platform of :mod:`tests.scenarios.shop`
(catalog reads, an order, its fulfillment, the receipt to S3 and the notification to SNS,
analytics, and a poison message that ends in a DLQ), collects the spans, and derives what each
service calls (:mod:`tests.proof.calls`). Each call is mapped to the IAM actions and deployed
ARNs it needs, and each need is evaluated against the service's own task role, synthesized by
the CDK app and resolved to concrete ARNs (:mod:`tests.proof.cloudformation`) with the
evaluator of :mod:`tests.proof.iam`. The converse holds too: every action a task role allows is
needed by an observed call or is on :data:`UNOBSERVED_GRANTS` with its reason.

IAM is not enforced by moto (it accepts every call), so the run proves what the services call,
not that AWS would allow it; the evaluator does that part, against the synthesized policies.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from infrastructure.inventory import SNAPSHOT_ACCOUNT, SNAPSHOT_REGION
from infrastructure.runtime import load_topology
from infrastructure.services import SERVICES, api_services
from infrastructure.settings import settings_for
from infrastructure.stacks import LAYERS
from opentelemetry import trace
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.trace import SpanKind
from storefront import aws
from storefront.db.models import Product
from storefront.events.relay import OutboxRelay
from storefront.messaging.notifications import NotificationPublisher
from storefront.services import analytics, fulfillment, notifications
from storefront.topology import build_topology

from tests.harness.servers import wait_until
from tests.infrastructure.synthesis import Synthesized
from tests.proof.calls import (
    DRIVER,
    SERVICE_ATTRIBUTE,
    Deployment,
    Need,
    all_needs,
    deployment_of,
    observed_calls,
    record_request_parameters,
    table,
    tag_client,
)
from tests.proof.cloudformation import Place, Resolver, TaskRole, task_roles
from tests.proof.iam import Request, as_list, broad_grants, evaluate
from tests.scenarios.shop import WORKER_OPTIONS, Storefront

tracer = trace.get_tracer(__name__)

SETTINGS = settings_for("prod", region=SNAPSHOT_REGION, account=SNAPSHOT_ACCOUNT)
PLACE = Place(account=SNAPSHOT_ACCOUNT, region=SNAPSHOT_REGION)
STACKS = {layer: SETTINGS.stack_name(layer) for layer in ("messaging", "data", "compute")}

# --8<-- [start:components]
# What each local component stands for in production. The consumers are named after their
# consumer (``Consumer.name``); the analytics consumer is the event-store worker. One relay
# serves the shared local outbox; in production each relay serves its producer's outbox, so a
# PutEvents entry is attributed to the relay whose source it carries.
COMPONENTS: dict[str, tuple[str, ...]] = {
    **{s.name: (s.name,) for s in api_services()},
    "consumer:fulfillment": ("fulfillment",),
    "consumer:notifications": ("notifications",),
    "consumer:analytics": ("event-store",),
    "outbox-relay": tuple(s.name for s in SERVICES if s.event_source),
}
RELAY_SOURCES = {s.event_source: s.name for s in SERVICES if s.event_source}
# --8<-- [end:components]

# --8<-- [start:not-run]
# Services with no stand-in in storefront.services: nothing runs their code, so their grants
# are checked for breadth only (test_no_statement_grants_a_wildcard_...), not proven by calls.
NOT_RUN: dict[str, str] = {
    "cart": "no stand-in (the cart API is not among storefront.services)",
    "payments": "no stand-in (the payment provider is out of scope)",
    "accounts": "no stand-in (staff administration in Cognito is not exercised)",
    "notification-sender": "no stand-in (the tests read the channel queues themselves)",
}
# --8<-- [end:not-run]

# --8<-- [start:unobserved-grants]
# Grants no observed call needs, each with why it is there. The collector sidecar is not run
# locally; its X-Ray and CloudWatch Logs calls are those the ADOT Collector documents
# (https://aws-otel.github.io/docs/setup/permissions, checked 2026-12-03).
UNOBSERVED_GRANTS: dict[str, str] = {
    "xray:PutSpans": "the collector's otlphttp exporter to the X-Ray OTLP endpoint",
    "xray:PutSpansForIndexing": "the X-Ray OTLP endpoint with Transaction Search",
    "logs:PutLogEvents": "the collector's awsemf exporter (metrics as EMF records)",
    "logs:CreateLogStream": "the awsemf exporter creates its stream in the metrics group",
    "logs:DescribeLogStreams": "the awsemf exporter looks its stream up before writing",
}
# --8<-- [end:unobserved-grants]


# --8<-- [start:expected]
# What the run derives: (service, action, deployed resource, condition context). ARNs are in the
# snapshot account and Region; "stand-in" ids replace what AWS assigns at creation; a receipt's
# key is shown as its pattern.
A = f"{SNAPSHOT_REGION}:{SNAPSHOT_ACCOUNT}"
MESSAGING_KEY = f"arn:aws:kms:{A}:key/stand-in-messagingkey9a79a2b1"
RECEIPTS_KEY = f"arn:aws:kms:{A}:key/stand-in-receiptskey95d83853"
DBUSER = f"arn:aws:rds-db:{A}:dbuser:prx-stand-in-proxy"
BUS = f"arn:aws:events:{A}:event-bus/storefront-prod-events"
QUEUE = f"arn:aws:sqs:{A}:storefront-prod"
RECEIPT = "arn:aws:s3:::storefront-prod-receipts/receipts/<yyyy>/<mm>/<order id>.pdf"
CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")
EXPECTED_NEEDS: set[tuple[str, str, str, str]] = {
    ("catalog", "rds-db:connect", f"{DBUSER}/catalog_app", ""),
    ("orders", "rds-db:connect", f"{DBUSER}/orders_app", ""),
    ("orders-relay", "rds-db:connect", f"{DBUSER}/orders_relay", ""),
    ("orders-relay", "events:PutEvents", BUS, "events:source=storefront.orders"),
    ("fulfillment-relay", "rds-db:connect", f"{DBUSER}/fulfillment_relay", ""),
    ("fulfillment-relay", "events:PutEvents", BUS, "events:source=storefront.fulfillment"),
    ("fulfillment", "rds-db:connect", f"{DBUSER}/fulfillment_app", ""),
    *(("fulfillment", action, f"{QUEUE}-fulfillment", "") for action in CONSUME),
    ("fulfillment", "kms:Decrypt", MESSAGING_KEY, ""),
    ("event-store", "rds-db:connect", f"{DBUSER}/event_store_app", ""),
    *(("event-store", action, f"{QUEUE}-analytics", "") for action in CONSUME),
    ("event-store", "kms:Decrypt", MESSAGING_KEY, ""),
    ("notifications", "rds-db:connect", f"{DBUSER}/notifications_app", ""),
    *(("notifications", action, f"{QUEUE}-notifications", "") for action in CONSUME),
    ("notifications", "kms:Decrypt", MESSAGING_KEY, ""),  # receive, and publish (encrypted topic)
    ("notifications", "sns:Publish", f"arn:aws:sns:{A}:storefront-prod-notifications", ""),
    ("notifications", "kms:GenerateDataKey", MESSAGING_KEY, ""),
    ("notifications", "s3:PutObject", RECEIPT, ""),
    ("notifications", "kms:GenerateDataKey", RECEIPTS_KEY, ""),
}
# --8<-- [end:expected]


def as_rows(needs: list[Need]) -> set[tuple[str, str, str, str]]:
    """Needs as the rows of :data:`EXPECTED_NEEDS` (a receipt's key replaced by its pattern)."""
    return {
        (
            n.service,
            n.action,
            re.sub(
                r"/receipts/\d{4}/\d{2}/[^/]+\.pdf$",
                "/receipts/<yyyy>/<mm>/<order id>.pdf",
                n.resource,
            ),
            ",".join(f"{k}={v}" for k, v in n.context),
        )
        for n in needs
    }


@dataclass(frozen=True)
class App:
    """The synthesized app, resolved."""

    templates: dict[str, dict[str, Any]]
    resolver: Resolver
    roles: dict[str, TaskRole]


@pytest.fixture(scope="module")
def app(prod: Synthesized) -> App:
    """The production app (the session's one synthesis, shared with tests/infrastructure)."""
    templates = {
        stack.stack_name: prod.templates[layer]
        for layer, stack in zip(LAYERS, prod.storefront.stacks(), strict=True)
    }
    resolver = Resolver(templates, PLACE)
    return App(
        templates, resolver, task_roles(resolver, STACKS["compute"], SETTINGS.resource_prefix)
    )


@pytest.fixture
def request_parameters() -> Iterator[None]:
    """Re-instrument botocore with the hook that records the parameters IAM authorizes on."""
    instrumentor = BotocoreInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(request_hook=record_request_parameters)
    yield
    instrumentor.uninstrument()
    instrumentor.instrument()


# --- Checking needs against roles ------------------------------------------------------------


# --8<-- [start:check]
def denied_needs(needs: list[Need], roles: dict[str, TaskRole]) -> list[str]:
    """Each need its service's own task role does not allow, with the decision."""
    problems = []
    for need in needs:
        request = Request(need.action, need.resource, dict(need.context))
        decision = evaluate(roles[need.service].statements, request)
        if not decision.allowed:
            problems.append(f"{need.service}: {need.action} on {need.resource} {decision.decision}")
    return problems


def unused_grants(needs: list[Need], roles: dict[str, TaskRole], services: set[str]) -> list[str]:
    """Each (action, resource) an Allow statement grants that no need of the service uses."""
    problems = []
    for service in sorted(services):
        mine = [n for n in needs if n.service == service]
        for index, statement in enumerate(roles[service].statements):
            for action in as_list(statement["Action"]):
                if action in UNOBSERVED_GRANTS:
                    continue
                for resource in as_list(statement["Resource"]):
                    if not any(
                        evaluate(
                            [{**statement, "Action": action, "Resource": resource}],
                            Request(n.action, n.resource, dict(n.context)),
                        ).allowed
                        for n in mine
                    ):
                        sid = statement.get("Sid", index)
                        problems.append(f"{service}: {sid} grants {action} on {resource}, unused")
    return problems


# --8<-- [end:check]


# --- The end-to-end run ----------------------------------------------------------------------


def drive(shop: Storefront) -> None:
    """Scenario 1 and a poison message, with workers whose clients are tagged."""
    driver_sqs = tag_client(aws.client("sqs"), DRIVER)
    queues = shop.record.queues
    receipts = shop.record.buckets["receipts"]
    assert receipts.kms_key_arn is not None

    def sqs(name: str) -> Any:
        return tag_client(aws.client("sqs"), f"consumer:{name}")

    notifier = notifications.Notifier(
        NotificationPublisher(shop.record.topic_arn), receipts.name, receipts.kms_key_arn
    )
    workers = [
        fulfillment.consumer(
            queues["fulfillment"].url, shop.sessions, options=WORKER_OPTIONS, sqs=sqs("fulfillment")
        ),
        notifications.consumer(
            queues["notifications"].url,
            shop.sessions,
            notifier,
            options=WORKER_OPTIONS,
            sqs=sqs("notifications"),
        ),
        analytics.consumer(
            queues["analytics"].url,
            shop.sessions,
            shop.store,
            options=WORKER_OPTIONS,
            sqs=sqs("analytics"),
        ),
    ]
    relay = OutboxRelay(shop.sessions, bus_name=shop.record.event_bus_name)
    processed = {worker.name: 0 for worker in workers}

    def pump() -> None:
        with tracer.start_as_current_span(
            "outbox relay", attributes={SERVICE_ATTRIBUTE: "outbox-relay"}
        ):
            relay.drain()
        for worker in workers:
            processed[worker.name] += worker.poll_once().processed

    with tracer.start_as_current_span("test driver", attributes={SERVICE_ATTRIBUTE: DRIVER}):
        with shop.sessions.begin() as session:
            session.add(Product(sku="MUG-1", name="Storefront mug", price_minor=1_250, stock=5))
        token = shop.add_customer(f"ada-{uuid.uuid4().hex[:8]}@example.com")
        staff = shop.add_staff(f"sam-{uuid.uuid4().hex[:8]}@example.com")

    assert shop.call("catalog", "GET", "/catalog/products/MUG-1").status_code == 200
    assert shop.call("catalog", "GET", "/catalog/products/MUG-1").status_code == 200  # cached
    placed = shop.call(
        "orders", "POST", "/orders", token=token, json={"lines": [{"sku": "MUG-1", "quantity": 2}]}
    )
    assert placed.status_code == 201, placed.text

    def everyone_is_done() -> bool:
        pump()
        return (processed["fulfillment"], processed["analytics"], processed["notifications"]) == (
            1,
            2,
            1,
        )

    wait_until(everyone_is_done, what="the order to reach every worker", timeout=20)
    funnel = shop.call("analytics", "GET", "/analytics/funnel", token=staff)
    assert funnel.json()["fulfilled"] == 1

    # A poison message on each worker's queue: an EventBridge event without a valid envelope.
    # The worker gives it back at once (ChangeMessageVisibility) until SQS moves it to the DLQ.
    poison = {"detail-type": "order.fulfilled", "source": "storefront.orders", "detail": {}}
    consumed = ("fulfillment", "notifications", "analytics")
    for key in consumed:
        driver_sqs.send_message(QueueUrl=queues[key].url, MessageBody=json.dumps(poison))

    def poison_is_in_every_dlq() -> bool:
        pump()
        counts = [
            driver_sqs.get_queue_attributes(
                QueueUrl=queues[f"{key}-dlq"].url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
            for key in consumed
        ]
        return counts == ["1", "1", "1"]

    with tracer.start_as_current_span("test driver", attributes={SERVICE_ATTRIBUTE: DRIVER}):
        wait_until(poison_is_in_every_dlq, what="the poison messages in the DLQs", timeout=30)


def derived_needs(shop: Storefront, app: App) -> tuple[list[Need], Deployment]:
    """The run's calls, attributed and mapped to what they need in the deployed app."""
    deployed = load_topology(SETTINGS)
    deployment = deployment_of(
        app.resolver,
        STACKS,
        shop.record,
        build_topology(),
        deployed,
        COMPONENTS,
        RELAY_SOURCES,
    )
    routes = {s.path: s.name for s in api_services()}
    calls = observed_calls(shop.spans.get_finished_spans(), routes)
    return all_needs(calls, deployment), deployment


def test_every_call_a_service_makes_is_allowed_by_its_own_task_role_and_nothing_more(
    storefront: Storefront, app: App, request_parameters: None
) -> None:
    storefront.spans.clear()  # the bootstrap's calls are not a service's
    drive(storefront)
    needs, _ = derived_needs(storefront, app)
    print("\n" + table(needs))  # the derived call table (pytest -s shows it)

    served = {
        routes_served
        for span in storefront.spans.get_finished_spans()
        if span.kind == SpanKind.SERVER
        for routes_served in [str((span.attributes or {}).get("http.route", "")).split("/")[1]]
    }
    ran = {need.service for need in needs} | served  # the analytics API calls no AWS API
    assert ran == {s.name for s in SERVICES} - set(NOT_RUN), "every service with a stand-in ran"
    assert denied_needs(needs, app.roles) == []
    assert unused_grants(needs, app.roles, ran) == []
    assert as_rows(needs) == EXPECTED_NEEDS


# --- The check bites -------------------------------------------------------------------------


def _topic_arn(app: App) -> str:
    return app.resolver.attribute(STACKS["messaging"], "Topic", "Ref", "test")


def test_a_need_missing_from_a_copy_of_the_role_is_reported(app: App) -> None:
    publish = Need("notifications", "sns:Publish", _topic_arn(app))
    assert denied_needs([publish], app.roles) == []
    role = app.roles["notifications"]
    without = [
        {**s, "Action": [a for a in as_list(s["Action"]) if a != "sns:Publish"]}
        for s in copy.deepcopy(list(role.statements))
    ]
    roles = {**app.roles, "notifications": TaskRole(role.service, role.logical_id, tuple(without))}
    assert denied_needs([publish], roles) == [
        f"notifications: sns:Publish on {_topic_arn(app)} implicitly denied"
    ]


def test_a_grant_no_call_needs_is_reported(app: App) -> None:
    publish = Need("notifications", "sns:Publish", _topic_arn(app))
    role = app.roles["notifications"]
    extra = {
        "Sid": "Extra",
        "Effect": "Allow",
        "Action": "sns:Subscribe",
        "Resource": _topic_arn(app),
    }
    roles = {"notifications": TaskRole(role.service, role.logical_id, (*role.statements, extra))}
    problems = unused_grants([publish], roles, {"notifications"})
    assert f"notifications: Extra grants sns:Subscribe on {_topic_arn(app)}, unused" in problems


# --8<-- [start:no-wildcards]
def test_no_statement_grants_a_wildcard_where_a_narrower_grant_works(app: App) -> None:
    compute = app.templates[STACKS["compute"]]
    assert broad_grants(compute) == []
    # The check bites: a "*" added to a copy of a task role's policy is reported.
    broken = copy.deepcopy(compute)
    policy = next(r for r in broken["Resources"].values() if r["Type"] == "AWS::IAM::Policy")
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}
    )
    assert {g.reason for g in broad_grants(broken)} == {
        "Action 'sqs:*'",
        "Resource '*' for sqs:*, which takes resources",
    }


# --8<-- [end:no-wildcards]


# --- Resource policies that name principals ---------------------------------------------------


def sender_problems(
    policies: dict[str, list[dict[str, Any]]],
    queue_arns: dict[str, str],
    sources: dict[str, tuple[str, str]],
    topology: Any,
) -> list[str]:
    """Queues whose policy admits a sender it should not, or refuses the one that feeds it.

    Args:
        policies: Queue key to the statements of its policy (missing: no policy).
        queue_arns: Queue key to its ARN.
        sources: Source reference (``rule:fulfillment``, ``topic:notifications``) to the
            sending service principal and the source ARN.
        topology: The topology whose ``Queue.senders`` say who may send.
    """
    problems = []
    for queue in topology.queues:
        allowed = {reference for _, reference in queue.senders}
        for reference, (principal, source_arn) in sources.items():
            request = Request(
                "sqs:SendMessage",
                queue_arns[queue.key],
                {"aws:SourceArn": source_arn, "aws:SecureTransport": "true"},
                f"Service:{principal}",
            )
            decision = evaluate(policies.get(queue.key, []), request)
            if decision.allowed != (reference in allowed):
                problems.append(f"{queue.name}: {reference} {decision.decision}")
        stranger = Request(
            "sqs:SendMessage",
            queue_arns[queue.key],
            {"aws:SecureTransport": "true"},
            "AWS:arn:aws:iam::999999999999:root",
        )
        if evaluate(policies.get(queue.key, []), stranger).allowed:
            problems.append(f"{queue.name}: another account may send")
    return problems


def _sources(
    topology: Any, rule_arns: dict[str, str], topic_arn: str
) -> dict[str, tuple[str, str]]:
    sources = {f"rule:{k}": ("events.amazonaws.com", arn) for k, arn in rule_arns.items()}
    sources["topic:notifications"] = ("sns.amazonaws.com", topic_arn)
    assert {f"rule:{r.key}" for r in topology.event_bus.rules} <= set(sources)
    return sources


def test_deployed_queue_policies_admit_only_the_rule_or_topic_that_feeds_each_queue(
    app: App,
) -> None:
    deployed = load_topology(SETTINGS)
    stack = STACKS["messaging"]
    resources = app.templates[stack]["Resources"]
    arns = {q.key: PLACE.arn("sqs", q.name) for q in deployed.queues}
    key_by_url = {
        f"https://sqs.{PLACE.region}.amazonaws.com/{PLACE.account}/{q.name}": q.key
        for q in deployed.queues
    }
    policies: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::SQS::QueuePolicy":
            properties = app.resolver.resolve(resource["Properties"], stack, logical_id)
            for url in properties["Queues"]:
                if url in key_by_url:  # the bus's own DLQ is not in the topology
                    policies[key_by_url[url]] = properties["PolicyDocument"]["Statement"]
    rule_arns = {
        r.key: PLACE.arn("events", f"rule/{deployed.event_bus.name}/{r.name}")
        for r in deployed.event_bus.rules
    }
    sources = _sources(deployed, rule_arns, PLACE.arn("sns", deployed.topic.name))
    assert sender_problems(policies, arns, sources, deployed) == []


def test_local_queue_policies_admit_only_the_rule_or_topic_that_feeds_each_queue(
    storefront: Storefront,
) -> None:
    sqs = aws.client("sqs")
    record = storefront.record
    policies = {}
    for key, queue in record.queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["Policy"])
        if "Policy" in attributes.get("Attributes", {}):
            policies[key] = json.loads(attributes["Attributes"]["Policy"])["Statement"]
    local = build_topology()
    sources = _sources(local, record.rule_arns, record.topic_arn)
    arns = {key: queue.arn for key, queue in record.queues.items()}
    assert sender_problems(policies, arns, sources, local) == []
    # The check bites: a policy that forgets the condition admits every rule.
    loose = {k: [{**s, "Condition": {}} for s in v] for k, v in policies.items()}
    assert sender_problems(loose, arns, sources, local)
