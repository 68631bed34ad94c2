"""Alembic's entry point; the logic is in :mod:`storefront.db.migrations.environment`."""

from alembic import context

from storefront.db.migrations.environment import run

run(context)
