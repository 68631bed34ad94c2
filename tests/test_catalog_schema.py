"""The catalog schema accepts the committed catalog and rejects each kind of bad data by name."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sitebuild.catalog import CatalogError, load_catalog

CATALOG = Path(__file__).resolve().parent.parent / "docs" / "data" / "stack.yaml"
SHOWN = "docs/data/stack.yaml"

# The eighteen technologies of the brief (../shared/seed), by the catalog's ids.
BRIEF_TECHNOLOGIES = {
    "cloudflare", "api-gateway", "cognito", "ecs-fargate", "alb", "s3", "waf-shield",
    "eventbridge", "rds", "documentdb", "route53", "sns-sqs", "nestjs", "opentelemetry",
    "pino", "typeorm", "postgresql", "redis",
}  # fmt: skip


def raw_catalog() -> dict[str, Any]:
    return yaml.safe_load(CATALOG.read_text(encoding="utf-8"))


def tech(raw: dict[str, Any], tech_id: str) -> dict[str, Any]:
    return next(t for t in raw["technologies"] if t["id"] == tech_id)


def test_the_committed_catalog_is_valid_and_covers_the_brief() -> None:
    catalog = load_catalog(CATALOG)
    assert {t.id for t in catalog.technologies} == BRIEF_TECHNOLOGIES
    assert all(len(t.limits) >= 3 for t in catalog.technologies)


def test_connections_are_seen_from_both_ends() -> None:
    catalog = load_catalog(CATALOG)
    from_gateway = {c.peer: c.direction for c in catalog.connections("api-gateway")}
    # Declared by API Gateway (outbound to the ALB) and by Cloudflare (outbound to API Gateway).
    assert from_gateway["alb"] == "outbound"
    assert from_gateway["cloudflare"] == "inbound"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets (or, with value ..., deletes) a field of the cloudflare entry."""

    def mutate(raw: dict[str, Any]) -> None:
        node: Any = tech(raw, "cloudflare")
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return mutate


def _duplicate_cloudflare(raw: dict[str, Any]) -> None:
    raw["technologies"].append(copy.deepcopy(tech(raw, "cloudflare")))


def _edge_declared_twice(raw: dict[str, Any]) -> None:
    # API Gateway already declares its edge to the ALB; the ALB declares it again.
    tech(raw, "alb")["edges"].append(
        {
            "to": "api-gateway",
            "direction": "inbound",
            "protocol": "HTTP",
            "auth": "SG",
            "carries": "x",
        }
    )


TOMORROW = dt.date.today() + dt.timedelta(days=1)

BAD_DATA = {
    "missing source URL": (
        _set("limits.0.source", ...),
        f"{SHOWN}: technologies[cloudflare].limits[0].source: Field required",
    ),
    "source that is not https": (
        _set("limits.0.source", "http://developers.cloudflare.com/x"),
        f"{SHOWN}: technologies[cloudflare].limits[0].source: 'http://developers.cloudflare.com/x' "
        "is not an https:// URL of a documentation page",
    ),
    "malformed date": (
        _set("limits.1.checked", "03/12/2026"),
        f"{SHOWN}: technologies[cloudflare].limits[1].checked: '03/12/2026' is not a date in the "
        "form YYYY-MM-DD",
    ),
    "impossible date": (
        _set("limits.1.checked", "2026-02-30"),
        f"{SHOWN}: technologies[cloudflare].limits[1].checked: '2026-02-30' is not a calendar date",
    ),
    "date in the future": (
        _set("limits.1.checked", TOMORROW),
        f"{SHOWN}: technologies[cloudflare].limits[1].checked: {TOMORROW.isoformat()} is in the "
        "future",
    ),
    "missing date": (
        _set("limits.2.checked", ...),
        f"{SHOWN}: technologies[cloudflare].limits[2].checked: Field required",
    ),
    "edge to an unknown technology": (
        _set("edges.1.to", "cloudfront"),
        f"{SHOWN}: technologies[cloudflare].edges[1].to: unknown technology or actor 'cloudfront'",
    ),
    "duplicate id": (
        _duplicate_cloudflare,
        f"{SHOWN}: technologies and actors: duplicate id 'cloudflare'",
    ),
    "unknown layer": (
        _set("layer", "frontend"),
        f"{SHOWN}: technologies[cloudflare].layer: unknown layer 'frontend'",
    ),
    "edge declared on both ends": (
        _edge_declared_twice,
        f"{SHOWN}: technologies[alb].edges[1].to: the edge alb - api-gateway is already declared "
        "at technologies[api-gateway].edges[1]",
    ),
    "misspelt field": (
        _set("limits.0.sorce", "https://developers.cloudflare.com/"),
        f"{SHOWN}: technologies[cloudflare].limits[0].sorce: Extra inputs are not permitted",
    ),
    "fewer than three limits": (
        _set("limits", []),
        f"{SHOWN}: technologies[cloudflare].limits: List should have at least 3 items",
    ),
    "edge direction outside the vocabulary": (
        _set("edges.0.direction", "sideways"),
        f"{SHOWN}: technologies[cloudflare].edges[0].direction: Input should be 'outbound', "
        "'inbound' or 'bidirectional'",
    ),
}


@pytest.mark.parametrize(("mutate", "expected"), BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_catalog_data_is_rejected_naming_file_entry_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    raw = raw_catalog()
    mutate(raw)
    bad = tmp_path / "stack.yaml"
    bad.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(bad, display_path=SHOWN)
    assert any(problem.startswith(expected) for problem in caught.value.problems), (
        caught.value.problems
    )


def test_a_file_that_is_not_yaml_is_rejected_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "stack.yaml"
    bad.write_text("layers: [edge\ntechnologies: {", encoding="utf-8")
    with pytest.raises(
        CatalogError, match=r"^invalid technology catalog:\nbad\.yaml: not valid YAML"
    ):
        load_catalog(bad, display_path="bad.yaml")


def test_a_missing_file_is_rejected_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nowhere\.yaml: cannot read the catalog"):
        load_catalog(tmp_path / "nowhere.yaml", display_path="nowhere.yaml")
