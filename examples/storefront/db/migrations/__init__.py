"""Alembic migrations for the storefront's tables, run from code (no ``alembic.ini``).

The scripts live inside the package (``versions/``), so a task image that contains the package
can migrate its database: the deployment runs :func:`upgrade` as a one-off task before the new
service version starts (never from every task at startup: with many tasks that is a stampede of
migrators; ``env.py`` serialises them with an advisory lock anyway).

Migrations connect directly to the database, not through RDS Proxy: DDL takes long locks and
``env.py`` uses ``SET LOCAL`` and an advisory lock, which would pin a proxied session.

Alembic keeps its running environment in module-level state: run one migration per process
(two threads of one process must not migrate at the same time).

Run them with :func:`upgrade` (a deployment step, before the new tasks start) and :func:`downgrade`;
``tests/storefront/db/test_migrations.py`` runs both against a real PostgreSQL server.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from storefront.db.engine import sqlalchemy_url

SCRIPT_LOCATION = Path(__file__).resolve().parent


# --8<-- [start:alembic-config]
def config(url: str | None = None, *, output: io.StringIO | None = None) -> Config:
    """An Alembic configuration for the storefront's migrations, without an ini file.

    Args:
        url: The database URL; None makes ``env.py`` read ``Settings.database_url``.
        output: Where offline (``--sql``) mode writes the SQL.

    Returns:
        The configuration, for :mod:`alembic.command` functions.
    """
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    # Passed as an attribute, not as the ``sqlalchemy.url`` option: ini interpolation would
    # mangle a password containing ``%``.
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (the newest by default)."""
    command.upgrade(config(url), revision)


def downgrade(url: str | None, revision: str) -> None:
    """Migrate the database down to ``revision`` (``"base"`` removes every table)."""
    command.downgrade(config(url), revision)


# --8<-- [end:alembic-config]


def upgrade_sql(from_revision: str = "base", to_revision: str = "head") -> str:
    """The SQL that migrates from one revision to another, for review; nothing is run.

    Args:
        from_revision: The revision the database is at.
        to_revision: The revision to reach.

    Returns:
        The SQL script Alembic's offline mode writes.
    """
    output = io.StringIO()
    command.upgrade(
        config("postgresql+psycopg://offline/storefront", output=output),
        f"{from_revision}:{to_revision}",
        sql=True,
    )
    return output.getvalue()


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
