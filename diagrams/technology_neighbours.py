"""One focused diagram per technology: the technology and its direct neighbours.

Generated from the catalog's edges, so it cannot contradict the catalog or the larger diagrams.
"""

from sitebuild.diagramkit import CATALOG, Drawing, flow, tech

# Rendered once per technology, as technologies/<id>.svg.
PER_TECHNOLOGY = True
TITLE = "{name} and its direct neighbours"
ALT = "{name} and the technologies it connects to: {peers}."

_KIND = {"in-process": "request", "DNS": "control", "OTLP": "telemetry", "stdout": "telemetry"}


def _kind(protocol: str, peer: str) -> str:
    if peer in {"eventbridge", "sns-sqs"}:
        return "event"
    return next((kind for key, kind in _KIND.items() if key in protocol), "request")


def draw(technology_id: str) -> Drawing:
    """Draw one technology with every catalog edge that touches it."""
    tech_entry = CATALOG.technology(technology_id)
    with Drawing(TITLE.format(name=tech_entry.name)) as drawing:
        centre = tech(technology_id)
        for connection in CATALOG.connections(technology_id):
            peer = tech(connection.peer)
            edge = flow(_kind(connection.edge.protocol, connection.peer), connection.edge.carries)
            if connection.direction == "inbound":
                peer >> edge >> centre
            else:
                centre >> edge >> peer
    return drawing


def alt_text(technology_id: str) -> str:
    """The alt text for one technology's focused diagram."""
    peers = [CATALOG.name_of(c.peer) for c in CATALOG.connections(technology_id)]
    return ALT.format(name=CATALOG.name_of(technology_id), peers=", ".join(peers))
