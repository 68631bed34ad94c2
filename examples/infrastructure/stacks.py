"""The whole app: every stack of one environment, in deployment order.

=================  ==========================================================================
Stack              Contents
=================  ==========================================================================
``network``        VPC, subnets, NAT, VPC endpoints, security groups, hosted zones, logs key
``registry``       ECR repositories (compute layer; images are pushed before the services)
``identity``       Cognito user pools, groups, resource servers, app clients (API layer)
``data``           RDS for PostgreSQL + RDS Proxy, DocumentDB, ElastiCache for Valkey, S3
``messaging``      EventBridge bus, rules, archive; SQS queues and DLQs; SNS topic
``compute``        ECS cluster, internal ALB, task definitions, services, autoscaling
``api``            REST API, VPC link V2, Cognito authorizer, stage, custom domains (mTLS)
``edge``           AWS WAF web ACL and logging, origin lock, Route 53 records, Shield opt-in
``observability``  Alarms and the dashboard
=================  ==========================================================================

Each stack's name is ``<prefix>-<layer>`` (``storefront-prod-network``); CDK derives the
dependencies between them from the references, and ``cdk deploy --all`` deploys them in this
order.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Tags

from infrastructure.api import ApiStack
from infrastructure.compute import ComputeStack
from infrastructure.data import DataStack
from infrastructure.edge import EdgeSecurityStack
from infrastructure.identity import IdentityStack
from infrastructure.messaging import MessagingStack
from infrastructure.network import NetworkStack
from infrastructure.observability import ObservabilityStack
from infrastructure.registry import RegistryStack
from infrastructure.runtime import load_topology
from infrastructure.settings import EnvironmentSettings

LAYERS = (
    "network",
    "registry",
    "identity",
    "data",
    "messaging",
    "compute",
    "api",
    "edge",
    "observability",
)


@dataclass
class Storefront:
    """The stacks of one environment.

    Attributes:
        settings: The environment's settings.
        network: The network stack.
        registry: The image registry stack.
        identity: The Cognito stack.
        data: The data stack.
        messaging: The messaging stack.
        compute: The compute stack.
        api: The REST API stack.
        edge: The edge and security stack.
        observability: The alarms and dashboard stack.
    """

    settings: EnvironmentSettings
    network: NetworkStack
    registry: RegistryStack
    identity: IdentityStack
    data: DataStack
    messaging: MessagingStack
    compute: ComputeStack
    api: ApiStack
    edge: EdgeSecurityStack
    observability: ObservabilityStack

    def stacks(self) -> list[cdk.Stack]:
        """Every stack, in deployment order."""
        return [getattr(self, layer) for layer in LAYERS]


# --8<-- [start:build]
def build(app: cdk.App, settings: EnvironmentSettings) -> Storefront:
    """Add every stack of one environment to ``app``.

    Args:
        app: The CDK app (or any construct scope).
        settings: The environment's settings.

    Returns:
        The stacks.
    """
    topology = load_topology(settings)
    env = cdk.Environment(account=settings.account, region=settings.region)

    def name(layer: str) -> dict[str, object]:
        return {
            "stack_name": settings.stack_name(layer),
            "env": env,
            "description": f"Storefront {settings.name}: {layer} layer",
            "termination_protection": settings.name == "prod",
        }

    network = NetworkStack(
        app, settings.stack_name("network"), settings=settings, topology=topology, **name("network")
    )
    registry = RegistryStack(
        app, settings.stack_name("registry"), settings=settings, **name("registry")
    )
    identity = IdentityStack(
        app,
        settings.stack_name("identity"),
        settings=settings,
        topology=topology,
        **name("identity"),
    )
    data = DataStack(
        app,
        settings.stack_name("data"),
        settings=settings,
        topology=topology,
        network=network,
        **name("data"),
    )
    messaging = MessagingStack(
        app,
        settings.stack_name("messaging"),
        settings=settings,
        topology=topology,
        **name("messaging"),
    )
    compute = ComputeStack(
        app,
        settings.stack_name("compute"),
        settings=settings,
        topology=topology,
        network=network,
        registry=registry,
        identity=identity,
        data=data,
        messaging=messaging,
        **name("compute"),
    )
    api = ApiStack(
        app,
        settings.stack_name("api"),
        settings=settings,
        network=network,
        identity=identity,
        compute=compute,
        **name("api"),
    )
    edge = EdgeSecurityStack(
        app,
        settings.stack_name("edge"),
        settings=settings,
        network=network,
        data=data,
        compute=compute,
        api=api,
        **name("edge"),
    )
    observability = ObservabilityStack(
        app,
        settings.stack_name("observability"),
        settings=settings,
        topology=topology,
        identity=identity,
        data=data,
        messaging=messaging,
        compute=compute,
        api=api,
        **name("observability"),
    )
    storefront = Storefront(
        settings, network, registry, identity, data, messaging, compute, api, edge, observability
    )
    for stack in storefront.stacks():
        for key, value in settings.tags.items():
            # The proxy's target group takes no tags in CloudFormation.
            Tags.of(stack).add(key, value, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    return storefront


# --8<-- [end:build]
