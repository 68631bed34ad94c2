"""The origin's side of Cloudflare: client address, cache policy, WAF and prefix-list sync."""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import anyio
import httpx
import pytest
import uvicorn
from botocore.exceptions import ClientError
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from storefront import aws, edge
from storefront.edge import (
    CacheKind,
    CachePolicyMiddleware,
    WafIpSet,
    cache_headers,
    client_address,
    client_ip,
    sync_ip_set,
    sync_prefix_list,
    sync_waf_ip_set,
)
from storefront.ranges import RangesFileError, load_ranges, parse_ranges
from storefront.settings import get_settings
from structlog.testing import capture_logs

from tests.harness.servers import free_port, wait_until

SAMPLE = Path(edge.__file__).parent / "data" / "cloudflare-ips.txt"
RANGES = load_ranges(SAMPLE)
V4 = sorted(str(n) for n in RANGES if n.version == 4)
V6 = sorted(str(n) for n in RANGES if n.version == 6)


def v4_sorted(addresses: list[str]) -> list[str]:
    return sorted(str(ipaddress.ip_network(a)) for a in addresses)


# --- The ranges file --------------------------------------------------------------------------


def test_the_sample_ranges_file_holds_both_families_and_says_where_the_real_list_is() -> None:
    header = SAMPLE.read_text().splitlines()[:5]

    assert len(V4) == 15
    assert len(V6) == 7
    assert "SAMPLE" in header[0]
    assert any("https://www.cloudflare.com/ips-v4" in line for line in header)
    assert any("https://api.cloudflare.com/client/v4/ips" in line for line in header)


def test_comments_blank_lines_and_duplicates_are_skipped() -> None:
    lines = [
        "# Cloudflare",
        "",
        "   ",
        "173.245.48.0/20  # Ashburn?",
        "173.245.48.0/20",
        "2400:CB00::/32",
    ]

    assert parse_ranges(lines) == (
        ipaddress.ip_network("173.245.48.0/20"),
        ipaddress.ip_network("2400:cb00::/32"),
    )


@pytest.mark.parametrize(
    "bad", ["not-a-range", "173.245.48.1/20", "10.0.0.0/33", "2400:cb00::/129", "1.2.3.4/8/8"]
)
def test_a_bad_line_is_an_error_that_names_the_file_and_the_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "ranges.txt"
    path.write_text(f"# header\n173.245.48.0/20\n{bad}\n")

    with pytest.raises(RangesFileError, match=re.escape(f"{path}:3: not a CIDR range: {bad!r}")):
        load_ranges(path)


def test_a_file_without_ranges_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ranges.txt"
    path.write_text("# only comments\n\n")

    with pytest.raises(RangesFileError, match="no ranges"):
        load_ranges(path)


# --- The client address -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("173.245.48.10", {"CF-Connecting-IP": "198.51.100.7"}, "198.51.100.7"),
        ("173.245.48.10", {"cf-connecting-ip": "2001:0db8:0000::0001"}, "2001:db8::1"),
        ("2606:4700:10::6816:1", {"CF-Connecting-IP": "198.51.100.7"}, "198.51.100.7"),
        ("::ffff:173.245.48.10", {"CF-Connecting-IP": "198.51.100.7"}, "198.51.100.7"),
        ("173.245.48.10", {}, "173.245.48.10"),
        ("203.0.113.9", {}, "203.0.113.9"),
        ("::ffff:203.0.113.9", {}, "203.0.113.9"),
        ("", {"CF-Connecting-IP": "198.51.100.7"}, ""),
    ],
)
def test_cf_connecting_ip_is_the_client_only_when_a_cloudflare_address_sent_it(
    peer: str, headers: dict[str, str], expected: str
) -> None:
    assert client_ip(peer, headers, RANGES) == expected


