"""Run one worker until ECS stops its task (SIGTERM), then exit cleanly."""

from __future__ import annotations

from storefront.messaging.consumer import BatchOutcome, Consumer, install_signal_handlers


def run(consumer: Consumer) -> BatchOutcome:
    """Poll until SIGTERM or SIGINT; the message in progress finishes, the rest are released.

    Call from the main thread (signal handlers run there).

    Args:
        consumer: The worker's consumer.

    Returns:
        The counts over the worker's life.
    """
    restore = install_signal_handlers(consumer)
    try:
        return consumer.run()
    finally:
        restore()
