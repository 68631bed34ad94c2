"""Light and dark palettes, the phone layout, and screenshots for review."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.browser.siteinfo import IMAGES_JS, SCREENSHOTS, PageVisit, SiteServer, nav_pages

SCHEME_JS = "() => document.body.getAttribute('data-md-color-scheme')"
PHONE = {"width": 375, "height": 812}

# For every diagram: the computed background of the image and of its figure (the container).
DIAGRAM_BACKGROUNDS_JS = """
() => [...document.querySelectorAll("figure.diagram img")].map((img) => ({
  src: img.getAttribute("src"),
  image: getComputedStyle(img).backgroundColor,
  figure: getComputedStyle(img.closest("figure")).backgroundColor,
}))
"""

# On a phone: does the document scroll sideways, and does every wide table or diagram stay inside
# a container of its own that scrolls (overflow-x auto or scroll) or scales it to fit?
LAYOUT_JS = """
() => {
  const width = window.innerWidth;
  const scroller = (element) => {
    for (let node = element.parentElement; node; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === "auto" || overflow === "scroll") return node;
    }
    return null;
  };
  const problems = [];
  let scrollingTables = 0;
  for (const table of document.querySelectorAll(".md-content table")) {
    const box = scroller(table);
    if (!box) { problems.push("table without a scroll container"); continue; }
    const rect = box.getBoundingClientRect();
    if (rect.right > width + 1) problems.push("a table's scroll container overflows the screen");
    if (table.scrollWidth > box.clientWidth) scrollingTables += 1;
  }
  let diagrams = 0;
  for (const img of document.querySelectorAll("figure.diagram img")) {
    diagrams += 1;
    const rect = img.getBoundingClientRect();
    const src = img.getAttribute("src");
    const link = img.closest("a");
    const zooms = link !== null && link.getAttribute("href") === src;
    if (rect.right > width + 1 && !scroller(img)) problems.push(`diagram ${src} overflows`);
    if (!zooms) problems.push(`diagram ${src} has no full-size link`);
  }
  return {
    scrollWidth: document.documentElement.scrollWidth, innerWidth: width,
    problems, scrollingTables, diagrams,
  };
}
"""


def _toggle_palette(page: Page) -> None:
    page.locator("form[data-md-component=palette] label:visible").click()


def test_the_palette_toggle_switches_between_light_and_dark(
    new_context: Any, site_server: SiteServer
) -> None:
    page = new_context(color_scheme="light").new_page()
    page.goto(site_server.url(""))
    assert page.evaluate(SCHEME_JS) == "default"
    _toggle_palette(page)
    page.wait_for_function(f"() => ({SCHEME_JS})() === 'slate'")
    _toggle_palette(page)
    page.wait_for_function(f"() => ({SCHEME_JS})() === 'default'")
    page.close()


def test_diagrams_keep_a_light_background_in_dark_mode(
    new_context: Any, site_server: SiteServer, site_visits: dict[str, PageVisit]
) -> None:
    with_diagrams = [
        p for p, v in site_visits.items() if any("/diagrams/" in i["src"] for i in v.images)
    ]
    assert len(with_diagrams) >= 20
    page = new_context(color_scheme="dark").new_page()
    dark_on_dark: list[str] = []
    for path in with_diagrams:
        page.goto(site_server.url(path))
        assert page.evaluate(SCHEME_JS) == "slate", f"/{path} is not dark"
        for diagram in page.evaluate(DIAGRAM_BACKGROUNDS_JS):
            if "rgb(255, 255, 255)" not in (diagram["image"], diagram["figure"]):
                dark_on_dark.append(f"/{path}: {diagram}")
    page.close()
    assert not dark_on_dark, "diagrams without a white background in dark mode:\n" + "\n".join(
        dark_on_dark
    )


def test_on_a_phone_the_navigation_drawer_opens(new_context: Any, site_server: SiteServer) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(site_server.url("technologies/alb/"))
    drawer = page.locator(".md-sidebar--primary")
    assert drawer.bounding_box()["x"] < 0 or not drawer.is_visible(), "drawer open at start"
    page.locator("label.md-header__button[for=__drawer]").click()
    page.wait_for_function("() => document.getElementById('__drawer').checked")
    page.wait_for_function(
        "() => { const r = document.querySelector('.md-sidebar--primary')"
        ".getBoundingClientRect(); return r.left >= 0 && r.right > 0 && r.right <= innerWidth; }"
    )
    assert page.get_by_role("link", name="Technologies").first.is_visible()
    page.close()


def test_on_a_phone_pages_do_not_scroll_sideways_and_wide_content_scrolls_in_place(
    new_context: Any, site_server: SiteServer
) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    problems: list[str] = []
    scrolling_tables = diagrams = 0
    for path in nav_pages():
        page.goto(site_server.url(path))
        layout = page.evaluate(LAYOUT_JS)
        if layout["scrollWidth"] > layout["innerWidth"]:
            problems.append(f"/{path}: scrolls sideways ({layout['scrollWidth']} px wide)")
        problems += [f"/{path}: {problem}" for problem in layout["problems"]]
        scrolling_tables += layout["scrollingTables"]
        diagrams += layout["diagrams"]
    page.close()
    assert not problems, "phone layout problems:\n" + "\n".join(problems)
    # The check means something only if some tables are wider than the phone, and diagrams exist.
    assert scrolling_tables > 0
    assert diagrams >= 20


def test_screenshots_of_home_a_technology_and_a_scenario_page_in_light_and_dark(
    new_context: Any, site_server: SiteServer
) -> None:
    scenario_pages = [p for p in nav_pages() if p.startswith("scenarios/") and p != "scenarios/"]
    pages = {
        "home": "",
        "technology-api-gateway": "technologies/api-gateway/",
        "scenario": scenario_pages[0] if scenario_pages else "scenarios/",
    }
    SCREENSHOTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page = new_context(color_scheme=scheme).new_page()
        for name, path in pages.items():
            page.goto(site_server.url(path))
            page.evaluate(IMAGES_JS)  # lazy images loaded before the shot
            target = SCREENSHOTS / f"{name}-{scheme}.png"
            page.screenshot(path=str(target), full_page=True)
            assert target.stat().st_size > 10_000
        page.close()
