"""From the spans of an end-to-end run to the IAM permissions each service needs in AWS.

Three steps:

1. **Observe.** The botocore instrumentation makes one CLIENT span per AWS API call, with
   ``rpc.service``, ``rpc.method``, ``cloud.region`` and, for SQS, ``aws.queue_url``; it records
   neither the bucket and key of an S3 call nor the entries of ``PutEvents``. The run therefore
   installs the instrumentation's documented ``request_hook``
   (:func:`record_request_parameters`), which copies the few request parameters IAM
   authorizes on into ``proof.param.*`` span attributes. SQLAlchemy's spans
   (``db.system`` = ``postgresql``) stand for the database connections.
2. **Attribute.** In production every service is its own task with its own role; here they share
   one process, so each span is attributed to a service by the first of these found walking up
   from the span through its parents: a ``proof.service`` attribute (set on the calls of the
   clients the test hands a worker, and on the span the test opens around the outbox relay),
   a CONSUMER span's ``messaging.consumer.group.name`` (the worker whose handler made the call),
   a SERVER span's route (the API service). A span attributed to no service fails the proof.
3. **Map.** Each call becomes the IAM actions and the deployed resource ARNs it needs
   (:func:`needs_of`), including the KMS permissions that AWS checks on the caller when the
   deployed queue, topic or bucket is encrypted with a customer managed key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanKind

from tests.proof.cloudformation import Resolver

DRIVER = "test-driver"  # calls the test itself makes (sign-up, a poison message): not a service
SERVICE_ATTRIBUTE = "proof.service"
PARAMETER_PREFIX = "proof.param."
RECORDED_PARAMETERS = ("Bucket", "Key", "SSEKMSKeyId", "TopicArn", "QueueUrl")


# --8<-- [start:request-hook]
def record_request_parameters(
    span: Span, _service: str, operation: str, params: Mapping[str, Any] | None
) -> None:
    """The botocore ``request_hook``: copy what IAM authorizes on into span attributes."""
    params = params or {}
    for name in RECORDED_PARAMETERS:
        if isinstance(params.get(name), str):
            span.set_attribute(PARAMETER_PREFIX + name, params[name])
    if operation == "PutEvents":
        entries = params.get("Entries", [])
        span.set_attribute(PARAMETER_PREFIX + "Sources", [str(e["Source"]) for e in entries])
        span.set_attribute(
            PARAMETER_PREFIX + "EventBusNames", [str(e["EventBusName"]) for e in entries]
        )


# --8<-- [end:request-hook]


def tag_client(client: Any, service: str) -> Any:
    """Mark every call of a boto3 client as made by ``service`` (returns the client).

    ``before-call`` runs inside the instrumentation's span, so the current span is the call's.
    """
    from opentelemetry import trace

    def tag(**_: Any) -> None:
        trace.get_current_span().set_attribute(SERVICE_ATTRIBUTE, service)

    client.meta.events.register("before-call", tag)
    return client


# --- Observed calls ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One AWS API call or database statement, attributed to a local component.

    Attributes:
        component: Who made it: an API service, a worker's consumer name, ``outbox-relay``.
        api: ``SQS.ReceiveMessage``, ``S3.PutObject``... or ``PostgreSQL`` for the database.
        parameters: The recorded request parameters (``proof.param.*`` and ``aws.queue_url``).
    """

    component: str
    api: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


class UnattributedSpanError(AssertionError):
    """A span of an AWS call or a database statement that no service can be said to have made."""


def _component(span: ReadableSpan, by_id: Mapping[int, ReadableSpan], routes: Mapping[str, str]):
    current: ReadableSpan | None = span
    while current is not None:
        attributes = current.attributes or {}
        if SERVICE_ATTRIBUTE in attributes:
            return str(attributes[SERVICE_ATTRIBUTE])
        if current.kind == SpanKind.CONSUMER and "messaging.consumer.group.name" in attributes:
            return f"consumer:{attributes['messaging.consumer.group.name']}"
        if current.kind == SpanKind.SERVER and "http.route" in attributes:
            prefix = "/" + str(attributes["http.route"]).strip("/").split("/")[0]
            if prefix in routes:
                return routes[prefix]
        parent = current.parent
        current = by_id.get(parent.span_id) if parent is not None else None
    return None


