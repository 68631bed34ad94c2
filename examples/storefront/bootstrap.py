"""Create the storefront's runtime AWS resources, idempotently, against the configured endpoint.

:func:`bootstrap` reads :mod:`storefront.topology` and makes the account match it: it creates
what is missing and corrects settings that drifted, and leaves alone what already matches, so a
second run makes no write call at all. It works against whatever endpoint boto3 is pointed at
(``AWS_ENDPOINT_URL``): the moto server in the tests and on a laptop, LocalStack, or an AWS
account. The returned :class:`BootstrapRecord` holds what the services need (ids, ARNs, URLs) and
the list of changes the run made.

Run it from the command line::

    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python -m storefront.bootstrap --without-deny-statements

What moto 5.2.5 does not emulate, and what that means here:

* Any ``Deny`` statement in a bucket policy is applied by moto regardless of its condition, so the
  standard "deny requests without TLS" statement makes every object call fail. Against moto pass
  ``apply_deny_statements=False`` (``--without-deny-statements``); against AWS never do.
* ``RedriveAllowPolicy`` (which queues may use a DLQ) is accepted and dropped by moto. The
  bootstrap sets it when it creates a DLQ and corrects it only when the endpoint reports a
  different value, so a run against moto stays write-free; a policy removed by hand on AWS is not
  restored.
* ``SetQueueAttributes`` without a ``Policy`` makes moto drop the queue's policy, so the bootstrap
  repeats the policy whenever it corrects a queue.
* Queue, topic and bucket policies and KMS key policies are stored but not enforced, so a test
  that passes here proves the settings are in place, not that AWS would accept the traffic.
* An SNS target on an EventBridge rule makes moto's ``PutEvents`` raise ``NotImplementedError``;
  the topology routes every rule to an SQS queue (and the notifications service publishes to SNS).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from storefront import aws
from storefront.settings import get_settings
from storefront.topology import (
    Bucket,
    Queue,
    Topology,
    build_topology,
    queue_arn,
    rule_arn,
    topic_arn,
)

ClientFactory = Callable[[str], Any]


class BootstrapError(RuntimeError):
    """The account cannot be made to match the topology; the message says why."""


# --- The record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRecord:
    """A queue that exists.

    Attributes:
        name: The queue's name.
        url: Its URL (what the SQS API takes).
        arn: Its ARN.
    """

    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class BucketRecord:
    """A bucket that exists.

    Attributes:
        name: The bucket's name.
        arn: Its ARN.
        encryption: ``AES256`` or ``aws:kms``.
        kms_key_arn: The key of SSE-KMS, else None.
    """

    name: str
    arn: str
    encryption: str
    kms_key_arn: str | None


@dataclass(frozen=True)
class BootstrapRecord:
    """What exists after a run, and what the run changed.

    Attributes:
        region: The Region the resources are in.
        account: The AWS account id.
        user_pool_id: The Cognito user pool's id.
        user_pool_client_ids: App client name to client id.
        groups: The pool's group names.
        event_bus_name: The custom bus's name.
        event_bus_arn: The bus's ARN.
        rule_arns: Rule key to rule ARN.
        archive_arn: The archive's ARN.
        topic_arn: The notifications topic's ARN.
        subscription_arns: Subscribed queue key to subscription ARN.
        queues: Queue key to the queue.
        buckets: Bucket key to the bucket.
        kms_key_arns: KMS alias to key ARN.
        changes: What this run created or corrected, in order; empty when nothing had to change.
    """

    region: str
    account: str
    user_pool_id: str
    user_pool_client_ids: dict[str, str]
    groups: tuple[str, ...]
    event_bus_name: str
    event_bus_arn: str
    rule_arns: dict[str, str]
    archive_arn: str
    topic_arn: str
    subscription_arns: dict[str, str]
    queues: dict[str, QueueRecord]
    buckets: dict[str, BucketRecord]
    kms_key_arns: dict[str, str]
    changes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data."""
        return asdict(self)

    def to_json(self) -> str:
        """The record as indented JSON (what the CLI prints)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def environment(self) -> dict[str, str]:
        """The ``STOREFRONT_*`` variables that point the services at these resources."""
        return {
            "STOREFRONT_COGNITO_USER_POOL_ID": self.user_pool_id,
            "STOREFRONT_COGNITO_CLIENT_IDS": json.dumps(sorted(self.user_pool_client_ids.values())),
            "STOREFRONT_EVENT_BUS_NAME": self.event_bus_name,
        }


# --- Helpers ---------------------------------------------------------------------------------


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _json_equal(left: str | None, right: str | None) -> bool:
    """Compare two JSON documents by value (key order and number types aside)."""
    if left is None or right is None:
        return left == right

    def normalise(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: normalise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalise(v) for v in value]
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value

    return normalise(json.loads(left)) == normalise(json.loads(right))


def _paginate(client: Any, operation: str, key: str, **arguments: Any) -> Iterator[Any]:
    for page in client.get_paginator(operation).paginate(**arguments):
        yield from page.get(key, [])


@dataclass
class _Context:
    topology: Topology
    clients: ClientFactory
    region: str
    account: str = ""
    partition: str = "aws"
    apply_deny_statements: bool = True
    changes: list[str] = field(default_factory=list)
    _cache: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self.clients(service)
        return self._cache[service]

    def changed(self, what: str) -> None:
        self.changes.append(what)

    def queue_arn(self, key: str) -> str:
        return queue_arn(
            partition=self.partition,
            region=self.region,
            account=self.account,
            queue=self.topology.queue(key).name,
        )

    def resolve_source(self, reference: str) -> str:
        kind, _, key = reference.partition(":")
        if kind == "rule":
            return rule_arn(
                partition=self.partition,
                region=self.region,
                account=self.account,
                bus=self.topology.event_bus.name,
                rule=self.topology.rule(key).name,
            )
        if kind == "topic":
            return topic_arn(
                partition=self.partition,
                region=self.region,
                account=self.account,
                topic=self.topology.topic.name,
            )
        raise BootstrapError(f"unknown source reference {reference!r}")


# --- SQS -------------------------------------------------------------------------------------


# --8<-- [start:queue-policy]
def queue_policy(queue: Queue, arn: str, source_arns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A queue policy that lets each AWS service send only from its own resource.

    Args:
        queue: The queue.
        arn: The queue's ARN.
        source_arns: ``(service principal, source ARN)`` pairs, for example
            ``("events.amazonaws.com", <rule ARN>)``.

    Returns:
        The policy document. The ``aws:SourceArn`` condition stops any other rule or topic (in
        any account) from writing to the queue through the same service principal.
    """
    return {
        "Version": "2012-10-17",
        "Id": f"{queue.name}-policy",
        "Statement": [
            {
                "Sid": f"Allow{principal.split('.')[0].capitalize()}{index}",
                "Effect": "Allow",
                "Principal": {"Service": principal},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": source}},
            }
            for index, (principal, source) in enumerate(source_arns)
        ],
    }


