"""The benchmark results as data: a typed schema for ``docs/data/benchmarks.json`` and its loader.

Every run writes one JSON document: the machine it ran on, the date, the git commit, the versions
of everything measured, and per benchmark its parameters, its numbers and its targets with a
verdict. The docs build renders the Performance page from the file
(:mod:`sitebuild.charts`), so bad data must never reach a page: :func:`load_results` raises
:class:`ResultsError` naming the file and the field, for example::

    docs/data/benchmarks.json: catalog_read.cached.latency_ms.p99: Field required

Examples:
    >>> summary = LatencySummary.from_samples([0.001, 0.002, 0.003, 0.004])
    >>> summary.p50
    2.0
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_PATH = REPO_ROOT / "docs" / "data" / "benchmarks.json"

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ResultsError(ValueError):
    """The results file is unreadable or breaks the schema.

    Attributes:
        problems: One message per problem, each naming the file and the field.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid benchmark results:\n" + "\n".join(self.problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Machine(_Model):
    """Where the benchmarks ran.

    Attributes:
        cpu_model: The CPU's model name (``/proc/cpuinfo``).
        cores: Logical CPUs available to the processes.
        memory_mb: Physical memory.
        os: Kernel and platform.
    """

    cpu_model: str = Field(min_length=1)
    cores: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    os: str = Field(min_length=1)


class Versions(_Model):
    """The versions of everything a number depends on (``None`` where one was not used)."""

    python: str
    uvicorn: str
    fastapi: str
    sqlalchemy: str
    redis_py: str
    httpx: str
    moto: str
    mkdocs: str
    material: str
    postgres: str | None = None
    redis_server: str | None = None


class LatencySummary(_Model):
    """Latency percentiles of one measured phase, in milliseconds.

    Attributes:
        p50: Median.
        p95: 95th percentile.
        p99: 99th percentile.
        max: The slowest request.
    """

    p50: NonNegative
    p95: NonNegative
    p99: NonNegative
    max: NonNegative

    @model_validator(mode="after")
    def _ordered(self) -> LatencySummary:
        if not self.p50 <= self.p95 <= self.p99 <= self.max:
            raise ValueError("percentiles must not decrease (p50 <= p95 <= p99 <= max)")
        return self

    @classmethod
    def from_samples(cls, seconds: Sequence[float]) -> LatencySummary:
        """Percentiles (nearest rank) of latencies given in seconds.

        Raises:
            ValueError: There are no samples.
        """
        if not seconds:
            raise ValueError("no latency samples")
        ordered = sorted(seconds)

        def rank(percent: float) -> float:
            index = max(0, math.ceil(percent / 100 * len(ordered)) - 1)
            return round(ordered[index] * 1000, 3)

        return cls(p50=rank(50), p95=rank(95), p99=rank(99), max=round(ordered[-1] * 1000, 3))


class HttpRun(_Model):
    """One load-generator run against one endpoint.

    Attributes:
        endpoint: What was requested (method and path).
        requests: Requests completed during the measured window (warm-up excluded).
        errors: Requests that failed or answered an unexpected status; must be 0 to count.
        duration_s: Length of the measured window.
        rps: Completed requests per second.
        latency_ms: Latency percentiles of the completed requests.
        server_peak_rss_mb: The server process's peak resident memory (``VmHWM``) at the end of
            the run; None for a server that is not ours (the client ceiling's).
    """

    endpoint: str = Field(min_length=1)
    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    duration_s: Positive
    rps: NonNegative
    latency_ms: LatencySummary
    server_peak_rss_mb: NonNegative | None = None


class LoadParameters(_Model):
    """How an HTTP benchmark loaded the server.

    Attributes:
        duration_s: Measured seconds per mode and round.
        warmup_s: Seconds of load before measuring starts in each round (not counted).
        concurrency: Connections, each with one request in flight at a time.
        products: Distinct products requested (round robin).
        rounds: How many times the modes were measured in turn (samples pooled per mode).
    """

    duration_s: Positive
    warmup_s: NonNegative
    concurrency: int = Field(ge=1)
    products: int = Field(ge=1)
    rounds: int = Field(default=1, ge=1)


