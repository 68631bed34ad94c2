"""An SQS consumer: long polling, batches, a visibility heartbeat, idempotent, stops gracefully.

One :class:`Consumer` drains one queue. Each poll is a long poll (``WaitTimeSeconds`` 20, the
maximum: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/best-practices-setting-up-long-polling.html)
for up to 10 messages (the most one request handles:
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html),
which keeps empty receives, and so cost, down. For every message it:

1. parses the message: an EventBridge event's envelope (``detail``, see
   :mod:`storefront.events.envelope`), or the raw body and message attributes of an SNS
   notification; a message that claims to be an event but carries no valid envelope is poison;
2. opens a span whose parent is the producer's span, from the envelope's ``trace_context`` or the
   ``traceparent`` message attribute (:func:`storefront.telemetry.context_from_carrier`);
3. in one PostgreSQL transaction, records ``ProcessedMessage(consumer, key)`` and runs the
   handler, so the record and the handler's effect commit together or not at all. The key is the
   envelope's ``id`` (stable when the outbox relay or EventBridge delivers the same event twice),
   else the ``message_id`` message attribute, else the SQS message id. A key already recorded
   means a duplicate: the handler is skipped;
4. deletes the message only after the commit. A handler that raises leaves the message in the
   queue: it is received again after its visibility timeout (or ``retry_delay_s``), and after the
   queue's ``maxReceiveCount`` receives SQS moves it to the dead-letter queue. Nothing is dropped.

While a batch is being worked on, a heartbeat thread extends the visibility of the messages not
yet finished with ``ChangeMessageVisibility``, so a slow handler's message is not delivered to a
second consumer; the extension stops at the 12-hour maximum that SQS allows a message in flight
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html).
A crashed task stops beating, and its messages come back within one visibility timeout.

:meth:`Consumer.request_stop` (what SIGTERM calls, see :func:`install_signal_handlers`) stops
polling, lets the message in progress finish, and releases the batch's other messages at once by
setting their visibility to 0. If the message in progress is still running ``shutdown_grace_s``
after the request, it is released too and :meth:`Consumer.run` returns anyway; its transaction
has not committed, so it is retried elsewhere (and if it does commit late, the idempotency record
makes the redelivery a no-op). A stop can wait for a long poll already in flight, so allow
``wait_time_s + shutdown_grace_s`` between SIGTERM and SIGKILL (ECS's ``stopTimeout``).

What moto 5.2.5 emulates here: visibility timeouts, ``ChangeMessageVisibility``, the redrive
policy's move to the DLQ, long polling. Not emulated: SQS's distributed nature (a real standard
queue can deliver a message twice even with a correct visibility timeout, which is why the
idempotency record exists; moto never does, so the duplicate test sends the same event twice).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from storefront import aws
from storefront.db.models import ProcessedMessage
from storefront.events.envelope import EventEnvelope
from storefront.telemetry import carrier_from_message_attributes, context_from_carrier
from storefront.topology import SQS_MAX_BATCH, SQS_MAX_WAIT_S, SQS_VISIBILITY_MAX_S

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# The message attribute that carries a producer's idempotency key when there is no envelope.
MESSAGE_ID_ATTRIBUTE = "message_id"


class InvalidMessageError(ValueError):
    """A message that no handler can process (it stays in the queue and ends in the DLQ)."""


# --- The message a handler receives ----------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A received SQS message, parsed.

    Attributes:
        message_id: SQS's id of this message.
        receipt_handle: The handle of this receive (for delete and visibility changes).
        body: The raw body.
        receive_count: How many times SQS has delivered it (1 on the first receive).
        message_attributes: The message attributes' string values.
        key: The idempotency key (see the module docstring).
        envelope: The event envelope when the message is an EventBridge event, else None.
        carrier: The producer's W3C trace headers (empty for a message without them).
    """

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    message_attributes: Mapping[str, str]
    key: str
    envelope: EventEnvelope | None
    carrier: Mapping[str, str]

    # --8<-- [start:parse-message]
    @classmethod
    def from_sqs(cls, raw: Mapping[str, Any]) -> Message:
        """Parse a message as ``ReceiveMessage`` returns it.

        Raises:
            InvalidMessageError: The body is an EventBridge event without a valid envelope.
        """
        body = raw["Body"]
        attributes = carrier_from_message_attributes(raw.get("MessageAttributes"))
        envelope: EventEnvelope | None = None
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and "detail-type" in decoded and "detail" in decoded:
            try:
                envelope = EventEnvelope.from_eventbridge(decoded)
            except ValidationError as error:
                raise InvalidMessageError(
                    f"an EventBridge event without a valid envelope: {error}"
                ) from error
        if envelope is not None:
            key, carrier = str(envelope.id), dict(envelope.trace_context)
        else:
            key = attributes.get(MESSAGE_ID_ATTRIBUTE) or raw["MessageId"]
            carrier = {k: v for k, v in attributes.items() if k in ("traceparent", "tracestate")}
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=body,
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            message_attributes=attributes,
            key=key,
            envelope=envelope,
            carrier=carrier,
        )

    # --8<-- [end:parse-message]

    def json(self) -> Any:
        """The body decoded as JSON.

        Raises:
            InvalidMessageError: The body is not JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise InvalidMessageError(f"the body is not JSON: {error}") from error


Handler = Callable[[Message, Session], None]


# --- Options and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerOptions:
    """How the consumer polls, beats and stops.

    Attributes:
        wait_time_s: Long-poll wait per receive (0 to 20 s).
        max_messages: Messages per receive (1 to 10).
        visibility_timeout_s: What each heartbeat sets the visibility of unfinished messages to;
            use the queue's own visibility timeout.
        heartbeat_interval_s: Seconds between heartbeats, well below ``visibility_timeout_s``;
            None turns the heartbeat off.
        retry_delay_s: Visibility (seconds) given to a message whose handler failed, by its
            receive count; None leaves it invisible for the rest of its visibility timeout.
        shutdown_grace_s: How long a stop waits for the message in progress before releasing it.
    """

    wait_time_s: int = SQS_MAX_WAIT_S
    max_messages: int = SQS_MAX_BATCH
    visibility_timeout_s: int = 60
    heartbeat_interval_s: float | None = 20.0
    retry_delay_s: Callable[[int], int] | None = None
    shutdown_grace_s: float = 20.0

    def __post_init__(self) -> None:
        if not 0 <= self.wait_time_s <= SQS_MAX_WAIT_S:
            raise ValueError(f"wait_time_s must be between 0 and {SQS_MAX_WAIT_S}")
        if not 1 <= self.max_messages <= SQS_MAX_BATCH:
            raise ValueError(f"max_messages must be between 1 and {SQS_MAX_BATCH}")
        if not 1 <= self.visibility_timeout_s <= SQS_VISIBILITY_MAX_S:
            raise ValueError(f"visibility_timeout_s must be between 1 and {SQS_VISIBILITY_MAX_S}")
        if self.heartbeat_interval_s is not None and not (
            0 < self.heartbeat_interval_s < self.visibility_timeout_s
        ):
            raise ValueError("heartbeat_interval_s must be positive and below the visibility")


@dataclass
class BatchOutcome:
    """What one poll did.

    Attributes:
        received: Messages received.
        processed: Handled and deleted.
        duplicates: Already processed before; deleted without running the handler.
        failed: The handler (or parsing) failed; left in the queue for a retry or the DLQ.
        released: Given back at once (visibility 0) because the consumer is stopping.
    """

    received: int = 0
    processed: int = 0
    duplicates: int = 0
    failed: int = 0
    released: int = 0

    def add(self, other: BatchOutcome) -> None:
        """Add another poll's counts to this one."""
        for name in ("received", "processed", "duplicates", "failed", "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- The heartbeat ---------------------------------------------------------------------------


class _Heartbeat:
    """A thread that keeps a batch's unfinished messages invisible."""

    def __init__(self, sqs: Any, queue_url: str, options: ConsumerOptions) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._visibility = options.visibility_timeout_s
        self._interval = options.heartbeat_interval_s
        self._lock = threading.Lock()
        self._in_flight: dict[str, float] = {}  # receipt handle -> monotonic receive time
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def __enter__(self) -> _Heartbeat:
        if self._interval is not None:
            self._thread = threading.Thread(target=self._loop, name="sqs-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def track(self, receipt_handles: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            self._in_flight.update(dict.fromkeys(receipt_handles, now))

    def forget(self, *receipt_handles: str) -> None:
        with self._lock:
            for handle in receipt_handles:
                self._in_flight.pop(handle, None)

    def _loop(self) -> None:
        assert self._interval is not None  # noqa: S101 - the thread only runs with an interval
        while not self._stopped.wait(self._interval):
            self.beat()

    # --8<-- [start:heartbeat]
    def beat(self) -> None:
        """Extend the visibility of every unfinished message (up to SQS's 12-hour cap).

        The lock is held for the whole beat, so once :meth:`forget` returns, no beat extends
        that message again (a message released with visibility 0 stays released).
        """
        with self._lock:
            now = time.monotonic()
            entries = []
            for handle, received_at in self._in_flight.items():
                left = int(SQS_VISIBILITY_MAX_S - (now - received_at))
                if left > 0:
                    timeout = min(left, self._visibility)
                    entries.append({"ReceiptHandle": handle, "VisibilityTimeout": timeout})
            for start in range(0, len(entries), SQS_MAX_BATCH):
                chunk = [
                    {"Id": str(index), **entry}
                    for index, entry in enumerate(entries[start : start + SQS_MAX_BATCH])
                ]
                try:
                    response = self._sqs.change_message_visibility_batch(
                        QueueUrl=self._queue_url, Entries=chunk
                    )
                except Exception:  # the next beat tries again; the message may reappear meanwhile
                    logger.warning("heartbeat failed", exc_info=True)
                    continue
                for failure in response.get("Failed", []):
                    logger.warning("heartbeat failed for one message: %s", failure)
        self.beats += 1

    # --8<-- [end:heartbeat]


# --- The consumer ----------------------------------------------------------------------------


@dataclass
class _Batch:
    """A received batch shared by the worker and the supervising thread."""

    pending: list[dict[str, Any]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    current: dict[str, Any] | None = None
    abandoned: bool = False
    outcome: BatchOutcome = field(default_factory=BatchOutcome)

    def take(self, stopping: bool) -> dict[str, Any] | None:
        with self.lock:
            if self.abandoned or stopping or not self.pending:
                return None
            self.current = self.pending.pop(0)
            return self.current

    def finish(self) -> None:
        with self.lock:
            self.current = None

    def abandon(self) -> list[dict[str, Any]]:
        """Take every message not finished (the one in progress included)."""
        with self.lock:
            self.abandoned = True
            left = ([self.current] if self.current else []) + self.pending
            self.current, self.pending = None, []
            return left

    def leftovers(self) -> list[dict[str, Any]]:
        with self.lock:
            left, self.pending = self.pending, []
            return left


class Consumer:
    """Drains one SQS queue into a handler, exactly once per idempotency key.

    Args:
        name: The consumer's name, part of the idempotency record (one service may run several
            consumers, each with its own record of what it processed).
        queue_url: The queue's URL (from :class:`storefront.bootstrap.BootstrapRecord`).
        handler: Applies one message inside the given session's transaction; raise to fail it.
        session_factory: Makes the sessions (``storefront.db.engine.make_session_factory``).
        sqs: The SQS client; defaults to ``storefront.aws.client("sqs")``.
        options: Polling, heartbeat and shutdown settings.
    """

    def __init__(
        self,
        name: str,
        queue_url: str,
        handler: Handler,
        session_factory: sessionmaker[Session],
        *,
        sqs: Any = None,
        options: ConsumerOptions | None = None,
    ) -> None:
        self.name = name
        self.queue_url = queue_url
        self.queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self._handler = handler
        self._sessions = session_factory
        self._sqs = sqs or aws.client("sqs")
        self.options = options or ConsumerOptions()
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        self.heartbeats = 0

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop polling; finish the message in progress within the grace period, release the rest.

        Safe to call from a signal handler or another thread, and more than once.
        """
        if not self._stop.is_set():
            self._stop_deadline = time.monotonic() + self.options.shutdown_grace_s
            self._stop.set()
            logger.info("consumer %s stopping", self.name)

    def run(self) -> BatchOutcome:
        """Poll until a stop is requested.

        An SQS error that outlasts the SDK's retries ends the loop with that error: the task
        exits, ECS starts another, and the messages in flight come back after their visibility
        timeout.

        Returns:
            The counts over every poll.
        """
        total = BatchOutcome()
        while not self.stopping:
            total.add(self.poll_once())
        return total

    # --8<-- [start:poll]
    def poll_once(self) -> BatchOutcome:
        """Receive one batch (long poll) and work through it.

        Returns:
            What happened to the batch's messages.
        """
        if self.stopping:
            return BatchOutcome()
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.options.max_messages,
            WaitTimeSeconds=self.options.wait_time_s,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        batch = _Batch(pending=list(messages))
        batch.outcome.received = len(messages)
        if not messages:
            return batch.outcome
        with _Heartbeat(self._sqs, self.queue_url, self.options) as heartbeat:
            heartbeat.track([m["ReceiptHandle"] for m in messages])
            worker = threading.Thread(
                target=self._work, args=(batch, heartbeat), name=f"{self.name}-worker", daemon=True
            )
            worker.start()
            while worker.is_alive():
                worker.join(timeout=0.05)
                deadline = self._stop_deadline
                if deadline is not None and time.monotonic() > deadline and worker.is_alive():
                    abandoned = batch.abandon()
                    heartbeat.forget(*(m["ReceiptHandle"] for m in abandoned))
                    self._release(batch, abandoned)
                    logger.warning("consumer %s: handler outlived the stop deadline", self.name)
                    break
        self.heartbeats += heartbeat.beats
        return batch.outcome

    def _work(self, batch: _Batch, heartbeat: _Heartbeat) -> None:
        while (raw := batch.take(self.stopping)) is not None:
            result = self._process(raw)
            heartbeat.forget(raw["ReceiptHandle"])
            with batch.lock:
                setattr(batch.outcome, result, getattr(batch.outcome, result) + 1)
            batch.finish()
        if not batch.abandoned:
            leftovers = batch.leftovers()
            heartbeat.forget(*(m["ReceiptHandle"] for m in leftovers))
            self._release(batch, leftovers)

    # --8<-- [end:poll]

    # --8<-- [start:process]
    def _process(self, raw: dict[str, Any]) -> str:
        """Handle one message; returns the name of the outcome counter to increment."""
        try:
            message = Message.from_sqs(raw)
        except InvalidMessageError:
            logger.exception("consumer %s: poison message %s", self.name, raw.get("MessageId"))
            self._retry_later(raw)
            return "failed"
        with tracer.start_as_current_span(
            f"{self.queue_name} process",
            context=context_from_carrier(message.carrier),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "aws_sqs",
                "messaging.operation.type": "process",
                "messaging.destination.name": self.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.consumer.group.name": self.name,
            },
        ) as span:
            try:
                with self._sessions.begin() as session:
                    first_time = session.execute(
                        insert(ProcessedMessage)
                        .values(consumer=self.name, message_id=message.key)
                        .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
                        .returning(ProcessedMessage.id)
                    ).first()
                    if first_time is not None:
                        self._handler(message, session)
            except Exception as error:  # any handler failure: keep the message for a retry
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                logger.exception("consumer %s: message %s failed", self.name, message.message_id)
                self._retry_later(raw)
                return "failed"
            span.set_attribute("storefront.duplicate", first_time is None)
        # Deleted only after the commit: a crash in between means a redelivery, which the
        # idempotency record turns into a no-op.
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle)
        return "processed" if first_time is not None else "duplicates"

    # --8<-- [end:process]

    def _retry_later(self, raw: dict[str, Any]) -> None:
        if self.options.retry_delay_s is None:
            return
        count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        self._change_visibility([raw], self.options.retry_delay_s(count))

    def _release(self, batch: _Batch, messages: list[dict[str, Any]]) -> None:
        if messages:
            self._change_visibility(messages, 0)
            with batch.lock:
                batch.outcome.released += len(messages)

    def _change_visibility(self, messages: list[dict[str, Any]], seconds: int) -> None:
        for start in range(0, len(messages), SQS_MAX_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
                for i, m in enumerate(messages[start : start + SQS_MAX_BATCH])
            ]
            try:
                self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception:  # the visibility timeout returns them anyway, only later
                logger.warning("could not change the visibility of %d messages", len(entries))


# --8<-- [start:signals]
def install_signal_handlers(consumer: Consumer) -> Callable[[], None]:
    """Make SIGTERM (ECS stopping the task) and SIGINT stop the consumer gracefully.

    Call from the main thread (Python runs signal handlers there).

    Returns:
        A function that puts the previous handlers back.
    """

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s received", signal.Signals(signum).name)
        consumer.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


# --8<-- [end:signals]