# --8<-- [end:queue-policy]

_JSON_QUEUE_ATTRIBUTES = {"RedrivePolicy", "Policy", "RedriveAllowPolicy"}


def _ensure_queue(ctx: _Context, queue: Queue) -> QueueRecord:
    sqs = ctx.client("sqs")
    arn = ctx.queue_arn(queue.key)
    sources = [(principal, ctx.resolve_source(ref)) for principal, ref in queue.senders]
    desired = queue.attributes(
        dead_letter_arn=ctx.queue_arn(queue.dead_letter_queue) if queue.dead_letter_queue else None,
        policy=queue_policy(queue, arn, sources) if sources else None,
    )
    redrive_allow = None
    if queue.redrive_sources:
        redrive_allow = json.dumps(
            {
                "redrivePermission": "byQueue",
                "sourceQueueArns": [ctx.queue_arn(key) for key in queue.redrive_sources],
            }
        )
    try:
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
    except ClientError as error:
        if _error_code(error) not in {
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        }:
            raise
        attributes = dict(desired)
        if redrive_allow:
            attributes["RedriveAllowPolicy"] = redrive_allow
        url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        ctx.changed(f"sqs: created queue {queue.name}")
        return QueueRecord(name=queue.name, url=url, arn=arn)

    actual = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if redrive_allow and "RedriveAllowPolicy" in actual:
        desired["RedriveAllowPolicy"] = redrive_allow  # only correctable where it is reported
    drift: dict[str, str] = {}
    for name, value in desired.items():
        current = actual.get(name)
        same = _json_equal(current, value) if name in _JSON_QUEUE_ATTRIBUTES else current == value
        if not same:
            drift[name] = value
    if "Policy" in actual and "Policy" not in desired:
        drift["Policy"] = ""  # a policy the topology does not grant is removed
    if drift:
        # moto 5.2.5 drops a queue's policy on any SetQueueAttributes that does not repeat it;
        # repeating it is harmless on AWS.
        sent = {**drift, **({"Policy": desired["Policy"]} if "Policy" in desired else {})}
        sqs.set_queue_attributes(QueueUrl=url, Attributes=sent)
        ctx.changed(f"sqs: corrected {', '.join(sorted(drift))} of {queue.name}")
    return QueueRecord(name=queue.name, url=url, arn=actual.get("QueueArn", arn))


