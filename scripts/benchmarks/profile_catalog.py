"""Profile the catalog server under load: where does a cached (or uncached) read spend its time?

    .venv/bin/python -m benchmarks.profile_catalog            # cache hits
    .venv/bin/python -m benchmarks.profile_catalog --cache none

Serves the same app as :mod:`benchmarks.catalog_read` with uvicorn in this process, with cProfile
on the event loop's thread and on every threadpool thread (``threading.setprofile`` starts one
profiler per new thread), each timing its own thread's CPU time (``time.thread_time``: waiting
for a socket or a lock costs nothing), while :mod:`benchmarks.loadgen` loads it from its own
process. Prints the share of CPU time per package (h11, starlette, fastapi, anyio, redis,
sqlalchemy, psycopg, storefront...) and the functions with the most time of their own.
cProfile slows every call, so read the shares, not the rates.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import os
import pstats
import sys
import threading
import time
from collections import defaultdict

import uvicorn

from benchmarks.apps import catalog_app
from benchmarks.infrastructure import PRODUCT_PATH, Databases, databases
from benchmarks.results import LoadParameters, PackageShare
from benchmarks.serving import Server, load
from tests.harness.servers import free_port, wait_until

PACKAGES = (
    "h11", "uvicorn", "starlette", "fastapi", "pydantic", "anyio", "asyncio", "redis",
    "sqlalchemy", "psycopg", "storefront", "json", "threading", "socket", "selectors",
    "pydantic_core", "contextlib", "typing", "queue", "concurrent", "enum", "functools",
)  # fmt: skip


def package_of(filename: str) -> str:
    """The package a profiled function's file belongs to (``other`` if none listed)."""
    parts = filename.replace("\\", "/").split("/")
    for package in PACKAGES:
        if package in parts or f"{package}.py" in parts:
            return package
    return "built-in" if filename.startswith("~") else "other"


def shares(stats: pstats.Stats, *, smallest: float = 0.005) -> list[PackageShare]:
    """CPU time of the functions themselves (tottime) per package, largest first.

    Packages below ``smallest`` are added to ``other``.
    """
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        totals[package_of(filename)] += row[2]
    whole = sum(totals.values()) or 1.0
    result: dict[str, float] = defaultdict(float)
    for package, seconds in totals.items():
        result[package if seconds / whole >= smallest else "other"] += seconds / whole
    ordered = sorted(result.items(), key=lambda item: (item[0] == "other", -item[1]))
    return [PackageShare(package=p, share=round(share, 4)) for p, share in ordered]


def profile(
    servers: Databases, *, cache: str, seconds: float, products: int = 20
) -> tuple[list[PackageShare], pstats.Stats]:
    """Serve the catalog in this process under cProfile while the load generator loads it.

    Args:
        servers: The PostgreSQL and Redis to wire the app to.
        cache: ``redis`` (cache hits: every product is read once first, and those few loads
            are profiled too) or ``none``.
        seconds: How long to load it.
        products: Distinct products requested (few, so that the loads that fill the cache are
            a negligible share of the profile).

    Returns:
        The CPU share per package (largest first) and the merged statistics of every thread.
    """
    parameters = LoadParameters(duration_s=seconds, warmup_s=0.5, concurrency=16, products=products)
    os.environ["BENCH_DATABASE_URL"] = servers.fresh_database("bench_profile", products)
    os.environ["BENCH_REDIS_URL"] = servers.redis.url
    os.environ["BENCH_CATALOG_CACHE"] = cache
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            catalog_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread_profiles: list[cProfile.Profile] = []

    def drive() -> None:
        try:
            wait_until(lambda: server.started, what="the profiled server")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for n in range(parameters.products):
                connection.request("GET", PRODUCT_PATH.replace("{n}", f"{n:05d}"))
                connection.getresponse().read()
            connection.close()
            load(Server(port, os.getpid()), parameters, path=PRODUCT_PATH, measure_rss=False)
        finally:
            server.should_exit = True

    def profile_new_thread(*_: object) -> None:
        sys.setprofile(None)
        thread_profile = cProfile.Profile(time.thread_time)
        thread_profiles.append(thread_profile)
        thread_profile.enable()

    loop_profile = cProfile.Profile(time.thread_time)
    driver = threading.Thread(target=drive, name="profile-driver")
    driver.start()  # before setprofile: the driver itself is not profiled
    threading.setprofile(profile_new_thread)
    try:
        loop_profile.enable()
        server.run()
        loop_profile.disable()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        driver.join()
    stats = pstats.Stats(loop_profile, stream=sys.stdout)
    for thread_profile in thread_profiles:
        stats.add(thread_profile)
    return shares(stats), stats


def main(argv: list[str] | None = None) -> None:
    """Serve, load, profile, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", choices=["redis", "none"], default="redis")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    with databases() as servers:
        package_shares, stats = profile(servers, cache=args.cache, seconds=args.seconds)
    print(f"CPU time per package (cache: {args.cache}):")
    for share in package_shares:
        print(f"  {share.package:12} {share.share:6.1%}")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
