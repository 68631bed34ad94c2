"""The bootstrap against a moto server over HTTP: settings in place, idempotent, drift corrected.

moto stores the settings and this suite reads them back; it does not enforce the policies (see
the module docstring of ``storefront.bootstrap``), so these tests prove what is configured, not
what AWS would allow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from storefront import aws
from storefront import bootstrap as b
from storefront.settings import get_settings
from storefront.topology import CLOUDFLARE_IP_RANGES, build_topology

WRITE_PREFIXES = ("Create", "Put", "Set", "Update", "Subscribe", "Enable", "Delete", "Remove")


@pytest.fixture
def env(aws_environment: str) -> Iterator[str]:
    get_settings.cache_clear()
    yield aws_environment
    get_settings.cache_clear()


class CallLog:
    """A client factory that records every API operation the clients call."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, service: str) -> Any:
        client = aws.client(service)
        client.meta.events.register("before-call.*.*", self._record)
        return client

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def writes(self) -> list[str]:
        return [op for op in self.operations if op.startswith(WRITE_PREFIXES)]


@pytest.fixture
def record(env: str) -> b.BootstrapRecord:
    return b.bootstrap(apply_deny_statements=False)


def attributes(queue: b.QueueRecord) -> dict[str, str]:
    return aws.client("sqs").get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])[
        "Attributes"
    ]


def test_queues_carry_visibility_retention_long_polling_encryption_and_redrive(
    record: b.BootstrapRecord,
) -> None:
    fulfillment = attributes(record.queues["fulfillment"])
    assert fulfillment["VisibilityTimeout"] == "60"
    assert fulfillment["MessageRetentionPeriod"] == "345600"
    assert fulfillment["ReceiveMessageWaitTimeSeconds"] == "20"
    assert fulfillment["SqsManagedSseEnabled"] == "true"
    assert json.loads(fulfillment["RedrivePolicy"]) == {
        "deadLetterTargetArn": record.queues["fulfillment-dlq"].arn,
        "maxReceiveCount": 5,
    }
    dlq = attributes(record.queues["fulfillment-dlq"])
    assert dlq["MessageRetentionPeriod"] == "1209600"
    assert "RedrivePolicy" not in dlq


def test_queue_policies_admit_only_the_rule_or_topic_that_feeds_them(
    record: b.BootstrapRecord,
) -> None:
    (statement,) = json.loads(attributes(record.queues["fulfillment"])["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": record.rule_arns["fulfillment"]}
    }
    (delivery,) = json.loads(attributes(record.queues["fulfillment-delivery-dlq"])["Policy"])[
        "Statement"
    ]
    assert delivery["Condition"]["ArnEquals"]["aws:SourceArn"] == record.rule_arns["fulfillment"]
    for queue in ("notify-email", "notify-sms", "notify-webhook", "notifications-subscription-dlq"):
        (grant,) = json.loads(attributes(record.queues[queue])["Policy"])["Statement"]
        assert grant["Principal"] == {"Service": "sns.amazonaws.com"}
        assert grant["Condition"]["ArnEquals"]["aws:SourceArn"] == record.topic_arn
    assert "Policy" not in attributes(record.queues["fulfillment-dlq"])


def test_rules_have_the_patterns_targets_retry_policies_and_delivery_dlqs(
    record: b.BootstrapRecord,
) -> None:
    events = aws.client("events")
    topology = build_topology()
    for rule in topology.event_bus.rules:
        described = events.describe_rule(Name=rule.name, EventBusName=record.event_bus_name)
        assert json.loads(described["EventPattern"]) == rule.event_pattern
        assert described["State"] == "ENABLED"
        (target,) = events.list_targets_by_rule(Rule=rule.name, EventBusName=record.event_bus_name)[
            "Targets"
        ]
        assert target["Arn"] == record.queues[rule.target_queue].arn
        assert target["RetryPolicy"] == {
            "MaximumEventAgeInSeconds": 86_400,
            "MaximumRetryAttempts": 185,
        }
        assert target["DeadLetterConfig"] == {
            "Arn": record.queues[rule.target_dead_letter_queue].arn
        }
    archive = events.describe_archive(ArchiveName=topology.event_bus.archive.name)
    assert archive["RetentionDays"] == 90
    assert archive["EventSourceArn"] == record.event_bus_arn
    assert json.loads(archive["EventPattern"]) == {"source": [{"prefix": "storefront."}]}