def _ensure_queues(ctx: _Context) -> dict[str, QueueRecord]:
    # DLQs first: a redrive policy may only name a queue that exists.
    ordered = sorted(ctx.topology.queues, key=lambda q: q.dead_letter_queue is not None)
    records = {queue.key: _ensure_queue(ctx, queue) for queue in ordered}
    return {queue.key: records[queue.key] for queue in ctx.topology.queues}


# --- SNS -------------------------------------------------------------------------------------


def _ensure_topic(ctx: _Context, queues: dict[str, QueueRecord]) -> tuple[str, dict[str, str]]:
    sns = ctx.client("sns")
    topic = ctx.topology.topic
    arn = ctx.resolve_source("topic:notifications")
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        if _error_code(error) not in {"NotFound", "NotFoundException"}:
            raise
        arn = sns.create_topic(Name=topic.name)["TopicArn"]
        ctx.changed(f"sns: created topic {topic.name}")

    existing: dict[str, str] = {}
    for subscription in _paginate(
        sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn
    ):
        if subscription.get("Protocol") == "sqs":
            existing[subscription["Endpoint"]] = subscription["SubscriptionArn"]

    dead_letter_arn = queues[topic.dead_letter_queue].arn
    subscription_arns: dict[str, str] = {}
    for subscription in topic.subscriptions:
        endpoint = queues[subscription.queue].arn
        desired = subscription.attributes(dead_letter_arn=dead_letter_arn)
        if endpoint not in existing:
            response = sns.subscribe(
                TopicArn=arn,
                Protocol="sqs",
                Endpoint=endpoint,
                Attributes=desired,
                ReturnSubscriptionArn=True,
            )
            subscription_arns[subscription.queue] = response["SubscriptionArn"]
            ctx.changed(f"sns: subscribed {queues[subscription.queue].name}")
            continue
        subscription_arn = existing[endpoint]
        subscription_arns[subscription.queue] = subscription_arn
        actual = sns.get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]
        for name, value in desired.items():
            current = actual.get(name)
            same = _json_equal(current, value) if name.endswith("Policy") else current == value
            if not same:
                sns.set_subscription_attributes(
                    SubscriptionArn=subscription_arn, AttributeName=name, AttributeValue=value
                )
                ctx.changed(f"sns: corrected {name} of {queues[subscription.queue].name}")
    return arn, subscription_arns


# --- EventBridge -----------------------------------------------------------------------------