class Target(_Model):
    """A target from the brief, with the measured value and the verdict.

    Attributes:
        name: What the target is about.
        goal: The target in words (``cached rps >= 5 x uncached rps``).
        measured: The measured value.
        limit: The threshold the value is held to.
        unit: The value's unit.
        higher_is_better: True when ``measured`` must reach ``limit``, False when it must not
            exceed it.
        met: The verdict.
    """

    name: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    measured: NonNegative
    limit: NonNegative
    unit: str
    higher_is_better: bool
    met: bool

    @model_validator(mode="after")
    def _verdict_matches(self) -> Target:
        expected = (
            self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit
        )
        if self.met != expected:
            raise ValueError(
                f"met is {self.met} but {self.measured} vs {self.limit} says otherwise"
            )
        return self

    @classmethod
    def evaluate(
        cls, name: str, goal: str, measured: float, limit: float, unit: str, *, higher: bool
    ) -> Target:
        """Build a target with its verdict computed from the numbers."""
        measured = round(measured, 3)
        met = measured >= limit if higher else measured <= limit
        return cls(
            name=name,
            goal=goal,
            measured=measured,
            limit=limit,
            unit=unit,
            higher_is_better=higher,
            met=met,
        )


class PackageShare(_Model):
    """The share of a server's CPU time spent in one package's own code (cProfile's tottime).

    Attributes:
        package: ``h11``, ``fastapi``, ``redis``, ``storefront``... (``built-in`` for C functions
            such as socket calls, ``other`` for everything else).
        share: Fraction of the CPU time, 0 to 1.
    """

    package: str = Field(min_length=1)
    share: Annotated[float, Field(ge=0, le=1)]


class CatalogRead(_Model):
    """The catalog read path: cache-aside vs PostgreSQL vs the floor, in one run.

    Attributes:
        parameters: The load.
        client_ceiling: The load generator against a canned-response server of its own: the
            most it can measure on this machine.
        floor: The catalog server's trivial endpoint (no cache, no database).
        cached: ``GET /catalog/products/{sku}`` with a warm Redis cache.
        uncached: The same route with a cache that always misses: straight to PostgreSQL.
        cache_hit_ratio: Hits / reads over the cached run (from the app's counters).
        cache_hit_profile: Where a cache-hit server's CPU time goes, per package
            (:mod:`benchmarks.profile_catalog`, a separate short run under cProfile).
        targets: The brief's targets with their verdicts.
    """

    parameters: LoadParameters
    client_ceiling: HttpRun
    floor: HttpRun
    cached: HttpRun
    uncached: HttpRun
    cache_hit_ratio: Annotated[float, Field(ge=0, le=1)]
    cache_hit_profile: list[PackageShare] = Field(min_length=1)
    targets: list[Target]

    @property
    def cached_over_uncached(self) -> float:
        """How many times the cached path's throughput is the uncached path's."""
        return self.cached.rps / self.uncached.rps if self.uncached.rps else 0.0

    @property
    def cached_share_of_floor(self) -> float:
        """The cached path's throughput as a fraction of the floor's."""
        return self.cached.rps / self.floor.rps if self.floor.rps else 0.0


class Drain(_Model):
    """A timed batch of work outside HTTP: items done, seconds, items per second.

    Attributes:
        items: Events published or messages processed.
        seconds: Wall-clock time it took.
        per_second: ``items / seconds``.
    """

    items: int = Field(ge=1)
    seconds: Positive
    per_second: Positive


class WritePath(_Model):
    """Orders through the outbox and the relay, and the SQS consumer single vs batched.

    Attributes:
        parameters: The HTTP load on ``POST /orders``.
        orders: ``POST /orders`` (order, lines and outbox row in one transaction).
        relay: The outbox relay draining the orders' events to EventBridge on moto.
        sqs_single: The consumer receiving one message per ``ReceiveMessage`` on moto.
        sqs_batch: The consumer receiving up to ten per ``ReceiveMessage`` on moto.
    """

    parameters: LoadParameters
    orders: HttpRun
    relay: Drain
    sqs_single: Drain
    sqs_batch: Drain

    @property
    def batch_over_single(self) -> float:
        """How many times faster the batched consumer drains the queue."""
        return self.sqs_batch.per_second / self.sqs_single.per_second


