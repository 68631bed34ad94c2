"""The API layer's front door: the REST API, its private integration and custom domains.

A Regional REST API with the default ``execute-api`` endpoint disabled, reachable only through
two custom domains with mutual TLS (the public name Cloudflare sends as SNI, and the origin name
the Route 53 failover records point at). Every API service gets ``/<service>`` and
``/<service>/{proxy+}`` with a Cognito user pools authorizer that requires one of the service's
scopes, and an ``HTTP_PROXY`` private integration over a VPC link V2 straight to the internal
ALB (no Network Load Balancer): ``connectionType`` ``VPC_LINK``, the VPC link V2 id as
``connectionId`` and the ALB's ARN as ``integrationTarget``, with an ``https://`` URI whose host
is the name on the ALB's certificate.

CloudFormation has no VPC link V2 resource of its own for REST APIs: a VPC link V2 is the
``AWS::ApiGatewayV2::VpcLink`` resource (created by the ``apigatewayv2`` API), and
``AWS::ApiGateway::Method`` gained ``Integration.IntegrationTarget`` for it. There is no CDK L2
for either, so the whole API is written at the CloudFormation level, including the deployment:
its logical id carries a fingerprint of the methods, so that every change to a method creates a
new deployment (REST API changes reach a stage only through a deployment).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigatewayv2
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure.compute import ComputeStack
from infrastructure.identity import IdentityStack
from infrastructure.network import NetworkStack
from infrastructure.runtime import RESOURCE_SERVER_ID, retention
from infrastructure.services import HEALTH_PATH, Service, api_services
from infrastructure.settings import EnvironmentSettings

ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "integrationError": "$context.integration.error",
    "wafResponseCode": "$context.wafResponseCode",
    "authorizerError": "$context.authorizer.error",
    "sub": "$context.authorizer.claims.sub",
    # A Cloudflare address: the client's is in CF-Connecting-IP (service and WAF logs).
    "sourceIp": "$context.identity.sourceIp",
}


class ApiStack(Stack):
    """REST API, VPC link V2, authorizer, stage and custom domains.

    Attributes:
        api: The REST API.
        stage: Its stage (named after the environment).
        domains: The custom domains, by domain name.
        stage_arn: The stage's ARN (the AWS WAF association's resource).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        network: NetworkStack,
        identity: IdentityStack,
        compute: ComputeStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._compute = compute
        self._network = network
        p = settings.resource_prefix
        self._methods: list[apigateway.CfnMethod] = []
        self._fingerprint: list[Any] = []

        # --8<-- [start:rest-api]
        self.api = apigateway.CfnRestApi(
            self,
            "RestApi",
            name=f"{p}-api",
            description="Storefront API: Cloudflare -> AWS WAF -> Cognito -> VPC link V2 -> ALB",
            endpoint_configuration=apigateway.CfnRestApi.EndpointConfigurationProperty(
                types=["REGIONAL"]
            ),
            # Otherwise the generated execute-api host bypasses mutual TLS.
            disable_execute_api_endpoint=True,
        )
        self.vpc_link = apigatewayv2.CfnVpcLink(
            self,
            "VpcLinkV2",
            name=f"{p}-alb",
            subnet_ids=network.vpc.select_subnets(
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
            ).subnet_ids,
            security_group_ids=[network.vpc_link_sg.security_group_id],
        )
        self.authorizer = apigateway.CfnAuthorizer(
            self,
            "CognitoAuthorizer",
            rest_api_id=self.api.ref,
            name="cognito-user-pools",
            type="COGNITO_USER_POOLS",
            provider_arns=[identity.customer_pool.attr_arn, identity.staff_pool.attr_arn],
            identity_source="method.request.header.Authorization",
        )
        # --8<-- [end:rest-api]

        for service in api_services():
            self._routes(service)
        self._health()
        self._stage()
        self._domains(network)

    # --- Routes -------------------------------------------------------------------------------

    # --8<-- [start:integration]
    def _integration(self, backend_path: str, *, proxy: bool) -> dict[str, Any]:
        """The private integration to the internal ALB over the VPC link V2."""
        integration: dict[str, Any] = {
            "type": "HTTP_PROXY",
            "integrationHttpMethod": "ANY",
            "connectionType": "VPC_LINK",
            "connectionId": self.vpc_link.ref,
            "integrationTarget": self._compute.alb.load_balancer_arn,
            # HTTPS to the name on the ALB's public ACM certificate, which API Gateway verifies.
            "uri": f"https://{self._settings.alb_domain}{backend_path}",
            "timeoutInMillis": self._settings.integration_timeout_ms,
            "passthroughBehavior": "WHEN_NO_MATCH",
        }
        if proxy:
            # Map {proxy} explicitly, so that the ALB sees /orders/... and not /<stage>/orders/...
            integration["requestParameters"] = {
                "integration.request.path.proxy": "method.request.path.proxy"
            }
        return integration

    # --8<-- [end:integration]

    def _method(
        self,
        construct_id: str,
        resource: apigateway.CfnResource,
        http_method: str,
        backend_path: str,
        *,
        proxy: bool,
        scopes: list[str] | None,
    ) -> None:
        integration = self._integration(backend_path, proxy=proxy)
        authorized = scopes is not None
        method = apigateway.CfnMethod(
            self,
            construct_id,
            rest_api_id=self.api.ref,
            resource_id=resource.ref,
            http_method=http_method,
            authorization_type="COGNITO_USER_POOLS" if authorized else "NONE",
            authorizer_id=self.authorizer.ref if authorized else None,
            authorization_scopes=scopes,
            request_parameters={"method.request.path.proxy": True} if proxy else None,
            integration=integration,
        )
        self._methods.append(method)
        self._fingerprint.append([construct_id, http_method, backend_path, proxy, scopes])

    def _routes(self, service: Service) -> None:
        name = "".join(part.capitalize() for part in service.name.split("-"))
        base = apigateway.CfnResource(
            self,
            f"Resource{name}",
            rest_api_id=self.api.ref,
            parent_id=self.api.attr_root_resource_id,
            path_part=service.name,
        )
        proxy = apigateway.CfnResource(
            self,
            f"Resource{name}Proxy",
            rest_api_id=self.api.ref,
            parent_id=base.ref,
            path_part="{proxy+}",
        )
        scopes = [f"{RESOURCE_SERVER_ID}/{scope}" for scope in service.scopes]
        # Every protected method names scopes, so only access tokens work there.
        self._method(f"Any{name}", base, "ANY", service.path, proxy=False, scopes=scopes)
        self._method(
            f"Any{name}Proxy", proxy, "ANY", f"{service.path}/{{proxy}}", proxy=True, scopes=scopes
        )
        if service.public_reads:
            # Anonymous reads of the catalog, which Cloudflare caches.
            self._method(f"Get{name}", base, "GET", service.path, proxy=False, scopes=None)
            self._method(
                f"Get{name}Proxy",
                proxy,
                "GET",
                f"{service.path}/{{proxy}}",
                proxy=True,
                scopes=None,
            )
        if service.name == "cart":
            checkout = apigateway.CfnResource(
                self,
                "ResourceCartCheckout",
                rest_api_id=self.api.ref,
                parent_id=base.ref,
                path_part="checkout",
            )
            self._method(
                "PostCartCheckout",
                checkout,
                "POST",
                "/cart/checkout",
                proxy=False,
                scopes=[f"{RESOURCE_SERVER_ID}/cart.write"],
            )

    def _health(self) -> None:
        # The canary's target: the whole path (WAF, VPC link, ALB, a task) without a token.
        health = apigateway.CfnResource(
            self,
            "ResourceHealth",
            rest_api_id=self.api.ref,
            parent_id=self.api.attr_root_resource_id,
            path_part="health",
        )
        self._method("GetHealth", health, "GET", f"/catalog{HEALTH_PATH}", proxy=False, scopes=None)

    # --- Stage --------------------------------------------------------------------------------

    def _stage(self) -> None:
        settings = self._settings
        p = settings.resource_prefix
        fingerprint = hashlib.sha256(
            json.dumps(self._fingerprint, sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        deployment = apigateway.CfnDeployment(
            self,
            f"Deployment{fingerprint}",
            rest_api_id=self.api.ref,
            description=f"methods {fingerprint}",
        )
        for method in self._methods:
            deployment.node.add_dependency(method)
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{p}-access",
            retention=retention(settings.service_log_retention_days),
            encryption_key=self._network.logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # API Gateway writes logs with one account-level role per Region.
        logs_role = iam.Role(
            self,
            "ApiGatewayLogsRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        account = apigateway.CfnAccount(
            self, "ApiGatewayAccount", cloud_watch_role_arn=logs_role.role_arn
        )
        # --8<-- [start:stage]
        self.stage = apigateway.CfnStage(
            self,
            "Stage",
            rest_api_id=self.api.ref,
            stage_name=settings.name,
            deployment_id=deployment.ref,
            cache_cluster_enabled=False,
            tracing_enabled=False,
            access_log_setting=apigateway.CfnStage.AccessLogSettingProperty(
                destination_arn=access_logs.log_group_arn,
                format=json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
            ),
            method_settings=[
                # Stage-wide targets, well below the account quota, and ERROR-only execution
                # logs (full request logging is expensive and can write tokens into the logs).
                apigateway.CfnStage.MethodSettingProperty(
                    resource_path="/*",
                    http_method="*",
                    throttling_rate_limit=settings.stage_rate_limit,
                    throttling_burst_limit=settings.stage_burst_limit,
                    logging_level="ERROR",
                    data_trace_enabled=False,
                    metrics_enabled=True,
                    caching_enabled=False,
                ),
                # A lower target on the expensive method.
                apigateway.CfnStage.MethodSettingProperty(
                    resource_path="/~1cart~1checkout",
                    http_method="POST",
                    throttling_rate_limit=settings.checkout_rate_limit,
                    throttling_burst_limit=settings.checkout_burst_limit,
                    logging_level="ERROR",
                    data_trace_enabled=False,
                    metrics_enabled=True,
                    caching_enabled=False,
                ),
            ],
        )
        # --8<-- [end:stage]
        self.stage.node.add_dependency(account)
        self.stage_arn = (
            f"arn:{self.partition}:apigateway:{self.region}::/restapis/{self.api.ref}"
            f"/stages/{self.stage.ref}"
        )

    # --- Custom domains -----------------------------------------------------------------------

    def _domains(self, network: NetworkStack) -> None:
        settings = self._settings
        # api.<domain> lives in the Cloudflare zone: its validation record is created there by
        # hand. The origin name is validated in the Route 53 zone automatically.
        certificate = acm.Certificate(
            self,
            "ApiCertificate",
            domain_name=settings.api_domain,
            subject_alternative_names=[settings.origin_api_domain],
            validation=acm.CertificateValidation.from_dns_multi_zone(
                {settings.origin_api_domain: network.origin_zone}
            ),
        )
        self.domains: dict[str, apigateway.CfnDomainName] = {}
        for construct_id, name in (
            ("PublicDomain", settings.api_domain),
            ("OriginDomain", settings.origin_api_domain),
        ):
            # --8<-- [start:custom-domain]
            domain = apigateway.CfnDomainName(
                self,
                construct_id,
                domain_name=name,
                regional_certificate_arn=certificate.certificate_arn,
                endpoint_configuration=apigateway.CfnDomainName.EndpointConfigurationProperty(
                    types=["REGIONAL"]
                ),
                # Mutual TLS rules out the enhanced SecurityPolicy_* policies.
                security_policy="TLS_1_2",
                mutual_tls_authentication=apigateway.CfnDomainName.MutualTlsAuthenticationProperty(
                    truststore_uri=f"s3://{settings.truststore_bucket}/truststore.pem",
                    truststore_version=settings.truststore_version,
                ),
            )
            # --8<-- [end:custom-domain]
            apigateway.CfnBasePathMapping(
                self,
                f"{construct_id}Mapping",
                domain_name=domain.ref,
                rest_api_id=self.api.ref,
                stage=self.stage.ref,
            )
            self.domains[name] = domain
