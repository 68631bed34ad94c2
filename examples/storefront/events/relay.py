"""The outbox relay: publishes committed outbox rows to the EventBridge bus, at least once.

Each run claims a batch of unsent rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, publishes them
with ``PutEvents`` and marks them sent, all in one database transaction:

* Two relays (two tasks, or a deployment's old and new task) never publish the same row: the
  rows one relay has claimed stay locked until its transaction ends, and the other relay skips
  them instead of waiting (``SKIP LOCKED``) and claims the next ones.
* If a relay dies after ``PutEvents`` succeeded but before its commit, its transaction rolls
  back, the rows are still unsent, and the next run publishes them again. The duplicate carries
  the same envelope ``id`` (EventBridge gives it a new event id), and consumers deduplicate on it.
  Delivery is at least once, never at most once.

``PutEvents`` takes at most 10 entries per request
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html, checked
2026-12-03), and a request succeeds even when some of its entries fail: each failed entry has an
``ErrorCode`` and the response a ``FailedEntryCount``; the failed entries must be sent again
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html, checked 2026-12-03).
The relay marks the entries that succeeded as sent and leaves the failed ones unsent with their
error and attempt count, and does not try them again before ``next_attempt_at``: the delay doubles
with each attempt from ``retry_base_s`` up to ``retry_cap_s``, so a burst of throttling is waited
out instead of burning through the attempts in seconds. Entries that can never succeed (an
invalid or oversized event, or ``max_attempts`` used up) are *parked*: they stay in the table,
unsent, with ``last_error`` set and ``attempts = max_attempts``, out of the relay's way and
visible to an alarm on
``SELECT count(*) FROM outbox_events WHERE published_at IS NULL AND attempts >= N``.
Nothing is deleted or dropped.

The size limit: EventBridge documents a 256 KB maximum for a ``PutEvents`` request's entries
(https://docs.aws.amazon.com/eventbridge/latest/userguide/calculate-putevents-entry-size.html,
checked 2026-12-03), which an AWS blog of January 2026 raises to 1 MB
(https://aws.amazon.com/blogs/compute/more-room-to-build-serverless-services-now-support-payloads-up-to-1-mb;
Uncertain: the API reference copies still say 256 KB). The relay keeps each request under
``max_request_bytes`` (256 KB by default) and parks a single entry above it.

The transaction stays open while ``PutEvents`` runs, so a run claims one request's worth of rows
by default (``batch_size`` = 10, the ``PutEvents`` maximum): the transaction then lasts one
request, retries included, instead of up to ten in a row. A larger batch multiplies that time; a
burst that slows ``PutEvents`` (throttling, SDK retries) would then outlast PostgreSQL's
``idle_in_transaction_session_timeout``, the session would be ended after the events were sent, and
every row of the batch would be published again (duplicates, never loss; a load test saw it). The
relay's engine still needs an ``idle_in_transaction_timeout_ms`` above one request's worst case,
and the relay should not go through RDS Proxy with other traffic (row locks pin nothing, but a long
transaction holds a proxy connection).

Not emulated by moto: per-entry failures of valid entries (throttling, internal errors) and
EventBridge's size limits. The tests inject per-entry failures with a wrapper around the real
(moto) client; moto accepting a request proves nothing about AWS's limits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from storefront.aws import client as aws_client
from storefront.db.models import OutboxEvent
from storefront.events.envelope import EventEnvelope
from storefront.events.outbox import envelope_of
from storefront.settings import get_settings

logger = logging.getLogger(__name__)

MAX_ENTRIES_PER_REQUEST = 10
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024
# Error codes that mean the entry itself is wrong: sending it again cannot succeed.
PERMANENT_ERRORS = frozenset({"InvalidArgument", "MalformedDetail", "ValidationException"})


@dataclass(frozen=True)
class RelayResult:
    """What one run did.

    Attributes:
        claimed: Rows taken from the outbox.
        published: Rows published and marked sent.
        failed: Rows left unsent to be retried.
        parked: Rows set aside for good (invalid, too large or out of attempts).
    """

    claimed: int = 0
    published: int = 0
    failed: int = 0
    parked: int = 0

    def __add__(self, other: RelayResult) -> RelayResult:
        return RelayResult(
            self.claimed + other.claimed,
            self.published + other.published,
            self.failed + other.failed,
            self.parked + other.parked,
        )


class OutboxRelay:
    """Publishes the outbox to EventBridge in batches; safe to run in several tasks at once.

    Args:
        sessions: Sessions on the service's database.
        bus_name: The event bus; defaults to ``Settings.event_bus_name``.
        events_client: A boto3 ``events`` client; defaults to one from :mod:`storefront.aws`.
        batch_size: Rows claimed per run (and held locked while they are published); the
            default, one ``PutEvents`` request's worth, keeps each transaction to one request.
        max_attempts: Attempts before a failing row is parked.
        max_request_bytes: Upper bound of one ``PutEvents`` request's entries.
        retry_base_s: Delay after the first failed attempt; doubled after each further one.
        retry_cap_s: The longest delay between two attempts.
        clock: The current time (UTC); tests move it.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        bus_name: str | None = None,
        events_client: Any = None,
        batch_size: int = MAX_ENTRIES_PER_REQUEST,
        max_attempts: int = 12,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        retry_base_s: float = 1.0,
        retry_cap_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._bus = bus_name or get_settings().event_bus_name
        self._events = events_client if events_client is not None else aws_client("events")
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._max_request_bytes = max_request_bytes
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._clock = clock

    # --8<-- [start:relay-claim]
    def run_once(self) -> RelayResult:
        """Claim one batch of unsent rows, publish them and record the outcome.

        Returns:
            What happened to the claimed rows.
        """
        now = self._clock()
        with self._sessions.begin() as session:
            rows = session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.published_at.is_(None),
                    OutboxEvent.attempts < self._max_attempts,
                    or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
                )
                .order_by(OutboxEvent.occurred_at, OutboxEvent.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            return self._publish(rows, now)

    # --8<-- [end:relay-claim]

    def drain(self, max_runs: int = 1_000) -> RelayResult:
        """Run until a run claims nothing (or ``max_runs`` runs): publish the whole backlog."""
        total = RelayResult()
        for _ in range(max_runs):
            result = self.run_once()
            total += result
            if result.claimed == 0 or result.published == 0:
                break
        return total

    def run_forever(self, stop: threading.Event, idle_wait_s: float = 1.0) -> None:
        """Relay until ``stop`` is set, waiting ``idle_wait_s`` whenever the outbox is empty."""
        while not stop.is_set():
            try:
                result = self.run_once()
            except Exception:  # the database is down: log, wait, try again
                logger.exception("outbox relay run failed")
                result = RelayResult()
            if result.published == 0:
                stop.wait(idle_wait_s)

    # --8<-- [start:relay-publish]
    def _publish(self, rows: Sequence[OutboxEvent], now: datetime) -> RelayResult:
        outcomes: dict[object, str] = {}
        ready: list[tuple[OutboxEvent, dict[str, Any], int]] = []
        for row in rows:
            try:
                entry = envelope_of(row).to_eventbridge_entry(self._bus)
            except ValidationError as error:
                outcomes[row.id] = self._park(row, f"invalid event: {error.errors()[0]['msg']}")
                continue
            size = EventEnvelope.entry_size(entry)
            if size > self._max_request_bytes:
                reason = f"entry of {size} bytes exceeds {self._max_request_bytes}"
                outcomes[row.id] = self._park(row, reason)
                continue
            ready.append((row, entry, size))

        for chunk in self._chunks(ready):
            try:
                response = self._events.put_events(Entries=[entry for _, entry, _ in chunk])
            except (BotoCoreError, ClientError) as error:
                # The whole request failed (network, throttling past the SDK's retries).
                logger.warning("PutEvents failed for %d entries: %s", len(chunk), error)
                for row, _, _ in chunk:
                    reason = f"{type(error).__name__}: {error}"
                    outcomes[row.id] = self._fail(row, reason, None, now)
                continue
            for (row, _, _), result in zip(chunk, response["Entries"], strict=True):
                if "ErrorCode" in result:
                    message = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
                    outcomes[row.id] = self._fail(row, message, result["ErrorCode"], now)
                else:
                    row.published_at = now
                    row.attempts += 1
                    row.last_error = None
                    row.next_attempt_at = None
                    outcomes[row.id] = "published"
        counts = list(outcomes.values())
        return RelayResult(
            claimed=len(rows),
            published=counts.count("published"),
            failed=counts.count("failed"),
            parked=counts.count("parked"),
        )

    # --8<-- [end:relay-publish]

    def _chunks(
        self, ready: list[tuple[OutboxEvent, dict[str, Any], int]]
    ) -> Iterator[list[tuple[OutboxEvent, dict[str, Any], int]]]:
        chunk: list[tuple[OutboxEvent, dict[str, Any], int]] = []
        chunk_bytes = 0
        for item in ready:
            if chunk and (
                len(chunk) == MAX_ENTRIES_PER_REQUEST
                or chunk_bytes + item[2] > self._max_request_bytes
            ):
                yield chunk
                chunk, chunk_bytes = [], 0
            chunk.append(item)
            chunk_bytes += item[2]
        if chunk:
            yield chunk

    def _fail(self, row: OutboxEvent, message: str, code: str | None, now: datetime) -> str:
        """Record a failed attempt: ``"failed"`` (to retry later) or ``"parked"`` (for good)."""
        row.attempts += 1
        if code in PERMANENT_ERRORS or row.attempts >= self._max_attempts:
            return self._park(row, message)
        row.last_error = message[:1000]
        delay = min(self._retry_cap_s, self._retry_base_s * 2 ** (row.attempts - 1))
        row.next_attempt_at = now + timedelta(seconds=delay)
        return "failed"

    def _park(self, row: OutboxEvent, reason: str) -> str:
        row.attempts = max(row.attempts, self._max_attempts)
        row.last_error = reason[:1000]
        logger.error("outbox event %s (%s) parked: %s", row.id, row.type, reason)
        return "parked"
