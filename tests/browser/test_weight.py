"""Page weight: what a reader downloads for each page (the search index aside)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.browser.siteinfo import SEARCH_INDEX, PageVisit, SiteServer, built_file

MAX_PAGE_BYTES = 1_500_000
MAX_DIAGRAM_BYTES = 400_000


def test_every_page_is_under_1_5_mb_and_every_diagram_under_400_kb(
    site_visits: dict[str, PageVisit], site_server: SiteServer, report: Any
) -> None:
    rows: list[tuple[str, int, int, int]] = []
    heavy_diagrams: dict[str, int] = {}
    for path, visit in site_visits.items():
        own_images = {urlsplit(image["src"]).path for image in visit.images}
        html = own = shared = 0
        for url_path in dict.fromkeys(urlsplit(u).path for u in visit.requests):
            if url_path.endswith(SEARCH_INDEX):
                continue
            file = built_file(site_server.directory, url_path)
            if file is None:
                continue  # a failed request; test_pages names it
            size = file.stat().st_size
            if url_path == "/" + path:
                html += size
            elif url_path in own_images:
                own += size
                if "/diagrams/" in url_path and size >= MAX_DIAGRAM_BYTES:
                    heavy_diagrams[url_path] = size
            else:
                shared += size
        rows.append((f"/{path}", html, own, shared))
    # Every diagram the build wrote, shown on a page or not.
    for diagram in (site_server.directory / "diagrams").rglob("*"):
        if diagram.is_file() and diagram.stat().st_size >= MAX_DIAGRAM_BYTES:
            heavy_diagrams[str(diagram.relative_to(site_server.directory))] = diagram.stat().st_size

    rows.sort(key=lambda row: -sum(row[1:]))
    width = max(len(row[0]) for row in rows)
    header = f"{'page':<{width}}  {'HTML':>9}  {'own assets':>10}  {'shared':>9}  {'total':>9}"
    lines = [header, "-" * len(header)]
    lines += [f"{p:<{width}}  {h:>9,}  {o:>10,}  {s:>9,}  {h + o + s:>9,}" for p, h, o, s in rows]
    lines.append(
        "own assets: the page's images and diagrams; shared: the theme's CSS and JavaScript"
        " (the search worker included) that every page loads and the browser caches."
    )
    report("page weight in bytes (search index excluded)", lines)

    heaviest, *_ = rows
    assert sum(heaviest[1:]) < MAX_PAGE_BYTES, f"heaviest page: {heaviest}"
    assert not heavy_diagrams, f"diagrams of 400 KB or more: {heavy_diagrams}"
    assert all(html > 0 for _, html, _, _ in rows), "a page's own HTML was not counted"
