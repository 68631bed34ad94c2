"""The one place that makes AWS SDK (boto3) clients.

Every client gets the same retry and timeout policy, and the endpoint, Region and credentials that
the environment names: boto3 honours ``AWS_ENDPOINT_URL`` and the per-service
``AWS_ENDPOINT_URL_<SERVICE>`` variables itself, so pointing the storefront at moto, LocalStack or
AWS is a configuration change only.

Retries use botocore's ``standard`` mode (exponential back-off with jitter, a retry quota that
stops retry storms) with 5 attempts in all; connections time out after 2 s. The read timeout is
longer than SQS's longest long poll (20 s), so a ``ReceiveMessage`` that waits the full time is not
cut off and retried.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from storefront.settings import get_settings

MAX_ATTEMPTS = 5
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 25.0  # above SQS's 20 s maximum long-poll wait

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    tcp_keepalive=True,
)


def client(service: str, **overrides: Any) -> Any:
    """A boto3 client for ``service`` with the storefront's retry and timeout policy.

    Args:
        service: The service name as boto3 knows it (``"sqs"``, ``"events"``, ``"s3"``...).
        **overrides: Extra arguments for :func:`boto3.client` (for example ``config``).

    Returns:
        The client. Each call makes a new one; use :func:`shared_client` in hot paths.
    """
    settings = get_settings()
    arguments: dict[str, Any] = {"region_name": settings.region, "config": CLIENT_CONFIG}
    arguments.update(overrides)
    return boto3.session.Session().client(service, **arguments)


@cache
def shared_client(service: str) -> Any:
    """One client per service for the whole process (boto3 clients are thread-safe)."""
    return client(service)
