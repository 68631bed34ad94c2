"""The storefront's services and what each one may touch, as data.

Every stack reads this one table: the network stack gives each service its own security group,
the data stack creates its cache user and event-store user, the compute stack its task
definition, roles and scaling, the API stack a route for each API service. What a service may
call is declared here, once, and the compute stack turns it into the IAM statements of the
service's task role (nothing else grants a task role anything).

Example:
    >>> [s.name for s in SERVICES if s.kind == "api"]
    ['catalog', 'cart', 'orders', 'payments', 'accounts', 'analytics']
    >>> service("orders-relay").event_source
    'storefront.orders'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CONTAINER_PORT = 3000
HEALTH_PATH = "/health/ready"


@dataclass(frozen=True)
class Service:
    """One ECS service.

    Attributes:
        name: The service's name (ECS service, log group, alarms, security group).
        kind: ``api`` (behind the ALB, autoscaled on requests and CPU) or ``worker``
            (no listener, autoscaled on its queue).
        database_user: Its PostgreSQL login role (IAM authentication through RDS Proxy), or None.
        cache_user: Whether it has an ElastiCache RBAC user (key prefix ``v1:<name>:``).
        rate_limiter: Whether it also keeps rate-limit counters (key prefix ``rl:``).
        consumes: The ``storefront.topology`` keys of the queues it receives from.
        event_source: The EventBridge ``source`` it may publish (outbox relays only).
        publishes_notifications: Whether it publishes to the SNS notifications topic.
        receipts_prefix: The receipts-bucket key prefix it writes receipts under, or None.
        staff_admin: Whether it administers staff users in the staff user pool.
        event_store_user: Its DocumentDB user (``event_writer`` / ``analytics_reader``), or None.
        public_reads: Whether ``GET`` on its routes is anonymous (cacheable at Cloudflare).
        internet_egress: Whether it calls hosts on the internet through the NAT gateways
            (the notification sender's webhook deliveries); such a worker keeps HTTPS egress to
            any address even when the other workers are narrowed to the S3 prefix list.
    """

    name: str
    kind: Literal["api", "worker"]
    database_user: str | None = None
    cache_user: bool = False
    rate_limiter: bool = False
    consumes: tuple[str, ...] = ()
    event_source: str | None = None
    publishes_notifications: bool = False
    receipts_prefix: str | None = None
    staff_admin: bool = False
    event_store_user: str | None = None
    public_reads: bool = False
    internet_egress: bool = False

    @property
    def path(self) -> str:
        """The path prefix of an API service's routes (``/orders``)."""
        return f"/{self.name}"

    @property
    def is_api(self) -> bool:
        """Whether the service sits behind the ALB."""
        return self.kind == "api"

    @property
    def stop_timeout_s(self) -> int:
        """Seconds between SIGTERM and SIGKILL.

        APIs have drained through the ALB before SIGTERM, so the 30 s default is enough; workers
        must finish or release the message they hold inside Fargate Spot's two-minute warning,
        and Fargate allows at most 120 s.
        """
        return 30 if self.is_api else 110

    @property
    def scopes(self) -> tuple[str, str]:
        """The resource-server scopes of an API service's routes."""
        return (f"{self.name}.read", f"{self.name}.write")


# --8<-- [start:services]
SERVICES: tuple[Service, ...] = (
    Service("catalog", "api", database_user="catalog_app", cache_user=True, public_reads=True),
    Service("cart", "api", database_user="cart_app", cache_user=True, rate_limiter=True),
    Service("orders", "api", database_user="orders_app"),
    Service("payments", "api", database_user="payments_app"),
    Service("accounts", "api", database_user="accounts_app", staff_admin=True),
    Service("analytics", "api", event_store_user="analytics_reader"),
    Service(
        "orders-relay", "worker", database_user="orders_relay", event_source="storefront.orders"
    ),
    Service(
        "fulfillment-relay",
        "worker",
        database_user="fulfillment_relay",
        event_source="storefront.fulfillment",
    ),
    Service("fulfillment", "worker", database_user="fulfillment_app", consumes=("fulfillment",)),
    # Every consumer records what it processed in PostgreSQL (storefront.messaging.consumer).
    Service(
        "event-store",
        "worker",
        database_user="event_store_app",
        consumes=("analytics",),
        event_store_user="event_writer",
    ),
    Service(
        "notifications",
        "worker",
        database_user="notifications_app",
        consumes=("notifications",),
        publishes_notifications=True,
        receipts_prefix="receipts/",
    ),
    Service(
        "notification-sender",
        "worker",
        consumes=("notify-email", "notify-sms", "notify-webhook"),
        internet_egress=True,
    ),
)
# --8<-- [end:services]


def service(name: str) -> Service:
    """The service with this name.

    Raises:
        KeyError: No such service.
    """
    for candidate in SERVICES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def api_services() -> tuple[Service, ...]:
    """The services behind the ALB, in table order."""
    return tuple(s for s in SERVICES if s.is_api)


def database_users() -> tuple[str, ...]:
    """Every PostgreSQL login role a service connects as."""
    return tuple(s.database_user for s in SERVICES if s.database_user)
