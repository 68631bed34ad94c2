"""Cache-aside for catalog reads on Redis (ElastiCache), with stampede protection.

A read asks the cache first and, on a miss, loads from PostgreSQL and stores the result for
``ttl_s`` plus a random jitter of up to ``jitter_s`` seconds, so that keys written together do not
all expire together. Values are stored as JSON; a loader's ``None`` (the product does not exist)
is cached too, for the shorter ``negative_ttl_s``, so a flood of requests for a missing SKU does
not reach the database each time.

Stampede protection: when a hot key expires, every request for it misses at once. Only the
caller that wins a short Redis lock (``SET lock NX PX``) loads; the others poll the key for up to
``wait_s`` and use the value the winner stores. If the winner dies, its lock expires after
``lock_ttl_ms`` and the next caller takes over; a waiter that reaches its deadline loads by
itself. The lock is released only by its owner (compare-and-delete in a Lua script), so a slow
loader whose lock expired cannot delete a newer owner's lock.

Invalidation: a write deletes the keys it affects *after* the database commit
(:meth:`CatalogCache.invalidate_on_commit`): deleting before the commit lets a concurrent read
load and cache the old row again. A read that loaded the old row just before the commit can
still store it after the delete; the TTL bounds how long that stale value lives.

Outages: Redis is an optimisation, never a dependency. Every Redis error is logged and the
request is served from the loader; after an error the cache is bypassed for ``outage_backoff_s``
so that requests do not each pay a connection timeout while Redis is down. The client made by
:func:`make_redis` has short socket timeouts and a single retry (redis-py 8's default retries
ten times with exponential back-off, too slow for a request path).
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PENDING_KEY = "storefront.cache.pending_invalidations"

# Delete the lock only if it still holds our token.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def make_redis(url: str, *, timeout_s: float = 0.25) -> redis.Redis:
    """A Redis client for the request path: short timeouts, one retry, no back-off.

    Args:
        url: ``redis://`` or ``rediss://`` (TLS, as ElastiCache with in-transit encryption).
        timeout_s: Connect and read timeout in seconds.

    Returns:
        The client (thread-safe; it keeps a connection pool).
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


