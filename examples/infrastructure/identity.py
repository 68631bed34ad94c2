"""The API layer's identity half: the Cognito user pools, app clients, groups and scopes.

The customer pool, its app client and its groups come from ``storefront.topology`` (the moto
bootstrap creates the same pool for the executable examples). The staff pool, the resource
server with one read and one write scope per API service, and the OAuth settings of the clients
(authorization code grant with PKCE, no implicit grant) are production additions the topology
does not carry (see :data:`infrastructure.runtime.TOPOLOGY_GAPS`).

It is a stack of its own, deployed before the compute stack, because the services need the
pool ids and client ids in their configuration, while the REST API (the other half of the API
layer) needs the load balancer that the compute stack creates.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_cognito as cognito
from constructs import Construct
from storefront.topology import AppClient, Topology, UserPool

from infrastructure.runtime import RESOURCE_SERVER_ID, STAFF_GROUPS, extras
from infrastructure.services import api_services
from infrastructure.settings import EnvironmentSettings

# Scopes a customer's token may carry; everything else is staff-only.
CUSTOMER_SCOPES = (
    "catalog.read",
    "cart.read",
    "cart.write",
    "orders.read",
    "orders.write",
    "payments.read",
    "payments.write",
    "accounts.read",
    "accounts.write",
)


def camel(value: Any) -> Any:
    """An AWS API structure (``PascalCase`` keys) as CDK L1 properties (``camelCase``)."""
    if isinstance(value, dict):
        return {re.sub(r"^[A-Z]", lambda m: m[0].lower(), k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


class IdentityStack(Stack):
    """Customer and staff user pools.

    Attributes:
        customer_pool: The customers' user pool (``storefront.topology``).
        staff_pool: The staff user pool.
        clients: The app clients, by name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        topology: Topology,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        add = extras(settings)
        callbacks = list(settings.callback_urls) or [f"https://www.{settings.domain}/auth/callback"]
        all_scopes = [scope for s in api_services() for scope in s.scopes]
        self.clients: dict[str, cognito.CfnUserPoolClient] = {}

        # --8<-- [start:customer-pool]
        spec = topology.user_pool
        self.customer_pool = self._pool(
            "CustomerPool",
            spec,
            tier="ESSENTIALS",
            mfa="OPTIONAL",
            admin_only=False,
        )
        for group in spec.groups:
            cognito.CfnUserPoolGroup(
                self,
                f"CustomerGroup{group.name.capitalize()}",
                user_pool_id=self.customer_pool.ref,
                group_name=group.name,
                description=group.description,
                precedence=group.precedence,
            )
        customer_server = self._resource_server("CustomerScopes", self.customer_pool, all_scopes)
        for client in spec.clients:
            self._client(client, self.customer_pool, customer_server, CUSTOMER_SCOPES, callbacks)
        # --8<-- [end:customer-pool]

        # --8<-- [start:staff-pool]
        staff = UserPool(
            name=add.staff_pool,
            password_policy=spec.password_policy,
            groups=(),
            clients=(AppClient(name=add.staff_client, refresh_token_validity_minutes=12 * 60),),
        )
        self.staff_pool = self._pool(
            "StaffPool", staff, tier="PLUS", mfa="ON", admin_only=True, threat_protection=True
        )
        for name, description, precedence in STAFF_GROUPS:
            cognito.CfnUserPoolGroup(
                self,
                f"StaffGroup{name.capitalize()}",
                user_pool_id=self.staff_pool.ref,
                group_name=name,
                description=description,
                precedence=precedence,
            )
        staff_server = self._resource_server("StaffScopes", self.staff_pool, all_scopes)
        for client in staff.clients:
            self._client(client, self.staff_pool, staff_server, tuple(all_scopes), callbacks)
        # --8<-- [end:staff-pool]

        for pool_id, pool, domain in (
            ("CustomerLogin", self.customer_pool, f"{settings.resource_prefix}-login"),
            ("StaffLogin", self.staff_pool, f"{settings.resource_prefix}-staff-login"),
        ):
            cognito.CfnUserPoolDomain(
                self, pool_id, domain=domain, user_pool_id=pool.ref, managed_login_version=2
            )
        CfnOutput(self, "CustomerPoolId", value=self.customer_pool.ref)
        CfnOutput(self, "StaffPoolId", value=self.staff_pool.ref)

    def _pool(
        self,
        construct_id: str,
        spec: UserPool,
        *,
        tier: str,
        mfa: str,
        admin_only: bool,
        threat_protection: bool = False,
    ) -> cognito.CfnUserPool:
        arguments = spec.create_arguments()
        return cognito.CfnUserPool(
            self,
            construct_id,
            user_pool_name=arguments["PoolName"],
            user_pool_tier=tier,
            policies=camel(arguments["Policies"]),
            username_attributes=arguments["UsernameAttributes"],
            auto_verified_attributes=arguments["AutoVerifiedAttributes"],
            username_configuration=camel(arguments["UsernameConfiguration"]),
            deletion_protection=arguments["DeletionProtection"],
            admin_create_user_config={"allowAdminCreateUserOnly": admin_only},
            mfa_configuration=mfa,
            enabled_mfas=["SOFTWARE_TOKEN_MFA"],
            account_recovery_setting={
                "recoveryMechanisms": [{"name": "verified_email", "priority": 1}]
            },
            user_pool_add_ons={"advancedSecurityMode": "ENFORCED"} if threat_protection else None,
        )

    def _resource_server(
        self, construct_id: str, pool: cognito.CfnUserPool, scopes: list[str]
    ) -> cognito.CfnUserPoolResourceServer:
        return cognito.CfnUserPoolResourceServer(
            self,
            construct_id,
            user_pool_id=pool.ref,
            identifier=RESOURCE_SERVER_ID,
            name="Storefront API",
            scopes=[
                {"scopeName": scope, "scopeDescription": f"{scope.replace('.', ' ')} access"}
                for scope in scopes
            ],
        )

    def _client(
        self,
        spec: AppClient,
        pool: cognito.CfnUserPool,
        server: cognito.CfnUserPoolResourceServer,
        scopes: tuple[str, ...],
        callbacks: list[str],
    ) -> None:
        # The topology's settings (token lifetimes, rotation, revocation, existence errors),
        # plus the OAuth grant the managed login uses: authorization code with PKCE only.
        properties = camel(spec.to_api())
        construct_id = "Client" + "".join(p.capitalize() for p in re.split(r"[-_]", spec.name))
        client = cognito.CfnUserPoolClient(
            self,
            construct_id,
            user_pool_id=pool.ref,
            generate_secret=spec.generate_secret,
            allowed_o_auth_flows=["code"],
            allowed_o_auth_flows_user_pool_client=True,
            allowed_o_auth_scopes=[
                "openid",
                "email",
                *(f"{RESOURCE_SERVER_ID}/{s}" for s in scopes),
            ],
            callback_ur_ls=callbacks,
            supported_identity_providers=["COGNITO"],
            **_snake(properties),
        )
        client.node.add_dependency(server)
        self.clients[spec.name] = client


def _snake(properties: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), k): v for k, v in properties.items()}