class DocsBuild(_Model):
    """The docs build: cold and warm diagram cache against a bare build of the same pages.

    Attributes:
        pages: Markdown pages built.
        cold_s: The full build with an empty diagram cache.
        warm_runs_s: Full builds with the cache filled (best of them counts).
        bare_runs_s: Builds of the same pages with no hooks and no diagrams.
        targets: The brief's target with its verdict.
    """

    pages: int = Field(ge=1)
    cold_s: Positive
    warm_runs_s: list[Positive] = Field(min_length=1)
    bare_runs_s: list[Positive] = Field(min_length=1)
    targets: list[Target]

    @property
    def warm_s(self) -> float:
        """The best warm build."""
        return min(self.warm_runs_s)

    @property
    def bare_s(self) -> float:
        """The best bare build."""
        return min(self.bare_runs_s)


class Results(_Model):
    """One benchmark run (or several merged: each section keeps the run that measured it).

    Attributes:
        date: When the run finished (UTC).
        commit: The git commit measured, when known.
        quick: True for a ``--quick`` smoke run (numbers meaningless).
        machine: Where it ran.
        versions: What ran.
        catalog_read: The read-path benchmark.
        write_path: The write-path benchmark.
        docs_build: The docs-build benchmark.
    """

    date: dt.datetime
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$")
    quick: bool
    machine: Machine
    versions: Versions
    catalog_read: CatalogRead | None = None
    write_path: WritePath | None = None
    docs_build: DocsBuild | None = None

    def to_json(self) -> str:
        """The results as indented JSON, keys in schema order."""
        return self.model_dump_json(indent=2) + "\n"


def _describe(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for key in loc:
        parts.append(f"[{key}]" if isinstance(key, int) else ("." if parts else "") + key)
    return "".join(parts) or "(top level)"


def load_results(path: Path, *, display_path: str | None = None) -> Results:
    """Read and validate a results file.

    Args:
        path: The JSON file.
        display_path: How to name the file in messages (defaults to ``path``).

    Returns:
        The validated results.

    Raises:
        ResultsError: The file is missing, is not JSON or breaks the schema; each message names
            the file and the field.
    """
    shown = display_path or str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ResultsError([f"{shown}: cannot read the results ({error.strerror})"]) from None
    except ValueError as error:
        raise ResultsError([f"{shown}: not valid JSON: {error}"]) from None
    try:
        return Results.model_validate(raw)
    except ValidationError as error:
        raise ResultsError(
            [
                f"{shown}: {_describe(item['loc'])}: {item['msg'].removeprefix('Value error, ')}"
                for item in error.errors(include_url=False)
            ]
        ) from None


# --- Describing the machine --------------------------------------------------------------------


def machine() -> Machine:
    """The CPU model, core count, memory and OS of this machine (Linux's /proc where it exists)."""
    cpu_model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu_model = found[1].strip() if found else cpu_model
    memory_mb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        memory_mb = int(found[1]) // 1024 if found else 0
    if not memory_mb:
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Machine(
        cpu_model=cpu_model or "unknown",
        cores=cores or 1,
        memory_mb=memory_mb,
        os=f"{platform.system()} {platform.release()}",
    )


def versions(*, postgres: str | None = None, redis_server: str | None = None) -> Versions:
    """The installed versions of the measured packages, plus the servers' own."""

    def version(distribution: str) -> str:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return "not installed"

    return Versions(
        python=platform.python_version(),
        uvicorn=version("uvicorn"),
        fastapi=version("fastapi"),
        sqlalchemy=version("sqlalchemy"),
        redis_py=version("redis"),
        httpx=version("httpx"),
        moto=version("moto"),
        mkdocs=version("mkdocs"),
        material=version("mkdocs-material"),
        postgres=postgres,
        redis_server=redis_server,
    )


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The commit checked out, read from ``.git`` (no git command), or None outside a checkout."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if head.startswith("ref: "):
            ref = head.removeprefix("ref: ")
            loose = git / ref
            if loose.exists():
                head = loose.read_text(encoding="utf-8").strip()
            else:
                packed = (git / "packed-refs").read_text(encoding="utf-8")
                found = re.search(rf"^([0-9a-f]{{40}}) {re.escape(ref)}$", packed, re.MULTILINE)
                head = found[1] if found else ""
    except OSError:
        return None
    return head if re.fullmatch(r"[0-9a-f]{40}", head) else None


def merge(previous: Results | None, **sections: Any) -> dict[str, Any]:
    """The sections of ``previous`` that this run did not measure, to carry over."""
    if previous is None:
        return {}
    return {
        name: getattr(previous, name)
        for name in ("catalog_read", "write_path", "docs_build")
        if sections.get(name) is None and getattr(previous, name) is not None
    }
