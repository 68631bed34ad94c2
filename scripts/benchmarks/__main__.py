"""Run the benchmarks, write the results as JSON: ``python -m benchmarks [--quick] [which...]``.

``which`` picks benchmarks by name (``catalog-read``, ``write-path``, ``docs-build``; all by
default). Sections of the existing output file that this run did not measure are kept, so that
one benchmark can be rerun alone. ``--quick`` runs each for a second or two: a smoke test whose
numbers mean nothing (the file says ``"quick": true``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import catalog_read, docs_build, write_path
from benchmarks.infrastructure import databases
from benchmarks.results import (
    RESULTS_PATH,
    Results,
    ResultsError,
    git_commit,
    load_results,
    machine,
    merge,
    versions,
)

BENCHMARKS = ("catalog-read", "write-path", "docs-build")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print a summary and write the results file."""
    parser = argparse.ArgumentParser(prog="benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("which", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="a second or two each (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="the JSON to write")
    args = parser.parse_args(argv)
    chosen = args.which or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown} (known: {', '.join(BENCHMARKS)})")

    sections: dict[str, Any] = {}
    server_versions: dict[str, str] = {}
    needs_servers = {"catalog-read", "write-path"} & set(chosen)
    with databases() if needs_servers else contextlib.nullcontext() as servers:
        if servers is not None:
            server_versions = {
                "postgres": servers.postgres.version,
                "redis_server": servers.redis_version,
            }
        if "catalog-read" in chosen:
            with _step("catalog read path"):
                sections["catalog_read"] = catalog_read.run(servers, quick=args.quick)
        if "write-path" in chosen:
            with _step("write path"):
                sections["write_path"] = write_path.run(servers, quick=args.quick)
    if "docs-build" in chosen:
        with _step("docs build"):
            sections["docs_build"] = docs_build.run(quick=args.quick)

    previous = None
    if args.output.exists():
        with contextlib.suppress(ResultsError):
            previous = load_results(args.output)
    if previous is not None and previous.quick != args.quick:
        previous = None  # never mix smoke-test numbers with real ones
    if previous is not None and previous.versions.postgres and not server_versions:
        server_versions = {
            "postgres": previous.versions.postgres,
            "redis_server": previous.versions.redis_server or "",
        }
    results = Results(
        date=dt.datetime.now(dt.UTC).replace(microsecond=0),
        commit=git_commit(),
        quick=args.quick,
        machine=machine(),
        versions=versions(**server_versions),
        **merge(previous, **sections),
        **sections,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(results.to_json(), encoding="utf-8")
    print(summary(results), file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    print(f"==> {name}", file=sys.stderr)
    start = time.perf_counter()
    yield
    print(f"    {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)


def summary(results: Results) -> str:
    """A few lines for the terminal: the headline numbers and the verdicts."""
    lines = []
    if read := results.catalog_read:
        for name in ("client_ceiling", "floor", "cached", "uncached"):
            run = getattr(read, name)
            lines.append(
                f"  {name:15} {run.rps:9.1f} rps  p50 {run.latency_ms.p50:7.2f} ms  "
                f"p99 {run.latency_ms.p99:7.2f} ms  errors {run.errors}"
            )
    if write := results.write_path:
        lines.append(
            f"  orders          {write.orders.rps:9.1f} orders/s  errors {write.orders.errors}"
        )
        lines.append(f"  relay           {write.relay.per_second:9.1f} events/s")
        lines.append(f"  sqs single      {write.sqs_single.per_second:9.1f} messages/s")
        lines.append(f"  sqs batch of 10 {write.sqs_batch.per_second:9.1f} messages/s")
    if docs := results.docs_build:
        lines.append(
            f"  docs cold {docs.cold_s:.2f} s, warm {docs.warm_s:.2f} s, bare {docs.bare_s:.2f} s"
        )
    for section in (results.catalog_read, results.docs_build):
        for target in section.targets if section else []:
            verdict = "met" if target.met else "MISSED"
            lines.append(f"  target {target.name}: {target.measured:g} {target.unit} ({verdict})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
