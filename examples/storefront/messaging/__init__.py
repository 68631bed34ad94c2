"""Messaging: the SQS consumer every worker runs, and the SNS notifications publisher.

* :mod:`storefront.messaging.consumer`: long polling, batches, a visibility heartbeat for long
  work, delete on success only, idempotency through ``processed_messages`` in PostgreSQL, poison
  messages left to the redrive policy, graceful stop on SIGTERM, and the producer's trace
  continued in the consumer's span.
* :mod:`storefront.messaging.notifications`: publishes to the notifications topic with the
  ``channel`` attribute the subscriptions filter on, and the trace context.
"""