def test_the_header_from_a_peer_outside_cloudflare_is_ignored_and_logged() -> None:
    with capture_logs() as logs:
        address = client_ip("203.0.113.9", {"CF-Connecting-IP": "198.51.100.7"}, RANGES)

    assert address == "203.0.113.9"
    assert logs == [
        {
            "event": "cf_connecting_ip_ignored",
            "peer": "203.0.113.9",
            "header": "198.51.100.7",
            "log_level": "warning",
        }
    ]


def test_a_garbled_header_from_cloudflare_falls_back_to_the_peer_and_is_logged() -> None:
    with capture_logs() as logs:
        address = client_ip("173.245.48.10", {"CF-Connecting-IP": "198.51.100.7, 10.0.0.1"}, RANGES)

    assert address == "173.245.48.10"
    assert [entry["event"] for entry in logs] == ["cf_connecting_ip_invalid"]


def whoami_app() -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    def whoami(address: Annotated[str, Depends(client_address)]) -> dict[str, str]:
        return {"client": address}

    return app


def get_as(app: FastAPI, peer: str, path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 44321))
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as client:
            return await client.get(path, headers=headers)

    return anyio.run(go)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_the_fastapi_dependency_trusts_the_ranges_file_the_settings_name(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("STOREFRONT_TRUSTED_PROXY_RANGES_FILE", str(SAMPLE))
    app = whoami_app()

    via_cloudflare = get_as(app, "162.158.1.1", "/whoami", **{"CF-Connecting-IP": "198.51.100.7"})
    direct = get_as(app, "203.0.113.9", "/whoami", **{"CF-Connecting-IP": "198.51.100.7"})

    assert via_cloudflare.json() == {"client": "198.51.100.7"}
    assert direct.json() == {"client": "203.0.113.9"}


def test_without_a_ranges_file_no_peer_is_trusted(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("STOREFRONT_TRUSTED_PROXY_RANGES_FILE", raising=False)

    response = get_as(whoami_app(), "162.158.1.1", "/whoami", **{"CF-Connecting-IP": "1.2.3.4"})

    assert response.json() == {"client": "162.158.1.1"}


# --- Cache policy -----------------------------------------------------------------------------

PUBLIC = "public, max-age=60, s-maxage=300, stale-while-revalidate=60"
PRIVATE = "private, no-store"


def test_cache_headers_per_kind() -> None:
    assert cache_headers(CacheKind.PUBLIC_CATALOG) == {"Cache-Control": PUBLIC}
    assert cache_headers(CacheKind.PRIVATE) == {"Cache-Control": PRIVATE}


def catalog_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(CachePolicyMiddleware, public_prefixes=("/catalog",))

    @app.api_route("/catalog/products", methods=["GET", "HEAD"])
    def products() -> list[dict[str, str]]:
        return [{"sku": "TEE-1"}]

    @app.post("/catalog/products")
    def create_product() -> dict[str, str]:
        return {"sku": "TEE-2"}

    @app.get("/catalog/missing")
    def missing() -> None:
        raise HTTPException(status_code=404, detail="no such product")

    @app.get("/catalog/unavailable")
    def unavailable() -> JSONResponse:
        return JSONResponse({"detail": "try later"}, status_code=503)

    @app.get("/catalog/recommended")
    def recommended(response: Response) -> list[str]:
        response.set_cookie("seen", "TEE-1")
        return ["TEE-1"]

    @app.get("/catalog/flash-sale")
    def flash_sale(response: Response) -> list[str]:
        response.headers["Cache-Control"] = "public, max-age=5, s-maxage=5"
        return ["TEE-1"]

    @app.get("/orders")
    def orders(response: Response) -> list[str]:
        response.headers["Cache-Control"] = "public, max-age=600"  # a handler's mistake
        return []

    return app


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/catalog/products", {}, PUBLIC),
        ("HEAD", "/catalog/products", {}, PUBLIC),
        ("GET", "/catalog/products", {"authorization": "Bearer abc"}, PRIVATE),
        ("GET", "/catalog/products", {"cookie": "session=1"}, PRIVATE),
        ("POST", "/catalog/products", {}, PRIVATE),
        ("GET", "/catalog/missing", {}, PRIVATE),
        ("GET", "/catalog/unavailable", {}, PRIVATE),
        ("GET", "/catalog/recommended", {}, PRIVATE),
        ("GET", "/catalog/flash-sale", {}, "public, max-age=5, s-maxage=5"),
        ("GET", "/orders", {}, PRIVATE),
        ("GET", "/no-such-route", {}, PRIVATE),
    ],
)
def test_only_anonymous_successful_catalog_reads_are_public(
    method: str, path: str, headers: dict[str, str], expected: str
) -> None:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=catalog_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as client:
            return await client.request(method, path, headers=headers)

    response = anyio.run(go)

    assert response.headers.get_list("cache-control") == [expected]


