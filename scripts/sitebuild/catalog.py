"""The technology catalog: a typed schema for ``docs/data/stack.yaml`` and its loader.

The catalog is the single source for what the site says about each technology in tabular form:
its layer, its one-line role, what it talks to (edges) and its limits and quotas, each limit with
the URL it was checked against and the date of that check. The MkDocs hook
(:mod:`sitebuild.hooks`) renders pages from it; the diagrams and the tests read it too.

Bad data never reaches a page: :func:`load_catalog` raises :class:`CatalogError` with one line
per problem, each naming the file, the entry and the field, for example::

    docs/data/stack.yaml: technologies[cloudflare].limits[0].source: Field required

Examples:
    >>> catalog = load_catalog(REPO_ROOT / "docs" / "data" / "stack.yaml")
    >>> catalog.technology("cloudflare").layer
    'edge'
    >>> [c.peer for c in catalog.connections("alb")]
    ['route53', 'api-gateway', 'ecs-fargate']
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

__all__ = [
    "Actor",
    "Catalog",
    "CatalogError",
    "Edge",
    "Layer",
    "Limit",
    "Technology",
    "load_catalog",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
_SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class CatalogError(ValueError):
    """The catalog file is unreadable or breaks the schema.

    Attributes:
        problems: One message per problem, each naming the file, the entry and the field.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid technology catalog:\n" + "\n".join(self.problems))


def _iso_date(value: Any) -> dt.date:
    """Accept a calendar date written as ``YYYY-MM-DD`` and no other form."""
    if isinstance(value, dt.datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a calendar date ({error})") from None
    raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD")


def _not_in_future(value: dt.date) -> dt.date:
    if value > dt.date.today():
        raise ValueError(f"{value.isoformat()} is in the future: a check cannot have happened yet")
    return value


def _https_url(value: str) -> str:
    if not re.match(r"^https://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?$", value):
        raise ValueError(f"{value!r} is not an https:// URL of a documentation page")
    return value


CheckedDate = Annotated[dt.date, BeforeValidator(_iso_date), AfterValidator(_not_in_future)]
SourceUrl = Annotated[str, AfterValidator(_https_url)]
Slug = Annotated[str, Field(pattern=_SLUG, description="Lower-case words joined by hyphens.")]
OneLine = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\n]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Limit(_Model):
    """A quota, hard limit, default or timeout, with the source it was checked against.

    Attributes:
        name: What is limited, with its scope (for example "per account per Region").
        value: The number with its unit, as the source states it.
        adjustable: True for a quota that can be raised on request, False for a hard limit,
            None where the source does not say.
        source: The URL of the official page that states the value.
        checked: The date someone last read the value on that page.
        note: Caveats; starts with "Uncertain:" when the sources disagree or may be stale.
    """

    name: OneLine
    value: OneLine
    adjustable: bool | None = None
    source: SourceUrl
    checked: CheckedDate
    note: str | None = None


class Edge(_Model):
    """A connection from the technology that declares it to another catalog entry.

    Attributes:
        to: The id of the technology or actor at the other end.
        direction: ``outbound`` when the declaring technology initiates, ``inbound`` when the
            other end does, ``bidirectional`` when both do.
        protocol: The wire protocol or call style (for example "HTTPS", "in-process").
        auth: How the initiating side proves who it is (IAM role, token, certificate...).
        carries: What flows over the edge, in a few words.
    """

    to: Slug
    direction: Literal["outbound", "inbound", "bidirectional"]
    protocol: OneLine
    auth: OneLine
    carries: OneLine


class Layer(_Model):
    """A layer of the architecture, in the order requests meet them.

    Attributes:
        id: Stable identifier used by technologies.
        name: The heading readers see.
        description: One line on what the layer is responsible for.
    """

    id: Slug
    name: OneLine
    description: OneLine


class Actor(_Model):
    """A party outside the stack that technologies connect to (a browser, a collector...).

    Attributes:
        id: Stable identifier, distinct from every technology id.
        name: The name readers see.
        description: One line on what it is.
    """

    id: Slug
    name: OneLine
    description: OneLine


class Technology(_Model):
    """One technology of the stack.

    Attributes:
        id: Stable identifier; the page lives at ``docs/technologies/<id>.md``.
        name: The name readers see.
        layer: The id of the layer it belongs to.
        role: One line on what it does in this architecture.
        edges: The connections this technology declares (each pair is declared once).
        limits: Its limits and quotas, each sourced and dated; at least three, so that every
            technology page states the numbers an architect designs against.
    """

    id: Slug
    name: OneLine
    layer: Slug
    role: OneLine
    edges: list[Edge] = Field(default_factory=list)
    limits: list[Limit] = Field(min_length=3)

    @property
    def page(self) -> str:
        """The page's path inside ``docs/``."""
        return f"technologies/{self.id}.md"


