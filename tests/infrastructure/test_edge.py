"""The edge stack sets what the WAF & Shield, Cloudflare and Route 53 pages claim."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match
from infrastructure.edge import CLIENT_IP_HEADER, CORE_RULE_SET_VERSION, ORIGIN_HEADER
from infrastructure.services import api_services

from tests.infrastructure.synthesis import Synthesized

LAYER = "edge"


def rules(synth: Synthesized) -> dict[str, dict[str, Any]]:
    web_acl = synth.one(LAYER, "AWS::WAFv2::WebACL")
    return {rule["Name"]: rule for rule in web_acl["Rules"]}


def test_the_web_acl_is_regional_and_associated_with_the_rest_api_stage(prod: Synthesized) -> None:
    web_acl = prod.one(LAYER, "AWS::WAFv2::WebACL")
    assert web_acl["Scope"] == "REGIONAL"
    assert web_acl["DefaultAction"] == {"Allow": {}}
    association = prod.one(LAYER, "AWS::WAFv2::WebACLAssociation")
    assert association["WebACLArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    parts = association["ResourceArn"]["Fn::Join"][1]
    assert ":apigateway:eu-west-1::/restapis/" in parts[2]
    assert "/stages/" in parts[4]
    assert "ExportsOutputRefStage" in parts[5]["Fn::ImportValue"]


def test_the_origin_lock_runs_first_and_accepts_the_current_or_previous_secret(
    prod: Synthesized,
) -> None:
    lock = rules(prod)["OriginLock"]
    assert lock["Priority"] == 0
    assert lock["Action"] == {"Block": {}}
    statements = lock["Statement"]["NotStatement"]["Statement"]["OrStatement"]["Statements"]
    assert len(statements) == 2
    secrets = []
    for statement in statements:
        match = statement["ByteMatchStatement"]
        assert match["FieldToMatch"] == {"SingleHeader": {"Name": ORIGIN_HEADER}}
        assert match["PositionalConstraint"] == "EXACTLY"
        assert match["TextTransformations"] == [{"Priority": 0, "Type": "NONE"}]
        # Resolved from Secrets Manager at deployment, never written into the template.
        join = match["SearchString"]["Fn::Join"][1]
        assert join[0] == "{{resolve:secretsmanager:"
        secrets.append(join[1]["Ref"])
    assert len(set(secrets)) == 2


def test_the_rate_rule_keys_on_cf_connecting_ip_and_matches_when_it_is_missing(
    prod: Synthesized,
) -> None:
    rate = rules(prod)["RatePerClient"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "Limit": 1_000,
        "EvaluationWindowSec": 300,
        "AggregateKeyType": "FORWARDED_IP",
        "ForwardedIPConfig": {"HeaderName": CLIENT_IP_HEADER, "FallbackBehavior": "MATCH"},
    }


def test_managed_rule_groups_are_the_chosen_three_with_the_core_set_pinned(
    prod: Synthesized,
) -> None:
    found = rules(prod)
    managed = {
        name: rule["Statement"]["ManagedRuleGroupStatement"]
        for name, rule in found.items()
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }
    assert set(managed) == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesSQLiRuleSet",
    }
    assert managed["AWSManagedRulesCommonRuleSet"]["Version"] == CORE_RULE_SET_VERSION
    # No override in production: SizeRestrictions_BODY blocks bodies over 8 KB everywhere.
    assert "RuleActionOverrides" not in managed["AWSManagedRulesCommonRuleSet"]
    # They judge the connecting address, which is always Cloudflare's.
    assert "AWSManagedRulesAmazonIpReputationList" not in found
    assert "AWSManagedRulesAnonymousIpList" not in found
    for rule in found.values():
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
        assert rule["VisibilityConfig"]["SampledRequestsEnabled"] is True


def test_large_bodies_are_allowed_only_on_the_configured_paths(variant: Synthesized) -> None:
    found = rules(variant)
    core = found["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert core["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}
    ]
    block = found["LargeBodiesOnlyWhereAllowed"]
    assert block["Action"] == {"Block": {}}
    assert block["Priority"] > found["AWSManagedRulesCommonRuleSet"]["Priority"]
    label, elsewhere = block["Statement"]["AndStatement"]["Statements"]
    assert label["LabelMatchStatement"]["Key"].endswith(":SizeRestrictions_Body")
    path = elsewhere["NotStatement"]["Statement"]["ByteMatchStatement"]
    assert path["SearchString"] == "/catalog/import"


def test_the_token_and_the_origin_secret_are_redacted_and_protected(prod: Synthesized) -> None:
    web_acl = prod.one(LAYER, "AWS::WAFv2::WebACL")
    protected = [
        d["Field"]["FieldKeys"][0] for d in web_acl["DataProtectionConfig"]["DataProtections"]
    ]
    assert protected == ["authorization", ORIGIN_HEADER]
    logging = prod.one(LAYER, "AWS::WAFv2::LoggingConfiguration")
    assert logging["RedactedFields"] == [
        {"SingleHeader": {"Name": "authorization"}},
        {"SingleHeader": {"Name": ORIGIN_HEADER}},
    ]
    destination = logging["LogDestinationConfigs"][0]["Fn::Join"][1][-1]
    assert destination.endswith(":log-group:aws-waf-logs-storefront-prod-api")
    prod.template(LAYER).has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": "aws-waf-logs-storefront-prod-api",
            "RetentionInDays": 90,
            "KmsKeyId": Match.any_value(),
        },
    )


def test_the_origin_name_is_a_health_checked_primary_failover_alias(prod: Synthesized) -> None:
    records = prod.resources(LAYER, "AWS::Route53::RecordSet")
    failover = [r["Properties"] for r in records.values() if "Failover" in r["Properties"]]
    assert len(failover) == 1  # no standby configured
    [primary] = failover
    assert primary["Name"] == f"{prod.settings.origin_api_domain}."
    assert (primary["Type"], primary["Failover"]) == ("A", "PRIMARY")
    assert primary["HealthCheckId"] == {"Fn::GetAtt": ["PrimaryHealth", "HealthCheckId"]}
    assert primary["AliasTarget"]["EvaluateTargetHealth"] is False
    assert "RegionalDomainName" in primary["AliasTarget"]["DNSName"]["Fn::ImportValue"]
    health = prod.one(LAYER, "AWS::Route53::HealthCheck")["HealthCheckConfig"]
    assert health["Type"] == "CLOUDWATCH_METRIC"
    assert health["InsufficientDataHealthStatus"] == "LastKnownStatus"
    assert health["AlarmIdentifier"]["Region"] == "eu-west-1"


def test_the_health_checks_alarm_is_the_canary_over_three_one_minute_periods(
    prod: Synthesized,
) -> None:
    alarm = prod.one(LAYER, "AWS::CloudWatch::Alarm")
    assert alarm["MetricName"] == "SuccessPercent"
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 3, 3)
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    canary = prod.one(LAYER, "AWS::Synthetics::Canary")
    assert canary["Schedule"]["Expression"] == "rate(1 minute)"
    variables = canary["RunConfig"]["EnvironmentVariables"]
    # The primary endpoint directly, never the Cloudflare name that follows the failover.
    assert "RegionalDomainName" in str(variables["TARGET_HOST"])
    assert variables["PUBLIC_NAME"] == prod.settings.api_domain


def test_a_standby_origin_gets_the_secondary_record(variant: Synthesized) -> None:
    records = variant.resources(LAYER, "AWS::Route53::RecordSet")
    failover = {
        r["Properties"]["Failover"]: r["Properties"]
        for r in records.values()
        if "Failover" in r["Properties"]
    }
    assert set(failover) == {"PRIMARY", "SECONDARY"}
    secondary = failover["SECONDARY"]
    assert "HealthCheckId" not in secondary
    assert secondary["AliasTarget"]["DNSName"].startswith("d-standby.")
    assert {r["SetIdentifier"] for r in failover.values()} == {"primary", "secondary"}


def test_private_names_alias_the_alb_and_point_at_the_data_endpoints_for_60_seconds(
    prod: Synthesized,
) -> None:
    records = [r["Properties"] for r in prod.resources(LAYER, "AWS::Route53::RecordSet").values()]
    internal = prod.settings.internal_zone
    aliases = {r["Name"] for r in records if r["Type"] == "A" and "Failover" not in r}
    assert aliases == {f"{s.name}.{internal}." for s in api_services()}
    cnames = {r["Name"]: r for r in records if r["Type"] == "CNAME"}
    assert set(cnames) == {
        f"{name}.{internal}."
        for name in ("db", "cache", "cache-reader", "events-db", "events-db-reader")
    }
    assert {r["TTL"] for r in cnames.values()} == {"60"}


def test_shield_advanced_is_opt_in_and_protects_the_origin_zone(
    prod: Synthesized, variant: Synthesized
) -> None:
    for layer in prod.templates:
        assert not prod.resources(layer, "AWS::Shield::Protection")
        assert not prod.resources(layer, "AWS::Shield::Subscription")
    protection = variant.one(LAYER, "AWS::Shield::Protection")
    assert ":route53:::hostedzone/" in str(protection["ResourceArn"])


def test_a_secret_rotation_updates_the_web_acl(variant: Synthesized) -> None:
    assert variant.one(LAYER, "AWS::WAFv2::WebACL")["Description"].endswith("rotation 2")