def _ensure_event_bus(
    ctx: _Context, queues: dict[str, QueueRecord]
) -> tuple[str, dict[str, str], str]:
    events = ctx.client("events")
    bus = ctx.topology.event_bus
    try:
        bus_arn = events.describe_event_bus(Name=bus.name)["Arn"]
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        bus_arn = events.create_event_bus(Name=bus.name)["EventBusArn"]
        ctx.changed(f"events: created bus {bus.name}")

    rule_arns: dict[str, str] = {}
    for rule in bus.rules:
        desired_rule = {
            "Name": rule.name,
            "EventBusName": bus.name,
            "EventPattern": rule.pattern_json(),
            "State": "ENABLED",
            "Description": rule.description,
        }
        try:
            actual = events.describe_rule(Name=rule.name, EventBusName=bus.name)
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            rule_arns[rule.key] = events.put_rule(**desired_rule)["RuleArn"]
            ctx.changed(f"events: created rule {rule.name}")
        else:
            rule_arns[rule.key] = actual["Arn"]
            if (
                not _json_equal(actual.get("EventPattern"), desired_rule["EventPattern"])
                or actual.get("State") != "ENABLED"
                or actual.get("Description", "") != rule.description
            ):
                events.put_rule(**desired_rule)
                ctx.changed(f"events: corrected rule {rule.name}")

        desired_target = {
            "Id": rule.target_id,
            "Arn": queues[rule.target_queue].arn,
            "RetryPolicy": rule.retry_policy.to_api(),
            "DeadLetterConfig": {"Arn": queues[rule.target_dead_letter_queue].arn},
        }
        targets = list(
            _paginate(
                events, "list_targets_by_rule", "Targets", Rule=rule.name, EventBusName=bus.name
            )
        )
        strangers = [t["Id"] for t in targets if t["Id"] != rule.target_id]
        if strangers:
            events.remove_targets(Rule=rule.name, EventBusName=bus.name, Ids=strangers)
            ctx.changed(f"events: removed targets {strangers} from {rule.name}")
        ours = [t for t in targets if t["Id"] == rule.target_id]
        if not ours or {k: ours[0].get(k) for k in desired_target} != desired_target:
            response = events.put_targets(
                Rule=rule.name, EventBusName=bus.name, Targets=[desired_target]
            )
            if response.get("FailedEntryCount"):
                raise BootstrapError(f"put_targets failed for {rule.name}: {response}")
            ctx.changed(f"events: set target of {rule.name}")

    archive = bus.archive
    try:
        actual_archive = events.describe_archive(ArchiveName=archive.name)
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        archive_arn = events.create_archive(
            ArchiveName=archive.name,
            EventSourceArn=bus_arn,
            EventPattern=archive.pattern_json(),
            RetentionDays=archive.retention_days,
        )["ArchiveArn"]
        ctx.changed(f"events: created archive {archive.name}")
    else:
        archive_arn = actual_archive["ArchiveArn"]
        if actual_archive.get("EventSourceArn") != bus_arn:
            raise BootstrapError(
                f"archive {archive.name} belongs to {actual_archive.get('EventSourceArn')}"
            )
        if (
            not _json_equal(actual_archive.get("EventPattern"), archive.pattern_json())
            or actual_archive.get("RetentionDays") != archive.retention_days
        ):
            events.update_archive(
                ArchiveName=archive.name,
                EventPattern=archive.pattern_json(),
                RetentionDays=archive.retention_days,
            )
            ctx.changed(f"events: corrected archive {archive.name}")
    return bus_arn, rule_arns, archive_arn


# --- Cognito ---------------------------------------------------------------------------------


