"""Verify Cognito user-pool tokens in the service, and authorize by role.

Every service verifies the JWT itself, even behind an API Gateway authorizer: the gateway is one
hop, and the services also serve internal callers. A token is accepted only when all of this holds
(the checks of the Cognito developer guide's "Verifying JSON web tokens",
https://docs.amazonaws.cn/en_us/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html):

* the header says ``alg: RS256`` (nothing else is accepted, ``none`` and HMAC included) and names a
  ``kid`` found in the user pool's JSON Web Key Set;
* the RS256 signature verifies with that key;
* ``iss`` is the user pool's issuer, ``https://cognito-idp.<region>.amazonaws.com/<pool id>``;
* ``exp`` has not passed (a few seconds of leeway for clock skew), nor ``iat`` lies in the future;
* ``token_use`` is what the route asks for: ``access`` for APIs, ``id`` where a route really wants
  the ID token;
* the client claim that kind of token carries names one of the app clients the service accepts:
  ``aud`` in an ID token, ``client_id`` in an access token (access tokens have no ``aud``; see
  https://docs.aws.amazon.com/verifiedpermissions/latest/userguide/cognito-validation.html).

The key set is fetched over HTTPS from :attr:`storefront.settings.Settings.jwks_url` and cached
(:class:`JwksCache`). An unknown ``kid`` (Cognito rotated its keys) fetches the set again, at most
once per cooldown however many requests carry unknown ids, so a flood of forged tokens cannot turn
into a flood of requests to Cognito. The issuer and the JWKS URL are separate settings because
emulators serve the keys on their own address.

Cognito groups (``cognito:groups``) map to roles (:data:`DEFAULT_GROUP_ROLES`); :func:`require_role`
answers 403 when the caller lacks the role. Every verification failure is a 401 with
``WWW-Authenticate: Bearer error="invalid_token", error_description="..."`` (RFC 6750) and the
reason in the JSON body; nothing a client sends can make it a 500. A key set that cannot be fetched
is a 401 too (``signing keys unavailable``), logged as an error for the operators.

In the tests: moto's Cognito IdP issues real RS256 tokens (one static key, ``kid`` ``dummy``) and
serves the JWKS at ``<endpoint>/<pool id>/.well-known/jwks.json``. moto does not emulate key
rotation, token revocation, or access-token customisation (its access tokens always carry the
scope ``aws.cognito.signin.user.admin``); rotation, expiry and forged keys are tested with a key
pair and a JWKS server of the test's own.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations at
# run time, and require_role's refers to a dependency made in its closure.
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storefront.logs import get_logger
from storefront.settings import Settings, get_settings

_log = get_logger(__name__)

ALGORITHM = "RS256"
DEFAULT_LEEWAY_S = 5.0
DEFAULT_REFRESH_COOLDOWN_S = 30.0
DEFAULT_MAX_AGE_S = 3600.0
JWKS_TIMEOUT_S = 2.0
MAX_TOKEN_CHARS = 16_384  # far above a Cognito token; refuses to parse anything larger


class TokenUse(StrEnum):
    """The ``token_use`` claim of a Cognito token."""

    ID = "id"
    ACCESS = "access"


class Role(StrEnum):
    """What the storefront's services authorize on."""

    CUSTOMER = "customer"
    STAFF = "staff"


# --8<-- [start:group-roles]
DEFAULT_GROUP_ROLES: Mapping[str, Role] = {
    "customers": Role.CUSTOMER,
    "staff": Role.STAFF,
}
"""Cognito group name to role. Groups not listed give no role."""


@dataclass(frozen=True)
class Principal:
    """The verified caller.

    Attributes:
        subject: ``sub``: the user's stable, unique id in the pool (use it as the key, never the
            username).
        username: ``username`` (access token) or ``cognito:username`` (ID token).
        groups: ``cognito:groups``, as Cognito sent them.
        roles: The roles those groups map to.
        token_use: Which kind of token it was.
        client_id: The app client the token was issued to.
        scopes: The access token's ``scope`` claim, split (empty for ID tokens).
    """

    subject: str
    username: str
    groups: tuple[str, ...]
    roles: frozenset[Role]
    token_use: TokenUse
    client_id: str
    scopes: frozenset[str] = frozenset()

    def has_role(self, role: Role | str) -> bool:
        """Whether the caller has ``role``."""
        return role in self.roles


# --8<-- [end:group-roles]


