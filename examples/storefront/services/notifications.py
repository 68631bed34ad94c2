"""The notifications worker: a receipt to S3 and a notification to SNS for each decided order.

It consumes ``order.fulfilled`` and ``order.rejected`` (its EventBridge rule) and publishes one
notification per event to the notifications topic with the ``channel`` attribute
(:class:`storefront.messaging.notifications.NotificationPublisher`); SNS's filter policies deliver
it only to that channel's queue. A fulfilled order first gets its receipt stored in the receipts
bucket, encrypted with the bucket's KMS key (:func:`storefront.storage.put_receipt`).

Idempotent end to end: the notification's ``message_id`` is the event's id, so the channel
worker sends it once however often it is published; a redelivered event rewrites the same
receipt key (a new version of the same document in the versioned bucket).

The receipt is a minimal PDF (a stand-in: a real one would come from a template renderer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from storefront import storage
from storefront.messaging.consumer import Consumer, ConsumerOptions, InvalidMessageError, Message
from storefront.messaging.notifications import NotificationPublisher
from storefront.topology import ORDER_FULFILLED, ORDER_REJECTED

NAME = "notifications"


def receipt_pdf(order: dict[str, Any]) -> bytes:
    """A one-line receipt document for an order (stand-in for a rendered PDF)."""
    text = f"Receipt for order {order['order_id']}: total {order['total_minor']} minor units"
    return f"%PDF-1.4\n% {text}\n%%EOF\n".encode()


@dataclass(frozen=True)
class Notifier:
    """What the handler needs: the topic and the receipts bucket.

    Attributes:
        publisher: Publishes to the notifications topic.
        receipts_bucket: The receipts bucket's name.
        receipts_key_arn: Its KMS key.
        channel: The channel customers are notified on.
    """

    publisher: NotificationPublisher
    receipts_bucket: str
    receipts_key_arn: str
    channel: str = "email"

    # --8<-- [start:notify]
    def handle(self, message: Message, _session: Session) -> None:
        """Store the receipt (fulfilled orders) and publish the customer's notification.

        Raises:
            InvalidMessageError: Not an order outcome (it ends in the DLQ).
        """
        event = message.envelope
        if event is None or event.type not in (
            ORDER_FULFILLED.detail_type,
            ORDER_REJECTED.detail_type,
        ):
            raise InvalidMessageError("notifications handles order outcomes only")
        notification: dict[str, Any] = {"type": event.type, **event.data}
        if event.type == ORDER_FULFILLED.detail_type:
            receipt = storage.put_receipt(
                self.receipts_bucket,
                event.data["order_id"],
                receipt_pdf(event.data),
                kms_key_id=self.receipts_key_arn,
                issued_at=event.time,
            )
            notification["receipt_key"] = receipt.key
        self.publisher.publish(self.channel, notification, message_id=str(event.id))

    # --8<-- [end:notify]


def consumer(
    queue_url: str,
    sessions: sessionmaker[Session],
    notifier: Notifier,
    *,
    options: ConsumerOptions | None = None,
    sqs: Any = None,
) -> Consumer:
    """The notifications worker's consumer (``BootstrapRecord.queues["notifications"]``)."""
    return Consumer(NAME, queue_url, notifier.handle, sessions, options=options, sqs=sqs)