def _ensure_user_pool(ctx: _Context) -> tuple[str, dict[str, str], tuple[str, ...]]:
    idp = ctx.client("cognito-idp")
    pool = ctx.topology.user_pool
    matches = [
        p["Id"]
        for p in _paginate(idp, "list_user_pools", "UserPools", MaxResults=60)
        if p["Name"] == pool.name
    ]
    if len(matches) > 1:
        raise BootstrapError(f"{len(matches)} user pools are named {pool.name}: {matches}")
    arguments = pool.create_arguments()
    if matches:
        pool_id = matches[0]
        actual = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
        actual_policy = actual.get("Policies", {}).get("PasswordPolicy", {})
        wanted_policy = arguments["Policies"]["PasswordPolicy"]
        if {k: actual_policy.get(k) for k in wanted_policy} != wanted_policy or actual.get(
            "DeletionProtection"
        ) != arguments["DeletionProtection"]:
            # UpdateUserPool resets what it is not given, so it gets every governed setting.
            idp.update_user_pool(
                UserPoolId=pool_id,
                Policies=arguments["Policies"],
                DeletionProtection=arguments["DeletionProtection"],
                AutoVerifiedAttributes=arguments["AutoVerifiedAttributes"],
                AdminCreateUserConfig=arguments["AdminCreateUserConfig"],
            )
            ctx.changed(f"cognito: corrected password policy of {pool.name}")
    else:
        pool_id = idp.create_user_pool(**arguments)["UserPool"]["Id"]
        ctx.changed(f"cognito: created user pool {pool.name}")

    groups = {
        g["GroupName"]: g for g in _paginate(idp, "list_groups", "Groups", UserPoolId=pool_id)
    }
    for group in pool.groups:
        if group.name not in groups:
            idp.create_group(
                UserPoolId=pool_id,
                GroupName=group.name,
                Description=group.description,
                Precedence=group.precedence,
            )
            ctx.changed(f"cognito: created group {group.name}")
        elif (
            groups[group.name].get("Description") != group.description
            or groups[group.name].get("Precedence") != group.precedence
        ):
            idp.update_group(
                UserPoolId=pool_id,
                GroupName=group.name,
                Description=group.description,
                Precedence=group.precedence,
            )
            ctx.changed(f"cognito: corrected group {group.name}")

    clients = {
        c["ClientName"]: c["ClientId"]
        for c in _paginate(
            idp, "list_user_pool_clients", "UserPoolClients", UserPoolId=pool_id, MaxResults=60
        )
    }
    client_ids: dict[str, str] = {}
    for app in pool.clients:
        wanted = app.to_api()
        if app.name not in clients:
            created = idp.create_user_pool_client(
                UserPoolId=pool_id, GenerateSecret=app.generate_secret, **wanted
            )
            client_ids[app.name] = created["UserPoolClient"]["ClientId"]
            ctx.changed(f"cognito: created app client {app.name}")
            continue
        client_id = clients[app.name]
        client_ids[app.name] = client_id
        actual = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)
        actual = actual["UserPoolClient"]
        if bool(actual.get("ClientSecret")) != app.generate_secret:
            raise BootstrapError(
                f"app client {app.name} {'has' if actual.get('ClientSecret') else 'lacks'} a "
                "secret; a secret cannot be added or removed, so delete the client and rerun"
            )
        current = {k: actual.get(k) for k in wanted}
        current["ExplicitAuthFlows"] = sorted(current.get("ExplicitAuthFlows") or [])
        if current != {**wanted, "ExplicitAuthFlows": sorted(wanted["ExplicitAuthFlows"])}:
            idp.update_user_pool_client(UserPoolId=pool_id, ClientId=client_id, **wanted)
            ctx.changed(f"cognito: corrected app client {app.name}")
    return pool_id, client_ids, tuple(group.name for group in pool.groups)


# --- KMS and S3 ------------------------------------------------------------------------------


