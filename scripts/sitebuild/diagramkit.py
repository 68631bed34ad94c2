"""Building blocks for the architecture diagrams in ``diagrams/``.

Every diagram module draws with these helpers instead of the ``diagrams`` library's classes
directly, for three reasons:

* **Catalog identity.** :func:`tech` draws a catalog technology (or actor) with its icon and name
  and records which catalog ids the node stands for, so that tests can check each diagram against
  the catalog's edges.
* **Determinism.** Node ids are derived from catalog ids and labels, never random, and rendering
  happens here (:func:`render_svg`, :func:`render_png`) rather than in the library's context
  manager, so the same source always gives the same bytes.
* **One legend style.** The edge styles of :data:`FLOWS` carry meaning; the title of every
  rendered diagram carries a legend of the styles it uses.
* **Self-contained output.** The library's SVG points at icon files by absolute path, which breaks
  on any web server; :func:`render_svg` inlines every icon once, as a data URI.

A diagram module defines ``TITLE``, ``ALT`` and ``draw()``; ``diagrams/request_lifecycle.py`` is
a short, complete one, and ``tests/test_diagrams.py`` renders every module.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import struct
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagrams.aws.compute import Fargate
from diagrams.aws.database import RDS, DocumentdbMongodbCompatibility, ElasticacheForRedis
from diagrams.aws.integration import (
    Eventbridge,
    SimpleNotificationServiceSns,
    SimpleQueueServiceSqs,
)
from diagrams.aws.management import Cloudwatch
from diagrams.aws.network import APIGateway, ElbApplicationLoadBalancer, Route53
from diagrams.aws.security import WAF, Cognito
from diagrams.aws.storage import SimpleStorageServiceS3
from diagrams.onprem.client import Users
from diagrams.onprem.database import Postgresql
from diagrams.programming.language import Nodejs
from diagrams.saas.cdn import Cloudflare

from diagrams import Cluster, Diagram, Edge, Node, setdiagram
from sitebuild.catalog import Catalog, load_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG: Catalog = load_catalog(REPO_ROOT / "docs" / "data" / "stack.yaml")

# The icon class for each catalog id. Ids missing here (the in-process libraries TypeORM, Pino,
# OpenTelemetry and the collector) are drawn in one labelled box style: no icon with a licence
# that allows redistribution ships with the library or can be fetched offline.
ICONS: dict[str, type[Node]] = {
    "cloudflare": Cloudflare,
    "route53": Route53,
    "waf-shield": WAF,
    "api-gateway": APIGateway,
    "cognito": Cognito,
    "alb": ElbApplicationLoadBalancer,
    "ecs-fargate": Fargate,
    "nestjs": Nodejs,
    "rds": RDS,
    "postgresql": Postgresql,
    "documentdb": DocumentdbMongodbCompatibility,
    "redis": ElasticacheForRedis,
    "s3": SimpleStorageServiceS3,
    "eventbridge": Eventbridge,
    "sns-sqs": SimpleQueueServiceSqs,
    "client": Users,
    "observability-backend": Cloudwatch,
}
# Alternative icons for one catalog id (SNS and SQS are one catalog entry).
VARIANT_ICONS: dict[str, type[Node]] = {"sns": SimpleNotificationServiceSns}

# Icon nodes: the icon fills the box, the label sits below it.
ICON_NODE = {"width": "1.9", "height": "1.55", "fontsize": "18"}
BOX_STYLE = {
    "shape": "box",
    "style": "rounded,filled",
    "fillcolor": "#ECEFF1",
    "color": "#607D8B",
    "fixedsize": "false",
    "width": "1.6",
    "height": "0.7",
    "labelloc": "c",
    "margin": "0.15,0.1",
    "fontsize": "18",
}

# What an edge's style means; every diagram that uses a style shows it in its legend.
FLOWS: dict[str, dict[str, str]] = {
    "request": {"color": "#1565C0", "style": "solid", "penwidth": "1.6"},
    "event": {"color": "#E65100", "style": "dashed", "penwidth": "1.6"},
    "telemetry": {"color": "#6A1B9A", "style": "dotted", "penwidth": "1.6"},
    "control": {"color": "#546E7A", "style": "dashed", "penwidth": "1.0"},
}
FLOW_MEANING = {
    "request": "synchronous request",
    "event": "asynchronous message or event",
    "telemetry": "telemetry (traces, metrics, logs)",
    "control": "management, DNS or configuration",
}


@dataclass(frozen=True)
class DrawnEdge:
    """An edge as drawn: node ids at both ends, its label and its flow kind."""

    tail: str
    head: str
    label: str
    kind: str


class Drawing(Diagram):
    """A diagram that records what it draws and renders only when asked.

    Attributes:
        title: The diagram's title, drawn at its top.
        nodes: Node id to the catalog ids the node stands for (empty for plain boxes).
        edges: Every edge drawn, in order.
    """

    def __init__(self, title: str, *, direction: str = "LR", **graph_attr: str) -> None:
        super().__init__(
            name=title,
            filename="diagram",
            direction=direction,
            outformat="svg",
            show=False,
            graph_attr={
                "bgcolor": "white",
                "pad": "0.3",
                "fontsize": "28",
                "labelloc": "t",
                "splines": "spline",
                "nodesep": "0.35",
                "ranksep": "0.6",
                "newrank": "true",
                **graph_attr,
            },
            # Large type: the diagrams are shown scaled down to the page's width.
            node_attr={"fontsize": "18", "width": "1.1", "height": "1.1"},
        )
        self.title = title
        self.nodes: dict[str, frozenset[str]] = {}
        self.edges: list[DrawnEdge] = []
        self.kinds_used: set[str] = set()
        self._ids: Counter[str] = Counter()

    def __exit__(self, *exc_info: object) -> None:
        """Leave the drawing context without rendering (see :func:`render_svg`)."""
        setdiagram(None)

    def new_id(self, base: str) -> str:
        """A node id unique in this drawing, derived from ``base`` (deterministic)."""
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "node"
        self._ids[slug] += 1
        return slug if self._ids[slug] == 1 else f"{slug}-{self._ids[slug]}"

    def connect(self, node: Node, node2: Node, edge: Edge) -> None:
        """Record the edge, then let the library add it to the graph."""
        kind = getattr(edge, "flow_kind", "")
        self.kinds_used.add(kind)
        self.edges.append(DrawnEdge(node.nodeid, node2.nodeid, edge.attrs.get("label", ""), kind))
        super().connect(node, node2, edge)

    def catalog_edges(self) -> set[tuple[frozenset[str], frozenset[str], str]]:
        """The drawn edges whose two ends both stand for catalog entries."""
        return {
            (self.nodes[e.tail], self.nodes[e.head], e.label)
            for e in self.edges
            if self.nodes.get(e.tail) and self.nodes.get(e.head)
        }


def _drawing() -> Drawing:
    from diagrams import getdiagram

    drawing = getdiagram()
    if not isinstance(drawing, Drawing):
        raise RuntimeError("draw inside 'with Drawing(title) as drawing:'")
    return drawing


def tech(
    catalog_id: str,
    label: str | None = None,
    *,
    also: Iterable[str] = (),
    icon: str | None = None,
) -> Node:
    """Draw a catalog technology or actor.

    Args:
        catalog_id: The catalog id the node stands for.
        label: The label; defaults to the catalog name.
        also: Further catalog ids the same node stands for (for example an "RDS for PostgreSQL"
            node stands for both ``rds`` and ``postgresql``).
        icon: A variant icon name from :data:`VARIANT_ICONS` (for example ``"sns"``).

    Raises:
        KeyError: An id is not in the catalog.
    """
    ids = frozenset({catalog_id, *also})
    for node_id in ids:
        CATALOG.name_of(node_id)  # raises KeyError naming an unknown id
    drawing = _drawing()
    text = label or CATALOG.name_of(catalog_id)
    node_id = drawing.new_id(f"{catalog_id}-{text}" if label else catalog_id)
    cls = VARIANT_ICONS[icon] if icon else ICONS.get(catalog_id)
    node = (
        cls(text, nodeid=node_id, **ICON_NODE) if cls else Node(text, nodeid=node_id, **BOX_STYLE)
    )
    drawing.nodes[node_id] = ids
    return node


def box(label: str, **attrs: str) -> Node:
    """Draw something that is not a catalog entry (a subnet, a queue's DLQ, a service name)."""
    drawing = _drawing()
    node = Node(label, nodeid=drawing.new_id(label), **{**BOX_STYLE, **attrs})
    drawing.nodes[node.nodeid] = frozenset()
    return node


def flow(kind: str, label: str = "") -> Edge:
    """An edge of one of the :data:`FLOWS` kinds, with a label saying what flows.

    Raises:
        KeyError: ``kind`` is not a known flow kind.
    """
    if kind not in FLOWS:
        raise KeyError(f"unknown flow kind {kind!r}; known: {sorted(FLOWS)}")
    edge = Edge(label=label, **FLOWS[kind], fontsize="16")
    edge.flow_kind = kind  # type: ignore[attr-defined]
    return edge


def cluster(label: str, *, tint: str = "#F5F7FA", **attrs: Any) -> Cluster:
    """A labelled group (a layer, a VPC, a subnet tier) in a consistent style."""
    return Cluster(
        label,
        graph_attr={"bgcolor": tint, "style": "rounded", "fontsize": "18", "margin": "12", **attrs},
    )


# --- Rendering -----------------------------------------------------------------------------

_IMAGE = re.compile(r"<image (?P<attrs>[^>]*?)/>")
_HREF = re.compile(r'xlink:href="(?P<path>[^"]+)"')


ICON_PIXELS = 192  # about twice the size an icon is drawn at, for sharp high-DPI screens


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("icon is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def shrink_icon(data: bytes) -> bytes:
    """Scale an icon down to :data:`ICON_PIXELS` and store it with a palette.

    The library's icons are flat artwork of a few kilobytes at 256 px or more; inlined as they
    are, a diagram with twenty of them outweighs a page. Pillow's PNG encoder is deterministic.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        icon = image.convert("RGBA")
        icon.thumbnail((ICON_PIXELS, ICON_PIXELS), Image.Resampling.LANCZOS)
        paletted = icon.quantize(colors=128, method=Image.Quantize.FASTOCTREE)
        out = io.BytesIO()
        paletted.save(out, format="PNG", optimize=True)
    smaller = out.getvalue()
    return smaller if len(smaller) < len(data) else data


def _dot(source: str, fmt: str) -> bytes:
    result = subprocess.run(
        ["dot", f"-T{fmt}"], input=source.encode(), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def inline_icons(svg: str) -> str:
    """Replace every icon file reference in Graphviz's SVG by one inlined copy per icon.

    Each distinct icon becomes a ``<symbol>`` holding the PNG as a data URI; each use becomes a
    ``<use>`` of it, so an icon drawn five times is stored once.
    """
    symbols: dict[str, str] = {}
    definitions: list[str] = []

    def replace(match: re.Match[str]) -> str:
        attrs = match["attrs"]
        href = _HREF.search(attrs)
        if not href:
            return match.group(0)
        path = Path(href["path"])
        if path.as_posix() not in symbols:
            data = shrink_icon(path.read_bytes())
            width, height = _png_size(data)
            symbol_id = f"icon-{len(symbols)}"
            symbols[path.as_posix()] = symbol_id
            encoded = base64.b64encode(data).decode()
            definitions.append(
                f'<symbol id="{symbol_id}" viewBox="0 0 {width} {height}" '
                f'preserveAspectRatio="xMinYMin meet"><image width="{width}" height="{height}" '
                f'href="data:image/png;base64,{encoded}"/></symbol>'
            )
        box = {
            k: float(v) for k, v in re.findall(r'\b(width|height|x|y)="(-?[0-9.]+)(?:px)?"', attrs)
        }
        # Graphviz gives the whole node box; the icon goes at its top centre, leaving the bottom
        # quarter to the label drawn beneath it.
        size = min(box["width"], box["height"] * 0.74)
        x = box["x"] + (box["width"] - size) / 2
        return (
            f'<use href="#{symbols[path.as_posix()]}" x="{x:.2f}" y="{box["y"]:.2f}" '
            f'width="{size:.2f}" height="{size:.2f}"/>'
        )

    body = _IMAGE.sub(replace, svg)
    if not definitions:
        return body
    opening = re.search(r"<svg\b[^>]*>", body)
    if opening is None:
        raise ValueError("Graphviz output has no <svg> element")
    return (
        body[: opening.end()]
        + "\n<defs>"
        + "".join(definitions)
        + "</defs>"
        + body[opening.end() :]
    )


FLOW_GLYPHS = {"request": "━━━", "event": "╍╍╍", "telemetry": "┈┈┈", "control": "╌╌╌"}


def title_with_legend(drawing: Drawing) -> str:
    """The graph label: the title, and below it a legend of the edge styles the drawing uses.

    The legend is part of the title so that it never moves the diagram's own layout around.
    """
    items = [
        f'<font color="{FLOWS[kind]["color"]}">{FLOW_GLYPHS[kind]}</font> {FLOW_MEANING[kind]}'
        for kind in FLOWS
        if kind in drawing.kinds_used
    ]
    legend = "&nbsp;&nbsp;&nbsp;&nbsp;".join(items)
    return (
        f'<<font point-size="28">{html.escape(drawing.title)}</font>'
        f'<br/><font point-size="16">{legend}</font><br/> >'
    )


def render_svg(drawing: Drawing) -> bytes:
    """Render a drawing to a self-contained, deterministic SVG."""
    drawing.dot.graph_attr["label"] = title_with_legend(drawing)
    svg = _dot(drawing.dot.source, "svg").decode()
    svg = inline_icons(svg)
    if re.search(r'(?:xlink:)?href="(?!#|data:)', svg):
        raise RuntimeError(f"{drawing.title}: the SVG still references an external file")
    return svg.encode()


PNG_ICON_PIXELS = 80  # Graphviz's PNG renderer draws an unscaled image at 1 px per point


def render_png(drawing: Drawing) -> bytes:
    """Render a drawing to PNG (for places that cannot show SVG, such as the README).

    Graphviz would stretch each icon over its whole node, label included; the icons are swapped
    for copies shrunk to :data:`PNG_ICON_PIXELS` and drawn unscaled at the top of the node.
    """
    import tempfile

    from PIL import Image

    drawing.dot.graph_attr["label"] = title_with_legend(drawing)
    with tempfile.TemporaryDirectory(prefix="diagram-icons-") as tmp:
        shrunk: dict[str, str] = {}

        def swap(match: re.Match[str]) -> str:
            original = match["path"]
            if original not in shrunk:
                with Image.open(original) as image:
                    icon = image.convert("RGBA")
                    icon.thumbnail((PNG_ICON_PIXELS, PNG_ICON_PIXELS), Image.Resampling.LANCZOS)
                    target = Path(tmp) / f"icon-{len(shrunk)}.png"
                    icon.save(target, format="PNG")
                shrunk[original] = str(target)
            return f'image="{shrunk[original]}" imagescale=false imagepos=tc'

        source = re.sub(r'image="(?P<path>[^"]+\.png)"', swap, drawing.dot.source)
        return _dot(source, "png")


def fingerprint(*parts: bytes) -> str:
    """A short hash of everything a rendering depends on."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]
