"""The site's search (Material's lunr index, in the browser) finds what a reader looks for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from playwright.sync_api import Page

from tests.browser.siteinfo import REPO_ROOT, SiteServer

CATALOG = yaml.safe_load((REPO_ROOT / "docs" / "data" / "stack.yaml").read_text(encoding="utf-8"))
TECHNOLOGIES = [(t["id"], t["name"]) for t in CATALOG["technologies"]]

# A key term and the page that explains it (chosen by reading the pages, not by the ranking):
KEY_TERMS = {
    # the dead-letter queues: redrive policy, maxReceiveCount, alarms, redrive
    "DLQ": "technologies/sns-sqs/",
    # the private integration from API Gateway to the internal ALB, its subnets and security
    # group. The API Gateway page explains it too, but only inside long sections (a table row, a
    # list item), which lunr ranks below these dense sections; "link" alone matches everywhere.
    "VPC link": "architecture/deployment-and-network/",
    # the claim each service checks on a Cognito access token
    "token_use": "technologies/cognito/",
    # the transactional outbox: its table, relay and autovacuum settings
    "outbox": "technologies/postgresql/",
}

RESULTS_JS = """
() => [...document.querySelectorAll(".md-search-result__list > .md-search-result__item")]
  .map((item) => item.querySelector("a.md-search-result__link"))
  .filter((link) => link !== null)
  .map((link) => link.href)
"""


@pytest.fixture(scope="module")
def search_page(new_context: Any, site_server: SiteServer) -> Iterator[Page]:
    """Home with the search open and its index loaded (``?q=`` opens Material's search)."""
    page = new_context().new_page()
    page.goto(site_server.url("?q=cloudflare"))
    page.wait_for_function(
        "() => /matching document/i.test("
        "document.querySelector('.md-search-result__meta').textContent)"
    )
    yield page
    page.close()


def search(page: Page, site_server: SiteServer, query: str) -> list[str]:
    """Type a query into the search box; the result pages' paths, best first."""
    # An empty query first, so that the results awaited below are this query's, never the last's.
    page.fill("input.md-search__input", "")
    page.press("input.md-search__input", "End")  # Material reads the query on keyup
    page.wait_for_function(
        "() => !document.querySelector('.md-search-result__list').children.length"
    )
    page.fill("input.md-search__input", query)
    page.press("input.md-search__input", "End")
    page.wait_for_function(
        "() => /matching document/i.test("
        "document.querySelector('.md-search-result__meta').textContent)"
    )
    base = urlsplit(site_server.base_url).path
    return [urlsplit(href).path.removeprefix(base) for href in page.evaluate(RESULTS_JS)]


@pytest.mark.parametrize(("technology_id", "name"), TECHNOLOGIES, ids=[t[0] for t in TECHNOLOGIES])
def test_a_technology_name_finds_its_page_in_the_first_three_results(
    search_page: Page, site_server: SiteServer, technology_id: str, name: str
) -> None:
    results = search(search_page, site_server, name)
    expected = f"technologies/{technology_id}/"
    assert expected in results[:3], f"search {name!r}: first results {results[:5]}"


@pytest.mark.parametrize(("term", "expected"), KEY_TERMS.items(), ids=list(KEY_TERMS))
def test_a_key_term_finds_the_page_that_explains_it(
    search_page: Page, site_server: SiteServer, term: str, expected: str
) -> None:
    results = search(search_page, site_server, term)
    assert expected in results[:3], f"search {term!r}: first results {results[:5]}"