def test_subscriptions_filter_on_the_channel_with_raw_delivery_and_a_dlq(
    record: b.BootstrapRecord,
) -> None:
    sns = aws.client("sns")
    assert set(record.subscription_arns) == {"notify-email", "notify-sms", "notify-webhook"}
    for queue, arn in record.subscription_arns.items():
        attrs = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        assert attrs["Endpoint"] == record.queues[queue].arn
        assert json.loads(attrs["FilterPolicy"]) == {"channel": [queue.removeprefix("notify-")]}
        assert attrs["FilterPolicyScope"] == "MessageAttributes"
        assert attrs["RawMessageDelivery"] == "true"
        assert json.loads(attrs["RedrivePolicy"]) == {
            "deadLetterTargetArn": record.queues["notifications-subscription-dlq"].arn
        }


def test_the_user_pool_has_the_policy_groups_and_a_public_spa_client(
    record: b.BootstrapRecord,
) -> None:
    idp = aws.client("cognito-idp")
    pool = idp.describe_user_pool(UserPoolId=record.user_pool_id)["UserPool"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert pool["Policies"]["PasswordPolicy"]["RequireSymbols"] is True
    assert pool["DeletionProtection"] == "ACTIVE"
    assert pool["UsernameConfiguration"] == {"CaseSensitive": False}
    groups = {
        g["GroupName"]: g["Precedence"]
        for g in idp.list_groups(UserPoolId=record.user_pool_id)["Groups"]
    }
    assert groups == {"staff": 1, "customers": 10}
    (client_id,) = record.user_pool_client_ids.values()
    client = idp.describe_user_pool_client(UserPoolId=record.user_pool_id, ClientId=client_id)[
        "UserPoolClient"
    ]
    assert "ClientSecret" not in client
    assert set(client["ExplicitAuthFlows"]) >= {"ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH"}
    assert client["RefreshTokenRotation"] == {"Feature": "ENABLED", "RetryGracePeriodSeconds": 10}
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert client["EnableTokenRevocation"] is True


def test_buckets_are_versioned_encrypted_private_owner_enforced_with_lifecycles(
    record: b.BootstrapRecord,
) -> None:
    s3 = aws.client("s3")
    for key, bucket in record.buckets.items():
        name = bucket.name
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        assert all(
            s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values()
        )
        assert s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"] == [
            {"ObjectOwnership": "BucketOwnerEnforced"}
        ]
        (rule,) = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        default = rule["ApplyServerSideEncryptionByDefault"]
        if key == "assets":
            assert default == {"SSEAlgorithm": "AES256"}
        else:
            assert default["SSEAlgorithm"] == "aws:kms"
            assert default["KMSMasterKeyID"] == bucket.kms_key_arn
            assert rule["BucketKeyEnabled"] is True
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        assert {"DaysAfterInitiation": 7} in [
            r.get("AbortIncompleteMultipartUpload") for r in lifecycle
        ]
    backups = s3.get_bucket_lifecycle_configuration(Bucket=record.buckets["backups"].name)["Rules"]
    (exports,) = [r for r in backups if r["ID"] == "archive-then-expire-exports"]
    assert exports["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER_IR"}]
    assert exports["Expiration"] == {"Days": 400}
    kms = aws.client("kms")
    for arn in record.kms_key_arns.values():
        assert kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is True


def test_the_assets_policy_allows_the_cdn_ranges_and_deny_statements_are_applied_by_default(
    env: str,
) -> None:
    first = b.bootstrap()
    s3 = aws.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=first.buckets["assets"].name)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [
        "AllowGetFromCdnOnly",
        "DenyInsecureTransport",
    ]
    assert policy["Statement"][0]["Condition"]["IpAddress"]["aws:SourceIp"] == list(
        CLOUDFLARE_IP_RANGES
    )
    receipts = json.loads(s3.get_bucket_policy(Bucket=first.buckets["receipts"].name)["Policy"])
    assert [s["Effect"] for s in receipts["Statement"]] == ["Deny"]
    # Without the Deny statements (for moto) the policies are rewritten, deny-only ones removed.
    emulator = b.bootstrap(apply_deny_statements=False)
    assert "s3: removed policy of storefront-receipts" in emulator.changes
    policy = json.loads(s3.get_bucket_policy(Bucket=first.buckets["assets"].name)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["AllowGetFromCdnOnly"]
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=first.buckets["receipts"].name)