# --8<-- [start:cache-aside]
class CatalogCache:
    """Cache-aside reads with TTL jitter, negative caching and a per-key load lock.

    Args:
        client: The Redis client (see :func:`make_redis`).
        namespace: Prefix of every key, so services sharing a cluster do not collide.
        ttl_s: Base lifetime of a cached value.
        jitter_s: Up to this many seconds are added at random to each lifetime.
        negative_ttl_s: Lifetime of a cached "not found"; None disables negative caching.
        lock_ttl_ms: Lifetime of the load lock: longer than a load normally takes.
        wait_s: How long a caller waits for another caller's load before loading itself.
        poll_s: Interval between looks at the key while waiting.
        outage_backoff_s: How long the cache is bypassed after a Redis error.
        rng: Source of the jitter (tests pass a seeded one).
        clock: Monotonic clock for deadlines and the outage back-off.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "catalog",
        ttl_s: int = 300,
        jitter_s: int = 60,
        negative_ttl_s: int | None = 30,
        lock_ttl_ms: int = 3_000,
        wait_s: float = 2.0,
        poll_s: float = 0.02,
        outage_backoff_s: float = 5.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._namespace = namespace
        self._ttl_s = ttl_s
        self._jitter_s = jitter_s
        self._negative_ttl_s = negative_ttl_s
        self._lock_ttl_ms = lock_ttl_ms
        self._wait_s = wait_s
        self._poll_s = poll_s
        self._outage_backoff_s = outage_backoff_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._bypass_until = 0.0
        self._lock = threading.Lock()
        self._release = client.register_script(_RELEASE_LOCK)

    def key(self, name: str) -> str:
        """The Redis key that holds ``name``'s value."""
        return f"{self._namespace}:{name}"

    def get_or_load(self, name: str, loader: Callable[[], T | None]) -> T | None:
        """The cached value of ``name``, loading and caching it on a miss.

        Args:
            name: The entry's name within the namespace (``product:SKU-1``).
            loader: Reads the value from the database; returns None when it does not exist.
                It must return JSON-serialisable data (dicts, lists, strings, numbers).

        Returns:
            The value, or None when the loader found nothing.
        """
        if self._bypassed():
            return loader()
        key = self.key(name)
        try:
            return self._get_or_load(key, loader)
        except redis.RedisError as error:
            self._record_outage(error, key)
            return loader()

    def invalidate(self, *names: str) -> None:
        """Delete cached entries now; a Redis error is logged, not raised."""
        if not names:
            return
        keys = [self.key(name) for name in names]
        try:
            self._redis.delete(*keys)
        except redis.RedisError as error:
            self._record_outage(error, keys[0])

    def invalidate_on_commit(self, session: Session, *names: str) -> None:
        """Delete cached entries when ``session``'s transaction commits (not on rollback).

        Args:
            session: The session whose transaction writes the rows behind ``names``.
            *names: The entries the write makes stale.
        """
        pending: set[str] | None = session.info.get(_PENDING_KEY)
        if pending is None:
            pending = session.info[_PENDING_KEY] = set()
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", _forget_pending)
        pending.update(names)

    def _after_commit(self, session: Session) -> None:
        names = session.info.get(_PENDING_KEY, set())
        self.invalidate(*sorted(names))
        names.clear()

    # --8<-- [end:cache-aside]

    # --8<-- [start:stampede-lock]
    def _get_or_load(self, key: str, loader: Callable[[], T | None]) -> T | None:
        found, value = self._read(key)
        if found:
            return value
        lock_key = f"{key}:lock"
        deadline = self._clock() + self._wait_s
        while True:
            token = secrets.token_hex(16)
            if self._redis.set(lock_key, token, nx=True, px=self._lock_ttl_ms):
                try:
                    # Another caller may have stored the value between our miss and our lock.
                    found, value = self._read(key)
                    if found:
                        return value
                    value = loader()
                    self._store(key, value)
                    return value
                finally:
                    self._safely(self._release, lock_key, keys=[lock_key], args=[token])
            # Someone else is loading: wait for their value, or for their lock to go away.
            while self._clock() < deadline:
                time.sleep(self._poll_s)
                found, value = self._read(key)
                if found:
                    return value
                if not self._redis.exists(lock_key):
                    break  # the holder finished without storing, or died: try the lock again
            else:
                logger.warning("cache load wait timed out; loading without the lock: %s", key)
                value = loader()
                self._store(key, value)
                return value

    # --8<-- [end:stampede-lock]

    def _read(self, key: str) -> tuple[bool, Any]:
        raw = self._redis.get(key)
        if raw is None:
            return False, None
        try:
            return True, json.loads(raw)
        except ValueError:
            logger.warning("cache entry is not JSON; treating it as a miss: %s", key)
            return False, None

    def _store(self, key: str, value: object) -> None:
        """Cache a loaded value; a Redis error here must not lose the value already loaded."""
        if value is None:
            if self._negative_ttl_s is None:
                return
            ttl = self._negative_ttl_s
        else:
            ttl = self._ttl_s + self._rng.randint(0, self._jitter_s)
        data = json.dumps(value, separators=(",", ":"))
        self._safely(self._redis.set, key, key, data, ex=ttl)

    def _safely(self, call: Callable[..., object], key: str, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except redis.RedisError as error:
            self._record_outage(error, key)

    def _bypassed(self) -> bool:
        with self._lock:
            return self._clock() < self._bypass_until

    def _record_outage(self, error: redis.RedisError, key: str) -> None:
        with self._lock:
            self._bypass_until = self._clock() + self._outage_backoff_s
        logger.error(
            "cache unavailable, serving from the database for %.1f s: %s (%s: %s)",
            self._outage_backoff_s,
            key,
            type(error).__name__,
            error,
        )


def _forget_pending(session: Session) -> None:
    session.info.get(_PENDING_KEY, set()).clear()


def product_key(sku: str) -> str:
    """The cache entry name of one product."""
    return f"product:{sku}"


def product_keys(skus: Iterable[str]) -> list[str]:
    """The cache entry names of several products."""
    return [product_key(sku) for sku in skus]
