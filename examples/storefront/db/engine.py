"""SQLAlchemy 2 engine and sessions for the storefront's PostgreSQL (psycopg 3), sized for a fleet.

Each ECS task runs one process with one engine, so one connection pool. The pool is small and
bounded, waits briefly for a free connection, checks a connection before use and replaces it
before the server side (or RDS Proxy) drops it for idleness. The server enforces two timeouts on
every session, so that a runaway query or a transaction left open by a bug cannot hold locks and a
connection slot forever:

* ``statement_timeout``: PostgreSQL cancels a statement that runs longer.
* ``idle_in_transaction_session_timeout``: PostgreSQL ends a session that sits inside an open
  transaction doing nothing for longer.

Both are sent as startup options (``options=-c name=value``) on a direct connection, so they cost
no round trip and need no ``SET`` (see *RDS Proxy* below for why that matters there).

Connection budget:
    Every task can open up to ``pool_size + max_overflow`` connections, and during a rolling
    deployment the old and the new tasks run side by side. The database must hold all of them
    plus the relay, migrations and an operator's ``psql``::

        peak tasks x (pool_size + max_overflow) + other clients  <=  max_connections - reserved

    On RDS for PostgreSQL the default ``max_connections`` is
    ``LEAST(DBInstanceClassMemory/9531392, 5000)``
    (https://docs.aws.amazon.com/prescriptive-guidance/latest/tuning-postgresql-parameters/max-connections.html,
    checked 2026-12-03), so it grows with the instance class, not with the service's scaling
    policy. :func:`connection_budget` and :func:`max_tasks` do the arithmetic; a service whose
    autoscaling maximum exceeds :func:`max_tasks` needs a smaller pool, a bigger instance or a
    pooler in between.

RDS Proxy:
    RDS Proxy pools connections on the server side: the application's connections go to the
    proxy, which lends a database connection per *transaction* (multiplexing) and returns it to
    its pool at the end of each transaction, so many idle client connections share few database
    connections (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-pinning.html,
    checked 2026-12-03). The trade-offs:

    * Session pinning. When a session changes state that later transactions may rely on, the
      proxy *pins* the client connection to one database connection until the client
      disconnects, and multiplexing is lost for it (same page). For PostgreSQL that includes
      ``SET`` commands, prepared statements, advisory locks (``pg_advisory_lock``),
      ``LISTEN``, temporary tables and sequence functions such as ``nextval``
      (Uncertain: this engine-specific list was read in the archived GitHub copy of the user
      guide, https://github.com/awsdocs/amazon-rds-user-guide/blob/main/doc_source/rds-proxy-managing.md,
      checked 2026-12-03; the live page says in general that changing session variables or
      configuration settings pins). psycopg 3
      prepares a statement on the server automatically once it has run ``prepare_threshold``
      times on a connection (https://www.psycopg.org/psycopg3/docs/advanced/prepare.html,
      checked 2026-12-03), so behind the proxy the engine turns that off.
      ``BIGSERIAL`` columns call ``nextval``: the outbox uses application-made UUIDs instead.
    * Startup options. Third-party reports say the proxy rejects the ``options`` startup
      parameter (``RDS Proxy currently doesn't support command-line options``; Uncertain: not
      found in the AWS docs). Behind the proxy, set the two timeouts on the database role
      instead (:func:`role_timeout_statements`: ``ALTER ROLE ... SET``), which applies them
      when the proxy opens its own connections, without pinning.
    * IAM authentication. Clients can authenticate to the proxy with IAM, and the proxy reaches
      the database with IAM database authentication or a Secrets Manager secret
      (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy.html, checked
      2026-12-03); the task role then replaces a long-lived password in the task. An IAM
      token is valid for 15 minutes and only authenticates the connection; it does not affect
      the session afterwards
      (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.html,
      checked 2026-12-03), so ``PoolSettings.iam_auth`` makes a fresh token for every new
      connection and none for a pooled one. IAM authentication needs TLS: put
      ``sslmode=require`` (or ``verify-full``) in the URL.
    * Failover. The proxy connects to the standby when the primary fails while preserving the
      application's connections (same page), instead of every task waiting for the endpoint's
      DNS to change. Treat a transaction interrupted by a failover as failed and retry it.
    * Waiting. The proxy closes client connections idle for ``IdleClientTimeout`` (default
      1,800 seconds) and, when all of its database connections are in use, queues a request
      for up to ``ConnectionBorrowTimeout`` before failing it
      (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-connections.html,
      checked 2026-12-03; Uncertain: the borrow timeout's default of 120 seconds was read in
      the archived copy of the same page, not the live one). Keep ``pool_recycle`` below the
      idle timeout and the request deadline well below the borrow timeout.

    Without the proxy the budget above is a hard limit; with it, the limit moves to the proxy's
    ``MaxConnectionsPercent`` of ``max_connections`` and the client side may open more
    connections than the database has, as long as sessions do not pin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from storefront import aws
from storefront.settings import Settings, get_settings


# --8<-- [start:pool-settings]
@dataclass(frozen=True)
class PoolSettings:
    """How one process's connection pool behaves.

    Attributes:
        pool_size: Connections kept open.
        max_overflow: Extra connections opened under load and closed when returned.
        pool_timeout_s: How long a request waits for a free connection before failing
            (``sqlalchemy.exc.TimeoutError``); short, so an exhausted pool sheds load quickly
            instead of queueing requests past their deadline.
        pool_recycle_s: Connections older than this are replaced at checkout; below RDS
            Proxy's 1,800-second idle client timeout.
        pool_pre_ping: Test each connection at checkout (one round trip) so a connection
            closed by a failover or a restart is replaced, not handed to the request.
        connect_timeout_s: libpq's ``connect_timeout``: give up connecting after this long.
        statement_timeout_ms: Server-side limit per statement.
        idle_in_transaction_timeout_ms: Server-side limit on an idle open transaction.
        behind_rds_proxy: True when ``database_url`` points at RDS Proxy: no startup options
            (set the timeouts on the role) and no server-side prepared statements.
        iam_auth: Authenticate with an IAM token made from the task role's credentials for
            each new connection, instead of a password.
        application_name: Shown in ``pg_stat_activity`` and in the database's logs.
    """

    pool_size: int = 5
    max_overflow: int = 5
    pool_timeout_s: float = 5.0
    pool_recycle_s: int = 1_500
    pool_pre_ping: bool = True
    connect_timeout_s: int = 5
    statement_timeout_ms: int = 5_000
    idle_in_transaction_timeout_ms: int = 10_000
    behind_rds_proxy: bool = False
    iam_auth: bool = False
    application_name: str | None = None

    @property
    def connections_per_task(self) -> int:
        """The most connections one process can hold."""
        return self.pool_size + self.max_overflow


# --8<-- [end:pool-settings]


# --8<-- [start:connection-budget]
def connection_budget(tasks: int, pool: PoolSettings, *, other_clients: int = 0) -> int:
    """Connections the database must accept when ``tasks`` processes use their whole pool.

    Args:
        tasks: Processes at the peak (autoscaling maximum plus a deployment's extra tasks).
        pool: Each process's pool.
        other_clients: Connections outside the service's pools (relay, migrations, operators).

    Returns:
        The peak number of connections.
    """
    return tasks * pool.connections_per_task + other_clients


def max_tasks(
    max_connections: int, pool: PoolSettings, *, reserved: int = 0, other_clients: int = 0
) -> int:
    """How many processes fit into the database's connection limit.

    Args:
        max_connections: The server's ``max_connections``.
        pool: Each process's pool.
        reserved: Slots not available to the application (``superuser_reserved_connections``
            and the provider's own).
        other_clients: Connections outside the service's pools.

    Returns:
        The largest task count whose :func:`connection_budget` fits (0 when none does).
    """
    available = max_connections - reserved - other_clients
    return max(0, math.floor(available / pool.connections_per_task))


# --8<-- [end:connection-budget]


def sqlalchemy_url(url: str, password: str | None = None) -> URL:
    """The SQLAlchemy URL for ``url``, always with the psycopg 3 driver.

    Args:
        url: A ``postgresql://`` or ``postgresql+psycopg://`` URL.
        password: A password to put into the URL (from a secret), if it has none.

    Returns:
        The URL, ready for :func:`sqlalchemy.create_engine`.

    Raises:
        ValueError: The URL is not a PostgreSQL URL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    parsed = parsed.set(drivername="postgresql+psycopg")
    if password is not None and parsed.password is None:
        parsed = parsed.set(password=password)
    return parsed


def connect_args(pool: PoolSettings) -> dict[str, Any]:
    """The psycopg connection arguments for ``pool``: timeouts and statement preparation."""
    arguments: dict[str, Any] = {"connect_timeout": pool.connect_timeout_s}
    if pool.application_name:
        arguments["application_name"] = pool.application_name
    if pool.behind_rds_proxy:
        # Prepared statements pin the session to one database connection.
        arguments["prepare_threshold"] = None
    else:
        arguments["options"] = (
            f"-c statement_timeout={pool.statement_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={pool.idle_in_transaction_timeout_ms}"
        )
    return arguments


def role_timeout_statements(role: str, pool: PoolSettings) -> list[str]:
    """``ALTER ROLE`` statements that give every session of ``role`` the pool's timeouts.

    Run them once (in a migration or by the platform team) when the service connects through
    RDS Proxy, where startup options are not available and ``SET`` would pin sessions.

    Args:
        role: The database role the service logs in as.
        pool: The timeouts to apply.

    Returns:
        The statements, with the role name quoted as an identifier.

    Raises:
        ValueError: ``role`` is empty or contains a NUL character.
    """
    if not role or "\x00" in role:
        raise ValueError("role must be a non-empty name without NUL characters")
    quoted = '"' + role.replace('"', '""') + '"'
    return [
        f"ALTER ROLE {quoted} SET statement_timeout = {int(pool.statement_timeout_ms)}",
        "ALTER ROLE "
        f"{quoted} SET idle_in_transaction_session_timeout = "
        f"{int(pool.idle_in_transaction_timeout_ms)}",
    ]


# --8<-- [start:make-engine]
def make_engine(
    url: str | None = None,
    pool: PoolSettings | None = None,
    *,
    settings: Settings | None = None,
    **engine_options: Any,
) -> Engine:
    """An engine with a bounded pool and server-enforced timeouts.

    Args:
        url: The database URL; defaults to ``Settings.database_url`` (with
            ``Settings.database_password`` when the URL has no password).
        pool: The pool's settings; defaults to :class:`PoolSettings`.
        settings: The settings to read; defaults to :func:`get_settings`.
        **engine_options: Further :func:`sqlalchemy.create_engine` arguments.

    Returns:
        The engine; dispose of it at shutdown (``engine.dispose()``).
    """
    settings = settings or get_settings()
    pool = pool or PoolSettings(application_name=settings.service_name)
    password = settings.database_password.get_secret_value() if settings.database_password else None
    database_url = sqlalchemy_url(url or settings.database_url, password)
    engine = create_engine(
        database_url,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout_s,
        pool_recycle=pool.pool_recycle_s,
        pool_pre_ping=pool.pool_pre_ping,
        connect_args=connect_args(pool),
        **engine_options,
    )
    if pool.iam_auth:
        _authenticate_with_iam(engine, database_url, settings.region)
    return engine


def _authenticate_with_iam(engine: Engine, url: URL, region: str) -> None:
    rds = aws.client("rds")

    @event.listens_for(engine, "do_connect")
    def _token(dialect: Any, record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> None:
        cparams["password"] = rds.generate_db_auth_token(
            DBHostname=url.host, Port=url.port or 5432, DBUsername=url.username, Region=region
        )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; use ``with factory.begin() as session:`` per unit of work.

    ``expire_on_commit=False`` keeps loaded attributes readable after the commit (a response
    is usually built from them), without a second query.
    """
    return sessionmaker(engine, expire_on_commit=False)


# --8<-- [end:make-engine]
