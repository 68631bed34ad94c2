"""Rebuild the analytics event store after it is lost: from the EventBridge archive or the outbox.

The event store (:mod:`storefront.documents`) holds history, not truth: every event in it came
from the bus, so a lost or corrupted store is rebuilt by sending the events through again. Two
sources can do that:

* **The bus's archive** (:func:`rebuild_analytics_from_archive`). ``StartReplay`` re-sends the
  archived events of a time window to the bus, restricted with ``Destination.FilterArns`` to the
  analytics rule, so only the analytics queue receives them; the analytics worker appends them as
  it appends live events. The archive keeps every ``storefront.*`` event for
  ``Archive.retention_days`` (90, :mod:`storefront.topology`).
* **The event log** (:func:`rebuild_from_outbox`). The outbox rows are not deleted after the relay
  publishes them (``published_at`` is set, the row stays), so the published rows of a window are
  the same envelopes, and are appended straight to the store. This needs no AWS call, but only
  reaches as far back as the rows are kept (the examples never delete them; the data
  architecture page plans a 7-day retention), and only covers the services whose outbox it reads.

**Why the rebuild first forgets the analytics consumer's idempotency records.** The consumer
(:mod:`storefront.messaging.consumer`) records ``(analytics, event id)`` in PostgreSQL and skips
any event it has recorded, so a replayed event whose first delivery was recorded would be
deleted from the queue without being appended: the replay would rebuild nothing. Those records
describe what the *store* holds, so they are lost with it: :func:`forget_processed_events` deletes
them (only the analytics consumer's; fulfillment's and notifications' stay, and keep absorbing any
replayed copies they receive). Forgetting is safe at any moment: the append itself is idempotent
on the event id, so an event delivered again after its record is gone is stored once.

**The replay is asynchronous.** ``StartReplay`` returns at once; :func:`wait_for_replay` polls
``DescribeReplay`` until the state is ``COMPLETED`` (a ``FAILED`` or ``CANCELLED`` replay raises
:class:`ReplayFailedError` with EventBridge's ``StateReason``), with a deadline
(:class:`ReplayTimeoutError`; the replay itself keeps running). Events can reach the archive a
while after the bus received them, and AWS advises waiting 10 minutes before replaying a window
(https://docs.aws.amazon.com/ja_jp/eventbridge/latest/userguide/eb-archive.md, checked
2026-12-03), so a window must end at least ``archive_delay`` ago. Replay names are 1 to 64
characters of ``[.-_A-Za-z0-9]`` and unique per account and Region
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_Replay.html, checked
2026-12-03); :func:`replay_name` makes one from a purpose, the time and a random suffix.

What moto 5.2.5 does instead: the replay runs inside ``StartReplay`` (``COMPLETED`` at once), it
ignores the window and ``FilterArns`` (every archived event goes to every rule whose pattern
matches it, so fulfillment and notifications receive their copies too), and it gives each
replayed event a new EventBridge ``id``. The envelope's id inside ``detail`` is unchanged, which is
what the consumers deduplicate on.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from storefront import aws
from storefront.db.models import OutboxEvent, ProcessedMessage
from storefront.documents import EventStore
from storefront.events.outbox import envelope_of
from storefront.services import analytics

if TYPE_CHECKING:
    from storefront.bootstrap import BootstrapRecord

logger = logging.getLogger(__name__)

# https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_Replay.html (checked 2026-12-03):
# ReplayName 1-64 characters, pattern [\.\-_A-Za-z0-9]+; State STARTING | RUNNING | CANCELLING |
# COMPLETED | CANCELLED | FAILED. StartReplay's Description: at most 512 characters.
REPLAY_NAME_MAX = 64
REPLAY_NAME_PATTERN = re.compile(r"^[.\-_A-Za-z0-9]+$")
REPLAY_DESCRIPTION_MAX = 512
REPLAY_IN_PROGRESS = frozenset({"STARTING", "RUNNING", "CANCELLING"})
REPLAY_FAILED = frozenset({"FAILED", "CANCELLED"})
# Delay the replay of archived events by 10 minutes: events can reach the archive late
# (https://docs.aws.amazon.com/ja_jp/eventbridge/latest/userguide/eb-archive.md, checked
# 2026-12-03, a machine-translated copy).
ARCHIVE_DELAY = timedelta(minutes=10)
DEFAULT_TIMEOUT_S = 3_600.0
# The rule that sends every storefront event to the analytics queue (storefront.topology).
ANALYTICS_RULE_KEY = "analytics"
DEFAULT_POLL_INTERVAL_S = 15.0


class ReplayFailedError(RuntimeError):
    """A replay ended ``FAILED`` or ``CANCELLED``.

    Attributes:
        name: The replay's name.
        state: ``FAILED`` or ``CANCELLED``.
        reason: EventBridge's ``StateReason`` (may be empty).
    """

    def __init__(self, name: str, state: str, reason: str) -> None:
        super().__init__(f"replay {name} ended {state}: {reason or 'no reason given'}")
        self.name = name
        self.state = state
        self.reason = reason


class ReplayTimeoutError(TimeoutError):
    """A replay was still in progress at the deadline (it keeps running in EventBridge).

    Attributes:
        name: The replay's name.
        state: Its last state seen.
    """

    def __init__(self, name: str, state: str, timeout_s: float) -> None:
        super().__init__(
            f"replay {name} still {state} after {timeout_s:.0f} s: keep watching it with "
            f"DescribeReplay, or stop it with CancelReplay"
        )
        self.name = name
        self.state = state


@dataclass(frozen=True)
class ReplayResult:
    """A finished replay.

    Attributes:
        name: The replay's name.
        arn: The replay's ARN.
        state: ``COMPLETED``.
        since: The window's start (events at or after it).
        until: The window's end.
        rule_arns: The rules it was restricted to (``Destination.FilterArns``).
        polls: ``DescribeReplay`` calls made.
    """

    name: str
    arn: str
    state: str
    since: datetime
    until: datetime
    rule_arns: tuple[str, ...]
    polls: int


@dataclass(frozen=True)
class ArchiveRebuild:
    """What :func:`rebuild_analytics_from_archive` did.

    Attributes:
        forgotten_records: Idempotency records of the analytics consumer deleted first.
        replay: The completed replay; the analytics worker appends its events from its queue.
    """

    forgotten_records: int
    replay: ReplayResult


@dataclass(frozen=True)
class OutboxRebuild:
    """What :func:`rebuild_from_outbox` did.

    Attributes:
        read: Published outbox rows in the window.
        appended: Events stored now.
        already_stored: Events the store had (``EventStore.append`` returned False).
    """

    read: int
    appended: int
    already_stored: int


def replay_name(purpose: str = "analytics-rebuild", *, now: datetime | None = None) -> str:
    """A unique, valid replay name: ``<purpose>-<UTC time>-<random hex>``.

    Args:
        purpose: What the replay is for; letters, digits, ``.``, ``-`` and ``_``, shortened to
            fit.
        now: The time in the name (defaults to now).

    Returns:
        At most 64 characters of ``[.-_A-Za-z0-9]``.

    Raises:
        ValueError: ``purpose`` is empty or has other characters.
    """
    if not purpose or not REPLAY_NAME_PATTERN.match(purpose):
        raise ValueError(f"replay purpose {purpose!r}: use letters, digits, '.', '-' and '_'")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{stamp}-{secrets.token_hex(4)}"
    return purpose[: REPLAY_NAME_MAX - len(suffix)] + suffix


# --8<-- [start:start-replay]
def start_replay(
    *,
    archive_arn: str,
    bus_arn: str,
    rule_arns: Sequence[str],
    since: datetime,
    until: datetime,
    name: str | None = None,
    description: str = "",
    archive_delay: timedelta = ARCHIVE_DELAY,
    now: datetime | None = None,
    events_client: Any = None,
) -> tuple[str, str]:
    """Start replaying the archive's events of ``[since, until)`` to the listed rules only.

    Args:
        archive_arn: The archive (``BootstrapRecord.archive_arn``).
        bus_arn: The bus the archive belongs to (the only bus a replay may go to).
        rule_arns: The rules to replay to (``Destination.FilterArns``); never empty, because an
            unfiltered replay redelivers to every consumer on the bus.
        since: The window's start.
        until: The window's end; at least ``archive_delay`` before ``now``.
        name: The replay's name; a fresh :func:`replay_name` by default.
        description: Why (shown by ``DescribeReplay`` and in CloudTrail), at most 512 characters.
        archive_delay: How long events may take to reach the archive.
        now: The current time (defaults to now).
        events_client: A boto3 ``events`` client; defaults to one from :mod:`storefront.aws`.

    Returns:
        The replay's name and ARN.

    Raises:
        ValueError: An empty rule list, a window that ends before it starts or too recently, a
            bad name or a description over 512 characters.
    """
    now = now or datetime.now(UTC)
    if not rule_arns:
        raise ValueError("name the rules to replay to: an unfiltered replay reaches every rule")
    if until <= since:
        raise ValueError("the replay window must end after it starts")
    if until > now - archive_delay:
        raise ValueError(
            f"the window ends less than {archive_delay} ago, and events may not have reached "
            f"the archive yet: end it at {(now - archive_delay).isoformat()} or replay later"
        )
    name = name or replay_name(now=now)
    if len(name) > REPLAY_NAME_MAX or not REPLAY_NAME_PATTERN.match(name):
        raise ValueError(f"replay name {name!r}: 1 to 64 of letters, digits, '.', '-', '_'")
    if len(description) > REPLAY_DESCRIPTION_MAX:
        raise ValueError(f"the description is over {REPLAY_DESCRIPTION_MAX} characters")
    events = events_client if events_client is not None else aws.client("events")
    started = events.start_replay(
        ReplayName=name,
        Description=description,
        EventSourceArn=archive_arn,
        EventStartTime=since,
        EventEndTime=until,
        Destination={"Arn": bus_arn, "FilterArns": list(rule_arns)},
    )
    logger.info("replay %s started: %s to %s, rules %s", name, since, until, list(rule_arns))
    return name, str(started["ReplayArn"])


# --8<-- [end:start-replay]


# --8<-- [start:wait-for-replay]
def wait_for_replay(
    name: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    events_client: Any = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], int]:
    """Poll ``DescribeReplay`` until the replay is ``COMPLETED``.

    Args:
        name: The replay's name.
        timeout_s: The deadline, from the first poll.
        poll_interval_s: The wait between two polls.
        events_client: A boto3 ``events`` client; defaults to one from :mod:`storefront.aws`.
        clock: Monotonic seconds (tests pass a fake).
        sleep: Waits between polls (tests pass a fake).

    Returns:
        The last ``DescribeReplay`` response and the number of polls.

    Raises:
        ReplayFailedError: The replay ended ``FAILED`` or ``CANCELLED``.
        ReplayTimeoutError: Still in progress at the deadline.
        RuntimeError: A state this code does not know.
    """
    events = events_client if events_client is not None else aws.client("events")
    deadline = clock() + timeout_s
    polls = 0
    while True:
        described = events.describe_replay(ReplayName=name)
        polls += 1
        state = str(described["State"])
        if state == "COMPLETED":
            return described, polls
        if state in REPLAY_FAILED:
            raise ReplayFailedError(name, state, str(described.get("StateReason", "")))
        if state not in REPLAY_IN_PROGRESS:
            raise RuntimeError(f"replay {name}: unknown state {state!r}")
        if clock() >= deadline:
            raise ReplayTimeoutError(name, state, timeout_s)
        # EventBridge replays asynchronously, in one-minute slices of event time.
        sleep(poll_interval_s)


# --8<-- [end:wait-for-replay]


def replay_archive(
    *,
    archive_arn: str,
    bus_arn: str,
    rule_arns: Sequence[str],
    since: datetime,
    until: datetime,
    archive_delay: timedelta = ARCHIVE_DELAY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    description: str = "",
    events_client: Any = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Start a replay (:func:`start_replay`) and wait until it completes (:func:`wait_for_replay`).

    Args:
        archive_arn: The archive.
        bus_arn: The archive's bus.
        rule_arns: The rules to replay to.
        since: The window's start.
        until: The window's end.
        archive_delay: How long events may take to reach the archive.
        timeout_s: How long to wait for the replay.
        poll_interval_s: The wait between two ``DescribeReplay`` calls.
        description: Why the replay runs.
        events_client: A boto3 ``events`` client; defaults to one from :mod:`storefront.aws`.
        clock: Monotonic seconds (tests pass a fake).
        sleep: Waits between polls (tests pass a fake).

    Returns:
        The completed replay.

    Raises:
        ValueError: See :func:`start_replay`.
        ReplayFailedError: The replay ended ``FAILED`` or ``CANCELLED``.
        ReplayTimeoutError: Still in progress at the deadline.
    """
    events = events_client if events_client is not None else aws.client("events")
    name, arn = start_replay(
        archive_arn=archive_arn,
        bus_arn=bus_arn,
        rule_arns=rule_arns,
        since=since,
        until=until,
        description=description,
        archive_delay=archive_delay,
        events_client=events,
    )
    described, polls = wait_for_replay(
        name,
        timeout_s=timeout_s,
        poll_interval_s=poll_interval_s,
        events_client=events,
        clock=clock,
        sleep=sleep,
    )
    return ReplayResult(
        name=name,
        arn=arn,
        state=str(described["State"]),
        since=since,
        until=until,
        rule_arns=tuple(rule_arns),
        polls=polls,
    )


