"""Bar charts as hand-written SVG, and the Performance page's sections, from the benchmark results.

The docs build renders ``<!-- benchmarks:NAME -->`` shortcodes (see :mod:`sitebuild.hooks`) from
``docs/data/benchmarks.json`` (schema: :mod:`benchmarks.results`). Charts are horizontal bars
(one series, or grouped series with a legend), with a labelled value axis, every value printed at
the end of its bar, a title, and ``<title>``/``<desc>`` for screen readers. They are white cards
with a fixed colour-blind-safe palette (Okabe and Ito's), so that they read the same in the light
and the dark theme, and the output is deterministic: the same data gives the same bytes.

Examples:
    >>> svg = bar_chart("demo", "Demo", "Two bars.", [("a", 1.0), ("b", 2.5)], "units")
    >>> "2.5" in svg and svg.startswith("<svg")
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from benchmarks.results import Results, ResultsError, load_results

RESULTS_PATH = "docs/data/benchmarks.json"
PALETTE = {
    "background": "#ffffff",
    "frame": "#d0d0d0",
    "grid": "#e6e6e6",
    "text": "#1a1a1a",
    "muted": "#555555",
}
# Okabe-Ito: distinguishable with the common colour-vision deficiencies, dark enough on white.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
SECTIONS = ("catalog-read", "write-path", "docs-build", "targets", "machine")

_svg = jinja2.Environment(
    loader=jinja2.PackageLoader("sitebuild", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_markdown = jinja2.Environment(
    loader=jinja2.PackageLoader("sitebuild", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - the output is Markdown; the charts in it are escaped SVG.
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


class UnknownSectionError(ValueError):
    """A page asked for a section this module does not render."""


def nice_step(largest: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if largest <= 0:
        return 1.0
    raw = largest / ticks
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power:
            return multiple * power
    return 10 * power  # pragma: no cover - the loop always returns


def number(value: float) -> str:
    """A value for a label: thousands separated, at most two decimals, trailing zeros dropped."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text or "0"