def observed_calls(spans: Sequence[ReadableSpan], routes: Mapping[str, str]) -> list[Call]:
    """The AWS calls and database statements among ``spans``, each with who made it.

    Args:
        spans: Finished spans of the run.
        routes: API path prefix (``/orders``) to service name.

    Raises:
        UnattributedSpanError: A call no attribute and no parent attributes to anyone.
    """
    by_id = {span.context.span_id: span for span in spans}
    calls: list[Call] = []
    unattributed: list[str] = []
    for span in spans:
        attributes = span.attributes or {}
        if attributes.get("rpc.system") == "aws-api":
            api = f"{attributes['rpc.service']}.{attributes['rpc.method']}"
        elif attributes.get("db.system") in ("postgresql", "postgres"):
            api = "PostgreSQL"
        else:
            continue
        component = _component(span, by_id, routes)
        if component is None:
            unattributed.append(f"{api} ({span.name})")
            continue
        if component == DRIVER:
            continue
        parameters = {
            key.removeprefix(PARAMETER_PREFIX): value
            for key, value in attributes.items()
            if key.startswith(PARAMETER_PREFIX) or key == "aws.queue_url"
        }
        calls.append(Call(component, api, parameters))
    if unattributed:
        raise UnattributedSpanError(f"spans no service is known to have made: {unattributed}")
    return calls


# --- What a call needs in AWS ------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Need:
    """One permission a service needs: an action on a deployed resource.

    Attributes:
        service: The ECS service (``infrastructure.services``).
        action: The IAM action.
        resource: The deployed resource's ARN (resolved from the templates).
        context: Condition keys AWS evaluates for it (``(("events:source", "...")``).
        because: The call that needs it.
    """

    service: str
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    because: str = ""


@dataclass(frozen=True)
class Deployment:
    """Where each local resource lives in the deployed app, resolved from the templates.

    Attributes:
        queues: Local queue URL to the deployed queue's ARN and its KMS key ARN (or None).
        topics: Local topic ARN to the deployed topic's ARN and KMS key ARN (or None).
        buses: Local bus name to the deployed bus's ARN.
        buckets: Local bucket name to the deployed bucket name and its default KMS key ARN.
        bucket_keys: Local KMS key ARN to the deployed key of the same bucket.
        database_users: Service to the user name in its task definition's database URL.
        proxy_resource_id: The RDS Proxy's resource id (``prx-...``) for ``rds-db`` ARNs.
        components: Local component to the deployed services it stands for.
        relay_sources: Event source to the relay service allowed to publish it.
        place_arn: Builds an ARN in the deployed account and Region.
    """

    queues: Mapping[str, tuple[str, str | None]]
    topics: Mapping[str, tuple[str, str | None]]
    buses: Mapping[str, str]
    buckets: Mapping[str, tuple[str, str | None]]
    bucket_keys: Mapping[str, str]
    database_users: Mapping[str, str]
    proxy_resource_id: str
    components: Mapping[str, tuple[str, ...]]
    relay_sources: Mapping[str, str]
    place_arn: Callable[[str, str], str]


class UnmappedCallError(AssertionError):
    """A call this proof has no IAM mapping for (add one, with its AWS documentation)."""