class InvalidTokenError(Exception):
    """The token is not acceptable; ``reason`` is safe to show the client.

    Attributes:
        reason: A short, fixed description (never an echo of the token).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --8<-- [start:jwks-cache]
class JwksCache:
    """A user pool's signing keys, fetched from its JWKS URL and kept in memory.

    The set is fetched on first use and again when it is older than ``max_age_s`` (so a key that
    Cognito withdrew stops being accepted). A ``kid`` that is not in the set makes one fetch; if the
    ``kid`` is still unknown afterwards, or the fetch fails, no further fetch happens for
    ``refresh_cooldown_s`` seconds, whatever ids later tokens name.

    Args:
        url: The JWKS URL.
        refresh_cooldown_s: Quiet period after a fetch that did not produce the wanted key.
        max_age_s: Age after which the set is fetched again before use.
        timeout_s: Connect and read timeout of a fetch.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_cooldown_s: float = DEFAULT_REFRESH_COOLDOWN_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        timeout_s: float = JWKS_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.refresh_cooldown_s = refresh_cooldown_s
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._quiet_until = float("-inf")
        self.fetches = 0
        """How many times the set was requested (for metrics and tests)."""

    def key(self, kid: str) -> jwt.PyJWK:
        """The signing key with id ``kid``.

        Raises:
            InvalidTokenError: No such key (after at most one fetch), or the set cannot be had.
        """
        with self._lock:
            now = self._clock()
            fetched = False
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age_s
            if stale and now >= self._quiet_until:
                self._fetch(now)
                fetched = True
            if kid not in self._keys and not fetched and now >= self._quiet_until:
                self._fetch(now)  # an unknown kid: the pool may have rotated its keys
                fetched = True
            if kid in self._keys:
                return self._keys[kid]
            if fetched:  # still unknown after a fetch: do not fetch again for a while
                self._quiet_until = max(self._quiet_until, now + self.refresh_cooldown_s)
            if self._fetched_at is None:
                raise InvalidTokenError("signing keys unavailable")
            raise InvalidTokenError("unknown signing key")

    def _fetch(self, now: float) -> None:
        self.fetches += 1
        try:
            response = httpx.get(self.url, timeout=self.timeout_s, follow_redirects=False)
            response.raise_for_status()
            keys = _signing_keys(response.json())
        except (httpx.HTTPError, ValueError) as error:
            # Keep the keys we had (if any); try again only after the cooldown.
            self._quiet_until = now + self.refresh_cooldown_s
            _log.error("jwks_fetch_failed", url=self.url, error=str(error))
            return
        self._keys = keys
        self._fetched_at = now
        _log.info("jwks_fetched", url=self.url, kids=sorted(keys))


def _signing_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The RS256 signature keys of a JWKS document, by ``kid``.

    Raises:
        ValueError: The document is not a key set or holds no usable key.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") != "RSA" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        except jwt.PyJWTError:  # a malformed key: skip it, others may be fine
            continue
    if not keys:
        raise ValueError("no RS256 signing key in the key set")
    return keys


# --8<-- [end:jwks-cache]


