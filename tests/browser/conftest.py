"""The built site in a real browser: a local HTTP server, Debian's Chromium and one visit per page.

Every nav page is visited once per session (``site_visits``); the tests then assert on what that
visit recorded (requests, console errors, images, links, axe-core results, bytes), so the suite
loads each page only once for all of those checks. Chromium is Debian's (``/usr/bin/chromium``),
driven by Playwright through ``executable_path``: Playwright's own browser download is never used.
"""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser.siteinfo import (
    AXE_SCRIPT,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PAGE_TIMEOUT_MS,
    START_CHECKS_JS,
    PageVisit,
    SiteServer,
    nav_pages,
)
from tests.harness.servers import free_port, wait_until

# --- The server ---------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean; the browser records every request itself."""


@pytest.fixture(scope="session")
def site_dir(built_site: Any) -> Path:
    """The directory of the session's ``mkdocs build --strict`` (which must have succeeded)."""
    assert built_site.returncode == 0, built_site.output
    return built_site.directory


@pytest.fixture(scope="session")
def site_server(site_dir: Path) -> Iterator[SiteServer]:
    """A threaded HTTP server for the built site, on a free port, stopped after the session."""
    port = free_port()
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(base_url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(answers, what=f"the site server on {base_url}", timeout=10)
        yield SiteServer(directory=site_dir, base_url=base_url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- The browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """One headless Debian Chromium for the whole session."""
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install chromium"
    browser = playwright_instance.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@dataclass
class RequestLog:
    """Everything the browser asked for while a page was open, and what went wrong."""

    server_netloc: str
    requests: list[str] = field(default_factory=list)
    pending: set[Any] = field(default_factory=set)
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.requests.clear()
        self.foreign.clear()
        self.failed.clear()
        self.console_errors.clear()

    def attach(self, page: Page) -> None:
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_finished)
        page.on("requestfailed", self._on_failed)
        page.on("response", self._on_response)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"pageerror: {error}"))

    def _on_request(self, request: Any) -> None:
        self.requests.append(request.url)
        self.pending.add(request)
        parts = urlsplit(request.url)
        if parts.scheme not in ("data", "blob") and parts.netloc != self.server_netloc:
            self.foreign.append(request.url)

    def _on_finished(self, request: Any) -> None:
        self.pending.discard(request)

    def _on_failed(self, request: Any) -> None:
        self.pending.discard(request)
        self.failed.append(f"{request.url} ({request.failure})")

    def _on_response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url} (HTTP {response.status})")

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(f"console: {message.text} at {message.location}")

    def wait_until_quiet(self, page: Page) -> None:
        """Poll until no request is in flight, so that leaving the page aborts nothing."""

        def quiet() -> bool:
            page.evaluate("0")  # lets Playwright deliver the events that are queued
            return not self.pending

        wait_until(quiet, what=f"the requests of {page.url}", timeout=15)


@pytest.fixture(scope="session")
def new_context(browser: Browser, site_server: SiteServer) -> Iterator[Any]:
    """A factory of browser contexts, each closed at the end of the session."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(**({"viewport": DESKTOP} | options))
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


# --- One visit per page, shared by the tests ----------------------------------------------


VISIT_WORKERS = 2


@pytest.fixture(scope="session")
def site_visits(new_context: Any, site_server: SiteServer) -> dict[str, PageVisit]:
    """Visit every nav page once (light scheme, desktop) and record everything the tests need.

    A few pages are open at a time, each in its own context (so its own renderer process): while
    one runs axe-core, the next loads.
    """
    workers: list[tuple[Page, RequestLog]] = []
    for _ in range(VISIT_WORKERS):
        page = new_context().new_page()
        log = RequestLog(server_netloc=site_server.netloc)
        log.attach(page)
        workers.append((page, log))
    axe_source = AXE_SCRIPT.read_text(encoding="utf-8")
    paths = nav_pages()
    visits: dict[str, PageVisit] = {}
    for start in range(0, len(paths), VISIT_WORKERS):
        batch = list(zip(workers, paths[start : start + VISIT_WORKERS], strict=False))
        statuses: dict[str, int | None] = {}
        for (page, log), path in batch:
            log.clear()
            response = page.goto(site_server.url(path), wait_until="load")
            statuses[path] = response.status if response else None
            page.add_script_tag(content=axe_source)
            page.evaluate(START_CHECKS_JS)
        for (page, log), path in batch:
            page.wait_for_function("() => window.__visit !== undefined", timeout=60_000)
            checks = page.evaluate("window.__visit")
            assert "error" not in checks, f"/{path}: the in-page checks failed: {checks['error']}"
            log.wait_until_quiet(page)
            visits[path] = PageVisit(
                path=path,
                status=statuses[path],
                requests=list(log.requests),
                foreign=list(log.foreign),
                failed=list(log.failed),
                console_errors=list(log.console_errors),
                images=checks["images"],
                links=checks["links"],
                violations=checks["violations"],
            )
    for page, _ in workers:
        page.close()
    return visits


# --- The report printed at the end of the run --------------------------------------------

REPORT_KEY = pytest.StashKey[dict[str, list[str]]]()


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Any:
    """``report(title, lines)`` adds a section to what the run prints at its end."""
    sections: dict[str, list[str]] = request.config.stash.setdefault(REPORT_KEY, {})

    def add(title: str, lines: list[str]) -> None:
        sections[title] = lines

    return add


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the report's sections (axe-core findings, the weight table) after the results."""
    for title, lines in config.stash.get(REPORT_KEY, {}).items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
