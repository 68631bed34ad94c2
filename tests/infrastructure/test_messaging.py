"""The messaging stack builds ``storefront.topology`` as the EventBridge and SNS + SQS pages say."""

from __future__ import annotations

from typing import Any

from infrastructure.messaging import MAX_MESSAGE_SIZE_BYTES

from tests.infrastructure.synthesis import Synthesized

LAYER = "messaging"


def queues(prod: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["QueueName"]: r["Properties"]
        for r in prod.resources(LAYER, "AWS::SQS::Queue").values()
    }


def queue_policies(prod: Synthesized) -> dict[str, list[dict[str, Any]]]:
    logical = {
        lid: r["Properties"]["QueueName"]
        for lid, r in prod.resources(LAYER, "AWS::SQS::Queue").items()
    }
    return {
        logical[p["Properties"]["Queues"][0]["Ref"]]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in prod.resources(LAYER, "AWS::SQS::QueuePolicy").values()
    }


def test_every_topology_queue_exists_with_its_settings_and_the_messaging_key(
    prod: Synthesized,
) -> None:
    found = queues(prod)
    topology = prod.topology
    assert set(found) == {q.name for q in topology.queues} | {"storefront-prod-events-bus-dlq"}
    for spec in topology.queues:
        queue = found[spec.name]
        assert queue["VisibilityTimeout"] == spec.visibility_timeout_s
        assert queue["MessageRetentionPeriod"] == spec.retention_s
        assert queue["ReceiveMessageWaitTimeSeconds"] == spec.receive_wait_s == 20
        assert queue["MaximumMessageSize"] == MAX_MESSAGE_SIZE_BYTES == 1_048_576
        assert queue["KmsMasterKeyId"] == prod.key_arn(LAYER, "alias/storefront-prod-messaging")
        assert "SqsManagedSseEnabled" not in queue
        if spec.dead_letter_queue is not None:
            redrive = queue["RedrivePolicy"]
            assert redrive["maxReceiveCount"] == spec.max_receive_count == 5
            dlq = topology.queue(spec.dead_letter_queue)
            assert dlq.retention_s == 1_209_600  # 14 days, the maximum
        else:
            assert "RedrivePolicy" not in queue
        if spec.redrive_sources:
            allow = queue["RedriveAllowPolicy"]
            assert allow["redrivePermission"] == "byQueue"
            assert len(allow["sourceQueueArns"]) == len(spec.redrive_sources)


def test_only_the_named_rule_or_topic_may_send_to_a_queue(prod: Synthesized) -> None:
    policies = queue_policies(prod)
    for spec in prod.topology.queues:
        statements = {s["Sid"]: s for s in policies[spec.name]}
        assert statements["DenyInsecureTransport"]["Condition"] == {
            "Bool": {"aws:SecureTransport": "false"}
        }
        senders = [s for s in statements.values() if s["Effect"] == "Allow"]
        assert len(senders) == len(spec.senders), spec.name
        for sender, (principal, grant) in zip(senders, spec.senders, strict=True):
            assert sender["Principal"] == {"Service": principal}
            assert sender["Action"] == "sqs:SendMessage"
            source = sender["Condition"]["ArnEquals"]["aws:SourceArn"]
            kind, _, key = grant.partition(":")
            name = prod.topology.rule(key).name if kind == "rule" else prod.topology.topic.name
            assert name in str(source)


def test_the_bus_is_encrypted_dead_lettered_and_for_this_account_only(prod: Synthesized) -> None:
    bus = prod.one(LAYER, "AWS::Events::EventBus")
    assert bus["Name"] == prod.topology.event_bus.name
    key = prod.key_arn(LAYER, "alias/storefront-prod-messaging")
    assert bus["KmsKeyIdentifier"] == key
    assert bus["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["QueueEventsBusDlq", "Arn"]}
    policy = prod.one(LAYER, "AWS::Events::EventBusPolicy")["Statement"]
    assert str(policy["Principal"]["AWS"]).endswith(":iam::111111111111:root']]}")
    assert policy["Action"] == "events:PutEvents"


def test_each_rule_has_one_sqs_target_with_the_retry_policy_and_its_own_dlq(
    prod: Synthesized,
) -> None:
    rules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in prod.resources(LAYER, "AWS::Events::Rule").values()
    }
    for spec in prod.topology.event_bus.rules:
        rule = rules[spec.name]
        assert rule["EventPattern"] == spec.event_pattern
        assert {"source", "detail-type"} & set(rule["EventPattern"])
        [target] = rule["Targets"]
        assert target["Id"] == spec.target_id
        assert "RoleArn" not in target  # SQS targets use the queue policy
        assert target["RetryPolicy"] == {
            "MaximumEventAgeInSeconds": 86_400,
            "MaximumRetryAttempts": 185,
        }
        assert "Arn" in target["DeadLetterConfig"]
        assert target["Arn"] != target["DeadLetterConfig"]["Arn"]


def test_the_archive_keeps_storefront_events_90_days_encrypted(prod: Synthesized) -> None:
    spec = prod.topology.event_bus.archive
    archive = prod.one(LAYER, "AWS::Events::Archive")
    assert archive["ArchiveName"] == spec.name
    assert archive["EventPattern"] == {"source": [{"prefix": "storefront."}]}
    assert archive["RetentionDays"] == spec.retention_days == 90
    assert archive["KmsKeyIdentifier"] == prod.key_arn(LAYER, "alias/storefront-prod-messaging")


def test_the_topic_fans_out_by_channel_with_raw_delivery_and_a_subscription_dlq(
    prod: Synthesized,
) -> None:
    topic = prod.one(LAYER, "AWS::SNS::Topic")
    assert topic["TopicName"] == prod.topology.topic.name
    assert topic["KmsMasterKeyId"] == prod.key_arn(LAYER, "alias/storefront-prod-messaging")
    assert "ArchivePolicy" not in topic
    subscriptions = [
        s["Properties"] for s in prod.resources(LAYER, "AWS::SNS::Subscription").values()
    ]
    specs = prod.topology.topic.subscriptions
    assert len(subscriptions) == len(specs)
    for subscription, spec in zip(subscriptions, specs, strict=True):
        assert subscription["Protocol"] == "sqs"
        assert subscription["RawMessageDelivery"] is True
        assert subscription["FilterPolicyScope"] == "MessageAttributes"
        assert subscription["FilterPolicy"] == spec.filter_policy
        assert "deadLetterTargetArn" in subscription["RedrivePolicy"]


def test_the_messaging_key_admits_eventbridge_and_sns_only_for_this_environment(
    prod: Synthesized,
) -> None:
    key = prod.one(LAYER, "AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    statements = {s.get("Sid"): s for s in key["KeyPolicy"]["Statement"]}
    events = statements["EventBridgeForThisBusItsRulesAndArchive"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    sources = events["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert len(sources) == 2 + len(prod.topology.event_bus.rules)
    sns = statements["SnsForTheNotificationsTopic"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert prod.topology.topic.name in str(sns["Condition"]["ArnEquals"]["aws:SourceArn"])
