"""The network stack: three AZs, three tiers, endpoints and security groups that name callers.

Claims of the Deployment & network and Security pages and the ALB, ECS Fargate, RDS, Redis and
Route 53 pages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from aws_cdk.assertions import Match
from infrastructure.network import INTERFACE_ENDPOINTS
from infrastructure.services import SERVICES

from tests.infrastructure.synthesis import Synthesized

LAYER = "network"


def subnets_by_tier(prod: Synthesized) -> dict[str, list[dict[str, Any]]]:
    tiers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for subnet in prod.resources(LAYER, "AWS::EC2::Subnet").values():
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        tiers[tags["aws-cdk:subnet-name"]].append(subnet["Properties"])
    return tiers


def test_the_vpc_spans_three_zones_in_three_tiers_with_dns_for_private_zones(
    prod: Synthesized,
) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::EC2::VPC", {"EnableDnsHostnames": True, "EnableDnsSupport": True}
    )
    tiers = subnets_by_tier(prod)
    assert set(tiers) == {"public", "private", "isolated"}
    for name, subnets in tiers.items():
        assert sorted(s["AvailabilityZone"] for s in subnets) == list(
            prod.settings.availability_zones
        ), name
    assert all(s["MapPublicIpOnLaunch"] is False for s in tiers["private"] + tiers["isolated"])
    assert len(prod.resources(LAYER, "AWS::EC2::NatGateway")) == 3


def test_isolated_subnets_have_no_route_out(prod: Synthesized) -> None:
    routes = prod.resources(LAYER, "AWS::EC2::Route")
    isolated_tables = {
        association["Properties"]["RouteTableId"]["Ref"]
        for lid, association in prod.resources(
            LAYER, "AWS::EC2::SubnetRouteTableAssociation"
        ).items()
        if "isolated" in lid
    }
    assert len(isolated_tables) == 3
    for route in routes.values():
        assert route["Properties"]["RouteTableId"]["Ref"] not in isolated_tables


def test_the_aws_apis_are_reached_through_vpc_endpoints(prod: Synthesized) -> None:
    endpoints = prod.resources(LAYER, "AWS::EC2::VPCEndpoint")
    interface = [
        e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert len(interface) == len(INTERFACE_ENDPOINTS)
    assert all(e["Properties"]["PrivateDnsEnabled"] is True for e in interface)
    gateway = [e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Gateway"]
    assert len(gateway) == 1
    assert "s3" in str(gateway[0]["Properties"]["ServiceName"])


def test_no_cognito_endpoint_captures_the_user_pool_calls(prod: Synthesized) -> None:
    # A user pool with a domain cannot be used through PrivateLink; both pools have one, so the
    # Admin* calls and the JWKS fetches must leave through NAT, not a cognito-idp endpoint.
    services = json.dumps(
        [
            e["Properties"]["ServiceName"]
            for e in prod.resources(LAYER, "AWS::EC2::VPCEndpoint").values()
        ]
    )
    assert "cognito" not in services, services


def test_the_events_endpoint_allows_put_events_on_the_storefront_bus_only(
    prod: Synthesized,
) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": "com.amazonaws.eu-west-1.events",
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Action": "events:PutEvents",
                            "Effect": "Allow",
                            "Resource": Match.any_value(),
                        }
                    )
                ]
            },
        },
    )


def rules(prod: Synthesized, direction: str) -> list[dict[str, Any]]:
    """Every ingress or egress rule, inline or standalone, with its group's logical id."""
    found: list[dict[str, Any]] = []
    key = "SecurityGroupIngress" if direction == "ingress" else "SecurityGroupEgress"
    for lid, group in prod.resources(LAYER, "AWS::EC2::SecurityGroup").items():
        for rule in group["Properties"].get(key, []):
            found.append({"group": lid, **rule})
    for resource in prod.resources(LAYER, f"AWS::EC2::{key}").values():
        p = dict(resource["Properties"])
        p["group"] = p.pop("GroupId")["Fn::GetAtt"][0]
        found.append(p)
    return found


