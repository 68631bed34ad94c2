"""S3: presigned uploads and downloads, receipts, static assets and backup exports.

* **Presigned uploads** let a browser send a file straight to S3 without AWS credentials and
  without the bytes passing through a service. :func:`presign_upload` makes a presigned ``POST``
  whose policy pins the key, the ``Content-Type`` and a ``content-length-range``;
  :func:`presign_put` makes a presigned ``PUT`` whose signature covers the ``Content-Type`` and
  ``Content-Length`` headers, so the client must send exactly those.
* **Presigned downloads** (:func:`presign_download`) are ``GET`` URLs created per request after
  the service checked that the caller may read the object.
* Every presigned request expires after 300 seconds by default. Signature Version 4 allows at most
  604,800 seconds (7 days) (https://docs.aws.amazon.com/cli/latest/reference/s3/presign.html), and
  a URL signed with temporary credentials (a task role's) stops working when they expire, whatever
  it says (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ShareObjectPreSignedURL.html, as
  quoted in https://gitlab.com/gitlab-org/gitlab/-/issues/350118); a short expiry also limits what
  a leaked link exposes.
* **Receipts** (:func:`put_receipt`) are written with SSE-KMS under the receipts bucket's customer
  managed key, named explicitly on the request rather than left to the bucket default, into a
  versioned bucket: :func:`restore_previous_version` brings back an overwritten receipt.
* **Static assets** (:func:`upload_asset`) get the ``Cache-Control`` the CDN honours: content-
  hashed files are immutable for a year, entry points such as ``index.html`` are revalidated
  after a minute. The bucket itself (SSE-S3, Block Public Access, ``GetObject`` only from the
  CDN's ranges) is set up by :mod:`storefront.bootstrap` from :mod:`storefront.topology`.
* **Backups** (:func:`export_backup`) are gzipped JSON-lines exports under
  ``topology.BACKUP_PREFIX``, the prefix the backups bucket's lifecycle rule moves to Glacier
  Instant Retrieval after 30 days and expires after 400.

Every client here signs with ``s3v4`` (presigned ``POST`` policies and SSE-KMS need it).

Not emulated by moto 5.2.5: moto does not validate signatures, expiry, or a ``POST`` policy's
conditions, so the tests perform the presigned requests over real HTTP (that the URLs and form
fields work) and assert the signed policy and parameters themselves (what S3 would enforce);
they cannot prove that S3 rejects an expired URL or an oversized upload. Lifecycle rules are
stored, never run; the bucket policy's ``aws:SourceIp`` condition is not evaluated.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config

from storefront import aws
from storefront.topology import BACKUP_PREFIX

MAX_PRESIGN_EXPIRY_S = 604_800
DEFAULT_EXPIRY_S = 300
ALLOWED_UPLOAD_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/avif"})
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=60, must-revalidate"

_HASHED_NAME = re.compile(r"\.[0-9a-f]{8,}\.[A-Za-z0-9]+$")
_DATASET = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def s3_client() -> Any:
    """An S3 client that signs with Signature Version 4."""
    return aws.client("s3", config=aws.CLIENT_CONFIG.merge(Config(signature_version="s3v4")))


def _check_expiry(expires_s: int) -> None:
    if not 1 <= expires_s <= MAX_PRESIGN_EXPIRY_S:
        raise ValueError(
            f"expires_s must be between 1 and {MAX_PRESIGN_EXPIRY_S} (SigV4's 7 days), "
            f"got {expires_s}"
        )


# --- Presigned requests ----------------------------------------------------------------------


@dataclass(frozen=True)
class PresignedUpload:
    """A presigned ``POST`` form.

    Attributes:
        url: Where the browser posts the form.
        fields: The form fields to send before the file (key, policy, signature...).
        key: The object's key.
        expires_at: When S3 stops accepting it.
    """

    url: str
    fields: dict[str, str]
    key: str
    expires_at: datetime

    def policy(self) -> dict[str, Any]:
        """The signed policy document (what S3 checks the upload against)."""
        return json.loads(base64.b64decode(self.fields["policy"]))


# --8<-- [start:presign-upload]
def presign_upload(
    bucket: str,
    key: str,
    *,
    content_type: str,
    max_bytes: int,
    expires_s: int = DEFAULT_EXPIRY_S,
    allowed_types: frozenset[str] = ALLOWED_UPLOAD_TYPES,
    s3: Any = None,
) -> PresignedUpload:
    """A presigned ``POST`` for one object, of one content type, of at most ``max_bytes``.

    Args:
        bucket: The bucket.
        key: The object's key (fixed: the client cannot choose another).
        content_type: The only ``Content-Type`` S3 will accept.
        max_bytes: The largest accepted file (the policy's ``content-length-range``).
        expires_s: Lifetime of the form (1 s to 7 days; 300 s by default).
        allowed_types: Content types this endpoint accepts at all.
        s3: The S3 client (:func:`s3_client` when None).

    Returns:
        The form to give the browser.

    Raises:
        ValueError: A type not allowed, a non-positive size, or an expiry out of range.
    """
    if content_type not in allowed_types:
        raise ValueError(f"content type {content_type!r} is not accepted")
    if max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    _check_expiry(expires_s)
    s3 = s3 or s3_client()
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=expires_s,
    )
    return PresignedUpload(
        url=post["url"],
        fields=dict(post["fields"]),
        key=key,
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_s),
    )


# --8<-- [end:presign-upload]


@dataclass(frozen=True)
class PresignedPut:
    """A presigned ``PUT``.

    Attributes:
        url: The URL to ``PUT`` the bytes to.
        headers: The headers the client must send as they are (they are signed).
        expires_at: When S3 stops accepting it.
    """

    url: str
    headers: dict[str, str]
    expires_at: datetime


def presign_put(
    bucket: str,
    key: str,
    *,
    content_type: str,
    content_length: int,
    expires_s: int = DEFAULT_EXPIRY_S,
    allowed_types: frozenset[str] = ALLOWED_UPLOAD_TYPES,
    s3: Any = None,
) -> PresignedPut:
    """A presigned ``PUT`` of exactly ``content_length`` bytes of ``content_type``.

    Raises:
        ValueError: A type not allowed, a non-positive length, or an expiry out of range.
    """
    if content_type not in allowed_types:
        raise ValueError(f"content type {content_type!r} is not accepted")
    if content_length < 1:
        raise ValueError("content_length must be at least 1")
    _check_expiry(expires_s)
    s3 = s3 or s3_client()
    url = s3.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": content_length,
        },
        ExpiresIn=expires_s,
    )
    return PresignedPut(
        url=url,
        headers={"Content-Type": content_type, "Content-Length": str(content_length)},
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_s),
    )


# --8<-- [start:presign-download]
def presign_download(
    bucket: str,
    key: str,
    *,
    expires_s: int = DEFAULT_EXPIRY_S,
    filename: str | None = None,
    version_id: str | None = None,
    s3: Any = None,
) -> str:
    """A presigned ``GET`` URL; make one per request, after checking the caller may read it.

    Args:
        bucket: The bucket.
        key: The object's key.
        expires_s: Lifetime of the URL (1 s to 7 days; 300 s by default).
        filename: Download under this name (``Content-Disposition: attachment``).
        version_id: A specific version of the object.
        s3: The S3 client (:func:`s3_client` when None).

    Returns:
        The URL.

    Raises:
        ValueError: An expiry out of range, or a file name with quotes or line breaks.
    """
    _check_expiry(expires_s)
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if filename is not None:
        if re.search(r'["\r\n]', filename):
            raise ValueError("a file name must not contain quotes or line breaks")
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    if version_id is not None:
        params["VersionId"] = version_id
    s3 = s3 or s3_client()
    return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))


# --8<-- [end:presign-download]


# --- Receipts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """An object just written.

    Attributes:
        key: Its key.
        version_id: Its version (the bucket is versioned).
        encryption: ``aws:kms`` or ``AES256``, as S3 reports it.
        kms_key_id: The KMS key S3 used, for SSE-KMS.
    """

    key: str
    version_id: str | None
    encryption: str | None
    kms_key_id: str | None


def receipt_key(order_id: str, issued_at: datetime) -> str:
    """Where an order's receipt lives: ``receipts/<year>/<month>/<order id>.pdf``."""
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", order_id):
        raise ValueError(f"not an order id: {order_id!r}")
    return f"receipts/{issued_at:%Y}/{issued_at:%m}/{order_id}.pdf"


# --8<-- [start:put-receipt]
def put_receipt(
    bucket: str,
    order_id: str,
    pdf: bytes,
    *,
    kms_key_id: str,
    issued_at: datetime | None = None,
    s3: Any = None,
) -> StoredObject:
    """Store an order's receipt, encrypted with the receipts key (SSE-KMS, bucket key on).

    Args:
        bucket: The receipts bucket.
        order_id: The order.
        pdf: The receipt document.
        kms_key_id: The receipts bucket's KMS key (``BootstrapRecord.buckets[...].kms_key_arn``).
        issued_at: When it was issued (now by default); sets the key's year and month.
        s3: The S3 client (:func:`s3_client` when None).

    Returns:
        The stored object as S3 reports it.

    Raises:
        ValueError: An empty document or a malformed order id.
    """
    if not pdf:
        raise ValueError("a receipt needs content")
    key = receipt_key(order_id, issued_at or datetime.now(UTC))
    s3 = s3 or s3_client()
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=pdf,
        ContentType="application/pdf",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_id,
        BucketKeyEnabled=True,
    )
    return StoredObject(
        key=key,
        version_id=response.get("VersionId"),
        encryption=response.get("ServerSideEncryption"),
        kms_key_id=response.get("SSEKMSKeyId"),
    )


