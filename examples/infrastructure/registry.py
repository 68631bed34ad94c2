"""The compute layer's image registry: one private ECR repository per service.

It is a stack of its own, deployed before the services, because the services cannot start
until their images exist: deploy this stack, push every image with the tag the settings name
(``imageTag``), then deploy the compute stack.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from constructs import Construct

from infrastructure.services import SERVICES
from infrastructure.settings import EnvironmentSettings


class RegistryStack(Stack):
    """Private ECR repositories with scan on push and immutable tags.

    Attributes:
        repositories: One repository per service, by service name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.repositories: dict[str, ecr.Repository] = {}
        for service in SERVICES:
            self.repositories[service.name] = ecr.Repository(
                self,
                f"Repository{''.join(p.capitalize() for p in service.name.split('-'))}",
                repository_name=f"{settings.resource_prefix}/{service.name}",
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                encryption=ecr.RepositoryEncryption.KMS,
                lifecycle_rules=[
                    ecr.LifecycleRule(
                        description="Keep the last 50 images",
                        max_image_count=50,
                    )
                ],
                removal_policy=RemovalPolicy.RETAIN,
            )
