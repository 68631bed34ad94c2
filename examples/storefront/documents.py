"""A DocumentDB-style event store and real-time aggregations, through the pymongo API.

The analytics service appends every domain event it receives (from its SQS queue, fed by the
EventBridge rule that matches every storefront event) to an ``events`` collection and answers
dashboard questions with aggregation pipelines: orders per minute, revenue per product, and the
order funnel (placed, then fulfilled or rejected).

**Which server.** ``Settings.documents_url`` selects the backend, a configuration change and not
a code change:

* ``mongomock://localhost/<database>`` (the default): mongomock, an in-memory implementation of
  the pymongo API. No MongoDB-compatible server is installable from the package registries this
  project builds from, and moto does not emulate DocumentDB, so the examples and their tests run
  on mongomock. It is honest only within limits: it implements neither sessions, transactions nor
  change streams, and it accepts stages that DocumentDB rejects, so the pipelines here keep to
  stages and operators DocumentDB documents as supported.
* ``mongodb://user:password@<cluster endpoint>:27017/<database>``: pymongo against DocumentDB (or
  MongoDB). The options DocumentDB requires are added unless the URL sets them: ``tls=true``
  with ``tlsCAFile`` (the RDS CA bundle, ``global-bundle.pem``), ``replicaSet=rs0`` (so the
  driver follows a failover and routes reads), ``readPreference=secondaryPreferred`` (the
  dashboards read from replicas) and ``retryWrites=false`` (engines before 8.0.2 do not support
  retryable writes), as in
  https://docs.aws.amazon.com/documentdb/latest/developerguide/connect_programmatically.md and
  https://docs.aws.amazon.com/documentdb/latest/developerguide/connect-to-replica-set.html.
  Options in the URL win, so a local MongoDB without TLS is ``...?tls=false``.

**Idempotent appends.** An event's ``_id`` is the envelope's id, and ``_id`` has a unique index in
every collection, so a redelivered event fails the insert with a duplicate-key error and
:meth:`EventStore.append` reports it as already stored; a different event reusing an id is an
error, not a silent overwrite. A BSON date keeps milliseconds, so :class:`StoredEvent` holds its
time to the millisecond: otherwise the stored copy of an event with a microsecond timestamp
(every live event) would differ from its redelivery, and the redelivery would be reported as a
conflict instead of a duplicate (a BSON date is milliseconds since the epoch:
https://manpages.debian.org/trixie/libbson-doc/bson_iter_date_time.3.en.html, MongoDB's libbson,
checked 2026-12-03).

**Pipelines.** They use only ``$match`` (with equality, ``$gte`` and ``$lt``), ``$unwind``,
``$group`` with ``$sum`` and ``$multiply``, ``$sort`` and ``$limit``, each documented for
DocumentDB: https://docs.aws.amazon.com/documentdb/latest/developerguide/match.html,
https://docs.aws.amazon.com/documentdb/latest/developerguide/gte.html,
https://docs.aws.amazon.com/documentdb/latest/developerguide/lt.html,
https://docs.amazonaws.cn/documentdb/latest/developerguide/unwind.html,
https://docs.aws.amazon.com/documentdb/latest/developerguide/group.html,
https://docs.aws.amazon.com/documentdb/latest/developerguide/multiply.html,
https://docs.aws.amazon.com/documentdb/latest/developerguide/sort.html and
https://docs.amazonaws.cn/en_us/documentdb/latest/developerguide/limit.html. Time windows need no
date operators: each event stores the minute it happened in, computed when it is appended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import pymongo
from pymongo.errors import DuplicateKeyError

from storefront.events.envelope import EventEnvelope
from storefront.settings import get_settings
from storefront.topology import ORDER_FULFILLED, ORDER_PLACED, ORDER_REJECTED

DEFAULT_DATABASE = "storefront"
# The options DocumentDB needs, as URI option names; the URL's own values win.
DOCUMENTDB_OPTIONS: dict[str, str] = {
    "tls": "true",
    "tlsCAFile": "global-bundle.pem",
    "replicaSet": "rs0",
    "readPreference": "secondaryPreferred",
    "retryWrites": "false",
}


class EventConflictError(ValueError):
    """A different event was appended with an id already stored."""


# --- Configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentsConfig:
    """How to reach the event store.

    Attributes:
        backend: ``mongomock`` (in memory) or ``pymongo`` (DocumentDB or MongoDB).
        uri: The URI given to the client (the ``mongomock://`` URL as a ``mongodb://`` one).
        database: The database name (the URL's path, else ``storefront``).
        options: Keyword options for the client (the DocumentDB defaults the URL lacks).
    """

    backend: Literal["mongomock", "pymongo"]
    uri: str
    database: str
    options: dict[str, Any] = field(default_factory=dict)


def _typed(name: str, value: str) -> Any:
    if name in {"tls", "retryWrites"}:
        if value.lower() not in {"true", "false"}:
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value.lower() == "true"
    return value


# --8<-- [start:documents-config]
def documents_config(url: str | None = None) -> DocumentsConfig:
    """Parse ``Settings.documents_url`` (or ``url``) into a client configuration.

    Args:
        url: ``mongomock://...`` or ``mongodb://...``; defaults to ``Settings.documents_url``.

    Returns:
        The configuration; for ``mongodb://``, the DocumentDB options the URL does not set.

    Raises:
        ValueError: Another scheme, or a malformed option value.
    """
    url = url or get_settings().documents_url
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
    if parts.scheme == "mongomock":
        uri = parts._replace(scheme="mongodb", query="").geturl()
        return DocumentsConfig(backend="mongomock", uri=uri, database=database)
    if parts.scheme != "mongodb":
        raise ValueError(
            f"documents URL scheme {parts.scheme!r}: use mongodb:// (DocumentDB, MongoDB) "
            "or mongomock:// (in memory)"
        )
    given = {name.lower(): value for name, value in parse_qsl(parts.query)}
    for name in ("tls", "retrywrites"):
        if name in given:
            _typed("tls" if name == "tls" else "retryWrites", given[name])
    options = {
        name: _typed(name, value)
        for name, value in DOCUMENTDB_OPTIONS.items()
        if name.lower() not in given
        # tlsCAFile only matters with TLS on.
        and not (name == "tlsCAFile" and given.get("tls", "true").lower() == "false")
    }
    return DocumentsConfig(backend="pymongo", uri=url, database=database, options=options)


# --8<-- [end:documents-config]


def connect(url: str | None = None) -> Any:
    """The database of the event store, on the configured backend.

    The client is timezone-aware (datetimes come back in UTC). For pymongo it connects lazily,
    in the background: an unreachable cluster surfaces on the first operation, after pymongo's
    server selection timeout.

    Raises:
        ValueError: A bad URL, a ``tlsCAFile`` that does not exist (download the RDS CA bundle,
            or point ``tlsCAFile`` in the URL at it), or ``mongomock://`` without mongomock.
    """
    config = documents_config(url)
    if config.backend == "mongomock":
        try:
            import mongomock  # a test dependency; only the in-memory backend needs it
        except ImportError as error:
            raise ValueError(
                "mongomock:// needs the mongomock package (a test dependency); in a deployment "
                "set STOREFRONT_DOCUMENTS_URL to the cluster's mongodb:// URL"
            ) from error

        client: Any = mongomock.MongoClient(config.uri, tz_aware=True)
    else:
        in_url = {k.lower(): v for k, v in parse_qsl(urlsplit(config.uri).query)}
        ca_file = config.options.get("tlsCAFile") or in_url.get("tlscafile")
        if ca_file and not Path(ca_file).is_file():
            raise ValueError(f"tlsCAFile {ca_file!r} does not exist")
        client = pymongo.MongoClient(config.uri, tz_aware=True, connect=False, **config.options)
    return client[config.database]


# --- The event store -------------------------------------------------------------------------


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _milliseconds(moment: datetime) -> datetime:
    """The time in UTC as a BSON date keeps it: to the millisecond."""
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1_000 * 1_000)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store keeps it.

    Attributes:
        id: The envelope's id (the document's ``_id``).
        type: The event type (``order.placed``).
        source: The producing service.
        aggregate: The aggregate kind, the type's first part (``order``).
        aggregate_id: The aggregate's id (``data.order_id`` for order events).
        occurred_at: When it happened (UTC), to the millisecond (a BSON date's precision).
        data: The payload.
    """

    id: str
    type: str
    source: str
    aggregate: str
    aggregate_id: str
    occurred_at: datetime
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        # BSON dates (MongoDB, DocumentDB, mongomock) keep milliseconds: hold the time as the
        # store gives it back, so a redelivered event equals its stored copy, not a conflict.
        object.__setattr__(self, "occurred_at", _milliseconds(self.occurred_at))

    @classmethod
    def from_envelope(cls, envelope: EventEnvelope) -> StoredEvent:
        """The stored form of an event envelope."""
        aggregate = envelope.type.split(".", 1)[0]
        aggregate_id = envelope.data.get(f"{aggregate}_id") or envelope.data.get("aggregate_id")
        return cls(
            id=str(envelope.id),
            type=envelope.type,
            source=envelope.source,
            aggregate=aggregate,
            aggregate_id=str(aggregate_id or envelope.id),
            occurred_at=envelope.time,
            data=dict(envelope.data),
        )

    def document(self) -> dict[str, Any]:
        """The document written to the collection."""
        return {
            "_id": self.id,
            "type": self.type,
            "source": self.source,
            "aggregate": self.aggregate,
            "aggregate_id": self.aggregate_id,
            "occurred_at": self.occurred_at.astimezone(UTC),
            "minute": _minute(self.occurred_at),
            "data": dict(self.data),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> StoredEvent:
        """The event back from its document."""
        return cls(
            id=document["_id"],
            type=document["type"],
            source=document["source"],
            aggregate=document["aggregate"],
            aggregate_id=document["aggregate_id"],
            occurred_at=document["occurred_at"].astimezone(UTC),
            data=document["data"],
        )


@dataclass(frozen=True)
class ProductRevenue:
    """Revenue of one product in a window.

    Attributes:
        sku: The product.
        revenue_minor: Sum of quantity times unit price, in minor units.
        units: Units ordered.
    """

    sku: str
    revenue_minor: int
    units: int


@dataclass(frozen=True)
class Funnel:
    """How many orders reached each stage in a window.

    Attributes:
        placed: Orders placed.
        fulfilled: Orders fulfilled.
        rejected: Orders rejected.
    """

    placed: int
    fulfilled: int
    rejected: int

    @property
    def open(self) -> int:
        """Orders placed and not yet decided (never negative)."""
        return max(self.placed - self.fulfilled - self.rejected, 0)

    @property
    def fulfilment_rate(self) -> float | None:
        """Fulfilled out of decided orders; None before any decision."""
        decided = self.fulfilled + self.rejected
        return self.fulfilled / decided if decided else None


class EventStore:
    """The ``events`` collection and its aggregations.

    Args:
        database: A pymongo (or mongomock) database, from :func:`connect`.
        collection: The collection's name.
    """

    def __init__(self, database: Any, collection: str = "events") -> None:
        self.events = database[collection]

    def ensure_indexes(self) -> None:
        """Create the indexes the queries use (idempotent).

        ``_id`` (the event id) is unique already. ``(type, occurred_at)`` serves the time-window
        pipelines; ``(aggregate_id, occurred_at)`` serves an aggregate's history.
        """
        self.events.create_index(
            [("type", pymongo.ASCENDING), ("occurred_at", pymongo.ASCENDING)],
            name="type_occurred_at",
        )
        self.events.create_index(
            [("aggregate_id", pymongo.ASCENDING), ("occurred_at", pymongo.ASCENDING)],
            name="aggregate_occurred_at",
        )

    # --8<-- [start:append]
    def append(self, event: StoredEvent | EventEnvelope) -> bool:
        """Store an event once.

        Returns:
            True when stored now, False when it was stored before (a redelivery).

        Raises:
            EventConflictError: A different event is stored under the same id.
        """
        stored = event if isinstance(event, StoredEvent) else StoredEvent.from_envelope(event)
        document = stored.document()
        try:
            self.events.insert_one(document)
        except DuplicateKeyError:
            existing = self.events.find_one({"_id": stored.id})
            if existing is not None and StoredEvent.from_document(existing) != stored:
                raise EventConflictError(
                    f"event {stored.id} is stored with other content"
                ) from None
            return False
        return True

    # --8<-- [end:append]

    def history(self, aggregate_id: str) -> list[StoredEvent]:
        """An aggregate's events, oldest first."""
        cursor = self.events.find({"aggregate_id": aggregate_id}).sort("occurred_at", 1)
        return [StoredEvent.from_document(document) for document in cursor]

    @staticmethod
    def _window(since: datetime, until: datetime) -> dict[str, Any]:
        if until <= since:
            raise ValueError("the window's end must be after its start")
        return {"$gte": since.astimezone(UTC), "$lt": until.astimezone(UTC)}

    # --8<-- [start:orders-per-minute]
    def orders_per_minute(self, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
        """Orders placed in each minute of ``[since, until)`` that had any, oldest first."""
        pipeline: Sequence[Mapping[str, Any]] = [
            {
                "$match": {
                    "type": ORDER_PLACED.detail_type,
                    "occurred_at": self._window(since, until),
                }
            },
            {"$group": {"_id": "$minute", "orders": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ]
        return [
            (row["_id"].astimezone(UTC), row["orders"]) for row in self.events.aggregate(pipeline)
        ]

    # --8<-- [end:orders-per-minute]

    # --8<-- [start:revenue-per-product]
    def revenue_per_product(
        self, since: datetime, until: datetime, *, limit: int = 10
    ) -> list[ProductRevenue]:
        """The ``limit`` best-selling products by revenue in ``[since, until)``.

        Revenue comes from the order lines of ``order.placed`` events (``data.lines``:
        ``sku``, ``quantity``, ``unit_price_minor``).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        pipeline: Sequence[Mapping[str, Any]] = [
            {
                "$match": {
                    "type": ORDER_PLACED.detail_type,
                    "occurred_at": self._window(since, until),
                }
            },
            {"$unwind": "$data.lines"},
            {
                "$group": {
                    "_id": "$data.lines.sku",
                    "revenue_minor": {
                        "$sum": {
                            "$multiply": ["$data.lines.quantity", "$data.lines.unit_price_minor"]
                        }
                    },
                    "units": {"$sum": "$data.lines.quantity"},
                }
            },
            {"$sort": {"revenue_minor": -1, "_id": 1}},
            {"$limit": limit},
        ]
        return [
            ProductRevenue(sku=row["_id"], revenue_minor=row["revenue_minor"], units=row["units"])
            for row in self.events.aggregate(pipeline)
        ]

    # --8<-- [end:revenue-per-product]

    # --8<-- [start:funnel]
    def funnel(self, since: datetime, until: datetime) -> Funnel:
        """Distinct orders that were placed, fulfilled and rejected in ``[since, until)``.

        An order counts once per stage however often its events were delivered or stored.
        """
        pipeline: Sequence[Mapping[str, Any]] = [
            {"$match": {"aggregate": "order", "occurred_at": self._window(since, until)}},
            {"$group": {"_id": {"order": "$aggregate_id", "type": "$type"}}},
            {"$group": {"_id": "$_id.type", "orders": {"$sum": 1}}},
        ]
        counts = {row["_id"]: row["orders"] for row in self.events.aggregate(pipeline)}
        return Funnel(
            placed=counts.get(ORDER_PLACED.detail_type, 0),
            fulfilled=counts.get(ORDER_FULFILLED.detail_type, 0),
            rejected=counts.get(ORDER_REJECTED.detail_type, 0),
        )

    # --8<-- [end:funnel]