def grouped_bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    axis_label: str,
    *,
    value_suffix: str = "",
) -> str:
    """Horizontal grouped bars: one group per label, one bar per series in each group.

    Args:
        chart_id: Unique on the page (the ids of ``<title>`` and ``<desc>`` derive from it).
        title: The chart's visible title and accessible name.
        desc: What the chart shows, in a sentence or two, for screen readers.
        groups: The group labels, top to bottom.
        series: ``(name, values)`` per series, one value per group; a single series draws
            plain bars without a legend.
        axis_label: The value axis's label with its unit.
        value_suffix: Appended to each printed value (`` ms``).

    Returns:
        The SVG document as text.

    Raises:
        ValueError: A series has not one value per group, or a value is negative.
    """
    if not re.fullmatch(r"[a-z][a-z0-9-]*", chart_id):
        raise ValueError(f"chart id {chart_id!r} must be lower-case words joined by hyphens")
    for name, values in series:
        if len(values) != len(groups):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(groups)} groups")
        if any(v < 0 or not math.isfinite(v) for v in values):
            raise ValueError(f"series {name!r} has a negative or non-finite value")
    # Room for the longest group label at 12 px (about 6.6 px per character).
    margin_left = max(100, 16 + math.ceil(6.6 * max((len(g) for g in groups), default=0)))
    width, margin_right = margin_left + 520, 90
    bar_height, bar_gap, group_gap = 18, 4, 14
    plot_top = 44
    legend = len(series) > 1
    plot_right = width - margin_right
    largest = max((v for _, values in series for v in values), default=0.0)
    step = nice_step(largest)
    axis_max = step * max(1, math.ceil(largest / step)) if largest else step
    scale = (plot_right - margin_left) / axis_max

    bars: list[dict[str, Any]] = []
    group_rows: list[dict[str, Any]] = []
    y = plot_top + 8
    for index, label in enumerate(groups):
        top = y
        for number_in_group, (name, values) in enumerate(series):
            value = values[index]
            bar_width = round(value * scale, 2)
            text = number(value) + value_suffix
            bars.append(
                {
                    "y": y,
                    "height": bar_height,
                    "width": bar_width,
                    "fill": SERIES_COLOURS[number_in_group % len(SERIES_COLOURS)],
                    "value_x": round(margin_left + bar_width + 4, 2),
                    "value_text": text,
                    "tooltip": f"{label}, {name}: {text}" if legend else f"{label}: {text}",
                }
            )
            y += bar_height + bar_gap
        group_rows.append({"label": label, "label_y": round((top + y - bar_gap) / 2, 2)})
        y += group_gap - bar_gap
    plot_bottom = y
    ticks = []
    tick_value = 0.0
    while tick_value <= axis_max + step / 1000:
        ticks.append({"x": round(margin_left + tick_value * scale, 2), "text": number(tick_value)})
        tick_value += step
    legend_y = plot_bottom + 58
    legend_items = (
        [
            {"x": margin_left + 90 * n, "label": name, "fill": SERIES_COLOURS[n]}
            for n, (name, _) in enumerate(series)
        ]
        if legend
        else []
    )
    height = plot_bottom + (72 if legend else 50)
    return _svg.get_template("chart.svg.j2").render(
        chart_id=chart_id,
        title=title,
        desc=desc,
        width=width,
        height=height,
        margin_left=margin_left,
        plot_top=plot_top,
        plot_bottom=plot_bottom,
        plot_right=plot_right,
        axis_label=axis_label,
        ticks=ticks,
        groups=group_rows,
        bars=bars,
        legend=legend_items,
        legend_y=legend_y,
        palette=PALETTE,
    )


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    bars: Sequence[tuple[str, float]],
    axis_label: str,
    *,
    value_suffix: str = "",
) -> str:
    """Horizontal bars, one per ``(label, value)``; see :func:`grouped_bar_chart`."""
    return grouped_bar_chart(
        chart_id,
        title,
        desc,
        [label for label, _ in bars],
        [(axis_label, [value for _, value in bars])],
        axis_label,
        value_suffix=value_suffix,
    )


def figure(svg: str, caption: str) -> str:
    """The chart as a raw-HTML figure for a page (no blank line inside, so it stays raw HTML)."""
    body = "\n".join(line for line in svg.splitlines() if line.strip())
    return (
        f'<figure class="benchmark-chart">\n{body}\n<figcaption>{caption}</figcaption>\n</figure>\n'
    )


# --- The page's sections -----------------------------------------------------------------------


def _catalog_read(results: Results) -> dict[str, Any]:
    read = results.catalog_read
    if read is None:
        raise LookupError("catalog_read")
    modes = [
        ("Client ceiling", read.client_ceiling),
        ("Floor (trivial route)", read.floor),
        ("Cached (Redis hit)", read.cached),
        ("Uncached (PostgreSQL)", read.uncached),
    ]
    served = modes[1:]  # the charts leave out the client's ceiling, which would dwarf them
    rps = bar_chart(
        "catalog-read-rps",
        "Catalog read path: throughput",
        "Requests per second for each mode, one uvicorn worker, "
        f"{read.parameters.concurrency} connections: "
        + "; ".join(f"{label} {number(run.rps)}" for label, run in served)
        + ".",
        [(label, run.rps) for label, run in served],
        "requests per second (higher is better)",
    )
    latency = grouped_bar_chart(
        "catalog-read-latency",
        "Catalog read path: latency percentiles",
        "p50, p95 and p99 latency in milliseconds per mode: "
        + "; ".join(
            f"{label} {number(run.latency_ms.p50)}, {number(run.latency_ms.p95)}, "
            f"{number(run.latency_ms.p99)}"
            for label, run in served
        )
        + ".",
        [label for label, _ in served],
        [
            ("p50", [run.latency_ms.p50 for _, run in served]),
            ("p95", [run.latency_ms.p95 for _, run in served]),
            ("p99", [run.latency_ms.p99 for _, run in served]),
        ],
        "latency in milliseconds (lower is better)",
        value_suffix=" ms",
    )
    profile = bar_chart(
        "catalog-read-profile",
        "Where a cache hit's CPU time goes",
        "Share of the cached server's CPU time per package, from cProfile: "
        + "; ".join(f"{p.package} {number(p.share * 100)} %" for p in read.cache_hit_profile)
        + ".",
        [(p.package, round(p.share * 100, 1)) for p in read.cache_hit_profile],
        "share of CPU time (%)",
        value_suffix=" %",
    )
    return {
        "read": read,
        "modes": modes,
        "profile_chart": figure(
            profile, "CPU time per package while serving cache hits (a separate profiled run)."
        ),
        "rps_chart": figure(
            rps,
            "Requests per second per mode, measured in one run (the client's own ceiling, far "
            "above every mode, is in the table).",
        ),
        "latency_chart": figure(latency, "Latency percentiles per mode, same run."),
    }