# --8<-- [start:verify-token]
class TokenVerifier:
    """Verifies the tokens of one user pool for a set of app clients.

    Args:
        issuer: The expected ``iss``.
        client_ids: The app clients whose tokens are accepted (at least one).
        keys: Where signing keys come from.
        leeway_s: Clock skew tolerated on ``exp`` and ``iat``.
        group_roles: Cognito group to role.

    Raises:
        ValueError: No client id, or no issuer: a service that accepted any client's tokens
            would be misconfigured, so it refuses to start instead.
    """

    def __init__(
        self,
        *,
        issuer: str,
        client_ids: frozenset[str] | set[str] | list[str] | tuple[str, ...],
        keys: JwksCache,
        leeway_s: float = DEFAULT_LEEWAY_S,
        group_roles: Mapping[str, Role] = DEFAULT_GROUP_ROLES,
    ) -> None:
        if not issuer or issuer.endswith("/"):
            raise ValueError(f"issuer must be the user pool's issuer URL, got {issuer!r}")
        if not client_ids:
            raise ValueError("at least one accepted app client id is required")
        self.issuer = issuer
        self.client_ids = frozenset(client_ids)
        self.keys = keys
        self.leeway_s = leeway_s
        self.group_roles = dict(group_roles)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        """The verifier the settings describe (issuer, JWKS URL, client ids)."""
        return cls(
            issuer=settings.issuer,
            client_ids=settings.cognito_client_ids,
            keys=JwksCache(settings.jwks_url),
        )

    def verify(self, token: str, token_use: TokenUse) -> Principal:
        """Check ``token`` and return who it speaks for.

        Args:
            token: The compact JWT (no ``Bearer`` prefix).
            token_use: The kind of token the caller requires.

        Returns:
            The principal.

        Raises:
            InvalidTokenError: Any check failed; ``reason`` says which.
        """
        claims = self._verified_claims(token)
        if claims.get("token_use") != token_use:
            raise InvalidTokenError(f"not an {token_use.value} token")
        # ID tokens name their client in aud; access tokens in client_id and have no aud.
        client_claim = "aud" if token_use is TokenUse.ID else "client_id"
        client_id = claims.get(client_claim)
        if not isinstance(client_id, str) or client_id not in self.client_ids:
            raise InvalidTokenError(f"{client_claim} is not an accepted app client")
        groups = claims.get("cognito:groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise InvalidTokenError("cognito:groups is not a list of names")
        username_claim = "username" if token_use is TokenUse.ACCESS else "cognito:username"
        scope = claims.get("scope", "") if token_use is TokenUse.ACCESS else ""
        return Principal(
            subject=claims["sub"],
            username=str(claims.get(username_claim) or claims["sub"]),
            groups=tuple(groups),
            roles=frozenset(self.group_roles[g] for g in groups if g in self.group_roles),
            token_use=token_use,
            client_id=client_id,
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        )

    def _verified_claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise InvalidTokenError("malformed token") from error
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError("unsupported signing algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("token names no signing key")
        key = self.keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={
                    "require": ["exp", "iat", "iss", "sub", "token_use"],
                    "verify_aud": False,  # checked by hand: only ID tokens carry aud
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidTokenError("token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise InvalidTokenError("token is not valid yet") from error
        except jwt.InvalidSignatureError as error:
            raise InvalidTokenError("signature does not verify") from error
        except jwt.InvalidIssuerError as error:
            raise InvalidTokenError("issuer is not the user pool") from error
        except jwt.MissingRequiredClaimError as error:
            raise InvalidTokenError(f"token lacks the {error.claim} claim") from error
        except jwt.InvalidTokenError as error:
            raise InvalidTokenError("malformed token") from error
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidTokenError("token lacks the sub claim")
        return claims


# --8<-- [end:verify-token]


_verifiers: dict[tuple[str, str, tuple[str, ...]], TokenVerifier] = {}
_verifiers_lock = threading.Lock()


def get_verifier(settings: Annotated[Settings, Depends(get_settings)]) -> TokenVerifier:
    """FastAPI dependency: one verifier (and key cache) per distinct configuration."""
    key = (settings.issuer, settings.jwks_url, tuple(settings.cognito_client_ids))
    with _verifiers_lock:
        if key not in _verifiers:
            _verifiers[key] = TokenVerifier.from_settings(settings)
        return _verifiers[key]


# --8<-- [start:fastapi-dependencies]
_bearer = HTTPBearer(auto_error=False, description="A Cognito user-pool access token.")


def unauthorized(reason: str) -> HTTPException:
    """The 401 for a failed authentication (RFC 6750 ``invalid_token``)."""
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail={"error": "invalid_token", "reason": reason},
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        InvalidTokenError: The header is missing or is not one bearer token.
    """
    if not authorization or not authorization.strip():
        raise InvalidTokenError("missing bearer token")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidTokenError("authorization scheme is not Bearer")
    token = rest.strip()
    if not token:
        raise InvalidTokenError("missing bearer token")
    if " " in token:
        raise InvalidTokenError("malformed bearer token")
    return token


def authenticated(token_use: TokenUse = TokenUse.ACCESS) -> Callable[..., Principal]:
    """A FastAPI dependency that yields the verified :class:`Principal`, or answers 401.

    The same function comes back for the same ``token_use``, so FastAPI verifies the token once
    per request even when several dependencies (``require_role`` among them) ask for it.

    Args:
        token_use: The kind of token the route accepts (access tokens for APIs).

    Returns:
        The dependency (``principal: Annotated[Principal, Depends(authenticated())]``).
    """
    return _authenticated(TokenUse(token_use))


@cache
def _authenticated(token_use: TokenUse) -> Callable[..., Principal]:
    def principal(
        request: Request,
        verifier: Annotated[TokenVerifier, Depends(get_verifier)],
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        try:
            return verifier.verify(bearer_token(request.headers.get("authorization")), token_use)
        except InvalidTokenError as error:
            _log.info("token_rejected", reason=error.reason, path=request.url.path)
            raise unauthorized(error.reason) from error

    return principal


def require_role(
    *roles: Role | str, token_use: TokenUse = TokenUse.ACCESS
) -> Callable[..., Principal]:
    """A FastAPI dependency that yields the principal if it has one of ``roles``, else 403.

    Args:
        *roles: Accepted roles (any one suffices).
        token_use: The kind of token the route accepts.

    Returns:
        The dependency (``Depends(require_role(Role.STAFF))``).
    """
    wanted = frozenset(roles)
    names = ", ".join(sorted(str(role) for role in wanted))

    def principal_with_role(
        principal: Annotated[Principal, Depends(authenticated(token_use))],
    ) -> Principal:
        if principal.roles.isdisjoint(wanted):
            _log.info("role_missing", subject=principal.subject, required=sorted(wanted))
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail={"error": "insufficient_role", "reason": f"requires role: {names}"},
                headers={
                    "WWW-Authenticate": (
                        f'Bearer error="insufficient_scope", error_description="requires role: '
                        f'{names}"'
                    )
                },
            )
        return principal

    return principal_with_role


# --8<-- [end:fastapi-dependencies]