def test_a_second_run_changes_nothing_and_makes_no_write_call(env: str) -> None:
    first = b.bootstrap(apply_deny_statements=False)
    assert first.changes  # the first run created everything
    before = b.describe()
    log = CallLog()
    second = b.bootstrap(client_factory=log, apply_deny_statements=False)
    assert second.changes == ()
    assert log.writes() == []
    assert log.operations  # it did look
    assert b.describe() == before
    assert second.to_dict() == {**first.to_dict(), "changes": ()}


def test_drifted_settings_are_corrected_and_reported(record: b.BootstrapRecord) -> None:
    sqs, sns, events = aws.client("sqs"), aws.client("sns"), aws.client("events")
    s3, idp = aws.client("s3"), aws.client("cognito-idp")
    fulfillment = record.queues["fulfillment"]
    stray_policy = attributes(record.queues["fulfillment"])["Policy"]
    sqs.set_queue_attributes(QueueUrl=fulfillment.url, Attributes={"VisibilityTimeout": "5"})
    sqs.set_queue_attributes(
        QueueUrl=record.queues["fulfillment-dlq"].url, Attributes={"Policy": stray_policy}
    )
    sns.set_subscription_attributes(
        SubscriptionArn=record.subscription_arns["notify-sms"],
        AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"channel": ["email"]}),
    )
    rule = build_topology().rule("analytics")
    events.put_rule(
        Name=rule.name, EventBusName=record.event_bus_name, EventPattern='{"source": ["x"]}'
    )
    events.put_targets(
        Rule=rule.name,
        EventBusName=record.event_bus_name,
        Targets=[{"Id": "stranger", "Arn": record.queues["fulfillment"].arn}],
    )
    events.update_archive(ArchiveName=build_topology().event_bus.archive.name, RetentionDays=1)
    s3.put_bucket_versioning(
        Bucket=record.buckets["receipts"].name, VersioningConfiguration={"Status": "Suspended"}
    )
    s3.delete_bucket_lifecycle(Bucket=record.buckets["backups"].name)
    s3.delete_public_access_block(Bucket=record.buckets["assets"].name)
    s3.delete_bucket_encryption(Bucket=record.buckets["assets"].name)
    s3.delete_bucket_ownership_controls(Bucket=record.buckets["assets"].name)
    (client_id,) = record.user_pool_client_ids.values()
    idp.update_user_pool_client(
        UserPoolId=record.user_pool_id,
        ClientId=client_id,
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"],
    )
    idp.update_group(UserPoolId=record.user_pool_id, GroupName="staff", Precedence=50)
    idp.update_user_pool(
        UserPoolId=record.user_pool_id, Policies={"PasswordPolicy": {"MinimumLength": 6}}
    )

    repaired = b.bootstrap(apply_deny_statements=False)

    assert set(repaired.changes) == {
        # moto dropped the policy when VisibilityTimeout was set by hand (see the module doc).
        "sqs: corrected Policy, VisibilityTimeout of storefront-fulfillment",
        "sqs: corrected Policy of storefront-fulfillment-dlq",
        "sns: corrected FilterPolicy of storefront-notify-sms",
        "events: corrected rule storefront-to-analytics",
        "events: removed targets ['stranger'] from storefront-to-analytics",
        "events: corrected archive storefront-archive",
        "cognito: corrected password policy of storefront-users",
        "cognito: corrected group staff",
        "cognito: corrected app client storefront-spa",
        "s3: enabled versioning of storefront-receipts",
        "s3: set lifecycle of storefront-backups",
        "s3: blocked public access to storefront-assets",
        "s3: set default encryption of storefront-assets",
        "s3: enforced bucket-owner ownership of storefront-assets",
    }
    assert attributes(fulfillment)["VisibilityTimeout"] == "60"
    assert "Policy" not in attributes(record.queues["fulfillment-dlq"])
    assert b.bootstrap(apply_deny_statements=False).changes == ()


def test_missing_resources_are_recreated_individually(record: b.BootstrapRecord) -> None:
    sqs, events, kms = aws.client("sqs"), aws.client("events"), aws.client("kms")
    sqs.delete_queue(QueueUrl=record.queues["notify-sms"].url)
    rule = build_topology().rule("fulfillment")
    events.remove_targets(Rule=rule.name, EventBusName=record.event_bus_name, Ids=[rule.target_id])
    key_arn = record.kms_key_arns["alias/storefront-backups"]
    kms.disable_key_rotation(KeyId=key_arn)
    again = b.bootstrap(apply_deny_statements=False)
    assert set(again.changes) == {
        "sqs: created queue storefront-notify-sms",
        "events: set target of storefront-to-fulfillment",
        "kms: enabled rotation of alias/storefront-backups",
    }


