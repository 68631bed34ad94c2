"""Publish customer notifications to the SNS topic, routed to a channel queue by an attribute.

The notifications topic has one SQS subscription per channel (email, SMS, webhook), each with a
filter policy on the ``channel`` message attribute (:mod:`storefront.topology`), so SNS delivers a
notification only to its channel's queue and the channel workers never see the others. Raw
message delivery hands the workers the published body untouched, with the message attributes as
SQS message attributes.

Each notification also carries:

* ``message_id``: the idempotency key the consumers record (:mod:`storefront.messaging.consumer`),
  so publishing the same notification twice (a retried publish, a redelivered event) sends it
  once;
* ``traceparent`` / ``tracestate``: the W3C trace context of the publish span, so the channel
  worker's span continues the trace.

SQS accepts at most 10 message attributes per message
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html),
and with raw delivery SNS's attributes become the SQS message's, so a publish with more is
refused here rather than failing at delivery.

Emulated by moto 5.2.5: filter policies on message attributes and raw delivery. Not emulated:
SNS's delivery retries and the subscription DLQ (moto delivers at once or not at all).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from storefront import aws
from storefront.messaging.consumer import MESSAGE_ID_ATTRIBUTE
from storefront.telemetry import carrier_from_current_context, message_attributes_from_carrier
from storefront.topology import CHANNEL_ATTRIBUTE, NOTIFICATION_CHANNELS, SQS_MAX_MESSAGE_ATTRIBUTES

tracer = trace.get_tracer(__name__)


class NotificationPublisher:
    """Publishes notifications to the notifications topic.

    Args:
        topic_arn: The topic (``BootstrapRecord.topic_arn``).
        sns: The SNS client; defaults to ``storefront.aws.client("sns")``.
    """

    def __init__(self, topic_arn: str, *, sns: Any = None) -> None:
        self.topic_arn = topic_arn
        self._sns = sns or aws.client("sns")

    # --8<-- [start:publish]
    def publish(
        self,
        channel: str,
        message: Mapping[str, Any] | str,
        *,
        message_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Publish one notification to one channel.

        Args:
            channel: ``email``, ``sms`` or ``webhook``: the value the filter policies match.
            message: The notification (a JSON object, or text).
            message_id: The idempotency key; a new UUID when None. Reuse it when publishing the
                same notification again.
            attributes: Further string attributes for the channel worker.

        Returns:
            SNS's message id.

        Raises:
            ValueError: An unknown channel, a reserved or too many attributes, or an empty
                message. Nothing is published then.
        """
        if channel not in NOTIFICATION_CHANNELS:
            raise ValueError(
                f"unknown channel {channel!r}; expected one of {NOTIFICATION_CHANNELS}"
            )
        body = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        if not body:
            raise ValueError("a notification needs a body")
        extra = dict(attributes or {})
        reserved = {CHANNEL_ATTRIBUTE, MESSAGE_ID_ATTRIBUTE, "traceparent", "tracestate"}
        if clash := sorted(reserved & set(extra)):
            raise ValueError(f"attributes {clash} are set by the publisher")
        with tracer.start_as_current_span(
            "notifications publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "aws_sns",
                "messaging.operation.type": "send",
                "messaging.destination.name": self.topic_arn.rsplit(":", 1)[-1],
                "storefront.channel": channel,
            },
        ):
            values = {
                CHANNEL_ATTRIBUTE: channel,
                MESSAGE_ID_ATTRIBUTE: message_id or str(uuid.uuid4()),
                **extra,
            }
            message_attributes = {
                name: {"DataType": "String", "StringValue": value} for name, value in values.items()
            }
            message_attributes.update(
                message_attributes_from_carrier(carrier_from_current_context())
            )
            if len(message_attributes) > SQS_MAX_MESSAGE_ATTRIBUTES:
                raise ValueError(
                    f"{len(message_attributes)} message attributes; SQS delivers at most "
                    f"{SQS_MAX_MESSAGE_ATTRIBUTES}"
                )
            response = self._sns.publish(
                TopicArn=self.topic_arn, Message=body, MessageAttributes=message_attributes
            )
        return str(response["MessageId"])

    # --8<-- [end:publish]
