"""``scripts/benchmark.sh --quick`` runs every benchmark end to end and writes valid results.

No timing is asserted (timings belong to the benchmark, not to the tests): the test checks that
every mode ran, served only successful answers, and that the file passes the schema the docs
build renders from.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmarks.results import REPO_ROOT, load_results


def test_the_quick_benchmark_writes_every_section_with_zero_errors(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.json"
    result = subprocess.run(
        ["scripts/benchmark.sh", "--quick", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = load_results(output)
    assert results.quick

    read = results.catalog_read
    assert read is not None
    runs = {
        "client ceiling": read.client_ceiling,
        "floor": read.floor,
        "cached": read.cached,
        "uncached": read.uncached,
    }
    for mode, run in runs.items():
        assert run.requests > 0, mode
        assert run.errors == 0, mode
    assert read.floor.endpoint == "GET /bench/floor"
    assert read.cached.endpoint == read.uncached.endpoint == "GET /catalog/products/{sku}"
    assert read.cache_hit_ratio == 1.0, "every measured cached read must be a Redis hit"
    assert {p.package for p in read.cache_hit_profile} >= {"h11", "redis", "storefront"}
    assert read.cached.server_peak_rss_mb
    assert [t.name for t in read.targets] == [
        "Cached throughput",
        "Cache-hit tail latency",
        "Catalog server memory",
    ]

    write = results.write_path
    assert write is not None
    assert write.orders.requests > 0
    assert write.orders.errors == 0
    assert write.relay.items >= write.orders.requests, "every measured order has its event"
    assert write.sqs_single.items == write.sqs_batch.items > 0

    docs = results.docs_build
    assert docs is not None
    assert len(docs.warm_runs_s) == len(docs.bare_runs_s) == 1
    assert [t.name for t in docs.targets] == ["Warm docs build"]
    assert "wrote" in result.stderr
