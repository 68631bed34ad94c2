"""The origin's side of the Cloudflare edge: client address, cache policy, and allow-lists in AWS.

Three things an origin behind Cloudflare must get right:

1. **Whose address is this?** Cloudflare sends the visitor's address in ``CF-Connecting-IP``
   (https://developers.cloudflare.com/fundamentals/reference/http-headers/). Anyone can send that
   header, so :func:`client_ip` believes it only when the peer, the address that connected to us,
   is inside Cloudflare's published ranges (IPv4 and IPv6). Otherwise the header is ignored (and
   logged) and the peer is the client.
2. **What may Cloudflare cache?** With Origin Cache Control (on by default below Enterprise)
   Cloudflare follows the origin's ``Cache-Control``; ``s-maxage`` sets its own TTL apart from the
   browser's ``max-age``, and ``private`` or ``no-store`` keep a response out of its cache. A
   response to a request carrying ``Authorization`` is still cached when it says ``public`` or
   ``s-maxage`` (https://developers.cloudflare.com/cache/concepts/cache-control/), which is why
   :class:`CachePolicyMiddleware` never lets an authenticated or personalised response say
   ``public``. JSON is not cached by default at all; the catalog's public routes also need a
   Cache Rule that makes them eligible
   (https://developers.cloudflare.com/cache/concepts/default-cache-behavior/).
3. **Keeping AWS's allow-lists current.** :func:`sync_ip_set` makes an AWS WAF IP set and/or an
   EC2 managed prefix list hold exactly Cloudflare's ranges: WAF's ``UpdateIPSet`` replaces the
   whole address list and is guarded by a lock token; a prefix list is changed by adding and
   removing entries against its current version.

Cloudflare publishes its ranges at https://www.cloudflare.com/ips/ (as plain text at
https://www.cloudflare.com/ips-v4 and https://www.cloudflare.com/ips-v6) and through its API,
``GET https://api.cloudflare.com/client/v4/ips`` (fields ``ipv4_cidrs``, ``ipv6_cidrs``, ``etag``;
https://developers.cloudflare.com/api/resources/ips/). The ranges "do not change frequently" and
are added to the list before they go into production
(https://developers.cloudflare.com/fundamentals/concepts/cloudflare-ip-addresses/). The job takes
the ranges as input; fetching them is the scheduler's step, so the job runs offline in tests.

AWS facts used here: an IP set holds up to 10,000 addresses or ranges
(https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-ipset-match.html);
``UpdateIPSet`` "completely replaces the mutable specifications" of the set, so it is always sent
the full list, the current description and the lock token from ``GetIPSet``
(https://docs.aws.amazon.com/cli/latest/reference/wafv2/update-ip-set.html); a
``ModifyManagedPrefixList`` call adds at most 100 entries, fails when ``CurrentVersion`` is not the
current version, and cannot change entries and ``MaxEntries`` together
(https://docs.aws.amazon.com/goto/WebAPI/ec2/ModifyManagedPrefixList). A stale version fails with
``PrefixListVersionMismatch`` (seen in https://github.com/hashicorp/terraform-provider-aws/issues/43528).

What the moto server (5.2.5) emulates, and what it does not: WAFv2 IP sets with real lock tokens
(a stale token raises ``WAFOptimisticLockException``) and managed prefix lists with versions. moto
does not enforce ``CurrentVersion`` (it never answers ``PrefixListVersionMismatch``; the test
injects that answer to exercise the retry), ``MaxEntries``, the 100-entry limit, or the
asynchronous ``modify-in-progress`` state (its changes complete at once), and a modify call that
omits ``PrefixListName`` erases the name (so the job always sends it). Cloudflare itself is not
emulated.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storefront import aws
from storefront.logs import get_logger
from storefront.ranges import Network, load_ranges
from storefront.settings import Settings, get_settings

_log = get_logger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

CLOUDFLARE_IPS_PAGE = "https://www.cloudflare.com/ips/"
CLOUDFLARE_IPS_V4 = "https://www.cloudflare.com/ips-v4"
CLOUDFLARE_IPS_V6 = "https://www.cloudflare.com/ips-v6"
CLOUDFLARE_IPS_API = "https://api.cloudflare.com/client/v4/ips"
CF_CONNECTING_IP = "cf-connecting-ip"


# --8<-- [start:client-ip]
def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:198.51.100.7 from a dual-stack socket
    return address


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; HTTP header names are not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def client_ip(peer_ip: str, headers: Mapping[str, str], trusted_ranges: Sequence[Network]) -> str:
    """The visitor's address: ``CF-Connecting-IP`` if a Cloudflare address sent it, else the peer.

    Args:
        peer_ip: The address that connected to the origin (the socket peer when the origin faces
            Cloudflare directly). Behind API Gateway and a load balancer the socket peer is the
            load balancer, so pass the address the edge of AWS saw instead.
        headers: The request headers (any mapping; names are matched case-insensitively).
        trusted_ranges: Cloudflare's published ranges (:func:`load_ranges`).

    Returns:
        The address in canonical text form; the peer as given if it is not an IP address.
    """
    peer = _address(peer_ip)
    claimed = _header(headers, CF_CONNECTING_IP)
    if peer is None:
        return peer_ip
    if not any(peer in network for network in trusted_ranges):
        if claimed is not None:
            _log.warning("cf_connecting_ip_ignored", peer=str(peer), header=claimed[:64])
        return str(peer)
    if claimed is None:
        return str(peer)  # Cloudflare itself (a health check, a Worker) or a misconfiguration
    visitor = _address(claimed)
    if visitor is None:
        _log.warning("cf_connecting_ip_invalid", peer=str(peer), header=claimed[:64])
        return str(peer)
    return str(visitor)


@lru_cache(maxsize=8)
def _ranges_from(path: str | None) -> tuple[Network, ...]:
    return load_ranges(path) if path else ()


def get_trusted_ranges(settings: Annotated[Settings, Depends(get_settings)]) -> tuple[Network, ...]:
    """FastAPI dependency: the ranges in ``Settings.trusted_proxy_ranges_file`` (none if unset).

    With no file every peer is untrusted, so ``CF-Connecting-IP`` is never believed.
    """
    return _ranges_from(settings.trusted_proxy_ranges_file)


def client_address(
    request: Request, ranges: Annotated[tuple[Network, ...], Depends(get_trusted_ranges)]
) -> str:
    """FastAPI dependency: :func:`client_ip` for this request's socket peer and headers."""
    peer = request.client.host if request.client else ""
    return client_ip(peer, request.headers, ranges)