def _ensure_kms_keys(ctx: _Context) -> dict[str, str]:
    kms = ctx.client("kms")
    aliases = {a["AliasName"]: a for a in _paginate(kms, "list_aliases", "Aliases")}
    arns: dict[str, str] = {}
    for key in ctx.topology.kms_keys():
        if key.alias in aliases and aliases[key.alias].get("TargetKeyId"):
            metadata = kms.describe_key(KeyId=aliases[key.alias]["TargetKeyId"])["KeyMetadata"]
        else:
            metadata = kms.create_key(Description=key.description)["KeyMetadata"]
            kms.create_alias(AliasName=key.alias, TargetKeyId=metadata["KeyId"])
            ctx.changed(f"kms: created key {key.alias}")
        if not kms.get_key_rotation_status(KeyId=metadata["KeyId"]).get("KeyRotationEnabled"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
            ctx.changed(f"kms: enabled rotation of {key.alias}")
        arns[key.alias] = metadata["Arn"]
    return arns


def _get_or_none(call: Callable[[], Any], *missing: str) -> Any:
    try:
        return call()
    except ClientError as error:
        if _error_code(error) in missing:
            return None
        raise


def _lifecycle_subset(actual: list[dict[str, Any]], desired: list[dict[str, Any]]) -> list[Any]:
    """The actual rules reduced to the fields the desired rules set (endpoints add defaults)."""
    by_id = {rule.get("ID"): rule for rule in actual}
    reduced = []
    for rule in desired:
        current = by_id.get(rule["ID"], {})
        reduced.append({k: current.get(k) for k in rule})
    return reduced if len(actual) == len(desired) else [*reduced, "extra rules"]


def _ensure_bucket(ctx: _Context, bucket: Bucket, kms_key_arns: dict[str, str]) -> BucketRecord:
    s3 = ctx.client("s3")
    name = bucket.name
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        code = _error_code(error)
        if code in {"403", "AccessDenied"}:
            raise BootstrapError(f"bucket {name} exists and belongs to another account") from error
        if code not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        arguments: dict[str, Any] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
        if ctx.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        s3.create_bucket(**arguments)
        ctx.changed(f"s3: created bucket {name}")

    versioning = s3.get_bucket_versioning(Bucket=name)
    if versioning.get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        ctx.changed(f"s3: enabled versioning of {name}")

    kms_key_arn = kms_key_arns.get(bucket.kms_key.alias) if bucket.kms_key else None
    wanted_rules = [bucket.encryption_rule(kms_key_arn)]
    encryption = _get_or_none(
        lambda: s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"],
        "ServerSideEncryptionConfigurationNotFoundError",
    )
    actual_rules = [
        {k: rule.get(k) for k in wanted_rules[0]} for rule in (encryption or {}).get("Rules", [])
    ]
    if actual_rules != wanted_rules:
        s3.put_bucket_encryption(
            Bucket=name, ServerSideEncryptionConfiguration={"Rules": wanted_rules}
        )
        ctx.changed(f"s3: set default encryption of {name}")

    block = _get_or_none(
        lambda: s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
        "NoSuchPublicAccessBlockConfiguration",
    )
    if block != bucket.public_access_block():
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=bucket.public_access_block()
        )
        ctx.changed(f"s3: blocked public access to {name}")

    ownership = _get_or_none(
        lambda: s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"],
        "OwnershipControlsNotFoundError",
    )
    wanted_ownership = [{"ObjectOwnership": "BucketOwnerEnforced"}]
    if ownership != wanted_ownership:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls={"Rules": wanted_ownership})
        ctx.changed(f"s3: enforced bucket-owner ownership of {name}")

    wanted_lifecycle = [rule.to_api() for rule in bucket.lifecycle]
    lifecycle = _get_or_none(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"],
        "NoSuchLifecycleConfiguration",
    )
    if (
        wanted_lifecycle
        and _lifecycle_subset(lifecycle or [], wanted_lifecycle) != wanted_lifecycle
    ):
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": wanted_lifecycle}
        )
        ctx.changed(f"s3: set lifecycle of {name}")

    wanted_policy = bucket.policy(include_deny=ctx.apply_deny_statements)
    policy = _get_or_none(lambda: s3.get_bucket_policy(Bucket=name)["Policy"], "NoSuchBucketPolicy")
    if wanted_policy is None and policy is not None:
        s3.delete_bucket_policy(Bucket=name)
        ctx.changed(f"s3: removed policy of {name}")
    elif wanted_policy is not None and (policy is None or json.loads(policy) != wanted_policy):
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(wanted_policy))
        ctx.changed(f"s3: set policy of {name}")

    return BucketRecord(
        name=name,
        arn=f"arn:{ctx.partition}:s3:::{name}",
        encryption=bucket.encryption,
        kms_key_arn=kms_key_arn,
    )


# --- Entry points ----------------------------------------------------------------------------


