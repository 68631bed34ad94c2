"""Charts are valid, accessible SVG with their values; the hook renders or refuses by name."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from benchmarks.results import load_results
from mkdocs.exceptions import PluginError

from sitebuild import charts, hooks

SVG = "{http://www.w3.org/2000/svg}"
SAMPLE = Path(__file__).with_name("sample_results.json")


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_a_bar_chart_is_svg_with_title_desc_and_every_value_printed() -> None:
    svg = charts.bar_chart(
        "rps", "Throughput", "Two modes.", [("Cached", 4321.0), ("Uncached", 87.5)], "rps"
    )
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Throughput"
    assert root.find(f"{SVG}desc").text == "Two modes."
    assert root.get("aria-labelledby") == "rps-title rps-desc"
    assert {"4,321", "87.5", "Cached", "Uncached", "rps"} <= set(texts(svg))


def test_bars_are_proportional_to_their_values() -> None:
    svg = charts.bar_chart("b", "T", "D", [("a", 100.0), ("b", 50.0)], "u")
    bars = [
        float(rect.get("width"))
        for rect in ET.fromstring(svg).iter(f"{SVG}rect")  # noqa: S314
        if rect.find(f"{SVG}title") is not None
    ]
    assert bars[0] == pytest.approx(2 * bars[1])


def test_a_grouped_chart_has_a_legend_and_suffixed_values() -> None:
    series = [("p50", [1.5, 2.0]), ("p99", [9.0, 12.25])]
    svg = charts.grouped_bar_chart(
        "lat", "Latency", "D", ["floor", "cached"], series, "ms", value_suffix=" ms"
    )
    labels = texts(svg)
    assert {"1.5 ms", "2 ms", "9 ms", "12.25 ms", "p50", "p99", "floor", "cached"} <= set(labels)


def test_the_same_data_renders_the_same_bytes() -> None:
    def render() -> str:
        return charts.bar_chart("d", "T", "D", [("a", 1 / 3), ("b", 2.0)], "u")

    assert render() == render()


def test_escapes_markup_in_labels() -> None:
    svg = charts.bar_chart("e", "A <b> & c", "D", [("x<y", 1.0)], "u")
    assert "A <b> & c" in texts(svg)
    assert "x<y" in texts(svg)


def test_a_series_without_one_value_per_group_is_refused() -> None:
    with pytest.raises(ValueError, match="has 1 values for 2 groups"):
        charts.grouped_bar_chart("x", "T", "D", ["a", "b"], [("s", [1.0])], "u")


def test_every_section_renders_and_its_charts_parse() -> None:
    results = load_results(SAMPLE)
    for name in charts.SECTIONS:
        markdown = charts.render_section(name, results)
        for svg in re.findall(r"<svg.*?</svg>", markdown, re.DOTALL):
            ET.fromstring(svg)  # noqa: S314 - our own output
            assert "\n\n" not in svg, "a blank line would end the raw HTML block"
    read = charts.render_section("catalog-read", results)
    assert f"| {charts.number(results.catalog_read.cached.rps)} |" in read
    targets = charts.render_section("targets", results)
    assert "Cached throughput" in targets
    assert "**missed**" in targets


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "data").mkdir(parents=True)
    shutil.copy(SAMPLE, tmp_path / charts.RESULTS_PATH)
    hooks._state.pop("benchmarks", None)
    yield tmp_path
    hooks._state.pop("benchmarks", None)


def test_the_hook_renders_a_known_section(results_root: Path) -> None:
    markdown = hooks.benchmarks_section("docs-build", None, results_root, "proof/performance.md")
    assert "<svg" in markdown
    assert "Warm over bare" in markdown


def test_the_hook_fails_on_an_unknown_name_naming_the_page(results_root: Path) -> None:
    with pytest.raises(PluginError, match=r"^docs/proof/performance.md: unknown shortcode "
                       r"'benchmarks:catalog-reed' \(known: catalog-read, "):  # fmt: skip
        hooks.benchmarks_section("catalog-reed", None, results_root, "proof/performance.md")


def test_the_hook_fails_on_malformed_results_naming_file_and_field(results_root: Path) -> None:
    path = results_root / charts.RESULTS_PATH
    path.write_text(path.read_text().replace('"cores": 2', '"cores": "two"'))
    with pytest.raises(PluginError) as caught:
        hooks.benchmarks_section("machine", None, results_root, "proof/performance.md")
    assert "docs/data/benchmarks.json: machine.cores: Input should be a valid integer" in str(
        caught.value
    )


def test_the_hook_says_which_section_is_missing(results_root: Path) -> None:
    path = results_root / charts.RESULTS_PATH
    data = json.loads(path.read_text())
    del data["docs_build"]
    path.write_text(json.dumps(data))
    with pytest.raises(PluginError, match=r"has no docs_build section; run scripts/benchmark\.sh"):
        hooks.benchmarks_section("docs-build", None, results_root, "proof/performance.md")
