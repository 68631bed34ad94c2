"""The real servers the benchmarks run against, from the test harness.

:func:`databases` starts one throwaway PostgreSQL and one redis-server
(:mod:`tests.harness.servers`) for the whole run; :meth:`Databases.fresh_database` makes a
migrated database with the benchmark's products in it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from storefront.db import migrations
from storefront.db.engine import make_engine, make_session_factory
from storefront.db.models import Product

from tests.harness.servers import PostgresServer, RedisServer, run_postgres, run_redis

PRODUCT_PREFIX = "BENCH-"
# The load generator expands {n} to 00000, 00001...: the SKUs product_sku makes.
PRODUCT_PATH = "/catalog/products/BENCH-{n}"


def product_sku(number: int) -> str:
    """The SKU of benchmark product ``number`` (what the load generator's ``{n}`` expands to)."""
    return f"{PRODUCT_PREFIX}{number:05d}"


@dataclass(frozen=True)
class Databases:
    """The running PostgreSQL and Redis servers.

    Attributes:
        postgres: The PostgreSQL server.
        redis: The redis-server.
        redis_version: ``redis_version`` from ``INFO server``.
    """

    postgres: PostgresServer
    redis: RedisServer
    redis_version: str

    def fresh_database(self, name: str, products: int) -> str:
        """Create and migrate database ``name`` with ``products`` products; return its URL."""
        with psycopg.connect(self.postgres.dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = self.postgres.dsn(name)
        migrations.upgrade(url)
        engine = make_engine(url)
        try:
            with make_session_factory(engine).begin() as session:
                session.add_all(
                    Product(
                        sku=product_sku(n),
                        name=f"Benchmark product {n}",
                        price_minor=100 + n,
                        stock=1_000_000,
                    )
                    for n in range(products)
                )
        finally:
            engine.dispose()
        return url

    def flush_redis(self) -> None:
        """Delete every key, so that each benchmark starts with a cold cache."""
        with redis.Redis.from_url(self.redis.url) as client:
            client.flushall()


@contextlib.contextmanager
def databases() -> Iterator[Databases]:
    """PostgreSQL and Redis for the run, stopped when the context exits."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-redis-") as redis_dir,
        run_postgres() as postgres,
        run_redis(Path(redis_dir)) as redis_server,
    ):
        with redis.Redis.from_url(redis_server.url) as client:
            info = client.info("server")
        yield Databases(postgres=postgres, redis=redis_server, redis_version=info["redis_version"])