# --8<-- [start:needs]
def needs_of(call: Call, deployment: Deployment) -> list[Need]:
    """The IAM permissions one observed call needs, for each service its component stands for.

    Raises:
        UnmappedCallError: An API without a mapping, or a resource the deployment lacks.
    """
    p = call.parameters
    services = deployment.components.get(call.component)
    if services is None:
        raise UnmappedCallError(f"{call.component} stands for no deployed service")
    found: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []  # action, resource, context
    needs: set[Need] = set()
    if call.api in ("SQS.ReceiveMessage", "SQS.DeleteMessage", "SQS.ChangeMessageVisibilityBatch"):
        queue, key = _look_up(deployment.queues, str(p.get("aws.queue_url")), call)
        action = {
            "SQS.ReceiveMessage": "sqs:ReceiveMessage",
            "SQS.DeleteMessage": "sqs:DeleteMessage",
            # The batch API is authorized as the single action.
            "SQS.ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
        }[call.api]
        found.append((action, queue, ()))
        if key and call.api == "SQS.ReceiveMessage":
            found.append(("kms:Decrypt", key, ()))  # SQS decrypts with the consumer's rights
    elif call.api == "SNS.Publish":
        topic, key = _look_up(deployment.topics, str(p.get("TopicArn")), call)
        found.append(("sns:Publish", topic, ()))
        if key:  # an encrypted topic: the publisher needs both on the topic's key
            found += [("kms:GenerateDataKey", key, ()), ("kms:Decrypt", key, ())]
    elif call.api == "S3.PutObject":
        bucket, default_key = _look_up(deployment.buckets, str(p.get("Bucket")), call)
        found.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/{p['Key']}", ()))
        if "SSEKMSKeyId" in p:
            key = _look_up(deployment.bucket_keys, str(p["SSEKMSKeyId"]), call)
            found.append(("kms:GenerateDataKey", key, ()))
        elif default_key:
            found.append(("kms:GenerateDataKey", default_key, ()))
    elif call.api == "EventBridge.PutEvents":
        # Each entry is the relay of its own source's outbox (one relay per producer).
        for source, bus in zip(p["Sources"], p["EventBusNames"], strict=True):
            arn = _look_up(deployment.buses, str(bus), call)
            relay = deployment.relay_sources.get(str(source))
            if relay is None or relay not in services:
                raise UnmappedCallError(f"no relay service publishes the source {source}")
            context = (("events:source", str(source)),)
            needs.add(Need(relay, "events:PutEvents", arn, context, call.api))
    elif call.api == "PostgreSQL":
        for service in services:  # each connects as the user its task definition names
            user = deployment.database_users.get(service, "<no database user>")
            resource = deployment.place_arn(
                "rds-db", f"dbuser:{deployment.proxy_resource_id}/{user}"
            )
            needs.add(Need(service, "rds-db:connect", resource, (), call.api))
    else:
        raise UnmappedCallError(f"no IAM mapping for {call.api} (made by {call.component})")
    needs.update(
        Need(service, action, resource, context, call.api)
        for service in services
        for action, resource, context in found
    )
    return sorted(needs)


# --8<-- [end:needs]


def _look_up(table: Mapping[str, Any], local: str, call: Call) -> Any:
    if local not in table:
        raise UnmappedCallError(f"{call.api} by {call.component}: {local} is not deployed")
    return table[local]


def all_needs(calls: Iterable[Call], deployment: Deployment) -> list[Need]:
    """Every distinct need of every call, sorted (the ``because`` of the first call kept)."""
    needs: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], Need] = {}
    for call in calls:
        for need in needs_of(call, deployment):
            needs.setdefault((need.service, need.action, need.resource, need.context), need)
    return sorted(needs.values())


