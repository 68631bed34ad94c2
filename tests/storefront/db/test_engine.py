"""The engine enforces its pool bounds and the server-side timeouts on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, event, exc, text
from storefront.db.engine import (
    PoolSettings,
    connect_args,
    connection_budget,
    make_engine,
    make_session_factory,
    max_tasks,
    role_timeout_statements,
    sqlalchemy_url,
)
from storefront.db.models import Product
from storefront.settings import Settings

from tests.harness.servers import wait_until


def test_the_url_always_uses_the_psycopg_driver_and_takes_the_password_from_a_secret() -> None:
    url = sqlalchemy_url("postgresql://app@db:5432/orders", password="s%cret")  # noqa: S106 - a test value

    assert url.drivername == "postgresql+psycopg"
    assert url.password == "s%cret"  # noqa: S105 - a test value
    kept = sqlalchemy_url("postgresql+psycopg://app:own@db/orders", "other")
    assert kept.password == "own"  # noqa: S105 - a test value


def test_a_url_for_another_database_is_rejected_with_its_password_hidden() -> None:
    with pytest.raises(ValueError, match=r"not a PostgreSQL URL: mysql://app:\*\*\*@db/x"):
        sqlalchemy_url("mysql://app:secret@db/x")


def test_the_budget_counts_every_connection_a_fleet_can_open() -> None:
    pool = PoolSettings(pool_size=5, max_overflow=5)

    assert connection_budget(40, pool, other_clients=3) == 403
    assert max_tasks(403, pool, reserved=0, other_clients=3) == 40
    assert max_tasks(402, pool, other_clients=3) == 39
    assert max_tasks(10, pool, reserved=20) == 0


def test_settings_supply_the_url_the_password_and_the_application_name(postgres_dsn: str) -> None:
    settings = Settings(database_url=postgres_dsn, service_name="catalog")
    engine = make_engine(settings=settings)
    try:
        with engine.connect() as connection:
            name = connection.execute(text("SHOW application_name")).scalar_one()
    finally:
        engine.dispose()

    assert name == "catalog"
    assert engine.pool.size() == PoolSettings().pool_size


def test_every_session_gets_the_statement_and_idle_transaction_timeouts(postgres_dsn: str) -> None:
    pool = PoolSettings(statement_timeout_ms=1234, idle_in_transaction_timeout_ms=5678)
    engine = make_engine(postgres_dsn, pool)
    try:
        with engine.connect() as connection:
            statement = connection.execute(text("SHOW statement_timeout")).scalar_one()
            idle = connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one()
    finally:
        engine.dispose()

    assert (statement, idle) == ("1234ms", "5678ms")


def test_a_statement_running_past_the_timeout_is_cancelled_by_the_server(postgres_dsn: str) -> None:
    engine = make_engine(postgres_dsn, PoolSettings(statement_timeout_ms=100))
    try:
        with engine.connect() as connection, pytest.raises(exc.OperationalError) as raised:
            connection.execute(text("SELECT pg_sleep(5)"))
    finally:
        engine.dispose()

    assert isinstance(raised.value.orig, psycopg.errors.QueryCanceled)


def test_a_transaction_left_idle_is_ended_by_the_server(postgres_dsn: str) -> None:
    engine = make_engine(postgres_dsn, PoolSettings(idle_in_transaction_timeout_ms=200))
    try:
        connection = engine.connect()
        connection.begin()
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def backend_gone() -> bool:
            with psycopg.connect(postgres_dsn, autocommit=True) as probe:
                row = probe.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
                return row.fetchone() is None

        wait_until(backend_gone, what="the idle transaction's backend to end", timeout=10)
        with pytest.raises(exc.DBAPIError) as raised:
            connection.execute(text("SELECT 1"))
        connection.invalidate()
    finally:
        engine.dispose()

    assert isinstance(raised.value.orig, psycopg.errors.IdleInTransactionSessionTimeout)


def test_an_exhausted_pool_fails_fast_instead_of_queueing(postgres_dsn: str) -> None:
    pool = PoolSettings(pool_size=1, max_overflow=1, pool_timeout_s=0.2)
    engine = make_engine(postgres_dsn, pool)
    try:
        with engine.connect(), engine.connect(), pytest.raises(exc.TimeoutError):
            engine.connect()
    finally:
        engine.dispose()


def test_a_connection_the_server_killed_is_replaced_at_checkout(postgres_dsn: str) -> None:
    engine = make_engine(postgres_dsn, PoolSettings(pool_size=1, max_overflow=0))
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])

        with engine.connect() as connection:
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    finally:
        engine.dispose()

    assert second != first


def test_without_pre_ping_a_killed_connection_reaches_the_caller(postgres_dsn: str) -> None:
    """The counter-test: the previous test passes because of pool_pre_ping."""
    engine = make_engine(
        postgres_dsn, PoolSettings(pool_size=1, max_overflow=0, pool_pre_ping=False)
    )
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

        with engine.connect() as connection, pytest.raises(exc.OperationalError):
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_behind_rds_proxy_no_startup_options_are_sent_and_nothing_is_prepared(
    postgres_dsn: str,
) -> None:
    pool = PoolSettings(behind_rds_proxy=True)
    arguments = connect_args(pool)
    engine = make_engine(postgres_dsn, pool)
    try:
        with engine.connect() as connection:
            for _ in range(10):  # past psycopg's default prepare_threshold of 5
                connection.execute(text("SELECT 1"))
            prepared = connection.execute(
                text("SELECT count(*) FROM pg_prepared_statements")
            ).scalar_one()
            timeout = connection.execute(text("SHOW statement_timeout")).scalar_one()
    finally:
        engine.dispose()

    assert "options" not in arguments
    assert prepared == 0
    assert timeout == "0"  # the server default: set it on the role instead


def test_a_direct_connection_prepares_statements_it_runs_often(postgres_dsn: str) -> None:
    """The counter-test: the previous test's zero is the setting's doing."""
    engine = make_engine(postgres_dsn, PoolSettings())
    try:
        with engine.connect() as connection:
            for _ in range(10):
                connection.execute(text("SELECT 1"))
            prepared = connection.execute(
                text("SELECT count(*) FROM pg_prepared_statements")
            ).scalar_one()
    finally:
        engine.dispose()

    assert prepared >= 1


def test_role_timeouts_are_stored_on_the_role_even_with_an_awkward_name(postgres_dsn: str) -> None:
    role = 'svc "catalog"'
    pool = PoolSettings(statement_timeout_ms=2500, idle_in_transaction_timeout_ms=7500)
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute('CREATE ROLE "svc ""catalog""" LOGIN')
        for statement in role_timeout_statements(role, pool):
            admin.execute(statement)
        row = admin.execute(
            "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = %s",
            [role],
        ).fetchone()
        admin.execute('DROP ROLE "svc ""catalog"""')

    assert row is not None
    assert sorted(row[0]) == ["idle_in_transaction_session_timeout=7500", "statement_timeout=2500"]


