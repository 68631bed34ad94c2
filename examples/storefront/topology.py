"""The runtime AWS resources of the storefront: their names and settings, as data.

This module is the single source of the names and settings of the resources the services talk to
at run time: the Cognito user pool and its app client and groups, the EventBridge bus with its
rules, target dead-letter queues (DLQs), retry policies and archive, the SQS queues and their DLQs,
the SNS notifications topic with its filtered subscriptions, and the three S3 buckets with their
encryption, versioning, public-access, ownership, policy and lifecycle settings.

:mod:`storefront.bootstrap` creates these resources with boto3 against the configured endpoint
(moto in the tests); the "Deploy this architecture" AWS CDK app imports the same objects, so the
two never disagree. The module is deliberately free of boto3 and of any I/O except reading the
optional Cloudflare ranges file: everything here is plain, typed, frozen data, and every value
that is an AWS limit or default is checked when the object is built (a ``ValueError`` says which
one and why) and carries the URL of the page that states it.

Every name derives from ``Settings.resource_prefix`` (one prefix per environment, for example
``storefront-prod``), so two environments never share a resource. The bus name derived here is
``<prefix>-events``, the default of ``Settings.event_bus_name`` for the default prefix.

Examples:
    >>> topology = build_topology(resource_prefix="storefront-dev")
    >>> topology.queue("fulfillment").name
    'storefront-dev-fulfillment'
    >>> topology.queue("fulfillment").dead_letter_queue
    'fulfillment-dlq'
    >>> topology.bucket("assets").name
    'storefront-dev-assets'
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from storefront import ranges
from storefront.settings import Settings, get_settings

# --- Limits and defaults that the values below are checked against ----------------------------

# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
# (message retention: default 4 days, minimum 60 s, maximum 1,209,600 s; visibility timeout:
# default 30 s, minimum 0, maximum 12 hours; a receive or batch request handles at most 10
# messages; a message carries at most 10 message attributes).
SQS_RETENTION_MIN_S = 60
SQS_RETENTION_DEFAULT_S = 345_600
SQS_RETENTION_MAX_S = 1_209_600
SQS_VISIBILITY_DEFAULT_S = 30
SQS_VISIBILITY_MAX_S = 43_200
SQS_MAX_BATCH = 10
SQS_MAX_MESSAGE_ATTRIBUTES = 10
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/best-practices-setting-up-long-polling.html
# (the maximum long-polling wait time is 20 seconds).
SQS_MAX_WAIT_S = 20
# https://aws.github.io/modern-data-architecture-accelerator/typedocs/interfaces/_aws-mdaa_dataops-lambda-l3-construct.QueueDlqProps.html
# (AWS's MDAA construct reference: maxReceiveCount must be between 1 and 1000).
SQS_MAX_RECEIVE_COUNT_RANGE = (1, 1000)

# https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_RetryPolicy.html
# (MaximumEventAgeInSeconds 60-86400, MaximumRetryAttempts 0-185) and
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html
# (by default EventBridge retries for 24 hours and up to 185 times).
EVENTBRIDGE_MAX_EVENT_AGE_RANGE_S = (60, 86_400)
EVENTBRIDGE_RETRY_ATTEMPTS_RANGE = (0, 185)
# https://docs.aws.amazon.com/it_it/AWSCloudFormation/latest/UserGuide/aws-resource-events-archive.html
# (ArchiveName 1-48 characters; RetentionDays 0 means events are retained indefinitely).
EVENTBRIDGE_ARCHIVE_NAME_MAX = 48

# https://docs.aws.amazon.com/goto/WebAPI/cognito-idp-2016-04-18/PasswordPolicyType
# (MinimumLength 6-99; PasswordHistorySize 0-24, enforced from the Essentials tier).
COGNITO_PASSWORD_LENGTH_RANGE = (6, 99)
# https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_TokenValidityUnitsType.html
# (access and ID tokens: five minutes to one day; refresh tokens: 60 minutes to 10 years).
COGNITO_ACCESS_TOKEN_RANGE_MIN = (5, 1_440)
COGNITO_REFRESH_TOKEN_RANGE_MIN = (60, 10 * 365 * 1_440)
# https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RefreshTokenRotationType.html
# (Feature ENABLED | DISABLED; RetryGracePeriodSeconds 0-60).
COGNITO_ROTATION_GRACE_RANGE_S = (0, 60)

# https://docs.aws.amazon.com/goto/WebAPI/s3-2006-03-01/Transition
# (transitions to STANDARD_IA or ONEZONE_IA need more than 30 days; GLACIER_IR, GLACIER,
# DEEP_ARCHIVE and INTELLIGENT_TIERING accept 0 or more).
S3_IA_CLASSES = frozenset({"STANDARD_IA", "ONEZONE_IA"})
S3_IA_MIN_DAYS = 30

# https://www.cloudflare.com/ips/ (Cloudflare's published ranges; read on copies of
# https://www.cloudflare.com/ips-v4 and /ips-v6 dated 2026-02-11). Set
# STOREFRONT_TRUSTED_PROXY_RANGES_FILE to use a freshly synced list instead.
CLOUDFLARE_IP_RANGES: tuple[str, ...] = tuple(
    str(network) for network in ranges.load_ranges(ranges.CLOUDFLARE_RANGES_FILE)
)

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (general purpose
# bucket names: 3 to 63 characters, lower-case letters, digits, dots and hyphens, beginning and
# ending with a letter or digit, not starting with xn--, sthree- or amzn-s3-demo-). A prefix of at
# most 40 characters leaves room for the longest suffix, "-receipts".
S3_BUCKET_NAME_MAX = 63
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def _check_range(what: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {value}")


# --- The domain events the rules route -------------------------------------------------------


@dataclass(frozen=True)
class EventType:
    """A domain event type as EventBridge sees it.

    Attributes:
        source: EventBridge's ``source`` (the producing service, ``storefront.<service>``).
        detail_type: EventBridge's ``detail-type``.
    """

    source: str
    detail_type: str


# Types follow storefront.events.envelope's ``<aggregate>.<past-tense verb>`` (the OrderPlaced,
# OrderFulfilled and OrderRejected events of the architecture pages).
EVENT_SOURCE_PREFIX = "storefront."
ORDER_PLACED = EventType(source="storefront.orders", detail_type="order.placed")
ORDER_FULFILLED = EventType(source="storefront.fulfillment", detail_type="order.fulfilled")
ORDER_REJECTED = EventType(source="storefront.fulfillment", detail_type="order.rejected")

# The key prefix of backup exports: storefront.storage writes under it, and the backups bucket's
# lifecycle rule applies to it.
BACKUP_PREFIX = "exports/"

NotificationChannel = Literal["email", "sms", "webhook"]
NOTIFICATION_CHANNELS: tuple[NotificationChannel, ...] = ("email", "sms", "webhook")
# The SNS message attribute that the subscriptions' filter policies read.
CHANNEL_ATTRIBUTE = "channel"


# --- Cognito ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordPolicy:
    """The user pool's password policy.

    Attributes:
        minimum_length: Shortest accepted password (Cognito allows 6 to 99).
        require_uppercase: At least one upper-case letter.
        require_lowercase: At least one lower-case letter.
        require_numbers: At least one digit.
        require_symbols: At least one symbol.
        temporary_password_validity_days: How long an invitation's temporary password works
            (Cognito's default is 7 days; staff invitations should not linger).
    """

    minimum_length: int = 12
    require_uppercase: bool = True
    require_lowercase: bool = True
    require_numbers: bool = True
    require_symbols: bool = True
    temporary_password_validity_days: int = 3

    def __post_init__(self) -> None:
        _check_range("minimum_length", self.minimum_length, COGNITO_PASSWORD_LENGTH_RANGE)
        if self.temporary_password_validity_days < 1:
            raise ValueError("temporary_password_validity_days must be at least 1")

    def to_api(self) -> dict[str, Any]:
        """The ``PasswordPolicy`` structure of ``CreateUserPool`` / ``UpdateUserPool``."""
        return {
            "MinimumLength": self.minimum_length,
            "RequireUppercase": self.require_uppercase,
            "RequireLowercase": self.require_lowercase,
            "RequireNumbers": self.require_numbers,
            "RequireSymbols": self.require_symbols,
            "TemporaryPasswordValidityDays": self.temporary_password_validity_days,
        }


@dataclass(frozen=True)
class UserGroup:
    """A Cognito group; the services authorize on the ``cognito:groups`` claim.

    Attributes:
        name: The group's name, as it appears in tokens.
        description: What membership means.
        precedence: Which group's role wins when a user is in several (lower is stronger).
    """

    name: str
    description: str
    precedence: int


@dataclass(frozen=True)
class AppClient:
    """A user pool app client.

    The storefront's single-page app is a public client: it runs in the browser, so it cannot
    keep a secret (``generate_secret`` is False) and signs in with SRP or, where the UI sends the
    password over TLS to Cognito, ``USER_PASSWORD_AUTH``.

    Attributes:
        name: The client's name.
        generate_secret: Whether Cognito makes a client secret (never for a public client).
        explicit_auth_flows: The sign-in flows the client may use.
        access_token_validity_minutes: Lifetime of access tokens (5 minutes to 1 day).
        id_token_validity_minutes: Lifetime of ID tokens (5 minutes to 1 day).
        refresh_token_validity_minutes: Lifetime of refresh tokens (60 minutes to 10 years).
        refresh_token_rotation: Issue a new refresh token on every refresh and retire the old one.
            With rotation on, clients refresh with ``GetTokensFromRefreshToken``, not
            ``REFRESH_TOKEN_AUTH`` (moto does not enforce this), as stated in
            https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RefreshTokenRotationType.html
        rotation_grace_period_s: How long the retired refresh token stays valid for a retry
            (0 to 60 s).
        prevent_user_existence_errors: Answer sign-in and reset requests without revealing
            whether the user exists.
        enable_token_revocation: Allow the revoke endpoint (sign-out revokes the refresh token).
    """

    # --8<-- [start:app-client]
    name: str
    generate_secret: bool = False
    explicit_auth_flows: tuple[str, ...] = (
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    )
    access_token_validity_minutes: int = 15
    id_token_validity_minutes: int = 15
    refresh_token_validity_minutes: int = 30 * 1_440
    refresh_token_rotation: bool = True
    rotation_grace_period_s: int = 10
    prevent_user_existence_errors: bool = True
    enable_token_revocation: bool = True
    # --8<-- [end:app-client]

    def __post_init__(self) -> None:
        _check_range(
            "access_token_validity_minutes",
            self.access_token_validity_minutes,
            COGNITO_ACCESS_TOKEN_RANGE_MIN,
        )
        _check_range(
            "id_token_validity_minutes",
            self.id_token_validity_minutes,
            COGNITO_ACCESS_TOKEN_RANGE_MIN,
        )
        _check_range(
            "refresh_token_validity_minutes",
            self.refresh_token_validity_minutes,
            COGNITO_REFRESH_TOKEN_RANGE_MIN,
        )
        _check_range(
            "rotation_grace_period_s", self.rotation_grace_period_s, COGNITO_ROTATION_GRACE_RANGE_S
        )

    def to_api(self) -> dict[str, Any]:
        """The arguments of ``CreateUserPoolClient`` / ``UpdateUserPoolClient`` (no pool id)."""
        return {
            "ClientName": self.name,
            "ExplicitAuthFlows": list(self.explicit_auth_flows),
            "AccessTokenValidity": self.access_token_validity_minutes,
            "IdTokenValidity": self.id_token_validity_minutes,
            "RefreshTokenValidity": self.refresh_token_validity_minutes,
            "TokenValidityUnits": {
                "AccessToken": "minutes",
                "IdToken": "minutes",
                "RefreshToken": "minutes",
            },
            "PreventUserExistenceErrors": "ENABLED"
            if self.prevent_user_existence_errors
            else "LEGACY",
            "EnableTokenRevocation": self.enable_token_revocation,
            "RefreshTokenRotation": {
                "Feature": "ENABLED" if self.refresh_token_rotation else "DISABLED",
                "RetryGracePeriodSeconds": self.rotation_grace_period_s,
            },
        }


@dataclass(frozen=True)
class UserPool:
    """The customers' and staff's user pool.

    Attributes:
        name: The pool's name.
        password_policy: The password rules.
        groups: The groups tokens carry in ``cognito:groups``.
        clients: The app clients.
        deletion_protection: A deleted pool is every account lost, so it is protected.
    """

    name: str
    password_policy: PasswordPolicy
    groups: tuple[UserGroup, ...]
    clients: tuple[AppClient, ...]
    deletion_protection: bool = True

    def create_arguments(self) -> dict[str, Any]:
        """The arguments of ``CreateUserPool``.

        Email is the username, case-insensitive (``UsernameConfiguration`` is a creation-time
        argument), and verified automatically by Cognito's code.
        """
        return {
            "PoolName": self.name,
            "Policies": {"PasswordPolicy": self.password_policy.to_api()},
            "UsernameAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            "UsernameConfiguration": {"CaseSensitive": False},
            "DeletionProtection": "ACTIVE" if self.deletion_protection else "INACTIVE",
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
        }


# --- SQS -------------------------------------------------------------------------------------

AccessGrant = tuple[Literal["events.amazonaws.com", "sns.amazonaws.com"], str]


@dataclass(frozen=True)
class Queue:
    """An SQS standard queue.

    A consumer queue names its ``dead_letter_queue``: after ``max_receive_count`` receives without
    a delete, SQS moves the message there (the redrive policy). A DLQ keeps messages for the
    14-day maximum, because a standard queue expires a message by its original enqueue time,
    which the move does not reset.

    Attributes:
        key: The logical name services use (``"fulfillment"``).
        name: The queue's name.
        visibility_timeout_s: How long a received message stays invisible (0 to 12 hours); the
            consumer's heartbeat extends it for long work.
        retention_s: How long an unconsumed message is kept (60 s to 14 days).
        receive_wait_s: The queue's default long-poll wait (0 to 20 s).
        dead_letter_queue: The key of the queue's DLQ, or None for a DLQ itself.
        max_receive_count: Receives before the move to the DLQ (1 to 1000).
        managed_sse: Server-side encryption with SQS-owned keys (SSE-SQS).
        senders: The AWS services allowed to send, each only from its resource ARN's key
            (``("events.amazonaws.com", "rule:fulfillment")``), resolved by the bootstrap into an
            ``aws:SourceArn`` condition.
        redrive_sources: For a DLQ, the keys of the queues allowed to use it.
    """

    key: str
    name: str
    visibility_timeout_s: int = 60
    retention_s: int = SQS_RETENTION_DEFAULT_S
    receive_wait_s: int = SQS_MAX_WAIT_S
    dead_letter_queue: str | None = None
    max_receive_count: int = 5
    managed_sse: bool = True
    senders: tuple[AccessGrant, ...] = ()
    redrive_sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range(
            f"{self.key}: visibility_timeout_s",
            self.visibility_timeout_s,
            (0, SQS_VISIBILITY_MAX_S),
        )
        _check_range(
            f"{self.key}: retention_s", self.retention_s, (SQS_RETENTION_MIN_S, SQS_RETENTION_MAX_S)
        )
        _check_range(f"{self.key}: receive_wait_s", self.receive_wait_s, (0, SQS_MAX_WAIT_S))
        _check_range(
            f"{self.key}: max_receive_count", self.max_receive_count, SQS_MAX_RECEIVE_COUNT_RANGE
        )

    # --8<-- [start:queue-attributes]
    def attributes(
        self, *, dead_letter_arn: str | None, policy: dict[str, Any] | None
    ) -> dict[str, str]:
        """The queue's attributes as ``CreateQueue`` / ``SetQueueAttributes`` take them.

        Args:
            dead_letter_arn: The ARN of the queue's DLQ (required when it has one).
            policy: The queue's resource policy, or None for none.

        Returns:
            Attribute names to string values.

        Raises:
            ValueError: The queue has a DLQ but no ARN was given for it.
        """
        attributes = {
            "VisibilityTimeout": str(self.visibility_timeout_s),
            "MessageRetentionPeriod": str(self.retention_s),
            "ReceiveMessageWaitTimeSeconds": str(self.receive_wait_s),
            "SqsManagedSseEnabled": "true" if self.managed_sse else "false",
        }
        if self.dead_letter_queue is not None:
            if not dead_letter_arn:
                raise ValueError(f"{self.key}: the ARN of {self.dead_letter_queue} is needed")
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": self.max_receive_count}
            )
        if policy is not None:
            attributes["Policy"] = json.dumps(policy)
        return attributes

    # --8<-- [end:queue-attributes]


# --- EventBridge -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often EventBridge retries delivery to a target.

    Attributes:
        maximum_event_age_s: Give up after this age (60 to 86,400 s).
        maximum_retry_attempts: Give up after this many retries (0 to 185).
    """

    maximum_event_age_s: int = 86_400
    maximum_retry_attempts: int = 185

    def __post_init__(self) -> None:
        _check_range(
            "maximum_event_age_s", self.maximum_event_age_s, EVENTBRIDGE_MAX_EVENT_AGE_RANGE_S
        )
        _check_range(
            "maximum_retry_attempts", self.maximum_retry_attempts, EVENTBRIDGE_RETRY_ATTEMPTS_RANGE
        )

    def to_api(self) -> dict[str, int]:
        """The ``RetryPolicy`` structure of ``PutTargets``."""
        return {
            "MaximumEventAgeInSeconds": self.maximum_event_age_s,
            "MaximumRetryAttempts": self.maximum_retry_attempts,
        }


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule with one SQS target (one target per rule).

    Attributes:
        key: The logical name (``"fulfillment"``).
        name: The rule's name.
        description: What the rule routes.
        event_pattern: The event pattern (always names ``source`` and ``detail-type``).
        target_queue: The key of the queue that receives the matching events.
        target_dead_letter_queue: The key of the queue that keeps events EventBridge could not
            deliver after the retry policy (its own DLQ, separate from the consumer's).
        retry_policy: The target's retry policy.
    """

    key: str
    name: str
    description: str
    event_pattern: dict[str, Any]
    target_queue: str
    target_dead_letter_queue: str
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def target_id(self) -> str:
        """The target's id within the rule."""
        return f"{self.target_queue}-queue"

    def pattern_json(self) -> str:
        """The event pattern as the API takes it."""
        return json.dumps(self.event_pattern, sort_keys=True)


@dataclass(frozen=True)
class Archive:
    """The bus's event archive (source of replays).

    Attributes:
        name: The archive's name (at most 48 characters).
        event_pattern: Which events are archived.
        retention_days: Days kept; 0 would keep them indefinitely.
    """

    name: str
    event_pattern: dict[str, Any]
    retention_days: int = 90

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= EVENTBRIDGE_ARCHIVE_NAME_MAX:
            raise ValueError(
                f"archive name must be 1 to {EVENTBRIDGE_ARCHIVE_NAME_MAX} characters: {self.name}"
            )
        if self.retention_days < 0:
            raise ValueError("retention_days must not be negative")

    def pattern_json(self) -> str:
        """The event pattern as the API takes it."""
        return json.dumps(self.event_pattern, sort_keys=True)


@dataclass(frozen=True)
class EventBus:
    """The custom event bus of the domain events.

    Attributes:
        name: The bus's name.
        rules: Its rules.
        archive: Its archive.
    """

    name: str
    rules: tuple[Rule, ...]
    archive: Archive


# --- SNS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """An SQS subscription of the notifications topic.

    Attributes:
        queue: The key of the subscribed queue.
        filter_policy: The filter policy on message attributes (``{"channel": ["email"]}``).
        raw_message_delivery: Deliver the message body as published, with its message attributes
            as SQS message attributes, rather than wrapped in SNS's JSON envelope.
    """

    queue: str
    filter_policy: dict[str, Any]
    raw_message_delivery: bool = True

    def attributes(self, *, dead_letter_arn: str) -> dict[str, str]:
        """The subscription's attributes (``Subscribe`` / ``SetSubscriptionAttributes``)."""
        return {
            "RawMessageDelivery": "true" if self.raw_message_delivery else "false",
            "FilterPolicy": json.dumps(self.filter_policy, sort_keys=True),
            "FilterPolicyScope": "MessageAttributes",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn}),
        }