class Catalog(_Model):
    """The whole catalog, checked for referential integrity.

    Attributes:
        layers: The layers, in reading order.
        actors: Parties outside the stack that edges may point to.
        technologies: The technologies, in reading order.
    """

    layers: list[Layer] = Field(min_length=1)
    actors: list[Actor] = Field(default_factory=list)
    technologies: list[Technology] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        problems: list[str] = []
        problems += _duplicates("layers", [layer.id for layer in self.layers])
        node_ids = [t.id for t in self.technologies] + [a.id for a in self.actors]
        problems += _duplicates("technologies and actors", node_ids)
        layer_ids = {layer.id for layer in self.layers}
        known = set(node_ids)
        declared: dict[frozenset[str], str] = {}
        for tech in self.technologies:
            where = f"technologies[{tech.id}]"
            if tech.layer not in layer_ids:
                problems.append(
                    f"{where}.layer: unknown layer {tech.layer!r} (known: {sorted(layer_ids)})"
                )
            for index, edge in enumerate(tech.edges):
                edge_where = f"{where}.edges[{index}].to"
                if edge.to == tech.id:
                    problems.append(f"{edge_where}: an edge cannot point at its own technology")
                elif edge.to not in known:
                    problems.append(f"{edge_where}: unknown technology or actor {edge.to!r}")
                pair = frozenset({tech.id, edge.to})
                if pair in declared:
                    problems.append(
                        f"{edge_where}: the edge {tech.id} - {edge.to} is already declared at "
                        f"{declared[pair]}; declare each connection once"
                    )
                else:
                    declared[pair] = edge_where.removesuffix(".to")
        if problems:
            # Raised as ValueError so pydantic reports it; load_catalog formats it per problem.
            raise ValueError("\n".join(problems))
        return self

    def technology(self, technology_id: str) -> Technology:
        """Return the technology with this id.

        Raises:
            KeyError: No technology has this id; the message lists the known ids.
        """
        for tech in self.technologies:
            if tech.id == technology_id:
                return tech
        raise KeyError(
            f"unknown technology {technology_id!r}; known: {[t.id for t in self.technologies]}"
        )

    def layer(self, layer_id: str) -> Layer:
        """Return the layer with this id."""
        return next(layer for layer in self.layers if layer.id == layer_id)

    def name_of(self, node_id: str) -> str:
        """Return the display name of a technology or actor."""
        for node in [*self.technologies, *self.actors]:
            if node.id == node_id:
                return node.name
        raise KeyError(node_id)

    def is_technology(self, node_id: str) -> bool:
        """Tell whether an id names a technology (as opposed to an actor)."""
        return any(t.id == node_id for t in self.technologies)

    def connections(self, technology_id: str) -> list[Connection]:
        """Every edge touching a technology, seen from that technology's side.

        Edges are declared once, on either end; this returns both the ones the technology
        declares and the ones that point at it, with the direction turned around for the latter.
        """
        result: list[Connection] = []
        for tech in self.technologies:
            for edge in tech.edges:
                if tech.id == technology_id:
                    result.append(Connection(peer=edge.to, direction=edge.direction, edge=edge))
                elif edge.to == technology_id:
                    result.append(
                        Connection(peer=tech.id, direction=_REVERSED[edge.direction], edge=edge)
                    )
        return result

    def all_edges(self) -> Iterable[tuple[str, Edge]]:
        """Yield ``(declaring technology id, edge)`` for every edge in the catalog."""
        for tech in self.technologies:
            for edge in tech.edges:
                yield tech.id, edge


_REVERSED = {"outbound": "inbound", "inbound": "outbound", "bidirectional": "bidirectional"}


class Connection(_Model):
    """An edge as seen from one of its two ends.

    Attributes:
        peer: The id at the other end.
        direction: Who initiates, from the viewpoint of the technology asked about.
        edge: The edge as declared.
    """

    peer: str
    direction: Literal["outbound", "inbound", "bidirectional"]
    edge: Edge


def _duplicates(what: str, ids: list[str]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for identifier in ids:
        if identifier in seen:
            problems.append(f"{what}: duplicate id {identifier!r}")
        seen.add(identifier)
    return problems


class _DatesAsText(yaml.SafeLoader):
    """A safe YAML loader that leaves dates as text, for the schema to check.

    PyYAML's own timestamp handling crashes on a date such as ``2026-13-03`` instead of reporting
    it; with dates left as strings, :func:`_iso_date` names the entry and the field.
    """


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _describe_location(raw: Any, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into ``technologies[cloudflare].limits[0].source``.

    List positions are replaced by the entry's id where the entry has one, so that the message
    names the entry a reader can search for in the file.
    """
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int):
            label = str(key)
            if isinstance(node, list) and 0 <= key < len(node):
                node = node[key]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label = node["id"]
            else:
                node = None
            parts.append(f"[{label}]")
        else:
            node = node.get(key) if isinstance(node, dict) else None
            parts.append(("." if parts else "") + key)
    return "".join(parts) or "(top level)"


def load_catalog(path: Path, *, display_path: str | None = None) -> Catalog:
    """Read and validate the catalog.

    Args:
        path: The YAML file.
        display_path: How to name the file in messages (defaults to ``path``).

    Returns:
        The validated catalog.

    Raises:
        CatalogError: The file is missing, is not YAML, or breaks the schema; the message names
            the file, the entry and the field of every problem.
    """
    shown = display_path or str(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsText)  # noqa: S506 - a SafeLoader
    except OSError as error:
        raise CatalogError([f"{shown}: cannot read the catalog ({error.strerror})"]) from None
    except yaml.YAMLError as error:
        raise CatalogError([f"{shown}: not valid YAML: {error}"]) from None
    try:
        return Catalog.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            loc = tuple(item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if not loc:
                # Whole-catalog checks already name the entry and field in each line.
                problems += [f"{shown}: {line}" for line in message.splitlines()]
            else:
                problems.append(f"{shown}: {_describe_location(raw, loc)}: {message}")
        raise CatalogError(problems) from None