@pytest.fixture
def origin_over_http(settings_env: pytest.MonkeyPatch) -> Iterator[str]:
    """The catalog app behind uvicorn on a free port (its own proxy-header handling off)."""
    app = catalog_app()

    @app.get("/catalog/whoami")
    def whoami(address: Annotated[str, Depends(client_address)]) -> dict[str, str]:
        return {"client": address}

    settings_env.setenv("STOREFRONT_TRUSTED_PROXY_RANGES_FILE", str(SAMPLE))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, what=f"uvicorn on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_over_real_http_the_policy_holds_and_a_loopback_peer_cannot_claim_an_address(
    origin_over_http: str,
) -> None:
    spoofed = {"CF-Connecting-IP": "198.51.100.7", "X-Forwarded-For": "173.245.48.10"}

    anonymous = httpx.get(f"{origin_over_http}/catalog/products", timeout=5)
    signed_in = httpx.get(
        f"{origin_over_http}/catalog/products", headers={"Authorization": "Bearer x"}, timeout=5
    )
    whoami = httpx.get(f"{origin_over_http}/catalog/whoami", headers=spoofed, timeout=5)

    assert anonymous.headers["cache-control"] == PUBLIC
    assert signed_in.headers["cache-control"] == PRIVATE
    assert whoami.json() == {"client": "127.0.0.1"}  # neither header is believed


# --- Sync to AWS WAF and EC2 managed prefix lists (moto server) -------------------------------


def create_ip_set(
    name: str, version: str, addresses: list[str], description: str = "Cloudflare origin ranges"
) -> WafIpSet:
    extra = {"Description": description} if description else {}
    summary = aws.client("wafv2").create_ip_set(
        Name=name, Scope="REGIONAL", IPAddressVersion=version, Addresses=addresses, **extra
    )["Summary"]
    return WafIpSet(name=name, id=summary["Id"])


def ip_set_state(ip_set: WafIpSet) -> tuple[list[str], str, str]:
    found = aws.client("wafv2").get_ip_set(Name=ip_set.name, Scope="REGIONAL", Id=ip_set.id)
    addresses = v4_sorted(found["IPSet"]["Addresses"])
    return addresses, found["LockToken"], found["IPSet"].get("Description", "")


def test_the_waf_ip_sets_end_up_holding_exactly_the_ranges_and_a_second_run_writes_nothing(
    aws_environment: str,
) -> None:
    v4 = create_ip_set("cloudflare-v4", "IPV4", ["10.0.0.0/8", "173.245.48.0/20"])
    v6 = create_ip_set("cloudflare-v6", "IPV6", ["2400:CB00::/32", "2001:db8::/32"])

    updates: list[dict[str, Any]] = []
    waf = aws.client("wafv2")
    waf.meta.events.register(
        "provide-client-params.wafv2.UpdateIPSet", lambda params, **_: updates.append(params)
    )
    first = [sync_waf_ip_set(RANGES, v4, client=waf), sync_waf_ip_set(RANGES, v6, client=waf)]
    v4_addresses, v4_token, description = ip_set_state(v4)
    v6_addresses, v6_token, _ = ip_set_state(v6)
    second = sync_ip_set(RANGES, waf_ip_sets=[v4, v6])

    assert first[0].removed == ("10.0.0.0/8",)
    assert len(first[0].added) == 14  # 173.245.48.0/20 was already there
    assert first[1].removed == ("2001:db8::/32",)
    assert "2400:cb00::/32" not in first[1].added  # the same range, written in capitals
    assert v4_addresses == v4_sorted(V4)
    assert v6_addresses == v4_sorted(V6)
    # UpdateIPSet replaces the description too, so it is sent again (moto would keep it anyway).
    assert [update["Description"] for update in updates] == ["Cloudflare origin ranges"] * 2
    assert description == "Cloudflare origin ranges"
    assert [result.changed for result in second] == [False, False]
    assert (ip_set_state(v4)[1], ip_set_state(v6)[1]) == (v4_token, v6_token)  # no write