def test_a_pool_name_used_twice_is_refused_rather_than_guessed(env: str) -> None:
    idp = aws.client("cognito-idp")
    name = build_topology().user_pool.name
    idp.create_user_pool(PoolName=name)
    idp.create_user_pool(PoolName=name)
    with pytest.raises(b.BootstrapError, match="2 user pools are named storefront-users"):
        b.bootstrap(apply_deny_statements=False)


def test_an_existing_client_with_a_secret_is_refused(env: str) -> None:
    idp = aws.client("cognito-idp")
    topology = build_topology()
    pool = idp.create_user_pool(**topology.user_pool.create_arguments())["UserPool"]["Id"]
    idp.create_user_pool_client(
        UserPoolId=pool, ClientName=topology.user_pool.clients[0].name, GenerateSecret=True
    )
    with pytest.raises(b.BootstrapError, match="has a secret"):
        b.bootstrap(apply_deny_statements=False)


def failing_factory(service: str, operation: str, code: str) -> Callable[[str], Any]:
    def factory(name: str) -> Any:
        client = aws.client(name)
        if name == service:

            def fail(model: Any, **_: Any) -> None:
                if model.name == operation:
                    raise ClientError({"Error": {"Code": code, "Message": code}}, operation)

            client.meta.events.register("before-call.*.*", fail)
        return client

    return factory


def test_a_bucket_name_owned_by_another_account_is_refused(env: str) -> None:
    with pytest.raises(b.BootstrapError, match="belongs to another account"):
        b.bootstrap(client_factory=failing_factory("s3", "HeadBucket", "403"))


@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("sqs", "GetQueueUrl"),
        ("sns", "GetTopicAttributes"),
        ("events", "DescribeEventBus"),
        ("events", "DescribeRule"),
        ("events", "DescribeArchive"),
        ("s3", "HeadBucket"),
        ("s3", "GetBucketPolicy"),
    ],
)
def test_unexpected_aws_errors_are_not_mistaken_for_missing_resources(
    env: str, service: str, operation: str
) -> None:
    b.bootstrap(apply_deny_statements=False)
    with pytest.raises(ClientError, match="ThrottlingException"):
        b.bootstrap(
            client_factory=failing_factory(service, operation, "ThrottlingException"),
            apply_deny_statements=False,
        )


def test_the_record_gives_the_services_their_settings(record: b.BootstrapRecord) -> None:
    environment = record.environment()
    assert environment["STOREFRONT_COGNITO_USER_POOL_ID"] == record.user_pool_id
    assert json.loads(environment["STOREFRONT_COGNITO_CLIENT_IDS"]) == list(
        record.user_pool_client_ids.values()
    )
    assert environment["STOREFRONT_EVENT_BUS_NAME"] == "storefront-events"
    data = json.loads(record.to_json())
    assert data["queues"]["fulfillment"]["url"].endswith("/storefront-fulfillment")
    assert data["account"] == "123456789012"
    assert data["region"] == "eu-west-1"


def test_the_cli_prints_the_record_and_describes(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert b.main(["--without-deny-statements", "--prefix", "cli"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["event_bus_name"] == "cli-events"
    assert printed["changes"]
    assert b.main(["--describe", "--prefix", "cli"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["sqs:cli-fulfillment"]["VisibilityTimeout"] == "60"


def test_the_cli_reports_bad_input_and_unreachable_endpoints(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert b.main(["--prefix", "Bad_Prefix"]) == 1
    assert "resource prefix 'Bad_Prefix'" in capsys.readouterr().err
    from tests.harness.servers import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    assert b.main([]) == 2
    assert "AWS call failed" in capsys.readouterr().err


def test_python_dash_m_runs_the_bootstrap(env: str, repo_root: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "storefront.bootstrap", "--without-deny-statements"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(repo_root / "examples")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["topic_arn"].endswith(":storefront-notifications")


def test_the_command_shown_on_the_run_page_bootstraps_a_moto_server(
    env: str, repo_root: Any
) -> None:
    shown = (repo_root / "tests" / "storefront" / "bootstrap_command.sh").read_text("utf-8")
    assert "http://127.0.0.1:5000" in shown
    command = shown.replace("http://127.0.0.1:5000", os.environ["AWS_ENDPOINT_URL"])
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        check=False,
        cwd=repo_root,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event_bus_name"] == "storefront-events"
