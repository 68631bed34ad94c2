"""Benchmark the catalog read path: cache-aside on Redis vs straight to PostgreSQL vs the floor.

One run measures four things in turn, ``rounds`` times, each with the same load (closed loop,
``concurrency`` keep-alive connections on loopback, warm-up, then a fixed window; the rounds'
samples are pooled per mode):

1. the client ceiling: the load generator against its own canned-response server;
2. the floor: the catalog server's trivial endpoint, ``GET /bench/floor`` (same uvicorn, same
   FastAPI middleware and threadpool hop, no cache, no database);
3. cached: ``GET /catalog/products/{sku}`` over ``products`` products whose cache entries were
   loaded before the run, so every measured read is a Redis hit;
4. uncached: the same route on a second server whose cache always misses, so every read checks
   out a pooled connection and loads the row from PostgreSQL.

Each server is one uvicorn process with one worker; its peak RSS is read after all rounds. Last,
a short run under cProfile (:mod:`benchmarks.profile_catalog`) records where a cache hit's CPU
time goes, per package.
"""

from __future__ import annotations

import http.client
from typing import Any

from benchmarks.infrastructure import PRODUCT_PATH, Databases
from benchmarks.profile_catalog import profile
from benchmarks.results import CatalogRead, LoadParameters, Target
from benchmarks.serving import (
    Server,
    canned_server,
    measure,
    peak_rss_mb,
    summarise,
    uvicorn_server,
)

FACTORY = "benchmarks.apps:catalog_app"
RSS_LIMIT_MB = 200.0


def parameters(*, quick: bool) -> LoadParameters:
    """The load: a smoke-test second with ``quick``, else four rounds of four seconds per mode."""
    if quick:
        return LoadParameters(duration_s=1.0, warmup_s=0.3, concurrency=4, products=20)
    return LoadParameters(duration_s=4.0, warmup_s=1.0, concurrency=16, products=1_000, rounds=4)


def _warm(server: Server, products: int) -> None:
    """Read every product once, so that the measured reads are cache hits."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for n in range(products):
            connection.request("GET", PRODUCT_PATH.replace("{n}", f"{n:05d}"))
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"warming the cache: product {n} answered {answer.status}")
    finally:
        connection.close()


def _counters(server: Server) -> dict[str, int]:
    stats: Any = server.get_json("/bench/cache-stats")
    return {"hits": int(stats["hits"]), "misses": int(stats["misses"])}


def run(databases: Databases, *, quick: bool) -> CatalogRead:
    """Measure the modes in turn, ``rounds`` times, and evaluate the targets.

    Both catalog servers run side by side and the modes take turns, so that a busy moment of
    the machine lands on every mode rather than on one.
    """
    load_parameters = parameters(quick=quick)
    database_url = databases.fresh_database("bench_catalog", load_parameters.products)
    databases.flush_redis()
    environment = {"BENCH_DATABASE_URL": database_url, "BENCH_REDIS_URL": databases.redis.url}
    rounds: dict[str, list[dict[str, Any]]] = {
        "ceiling": [],
        "floor": [],
        "cached": [],
        "uncached": [],
    }

    with (
        canned_server() as canned,
        uvicorn_server(FACTORY, {**environment, "BENCH_CATALOG_CACHE": "redis"}) as cached_server,
        uvicorn_server(FACTORY, {**environment, "BENCH_CATALOG_CACHE": "none"}) as uncached_server,
    ):
        _warm(cached_server, load_parameters.products)
        before = _counters(cached_server)
        for _ in range(load_parameters.rounds):
            rounds["ceiling"].append(measure(canned, load_parameters, path="/ceiling"))
            rounds["floor"].append(measure(cached_server, load_parameters, path="/bench/floor"))
            rounds["cached"].append(measure(cached_server, load_parameters, path=PRODUCT_PATH))
            rounds["uncached"].append(measure(uncached_server, load_parameters, path=PRODUCT_PATH))
        after = _counters(cached_server)
        cached_rss, uncached_rss = peak_rss_mb(cached_server.pid), peak_rss_mb(uncached_server.pid)
    ceiling = summarise(rounds["ceiling"], "GET /ceiling")
    floor = summarise(rounds["floor"], "GET /bench/floor", cached_rss)
    cached = summarise(rounds["cached"], f"GET {PRODUCT_PATH}", cached_rss)
    uncached = summarise(rounds["uncached"], f"GET {PRODUCT_PATH}", uncached_rss)

    cpu_shares, _stats = profile(databases, cache="redis", seconds=load_parameters.duration_s)
    hits = after["hits"] - before["hits"]
    reads = hits + after["misses"] - before["misses"]
    return CatalogRead(
        parameters=load_parameters,
        client_ceiling=ceiling,
        floor=floor,
        cached=cached,
        uncached=uncached,
        cache_hit_ratio=round(hits / reads, 4) if reads else 0.0,
        cache_hit_profile=cpu_shares,
        targets=targets(floor=floor, cached=cached, uncached=uncached),
    )


def targets(*, floor: Any, cached: Any, uncached: Any) -> list[Target]:
    """The brief's three read-path targets, evaluated."""
    return [
        Target.evaluate(
            "Cached throughput",
            "cached rps at least 5 x the PostgreSQL path's",
            cached.rps / uncached.rps,
            5.0,
            "x",
            higher=True,
        ),
        Target.evaluate(
            "Cache-hit tail latency",
            "cache-hit p99 no more than 3 x the trivial endpoint's p99",
            cached.latency_ms.p99 / floor.latency_ms.p99,
            3.0,
            "x",
            higher=False,
        ),
        Target.evaluate(
            "Catalog server memory",
            "peak RSS of each catalog server process under load below 200 MB",
            max(cached.server_peak_rss_mb or 0, uncached.server_peak_rss_mb or 0),
            RSS_LIMIT_MB,
            "MiB",
            higher=False,
        ),
    ]