def test_a_concurrent_change_to_the_ip_set_is_retried_with_a_fresh_lock_token(
    aws_environment: str,
) -> None:
    ip_set = create_ip_set("cloudflare-v4", "IPV4", ["10.0.0.0/8"])
    waf = aws.client("wafv2")
    meddler = aws.client("wafv2")
    interference: list[str] = []

    def someone_else_edits_first(**_: Any) -> None:
        if not interference:
            current = meddler.get_ip_set(Name=ip_set.name, Scope="REGIONAL", Id=ip_set.id)
            meddler.update_ip_set(
                Name=ip_set.name,
                Scope="REGIONAL",
                Id=ip_set.id,
                Addresses=["192.0.2.0/24"],
                LockToken=current["LockToken"],
            )
            interference.append("edited")

    waf.meta.events.register("before-call.wafv2.UpdateIPSet", someone_else_edits_first)
    with capture_logs() as logs:
        result = sync_waf_ip_set(RANGES, ip_set, client=waf)

    assert interference == ["edited"]
    assert "ip_set_changed_concurrently" in [entry["event"] for entry in logs]
    assert result.removed == ("192.0.2.0/24",)  # what the second read found
    assert ip_set_state(ip_set)[0] == v4_sorted(V4)


def test_a_lock_that_keeps_changing_gives_up_with_the_aws_error(aws_environment: str) -> None:
    ip_set = create_ip_set("cloudflare-v4", "IPV4", ["10.0.0.0/8"])
    waf = aws.client("wafv2")
    meddler = aws.client("wafv2")

    def someone_else_always_edits(**_: Any) -> None:
        current = meddler.get_ip_set(Name=ip_set.name, Scope="REGIONAL", Id=ip_set.id)
        meddler.update_ip_set(
            Name=ip_set.name,
            Scope="REGIONAL",
            Id=ip_set.id,
            Addresses=current["IPSet"]["Addresses"],
            LockToken=current["LockToken"],
        )

    waf.meta.events.register("before-call.wafv2.UpdateIPSet", someone_else_always_edits)

    with pytest.raises(ClientError, match="WAFOptimisticLockException"):
        sync_waf_ip_set(RANGES, ip_set, client=waf)
    assert ip_set_state(ip_set)[0] == ["10.0.0.0/8"]


def test_emptying_an_ip_set_is_refused_unless_asked_for(aws_environment: str) -> None:
    ip_set = create_ip_set("cloudflare-v6", "IPV6", ["2400:cb00::/32"], description="")
    only_v4 = [n for n in RANGES if n.version == 4]

    with pytest.raises(ValueError, match="refusing to empty"):
        sync_waf_ip_set(only_v4, ip_set)
    assert ip_set_state(ip_set)[0] == ["2400:cb00::/32"]

    result = sync_waf_ip_set(only_v4, ip_set, allow_empty=True)
    assert result.removed == ("2400:cb00::/32",)
    assert ip_set_state(ip_set)[0] == []