# --8<-- [end:client-ip]


# --8<-- [start:cache-headers]
class CacheKind(StrEnum):
    """What a response is, for caching."""

    PUBLIC_CATALOG = "public-catalog"
    """The same for every visitor: anonymous catalog reads."""
    PRIVATE = "private"
    """Personalised or authenticated: never stored by Cloudflare or the browser."""


CATALOG_MAX_AGE_S = 60  # browsers
CATALOG_S_MAXAGE_S = 300  # Cloudflare
CATALOG_STALE_WHILE_REVALIDATE_S = 60


def cache_headers(kind: CacheKind) -> dict[str, str]:
    """The caching headers a response of ``kind`` carries.

    Args:
        kind: What the response is.

    Returns:
        ``Cache-Control`` for that kind.
    """
    if kind is CacheKind.PUBLIC_CATALOG:
        value = (
            f"public, max-age={CATALOG_MAX_AGE_S}, s-maxage={CATALOG_S_MAXAGE_S}, "
            f"stale-while-revalidate={CATALOG_STALE_WHILE_REVALIDATE_S}"
        )
        return {"Cache-Control": value}
    return {"Cache-Control": "private, no-store"}


# --8<-- [end:cache-headers]


# --8<-- [start:cache-policy-middleware]
class CachePolicyMiddleware:
    """ASGI middleware that sets ``Cache-Control`` on every response, failing safe.

    A response is public only when all of these hold: the path starts with one of
    ``public_prefixes``; the method is ``GET`` or ``HEAD``; the request has no ``Authorization``
    and no ``Cookie``; the status is 2xx; the response sets no cookie. Everything else is
    ``private, no-store``, whatever the handler set. A public response keeps a ``Cache-Control``
    its handler set (a shorter TTL, or ``private`` after all).

    Args:
        app: The ASGI app.
        public_prefixes: Path prefixes of the anonymous catalog routes.
    """

    def __init__(self, app: ASGIApp, *, public_prefixes: Sequence[str] = ("/catalog",)) -> None:
        self.app = app
        self.public_prefixes = tuple(public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (HTTP responses get the policy; others pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = {name.lower() for name, _ in scope["headers"]}
        anonymous_read = (
            scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith(self.public_prefixes)
            and b"authorization" not in request_headers
            and b"cookie" not in request_headers
        )

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", [])]
                names = {n.lower() for n, _ in headers}
                public = (
                    anonymous_read and 200 <= message["status"] < 300 and b"set-cookie" not in names
                )
                if not public or b"cache-control" not in names:
                    kind = CacheKind.PUBLIC_CATALOG if public else CacheKind.PRIVATE
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    headers += [
                        (name.lower().encode(), value.encode())
                        for name, value in cache_headers(kind).items()
                    ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)


# --8<-- [end:cache-policy-middleware]


# --8<-- [start:sync-waf-ip-set]
@dataclass(frozen=True)
class WafIpSet:
    """An AWS WAF (wafv2) IP set, as ``GetIPSet`` names it."""

    name: str
    id: str
    scope: Literal["REGIONAL", "CLOUDFRONT"] = "REGIONAL"


@dataclass(frozen=True)
class SyncResult:
    """What one target needed.

    Attributes:
        target: ``wafv2:<name>`` or ``prefix-list:<id>``.
        added: Ranges added.
        removed: Ranges removed.
    """

    target: str
    added: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.added or self.removed)


MAX_ATTEMPTS = 5
PREFIX_LIST_BATCH = 100  # entries per ModifyManagedPrefixList call, added or removed
PREFIX_LIST_DESCRIPTION = "Cloudflare"
_PREFIX_LIST_DONE = frozenset({"create-complete", "modify-complete", "restore-complete"})
_PREFIX_LIST_RETRY = frozenset({"PrefixListVersionMismatch"})


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _of_version(ranges: Iterable[Network], version: int) -> set[Network]:
    return {network for network in ranges if network.version == version}


def _sorted(networks: Iterable[Network]) -> tuple[str, ...]:
    return tuple(str(n) for n in sorted(networks, key=lambda n: (n.version, n)))


def sync_waf_ip_set(
    ranges: Sequence[Network], ip_set: WafIpSet, *, client: Any = None, allow_empty: bool = False
) -> SyncResult:
    """Make a WAF IP set hold exactly the ranges of its address family.

    Reads the set and its lock token, and writes the full list only if it differs. If someone
    else changed the set in between (``WAFOptimisticLockException``), reads again and retries.

    Args:
        ranges: The wanted ranges (both families; only the set's family is used).
        ip_set: The IP set.
        client: A ``wafv2`` client (one from :func:`storefront.aws.client` when None).
        allow_empty: Permit emptying the set (refused by default: an empty allow-list blocks).

    Returns:
        What was added and removed.

    Raises:
        ValueError: No range of the set's family and ``allow_empty`` is False.
        botocore.exceptions.ClientError: AWS refused, or the lock kept changing.
    """
    waf = client or aws.client("wafv2")
    ident = {"Name": ip_set.name, "Scope": ip_set.scope, "Id": ip_set.id}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        found = waf.get_ip_set(**ident)
        current_set = found["IPSet"]
        family = 4 if current_set["IPAddressVersion"] == "IPV4" else 6
        wanted = _of_version(ranges, family)
        if not wanted and not allow_empty:
            raise ValueError(f"no IPv{family} range for IP set {ip_set.name}; refusing to empty it")
        current = {ipaddress.ip_network(a, strict=False) for a in current_set["Addresses"]}
        result = SyncResult(
            f"wafv2:{ip_set.name}", _sorted(wanted - current), _sorted(current - wanted)
        )
        if not result.changed:
            return result
        update: dict[str, Any] = {
            **ident,
            "Addresses": list(_sorted(wanted)),
            "LockToken": found["LockToken"],
        }
        if current_set.get("Description"):
            update["Description"] = current_set["Description"]  # the update replaces it too
        try:
            waf.update_ip_set(**update)
        except ClientError as error:
            if _error_code(error) != "WAFOptimisticLockException" or attempt == MAX_ATTEMPTS:
                raise
            _log.info("ip_set_changed_concurrently", target=result.target, attempt=attempt)
            continue
        _log.info("ip_set_synced", target=result.target, added=result.added, removed=result.removed)
        return result
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# --8<-- [end:sync-waf-ip-set]


# --8<-- [start:sync-prefix-list]
def _settled_prefix_list(
    ec2: Any, prefix_list_id: str, *, timeout_s: float, sleep: Callable[[float], None]
) -> dict[str, Any]:
    """The prefix list once no modification is in progress."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        found = ec2.describe_managed_prefix_lists(PrefixListIds=[prefix_list_id])["PrefixLists"][0]
        state = found["State"]
        if state in _PREFIX_LIST_DONE:
            return found
        if state.endswith("-failed"):
            raise RuntimeError(
                f"prefix list {prefix_list_id} is {state}: {found.get('StateMessage')}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"prefix list {prefix_list_id} still {state} after {timeout_s:.0f} s"
            )
        sleep(delay)  # AWS applies modifications asynchronously; poll with back-off
        delay = min(delay * 2, 5.0)


def sync_prefix_list(
    ranges: Sequence[Network],
    prefix_list_id: str,
    *,
    client: Any = None,
    allow_empty: bool = False,
    timeout_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:
    """Make an EC2 managed prefix list hold exactly the ranges of its address family.

    Entries are added and removed against the list's current version, at most
    :data:`PREFIX_LIST_BATCH` of each per call (each call's additions and removals together).
    It waits for any modification in progress to finish before reading, and a version that moved
    underneath (``PrefixListVersionMismatch``) makes it read the list again and carry on.

    Args:
        ranges: The wanted ranges (both families; only the list's family is used).
        prefix_list_id: The prefix list (``pl-...``).
        client: An ``ec2`` client (one from :func:`storefront.aws.client` when None).
        allow_empty: Permit emptying the list.
        timeout_s: How long to wait for a modification in progress to finish.
        sleep: Waits between polls (tests pass a fake).

    Returns:
        What was added and removed.

    Raises:
        ValueError: More ranges than ``MaxEntries``, or none and ``allow_empty`` is False.
        botocore.exceptions.ClientError: AWS refused, or the version kept moving.
    """
    ec2 = client or aws.client("ec2")
    target = f"prefix-list:{prefix_list_id}"
    added: set[Network] = set()
    removed: set[Network] = set()
    attempt = 0
    while True:
        found = _settled_prefix_list(ec2, prefix_list_id, timeout_s=timeout_s, sleep=sleep)
        family = 4 if found["AddressFamily"] == "IPv4" else 6
        wanted = _of_version(ranges, family)
        if not wanted and not allow_empty:
            raise ValueError(f"no IPv{family} range for {prefix_list_id}; refusing to empty it")
        max_entries = int(found["MaxEntries"])
        if len(wanted) > max_entries:
            raise ValueError(
                f"{len(wanted)} ranges do not fit {prefix_list_id} (MaxEntries {max_entries}); "
                "raise MaxEntries first (it cannot change in the same call as entries)"
            )
        pages = ec2.get_paginator("get_managed_prefix_list_entries").paginate(
            PrefixListId=prefix_list_id, TargetVersion=found["Version"]
        )
        current = {
            ipaddress.ip_network(entry["Cidr"], strict=False)
            for page in pages
            for entry in page.get("Entries", [])
        }
        to_add = sorted(wanted - current, key=lambda n: (n.version, n))
        to_remove = sorted(current - wanted, key=lambda n: (n.version, n))
        if not to_add and not to_remove:
            break
        try:
            current_version = found["Version"]
            while to_add or to_remove:
                # Each call removes as many as it adds until one side runs out, so the list never
                # holds more than max(before, after) entries, and "after" fits MaxEntries.
                batch_remove = to_remove[:PREFIX_LIST_BATCH]
                batch_add = to_add[:PREFIX_LIST_BATCH]
                ec2.modify_managed_prefix_list(
                    PrefixListId=prefix_list_id,
                    PrefixListName=found["PrefixListName"],
                    CurrentVersion=current_version,
                    AddEntries=[
                        {"Cidr": str(n), "Description": PREFIX_LIST_DESCRIPTION} for n in batch_add
                    ],
                    RemoveEntries=[{"Cidr": str(n)} for n in batch_remove],
                )
                added.update(batch_add)
                removed.update(batch_remove)
                del to_add[: len(batch_add)]
                del to_remove[: len(batch_remove)]
                if to_add or to_remove:  # the next batch goes against the new version
                    found = _settled_prefix_list(
                        ec2, prefix_list_id, timeout_s=timeout_s, sleep=sleep
                    )
                    current_version = found["Version"]
        except ClientError as error:
            attempt += 1
            if _error_code(error) not in _PREFIX_LIST_RETRY or attempt >= MAX_ATTEMPTS:
                raise
            _log.info("prefix_list_changed_concurrently", target=target, attempt=attempt)
            continue
        _settled_prefix_list(ec2, prefix_list_id, timeout_s=timeout_s, sleep=sleep)
        break
    result = SyncResult(target, _sorted(added - removed), _sorted(removed - added))
    if result.changed:
        _log.info("prefix_list_synced", target=target, added=result.added, removed=result.removed)
    return result


# --8<-- [end:sync-prefix-list]


# --8<-- [start:sync-ip-set]
def sync_ip_set(
    ranges: Sequence[Network],
    *,
    waf_ip_sets: Sequence[WafIpSet] = (),
    prefix_lists: Sequence[str] = (),
    allow_empty: bool = False,
) -> list[SyncResult]:
    """Make every named WAF IP set and managed prefix list hold exactly ``ranges``.

    Idempotent: a target that already holds the ranges is not written to. Each target gets the
    ranges of its own address family (an IP set or prefix list is IPv4 or IPv6).

    Args:
        ranges: Cloudflare's ranges (:func:`load_ranges`).
        waf_ip_sets: WAF IP sets to update (REGIONAL scope for API Gateway and ALB).
        prefix_lists: Managed prefix list ids (``pl-...``) to update.
        allow_empty: Permit a target to end up empty.

    Returns:
        One result per target, in the order given (IP sets first).

    Raises:
        ValueError: No target, no ranges, or a target that cannot hold them.
    """
    if not waf_ip_sets and not prefix_lists:
        raise ValueError("name at least one WAF IP set or prefix list to sync")
    if not ranges:
        raise ValueError("no ranges to sync")
    waf = aws.client("wafv2") if waf_ip_sets else None
    ec2 = aws.client("ec2") if prefix_lists else None
    results = [
        sync_waf_ip_set(ranges, ip_set, client=waf, allow_empty=allow_empty)
        for ip_set in waf_ip_sets
    ]
    results += [
        sync_prefix_list(ranges, prefix_list_id, client=ec2, allow_empty=allow_empty)
        for prefix_list_id in prefix_lists
    ]
    return results


# --8<-- [end:sync-ip-set]
