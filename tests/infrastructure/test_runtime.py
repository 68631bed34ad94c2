"""The runtime topology comes from ``storefront.topology``; the gaps are listed, not hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from infrastructure.runtime import TOPOLOGY_GAPS, extras, load_topology, retention
from infrastructure.settings import settings_for
from storefront.topology import CLOUDFLARE_IP_RANGES, build_topology


def test_the_topology_is_the_storefront_topology_for_the_prefix() -> None:
    settings = settings_for("prod", region="eu-west-1")
    topology = load_topology(settings)
    expected = build_topology(resource_prefix="storefront-prod", cdn_ranges=CLOUDFLARE_IP_RANGES)
    assert topology == expected
    assert extras(settings).staff_pool == "storefront-prod-staff"


def test_a_synced_cloudflare_ranges_file_replaces_the_built_in_list(tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("# synced\n198.51.100.0/24\n")
    settings = settings_for("dev", region="eu-west-1", cloudflare_ranges_file=str(ranges))
    assets = load_topology(settings).bucket("assets")
    assert assets.allow_get_from_ranges == ("198.51.100.0/24",)


def test_what_the_topology_lacks_is_written_down() -> None:
    assert len(TOPOLOGY_GAPS) >= 5
    assert any("staff user pool" in gap for gap in TOPOLOGY_GAPS)


def test_log_retention_accepts_only_cloudwatch_values() -> None:
    assert retention(30) is not None
    with pytest.raises(ValueError, match="no 31-day retention"):
        retention(31)