def forget_processed_events(sessions: sessionmaker[Session], consumer: str) -> int:
    """Delete one consumer's idempotency records, so redelivered events are handled again.

    Only for a consumer whose effect was lost with its store and whose handler is idempotent on
    its own (the analytics worker: :meth:`storefront.documents.EventStore.append`).

    Args:
        sessions: Sessions on the database with ``processed_messages``.
        consumer: The consumer's name (``storefront.services.analytics.NAME``).

    Returns:
        The number of records deleted.
    """
    with sessions.begin() as session:
        deleted = session.execute(
            delete(ProcessedMessage)
            .where(ProcessedMessage.consumer == consumer)
            .returning(ProcessedMessage.id)
        ).all()
    logger.info("forgot %d processed events of consumer %s", len(deleted), consumer)
    return len(deleted)


# --8<-- [start:rebuild-from-archive]
def rebuild_analytics_from_archive(
    record: BootstrapRecord,
    sessions: sessionmaker[Session],
    store: EventStore,
    since: datetime,
    until: datetime,
    *,
    archive_delay: timedelta = ARCHIVE_DELAY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    events_client: Any = None,
) -> ArchiveRebuild:
    """Rebuild the analytics store from the archive: the runbook's steps, in order.

    1. Recreate the store's indexes (a new, empty collection has only ``_id``).
    2. Forget the analytics consumer's idempotency records (lost with the store).
    3. Replay ``[since, until)`` to the analytics rule only, and wait until it completes.

    The analytics worker then appends the replayed events from its queue, as it does live ones.

    Args:
        record: The bootstrap record (archive, bus and the analytics rule's ARN).
        sessions: Sessions on the database with the consumers' idempotency records.
        store: The (empty or partial) event store.
        since: The window's start (at most the archive's retention ago).
        until: The window's end (at least ``archive_delay`` ago).
        archive_delay: How long events may take to reach the archive.
        timeout_s: How long to wait for the replay.
        poll_interval_s: The wait between two ``DescribeReplay`` calls.
        events_client: A boto3 ``events`` client; defaults to one from :mod:`storefront.aws`.

    Returns:
        How many records were forgotten, and the completed replay.

    Raises:
        ValueError: See :func:`start_replay`.
        ReplayFailedError: The replay ended ``FAILED`` or ``CANCELLED``.
        ReplayTimeoutError: Still in progress at the deadline.
    """
    store.ensure_indexes()
    forgotten = forget_processed_events(sessions, analytics.NAME)
    replay = replay_archive(
        archive_arn=record.archive_arn,
        bus_arn=record.event_bus_arn,
        rule_arns=[record.rule_arns[ANALYTICS_RULE_KEY]],
        since=since,
        until=until,
        archive_delay=archive_delay,
        timeout_s=timeout_s,
        poll_interval_s=poll_interval_s,
        description="Rebuild the analytics event store",
        events_client=events_client,
    )
    return ArchiveRebuild(forgotten_records=forgotten, replay=replay)


