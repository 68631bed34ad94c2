"""MkDocs hooks: render pages from the technology catalog.

Registered in ``mkdocs.yml`` under ``hooks:``. Pages ask for generated content with shortcodes,
HTML comments that stay invisible if a page is viewed as plain Markdown:

``<!-- catalog:stack-table -->``
    The "stack at a glance" table: every technology grouped by layer (Home).
``<!-- catalog:at-a-glance -->``
    The card at the top of a technology page; the page names its technology in its front matter
    (``technology: <id>``).
``<!-- catalog:limits -->``
    Every limit and quota with its source and date (the reference page).
``<!-- catalog:limits <id> -->``
    One technology's limits and quotas.

An unknown shortcode, a technology id the catalog does not have, a technology without a page, or
bad catalog data stops the build with a message naming the file and what is wrong.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import jinja2
from mkdocs.exceptions import PluginError

from sitebuild.catalog import Catalog, CatalogError, load_catalog

CATALOG_PATH = "docs/data/stack.yaml"
SHORTCODE = re.compile(r"<!--\s*catalog:(?P<name>[a-z-]+)(?:\s+(?P<arg>[^\s>]+))?\s*-->")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("sitebuild", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - the output is Markdown, escaped by the Markdown renderer.
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _table_cell(value: object) -> str:
    """Make text safe inside a Markdown table cell: no pipe splits it, no newline ends it."""
    return " ".join(str(value).split()).replace("|", "\\|")


_templates.filters["cell"] = _table_cell

_state: dict[str, Catalog] = {}


def _catalog() -> Catalog:
    return _state["catalog"]


def on_config(config: Any) -> Any:
    """Load and validate the catalog once per build; bad data fails the build here."""
    root = Path(config["config_file_path"]).parent
    try:
        _state["catalog"] = load_catalog(root / CATALOG_PATH, display_path=CATALOG_PATH)
    except CatalogError as error:
        raise PluginError(str(error)) from None
    return config


def on_files(files: Any, config: Any) -> Any:
    """Check that every technology in the catalog has its page."""
    missing = [
        f"docs/{tech.page}"
        for tech in _catalog().technologies
        if files.get_file_from_path(tech.page) is None
    ]
    if missing:
        raise PluginError(f"{CATALOG_PATH}: these technologies have no page: {', '.join(missing)}")
    return files


def _link(from_page: str, to_page: str) -> str:
    """A relative Markdown link target from one docs page to another."""
    return posixpath.relpath(to_page, posixpath.dirname(from_page) or ".")


def render_shortcode(name: str, arg: str | None, page_path: str, meta: dict[str, Any]) -> str:
    """Render one shortcode for the page at ``page_path`` (relative to ``docs/``).

    Raises:
        PluginError: The shortcode or its argument is unknown, or the page lacks what it needs.
    """
    catalog = _catalog()
    where = f"docs/{page_path}"

    def link(node_id: str) -> str:
        if catalog.is_technology(node_id):
            tech = catalog.technology(node_id)
            return f"[{tech.name}]({_link(page_path, tech.page)})"
        return catalog.name_of(node_id)

    def href(tech_id: str) -> str:
        return _link(page_path, catalog.technology(tech_id).page)

    context: dict[str, Any] = {
        "catalog": catalog,
        "link": link,
        "href": href,
        "source": CATALOG_PATH,
    }
    if name == "stack-table":
        template = "stack_table.md.j2"
    elif name == "at-a-glance":
        tech_id = meta.get("technology")
        if not tech_id:
            raise PluginError(
                f"{where}: catalog:at-a-glance needs 'technology: <id>' in the front matter"
            )
        context["tech"] = _technology(tech_id, f"{where}: front matter 'technology'")
        context["limits_link"] = _link(page_path, "reference/limits.md")
        template = "at_a_glance.md.j2"
    elif name == "limits":
        if arg:
            context["techs"] = [_technology(arg, f"{where}: catalog:limits")]
        else:
            context["techs"] = catalog.technologies
        template = "limits.md.j2"
    else:
        raise PluginError(
            f"{where}: unknown shortcode 'catalog:{name}' "
            "(known: stack-table, at-a-glance, limits [<technology id>])"
        )
    if arg and name != "limits":
        raise PluginError(f"{where}: catalog:{name} takes no argument (got {arg!r})")
    return _templates.get_template(template).render(**context)


def _technology(tech_id: str, where: str) -> Any:
    try:
        return _catalog().technology(tech_id)
    except KeyError as error:
        raise PluginError(f"{where}: {error.args[0]}") from None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every catalog shortcode on the page with its rendered Markdown."""
    page_path = page.file.src_uri
    tech_id = page.meta.get("technology")
    if tech_id is not None:
        _technology(tech_id, f"docs/{page_path}: front matter 'technology'")
    return SHORTCODE.sub(
        lambda match: render_shortcode(match["name"], match["arg"], page_path, page.meta),
        markdown,
    )
