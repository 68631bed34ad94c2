"""Fixtures for the database tests: a migrated database and an engine on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine


@pytest.fixture
def database_url(postgres_dsn: str) -> str:
    """A fresh database migrated to the newest revision."""
    migrations.upgrade(postgres_dsn)
    return postgres_dsn


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine with the default pool on the migrated database."""
    engine = make_engine(database_url, PoolSettings(application_name="tests"))
    yield engine
    engine.dispose()