def test_a_role_name_that_cannot_be_quoted_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        role_timeout_statements("", PoolSettings())


def test_sessions_keep_their_attributes_readable_after_commit(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        product = Product(sku="SKU-1", name="Mug", price_minor=1299, stock=3)
        session.add(product)

    assert product.name == "Mug"  # no DetachedInstanceError: expire_on_commit=False


def test_iam_auth_signs_a_fresh_token_for_each_new_connection(
    postgres_dsn: str, aws_environment: str
) -> None:
    engine = make_engine(postgres_dsn, PoolSettings(pool_size=1, max_overflow=1, iam_auth=True))
    tokens: list[str] = []

    @event.listens_for(engine, "do_connect")
    def record_token(dialect: object, record: object, cargs: object, cparams: dict) -> None:
        tokens.append(cparams["password"])

    try:
        with engine.connect() as first, engine.connect() as second:
            first.execute(text("SELECT 1"))
            second.execute(text("SELECT 1"))
        with engine.connect() as pooled:  # reuses a pooled connection: no new token
            pooled.execute(text("SELECT 1"))
    finally:
        engine.dispose()

    assert len(tokens) == 2
    assert all("X-Amz-Signature=" in token and "Action=connect" in token for token in tokens)
    assert all("DBUser=postgres" in token for token in tokens)