# --8<-- [start:bootstrap]
def bootstrap(
    topology: Topology | None = None,
    *,
    client_factory: ClientFactory = aws.client,
    apply_deny_statements: bool = True,
) -> BootstrapRecord:
    """Make the account match the topology, and say what exists.

    Args:
        topology: What to create; defaults to :func:`storefront.topology.build_topology`.
        client_factory: Makes a boto3 client per service (:func:`storefront.aws.client`).
        apply_deny_statements: Put the buckets' ``Deny`` statements in place. Leave True
            against AWS; False only for moto, which applies a ``Deny`` regardless of condition.

    Returns:
        The record of what exists, with the changes this run made (none on a second run).

    Raises:
        BootstrapError: Something exists that the bootstrap must not take over or cannot fix
            (a bucket name owned by another account, two pools with the pool's name...).
    """
    topology = topology or build_topology()
    ctx = _Context(
        topology=topology,
        clients=client_factory,
        region=get_settings().region,
        apply_deny_statements=apply_deny_statements,
    )
    identity = ctx.client("sts").get_caller_identity()
    ctx.account = identity["Account"]
    ctx.partition = identity["Arn"].split(":")[1]

    kms_key_arns = _ensure_kms_keys(ctx)
    queues = _ensure_queues(ctx)
    topic, subscriptions = _ensure_topic(ctx, queues)
    bus_arn, rule_arns, archive_arn = _ensure_event_bus(ctx, queues)
    pool_id, client_ids, groups = _ensure_user_pool(ctx)
    buckets = {b.key: _ensure_bucket(ctx, b, kms_key_arns) for b in topology.buckets}
    return BootstrapRecord(
        region=ctx.region,
        account=ctx.account,
        user_pool_id=pool_id,
        user_pool_client_ids=client_ids,
        groups=groups,
        event_bus_name=topology.event_bus.name,
        event_bus_arn=bus_arn,
        rule_arns=rule_arns,
        archive_arn=archive_arn,
        topic_arn=topic,
        subscription_arns=subscriptions,
        queues=queues,
        buckets=buckets,
        kms_key_arns=kms_key_arns,
        changes=tuple(ctx.changes),
    )


# --8<-- [end:bootstrap]


