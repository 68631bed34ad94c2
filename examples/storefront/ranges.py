"""Address ranges from a file: one CIDR per line, ``#`` comments, blank lines skipped.

Used for Cloudflare's published ranges by the edge (which peers may set ``CF-Connecting-IP``), the
IP set sync job and the topology (the assets bucket's policy). ``data/cloudflare-ips.txt`` is the
sample list shipped with the examples.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The sample of Cloudflare's published ranges that ships with the examples.
CLOUDFLARE_RANGES_FILE = Path(__file__).resolve().parent / "data" / "cloudflare-ips.txt"


class RangesFileError(ValueError):
    """A ranges file that cannot be used; the message names the file and the line."""


def parse_ranges(lines: Iterable[str], source: str = "<ranges>") -> tuple[Network, ...]:
    """Parse CIDR ranges, one per line; ``#`` starts a comment; blank lines are skipped.

    Args:
        lines: The lines (for example ``Path.read_text().splitlines()``).
        source: What to call the input in error messages (the file's path).

    Returns:
        The networks, in file order, duplicates dropped.

    Raises:
        RangesFileError: A line is not a network in CIDR notation (host bits set included), or
            there is no range at all (an empty allow-list would lock every visitor out).
    """
    networks: dict[Network, None] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            networks[ipaddress.ip_network(text, strict=True)] = None
        except ValueError as error:
            raise RangesFileError(f"{source}:{number}: not a CIDR range: {text!r}") from error
    if not networks:
        raise RangesFileError(f"{source}: no ranges")
    return tuple(networks)


def load_ranges(path: str | Path) -> tuple[Network, ...]:
    """Load ranges from a file (see ``data/cloudflare-ips.txt``).

    Raises:
        RangesFileError: The file holds a bad line or no range.
        OSError: The file cannot be read.
    """
    return parse_ranges(Path(path).read_text(encoding="utf-8").splitlines(), source=str(path))