# --8<-- [end:put-receipt]


def restore_previous_version(bucket: str, key: str, *, s3: Any = None) -> str:
    """Make the version before the current one current again (a copy; history is kept).

    Returns:
        The id of the new current version.

    Raises:
        LookupError: The object has no earlier version.
    """
    s3 = s3 or s3_client()
    versions = [
        v
        for v in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        if v["Key"] == key
    ]
    versions.sort(key=lambda v: v["LastModified"], reverse=True)
    if len(versions) < 2:
        raise LookupError(f"{key} has no earlier version")
    previous = versions[1]["VersionId"]
    response = s3.copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": previous}
    )
    return str(response["VersionId"])


# --- Static assets ---------------------------------------------------------------------------


# --8<-- [start:asset-cache-control]
def asset_cache_control(key: str) -> str:
    """The ``Cache-Control`` of a static asset.

    A content-hashed name (``app.3f9c2a1b.js``) never changes content, so the CDN and browsers
    may keep it for a year without asking again; any other file (``index.html``) must be
    revalidated soon, because it is how a new deploy's hashed names are found.
    """
    return IMMUTABLE if _HASHED_NAME.search(key) else REVALIDATE


# --8<-- [end:asset-cache-control]


def upload_asset(
    bucket: str, key: str, body: bytes, *, content_type: str, s3: Any = None
) -> StoredObject:
    """Upload one built asset with its content type and cache policy."""
    s3 = s3 or s3_client()
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        CacheControl=asset_cache_control(key),
    )
    return StoredObject(
        key=key,
        version_id=response.get("VersionId"),
        encryption=response.get("ServerSideEncryption"),
        kms_key_id=response.get("SSEKMSKeyId"),
    )


