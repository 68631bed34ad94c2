// Small accessibility fixes for Material's markup, applied on every page (no external requests).
// - A table wider than its scroll container must be reachable by keyboard (axe:
//   scrollable-region-focusable): make the scrolling element focusable and name it.
// - The search panel has role="dialog" but no accessible name (axe: aria-dialog-name).
(function () {
  function fix() {
    // Material scrolls wide tables in the wrapper, and the table itself (overflow: auto) when a
    // cell cannot wrap (a long version string): whichever scrolls must take the focus.
    document
      .querySelectorAll(".md-typeset__scrollwrap, .md-typeset__table > table")
      .forEach(function (region) {
        if (region.scrollWidth > region.clientWidth && !region.hasAttribute("tabindex")) {
          region.setAttribute("tabindex", "0");
          // A table keeps its own role (screen readers navigate it as a table).
          if (region.tagName !== "TABLE") region.setAttribute("role", "region");
          region.setAttribute("aria-label", "Scrollable table");
        }
      });
    document.querySelectorAll('.md-search[role="dialog"]').forEach(function (dialog) {
      if (!dialog.hasAttribute("aria-label")) dialog.setAttribute("aria-label", "Search");
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", fix);
  } else {
    fix();
  }
  window.addEventListener("resize", fix);
})();
