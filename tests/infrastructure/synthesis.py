"""Synthesize the CDK app in process, offline (the ``prod`` and ``variant`` fixtures use it).

The session fixtures live in ``tests/conftest.py`` so that every test package (the CDK tests, the
scenarios that assert deployed settings) shares one synthesis of each app.

Two apps: ``prod`` with the production settings, whose values the technology pages state, and
``variant``, the dev environment with every opt-in switched on (Shield Advanced, a standby
origin, large-body paths, a prefix list for S3, an alarm e-mail), so that the optional branches
are synthesized and linted too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template
from infrastructure.inventory import SNAPSHOT_ACCOUNT, SNAPSHOT_REGION, cdk_context
from infrastructure.runtime import load_topology
from infrastructure.settings import EnvironmentSettings, StandbyOrigin, settings_for
from infrastructure.stacks import LAYERS, Storefront, build
from storefront.topology import Topology


@dataclass
class Synthesized:
    """One synthesized app.

    Attributes:
        storefront: The stacks.
        templates: Each stack's template, by layer.
        outdir: The cloud assembly directory (the template files cfn-lint reads).
    """

    storefront: Storefront
    templates: dict[str, dict[str, Any]]
    outdir: Path
    _parsed: dict[str, Template] = field(default_factory=dict)

    @property
    def settings(self) -> EnvironmentSettings:
        return self.storefront.settings

    @property
    def topology(self) -> Topology:
        return load_topology(self.settings)

    def template(self, layer: str) -> Template:
        """The ``aws_cdk.assertions`` view of one stack (parsed once)."""
        if layer not in self._parsed:
            self._parsed[layer] = Template.from_json(self.templates[layer])
        return self._parsed[layer]

    def resources(self, layer: str, resource_type: str) -> dict[str, dict[str, Any]]:
        """The resources of one type in one stack, by logical id."""
        return {
            logical_id: resource
            for logical_id, resource in self.templates[layer]["Resources"].items()
            if resource["Type"] == resource_type
        }

    def one(self, layer: str, resource_type: str) -> dict[str, Any]:
        """The properties of the only resource of a type in a stack."""
        found = self.resources(layer, resource_type)
        assert len(found) == 1, f"{resource_type} in {layer}: {sorted(found)}"
        return next(iter(found.values())).get("Properties", {})

    def key_arn(self, layer: str, alias: str) -> dict[str, Any]:
        """The ``Fn::GetAtt`` of the KMS key behind an alias in a stack."""
        for resource in self.resources(layer, "AWS::KMS::Alias").values():
            if resource["Properties"]["AliasName"] == alias:
                target = resource["Properties"]["TargetKeyId"]
                return {"Fn::GetAtt": [target["Fn::GetAtt"][0], "Arn"]}
        raise AssertionError(f"no key with alias {alias} in {layer}")

    def template_files(self) -> list[Path]:
        """The synthesized template files."""
        return sorted(self.outdir.glob("*.template.json"))


def synthesize(settings: EnvironmentSettings, outdir: Path) -> Synthesized:
    app = cdk.App(outdir=str(outdir), context=cdk_context())
    storefront = build(app, settings)
    assembly = app.synth()
    templates = {
        layer: assembly.get_stack_by_name(stack.stack_name).template
        for layer, stack in zip(LAYERS, storefront.stacks(), strict=True)
    }
    return Synthesized(storefront, templates, outdir)


def synthesize_prod(outdir: Path) -> Synthesized:
    """The production environment, as the technology pages describe it."""
    settings = settings_for("prod", region=SNAPSHOT_REGION, account=SNAPSHOT_ACCOUNT)
    return synthesize(settings, outdir)


def synthesize_variant(outdir: Path) -> Synthesized:
    """Dev with every opt-in on."""
    settings = settings_for(
        "dev",
        region=SNAPSHOT_REGION,
        account=SNAPSHOT_ACCOUNT,
        shield_advanced=True,
        standby=StandbyOrigin(
            regional_domain_name="d-standby.execute-api.eu-central-1.amazonaws.com",
            regional_hosted_zone_id="Z1U9ULNL0V5AJ3",
        ),
        large_body_paths=("/catalog/import",),
        s3_prefix_list_id="pl-6da54004",
        alarm_email="oncall@example.com",
        truststore_version="3",
        origin_secret_rotation=2,
    )
    return synthesize(settings, outdir)
