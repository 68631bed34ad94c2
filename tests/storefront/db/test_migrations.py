"""The migrations build exactly the models' schema, and run down and up again cleanly."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool
from storefront.db import migrations
from storefront.db.engine import sqlalchemy_url
from storefront.db.models import Base

from tests.harness import servers
from tests.harness.servers import wait_until

APP_TABLES = {"products", "orders", "order_lines", "outbox_events", "processed_messages"}


def tables(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def schema_differences(url: str) -> list[object]:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_on_an_empty_database_creates_every_table(postgres_dsn: str) -> None:
    migrations.upgrade(postgres_dsn)

    assert tables(postgres_dsn) == APP_TABLES | {"alembic_version"}
    assert (
        migrations.current_revision(postgres_dsn)
        == ScriptDirectory.from_config(migrations.config()).get_current_head()
    )


def test_downgrade_to_base_leaves_only_an_empty_version_table_and_upgrade_works_again(
    postgres_dsn: str,
) -> None:
    migrations.upgrade(postgres_dsn)

    migrations.downgrade(postgres_dsn, "base")
    after_downgrade = tables(postgres_dsn)
    revision_at_base = migrations.current_revision(postgres_dsn)
    migrations.upgrade(postgres_dsn)

    assert after_downgrade == {"alembic_version"}
    assert revision_at_base is None
    assert tables(postgres_dsn) == APP_TABLES | {"alembic_version"}
    assert schema_differences(postgres_dsn) == []


def test_each_revision_runs_down_and_up_on_its_own(postgres_dsn: str) -> None:
    migrations.upgrade(postgres_dsn, "0001")
    assert tables(postgres_dsn) == {"products", "orders", "order_lines", "alembic_version"}

    migrations.upgrade(postgres_dsn, "0002")
    migrations.downgrade(postgres_dsn, "0001")

    assert tables(postgres_dsn) == {"products", "orders", "order_lines", "alembic_version"}
    assert migrations.current_revision(postgres_dsn) == "0001"


def test_autogenerate_finds_no_difference_between_the_models_and_the_migrations(
    postgres_dsn: str,
) -> None:
    migrations.upgrade(postgres_dsn)

    assert schema_differences(postgres_dsn) == []


def schema_definition(url: str) -> dict[str, set[str]]:
    """Every index and constraint as PostgreSQL prints it back: what autogenerate cannot see.

    Alembic's comparison ignores CHECK constraints and partial-index predicates.
    """
    with psycopg.connect(url) as connection:
        indexes = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        ).fetchall()
        constraints = connection.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            " AND conrelid::regclass::text <> 'alembic_version'"
        ).fetchall()
        columns = connection.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name <> 'alembic_version'"
        ).fetchall()
    return {
        "indexes": {row[0] for row in indexes},
        "constraints": {" ".join(row) for row in constraints},
        "columns": {repr(row) for row in columns},
    }


def test_the_migrations_build_the_same_indexes_and_constraints_as_the_models(
    postgres_server: servers.PostgresServer, postgres_dsn: str
) -> None:
    migrations.upgrade(postgres_dsn)
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        from_models = create_engine(sqlalchemy_url(postgres_server.dsn(name)), poolclass=NullPool)
        Base.metadata.create_all(from_models)
        from_models.dispose()
        expected = schema_definition(postgres_server.dsn(name))
    finally:
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    actual = schema_definition(postgres_dsn)

    assert actual == expected
    assert any("WHERE (published_at IS NULL)" in index for index in actual["indexes"])


def test_autogenerate_notices_a_model_the_migrations_lack(postgres_dsn: str) -> None:
    """The counter-test: an empty diff above means the comparison really looks."""
    migrations.upgrade(postgres_dsn, "0001")

    differences = schema_differences(postgres_dsn)

    added = {diff[1].name for diff in differences if diff[0] == "add_table"}
    assert added == {"outbox_events", "processed_messages"}


def test_the_url_comes_from_settings_when_none_is_given(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storefront.settings import get_settings

    monkeypatch.setenv("STOREFRONT_DATABASE_URL", postgres_dsn)
    get_settings.cache_clear()
    try:
        migrations.upgrade()
    finally:
        get_settings.cache_clear()

    assert tables(postgres_dsn) >= APP_TABLES


def test_three_migrator_processes_at_once_do_not_collide(postgres_dsn: str) -> None:
    code = "import sys; from storefront.db import migrations; migrations.upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, postgres_dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], results
    assert tables(postgres_dsn) == APP_TABLES | {"alembic_version"}
    assert migrations.current_revision(postgres_dsn) == "0002"


def test_a_migration_waiting_for_a_busy_table_gives_up_instead_of_blocking(
    postgres_dsn: str,
) -> None:
    migrations.upgrade(postgres_dsn, "0001")
    errors: list[BaseException] = []

    def migrate_down() -> None:
        try:
            migrations.downgrade(postgres_dsn, "base")
        except Exception as error:
            errors.append(error)

    with psycopg.connect(postgres_dsn) as holder:
        holder.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        migrator = threading.Thread(target=migrate_down)
        migrator.start()

        def waiting_for_products() -> bool:
            row = holder.execute(
                "SELECT count(*) FROM pg_locks"
                " WHERE relation = 'products'::regclass AND NOT granted"
            ).fetchone()
            return row is not None and row[0] > 0

        wait_until(waiting_for_products, what="the migration to wait for the table lock")
        # Gives up after the 5 s DDL lock timeout, well before the 60 s migrator wait.
        wait_until(lambda: not waiting_for_products(), what="the migration to give up", timeout=30)
        migrator.join(timeout=30)
        holder.rollback()

    assert len(errors) == 1
    assert "lock timeout" in str(errors[0])
    assert migrations.current_revision(postgres_dsn) == "0001"


def test_the_sql_for_review_creates_the_tables_without_touching_a_database() -> None:
    script = migrations.upgrade_sql()

    assert "CREATE TABLE products" in script
    assert "CREATE TABLE outbox_events" in script
    assert "CHECK (stock >= 0)" in script
    assert "pg_advisory_xact_lock" not in script
