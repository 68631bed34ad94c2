"""S3 storage against moto over HTTP; presigned requests are really performed with httpx.

moto does not check signatures, expiry or POST-policy conditions (see ``storefront.storage``):
these tests perform the requests without credentials, which proves the URLs and forms work, and
assert the signed expiry and conditions, which is what S3 enforces.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from storefront import bootstrap as b
from storefront import storage
from storefront.settings import get_settings
from storefront.topology import BACKUP_PREFIX


@pytest.fixture
def record(aws_environment: str) -> Iterator[b.BootstrapRecord]:
    get_settings.cache_clear()
    yield b.bootstrap(apply_deny_statements=False)
    get_settings.cache_clear()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_a_presigned_post_uploads_without_credentials_under_a_signed_policy(
    record: b.BootstrapRecord,
) -> None:
    bucket = record.buckets["assets"].name
    before = datetime.now(UTC)
    upload = storage.presign_upload(
        bucket, "uploads/p-1.png", content_type="image/png", max_bytes=1_000_000
    )
    response = httpx.post(
        upload.url,
        data=upload.fields,
        files={"file": ("p-1.png", b"\x89PNG fake image", "image/png")},
    )
    assert response.status_code == 204, response.text
    head = storage.s3_client().head_object(Bucket=bucket, Key="uploads/p-1.png")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(b"\x89PNG fake image")
    # What S3 enforces (moto does not): the key, the type, the size range and the expiry.
    policy = upload.policy()
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert ["content-length-range", 1, 1_000_000] in policy["conditions"]
    assert {"key": "uploads/p-1.png"} in policy["conditions"]
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(seconds=295) < expires - before <= timedelta(seconds=301)
    assert upload.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"


def test_a_presigned_put_signs_the_content_type_and_length(record: b.BootstrapRecord) -> None:
    bucket = record.buckets["assets"].name
    put = storage.presign_put(
        bucket, "uploads/p-2.webp", content_type="image/webp", content_length=4
    )
    response = httpx.put(put.url, content=b"RIFF", headers=put.headers)
    assert response.status_code == 200, response.text
    signed = query(put.url)
    assert signed["X-Amz-Expires"] == "300"
    assert set(signed["X-Amz-SignedHeaders"].split(";")) >= {
        "content-type",
        "content-length",
        "host",
    }
    obj = storage.s3_client().get_object(Bucket=bucket, Key="uploads/p-2.webp")
    assert obj["Body"].read() == b"RIFF"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"content_type": "text/html", "max_bytes": 10}, "not accepted"),
        ({"content_type": "image/png", "max_bytes": 0}, "max_bytes"),
        ({"content_type": "image/png", "max_bytes": 10, "expires_s": 604_801}, "7 days"),
        ({"content_type": "image/png", "max_bytes": 10, "expires_s": 0}, "between 1 and"),
    ],
)
def test_unsafe_upload_requests_are_refused(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage.presign_upload("b", "k", **arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"content_type": "application/x-sh", "content_length": 10}, "not accepted"),
        ({"content_type": "image/png", "content_length": 0}, "content_length"),
        ({"content_type": "image/png", "content_length": 1, "expires_s": 10**6}, "7 days"),
    ],
)
def test_unsafe_put_requests_are_refused(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage.presign_put("b", "k", **arguments)


def test_the_longest_allowed_expiry_is_sigv4s_seven_days(record: b.BootstrapRecord) -> None:
    url = storage.presign_download(record.buckets["receipts"].name, "k", expires_s=604_800)
    assert query(url)["X-Amz-Expires"] == "604800"


def test_a_receipt_is_written_with_sse_kms_and_downloaded_by_a_short_presigned_get(
    record: b.BootstrapRecord,
) -> None:
    receipts = record.buckets["receipts"]
    assert receipts.kms_key_arn is not None
    stored = storage.put_receipt(
        receipts.name,
        "ord-1",
        b"%PDF-1.7 receipt",
        kms_key_id=receipts.kms_key_arn,
        issued_at=datetime(2026, 12, 3, tzinfo=UTC),
    )
    assert stored.key == "receipts/2026/12/ord-1.pdf"
    assert stored.encryption == "aws:kms"
    head = storage.s3_client().head_object(Bucket=receipts.name, Key=stored.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == receipts.kms_key_arn
    url = storage.presign_download(receipts.name, stored.key, filename="receipt-ord-1.pdf")
    assert query(url)["X-Amz-Expires"] == "300"
    response = httpx.get(url)  # a plain HTTP client, no AWS credentials
    assert response.status_code == 200
    assert response.content == b"%PDF-1.7 receipt"
    assert response.headers["content-disposition"] == 'attachment; filename="receipt-ord-1.pdf"'


def test_bad_receipts_and_download_names_are_refused() -> None:
    with pytest.raises(ValueError, match="needs content"):
        storage.put_receipt("b", "ord-1", b"", kms_key_id="k")
    with pytest.raises(ValueError, match="not an order id"):
        storage.receipt_key("../etc/passwd", datetime.now(UTC))
    with pytest.raises(ValueError, match="quotes or line breaks"):
        storage.presign_download("b", "k", filename='x"\r\nSet-Cookie: a=b')


def test_an_overwritten_receipt_can_be_restored_from_its_previous_version(
    record: b.BootstrapRecord,
) -> None:
    receipts = record.buckets["receipts"]
    assert receipts.kms_key_arn is not None
    first = storage.put_receipt(receipts.name, "ord-2", b"v1", kms_key_id=receipts.kms_key_arn)
    second = storage.put_receipt(receipts.name, "ord-2", b"v2", kms_key_id=receipts.kms_key_arn)
    assert first.version_id
    assert second.version_id
    assert first.version_id != second.version_id
    restored = storage.restore_previous_version(receipts.name, first.key)
    s3 = storage.s3_client()
    assert s3.get_object(Bucket=receipts.name, Key=first.key)["Body"].read() == b"v1"
    old = storage.presign_download(receipts.name, first.key, version_id=second.version_id)
    assert httpx.get(old).content == b"v2"  # nothing was lost: v2 is still a version
    assert restored not in {first.version_id, second.version_id}


def test_restoring_an_object_without_history_is_refused(record: b.BootstrapRecord) -> None:
    receipts = record.buckets["receipts"]
    assert receipts.kms_key_arn is not None
    only = storage.put_receipt(receipts.name, "ord-3", b"v1", kms_key_id=receipts.kms_key_arn)
    with pytest.raises(LookupError, match="no earlier version"):
        storage.restore_previous_version(receipts.name, only.key)


@pytest.mark.parametrize(
    ("key", "cache_control"),
    [
        ("assets/app.3f9c2a1b.js", storage.IMMUTABLE),
        ("assets/logo.0123456789abcdef.svg", storage.IMMUTABLE),
        ("index.html", storage.REVALIDATE),
        ("assets/app.js", storage.REVALIDATE),
        ("assets/app.beta.js", storage.REVALIDATE),
    ],
)
def test_hashed_assets_are_immutable_and_entry_points_revalidate(
    key: str, cache_control: str
) -> None:
    assert storage.asset_cache_control(key) == cache_control


def test_an_uploaded_asset_carries_its_cache_policy_and_the_bucket_default_encryption(
    record: b.BootstrapRecord,
) -> None:
    bucket = record.buckets["assets"].name
    stored = storage.upload_asset(
        bucket, "assets/app.3f9c2a1b.js", b"console.log(1)", content_type="text/javascript"
    )
    assert stored.encryption == "AES256"  # SSE-S3: the CDN's anonymous reads need it
    head = storage.s3_client().head_object(Bucket=bucket, Key=stored.key)
    assert head["CacheControl"] == storage.IMMUTABLE
    assert head["ContentType"] == "text/javascript"


def test_a_backup_export_lands_under_the_lifecycle_prefix_and_reads_back(
    record: b.BootstrapRecord,
) -> None:
    backups = record.buckets["backups"]
    assert backups.kms_key_arn is not None
    taken_at = datetime(2026, 12, 3, 4, 5, 6, tzinfo=UTC)
    rows = [{"sku": f"SKU-{i}", "stock": i} for i in range(3)]
    export = storage.export_backup(
        backups.name, "products", rows, kms_key_id=backups.kms_key_arn, taken_at=taken_at
    )
    assert export.key == f"{BACKUP_PREFIX}products/2026/12/03/products-20261203T040506Z.jsonl.gz"
    assert export.rows == 3
    assert storage.read_backup(backups.name, export.key) == rows
    head = storage.s3_client().head_object(Bucket=backups.name, Key=export.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["Metadata"] == {"rows": "3", "dataset": "products"}
    body = storage.s3_client().get_object(Bucket=backups.name, Key=export.key)["Body"].read()
    assert len(body) == export.size
    assert gzip.decompress(body).count(b"\n") == 3
    rules = {r["ID"]: r for r in storage.lifecycle_rules_for(backups.name, export.key)}
    assert rules["archive-then-expire-exports"]["Transitions"] == [
        {"Days": 30, "StorageClass": "GLACIER_IR"}
    ]
    assert rules["archive-then-expire-exports"]["Expiration"] == {"Days": 400}
    assert "abort-incomplete-multipart-uploads" in rules
    outside = storage.lifecycle_rules_for(backups.name, "manual/dump.sql")
    assert [r["ID"] for r in outside] == ["abort-incomplete-multipart-uploads"]


def test_a_bad_dataset_name_is_refused() -> None:
    for name in ("", "Products", "../x", "a" * 64):
        with pytest.raises(ValueError, match="not a dataset name"):
            storage.backup_key(name, datetime.now(UTC))


def test_timestamps_in_backup_keys_are_utc() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 12, 3, 1, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert storage.backup_key("orders", local).endswith(
        "/2026/12/03/orders-20261203T000000Z.jsonl.gz"
    )
