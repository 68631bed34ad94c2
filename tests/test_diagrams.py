"""The diagrams render deterministically to self-contained SVG and agree with the catalog."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sitebuild import rendering
from sitebuild.catalog import load_catalog
from sitebuild.diagramkit import Drawing, render_png, render_svg
from tests.conftest import BuiltSite, build_site

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog(REPO_ROOT / "docs" / "data" / "stack.yaml")
JOBS = rendering.jobs()
ARCHITECTURE_JOBS = [job for job in JOBS if job.technology is None]


@pytest.fixture(scope="module")
def drawings() -> dict[str, Drawing]:
    return {job.name: rendering.draw(job) for job in JOBS}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[rendering.Rendered]:
    return rendering.render_all(tmp_path_factory.mktemp("diagrams"))


def test_there_are_the_seven_architecture_diagrams_and_one_per_technology() -> None:
    architecture = {
        "overview", "request_lifecycle", "event_flow", "data_and_backup", "security_layers",
        "observability", "network_and_deployment",
    }  # fmt: skip
    names = {job.name for job in ARCHITECTURE_JOBS}
    assert architecture <= names
    assert all(name.startswith("scenario_") for name in names - architecture), names
    assert {job.technology for job in JOBS if job.technology} == {
        t.id for t in CATALOG.technologies
    }


def test_every_svg_is_self_contained(rendered: list[rendering.Rendered]) -> None:
    for diagram in rendered:
        svg = diagram.svg.read_text(encoding="utf-8")
        ET.fromstring(svg)  # noqa: S314 - well-formed XML; our own output, not untrusted input
        references = re.findall(r'(?:xlink:)?href="([^"]*)"', svg)
        external = [
            ref for ref in references if not ref.startswith(("#", "data:image/png;base64,"))
        ]
        assert not external, f"{diagram.name}: references outside the file: {external}"
        assert "site-packages" not in svg, diagram.name
        assert "/resources/" not in svg, diagram.name
        assert "<use " in svg or diagram.name.startswith("technologies/typeorm"), diagram.name


def test_every_diagram_weighs_under_400_kb(rendered: list[rendering.Rendered]) -> None:
    heavy = {d.name: d.svg.stat().st_size for d in rendered if d.svg.stat().st_size > 400_000}
    assert not heavy


def test_rendering_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    # Two cold renders, in parallel worker processes, into two directories.
    first = rendering.render_all(tmp_path / "first")
    second = rendering.render_all(tmp_path / "second")
    assert all(r.rendered for r in first + second)
    different = [
        a.name
        for a, b in zip(first, second, strict=True)
        if a.svg.read_bytes() != b.svg.read_bytes()
    ]
    assert not different
    # And in this process, from a fresh drawing.
    overview = next(job for job in JOBS if job.name == "overview")
    assert (
        render_svg(rendering.draw(overview))
        == first[[r.name for r in first].index("overview")].svg.read_bytes()
    )


def test_a_rebuild_with_no_change_renders_nothing_and_a_change_renders_only_its_diagram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = tmp_path / "diagrams"
    modules.mkdir()
    for name in ("observability.py", "event_flow.py"):
        shutil.copy(REPO_ROOT / "diagrams" / name, modules / name)
    monkeypatch.setattr(rendering, "DIAGRAMS_DIR", modules)
    out = tmp_path / "out"
    assert all(r.rendered for r in rendering.render_all(out))
    assert not any(r.rendered for r in rendering.render_all(out))
    changed = modules / "observability.py"
    changed.write_text(changed.read_text() + "\n# a change\n")
    assert {r.name for r in rendering.render_all(out) if r.rendered} == {"observability"}


def catalog_pairs() -> set[tuple[str, str]]:
    """Every catalog edge as (initiator, other end); bidirectional edges both ways."""
    pairs: set[tuple[str, str]] = set()
    for declarer, edge in CATALOG.all_edges():
        if edge.direction in {"outbound", "bidirectional"}:
            pairs.add((declarer, edge.to))
        if edge.direction in {"inbound", "bidirectional"}:
            pairs.add((edge.to, declarer))
    return pairs


def test_the_overview_shows_every_technology(drawings: dict[str, Drawing]) -> None:
    shown = set().union(*drawings["overview"].nodes.values())
    missing = {t.id for t in CATALOG.technologies} - shown
    assert not missing


def test_every_catalog_edge_appears_in_an_architecture_diagram(
    drawings: dict[str, Drawing],
) -> None:
    drawn: set[tuple[str, str]] = set()
    for job in ARCHITECTURE_JOBS:
        for tails, heads, _ in drawings[job.name].catalog_edges():
            drawn |= {(t, h) for t in tails for h in heads}
    missing = sorted(pair for pair in catalog_pairs() if pair not in drawn)
    assert not missing, f"catalog edges no architecture diagram draws: {missing}"


@pytest.mark.parametrize("name", [job.name for job in JOBS])
def test_no_diagram_draws_a_connection_the_catalog_does_not_have(
    drawings: dict[str, Drawing], name: str
) -> None:
    technologies = {t.id for t in CATALOG.technologies}
    invented = []
    for tails, heads, label in drawings[name].catalog_edges():
        if tails & heads or not (tails | heads) & technologies:
            continue  # within one technology, or between two actors
        if not any((t, h) in catalog_pairs() for t in tails for h in heads):
            invented.append(f"{sorted(tails)} -> {sorted(heads)} ({label})")
    assert not invented, f"{name} draws connections missing from the catalog: {invented}"


def test_the_consistency_check_catches_an_invented_connection() -> None:
    from sitebuild.diagramkit import flow, tech

    with Drawing("invented") as drawing:
        tech("cloudflare") >> flow("request", "straight to the database") >> tech("postgresql")
    ((tails, heads, _),) = drawing.catalog_edges()
    assert not any((t, h) in catalog_pairs() for t in tails for h in heads)


@pytest.mark.parametrize("tech_id", [t.id for t in CATALOG.technologies])
def test_a_focused_diagram_shows_exactly_the_technology_and_its_neighbours(
    drawings: dict[str, Drawing], tech_id: str
) -> None:
    drawing = drawings[f"technologies/{tech_id}"]
    shown = set().union(*drawing.nodes.values())
    assert shown == {tech_id} | {c.peer for c in CATALOG.connections(tech_id)}
    assert len(drawing.edges) == len(CATALOG.connections(tech_id))


def test_request_lifecycle_steps_match_the_page(drawings: dict[str, Drawing]) -> None:
    diagram_steps = {
        int(m[1])
        for e in drawings["request_lifecycle"].edges
        if (m := re.match(r"(\d+) ", e.label))
    }
    page = (REPO_ROOT / "docs" / "architecture" / "request-lifecycle.md").read_text("utf-8")
    page_steps = {int(n) for n in re.findall(r"^\| (\d+) \|", page, flags=re.MULTILINE)}
    assert diagram_steps == page_steps == set(range(1, max(page_steps) + 1))


def test_every_architecture_diagram_is_embedded_with_alt_text(built_site: BuiltSite) -> None:
    pages = {p: p.read_text("utf-8") for p in built_site.directory.rglob("*.html")}
    for job in ARCHITECTURE_JOBS:
        embed = re.compile(
            rf'<img alt="([^"]+)" loading="lazy" src="[./]*diagrams/{job.name}\.svg"'
        )
        embeds = [m for text in pages.values() for m in embed.finditer(text)]
        assert embeds, f"{job.name} is embedded on no page"
        assert all(len(m[1]) > 40 for m in embeds), job.name
    for tech in CATALOG.technologies:
        page = built_site.directory / "technologies" / tech.id / "index.html"
        assert f"diagrams/technologies/{tech.id}.svg" in page.read_text("utf-8"), tech.id


def test_the_readme_shows_the_committed_overview_image_and_it_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "](diagrams/overview.png)" in readme
    overview = rendering.load_module(REPO_ROOT / "diagrams" / "overview.py").draw()
    committed = (REPO_ROOT / "diagrams" / "overview.png").read_bytes()
    assert render_png(overview) == committed, (
        "diagrams/overview.png is stale: run .venv/bin/python scripts/render_diagrams.py --readme"
    )


def test_an_unknown_diagram_fails_the_build_naming_the_page(site_copy: Path) -> None:
    page = site_copy / "docs" / "reference" / "glossary.md"
    page.write_text(page.read_text("utf-8") + "\n<!-- diagram:overveiw -->\n", "utf-8")
    result = build_site(site_copy / "mkdocs.yml", site_copy / "site")
    assert result.returncode != 0
    assert "docs/reference/glossary.md: unknown diagram 'overveiw'" in result.output