# --- Backups ---------------------------------------------------------------------------------


# --8<-- [start:backup-key]
def backup_key(dataset: str, taken_at: datetime) -> str:
    """``exports/<dataset>/<yyyy>/<mm>/<dd>/<dataset>-<UTC timestamp>.jsonl.gz``.

    Under ``BACKUP_PREFIX``, so the lifecycle rule applies; dated folders make a point-in-time
    restore a listing of one prefix.

    Raises:
        ValueError: A dataset name that is not lower-case letters, digits, ``-`` or ``_``.
    """
    if not _DATASET.match(dataset):
        raise ValueError(f"not a dataset name: {dataset!r}")
    at = taken_at.astimezone(UTC)
    return f"{BACKUP_PREFIX}{dataset}/{at:%Y/%m/%d}/{dataset}-{at:%Y%m%dT%H%M%SZ}.jsonl.gz"


# --8<-- [end:backup-key]


@dataclass(frozen=True)
class BackupExport:
    """A finished export.

    Attributes:
        key: Where it is.
        rows: How many rows it holds.
        size: Its compressed size in bytes.
        version_id: Its version.
    """

    key: str
    rows: int
    size: int
    version_id: str | None


def export_backup(
    bucket: str,
    dataset: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    kms_key_id: str,
    taken_at: datetime | None = None,
    s3: Any = None,
) -> BackupExport:
    """Write ``rows`` as a gzipped JSON-lines export, encrypted with the backups key.

    Raises:
        ValueError: A bad dataset name.
    """
    key = backup_key(dataset, taken_at or datetime.now(UTC))
    buffer = io.BytesIO()
    count = 0
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        for row in rows:
            compressed.write(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
            count += 1
    body = buffer.getvalue()
    s3 = s3 or s3_client()
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/gzip",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_id,
        BucketKeyEnabled=True,
        Metadata={"rows": str(count), "dataset": dataset},
    )
    return BackupExport(key=key, rows=count, size=len(body), version_id=response.get("VersionId"))


def read_backup(bucket: str, key: str, *, s3: Any = None) -> list[dict[str, Any]]:
    """The rows of an export (for a restore)."""
    s3 = s3 or s3_client()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line]


def lifecycle_rules_for(bucket: str, key: str, *, s3: Any = None) -> list[dict[str, Any]]:
    """The bucket's enabled lifecycle rules whose prefix filter covers ``key``."""
    s3 = s3 or s3_client()
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return [
        rule
        for rule in rules
        if rule.get("Status") == "Enabled"
        and key.startswith(rule.get("Filter", {}).get("Prefix", rule.get("Prefix", "")))
    ]