def deployment_of(
    resolver: Resolver,
    stacks: Mapping[str, str],
    record: Any,
    local_topology: Any,
    deployed_topology: Any,
    components: Mapping[str, tuple[str, ...]],
    relay_sources: Mapping[str, str],
) -> Deployment:
    """Resolve where each local (moto) resource lives in the deployed app.

    Args:
        resolver: The app's resolver.
        stacks: Layer (``messaging``, ``data``, ``compute``) to stack name.
        record: The local :class:`storefront.bootstrap.BootstrapRecord`.
        local_topology: The topology the bootstrap built locally.
        deployed_topology: The deployed environment's topology (its names).
        components: Local component to the deployed services it stands for.
        relay_sources: Event source to the relay service that publishes it.

    Raises:
        tests.proof.cloudformation.ResolutionError: A value the resolver cannot evaluate.
    """
    messaging = resolver.templates[stacks["messaging"]]["Resources"]
    data = resolver.templates[stacks["data"]]["Resources"]

    def find(resources: Mapping[str, Any], resource_type: str, key: str, name: str) -> str:
        for logical_id, resource in resources.items():
            if resource["Type"] == resource_type and resource["Properties"].get(key) == name:
                return logical_id
        raise AssertionError(f"no {resource_type} named {name} in the templates")

    def value(stack: str, logical_id: str, attribute: str) -> str:
        return resolver.attribute(stack, logical_id, attribute, f"{stack}.{logical_id}")

    def key_of(stack: str, fragment: Any, where: str) -> str | None:
        return None if fragment is None else str(resolver.resolve(fragment, stack, where))

    queues: dict[str, tuple[str, str | None]] = {}
    for key, local in record.queues.items():
        logical_id = find(
            messaging, "AWS::SQS::Queue", "QueueName", deployed_topology.queue(key).name
        )
        properties = messaging[logical_id]["Properties"]
        queues[local.url] = (
            value(stacks["messaging"], logical_id, "Arn"),
            key_of(stacks["messaging"], properties.get("KmsMasterKeyId"), logical_id),
        )
    topic_id = find(messaging, "AWS::SNS::Topic", "TopicName", deployed_topology.topic.name)
    topics = {
        record.topic_arn: (
            value(stacks["messaging"], topic_id, "Ref"),
            key_of(
                stacks["messaging"],
                messaging[topic_id]["Properties"].get("KmsMasterKeyId"),
                topic_id,
            ),
        )
    }
    bus_id = find(messaging, "AWS::Events::EventBus", "Name", deployed_topology.event_bus.name)
    buses = {record.event_bus_name: value(stacks["messaging"], bus_id, "Arn")}
    buckets: dict[str, tuple[str, str | None]] = {}
    bucket_keys: dict[str, str] = {}
    for bucket in local_topology.buckets:
        deployed = deployed_topology.bucket(bucket.key).name
        logical_id = find(data, "AWS::S3::Bucket", "BucketName", deployed)
        rules = data[logical_id]["Properties"]["BucketEncryption"][
            "ServerSideEncryptionConfiguration"
        ]
        default = rules[0]["ServerSideEncryptionByDefault"].get("KMSMasterKeyID")
        key = key_of(stacks["data"], default, logical_id)
        buckets[record.buckets[bucket.key].name] = (deployed, key)
        local_key = record.buckets[bucket.key].kms_key_arn
        if local_key and key:
            bucket_keys[local_key] = key
    (proxy_id,) = [i for i, r in data.items() if r["Type"] == "AWS::RDS::DBProxy"]
    proxy_resource_id = value(stacks["data"], proxy_id, "DBProxyArn").split(":")[6]
    database_users: dict[str, str] = {}
    compute = resolver.templates[stacks["compute"]]["Resources"]
    for logical_id, resource in compute.items():
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            continue
        service = str(resource["Properties"]["Family"]).removeprefix(f"{deployed_topology.prefix}-")
        for container in resource["Properties"]["ContainerDefinitions"]:
            for variable in container.get("Environment", []):
                if variable["Name"] == "STOREFRONT_DATABASE_URL":
                    url = str(resolver.resolve(variable["Value"], stacks["compute"], logical_id))
                    database_users[service] = url.split("://", 1)[1].split("@", 1)[0]
    return Deployment(
        queues=queues,
        topics=topics,
        buses=buses,
        buckets=buckets,
        bucket_keys=bucket_keys,
        database_users=database_users,
        proxy_resource_id=proxy_resource_id,
        components=components,
        relay_sources=relay_sources,
        place_arn=lambda service, resource: resolver.place.arn(service, resource),
    )


def table(needs: Iterable[Need]) -> str:
    """The needs as a fixed-width table (printed by the test, for the reader of its output)."""
    rows = [("service", "action", "resource", "condition context", "because")]
    rows += [
        (
            n.service,
            n.action,
            n.resource,
            json.dumps(dict(n.context)) if n.context else "",
            n.because,
        )
        for n in needs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
