"""The site builds strictly and offline, and every technology has its page.

Also: no page loads anything from another host, and bad input fails the build by name.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mkdocs.config import load_config

from sitebuild.catalog import load_catalog
from tests.conftest import BuiltSite, build_site

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog(REPO_ROOT / "docs" / "data" / "stack.yaml")


def nav_tree() -> list[object]:
    """The nav as mkdocs.yml declares it (titles and file paths)."""
    return load_config(str(REPO_ROOT / "mkdocs.yml"))["nav"]


def nav_files(entries: list[object]) -> list[str]:
    files: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            files += nav_files(value)
        elif isinstance(value, str) and not re.match(r"^[a-z]+://", value):
            files.append(value)
    return files


def test_strict_build_passes(built_site: BuiltSite) -> None:
    assert built_site.returncode == 0, built_site.output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces are Linux's")
def test_strict_build_runs_with_the_network_cut_off(built_site: BuiltSite) -> None:
    assert built_site.without_network, "unshare --net is unavailable: the build was not isolated"
    assert built_site.returncode == 0, built_site.output


def test_every_nav_entry_is_a_page_that_exists_and_was_built(built_site: BuiltSite) -> None:
    missing = [f for f in nav_files(nav_tree()) if not (REPO_ROOT / "docs" / f).is_file()]
    assert not missing, f"nav entries with no file under docs/: {missing}"
    not_built = [
        f
        for f in nav_files(nav_tree())
        if not (built_site.directory / re.sub(r"(index)?\.md$", "", f) / "index.html").is_file()
    ]
    assert not not_built, f"nav pages missing from the built site: {not_built}"


def test_every_technology_is_in_the_nav_under_its_layer() -> None:
    technologies = next(e["Technologies"] for e in nav_tree() if "Technologies" in e)
    placed: dict[str, str] = {}
    for entry in technologies:
        if isinstance(entry, dict):
            ((section, pages),) = entry.items()
            for page in pages:
                placed[next(iter(page.values()))] = section
    expected = {t.page: CATALOG.layer(t.layer).name for t in CATALOG.technologies}
    assert placed == expected


def test_every_technology_page_names_its_technology_in_front_matter() -> None:
    for tech in CATALOG.technologies:
        text = (REPO_ROOT / "docs" / tech.page).read_text(encoding="utf-8")
        front_matter = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
        assert front_matter, f"{tech.page}: no front matter"
        assert f"technology: {tech.id}" in front_matter[1].splitlines(), tech.page


def test_no_page_carries_placeholder_text() -> None:
    placeholder = re.compile(r"\b(TBD|TODO|FIXME|lorem ipsum|coming soon)\b", re.IGNORECASE)
    offenders = [
        f"{page.relative_to(REPO_ROOT)}: {match.group(0)!r}"
        for page in sorted((REPO_ROOT / "docs").rglob("*.md"))
        for match in [placeholder.search(page.read_text(encoding="utf-8"))]
        if match
    ]
    assert not offenders


def test_catalog_content_is_rendered_on_its_pages(built_site: BuiltSite) -> None:
    home = (built_site.directory / "index.html").read_text(encoding="utf-8")
    limits = (built_site.directory / "reference" / "limits" / "index.html").read_text("utf-8")
    for tech in CATALOG.technologies:
        assert f'href="technologies/{tech.id}/"' in home, f"Home does not link {tech.id}"
        assert f'id="{tech.id}"' in limits, f"no limits section for {tech.id}"
        for limit in tech.limits:
            assert limit.source.replace("&", "&amp;") in limits, limit.source
        page = built_site.directory / "technologies" / tech.id / "index.html"
        html = page.read_text(encoding="utf-8")
        assert f"{CATALOG.layer(tech.layer).name} layer" in html
        for connection in CATALOG.connections(tech.id):
            assert CATALOG.name_of(connection.peer) in html, (tech.id, connection.peer)


# --- No external requests -------------------------------------------------------------------

RESOURCE_RELS = {
    "stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "prefetch", "modulepreload",
    "manifest", "preconnect", "dns-prefetch", "mask-icon",
}  # fmt: skip
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


class ResourceCollector(HTMLParser):
    """Collect every URL that a browser would fetch while loading a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        fetched: list[tuple[str, str]] = []
        if tag == "link" and RESOURCE_RELS & set(values.get("rel", "").lower().split()):
            fetched.append(("link href", values.get("href", "")))
        for attribute in ("src", "poster", "data"):
            if attribute in values and tag in {
                "script", "img", "iframe", "embed", "source", "video", "audio", "track", "object",
                "input",
            }:  # fmt: skip
                fetched.append((f"{tag} {attribute}", values[attribute]))
        for attribute in ("srcset", "imagesrcset"):
            for candidate in values.get(attribute, "").split(","):
                if candidate.strip():
                    fetched.append((f"{tag} {attribute}", candidate.split()[0]))
        if tag in {"image", "use"}:
            for attribute in ("href", "xlink:href"):
                if attribute in values:
                    fetched.append((f"{tag} {attribute}", values[attribute]))
        for match in CSS_URL.finditer(values.get("style", "")):
            fetched.append((f"{tag} style", match.group(1) or match.group(2)))
        self.urls += fetched

    def handle_data(self, data: str) -> None:
        if self.lasttag == "style":
            self.urls += [
                ("inline <style>", m.group(1) or m.group(2)) for m in CSS_URL.finditer(data)
            ]


