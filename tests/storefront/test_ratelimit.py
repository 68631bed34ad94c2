"""The sliding-window limiter against a real redis-server, and its FastAPI 429 answers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import anyio
import httpx
import pytest
import redis
from fastapi import Depends, FastAPI, Request
from storefront.cache import make_redis
from storefront.ratelimit import RateLimiter, RateLimitMiddleware, rate_limit

from tests.harness.servers import free_port, wait_until


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client_ip(request: Request) -> str:
    """Stands in for the edge module's verified client IP."""
    return request.headers.get("x-client-ip", "")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = make_redis(redis_url)
    yield client
    client.close()


def app_with(limiter: RateLimiter) -> FastAPI:
    app = FastAPI()

    @app.get("/products", dependencies=[Depends(rate_limit(limiter, client_ip))])
    def products() -> dict[str, str]:
        return {"status": "ok"}

    return app


def get(app: FastAPI, ip: str, path: str = "/products") -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get(path, headers={"x-client-ip": ip})

    return anyio.run(call)


def test_requests_under_the_limit_pass_and_say_how_many_remain(client: redis.Redis) -> None:
    app = app_with(RateLimiter(client, limit=3, window_s=60, clock=Clock()))

    responses = [get(app, "198.51.100.7") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["2", "1", "0"]
    assert responses[0].headers["RateLimit-Limit"] == "3"


def test_over_the_limit_answers_429_with_the_wait_until_the_window_frees_a_slot(
    client: redis.Redis,
) -> None:
    clock = Clock()
    app = app_with(RateLimiter(client, limit=2, window_s=60, clock=clock))
    get(app, "198.51.100.7")
    clock.now += 20
    get(app, "198.51.100.7")

    clock.now += 10.5  # the first request left 29.5 s ago... of a 60 s window: 29.5 s to go
    rejected = get(app, "198.51.100.7")

    assert rejected.status_code == 429
    assert rejected.headers["Retry-After"] == "30"
    assert rejected.json() == {
        "detail": {
            "error": "rate_limited",
            "reason": "More than 2 requests in 60 seconds from this client; "
            "retry after 30 seconds.",
            "limit": 2,
            "window_s": 60,
            "retry_after_s": 30,
        }
    }


def test_retry_after_is_the_wait_rounded_up_and_no_earlier_request_passes(
    client: redis.Redis,
) -> None:
    clock = Clock()
    start = clock.now
    limiter = RateLimiter(client, limit=1, window_s=10, clock=clock)
    limiter.hit("c")
    clock.now = start + 2.25

    rejected = limiter.hit("c")
    clock.now = start + 10 - 0.001  # just before the first request leaves the window
    still_early = limiter.hit("c")
    clock.now = start + 2.25 + rejected.retry_after_s  # waited as told
    accepted = limiter.hit("c")

    assert rejected.retry_after_s == 8  # 7.75 s rounded up
    assert not still_early.allowed
    assert accepted.allowed


def test_separate_clients_have_separate_windows(client: redis.Redis) -> None:
    app = app_with(RateLimiter(client, limit=1, window_s=60, clock=Clock()))

    first = get(app, "198.51.100.7")
    other = get(app, "203.0.113.9")
    again = get(app, "198.51.100.7")

    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)


def test_the_window_slides_and_frees_slots_one_by_one(client: redis.Redis) -> None:
    clock = Clock()
    limiter = RateLimiter(client, limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.hit("c").allowed
        clock.now += 20  # requests at 0, 20 and 40 s

    at_60 = limiter.hit("c")  # the request at 0 s has left the window
    at_60_again = limiter.hit("c")

    assert at_60.allowed
    assert not at_60_again.allowed
    assert at_60_again.retry_after_s == 20  # the request at 20 s leaves at 80 s


def test_rejected_requests_do_not_extend_the_ban(client: redis.Redis) -> None:
    clock = Clock()
    limiter = RateLimiter(client, limit=1, window_s=10, clock=clock)
    limiter.hit("c")
    for _ in range(5):
        clock.now += 1
        limiter.hit("c")

    clock.now += 5  # 10 s after the only accepted request

    assert limiter.hit("c").allowed


def test_with_the_server_clock_a_short_window_recovers(client: redis.Redis) -> None:
    limiter = RateLimiter(client, limit=1, window_s=0.2)

    first = limiter.hit("c")
    second = limiter.hit("c")
    wait_until(lambda: limiter.hit("c").allowed, what="the window to free a slot", timeout=5)

    assert first.allowed
    assert not second.allowed
    assert second.retry_after_s == 1  # never 0: a client told "0" would retry at once


def test_concurrent_requests_never_exceed_the_limit(client: redis.Redis) -> None:
    limiter = RateLimiter(client, limit=5, window_s=60)
    decisions: list[bool] = []
    lock = threading.Lock()

    def request() -> None:
        allowed = limiter.hit("burst").allowed
        with lock:
            decisions.append(allowed)

    threads = [threading.Thread(target=request) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert decisions.count(True) == 5
    assert len(decisions) == 40
    assert client.zcard("ratelimit:api:burst") == 5


def test_the_key_expires_one_window_after_the_last_accepted_request(client: redis.Redis) -> None:
    limiter = RateLimiter(client, limit=5, window_s=30, name="search")

    limiter.hit("c")

    assert 29_000 < client.pttl("ratelimit:search:c") <= 30_000


def test_a_request_without_a_client_identity_is_counted_as_unknown(client: redis.Redis) -> None:
    app = app_with(RateLimiter(client, limit=1, window_s=60, clock=Clock()))

    get(app, "")

    assert client.zcard("ratelimit:api:unknown") == 1


def test_when_redis_is_down_requests_pass_and_the_outage_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    app = app_with(RateLimiter(down, limit=1, window_s=60))

    with caplog.at_level(logging.ERROR, logger="storefront.ratelimit"):
        responses = [get(app, "198.51.100.7") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "rate limiter unavailable" in caplog.text


def test_a_limit_that_is_not_positive_is_rejected(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(client, limit=0, window_s=60)
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(client, limit=1, window_s=0)


def middleware_app(limiter: RateLimiter) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, client_key=client_ip)

    @app.get("/products")
    def products() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    return app


def test_the_middleware_limits_every_route_with_a_json_reason(client: redis.Redis) -> None:
    app = middleware_app(RateLimiter(client, limit=1, window_s=60, clock=Clock()))

    accepted = get(app, "198.51.100.7")
    rejected = get(app, "198.51.100.7")

    assert accepted.status_code == 200
    assert accepted.headers["RateLimit-Remaining"] == "0"
    assert rejected.status_code == 429
    assert rejected.headers["Retry-After"] == "60"
    assert rejected.json()["error"] == "rate_limited"
    assert rejected.json()["retry_after_s"] == 60


def test_the_middleware_never_limits_the_health_check(client: redis.Redis) -> None:
    app = middleware_app(RateLimiter(client, limit=1, window_s=60, clock=Clock()))

    statuses = [get(app, "198.51.100.7", "/health/ready").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert client.exists("ratelimit:api:198.51.100.7") == 0


def test_the_middleware_passes_other_protocols_through_unlimited(client: redis.Redis) -> None:
    seen: list[str] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["type"]))

    middleware = RateLimitMiddleware(
        inner, limiter=RateLimiter(client, limit=1, window_s=60), client_key=client_ip
    )
    for _ in range(3):
        anyio.run(middleware, {"type": "lifespan"}, None, None)

    assert seen == ["lifespan"] * 3