def create_prefix_list(family: str, max_entries: int, cidrs: list[str]) -> str:
    return aws.client("ec2").create_managed_prefix_list(
        PrefixListName=f"cloudflare-{family.lower()}",
        AddressFamily=family,
        MaxEntries=max_entries,
        Entries=[{"Cidr": cidr, "Description": "stale"} for cidr in cidrs],
    )["PrefixList"]["PrefixListId"]


def prefix_list_state(prefix_list_id: str) -> tuple[list[str], int, set[str]]:
    ec2 = aws.client("ec2")
    found = ec2.describe_managed_prefix_lists(PrefixListIds=[prefix_list_id])["PrefixLists"][0]
    entries = ec2.get_managed_prefix_list_entries(PrefixListId=prefix_list_id)["Entries"]
    return (
        v4_sorted([entry["Cidr"] for entry in entries]),
        found["Version"],
        {entry["Description"] for entry in entries},
    )


def test_the_prefix_lists_end_up_holding_exactly_the_ranges_and_a_second_run_writes_nothing(
    aws_environment: str,
) -> None:
    v4 = create_prefix_list("IPv4", 20, ["10.0.0.0/8", "173.245.48.0/20"])
    v6 = create_prefix_list("IPv6", 10, ["2001:db8::/32"])

    first = sync_ip_set(RANGES, prefix_lists=[v4, v6])
    v4_entries, v4_version, _ = prefix_list_state(v4)
    v6_entries, v6_version, descriptions = prefix_list_state(v6)
    second = sync_ip_set(RANGES, prefix_lists=[v4, v6])

    assert first[0].removed == ("10.0.0.0/8",)
    assert len(first[0].added) == 14
    assert first[1].removed == ("2001:db8::/32",)
    assert v4_entries == v4_sorted(V4)
    assert v6_entries == v4_sorted(V6)
    assert descriptions == {"Cloudflare"}
    assert (v4_version, v6_version) == (2, 2)  # one modification each
    assert [result.changed for result in second] == [False, False]
    assert (prefix_list_state(v4)[1], prefix_list_state(v6)[1]) == (2, 2)