@dataclass(frozen=True)
class Topic:
    """The notifications topic.

    Attributes:
        name: The topic's name.
        subscriptions: One per channel queue.
        dead_letter_queue: The key of the queue that keeps messages SNS could not deliver to a
            subscription.
    """

    name: str
    subscriptions: tuple[Subscription, ...]
    dead_letter_queue: str


# --- S3 --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """A lifecycle transition to another storage class.

    Attributes:
        days: Days after creation.
        storage_class: The target class (``GLACIER_IR``...).
    """

    days: int
    storage_class: str

    def __post_init__(self) -> None:
        if self.storage_class in S3_IA_CLASSES and self.days <= S3_IA_MIN_DAYS:
            raise ValueError(
                f"a transition to {self.storage_class} needs more than {S3_IA_MIN_DAYS} days"
            )
        if self.days < 0:
            raise ValueError("transition days must not be negative")


@dataclass(frozen=True)
class LifecycleRule:
    """One lifecycle rule of a bucket.

    Attributes:
        id: The rule's id.
        prefix: The key prefix it applies to (``""`` for the whole bucket).
        transitions: Transitions of current versions.
        expiration_days: Expire current versions after this many days (None: never).
        noncurrent_expiration_days: Delete noncurrent versions after this many days.
        newer_noncurrent_versions: Keep this many newer noncurrent versions regardless.
        abort_incomplete_multipart_days: Abort unfinished multipart uploads (billed, unlisted).
    """

    id: str
    prefix: str = ""
    transitions: tuple[Transition, ...] = ()
    expiration_days: int | None = None
    noncurrent_expiration_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_incomplete_multipart_days: int | None = 7

    def to_api(self) -> dict[str, Any]:
        """The rule as ``PutBucketLifecycleConfiguration`` takes it."""
        rule: dict[str, Any] = {
            "ID": self.id,
            "Filter": {"Prefix": self.prefix},
            "Status": "Enabled",
        }
        if self.transitions:
            rule["Transitions"] = [
                {"Days": t.days, "StorageClass": t.storage_class} for t in self.transitions
            ]
        if self.expiration_days is not None:
            rule["Expiration"] = {"Days": self.expiration_days}
        if self.noncurrent_expiration_days is not None:
            noncurrent: dict[str, int] = {"NoncurrentDays": self.noncurrent_expiration_days}
            if self.newer_noncurrent_versions is not None:
                noncurrent["NewerNoncurrentVersions"] = self.newer_noncurrent_versions
            rule["NoncurrentVersionExpiration"] = noncurrent
        if self.abort_incomplete_multipart_days is not None:
            rule["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": self.abort_incomplete_multipart_days
            }
        return rule


@dataclass(frozen=True)
class KmsKey:
    """A customer managed KMS key, found by its alias.

    Attributes:
        alias: The alias (``alias/<prefix>-receipts``).
        description: What it encrypts.
    """

    alias: str
    description: str


@dataclass(frozen=True)
class Bucket:
    """An S3 bucket and its settings.

    All buckets: versioning on, the four Block Public Access settings on, ACLs disabled
    (``BucketOwnerEnforced``) and a policy that denies any request not made over TLS.

    Attributes:
        key: The logical name (``"assets"``).
        name: The bucket's name (globally unique; lower case).
        encryption: ``"AES256"`` (SSE-S3) or ``"aws:kms"`` (SSE-KMS with ``kms_key``).
        kms_key: The customer managed key for SSE-KMS, else None.
        lifecycle: The lifecycle rules.
        allow_get_from_ranges: CIDR ranges allowed to ``GetObject`` anonymously (the CDN's
            origin lock), else empty.
    """

    key: str
    name: str
    encryption: Literal["AES256", "aws:kms"]
    kms_key: KmsKey | None = None
    lifecycle: tuple[LifecycleRule, ...] = ()
    allow_get_from_ranges: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.encryption == "aws:kms") != (self.kms_key is not None):
            raise ValueError(f"{self.key}: SSE-KMS needs a kms_key, and only SSE-KMS takes one")
        for cidr in self.allow_get_from_ranges:
            ipaddress.ip_network(cidr)  # raises ValueError on a malformed range

    def encryption_rule(self, kms_key_arn: str | None) -> dict[str, Any]:
        """The bucket's default-encryption rule (``PutBucketEncryption``).

        Args:
            kms_key_arn: The KMS key's ARN, required for SSE-KMS.

        Returns:
            One ``ServerSideEncryptionConfiguration`` rule.

        Raises:
            ValueError: SSE-KMS without a key ARN.
        """
        if self.encryption == "AES256":
            return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        if not kms_key_arn:
            raise ValueError(f"{self.key}: SSE-KMS needs the key's ARN")
        return {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": kms_key_arn,
            },
            # The bucket key cuts S3's calls to KMS (cost, throttling).
            "BucketKeyEnabled": True,
        }

    # --8<-- [start:bucket-policy]
    def policy(self, *, include_deny: bool = True) -> dict[str, Any] | None:
        """The bucket policy.

        Args:
            include_deny: Include the statement that denies requests without TLS. Always True
                against AWS; moto 5.2.5 applies any ``Deny`` regardless of its condition, so the
                bootstrap leaves it out there (see ``storefront.bootstrap``).

        Returns:
            The policy document, or None when it would have no statement.
        """
        arn = f"arn:aws:s3:::{self.name}"
        statements: list[dict[str, Any]] = []
        if self.allow_get_from_ranges:
            statements.append(
                {
                    "Sid": "AllowGetFromCdnOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"{arn}/*",
                    # A policy limited to a set of CIDRs with aws:SourceIp is not "public", so
                    # Block Public Access stays on:
                    # https://docs.aws.amazon.com/sdkfornet/v3/apidocs/items/S3/TPublicAccessBlockConfiguration.html
                    "Condition": {"IpAddress": {"aws:SourceIp": list(self.allow_get_from_ranges)}},
                }
            )
        if include_deny:
            statements.append(
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            )
        if not statements:
            return None
        return {"Version": "2012-10-17", "Statement": statements}

    # --8<-- [end:bucket-policy]

    @staticmethod
    def public_access_block() -> dict[str, bool]:
        """All four Block Public Access settings on."""
        return {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }


# --- The whole topology ----------------------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """Every runtime resource of one environment.

    Attributes:
        prefix: The environment's resource prefix.
        user_pool: The Cognito user pool.
        event_bus: The EventBridge bus, rules and archive.
        queues: Every SQS queue (consumer queues and DLQs).
        topic: The SNS notifications topic.
        buckets: The S3 buckets.
    """

    prefix: str
    user_pool: UserPool
    event_bus: EventBus
    queues: tuple[Queue, ...]
    topic: Topic
    buckets: tuple[Bucket, ...]

    def __post_init__(self) -> None:
        keys = [queue.key for queue in self.queues]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate queue keys: {keys}")
        known = set(keys)
        references = [q.dead_letter_queue for q in self.queues if q.dead_letter_queue]
        references += [r.target_queue for r in self.event_bus.rules]
        references += [r.target_dead_letter_queue for r in self.event_bus.rules]
        references += [s.queue for s in self.topic.subscriptions]
        references += [self.topic.dead_letter_queue]
        missing = sorted(set(references) - known)
        if missing:
            raise ValueError(f"unknown queue keys referenced: {missing}")

    def queue(self, key: str) -> Queue:
        """The queue with this logical name.

        Raises:
            KeyError: No such queue.
        """
        for queue in self.queues:
            if queue.key == key:
                return queue
        raise KeyError(key)

    def rule(self, key: str) -> Rule:
        """The rule with this logical name.

        Raises:
            KeyError: No such rule.
        """
        for rule in self.event_bus.rules:
            if rule.key == key:
                return rule
        raise KeyError(key)

    def bucket(self, key: str) -> Bucket:
        """The bucket with this logical name.

        Raises:
            KeyError: No such bucket.
        """
        for bucket in self.buckets:
            if bucket.key == key:
                return bucket
        raise KeyError(key)

    def kms_keys(self) -> tuple[KmsKey, ...]:
        """The customer managed keys the buckets use, each once."""
        keys = {b.kms_key.alias: b.kms_key for b in self.buckets if b.kms_key is not None}
        return tuple(keys.values())


def rule_arn(*, partition: str, region: str, account: str, bus: str, rule: str) -> str:
    """The ARN of a rule on a custom bus (known before the rule exists)."""
    return f"arn:{partition}:events:{region}:{account}:rule/{bus}/{rule}"


def topic_arn(*, partition: str, region: str, account: str, topic: str) -> str:
    """The ARN of an SNS topic (known before the topic exists)."""
    return f"arn:{partition}:sns:{region}:{account}:{topic}"


def queue_arn(*, partition: str, region: str, account: str, queue: str) -> str:
    """The ARN of an SQS queue (known before the queue exists)."""
    return f"arn:{partition}:sqs:{region}:{account}:{queue}"


def load_ranges(path: str | None) -> tuple[str, ...]:
    """The CDN's address ranges: from ``path`` (one CIDR per line, ``#`` comments) or built in.

    Raises:
        ValueError: A line is not a CIDR range, or the file lists none
            (:class:`storefront.ranges.RangesFileError`).
    """
    if not path:
        return CLOUDFLARE_IP_RANGES
    return tuple(str(network) for network in ranges.load_ranges(path))


def build_topology(
    resource_prefix: str | None = None,
    *,
    cdn_ranges: tuple[str, ...] | None = None,
    settings: Settings | None = None,
) -> Topology:
    """The topology of one environment.

    Args:
        resource_prefix: The prefix of every name; defaults to ``Settings.resource_prefix``.
        cdn_ranges: The CDN ranges for the assets bucket's policy; defaults to the file named by
            ``Settings.trusted_proxy_ranges_file``, else Cloudflare's published ranges.
        settings: The settings to read defaults from (``get_settings()`` when omitted).

    Returns:
        The topology.

    Raises:
        ValueError: The prefix cannot make valid names (lower-case letters, digits and hyphens,
            at most 40 characters, so every bucket name stays within S3's 63; not one of S3's
            reserved bucket-name prefixes).
    """
    settings = settings or get_settings()
    p = resource_prefix if resource_prefix is not None else settings.resource_prefix
    if not _PREFIX.match(p) or p.startswith(_S3_RESERVED_PREFIXES):
        raise ValueError(
            f"resource prefix {p!r}: use 1-40 lower-case letters, digits and inner hyphens, "
            f"not starting with {', '.join(_S3_RESERVED_PREFIXES)}"
        )
    ranges = (
        cdn_ranges if cdn_ranges is not None else load_ranges(settings.trusted_proxy_ranges_file)
    )
    bus = f"{p}-events"

    # --8<-- [start:consumer-queues]
    def consumer(key: str, *senders: AccessGrant) -> tuple[Queue, Queue]:
        dlq_key = f"{key}-dlq"
        return (
            Queue(key=key, name=f"{p}-{key}", dead_letter_queue=dlq_key, senders=senders),
            Queue(
                key=dlq_key,
                name=f"{p}-{key}-dlq",
                retention_s=SQS_RETENTION_MAX_S,
                redrive_sources=(key,),
            ),
        )

    # --8<-- [end:consumer-queues]

    def delivery_dlq(rule_key: str) -> Queue:
        return Queue(
            key=f"{rule_key}-delivery-dlq",
            name=f"{p}-{rule_key}-delivery-dlq",
            retention_s=SQS_RETENTION_MAX_S,
            senders=(("events.amazonaws.com", f"rule:{rule_key}"),),
        )

    # --8<-- [start:event-rules]
    rules = (
        Rule(
            key="fulfillment",
            name=f"{p}-to-fulfillment",
            description="order.placed events to the fulfillment service",
            event_pattern={
                "source": [{"prefix": EVENT_SOURCE_PREFIX}],
                "detail-type": [ORDER_PLACED.detail_type],
            },
            target_queue="fulfillment",
            target_dead_letter_queue="fulfillment-delivery-dlq",
        ),
        Rule(
            key="analytics",
            name=f"{p}-to-analytics",
            description="Every storefront event to the analytics service",
            event_pattern={"source": [{"prefix": EVENT_SOURCE_PREFIX}]},
            target_queue="analytics",
            target_dead_letter_queue="analytics-delivery-dlq",
        ),
        Rule(
            key="notifications",
            name=f"{p}-to-notifications",
            description="order.fulfilled and order.rejected events to the notifications service",
            event_pattern={
                "source": [{"prefix": EVENT_SOURCE_PREFIX}],
                "detail-type": [ORDER_FULFILLED.detail_type, ORDER_REJECTED.detail_type],
            },
            target_queue="notifications",
            target_dead_letter_queue="notifications-delivery-dlq",
        ),
    )
    # --8<-- [end:event-rules]
    queues: list[Queue] = []
    for rule in rules:
        queues += consumer(rule.key, ("events.amazonaws.com", f"rule:{rule.key}"))
        queues.append(delivery_dlq(rule.key))
    for channel in NOTIFICATION_CHANNELS:
        queues += consumer(f"notify-{channel}", ("sns.amazonaws.com", "topic:notifications"))
    queues.append(
        Queue(
            key="notifications-subscription-dlq",
            name=f"{p}-notifications-subscription-dlq",
            retention_s=SQS_RETENTION_MAX_S,
            senders=(("sns.amazonaws.com", "topic:notifications"),),
        )
    )

    abort_uploads = LifecycleRule(id="abort-incomplete-multipart-uploads")
    return Topology(
        prefix=p,
        # --8<-- [start:user-pool]
        user_pool=UserPool(
            name=f"{p}-users",
            password_policy=PasswordPolicy(),
            groups=(
                UserGroup("staff", "Storefront staff: support, merchandising, admin", 1),
                UserGroup("customers", "Customers of the storefront", 10),
            ),
            clients=(AppClient(name=f"{p}-spa"),),
        ),
        # --8<-- [end:user-pool]
        event_bus=EventBus(
            name=bus,
            rules=rules,
            archive=Archive(
                name=f"{p}-archive",
                event_pattern={"source": [{"prefix": EVENT_SOURCE_PREFIX}]},
            ),
        ),
        queues=tuple(queues),
        # --8<-- [start:notification-topic]
        topic=Topic(
            name=f"{p}-notifications",
            subscriptions=tuple(
                Subscription(queue=f"notify-{c}", filter_policy={CHANNEL_ATTRIBUTE: [c]})
                for c in NOTIFICATION_CHANNELS
            ),
            dead_letter_queue="notifications-subscription-dlq",
        ),
        # --8<-- [end:notification-topic]
        # --8<-- [start:buckets]
        buckets=(
            Bucket(
                key="assets",
                name=f"{p}-assets",
                # SSE-S3: the CDN's requests are anonymous, and an anonymous request for an
                # SSE-KMS object fails (SigV4 is required):
                # https://www.repost.aws/knowledge-center/s3-kms-signature-version-error
                encryption="AES256",
                lifecycle=(
                    abort_uploads,
                    # A bad deploy can be rolled back from versions for 30 days. (Keeping a
                    # number of newer versions, NewerNoncurrentVersions, is left out: moto 5.2.5
                    # drops it, so the bootstrap could never see it in place.)
                    LifecycleRule(
                        id="expire-old-builds",
                        noncurrent_expiration_days=30,
                        abort_incomplete_multipart_days=None,
                    ),
                ),
                allow_get_from_ranges=ranges,
            ),
            Bucket(
                key="receipts",
                name=f"{p}-receipts",
                encryption="aws:kms",
                kms_key=KmsKey(alias=f"alias/{p}-receipts", description="Storefront receipts"),
                lifecycle=(
                    abort_uploads,
                    LifecycleRule(
                        id="expire-replaced-receipts",
                        noncurrent_expiration_days=90,
                        abort_incomplete_multipart_days=None,
                    ),
                ),
            ),
            Bucket(
                key="backups",
                name=f"{p}-backups",
                encryption="aws:kms",
                kms_key=KmsKey(alias=f"alias/{p}-backups", description="Storefront backups"),
                lifecycle=(
                    abort_uploads,
                    LifecycleRule(
                        id="archive-then-expire-exports",
                        prefix=BACKUP_PREFIX,
                        transitions=(Transition(days=30, storage_class="GLACIER_IR"),),
                        expiration_days=400,
                        noncurrent_expiration_days=30,
                        abort_incomplete_multipart_days=None,
                    ),
                ),
            ),
        ),
        # --8<-- [end:buckets]
    )
