"""The messaging layer: the EventBridge bus, rules and archive, the SQS queues, the SNS topic.

Everything here is built from ``storefront.topology``: the queue names, visibility timeouts,
retention, long polling, redrive policies and their ``maxReceiveCount``, which AWS service may
send to which queue (and only from which rule or topic ARN), the rules' patterns, targets,
retry policies and target DLQs, the archive, the topic and its filtered subscriptions. The
moto bootstrap of the executable examples creates the same objects from the same data.

What this stack adds to the topology is production-only: one customer managed key for the
bus, the archive, the topic and every queue (its policy admits EventBridge and SNS, each only
for this environment's bus, rules and topic), the bus's own DLQ, the bus policy, and the
``MaximumMessageSize`` of each queue, set explicitly. The resources are ``Cfn*`` level so that
no construct adds a grant or a policy statement the topology does not name.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_eventschemas as eventschemas
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from storefront.topology import Queue, Topology, queue_arn, rule_arn, topic_arn

from infrastructure.runtime import extras
from infrastructure.settings import EnvironmentSettings

# SQS accepts messages up to 1 MiB; sources disagree on the default for new queues, so the
# SNS + SQS page asks for the value to be set explicitly.
MAX_MESSAGE_SIZE_BYTES = 1_048_576


class MessagingStack(Stack):
    """Bus, rules, archive, queues and topic.

    Attributes:
        key: The customer managed key of the bus, archive, topic and queues.
        queues: Every queue, by topology key.
        bus: The custom event bus.
        topic: The notifications topic.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        topology: Topology,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._topology = topology
        self._extras = extras(settings)
        self._arn = {"partition": self.partition, "region": self.region, "account": self.account}
        bus = topology.event_bus
        self.bus_arn = (
            f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/{bus.name}"
        )
        self.archive_arn = (
            f"arn:{self.partition}:events:{self.region}:{self.account}:archive/{bus.archive.name}"
        )
        self.rule_arns = {
            rule.key: rule_arn(**self._arn, bus=bus.name, rule=rule.name) for rule in bus.rules
        }
        self.topic_arn = topic_arn(**self._arn, topic=topology.topic.name)
        self.key = self._messaging_key(settings)
        self.queues: dict[str, sqs.CfnQueue] = {}
        for queue in sorted(topology.queues, key=lambda q: q.dead_letter_queue is not None):
            self.queues[queue.key] = self._queue(queue)
        self.bus_dlq = self._bus_dlq()
        self._bus()
        self._topic()

    # --- The key ------------------------------------------------------------------------------

    def _messaging_key(self, settings: EnvironmentSettings) -> kms.Key:
        # --8<-- [start:messaging-key]
        key = kms.Key(
            self,
            "MessagingKey",
            alias=f"alias/{settings.resource_prefix}-messaging",
            description="EventBridge bus and archive, SNS topic and SQS queues",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The AWS managed key alias/aws/sqs cannot admit these principals; this key can, and
        # only for this environment's bus, archive, rules and topic.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeForThisBusItsRulesAndArchive",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"],
                resources=["*"],
                conditions={
                    "ArnEquals": {
                        "aws:SourceArn": [
                            self.bus_arn,
                            self.archive_arn,
                            *self.rule_arns.values(),
                        ]
                    }
                },
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SnsForTheNotificationsTopic",
                principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={"ArnEquals": {"aws:SourceArn": self.topic_arn}},
            )
        )
        # --8<-- [end:messaging-key]
        return key

    # --- Queues -------------------------------------------------------------------------------

    def _source_arn(self, grant: str) -> str:
        kind, _, key = grant.partition(":")
        if kind == "rule":
            return self.rule_arns[key]
        if kind == "topic" and key == "notifications":
            return self.topic_arn
        raise ValueError(f"unknown sender {grant!r}")

    def _queue(self, spec: Queue) -> sqs.CfnQueue:
        construct_id = "Queue" + "".join(part.capitalize() for part in spec.key.split("-"))
        arn = queue_arn(**self._arn, queue=spec.name)
        # --8<-- [start:queue]
        redrive = None
        if spec.dead_letter_queue is not None:
            redrive = {
                "deadLetterTargetArn": self.queues[spec.dead_letter_queue].attr_arn,
                "maxReceiveCount": spec.max_receive_count,
            }
        redrive_allow = None
        if spec.redrive_sources:
            # Only the queue's own source may use it as its DLQ (by name: the source refers to
            # this queue, so a reference back would be circular).
            redrive_allow = {
                "redrivePermission": "byQueue",
                "sourceQueueArns": [
                    queue_arn(**self._arn, queue=self._topology.queue(source).name)
                    for source in spec.redrive_sources
                ],
            }
        queue = sqs.CfnQueue(
            self,
            construct_id,
            queue_name=spec.name,
            visibility_timeout=spec.visibility_timeout_s,
            message_retention_period=spec.retention_s,
            receive_message_wait_time_seconds=spec.receive_wait_s,
            maximum_message_size=MAX_MESSAGE_SIZE_BYTES,
            kms_master_key_id=self.key.key_arn,
            kms_data_key_reuse_period_seconds=300,
            redrive_policy=redrive,
            redrive_allow_policy=redrive_allow,
        )
        # --8<-- [end:queue]
        statements: list[dict[str, object]] = [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
        for principal, grant in spec.senders:
            statements.append(
                {
                    "Sid": "Allow" + principal.split(".")[0].capitalize() + "Send",
                    "Effect": "Allow",
                    "Principal": {"Service": principal},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": self._source_arn(grant)}},
                }
            )
        sqs.CfnQueuePolicy(
            self,
            f"{construct_id}Policy",
            queues=[queue.ref],
            policy_document={"Version": "2012-10-17", "Statement": statements},
        )
        return queue

    def _bus_dlq(self) -> sqs.CfnQueue:
        name = self._extras.bus_dlq
        arn = queue_arn(**self._arn, queue=name)
        queue = sqs.CfnQueue(
            self,
            "QueueEventsBusDlq",
            queue_name=name,
            message_retention_period=1_209_600,
            maximum_message_size=MAX_MESSAGE_SIZE_BYTES,
            kms_master_key_id=self.key.key_arn,
        )
        sqs.CfnQueuePolicy(
            self,
            "QueueEventsBusDlqPolicy",
            queues=[queue.ref],
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AllowTheBusToDeadLetter",
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": self.bus_arn}},
                    },
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "sqs:*",
                        "Resource": arn,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ],
            },
        )
        return queue

    # --- EventBridge --------------------------------------------------------------------------

    def _bus(self) -> None:
        spec = self._topology.event_bus
        # --8<-- [start:bus]
        self.bus = events.CfnEventBus(
            self,
            "Bus",
            name=spec.name,
            description="Storefront domain events",
            kms_key_identifier=self.key.key_arn,
            dead_letter_config=events.CfnEventBus.DeadLetterConfigProperty(
                arn=self.bus_dlq.attr_arn
            ),
        )
        events.CfnEventBusPolicy(
            self,
            "BusPolicy",
            event_bus_name=self.bus.ref,
            statement_id="ThisAccountOnly",
            statement={
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{self.partition}:iam::{self.account}:root"},
                "Action": "events:PutEvents",
                "Resource": self.bus.attr_arn,
            },
        )
        self.rules: dict[str, events.CfnRule] = {}
        for rule in spec.rules:
            target = self.queues[rule.target_queue]
            self.rules[rule.key] = events.CfnRule(
                self,
                "Rule" + "".join(part.capitalize() for part in rule.key.split("-")),
                name=rule.name,
                description=rule.description,
                event_bus_name=self.bus.ref,
                event_pattern=rule.event_pattern,
                state="ENABLED",
                # One target per rule; no RoleArn: SQS targets use the queue policy.
                targets=[
                    events.CfnRule.TargetProperty(
                        id=rule.target_id,
                        arn=target.attr_arn,
                        retry_policy=events.CfnRule.RetryPolicyProperty(
                            maximum_event_age_in_seconds=rule.retry_policy.maximum_event_age_s,
                            maximum_retry_attempts=rule.retry_policy.maximum_retry_attempts,
                        ),
                        dead_letter_config=events.CfnRule.DeadLetterConfigProperty(
                            arn=self.queues[rule.target_dead_letter_queue].attr_arn
                        ),
                    )
                ],
            )
        self.archive = events.CfnArchive(
            self,
            "Archive",
            archive_name=spec.archive.name,
            source_arn=self.bus.attr_arn,
            event_pattern=spec.archive.event_pattern,
            retention_days=spec.archive.retention_days,
            kms_key_identifier=self.key.key_arn,
        )
        # Contracts: one JSON Schema per detail-type and version, uploaded by the producers.
        # No schema discoverer: discovery is not supported on buses with a customer managed key.
        eventschemas.CfnRegistry(
            self,
            "SchemaRegistry",
            registry_name=spec.name.removesuffix("-events"),
            description="Storefront event contracts (JSON Schema Draft 4)",
        )
        # --8<-- [end:bus]

    # --- SNS ----------------------------------------------------------------------------------

    def _topic(self) -> None:
        spec = self._topology.topic
        dlq = self.queues[spec.dead_letter_queue]
        # --8<-- [start:topic]
        self.topic = sns.CfnTopic(
            self,
            "Topic",
            topic_name=spec.name,
            kms_master_key_id=self.key.key_arn,
        )
        sns.CfnTopicPolicy(
            self,
            "TopicPolicy",
            topics=[self.topic.ref],
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "sns:Publish",
                        "Resource": self.topic.ref,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        )
        for subscription in spec.subscriptions:
            sns.CfnSubscription(
                self,
                "Subscription" + "".join(p.capitalize() for p in subscription.queue.split("-")),
                topic_arn=self.topic.ref,
                protocol="sqs",
                endpoint=self.queues[subscription.queue].attr_arn,
                raw_message_delivery=subscription.raw_message_delivery,
                filter_policy_scope="MessageAttributes",
                filter_policy=subscription.filter_policy,
                redrive_policy={"deadLetterTargetArn": dlq.attr_arn},
            )
        # --8<-- [end:topic]
