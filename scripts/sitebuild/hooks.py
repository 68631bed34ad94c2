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
``<!-- decisions:index -->``
    The table of architecture decision records, read from the records themselves
    (``docs/decisions/NNNN-*.md``: their title and status lines), so it cannot go stale.
``<!-- diagram:<name> -->``
    A diagram rendered from ``diagrams/<name>.py`` (see :mod:`sitebuild.rendering`), as a figure
    with its alt text and a link to the full-size SVG. Technology pages get their focused diagram
    from the at-a-glance card.
``<!-- benchmarks:<name> -->``
    A section of the Performance page from ``docs/data/benchmarks.json`` (see
    :mod:`sitebuild.charts`): ``catalog-read``, ``write-path``, ``docs-build`` (SVG charts and
    tables), ``targets`` (the verdicts) and ``machine`` (machine, date and versions).

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
from mkdocs.plugins import get_plugin_logger

from sitebuild.catalog import Catalog, CatalogError, load_catalog

CATALOG_PATH = "docs/data/stack.yaml"
DIAGRAM_CACHE = ".cache/diagrams"
SHORTCODE = re.compile(
    r"<!--\s*(?P<kind>catalog|diagram|decisions|benchmarks):(?P<name>[a-z0-9_-]+)(?:\s+(?P<arg>[^\s>]+))?\s*-->"
)

log = get_plugin_logger("sitebuild")

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

_state: dict[str, Any] = {}


def _catalog() -> Catalog:
    return _state["catalog"]


def _diagrams() -> dict[str, Any]:
    return _state["diagrams"]


def on_config(config: Any) -> Any:
    """Load and validate the catalog once per build; bad data fails the build here."""
    root = Path(config["config_file_path"]).parent
    _state.pop("benchmarks", None)  # read again on each build, when a page first asks for it
    try:
        _state["catalog"] = load_catalog(root / CATALOG_PATH, display_path=CATALOG_PATH)
    except CatalogError as error:
        raise PluginError(str(error)) from None
    return config


def on_files(files: Any, config: Any) -> Any:
    """Check that every technology has its page; render the diagrams and add them to the site."""
    from mkdocs.structure.files import File

    from sitebuild.rendering import render_all

    root = Path(config["config_file_path"]).parent
    try:
        rendered = render_all(root / DIAGRAM_CACHE)
    except Exception as error:  # a diagram module's own error: name it, stop the build
        raise PluginError(f"diagrams/: rendering failed: {error}") from error
    _state["diagrams"] = {r.name: r for r in rendered}
    for diagram in rendered:
        files.append(
            File.generated(config, f"diagrams/{diagram.name}.svg", abs_src_path=str(diagram.svg))
        )
    log.info(
        "diagrams: %d rendered, %d already current",
        sum(r.rendered for r in rendered),
        sum(not r.rendered for r in rendered),
    )

    missing = [
        f"docs/{tech.page}"
        for tech in _catalog().technologies
        if files.get_file_from_path(tech.page) is None
    ]
    if missing:
        raise PluginError(f"{CATALOG_PATH}: these technologies have no page: {', '.join(missing)}")
    return files


def diagram_figure(name: str, page_path: str, *, where: str) -> str:
    """The Markdown figure that embeds one rendered diagram, linked to its full-size SVG."""
    diagram = _diagrams().get(name)
    if diagram is None:
        raise PluginError(
            f"{where}: unknown diagram {name!r} (known: {', '.join(sorted(_diagrams()))})"
        )
    src = _link(page_path, f"diagrams/{name}.svg")
    alt = diagram.alt.replace("[", "(").replace("]", ")")
    return (
        f'<figure class="diagram" markdown="span">\n'
        f'[![{alt}]({src}){{ loading=lazy }}]({src} "Open the diagram at full size")\n'
        f"<figcaption>{diagram.title}. Select the diagram to open it at full size.</figcaption>\n"
        f"</figure>\n"
    )