# --8<-- [end:rebuild-from-archive]


# --8<-- [start:rebuild-from-outbox]
def rebuild_from_outbox(
    sessions: sessionmaker[Session],
    store: EventStore,
    since: datetime,
    until: datetime,
    *,
    batch_size: int = 500,
) -> OutboxRebuild:
    """Append the published outbox events of ``[since, until)`` to the store, oldest first.

    Unsent and parked rows are left out: the relay has not published them, so no consumer has
    seen them, and the live path appends them once they are published.

    Args:
        sessions: Sessions on the database with the outbox.
        store: The event store.
        since: The window's start (``occurred_at``).
        until: The window's end.
        batch_size: Rows read per query (keyset pagination on ``(occurred_at, id)``).

    Returns:
        How many rows were read, appended and found already stored.

    Raises:
        ValueError: A window that ends before it starts, or a batch size below 1.
        storefront.documents.EventConflictError: The store holds another event under an id.
    """
    if until <= since:
        raise ValueError("the rebuild window must end after it starts")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    store.ensure_indexes()
    read = appended = 0
    after: tuple[datetime, Any] | None = None
    while True:
        query = select(OutboxEvent).where(
            OutboxEvent.published_at.is_not(None),
            OutboxEvent.occurred_at >= since,
            OutboxEvent.occurred_at < until,
        )
        if after is not None:
            query = query.where(
                (OutboxEvent.occurred_at > after[0])
                | ((OutboxEvent.occurred_at == after[0]) & (OutboxEvent.id > after[1]))
            )
        with sessions() as session:
            rows = session.scalars(
                query.order_by(OutboxEvent.occurred_at, OutboxEvent.id).limit(batch_size)
            ).all()
            envelopes = [envelope_of(row) for row in rows]
            after = (rows[-1].occurred_at, rows[-1].id) if rows else after
        if not envelopes:
            return OutboxRebuild(read=read, appended=appended, already_stored=read - appended)
        for envelope in envelopes:
            appended += store.append(envelope)
        read += len(envelopes)


# --8<-- [end:rebuild-from-outbox]