def describe(
    topology: Topology | None = None, *, client_factory: ClientFactory = aws.client
) -> dict[str, Any]:
    """Read back every setting of every resource of the topology (read calls only).

    The tests compare this before and after a second run; operators can diff it between
    environments. Counters that change on their own (message counts) are left out.

    Args:
        topology: What to describe; defaults to :func:`storefront.topology.build_topology`.
        client_factory: Makes a boto3 client per service.

    Returns:
        Resource name to its settings, as plain JSON-compatible data.
    """
    topology = topology or build_topology()
    sqs, sns, events = client_factory("sqs"), client_factory("sns"), client_factory("events")
    idp, s3, kms = client_factory("cognito-idp"), client_factory("s3"), client_factory("kms")
    state: dict[str, Any] = {}

    for queue in topology.queues:
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        state[f"sqs:{queue.name}"] = {
            k: v for k, v in attributes.items() if not k.startswith("ApproximateNumber")
        }

    topics = [t["TopicArn"] for t in _paginate(sns, "list_topics", "Topics")]
    for arn in (t for t in topics if t.endswith(f":{topology.topic.name}")):
        state[f"sns:{topology.topic.name}"] = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        for sub in _paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn):
            attributes = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])
            state[f"sns-subscription:{sub['Endpoint']}"] = attributes["Attributes"]

    bus = topology.event_bus
    state[f"events:{bus.name}"] = _strip(events.describe_event_bus(Name=bus.name))
    for rule in bus.rules:
        state[f"events-rule:{rule.name}"] = {
            "rule": _strip(events.describe_rule(Name=rule.name, EventBusName=bus.name)),
            "targets": events.list_targets_by_rule(Rule=rule.name, EventBusName=bus.name)[
                "Targets"
            ],
        }
    state[f"events-archive:{bus.archive.name}"] = _strip(
        events.describe_archive(ArchiveName=bus.archive.name)
    )

    for pool in _paginate(idp, "list_user_pools", "UserPools", MaxResults=60):
        if pool["Name"] != topology.user_pool.name:
            continue
        pool_id = pool["Id"]
        state[f"cognito:{pool['Name']}"] = _strip(idp.describe_user_pool(UserPoolId=pool_id))
        state[f"cognito-groups:{pool['Name']}"] = [
            _strip(g) for g in _paginate(idp, "list_groups", "Groups", UserPoolId=pool_id)
        ]
        for client in _paginate(
            idp, "list_user_pool_clients", "UserPoolClients", UserPoolId=pool_id, MaxResults=60
        ):
            described = idp.describe_user_pool_client(
                UserPoolId=pool_id, ClientId=client["ClientId"]
            )
            state[f"cognito-client:{client['ClientName']}"] = _strip(described)

    for key in topology.kms_keys():
        metadata = kms.describe_key(KeyId=key.alias)["KeyMetadata"]
        state[f"kms:{key.alias}"] = {
            "metadata": _strip(metadata),
            "rotation": kms.get_key_rotation_status(KeyId=metadata["KeyId"])["KeyRotationEnabled"],
        }

    for bucket in topology.buckets:
        name = bucket.name
        state[f"s3:{name}"] = {
            "versioning": _strip(s3.get_bucket_versioning(Bucket=name)),
            "encryption": _strip(
                _get_or_none(
                    lambda n=name: s3.get_bucket_encryption(Bucket=n),
                    "ServerSideEncryptionConfigurationNotFoundError",
                )
            ),
            "public_access_block": _strip(
                _get_or_none(
                    lambda n=name: s3.get_public_access_block(Bucket=n),
                    "NoSuchPublicAccessBlockConfiguration",
                )
            ),
            "ownership": _strip(
                _get_or_none(
                    lambda n=name: s3.get_bucket_ownership_controls(Bucket=n),
                    "OwnershipControlsNotFoundError",
                )
            ),
            "lifecycle": _strip(
                _get_or_none(
                    lambda n=name: s3.get_bucket_lifecycle_configuration(Bucket=n),
                    "NoSuchLifecycleConfiguration",
                )
            ),
            "policy": _get_or_none(
                lambda n=name: json.loads(s3.get_bucket_policy(Bucket=n)["Policy"]),
                "NoSuchBucketPolicy",
            ),
        }
    return json.loads(json.dumps(state, default=str))


def _strip(response: Any) -> Any:
    """A response without its ``ResponseMetadata`` (request ids differ on every call)."""
    if isinstance(response, dict):
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}
    return response


def main(argv: Iterable[str] | None = None) -> int:
    """The ``python -m storefront.bootstrap`` command: run, print the record as JSON.

    Args:
        argv: The arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0 on success, 1 when the account cannot be made to match, 2 when the
        endpoint cannot be reached.
    """
    parser = argparse.ArgumentParser(
        prog="python -m storefront.bootstrap",
        description="Create the storefront's runtime AWS resources (idempotent).",
    )
    parser.add_argument("--prefix", help="resource prefix (default: STOREFRONT_RESOURCE_PREFIX)")
    parser.add_argument(
        "--without-deny-statements",
        action="store_true",
        help="leave the buckets' Deny statements out (moto applies them unconditionally)",
    )
    parser.add_argument(
        "--describe", action="store_true", help="print every resource's settings, change nothing"
    )
    arguments = parser.parse_args(list(argv) if argv is not None else None)
    try:
        topology = build_topology(arguments.prefix)
        if arguments.describe:
            print(json.dumps(describe(topology), indent=2, sort_keys=True))
            return 0
        record = bootstrap(topology, apply_deny_statements=not arguments.without_deny_statements)
    except (BootstrapError, ValueError) as error:
        print(f"bootstrap: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"bootstrap: AWS call failed: {error}", file=sys.stderr)
        return 2
    print(record.to_json())
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised by the subprocess test
    sys.exit(main())
