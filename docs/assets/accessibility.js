// Small accessibility fixes for Material's markup, applied on every page (no external requests).
// - A table wider than its scroll container must be reachable by keyboard (axe:
//   scrollable-region-focusable): make the container focusable and name it.
// - The search panel has role="dialog" but no accessible name (axe: aria-dialog-name).
(function () {
  function fix() {
    document.querySelectorAll(".md-typeset__scrollwrap").forEach(function (wrap) {
      if (wrap.scrollWidth > wrap.clientWidth && !wrap.hasAttribute("tabindex")) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", "Scrollable table");
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