ADR_TITLE = re.compile(r"^# ADR-(?P<number>\d{4}): (?P<title>.+)$", re.MULTILINE)
ADR_STATUS = re.compile(
    r"^\*\*Status:\*\* (?P<status>[^·\n]+?) · \*\*Date:\*\* (?P<date>\d{4}-\d{2}-\d{2})", re.M
)


def decisions_index(docs_dir: Path, page_path: str) -> str:
    """The Markdown table of every decision record, from the records' own title and status lines.

    Raises:
        PluginError: A record lacks its ``# ADR-NNNN: title`` or its status and date line, or
            its number differs from its file name's.
    """
    rows = ["| Record | Decision | Status | Date |", "| --- | --- | --- | --- |"]
    for record in sorted((docs_dir / "decisions").glob("[0-9][0-9][0-9][0-9]-*.md")):
        text = record.read_text(encoding="utf-8")
        title, status = ADR_TITLE.search(text), ADR_STATUS.search(text)
        where = f"docs/decisions/{record.name}"
        if not title or not status:
            raise PluginError(
                f"{where}: needs '# ADR-NNNN: <title>' and "
                "'**Status:** <status> · **Date:** <YYYY-MM-DD>'"
            )
        if not record.name.startswith(title["number"]):
            raise PluginError(
                f"{where}: titled ADR-{title['number']}, but the file name says otherwise"
            )
        link = _link(page_path, f"decisions/{record.name}")
        rows.append(
            f"| [ADR-{title['number']}]({link}) | {_table_cell(title['title'])} "
            f"| {status['status'].strip()} | {status['date']} |"
        )
    return "\n".join(rows) + "\n"


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
        "diagram": lambda diagram_name: diagram_figure(diagram_name, page_path, where=where),
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


def benchmarks_section(name: str, arg: str | None, root: Path, page_path: str) -> str:
    """Render one ``benchmarks:<name>`` shortcode from ``docs/data/benchmarks.json``.

    Raises:
        PluginError: The name is unknown, it has an argument, the results file is malformed
            (naming the file and the field), or it lacks the section asked for.
    """
    from sitebuild import charts

    where = f"docs/{page_path}"
    if name not in charts.SECTIONS or arg:
        raise PluginError(
            f"{where}: unknown shortcode 'benchmarks:{name}{' ' + arg if arg else ''}' "
            f"(known: {', '.join(charts.SECTIONS)})"
        )
    if "benchmarks" not in _state:
        try:
            _state["benchmarks"] = charts.load(root)
        except charts.ResultsError as error:
            raise PluginError(f"{where}: {error}") from None
    try:
        return charts.render_section(name, _state["benchmarks"])
    except LookupError as error:
        raise PluginError(
            f"{where}: {charts.RESULTS_PATH} has no {error.args[0]} section; "
            "run scripts/benchmark.sh"
        ) from None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every shortcode on the page with its rendered Markdown."""
    page_path = page.file.src_uri
    tech_id = page.meta.get("technology")
    if tech_id is not None:
        _technology(tech_id, f"docs/{page_path}: front matter 'technology'")

    def expand(match: re.Match[str]) -> str:
        if match["kind"] == "decisions":
            if match["name"] != "index" or match["arg"]:
                raise PluginError(
                    f"docs/{page_path}: unknown shortcode 'decisions:{match['name']}'"
                )
            return decisions_index(Path(config["docs_dir"]), page_path)
        if match["kind"] == "diagram":
            if match["arg"]:
                raise PluginError(f"docs/{page_path}: diagram:{match['name']} takes no argument")
            return diagram_figure(match["name"], page_path, where=f"docs/{page_path}")
        if match["kind"] == "benchmarks":
            root = Path(config["config_file_path"]).parent
            return benchmarks_section(match["name"], match["arg"], root, page_path)
        return render_shortcode(match["name"], match["arg"], page_path, page.meta)

    return SHORTCODE.sub(expand, markdown)
