"""The API stack sets what the API Gateway page claims (and the ALB page's integration side)."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match
from infrastructure.api import ACCESS_LOG_FORMAT
from infrastructure.services import api_services

from tests.infrastructure.synthesis import Synthesized

LAYER = "api"


def methods(prod: Synthesized) -> dict[str, dict]:
    return {
        logical_id: r["Properties"]
        for logical_id, r in prod.resources(LAYER, "AWS::ApiGateway::Method").items()
    }


def test_the_rest_api_is_regional_and_the_execute_api_endpoint_is_disabled(
    prod: Synthesized,
) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {"EndpointConfiguration": {"Types": ["REGIONAL"]}, "DisableExecuteApiEndpoint": True},
    )


def test_the_private_integration_uses_a_vpc_link_v2_and_no_network_load_balancer(
    prod: Synthesized,
) -> None:
    link = prod.one(LAYER, "AWS::ApiGatewayV2::VpcLink")
    assert len(link["SubnetIds"]) == 3
    assert all("privateSubnet" in s["Fn::ImportValue"] for s in link["SubnetIds"])
    assert "VpcLinkSg" in link["SecurityGroupIds"][0]["Fn::ImportValue"]
    for synth_layer in prod.templates:
        assert not prod.resources(synth_layer, "AWS::ApiGateway::VpcLink"), "VPC link V1"
        for lb in prod.resources(synth_layer, "AWS::ElasticLoadBalancingV2::LoadBalancer").values():
            assert lb["Properties"].get("Type", "application") == "application"


def test_every_method_is_an_https_proxy_to_the_alb_over_the_vpc_link(prod: Synthesized) -> None:
    alb_domain = prod.settings.alb_domain
    for logical_id, method in methods(prod).items():
        integration = method["Integration"]
        assert integration["Type"] == "HTTP_PROXY", logical_id
        assert integration["ConnectionType"] == "VPC_LINK"
        assert integration["ConnectionId"] == {"Ref": "VpcLinkV2"}
        assert "ExportsOutputRefAlb" in integration["IntegrationTarget"]["Fn::ImportValue"]
        assert integration["Uri"].startswith(f"https://{alb_domain}/")
        # 10 s, inside the 50-29,000 ms range; the services answer before the gateway cuts off.
        assert integration["TimeoutInMillis"] == 10_000
        assert "TlsConfig" not in integration  # certificate verification stays on
        if "{proxy}" in integration["Uri"]:
            # The ALB sees /orders/..., not /<stage>/orders/...
            assert integration["RequestParameters"] == {
                "integration.request.path.proxy": "method.request.path.proxy"
            }


def test_the_authorizer_names_both_user_pools_and_reads_the_authorization_header(
    prod: Synthesized,
) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::ApiGateway::Authorizer",
        {
            "Type": "COGNITO_USER_POOLS",
            "IdentitySource": "method.request.header.Authorization",
            "ProviderARNs": [
                {"Fn::ImportValue": Match.string_like_regexp("CustomerPool")},
                {"Fn::ImportValue": Match.string_like_regexp("StaffPool")},
            ],
        },
    )


def test_protected_methods_require_scopes_so_only_access_tokens_work(prod: Synthesized) -> None:
    anonymous = set()
    for logical_id, method in methods(prod).items():
        if method["AuthorizationType"] == "NONE":
            anonymous.add(logical_id)
            continue
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert method["AuthorizerId"] == {"Ref": "CognitoAuthorizer"}
        assert method["AuthorizationScopes"], logical_id
        assert all(s.startswith("storefront/") for s in method["AuthorizationScopes"])
    # Only the catalog's reads (cached by Cloudflare) and the canary's health route are open.
    assert anonymous == {"GetCatalog", "GetCatalogProxy", "GetHealth"}
    services = {s.name for s in api_services()}
    assert services == {"catalog", "cart", "orders", "payments", "accounts", "analytics"}


def test_the_stage_throttles_logs_errors_only_and_writes_json_access_logs(
    prod: Synthesized,
) -> None:
    stage = prod.one(LAYER, "AWS::ApiGateway::Stage")
    assert stage["StageName"] == "prod"
    assert stage["CacheClusterEnabled"] is False
    default, checkout = stage["MethodSettings"]
    assert (default["ResourcePath"], default["HttpMethod"]) == ("/*", "*")
    assert (default["ThrottlingRateLimit"], default["ThrottlingBurstLimit"]) == (500, 1000)
    assert default["LoggingLevel"] == "ERROR"
    assert default["DataTraceEnabled"] is False
    assert default["CachingEnabled"] is False
    assert (checkout["ResourcePath"], checkout["HttpMethod"]) == ("/~1cart~1checkout", "POST")
    assert checkout["ThrottlingRateLimit"] < default["ThrottlingRateLimit"]
    log_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert log_format == ACCESS_LOG_FORMAT
    assert {"requestId", "extendedRequestId", "status", "integrationStatus", "sub"} <= set(
        log_format
    )
    prod.template(LAYER).has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": "/aws/apigateway/storefront-prod-access", "RetentionInDays": 30},
    )


def test_a_method_change_makes_a_new_deployment(prod: Synthesized) -> None:
    deployments = prod.resources(LAYER, "AWS::ApiGateway::Deployment")
    [(logical_id, deployment)] = deployments.items()
    assert logical_id.startswith("Deployment")
    assert set(deployment["DependsOn"]) >= set(methods(prod))


def test_custom_domains_are_regional_with_mutual_tls_and_the_legacy_tls_policy(
    prod: Synthesized,
) -> None:
    domains = prod.resources(LAYER, "AWS::ApiGateway::DomainName")
    names = sorted(d["Properties"]["DomainName"] for d in domains.values())
    assert names == sorted([prod.settings.api_domain, prod.settings.origin_api_domain])
    for domain in domains.values():
        p = domain["Properties"]
        assert p["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
        # Mutual TLS cannot be combined with the enhanced SecurityPolicy_* policies.
        assert p["SecurityPolicy"] == "TLS_1_2"
        assert p["MutualTlsAuthentication"]["TruststoreUri"] == (
            "s3://storefront-prod-truststore/truststore.pem"
        )
    assert len(prod.resources(LAYER, "AWS::ApiGateway::BasePathMapping")) == 2
    prod.template(LAYER).has_resource_properties(
        "AWS::CertificateManager::Certificate",
        {
            "DomainName": prod.settings.api_domain,
            "SubjectAlternativeNames": [prod.settings.origin_api_domain],
            "ValidationMethod": "DNS",
        },
    )


def test_the_truststore_version_is_pinned_when_given(variant: Synthesized) -> None:
    for domain in variant.resources(LAYER, "AWS::ApiGateway::DomainName").values():
        assert domain["Properties"]["MutualTlsAuthentication"]["TruststoreVersion"] == "3"
