"""What the browser tests know about the built site: its nav, its files, the scripts they run."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import axe_playwright_python
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE_SCRIPT = Path(axe_playwright_python.__file__).parent / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "screenshots"
SEARCH_INDEX = "search/search_index.json"
DESKTOP = {"width": 1280, "height": 900}
PAGE_TIMEOUT_MS = 15_000

# Forces lazy images to load, waits for every image to settle, then describes each one.
IMAGES_JS = """
async () => {
  const images = [...document.images];
  for (const image of images) image.loading = "eager";
  const settled = images.map((image) => image.complete ? null : new Promise((resolve) => {
    image.addEventListener("load", resolve, { once: true });
    image.addEventListener("error", resolve, { once: true });
  }));
  await Promise.race([
    Promise.all(settled),
    new Promise((resolve) => setTimeout(resolve, 10000)),
  ]);
  return images.map((image) => ({
    src: image.currentSrc || image.src,
    alt: image.getAttribute("alt"),
    naturalWidth: image.naturalWidth,
    complete: image.complete,
  }));
}
"""

LINKS_JS = """
() => [...document.querySelectorAll("a[href]")].map((a) => ({
  raw: a.getAttribute("href"), href: a.href, text: a.textContent.trim().slice(0, 60),
}))
"""

AXE_JS = """
async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5), count: v.nodes.length,
  }));
}
"""


# Starts the page's checks without waiting for them (axe-core takes about a second a page), so
# that several pages, each in its own renderer process, are checked at the same time; the
# outcome lands in window.__visit.
START_CHECKS_JS = f"""
() => {{
  window.__visit = undefined;
  (async () => {{
    const images = await ({IMAGES_JS})();
    const links = ({LINKS_JS})();
    const violations = await ({AXE_JS})();
    window.__visit = {{ images, links, violations }};
  }})().catch((error) => {{ window.__visit = {{ error: String(error) }}; }});
}}
"""


class _NoEnvLoader(yaml.SafeLoader):
    """Reads mkdocs.yml without resolving MkDocs' ``!ENV`` tags (only the nav is needed)."""


_NoEnvLoader.add_constructor("!ENV", lambda loader, node: None)
_NoEnvLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: None
)


def _nav_files(entries: Any) -> Iterator[str]:
    if isinstance(entries, str):
        yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from _nav_files(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from _nav_files(value)


def page_path(markdown_file: str) -> str:
    """The URL path (relative to the site root) MkDocs gives a Markdown file."""
    stem = markdown_file.removesuffix(".md")
    if stem == "index":
        return ""
    if stem.endswith("/index"):
        return stem.removesuffix("index")
    return f"{stem}/"


@functools.cache
def nav_pages() -> tuple[str, ...]:
    """URL paths of every page in mkdocs.yml's nav, in nav order ("" is Home), read once."""
    text = (REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = yaml.load(text, Loader=_NoEnvLoader)  # noqa: S506 (a SafeLoader subclass)
    files = [f for f in _nav_files(config["nav"]) if f.endswith(".md")]
    return tuple(page_path(f) for f in files)


class _IdCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (name == "id" or (tag == "a" and name == "name")) and value:
                self.ids.add(value)


@functools.cache
def element_ids(html_file: Path) -> frozenset[str]:
    """Every element id (and ``<a name>``) in a built HTML file."""
    collector = _IdCollector()
    collector.feed(html_file.read_text(encoding="utf-8"))
    return frozenset(collector.ids)


def built_file(site_dir: Path, url_path: str) -> Path | None:
    """The file the server answers for a URL path, or None when there is none."""
    relative = unquote(url_path).lstrip("/")
    candidate = site_dir / relative
    if relative == "" or relative.endswith("/") or candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class SiteServer:
    """The built site served over HTTP on 127.0.0.1."""

    directory: Path
    base_url: str

    @property
    def netloc(self) -> str:
        return urlsplit(self.base_url).netloc

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass
class PageVisit:
    """What one load of a page recorded."""

    path: str
    status: int | None
    requests: list[str]
    foreign: list[str]
    failed: list[str]
    console_errors: list[str]
    images: list[dict[str, Any]]
    links: list[dict[str, Any]]
    violations: list[dict[str, Any]]