def external(url: str) -> bool:
    """True for a URL that leaves the site's own origin (data: and relative URLs stay)."""
    url = url.strip()
    return url.startswith("//") or urlsplit(url).scheme not in {"", "data", "blob"}


def external_requests(site: Path) -> list[str]:
    offenders: list[str] = []
    for page in sorted(site.rglob("*.html")):
        collector = ResourceCollector()
        collector.feed(page.read_text(encoding="utf-8"))
        offenders += [
            f"{page.relative_to(site)}: {where} -> {url}"
            for where, url in collector.urls
            if external(url)
        ]
    for stylesheet in sorted(site.rglob("*.css")):
        for match in CSS_URL.finditer(stylesheet.read_text(encoding="utf-8")):
            url = match.group(1) or match.group(2)
            if external(url):
                offenders.append(f"{stylesheet.relative_to(site)}: url() -> {url}")
    return offenders


def test_built_site_requests_nothing_from_another_host(built_site: BuiltSite) -> None:
    assert built_site.returncode == 0, built_site.output
    offenders = external_requests(built_site.directory)
    assert not offenders, "external requests:\n" + "\n".join(offenders)


def test_the_external_request_check_catches_a_font_a_script_and_an_image(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<html><head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<script src="//cdn.example.com/x.js"></script></head>'
        '<body><img src="assets/ok.png"><img srcset="https://img.example.com/a.png 2x">'
        '<a href="https://docs.aws.amazon.com/">links are not requests</a></body></html>',
        encoding="utf-8",
    )
    (tmp_path / "style.css").write_text(
        "@font-face { src: url(https://fonts.gstatic.com/r.woff2) }", encoding="utf-8"
    )
    offenders = external_requests(tmp_path)
    assert len(offenders) == 4, offenders
    assert not any("docs.aws.amazon.com" in o or "ok.png" in o for o in offenders)


# --- The build fails loudly on bad input ----------------------------------------------------


def test_bad_catalog_data_fails_the_build_naming_file_entry_and_field(site_copy: Path) -> None:
    catalog = site_copy / "docs" / "data" / "stack.yaml"
    text = catalog.read_text(encoding="utf-8")
    catalog.write_text(text.replace("checked: 2026-12-03", "checked: 2026-13-03", 1), "utf-8")
    result = build_site(site_copy / "mkdocs.yml", site_copy / "site")
    assert result.returncode != 0
    assert (
        "docs/data/stack.yaml: technologies[cloudflare].limits[0].checked: "
        "'2026-13-03' is not a calendar date"
    ) in result.output


def test_an_unknown_shortcode_fails_the_build_naming_the_page(site_copy: Path) -> None:
    page = site_copy / "docs" / "reference" / "glossary.md"
    page.write_text(page.read_text("utf-8") + "\n<!-- catalog:stack-tabel -->\n", "utf-8")
    result = build_site(site_copy / "mkdocs.yml", site_copy / "site")
    assert result.returncode != 0
    assert "docs/reference/glossary.md: unknown shortcode 'catalog:stack-tabel'" in result.output


def test_a_page_naming_an_unknown_technology_fails_the_build(site_copy: Path) -> None:
    page = site_copy / "docs" / "technologies" / "pino.md"
    page.write_text(
        page.read_text("utf-8").replace("technology: pino", "technology: winston"), "utf-8"
    )
    result = build_site(site_copy / "mkdocs.yml", site_copy / "site")
    assert result.returncode != 0
    assert "docs/technologies/pino.md: front matter 'technology': unknown technology 'winston'" in (
        result.output
    )


def test_a_technology_without_a_page_fails_the_build(site_copy: Path) -> None:
    (site_copy / "docs" / "technologies" / "pino.md").unlink()
    result = build_site(site_copy / "mkdocs.yml", site_copy / "site")
    assert result.returncode != 0
    assert "docs/data/stack.yaml: these technologies have no page: docs/technologies/pino.md" in (
        result.output
    )


def test_every_example_module_is_in_the_api_reference() -> None:
    documented = set()
    for page in (REPO_ROOT / "docs" / "reference" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text("utf-8"), re.MULTILINE))
    modules = set()
    for path in (REPO_ROOT / "examples" / "storefront").rglob("*.py"):
        relative = path.relative_to(REPO_ROOT / "examples").with_suffix("")
        if "versions" in relative.parts or relative.name == "env":
            continue  # Alembic revisions and its env script are loaded by Alembic, not imported
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        modules.add(".".join(parts))
    assert modules <= documented, f"not in docs/reference/api/: {sorted(modules - documented)}"
