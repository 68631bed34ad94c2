"""How the storefront's migrations run: the logic of Alembic's ``env.py``.

Online mode connects without a pool (``NullPool``), takes a
transaction-level advisory lock so that two migrators never run at once (the second waits up to
``MIGRATOR_WAIT`` for the first, then finds nothing to do), and sets a ``lock_timeout`` so that a
migration waiting for a busy table fails instead of queueing every query behind its lock request
(PostgreSQL grants locks in order: an ``ALTER TABLE`` waiting for a long read blocks all later
reads and writes of that table).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

from storefront.db.engine import sqlalchemy_url
from storefront.db.models import Base
from storefront.settings import get_settings

# Any 64-bit number that no other advisory lock in the database uses.
MIGRATION_LOCK_KEY = 7_216_339_541
MIGRATOR_WAIT = "60s"  # how long a second migrator waits for the first
DDL_LOCK_TIMEOUT = "5s"  # how long a migration waits for a table lock

target_metadata = Base.metadata


def run(context: Any) -> None:
    """Run the migrations Alembic asked for, online or offline.

    Args:
        context: :mod:`alembic.context`, as ``env.py`` sees it.
    """
    url = sqlalchemy_url(context.config.attributes.get("url") or get_settings().database_url)
    if context.is_offline_mode():
        run_migrations_offline(context, url)
    else:
        run_migrations_online(context, url)


def run_migrations_offline(context: Any, url: URL) -> None:
    """Write the migration SQL to the output buffer instead of running it."""
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(context: Any, url: URL) -> None:
    """Run the migrations against the database, one migrator at a time."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
                compare_server_default=True,
            )
            with context.begin_transaction():
                # SET LOCAL lasts until the end of this transaction (the whole upgrade).
                connection.execute(text(f"SET LOCAL lock_timeout = '{MIGRATOR_WAIT}'"))
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.execute(text(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))
                context.run_migrations()
    finally:
        engine.dispose()