def peer(rule: dict[str, Any]) -> str:
    for key in ("SourceSecurityGroupId", "DestinationSecurityGroupId"):
        if key in rule:
            return rule[key]["Fn::GetAtt"][0]
    return rule.get("CidrIp") or rule.get("DestinationPrefixListId") or rule.get("CidrIpv6", "")


def test_no_security_group_admits_an_address_range(prod: Synthesized) -> None:
    for rule in rules(prod, "ingress"):
        assert "CidrIp" not in rule, rule
        assert "CidrIpv6" not in rule, rule


def test_each_tier_admits_only_its_named_callers(prod: Synthesized) -> None:
    ingress: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for rule in rules(prod, "ingress"):
        ingress[rule["group"]].add((peer(rule), rule["FromPort"]))

    def group(prefix: str) -> str:
        [lid] = [
            g for g in prod.resources(LAYER, "AWS::EC2::SecurityGroup") if g.startswith(prefix)
        ]
        return lid

    tasks = {
        s.name: group("Task" + "".join(p.capitalize() for p in s.name.split("-")) + "Sg")
        for s in SERVICES
    }
    assert ingress[group("AlbSg")] == {(group("VpcLinkSg"), 443)}
    assert ingress[group("DatabaseSg")] == {(group("ProxySg"), 5432), (group("MigrationSg"), 5432)}
    assert ingress[group("ProxySg")] == {(tasks[s.name], 5432) for s in SERVICES if s.database_user}
    assert ingress[group("CacheSg")] == {(tasks[s.name], 6379) for s in SERVICES if s.cache_user}
    assert ingress[group("DocumentDbSg")] == {
        (tasks[s.name], 27017) for s in SERVICES if s.event_store_user
    }
    for service in SERVICES:
        expected = {(group("AlbSg"), 3000)} if service.is_api else set()
        assert ingress[tasks[service.name]] == expected, service.name
    assert group("VpcLinkSg") not in ingress


def test_egress_is_named_except_https_for_the_s3_gateway_and_jwks(prod: Synthesized) -> None:
    for rule in rules(prod, "egress"):
        if rule.get("CidrIp") == "0.0.0.0/0":
            assert (rule["FromPort"], rule["ToPort"]) == (443, 443), rule
            assert rule["group"].startswith("Task"), rule
        elif "CidrIp" in rule:
            # The CDK's placeholder for "no egress" on groups without outbound rules.
            assert rule["CidrIp"] == "255.255.255.255/32", rule


def _group_prefix(name: str) -> str:
    return "Task" + "".join(part.capitalize() for part in name.split("-")) + "Sg"


def test_with_a_prefix_list_only_apis_and_the_webhook_sender_keep_any_address_https(
    variant: Synthesized,
) -> None:
    open_groups = {
        rule["group"] for rule in rules(variant, "egress") if rule.get("CidrIp") == "0.0.0.0/0"
    }
    allowed = [_group_prefix(s.name) for s in SERVICES if s.is_api or s.internet_egress]
    for name in open_groups:
        assert any(name.startswith(prefix) for prefix in allowed), name
    # The notification sender delivers webhooks to the internet: narrowing it to S3 would
    # silently stop them (every delivery would time out and end in the DLQ).
    sender = _group_prefix("notification-sender")
    assert any(name.startswith(sender) for name in open_groups), open_groups
    # The other workers reach S3 only through the prefix list.
    fulfillment = _group_prefix("fulfillment")
    assert not any(name.startswith(fulfillment) for name in open_groups), open_groups


def test_the_origin_zone_is_public_and_kept_the_internal_zone_private(prod: Synthesized) -> None:
    zones = prod.resources(LAYER, "AWS::Route53::HostedZone")
    by_name = {z["Properties"]["Name"]: z for z in zones.values()}
    origin = by_name[f"{prod.settings.origin_zone}."]
    assert origin["DeletionPolicy"] == "Retain"
    assert "VPCs" not in origin["Properties"]
    internal = by_name[f"{prod.settings.internal_zone}."]
    assert len(internal["Properties"]["VPCs"]) == 1


def test_the_logs_key_admits_cloudwatch_logs_of_this_account_and_region(prod: Synthesized) -> None:
    key = prod.one(LAYER, "AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    [logs] = [s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudWatchLogs"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