def _write_path(results: Results) -> dict[str, Any]:
    write = results.write_path
    if write is None:
        raise LookupError("write_path")
    rows = [
        ("Orders placed", write.orders.rps, "orders/s"),
        ("Events relayed (moto)", write.relay.per_second, "events/s"),
        ("SQS, 1 per receive (moto)", write.sqs_single.per_second, "messages/s"),
        ("SQS, 10 per receive (moto)", write.sqs_batch.per_second, "messages/s"),
    ]
    chart = bar_chart(
        "write-path-throughput",
        "Write path: throughput",
        "Items per second: "
        + "; ".join(f"{label} {number(value)} {unit}" for label, value, unit in rows)
        + ".",
        [(label, value) for label, value, _ in rows],
        "items per second (higher is better)",
    )
    return {
        "write": write,
        "rows": rows,
        "chart": figure(chart, "Orders, relayed events and consumed messages per second."),
    }


def _docs_build(results: Results) -> dict[str, Any]:
    docs = results.docs_build
    if docs is None:
        raise LookupError("docs_build")
    builds = [
        ("Cold", docs.cold_s),
        ("Warm (best)", docs.warm_s),
        ("Bare (best)", docs.bare_s),
    ]
    chart = bar_chart(
        "docs-build-times",
        "Docs build: wall-clock time",
        "Seconds per build: " + "; ".join(f"{label} {number(s)}" for label, s in builds) + ".",
        builds,
        "seconds (lower is better)",
        value_suffix=" s",
    )
    return {
        "docs": docs,
        "builds": builds,
        "chart": figure(chart, "Build times measured in one run."),
    }


_SECTION_CONTEXT: dict[str, Callable[[Results], dict[str, Any]]] = {
    "catalog-read": _catalog_read,
    "write-path": _write_path,
    "docs-build": _docs_build,
    "targets": lambda results: {},
    "machine": lambda results: {},
}


def render_section(name: str, results: Results) -> str:
    """The Markdown (with inline SVG figures) of one Performance-page section.

    Raises:
        UnknownSectionError: ``name`` is not one of :data:`SECTIONS`.
        LookupError: The results have no data for the section (the benchmark was not run).
    """
    if name not in _SECTION_CONTEXT:
        raise UnknownSectionError(name)
    context = _SECTION_CONTEXT[name](results)
    targets = [
        target
        for section in (results.catalog_read, results.docs_build)
        if section is not None
        for target in section.targets
    ]
    return _markdown.get_template("benchmarks.md.j2").render(
        section=name,
        results=results,
        targets=targets,
        number=number,
        source=RESULTS_PATH,
        **context,
    )


def load(root: Path) -> Results:
    """Load ``docs/data/benchmarks.json`` under ``root``.

    Raises:
        ResultsError: The file is missing, malformed or breaks the schema (file and field named).
    """
    return load_results(root / RESULTS_PATH, display_path=RESULTS_PATH)


__all__ = [
    "SECTIONS",
    "ResultsError",
    "UnknownSectionError",
    "bar_chart",
    "figure",
    "grouped_bar_chart",
    "load",
    "nice_step",
    "number",
    "render_section",
]
