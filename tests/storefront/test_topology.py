"""The topology is typed data: names derive from the prefix, and AWS limits are checked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import botocore.session
import pytest
from storefront import topology as t
from storefront.settings import get_settings


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_the_longest_prefix_keeps_every_name_within_the_apis_limits() -> None:
    # The limits come from the AWS API models that botocore ships (the SDK validates them).
    models = botocore.session.get_session()

    def most(service: str, shape: str) -> int:
        return models.get_service_model(service).shape_for(shape).metadata["max"]

    topology = t.build_topology("x" * 40)
    assert max(len(b.name) for b in topology.buckets) <= t.S3_BUCKET_NAME_MAX
    assert max(len(r.name) for r in topology.event_bus.rules) <= most("events", "RuleName")
    assert max(len(r.target_id) for r in topology.event_bus.rules) <= most("events", "TargetId")
    assert len(topology.event_bus.archive.name) <= most("events", "ArchiveName")
    assert len(topology.event_bus.name) <= most("events", "EventBusName")
    assert len(topology.user_pool.name) <= most("cognito-idp", "UserPoolNameType")
    assert len(topology.user_pool.clients[0].name) <= most("cognito-idp", "ClientNameType")
    assert max(len(k.alias) for k in topology.kms_keys()) <= most("kms", "AliasNameType")
    # SQS states its limit in prose only ("A queue name can have up to 80 characters", in the
    # CreateQueue QueueName documentation of the same model).
    queue_doc = models.get_service_model("sqs").operation_model("CreateQueue").input_shape
    assert "up to 80 characters" in queue_doc.members["QueueName"].documentation
    assert max(len(q.name) for q in topology.queues) <= 80


def test_every_name_derives_from_the_resource_prefix() -> None:
    topology = t.build_topology("shop-staging")
    names = [q.name for q in topology.queues]
    names += [b.name for b in topology.buckets]
    names += [r.name for r in topology.event_bus.rules]
    names += [topology.event_bus.name, topology.event_bus.archive.name, topology.topic.name]
    names += [topology.user_pool.name, *(c.name for c in topology.user_pool.clients)]
    names += [k.alias.removeprefix("alias/") for k in topology.kms_keys()]
    assert all(name.startswith("shop-staging-") for name in names), names
    for kind in (topology.queues, topology.buckets, topology.event_bus.rules):
        assert len({item.name for item in kind}) == len(kind)


def test_the_prefix_comes_from_settings_when_not_given(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    fresh_settings.setenv("STOREFRONT_RESOURCE_PREFIX", "from-env")
    assert t.build_topology().event_bus.name == "from-env-events"


@pytest.mark.parametrize(
    "prefix", ["", "Upper", "-lead", "trail-", "under_score", "x" * 41, "xn--idn", "sthree-x"]
)
def test_a_prefix_that_cannot_make_valid_names_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="resource prefix"):
        t.build_topology(prefix)


def test_every_consumer_queue_has_a_dead_letter_queue_that_keeps_messages_longest() -> None:
    topology = t.build_topology("env")
    consumers = [q for q in topology.queues if q.dead_letter_queue]
    assert {q.key for q in consumers} == {
        "fulfillment",
        "analytics",
        "notifications",
        "notify-email",
        "notify-sms",
        "notify-webhook",
    }
    for queue in consumers:
        dlq = topology.queue(queue.dead_letter_queue)
        assert dlq.retention_s == t.SQS_RETENTION_MAX_S > queue.retention_s
        assert dlq.redrive_sources == (queue.key,)
        assert queue.receive_wait_s == t.SQS_MAX_WAIT_S
        assert queue.max_receive_count == 5
        assert queue.managed_sse


def test_each_rule_targets_one_queue_and_has_its_own_delivery_dlq_and_retry_policy() -> None:
    topology = t.build_topology("env")
    delivery_dlqs = [r.target_dead_letter_queue for r in topology.event_bus.rules]
    assert len(set(delivery_dlqs)) == len(delivery_dlqs) == 3
    for rule in topology.event_bus.rules:
        assert rule.event_pattern["source"] == [{"prefix": "storefront."}]
        assert rule.retry_policy.to_api() == {
            "MaximumEventAgeInSeconds": 86_400,
            "MaximumRetryAttempts": 185,
        }
        grants = topology.queue(rule.target_dead_letter_queue).senders
        assert grants == (("events.amazonaws.com", f"rule:{rule.key}"),)
    assert topology.rule("fulfillment").event_pattern["detail-type"] == ["order.placed"]
    assert "detail-type" not in topology.rule("analytics").event_pattern
    assert topology.rule("notifications").event_pattern["detail-type"] == [
        "order.fulfilled",
        "order.rejected",
    ]
    assert topology.event_bus.archive.retention_days == 90


def test_the_notification_subscriptions_filter_on_the_channel_attribute() -> None:
    topology = t.build_topology("env")
    policies = {s.queue: s.filter_policy for s in topology.topic.subscriptions}
    assert policies == {
        "notify-email": {"channel": ["email"]},
        "notify-sms": {"channel": ["sms"]},
        "notify-webhook": {"channel": ["webhook"]},
    }
    attributes = topology.topic.subscriptions[0].attributes(dead_letter_arn="arn:dlq")
    assert attributes["RawMessageDelivery"] == "true"
    assert attributes["FilterPolicyScope"] == "MessageAttributes"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": "arn:dlq"}


def test_the_spa_client_is_public_and_rotates_refresh_tokens() -> None:
    (client,) = t.build_topology("env").user_pool.clients
    api = client.to_api()
    assert client.generate_secret is False
    assert set(api["ExplicitAuthFlows"]) == {
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    }
    assert api["RefreshTokenRotation"] == {"Feature": "ENABLED", "RetryGracePeriodSeconds": 10}
    assert api["PreventUserExistenceErrors"] == "ENABLED"
    assert api["TokenValidityUnits"]["AccessToken"] == "minutes"
    disabled = replace(client, refresh_token_rotation=False, prevent_user_existence_errors=False)
    assert disabled.to_api()["RefreshTokenRotation"]["Feature"] == "DISABLED"
    assert disabled.to_api()["PreventUserExistenceErrors"] == "LEGACY"


def test_the_user_pool_has_the_customers_and_staff_groups_and_a_strict_password_policy() -> None:
    pool = t.build_topology("env").user_pool
    assert {g.name for g in pool.groups} == {"customers", "staff"}
    arguments = pool.create_arguments()
    assert arguments["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert arguments["UsernameConfiguration"] == {"CaseSensitive": False}
    assert arguments["DeletionProtection"] == "ACTIVE"
    assert (
        replace(pool, deletion_protection=False).create_arguments()["DeletionProtection"]
        == "INACTIVE"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: t.Queue(key="q", name="q", visibility_timeout_s=43_201), "visibility_timeout_s"),
        (lambda: t.Queue(key="q", name="q", retention_s=59), "retention_s"),
        (lambda: t.Queue(key="q", name="q", receive_wait_s=21), "receive_wait_s"),
        (lambda: t.Queue(key="q", name="q", max_receive_count=0), "max_receive_count"),
        (lambda: t.RetryPolicy(maximum_event_age_s=59), "maximum_event_age_s"),
        (lambda: t.RetryPolicy(maximum_retry_attempts=186), "maximum_retry_attempts"),
        (lambda: t.PasswordPolicy(minimum_length=5), "minimum_length"),
        (lambda: t.PasswordPolicy(temporary_password_validity_days=0), "temporary_password"),
        (lambda: t.AppClient(name="c", access_token_validity_minutes=4), "access_token"),
        (lambda: t.AppClient(name="c", id_token_validity_minutes=1_441), "id_token"),
        (lambda: t.AppClient(name="c", refresh_token_validity_minutes=59), "refresh_token"),
        (lambda: t.AppClient(name="c", rotation_grace_period_s=61), "rotation_grace"),
        (lambda: t.Archive(name="a" * 49, event_pattern={}), "archive name"),
        (lambda: t.Archive(name="a", event_pattern={}, retention_days=-1), "retention_days"),
        (lambda: t.Transition(days=30, storage_class="STANDARD_IA"), "more than 30 days"),
        (lambda: t.Transition(days=-1, storage_class="GLACIER_IR"), "must not be negative"),
        (lambda: t.Bucket(key="b", name="b", encryption="aws:kms"), "needs a kms_key"),
        (
            lambda: t.Bucket(key="b", name="b", encryption="AES256", allow_get_from_ranges=("x",)),
            "does not appear to be",
        ),
    ],
)
def test_a_value_outside_the_aws_limits_is_rejected_with_its_name(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_values_at_the_aws_limits_are_accepted() -> None:
    t.Queue(key="q", name="q", visibility_timeout_s=43_200, retention_s=60, receive_wait_s=0)
    t.Queue(key="q", name="q", retention_s=1_209_600, max_receive_count=1_000)
    t.RetryPolicy(maximum_event_age_s=60, maximum_retry_attempts=0)
    t.Transition(days=31, storage_class="STANDARD_IA")
    t.Transition(days=0, storage_class="GLACIER_IR")


def test_a_queue_with_a_dlq_needs_the_dlq_arn() -> None:
    queue = t.build_topology("env").queue("fulfillment")
    with pytest.raises(ValueError, match="ARN of fulfillment-dlq"):
        queue.attributes(dead_letter_arn=None, policy=None)
    attributes = queue.attributes(dead_letter_arn="arn:aws:sqs:r:1:dlq", policy={"a": 1})
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:r:1:dlq",
        "maxReceiveCount": 5,
    }
    assert attributes["VisibilityTimeout"] == "60"
    assert json.loads(attributes["Policy"]) == {"a": 1}


def test_a_reference_to_an_unknown_queue_is_rejected() -> None:
    topology = t.build_topology("env")
    broken = replace(topology.topic, dead_letter_queue="nowhere")
    with pytest.raises(ValueError, match="unknown queue keys referenced: \\['nowhere'\\]"):
        replace(topology, topic=broken)
    with pytest.raises(ValueError, match="duplicate queue keys"):
        replace(topology, queues=(*topology.queues, topology.queues[0]))


def test_lookups_of_unknown_keys_raise_key_error() -> None:
    topology = t.build_topology("env")
    for lookup in (topology.queue, topology.rule, topology.bucket):
        with pytest.raises(KeyError):
            lookup("nope")


def test_the_assets_policy_allows_get_only_from_the_cdn_and_denies_plain_http() -> None:
    assets = t.build_topology("env").bucket("assets")
    assert assets.encryption == "AES256"
    allow, deny = assets.policy()["Statement"]
    assert allow["Action"] == "s3:GetObject"
    assert allow["Resource"] == "arn:aws:s3:::env-assets/*"
    assert allow["Condition"]["IpAddress"]["aws:SourceIp"] == list(t.CLOUDFLARE_IP_RANGES)
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert [s["Sid"] for s in assets.policy(include_deny=False)["Statement"]] == [
        "AllowGetFromCdnOnly"
    ]
    receipts = t.build_topology("env").bucket("receipts")
    assert receipts.policy(include_deny=False) is None
    assert receipts.encryption_rule("arn:key")["BucketKeyEnabled"] is True
    with pytest.raises(ValueError, match="needs the key's ARN"):
        receipts.encryption_rule(None)


def test_the_backups_lifecycle_archives_then_expires_the_export_prefix() -> None:
    (abort, exports) = t.build_topology("env").bucket("backups").lifecycle
    assert abort.to_api()["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert exports.to_api() == {
        "ID": "archive-then-expire-exports",
        "Filter": {"Prefix": t.BACKUP_PREFIX},
        "Status": "Enabled",
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER_IR"}],
        "Expiration": {"Days": 400},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
    }
    kept = t.LifecycleRule(id="k", noncurrent_expiration_days=30, newer_noncurrent_versions=3)
    assert kept.to_api()["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 30,
        "NewerNoncurrentVersions": 3,
    }


def test_the_cdn_ranges_can_come_from_a_file(tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("# synced 2026-12-03\n203.0.113.0/24\n\n2001:db8::/32  # docs range\n")
    topology = t.build_topology(
        "env", settings=get_settings().model_copy(update={"trusted_proxy_ranges_file": str(ranges)})
    )
    assert topology.bucket("assets").allow_get_from_ranges == ("203.0.113.0/24", "2001:db8::/32")


def test_a_bad_ranges_file_is_rejected_with_the_line(tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("203.0.113.0/24\nnot-a-range\n")
    with pytest.raises(ValueError, match=r"ranges\.txt:2: not a CIDR range"):
        t.load_ranges(str(ranges))
    ranges.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no ranges"):
        t.load_ranges(str(ranges))


def test_arns_are_built_before_the_resources_exist() -> None:
    assert t.rule_arn(partition="aws", region="r", account="1", bus="b", rule="x") == (
        "arn:aws:events:r:1:rule/b/x"
    )
    assert t.topic_arn(partition="aws", region="r", account="1", topic="t") == "arn:aws:sns:r:1:t"
    assert t.queue_arn(partition="aws", region="r", account="1", queue="q") == "arn:aws:sqs:r:1:q"


def test_the_module_imports_without_boto3() -> None:
    # The CDK app imports the topology; it must not drag the AWS SDK in.
    script = "import sys, storefront.topology; sys.exit('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
