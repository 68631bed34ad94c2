"""The identity stack sets what the Cognito page claims, from ``storefront.topology``."""

from __future__ import annotations

from infrastructure.runtime import RESOURCE_SERVER_ID, STAFF_GROUPS
from infrastructure.services import api_services

from tests.infrastructure.synthesis import Synthesized

LAYER = "identity"


def pools(prod: Synthesized) -> dict[str, dict]:
    return {
        r["Properties"]["UserPoolName"]: r["Properties"]
        for r in prod.resources(LAYER, "AWS::Cognito::UserPool").values()
    }


def clients(prod: Synthesized) -> dict[str, dict]:
    return {
        r["Properties"]["ClientName"]: r["Properties"]
        for r in prod.resources(LAYER, "AWS::Cognito::UserPoolClient").values()
    }


def test_the_customer_pool_is_the_topologys_pool_on_the_essentials_plan(
    prod: Synthesized,
) -> None:
    spec = prod.topology.user_pool
    pool = pools(prod)[spec.name]
    assert pool["UserPoolTier"] == "ESSENTIALS"
    assert pool["MfaConfiguration"] == "OPTIONAL"
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": False}
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["UsernameConfiguration"] == {"CaseSensitive": False}
    assert pool["DeletionProtection"] == "ACTIVE"
    assert pool["Policies"]["PasswordPolicy"] == spec.password_policy.to_api()
    groups = {
        g["Properties"]["GroupName"]: g["Properties"]["Precedence"]
        for g in prod.resources(LAYER, "AWS::Cognito::UserPoolGroup").values()
        if g["Properties"]["UserPoolId"] == {"Ref": "CustomerPool"}
    }
    assert groups == {g.name: g.precedence for g in spec.groups}


def test_the_staff_pool_is_invited_only_with_mfa_and_enforced_threat_protection(
    prod: Synthesized,
) -> None:
    pool = pools(prod)[f"{prod.settings.resource_prefix}-staff"]
    assert pool["UserPoolTier"] == "PLUS"
    assert pool["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert pool["MfaConfiguration"] == "ON"
    assert pool["DeletionProtection"] == "ACTIVE"
    groups = {
        g["Properties"]["GroupName"]
        for g in prod.resources(LAYER, "AWS::Cognito::UserPoolGroup").values()
        if g["Properties"]["UserPoolId"] == {"Ref": "StaffPool"}
    }
    assert groups == {name for name, _, _ in STAFF_GROUPS}


def test_app_clients_are_public_code_grant_clients_with_short_tokens_and_rotation(
    prod: Synthesized,
) -> None:
    found = clients(prod)
    spa = prod.topology.user_pool.clients[0]
    refresh = {spa.name: 30 * 24 * 60, f"{prod.settings.resource_prefix}-staff-console": 12 * 60}
    assert set(found) == set(refresh)
    for name, client in found.items():
        assert client["GenerateSecret"] is False
        # Authorization code (with PKCE, since there is no secret); no implicit grant.
        assert client["AllowedOAuthFlows"] == ["code"]
        assert (client["AccessTokenValidity"], client["IdTokenValidity"]) == (15, 15)
        assert client["RefreshTokenValidity"] == refresh[name]
        assert client["TokenValidityUnits"] == {
            "AccessToken": "minutes",
            "IdToken": "minutes",
            "RefreshToken": "minutes",
        }
        assert client["RefreshTokenRotation"] == {
            "Feature": "ENABLED",
            "RetryGracePeriodSeconds": 10,
        }
        assert client["EnableTokenRevocation"] is True
        assert client["PreventUserExistenceErrors"] == "ENABLED"
    customer_scopes = set(found[spa.name]["AllowedOAuthScopes"])
    assert "storefront/catalog.write" not in customer_scopes
    assert "storefront/analytics.read" not in customer_scopes


def test_each_pool_has_the_resource_server_with_two_scopes_per_api_service(
    prod: Synthesized,
) -> None:
    servers = prod.resources(LAYER, "AWS::Cognito::UserPoolResourceServer")
    assert len(servers) == 2
    expected = {scope for s in api_services() for scope in s.scopes}
    for server in servers.values():
        assert server["Properties"]["Identifier"] == RESOURCE_SERVER_ID
        assert {s["ScopeName"] for s in server["Properties"]["Scopes"]} == expected
