"""Cognito token verification, against moto's Cognito IdP over real HTTP and a JWKS of our own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from storefront import aws
from storefront.auth import (
    InvalidTokenError,
    JwksCache,
    Principal,
    Role,
    TokenUse,
    TokenVerifier,
    authenticated,
    get_verifier,
    require_role,
)
from storefront.settings import get_settings

from tests.harness.servers import free_port
from tests.storefront.http_stub import Response, StubServer, run_stub

PASSWORD = "Str0ng-Passw0rd!"  # noqa: S105 - a test user's password on moto
JWKS_PATH = "/pool/.well-known/jwks.json"
LOCAL_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_localpool"
LOCAL_CLIENT = "local-web-client"


# --- The app under test -----------------------------------------------------------------------


def principal_body(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "username": principal.username,
        "groups": list(principal.groups),
        "roles": sorted(principal.roles),
        "token_use": principal.token_use.value,
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
    }


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    def me(principal: Annotated[Principal, Depends(authenticated())]) -> dict[str, Any]:
        return principal_body(principal)

    @app.get("/profile")
    def profile(
        principal: Annotated[Principal, Depends(authenticated(TokenUse.ID))],
    ) -> dict[str, Any]:
        return principal_body(principal)

    @app.get("/staff/orders")
    def staff_orders(
        principal: Annotated[Principal, Depends(require_role(Role.STAFF))],
    ) -> dict[str, Any]:
        return principal_body(principal)

    return app


def call(app: FastAPI, path: str, token: str | None = None, **headers: str) -> httpx.Response:
    """One GET through the ASGI app (the dependencies run as they do under uvicorn)."""
    if token is not None:
        headers["authorization"] = f"Bearer {token}"

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://storefront") as client:
            return await client.get(path, headers=headers)

    return anyio.run(go)


def assert_invalid_token(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": {"error": "invalid_token", "reason": reason}}
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="{reason}"'
    )


# --- A user pool on moto --------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """A user pool on moto with two app clients (only the first is accepted)."""

    id: str
    client_id: str
    other_client_id: str
    endpoint: str

    def sign_in(self, username: str, client_id: str | None = None) -> dict[str, str]:
        result = aws.client("cognito-idp").initiate_auth(
            ClientId=client_id or self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]
        return {"access": result["AccessToken"], "id": result["IdToken"]}


def create_pool(name: str, endpoint: str) -> Pool:
    cognito = aws.client("cognito-idp")
    pool_id = cognito.create_user_pool(PoolName=name)["UserPool"]["Id"]

    def new_client(client_name: str) -> str:
        return cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=client_name,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]

    for group in ("customers", "staff"):
        cognito.create_group(UserPoolId=pool_id, GroupName=group)
    for username, groups in (("alice", ["customers"]), ("sam", ["staff", "customers"])):
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            TemporaryPassword="Temp-Passw0rd!",
            MessageAction="SUPPRESS",
        )
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=PASSWORD, Permanent=True
        )
        for group in groups:
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
    return Pool(pool_id, new_client("web"), new_client("partner"), endpoint)


@pytest.fixture
def pool(aws_environment: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    """A pool with groups, a customer (alice) and a staff member (sam); settings point at it."""
    created = create_pool("customers", aws_environment)
    monkeypatch.setenv("STOREFRONT_COGNITO_USER_POOL_ID", created.id)
    monkeypatch.setenv("STOREFRONT_COGNITO_CLIENT_IDS", json.dumps([created.client_id]))
    # moto's tokens carry the real Cognito issuer, but moto serves the keys on its own address.
    monkeypatch.setenv(
        "STOREFRONT_COGNITO_JWKS_URL", f"{aws_environment}/{created.id}/.well-known/jwks.json"
    )
    get_settings.cache_clear()
    yield created
    get_settings.cache_clear()


# --- Tokens signed with a key of our own, served by a JWKS stub -----------------------------


@pytest.fixture(scope="module")
def rsa_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in "ab"}


def jwks(keys: dict[str, rsa.RSAPrivateKey], *kids: str) -> Response:
    entries = []
    for kid in kids:
        entry = jwt.algorithms.RSAAlgorithm.to_jwk(keys[kid].public_key(), as_dict=True)
        entries.append({**entry, "kid": kid, "alg": "RS256", "use": "sig"})
    return Response(body=json.dumps({"keys": entries}).encode())


@pytest.fixture
def jwks_stub(rsa_keys: dict[str, rsa.RSAPrivateKey]) -> Iterator[StubServer]:
    with run_stub() as stub:
        stub.responses[JWKS_PATH] = jwks(rsa_keys, "a")
        yield stub


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def local_verifier(jwks_stub: StubServer, clock: FakeClock) -> TokenVerifier:
    keys = JwksCache(
        f"{jwks_stub.url}{JWKS_PATH}", refresh_cooldown_s=30, max_age_s=3600, clock=clock
    )
    return TokenVerifier(issuer=LOCAL_ISSUER, client_ids=[LOCAL_CLIENT], keys=keys)


@pytest.fixture
def local_app(local_verifier: TokenVerifier) -> FastAPI:
    app = make_app()
    app.dependency_overrides[get_verifier] = lambda: local_verifier
    return app


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": LOCAL_ISSUER,
        "sub": str(uuid.uuid4()),
        "client_id": LOCAL_CLIENT,
        "token_use": "access",
        "iat": now,
        "auth_time": now,
        "exp": now + 900,
        "username": "carol",
        "scope": "storefront/orders.read",
        "cognito:groups": ["staff"],
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sign(keys: dict[str, rsa.RSAPrivateKey], kid: str = "a", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), keys[kid], algorithm="RS256", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- Tokens from moto's Cognito -------------------------------------------------------------


def test_access_token_from_cognito_sign_in_yields_the_principal_with_roles(pool: Pool) -> None:
    tokens = pool.sign_in("sam")

    response = call(make_app(), "/me", tokens["access"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == "sam"
    assert sorted(body["groups"]) == ["customers", "staff"]
    assert body["roles"] == ["customer", "staff"]
    assert body["token_use"] == TokenUse.ACCESS
    assert body["client_id"] == pool.client_id
    assert body["scopes"] == ["aws.cognito.signin.user.admin"]
    assert uuid.UUID(body["subject"])


def test_id_token_is_accepted_where_a_route_asks_for_the_id_token(pool: Pool) -> None:
    tokens = pool.sign_in("alice")

    response = call(make_app(), "/profile", tokens["id"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["username"], body["token_use"]) == ("alice", "id")
    assert body["client_id"] == pool.client_id  # read from aud: ID tokens have no client_id
    assert body["roles"] == ["customer"]


def test_a_token_of_the_other_kind_is_rejected(pool: Pool) -> None:
    tokens = pool.sign_in("alice")
    app = make_app()

    assert_invalid_token(call(app, "/me", tokens["id"]), "not an access token")
    assert_invalid_token(call(app, "/profile", tokens["access"]), "not an id token")


def test_a_token_of_an_app_client_the_service_does_not_accept_is_rejected(pool: Pool) -> None:
    tokens = pool.sign_in("alice", client_id=pool.other_client_id)
    app = make_app()

    assert_invalid_token(
        call(app, "/me", tokens["access"]), "client_id is not an accepted app client"
    )
    assert_invalid_token(call(app, "/profile", tokens["id"]), "aud is not an accepted app client")


def test_a_token_from_another_user_pool_fails_the_issuer_check(pool: Pool) -> None:
    # moto signs every pool's tokens with the same key, so only iss tells them apart.
    other = create_pool("staff", pool.endpoint)
    tokens = other.sign_in("alice")

    assert_invalid_token(call(make_app(), "/me", tokens["access"]), "issuer is not the user pool")


def test_a_tampered_token_fails_the_signature_check(pool: Pool) -> None:
    header, payload, signature = pool.sign_in("alice")["access"].split(".")
    claims_ = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims_["cognito:groups"] = ["staff"]
    escalated = f"{header}.{b64(json.dumps(claims_).encode())}.{signature}"
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0xFF
    flipped = f"{header}.{payload}.{b64(bytes(raw))}"
    app = make_app()

    assert_invalid_token(call(app, "/staff/orders", escalated), "signature does not verify")
    assert_invalid_token(call(app, "/me", flipped), "signature does not verify")


def test_a_caller_without_the_role_gets_403_and_one_with_it_gets_through(pool: Pool) -> None:
    app = make_app()

    denied = call(app, "/staff/orders", pool.sign_in("alice")["access"])
    allowed = call(app, "/staff/orders", pool.sign_in("sam")["access"])

    assert denied.status_code == 403
    assert denied.json() == {
        "detail": {"error": "insufficient_role", "reason": "requires role: staff"}
    }
    assert denied.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert allowed.status_code == 200
    assert allowed.json()["username"] == "sam"


def test_the_settings_build_one_verifier_whose_keys_are_fetched_once(pool: Pool) -> None:
    app = make_app()
    token = pool.sign_in("alice")["access"]

    for _ in range(5):
        assert call(app, "/me", token).status_code == 200

    verifier = get_verifier(get_settings())
    assert verifier.issuer == f"https://cognito-idp.eu-west-1.amazonaws.com/{pool.id}"
    assert verifier.keys.url == f"{pool.endpoint}/{pool.id}/.well-known/jwks.json"
    assert verifier.keys.fetches == 1


# --- Malformed requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Basic YWxpY2U6c2VjcmV0", "authorization scheme is not Bearer"),
        ("Bearer", "missing bearer token"),
        ("Bearer    ", "missing bearer token"),
        ("Bearer two tokens", "malformed bearer token"),
        ("Bearer not-a-jwt", "malformed token"),
        ("Bearer a.b.c", "malformed token"),
        ("Bearer " + "x" * 20_000, "token too large"),
    ],
)
def test_a_malformed_authorization_header_is_a_401_with_a_reason(
    local_app: FastAPI, authorization: str | None, reason: str
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}

    assert_invalid_token(call(local_app, "/me", **headers), reason)


def test_unsigned_and_hmac_tokens_are_refused_whatever_they_claim(
    local_app: FastAPI, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    payload = b64(json.dumps(claims()).encode())
    none_header = b64(b'{"alg":"none","kid":"a"}')
    unsigned = f"{none_header}.{payload}."
    # The classic confusion attack: HS256 "signed" with the public key as the shared secret.
    public_pem = (
        rsa_keys["a"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hmac_header = b64(b'{"alg":"HS256","kid":"a","typ":"JWT"}')
    mac = hmac.new(public_pem, f"{hmac_header}.{payload}".encode(), hashlib.sha256).digest()
    confused = f"{hmac_header}.{payload}.{b64(mac)}"

    assert_invalid_token(call(local_app, "/me", unsigned), "unsupported signing algorithm")
    assert_invalid_token(call(local_app, "/me", confused), "unsupported signing algorithm")


def test_a_token_without_a_key_id_is_refused(
    local_app: FastAPI, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    token = jwt.encode(claims(), rsa_keys["a"], algorithm="RS256")

    assert_invalid_token(call(local_app, "/me", token), "token names no signing key")


# --- Claims, with tokens signed by our own key ------------------------------------------------


def test_a_well_formed_token_signed_by_a_published_key_is_accepted(
    local_app: FastAPI, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    response = call(local_app, "/staff/orders", sign(rsa_keys, username="carol"))

    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["staff"]
    assert response.json()["scopes"] == ["storefront/orders.read"]


def test_an_expired_token_is_rejected_but_a_few_seconds_of_skew_are_tolerated(
    local_app: FastAPI, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    now = int(time.time())
    expired = sign(rsa_keys, iat=now - 3600, exp=now - 60)
    just_expired = sign(rsa_keys, iat=now - 3600, exp=now - 2)  # inside the 5 s leeway

    assert_invalid_token(call(local_app, "/me", expired), "token has expired")
    assert call(local_app, "/me", just_expired).status_code == 200


def test_a_token_issued_in_the_future_is_rejected(
    local_app: FastAPI, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    now = int(time.time())
    token = sign(rsa_keys, iat=now + 600, exp=now + 1200)

    assert_invalid_token(call(local_app, "/me", token), "token is not valid yet")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"token_use": None}, "token lacks the token_use claim"),
        ({"exp": None}, "token lacks the exp claim"),
        ({"sub": None}, "token lacks the sub claim"),
        ({"sub": ""}, "token lacks the sub claim"),
        ({"iss": "https://evil.example.com/pool"}, "issuer is not the user pool"),
        ({"client_id": None}, "client_id is not an accepted app client"),
        ({"cognito:groups": "staff"}, "cognito:groups is not a list of names"),
        ({"exp": "tomorrow"}, "malformed token"),
    ],
)
def test_a_token_with_missing_or_wrong_claims_is_rejected(
    local_app: FastAPI,
    rsa_keys: dict[str, rsa.RSAPrivateKey],
    overrides: dict[str, Any],
    reason: str,
) -> None:
    assert_invalid_token(call(local_app, "/me", sign(rsa_keys, **overrides)), reason)


def test_a_token_signed_by_a_key_the_pool_never_published_fails_the_signature(
    local_app: FastAPI, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    forged = jwt.encode(claims(), rsa_keys["b"], algorithm="RS256", headers={"kid": "a"})

    assert_invalid_token(call(local_app, "/me", forged), "signature does not verify")


# --- The key cache ----------------------------------------------------------------------------


def test_an_unknown_kid_triggers_exactly_one_jwks_refresh_across_many_requests(
    local_app: FastAPI,
    jwks_stub: StubServer,
    clock: FakeClock,
    rsa_keys: dict[str, rsa.RSAPrivateKey],
) -> None:
    assert call(local_app, "/me", sign(rsa_keys)).status_code == 200
    assert jwks_stub.hits[JWKS_PATH] == 1
    unknown = sign(rsa_keys, kid="b")  # "b" is not published

    for _ in range(25):
        assert_invalid_token(call(local_app, "/me", unknown), "unknown signing key")
    assert jwks_stub.hits[JWKS_PATH] == 2  # one refresh for all 25

    clock.now += 31  # past the cooldown: one more try
    for _ in range(5):
        assert_invalid_token(call(local_app, "/me", unknown), "unknown signing key")
    assert jwks_stub.hits[JWKS_PATH] == 3


def test_a_rotated_key_is_picked_up_by_one_refresh(
    local_app: FastAPI, jwks_stub: StubServer, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    assert call(local_app, "/me", sign(rsa_keys, kid="a")).status_code == 200
    jwks_stub.responses[JWKS_PATH] = jwks(rsa_keys, "a", "b")  # the pool publishes a new key

    for _ in range(5):
        assert call(local_app, "/me", sign(rsa_keys, kid="b")).status_code == 200
    assert call(local_app, "/me", sign(rsa_keys, kid="a")).status_code == 200
    assert jwks_stub.hits[JWKS_PATH] == 2


def test_a_withdrawn_key_stops_being_accepted_once_the_key_set_is_old(
    local_app: FastAPI,
    jwks_stub: StubServer,
    clock: FakeClock,
    rsa_keys: dict[str, rsa.RSAPrivateKey],
) -> None:
    assert call(local_app, "/me", sign(rsa_keys, kid="a")).status_code == 200
    jwks_stub.responses[JWKS_PATH] = jwks(rsa_keys, "b")

    clock.now += 3600

    assert_invalid_token(call(local_app, "/me", sign(rsa_keys, kid="a")), "unknown signing key")
    assert call(local_app, "/me", sign(rsa_keys, kid="b")).status_code == 200
    assert jwks_stub.hits[JWKS_PATH] == 2


@pytest.mark.parametrize(
    "broken",
    [
        Response(status=500, body=b'{"message":"internal error"}'),
        Response(body=b"<html>not json</html>", content_type="text/html"),
        Response(body=b'{"keys": "none"}'),
        Response(body=b'{"keys": [{"kid": "a", "kty": "EC", "crv": "P-256"}]}'),
        Response(body=b'{"keys": [{"kid": "a", "kty": "RSA", "n": "!!", "e": "AQAB"}]}'),
    ],
)
def test_an_unusable_key_set_is_a_401_and_is_not_fetched_on_every_request(
    local_app: FastAPI,
    jwks_stub: StubServer,
    rsa_keys: dict[str, rsa.RSAPrivateKey],
    broken: Response,
) -> None:
    jwks_stub.responses[JWKS_PATH] = broken

    for _ in range(10):
        assert_invalid_token(call(local_app, "/me", sign(rsa_keys)), "signing keys unavailable")
    assert jwks_stub.hits[JWKS_PATH] == 1


def test_an_unreachable_key_set_is_a_401_and_keeps_the_keys_already_fetched(
    jwks_stub: StubServer, clock: FakeClock, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    unreachable = JwksCache(f"http://127.0.0.1:{free_port()}/jwks.json", clock=clock, timeout_s=1)
    app = make_app()
    app.dependency_overrides[get_verifier] = lambda: TokenVerifier(
        issuer=LOCAL_ISSUER, client_ids=[LOCAL_CLIENT], keys=unreachable
    )

    assert_invalid_token(call(app, "/me", sign(rsa_keys)), "signing keys unavailable")
    assert unreachable.fetches == 1

    # A cache that had keys keeps using them while the endpoint is down.
    cache = JwksCache(f"{jwks_stub.url}{JWKS_PATH}", clock=clock, max_age_s=60)
    cache.key("a")
    jwks_stub.responses[JWKS_PATH] = Response(status=503)
    clock.now += 61
    assert cache.key("a").key_id == "a"
    assert cache.fetches == 2


def test_a_verifier_without_an_accepted_client_or_issuer_refuses_to_start() -> None:
    keys = JwksCache("http://127.0.0.1:9/jwks.json")

    with pytest.raises(ValueError, match="at least one accepted app client"):
        TokenVerifier(issuer=LOCAL_ISSUER, client_ids=[], keys=keys)
    with pytest.raises(ValueError, match="issuer"):
        TokenVerifier(issuer="", client_ids=[LOCAL_CLIENT], keys=keys)


def test_only_rs256_signature_keys_with_an_id_are_taken_from_the_key_set(
    local_verifier: TokenVerifier, jwks_stub: StubServer, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    published = json.loads(jwks(rsa_keys, "a", "b").body)["keys"]
    encryption_key = {**published[0], "use": "enc"}  # kid "a", but not for signatures
    no_kid = {key: value for key, value in published[1].items() if key != "kid"}
    jwks_stub.responses[JWKS_PATH] = Response(
        body=json.dumps({"keys": [encryption_key, no_kid, "junk", published[1]]}).encode()
    )

    principal = local_verifier.verify(sign(rsa_keys, kid="b"), TokenUse.ACCESS)

    assert principal.has_role(Role.STAFF)
    assert not principal.has_role(Role.CUSTOMER)
    with pytest.raises(InvalidTokenError, match="unknown signing key"):
        local_verifier.verify(sign(rsa_keys, kid="a"), TokenUse.ACCESS)
    assert jwks_stub.hits[JWKS_PATH] == 2  # the unknown kid made its one refresh


def test_a_route_asking_for_the_principal_twice_verifies_the_token_once(
    local_verifier: TokenVerifier, rsa_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    calls: list[str] = []

    class CountingVerifier(TokenVerifier):
        def verify(self, token: str, token_use: TokenUse) -> Principal:
            calls.append(token_use.value)
            return super().verify(token, token_use)

    verifier = CountingVerifier(
        issuer=LOCAL_ISSUER, client_ids=[LOCAL_CLIENT], keys=local_verifier.keys
    )
    app = FastAPI()

    @app.get("/staff/report", dependencies=[Depends(require_role(Role.STAFF))])
    def report(principal: Annotated[Principal, Depends(authenticated())]) -> dict[str, str]:
        return {"for": principal.username}

    app.dependency_overrides[get_verifier] = lambda: verifier

    response = call(app, "/staff/report", sign(rsa_keys))

    assert response.json() == {"for": "carol"}
    assert calls == ["access"]
