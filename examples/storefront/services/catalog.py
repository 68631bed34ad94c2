"""The catalog service: products, read cache-aside from Redis over PostgreSQL.

Anonymous ``GET /catalog/products/{sku}`` answers are public:
:class:`storefront.edge.CachePolicyMiddleware` marks them ``public, s-maxage=...`` so Cloudflare
may cache them, and marks everything else (authenticated, a write, an error) ``private,
no-store``. Behind Cloudflare, Redis (:class:`storefront.cache.CatalogCache`) absorbs the misses,
and PostgreSQL the misses of Redis. When Redis fails the cache logs and reads from PostgreSQL:
degraded, not failed.

Staff change prices (``PUT /catalog/products/{sku}/price``, role ``staff``, the JWT verified here
by :mod:`storefront.auth`); the cached entry is deleted after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from storefront.auth import Principal, Role, require_role
from storefront.cache import CatalogCache, product_key
from storefront.db.models import Product
from storefront.edge import CachePolicyMiddleware
from storefront.request_body import RequestBodyMiddleware
from storefront.responses import error_responses, install_validation_handler

Sku = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="A product's SKU."),
]
"""A SKU in a path: what the products table can hold, refused (422) before any cache or query."""


@dataclass
class CacheStats:
    """Reads served by the cache (hits) and by PostgreSQL (misses), for metrics and tests.

    Attributes:
        hits: Answers that did not touch PostgreSQL.
        misses: Answers loaded from PostgreSQL.
    """

    hits: int = 0
    misses: int = 0


class NewPrice(BaseModel):
    """The body of a price change."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "12" or true is not a price

    price_minor: int = Field(ge=0, le=100_000_000, description="Unit price in minor units.")


def _product_body(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "price_minor": product.price_minor,
        "in_stock": product.stock > 0,
    }


# --8<-- [start:catalog-app]
def create_app(sessions: sessionmaker[Session], cache: CatalogCache) -> FastAPI:
    """The catalog's ASGI app.

    Args:
        sessions: Sessions on the catalog's database.
        cache: The Redis cache in front of it.

    Returns:
        The app; ``app.state.cache_stats`` counts hits and misses.
    """
    app = FastAPI(title="catalog")
    stats = app.state.cache_stats = CacheStats()

    @app.get("/catalog/products/{sku}", responses=error_responses(404))
    def get_product(sku: Sku) -> dict[str, Any]:
        loaded = False

        def load() -> dict[str, Any] | None:
            nonlocal loaded
            loaded = True
            with sessions() as session:
                product = session.get(Product, sku)
                return _product_body(product) if product else None

        body = cache.get_or_load(product_key(sku), load)
        stats.misses += loaded
        stats.hits += not loaded
        if body is None:
            raise HTTPException(404, {"error": "not_found", "reason": f"no product {sku}"})
        return body

    @app.put(
        "/catalog/products/{sku}/price", responses=error_responses(400, 401, 403, 404, 413, 415)
    )
    def set_price(
        sku: Sku,
        change: NewPrice,
        _staff: Annotated[Principal, Depends(require_role(Role.STAFF))],
    ) -> dict[str, Any]:
        with sessions.begin() as session:
            product = session.get(Product, sku)
            if product is None:
                raise HTTPException(404, {"error": "not_found", "reason": f"no product {sku}"})
            product.price_minor = change.price_minor
            cache.invalidate_on_commit(session, product_key(sku))
            session.flush()
            return _product_body(product)

    install_validation_handler(app)
    app.add_middleware(RequestBodyMiddleware)
    app.add_middleware(CachePolicyMiddleware, public_prefixes=("/catalog/products",))
    return app


# --8<-- [end:catalog-app]
