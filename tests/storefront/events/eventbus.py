"""The EventBridge bus and SQS queue the event tests publish to and read from (moto)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.harness.servers import wait_until

BUS = "storefront-events"
SOURCE = "storefront.orders"


@dataclass
class Bus:
    """An EventBridge bus whose rule sends every storefront.orders event to an SQS queue."""

    name: str
    queue_url: str
    events: Any
    sqs: Any

    def received(self, expected: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until ``expected`` messages arrived, then return every message's event."""
        messages: list[dict[str, Any]] = []

        def enough() -> bool:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            for message in response.get("Messages", []):
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
            return len(messages) >= expected

        wait_until(enough, what=f"{expected} events in the queue", timeout=timeout)
        return messages

    def waiting(self) -> int:
        """Messages in the queue now (moto delivers during PutEvents, so this is final)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])
