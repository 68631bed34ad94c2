"""The apps the benchmarks serve with uvicorn: the real services, wired from environment variables.

uvicorn imports these factories in its own process (``uvicorn --factory benchmarks.apps:...``),
so everything they need comes from the environment the benchmark sets:

``BENCH_DATABASE_URL``, ``BENCH_REDIS_URL``
    The harness's PostgreSQL database and redis-server.
``BENCH_CATALOG_CACHE``
    ``redis`` for the real :class:`storefront.cache.CatalogCache`, ``none`` for a cache that
    always misses, so that every read goes straight to PostgreSQL.

The services are built exactly as :mod:`tests.scenarios.shop` builds them, minus the
OpenTelemetry instrumentation (without a collector it would keep every span in memory). The
only addition is the benchmark's own trivial endpoint, ``GET /bench/floor``, and a
``GET /bench/cache-stats`` that reports the catalog's hit and miss counters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from storefront.cache import CatalogCache, make_redis
from storefront.db.engine import PoolSettings, make_engine, make_session_factory
from storefront.ratelimit import RateLimiter
from storefront.services import catalog, orders

T = TypeVar("T")

# The limiter runs its real Lua script on every order; the limit is set out of reach because
# the load comes from one address and the benchmark measures the path, not the limit.
UNREACHABLE_LIMIT = 1_000_000_000


# --8<-- [start:always-miss]
class AlwaysMiss:
    """A stand-in for :class:`storefront.cache.CatalogCache` that never caches: every read loads."""

    def get_or_load(self, name: str, loader: Callable[[], T | None]) -> T | None:
        """Load from the database, every time."""
        return loader()

    def invalidate_on_commit(self, session: Any, *names: str) -> None:
        """Nothing is cached, so nothing goes stale."""


# --8<-- [end:always-miss]


def _add_bench_routes(app: FastAPI) -> None:
    # --8<-- [start:floor]
    @app.get("/bench/floor")
    def floor() -> dict[str, bool]:
        # A sync route like the catalog's: the same threadpool hop, without cache or database.
        return {"ok": True}

    # --8<-- [end:floor]

    @app.get("/bench/cache-stats")
    def cache_stats() -> dict[str, int]:
        stats = getattr(app.state, "cache_stats", None)
        return {"hits": stats.hits, "misses": stats.misses} if stats else {}


def catalog_app() -> FastAPI:
    """The catalog service on the benchmark's PostgreSQL and Redis, plus the floor endpoint."""
    database_url = os.environ["BENCH_DATABASE_URL"]
    engine = make_engine(database_url, PoolSettings(application_name="bench-catalog"))
    mode = os.environ.get("BENCH_CATALOG_CACHE", "redis")
    if mode == "redis":
        cache: Any = CatalogCache(make_redis(os.environ["BENCH_REDIS_URL"]))
    elif mode == "none":
        cache = AlwaysMiss()
    else:
        raise ValueError(f"BENCH_CATALOG_CACHE must be 'redis' or 'none', not {mode!r}")
    app = catalog.create_app(make_session_factory(engine), cache)
    _add_bench_routes(app)
    return app


def orders_app() -> FastAPI:
    """The orders service on the benchmark's PostgreSQL and Redis (Cognito and EventBridge on moto).

    The ``STOREFRONT_*`` and ``AWS_*`` variables come from the bootstrap on moto, as in the
    scenario tests.
    """
    engine = make_engine(
        os.environ["BENCH_DATABASE_URL"], PoolSettings(application_name="bench-orders")
    )
    limiter = RateLimiter(
        make_redis(os.environ["BENCH_REDIS_URL"]),
        limit=UNREACHABLE_LIMIT,
        window_s=60,
        name="orders",
    )
    app = orders.create_app(make_session_factory(engine), limiter)
    _add_bench_routes(app)
    return app
