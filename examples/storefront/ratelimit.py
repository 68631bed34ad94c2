"""Per-client rate limiting on Redis: a sliding-window log, atomic in one Lua script.

Each client has a sorted set of the timestamps of its accepted requests in the last
``window_s`` seconds. One script removes the timestamps that left the window, counts the rest
and, if the count is below ``limit``, adds the new request; otherwise it returns how long until
the oldest timestamp leaves the window. Redis runs a script as one step, so concurrent requests
from many tasks never both take the last slot, and the window slides: there is no burst of twice
the limit at a fixed window's boundary. Rejected requests are not recorded, so a client that keeps
retrying does not extend its own ban. Memory per client is at most ``limit`` entries, and each
key expires one window after the client's last accepted request.

The time comes from the Redis server (``TIME``), so every task agrees on it, unless a clock is
injected (tests).

The limit answers ``429 Too Many Requests`` with ``Retry-After`` (whole seconds, rounded up, so a
client that waits that long is accepted) and a JSON body saying why. Successful responses carry
``RateLimit-Limit`` and ``RateLimit-Remaining``.

Which client a request comes from is the caller's decision (``client_key``): behind Cloudflare and
the API gateway it is the edge module's verified client IP, or the Cognito ``sub`` for an
authenticated API. When Redis is unavailable the limiter fails open and logs: the WAF's
rate-based rules at the edge still stand, and an API that answers nothing because its limiter
is down is worse than one briefly unlimited.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis
from fastapi import HTTPException, Request, Response
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# --8<-- [start:sliding-window-script]
SLIDING_WINDOW = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local now_us = tonumber(ARGV[3])
if now_us < 0 then
  local t = redis.call('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_us - window_us)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now_us, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(window_us / 1000))
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window_us - now_us}
"""
# --8<-- [end:sliding-window-script]


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request.

    Attributes:
        allowed: Whether the request may proceed.
        limit: Requests allowed per window.
        remaining: Requests still allowed in the current window after this one.
        retry_after_s: Whole seconds until a request will be accepted (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int


class RateLimiter:
    """A sliding-window limit of ``limit`` requests per ``window_s`` seconds per client.

    Args:
        client: The Redis client (see :func:`storefront.cache.make_redis`).
        limit: Requests accepted per window.
        window_s: The window's length in seconds.
        name: Distinguishes limiters that share a Redis (one per route group).
        clock: Seconds since the epoch; None uses the Redis server's clock.

    Raises:
        ValueError: ``limit`` or ``window_s`` is not positive.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        limit: int,
        window_s: float,
        name: str = "api",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit and window_s must be positive")
        self.limit = limit
        self.window_s = window_s
        self._prefix = f"ratelimit:{name}"
        self._clock = clock
        self._script = client.register_script(SLIDING_WINDOW)

    # --8<-- [start:rate-limit-hit]
    def hit(self, client_key: str) -> Decision:
        """Count one request from ``client_key`` and say whether it is allowed.

        Args:
            client_key: Who is asking (client IP, user id); empty means unknown.

        Returns:
            The decision. When Redis fails, the request is allowed and the error logged.
        """
        key = f"{self._prefix}:{client_key or 'unknown'}"
        now_us = -1 if self._clock is None else int(self._clock() * 1_000_000)
        window_us = int(self.window_s * 1_000_000)
        try:
            allowed, remaining, retry_us = self._script(
                keys=[key], args=[self.limit, window_us, now_us, uuid.uuid4().hex]
            )
        except redis.RedisError as error:
            logger.error(
                "rate limiter unavailable, allowing the request: %s (%s: %s)",
                key,
                type(error).__name__,
                error,
            )
            return Decision(True, self.limit, self.limit, 0)
        return Decision(
            allowed=bool(allowed),
            limit=self.limit,
            remaining=int(remaining),
            retry_after_s=0 if allowed else max(1, math.ceil(int(retry_us) / 1_000_000)),
        )

    # --8<-- [end:rate-limit-hit]


def too_many_requests(decision: Decision, window_s: float) -> dict[str, object]:
    """The JSON body of a 429 answer."""
    return {
        "error": "rate_limited",
        "reason": (
            f"More than {decision.limit} requests in {window_s:g} seconds from this client; "
            f"retry after {decision.retry_after_s} seconds."
        ),
        "limit": decision.limit,
        "window_s": window_s,
        "retry_after_s": decision.retry_after_s,
    }


# --8<-- [start:fastapi-dependency]
def rate_limit(
    limiter: RateLimiter, client_key: Callable[[Request], str]
) -> Callable[[Request, Response], None]:
    """A FastAPI dependency that enforces ``limiter`` per client.

    Args:
        limiter: The limit to apply.
        client_key: Gives the client's identity for a request (the edge module's client IP).

    Returns:
        The dependency: ``@app.get("/products", dependencies=[Depends(rate_limit(...))])``.
        Over the limit it raises ``HTTPException(429)`` with ``Retry-After``; the body is
        ``{"detail": {"error": "rate_limited", "reason": ..., "retry_after_s": ...}}``.
    """

    def dependency(request: Request, response: Response) -> None:
        decision = limiter.hit(client_key(request))
        if not decision.allowed:
            raise HTTPException(
                status_code=429,
                detail=too_many_requests(decision, limiter.window_s),
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        response.headers["RateLimit-Limit"] = str(decision.limit)
        response.headers["RateLimit-Remaining"] = str(decision.remaining)

    return dependency


# --8<-- [end:fastapi-dependency]


class RateLimitMiddleware:
    """ASGI middleware applying one limit to every HTTP request, before routing and auth.

    Cheaper than the dependency for a blanket limit: a rejected request never reaches the
    application. The 429 body is the JSON object of :func:`too_many_requests` (no ``detail``
    wrapper).

    Args:
        app: The wrapped application.
        limiter: The limit to apply.
        client_key: Gives the client's identity for a request.
        exempt_paths: Paths never limited (the load balancer's health check).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        client_key: Callable[[Request], str],
        exempt_paths: frozenset[str] = frozenset({"/health/ready", "/health/live"}),
    ) -> None:
        self._app = app
        self._limiter = limiter
        self._client_key = client_key
        self._exempt = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 429 over the limit; otherwise pass the request on with the limit headers."""
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self._app(scope, receive, send)
            return
        decision = self._limiter.hit(self._client_key(Request(scope)))
        if not decision.allowed:
            response = JSONResponse(
                too_many_requests(decision, self._limiter.window_s),
                status_code=429,
                headers={"Retry-After": str(decision.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, _with_limit_headers(send, decision))


def _with_limit_headers(send: Send, decision: Decision) -> Callable[..., Awaitable[None]]:
    async def sender(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))  # type: ignore[call-overload]
            headers.append((b"ratelimit-limit", str(decision.limit).encode()))
            headers.append((b"ratelimit-remaining", str(decision.remaining).encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sender
