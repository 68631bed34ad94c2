"""Every nav page loads cleanly, offline: 200, no console error, no failed or foreign request."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from tests.browser.siteinfo import PageVisit, SiteServer, built_file, element_ids, nav_pages


def _offenders(visits: dict[str, PageVisit], attribute: str) -> list[str]:
    return [
        f"/{path}: {item}" for path, visit in visits.items() for item in getattr(visit, attribute)
    ]


def test_every_nav_page_was_visited_and_answers_200(site_visits: dict[str, PageVisit]) -> None:
    assert tuple(site_visits) == nav_pages()
    assert len(site_visits) >= 50
    wrong = {f"/{path}": visit.status for path, visit in site_visits.items() if visit.status != 200}
    assert not wrong, f"pages that did not answer 200: {wrong}"


def test_no_page_logs_a_console_error(site_visits: dict[str, PageVisit]) -> None:
    offenders = _offenders(site_visits, "console_errors")
    assert not offenders, "console errors:\n" + "\n".join(offenders)


def test_no_request_fails(site_visits: dict[str, PageVisit]) -> None:
    offenders = _offenders(site_visits, "failed")
    assert not offenders, "failed requests:\n" + "\n".join(offenders)


def test_every_request_goes_to_the_local_server_only(site_visits: dict[str, PageVisit]) -> None:
    assert all(visit.requests for visit in site_visits.values()), "a page recorded no request"
    offenders = _offenders(site_visits, "foreign")
    assert not offenders, "requests to hosts other than the local server:\n" + "\n".join(offenders)


def test_every_image_and_diagram_loaded_and_has_alt_text(
    site_visits: dict[str, PageVisit],
) -> None:
    images = [(path, image) for path, visit in site_visits.items() for image in visit.images]
    diagrams = [image for _, image in images if "/diagrams/" in image["src"]]
    assert len(diagrams) >= 20, f"expected the diagrams on the pages, found {len(diagrams)}"
    broken = [f"/{p}: {i['src']}" for p, i in images if not i["complete"] or i["naturalWidth"] <= 0]
    no_alt = [f"/{p}: {i['src']}" for p, i in images if not (i["alt"] or "").strip()]
    assert not broken, "images that did not load:\n" + "\n".join(broken)
    assert not no_alt, "images without alt text:\n" + "\n".join(no_alt)


def test_every_internal_link_and_anchor_resolves(
    site_visits: dict[str, PageVisit], site_server: SiteServer
) -> None:
    site_dir: Path = site_server.directory
    base = urlsplit(site_server.base_url)
    broken: list[str] = []
    checked = 0
    for path, visit in site_visits.items():
        for link in visit.links:
            target = urlsplit(link["href"])
            if target.scheme not in ("http", "https"):
                continue  # mailto:, javascript: and the like are not pages
            if target.netloc != base.netloc:
                continue  # external (and prose such as scripts/docs.sh's 127.0.0.1:8000)
            checked += 1
            file = built_file(site_dir, target.path)
            if file is None:
                broken.append(f"/{path}: {link['raw']} ({link['text']!r}): no such file")
                continue
            fragment = target.fragment
            if fragment and file.suffix == ".html" and fragment not in element_ids(file):
                broken.append(f"/{path}: {link['raw']} ({link['text']!r}): no id {fragment!r}")
    assert checked > 500, f"only {checked} internal links found: is the link collection broken?"
    assert not broken, "broken internal links:\n" + "\n".join(broken)