def test_more_than_100_changes_go_in_batches_that_never_exceed_max_entries(
    aws_environment: str,
) -> None:
    old = [str(n) for n in list(ipaddress.ip_network("198.18.0.0/16").subnets(new_prefix=24))[:120]]
    new = list(ipaddress.ip_network("198.19.0.0/16").subnets(new_prefix=24))[:150]
    prefix_list_id = create_prefix_list("IPv4", 150, old)
    ec2 = aws.client("ec2")
    sizes: list[tuple[int, int]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append((len(params.get("AddEntries", [])), len(params.get("RemoveEntries", []))))

    ec2.meta.events.register("provide-client-params.ec2.ModifyManagedPrefixList", record)
    result = sync_prefix_list(new, prefix_list_id, client=ec2)

    assert sizes == [(100, 100), (50, 20)]
    counts = [120]
    for added, removed in sizes:
        counts.append(counts[-1] + added - removed)
    assert max(counts) <= 150  # 120 -> 120 -> 150
    assert prefix_list_state(prefix_list_id)[:2] == (v4_sorted([str(n) for n in new]), 3)
    assert (len(result.added), len(result.removed)) == (150, 120)


def test_ranges_that_do_not_fit_max_entries_change_nothing(aws_environment: str) -> None:
    prefix_list_id = create_prefix_list("IPv4", 10, ["10.0.0.0/8"])

    with pytest.raises(ValueError, match=r"15 ranges do not fit .* \(MaxEntries 10\)"):
        sync_ip_set(RANGES, prefix_lists=[prefix_list_id])
    assert prefix_list_state(prefix_list_id)[:2] == (["10.0.0.0/8"], 1)


def test_emptying_a_prefix_list_is_refused(aws_environment: str) -> None:
    prefix_list_id = create_prefix_list("IPv6", 10, ["2001:db8::/32"])

    with pytest.raises(ValueError, match="refusing to empty"):
        sync_prefix_list([n for n in RANGES if n.version == 4], prefix_list_id)


def aws_error(code: str) -> tuple[SimpleNamespace, dict[str, Any]]:
    """What botocore would have parsed from an AWS error response (moto never sends this one)."""
    return SimpleNamespace(status_code=400, headers={}), {
        "Error": {"Code": code, "Message": "The prefix list has the incorrect version number."},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def test_a_version_that_moved_underneath_is_read_again_and_retried(aws_environment: str) -> None:
    prefix_list_id = create_prefix_list("IPv4", 20, ["10.0.0.0/8"])
    ec2 = aws.client("ec2")
    refusals: list[int] = []

    def refuse_first_modify(**_: Any) -> tuple[SimpleNamespace, dict[str, Any]] | None:
        if not refusals:
            refusals.append(1)
            return aws_error("PrefixListVersionMismatch")
        return None

    ec2.meta.events.register("before-call.ec2.ModifyManagedPrefixList", refuse_first_modify)
    with capture_logs() as logs:
        result = sync_prefix_list(RANGES, prefix_list_id, client=ec2)

    assert refusals == [1]
    assert "prefix_list_changed_concurrently" in [entry["event"] for entry in logs]
    assert result.removed == ("10.0.0.0/8",)
    assert prefix_list_state(prefix_list_id)[:2] == (v4_sorted(V4), 2)


def test_a_version_that_keeps_moving_or_another_error_is_raised(aws_environment: str) -> None:
    prefix_list_id = create_prefix_list("IPv4", 20, ["10.0.0.0/8"])
    for code, calls in (("PrefixListVersionMismatch", 5), ("InvalidParameterValue", 1)):
        ec2 = aws.client("ec2")
        seen: list[str] = []

        def refuse(code: str = code, seen: list[str] = seen, **_: Any) -> Any:
            seen.append(code)
            return aws_error(code)

        ec2.meta.events.register("before-call.ec2.ModifyManagedPrefixList", refuse)

        with pytest.raises(ClientError, match=code):
            sync_prefix_list(RANGES, prefix_list_id, client=ec2)
        assert len(seen) == calls


def test_a_modification_in_progress_is_waited_for_and_a_failed_one_is_reported(
    aws_environment: str,
) -> None:
    prefix_list_id = create_prefix_list("IPv4", 20, ["10.0.0.0/8"])
    states = iter(["modify-in-progress", "modify-in-progress"])
    ec2 = aws.client("ec2")

    def in_progress(parsed: dict[str, Any], **_: Any) -> None:
        state = next(states, None)
        if state:
            parsed["PrefixLists"][0]["State"] = state

    ec2.meta.events.register("after-call.ec2.DescribeManagedPrefixLists", in_progress)
    waits: list[float] = []
    sync_prefix_list(RANGES, prefix_list_id, client=ec2, sleep=waits.append)
    assert waits == [0.5, 1.0]

    failing = aws.client("ec2")

    def failed(parsed: dict[str, Any], **_: Any) -> None:
        parsed["PrefixLists"][0].update(State="modify-failed", StateMessage="quota exceeded")

    failing.meta.events.register("after-call.ec2.DescribeManagedPrefixLists", failed)
    with pytest.raises(RuntimeError, match="modify-failed: quota exceeded"):
        sync_prefix_list(RANGES, prefix_list_id, client=failing)

    stuck = aws.client("ec2")

    def never_done(parsed: dict[str, Any], **_: Any) -> None:
        parsed["PrefixLists"][0]["State"] = "modify-in-progress"

    stuck.meta.events.register("after-call.ec2.DescribeManagedPrefixLists", never_done)
    with pytest.raises(TimeoutError, match="still modify-in-progress"):
        sync_prefix_list(RANGES, prefix_list_id, client=stuck, timeout_s=0)


def test_the_sync_job_needs_a_target_and_ranges() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sync_ip_set(RANGES)
    with pytest.raises(ValueError, match="no ranges"):
        sync_ip_set([], prefix_lists=["pl-0123"])
