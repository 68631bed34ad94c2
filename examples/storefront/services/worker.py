"""Run one worker until ECS stops its task (SIGTERM), then exit cleanly.

The task's command is ``python -m storefront.services.worker fulfillment --queue-url URL``: the
database comes from ``STOREFRONT_DATABASE_URL`` (:class:`storefront.settings.Settings`), AWS from
the SDK's own variables, the queue from the bootstrap record (``queues["fulfillment"].url``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict

from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.messaging.consumer import (
    BatchOutcome,
    Consumer,
    ConsumerOptions,
    install_signal_handlers,
)
from storefront.services import fulfillment
from storefront.topology import SQS_MAX_WAIT_S

logger = logging.getLogger(__name__)


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


# --8<-- [start:main]
def main(argv: Sequence[str] | None = None) -> int:
    """The worker task's entry point: build the consumer from the environment and run it.

    Args:
        argv: The command-line arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0 after a graceful stop (the counts are printed as one JSON line).
    """
    parser = argparse.ArgumentParser(prog="python -m storefront.services.worker")
    parser.add_argument("worker", choices=[fulfillment.NAME])
    parser.add_argument("--queue-url", required=True, help="the worker's SQS queue")
    parser.add_argument("--wait-time-s", type=int, default=SQS_MAX_WAIT_S)
    parser.add_argument("--visibility-timeout-s", type=int, default=60)
    parser.add_argument("--heartbeat-interval-s", type=float, default=20.0)
    args = parser.parse_args(argv)
    options = ConsumerOptions(
        wait_time_s=args.wait_time_s,
        visibility_timeout_s=args.visibility_timeout_s,
        heartbeat_interval_s=args.heartbeat_interval_s,
    )
    engine = make_engine(pool=PoolSettings(application_name=f"{args.worker}-worker"))
    try:
        consumer = fulfillment.consumer(
            args.queue_url, make_session_factory(engine), options=options
        )
        outcome = run(consumer)
    finally:
        engine.dispose()
    # The counts over the task's life, one JSON line on stdout (the task's log).
    sys.stdout.write(json.dumps({"worker": args.worker, **asdict(outcome)}) + "\n")
    return 0


# --8<-- [end:main]

if __name__ == "__main__":  # pragma: no cover - the task's command; main() is tested in-process
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
