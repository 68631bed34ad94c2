"""Settings are typed, validated and read from the CDK context; services match the topology."""

from __future__ import annotations

import pytest
from infrastructure.runtime import load_topology
from infrastructure.settings import TaskSize, settings_for, settings_from_context


def test_prod_and_dev_differ_in_size_not_in_shape() -> None:
    prod = settings_for("prod", region="eu-west-1")
    dev = settings_for("dev", region="eu-west-1")
    assert (prod.nat_gateways, dev.nat_gateways) == (3, 1)
    assert (prod.database.multi_az, dev.database.multi_az) == (True, False)
    assert (prod.cache.multi_az, dev.cache.multi_az) == (True, False)
    assert (prod.documentdb.instances, dev.documentdb.instances) == (3, 1)
    assert prod.api.min_tasks == 3 > dev.api.min_tasks
    assert prod.resource_prefix == "storefront-prod" != dev.resource_prefix
    assert prod.stack_name("network") == "storefront-prod-network"


def test_account_and_region_come_from_the_context_or_the_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "222222222222")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-central-1")
    from_cli = settings_from_context({})
    assert (from_cli.name, from_cli.account, from_cli.region) == (
        "dev",
        "222222222222",
        "eu-central-1",
    )
    assert from_cli.availability_zones == ("eu-central-1a", "eu-central-1b", "eu-central-1c")
    explicit = settings_from_context(
        {
            "env": "prod",
            "account": "333333333333",
            "region": "us-west-2",
            "availabilityZones": "us-west-2b, us-west-2c, us-west-2d",
            "shieldAdvanced": "true",
            "imageTag": "2.3.4",
            "prefix": "acme-prod",
        }
    )
    assert (explicit.account, explicit.region) == ("333333333333", "us-west-2")
    assert explicit.availability_zones == ("us-west-2b", "us-west-2c", "us-west-2d")
    assert explicit.shield_advanced is True
    assert explicit.image_tag == "2.3.4"
    assert load_topology(explicit).bucket("assets").name == "acme-prod-assets"


def test_offline_synthesis_needs_no_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    settings = settings_from_context({"env": "prod"})
    assert (settings.account, settings.region) == (None, "eu-west-1")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"region": "europe"}, "not a Region name"),
        ({"account": "12345"}, "not an account id"),
        ({"availability_zones": ("eu-west-1a", "eu-west-1b")}, "exactly three AZs"),
        ({"availability_zones": ("us-east-1a", "us-east-1b", "us-east-1c")}, "are not in"),
        ({"integration_timeout_ms": 30_000}, "integration timeout"),
        ({"waf_rate_limit": 5}, "WAF rate limit"),
        ({"resource_prefix": "Storefront"}, "bad resource prefix"),
    ],
)
def test_invalid_settings_fail_before_synthesis(overrides: dict, message: str) -> None:
    region = overrides.pop("region", "eu-west-1")
    with pytest.raises(ValueError, match=message):
        settings_for("prod", region=region, **overrides)


def test_only_fargate_sizes_are_accepted() -> None:
    with pytest.raises(ValueError, match="not a Fargate size"):
        TaskSize(cpu=512, memory_mib=512, min_tasks=1, max_tasks=2)
