"""Alarms for the failure modes the pages name, one notification topic, log retention everywhere.

Claims of the Observability architecture page and of each technology page's failure modes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.synthesis import Synthesized

LAYER = "observability"


def alarms(prod: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"].removeprefix("storefront-prod-"): a["Properties"]
        for a in prod.resources(LAYER, "AWS::CloudWatch::Alarm").values()
    }


@pytest.mark.parametrize(
    ("name", "metric", "threshold", "comparison"),
    [
        ("api-5XXError", "5XXError", 0.01, "GreaterThanThreshold"),
        ("api-IntegrationLatency-p99", "IntegrationLatency", 8_000, "GreaterThanThreshold"),
        ("alb-HTTPCode_ELB_502_Count", "HTTPCode_ELB_502_Count", 5, "GreaterThanThreshold"),
        ("cache-CacheHitRate", "CacheHitRate", 0.8, "LessThanThreshold"),
        (
            "cache-DatabaseMemoryUsagePercentage",
            "DatabaseMemoryUsagePercentage",
            80,
            "GreaterThanThreshold",
        ),
        ("cache-EngineCPUUtilization", "EngineCPUUtilization", 70, "GreaterThanThreshold"),
        ("cache-002-ReplicationLag", "ReplicationLag", 1, "GreaterThanThreshold"),
        (
            "documentdb-2-DBInstanceReplicaLag",
            "DBInstanceReplicaLag",
            1_000,
            "GreaterThanThreshold",
        ),
        (
            "rds-proxy-DatabaseConnectionsBorrowLatency",
            "DatabaseConnectionsBorrowLatency",
            1_000_000,
            "GreaterThanThreshold",
        ),
        (
            "notifications-NumberOfNotificationsFailed",
            "NumberOfNotificationsFailed",
            0,
            "GreaterThanThreshold",
        ),
        ("cognito-customers-SignInThrottles", "SignInThrottles", 0, "GreaterThanThreshold"),
    ],
)
def test_the_pages_failure_modes_have_alarms(
    prod: Synthesized, name: str, metric: str, threshold: float, comparison: str
) -> None:
    alarm = alarms(prod)[name]
    assert alarm["MetricName"] == metric
    assert alarm["Threshold"] == threshold
    assert alarm["ComparisonOperator"] == comparison


def test_free_storage_alarms_at_15_percent_of_the_allocation(prod: Synthesized) -> None:
    alarm = alarms(prod)["rds-FreeStorageSpace"]
    allocated = prod.settings.database.allocated_storage_gib * 1024**3
    assert alarm["Threshold"] == pytest.approx(0.15 * allocated)
    assert alarm["ComparisonOperator"] == "LessThanThreshold"


def test_every_dead_letter_queue_alarms_on_its_first_message(prod: Synthesized) -> None:
    found = alarms(prod)
    dlqs = [q.key for q in prod.topology.queues if q.dead_letter_queue is None]
    for key in [*dlqs, "events-bus-dlq"]:
        alarm = found[f"{key}-ApproximateNumberOfMessagesVisible"]
        assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (0, 5), key


def test_every_consumer_queue_alarms_on_the_age_of_its_oldest_message(prod: Synthesized) -> None:
    found = alarms(prod)
    for queue in prod.topology.queues:
        if queue.dead_letter_queue is not None:
            assert found[f"{queue.key}-ApproximateAgeOfOldestMessage"]["Threshold"] == 300


def test_a_lost_event_pages_at_once(prod: Synthesized) -> None:
    found = alarms(prod)
    for rule in prod.topology.event_bus.rules:
        alarm = found[f"{rule.key}-rule-InvocationsFailedToBeSentToDlq"]
        assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (0, 1)


def test_the_origin_lock_share_and_missing_tasks_are_watched(prod: Synthesized) -> None:
    found = alarms(prod)
    share = found["waf-OriginLock-BlockedShare"]
    expression = next(m for m in share["Metrics"] if "Expression" in m)
    assert "locked" in expression["Expression"]
    missing = found["orders-RunningTaskCount"]
    assert next(m for m in missing["Metrics"] if "Expression" in m)["Expression"] == (
        "desired - running"
    )


def test_every_alarm_notifies_the_encrypted_alarm_topic(prod: Synthesized) -> None:
    topic = prod.one(LAYER, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic
    [(topic_id, _)] = prod.resources(LAYER, "AWS::SNS::Topic").items()
    for name, alarm in alarms(prod).items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
    assert prod.resources(LAYER, "AWS::CloudWatch::Dashboard")


def test_every_log_group_in_every_stack_has_retention_and_a_customer_key(
    prod: Synthesized,
) -> None:
    count = 0
    for layer in prod.templates:
        for logical_id, group in prod.resources(layer, "AWS::Logs::LogGroup").items():
            count += 1
            assert group["Properties"]["RetentionInDays"] in (30, 90), (layer, logical_id)
            assert "KmsKeyId" in group["Properties"], (layer, logical_id)
    assert count >= 25
