"""The error answers the services give, declared so each app's OpenAPI schema tells the truth.

Every refusal a service makes has the same body, ``{"detail": {"error": ..., "reason": ...}}``:
``error`` is a stable code a client may branch on, ``reason`` a sentence for a human. FastAPI's
own validation errors (422) keep FastAPI's shape (``{"detail": [{"loc", "msg", "type"}]}``), which
FastAPI declares itself; :func:`install_validation_handler` only makes sure that body can always
be written. The routes list the other statuses they can answer with
:func:`error_responses`, so a schema-driven fuzzer (schemathesis, in ``tests/proof/``) can hold
every answer to the schema instead of skipping the check.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse


class ErrorDetail(BaseModel):
    """Why a request was refused."""

    error: str = Field(description="A stable code: invalid_token, not_found, rate_limited, ...")
    reason: str = Field(description="A sentence for a human, never echoing secrets.")


class ErrorBody(BaseModel):
    """The body of every refusal other than FastAPI's 422."""

    detail: ErrorDetail


class RateLimitedDetail(ErrorDetail):
    """The details of a 429 (:func:`storefront.ratelimit.too_many_requests`)."""

    limit: int
    window_s: float
    retry_after_s: int


class RateLimitedBody(BaseModel):
    """The body of a 429 from :func:`storefront.ratelimit.rate_limit`."""

    detail: RateLimitedDetail


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "RFC 6750 challenge", "schema": {"type": "string"}}
}

# --8<-- [start:error-responses]
ERRORS: dict[int, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A body that is not UTF-8, or an unknown product"},
    401: {
        "model": ErrorBody,
        "description": "Missing or invalid access token",
        "headers": _WWW_AUTHENTICATE,
    },
    403: {
        "model": ErrorBody,
        "description": "The token lacks the role",
        "headers": _WWW_AUTHENTICATE,
    },
    404: {"model": ErrorBody, "description": "No such resource (or not the caller's)"},
    409: {"model": ErrorBody, "description": "The resource's state forbids the change"},
    413: {"model": ErrorBody, "description": "The body is larger than the service accepts"},
    415: {"model": ErrorBody, "description": "The body is not JSON"},
    429: {
        "model": RateLimitedBody,
        "description": "Too many requests from this client",
        "headers": _RETRY_AFTER,
    },
    503: {
        "model": ErrorBody,
        "description": "A dependency is unavailable; retry later",
        "headers": _RETRY_AFTER,
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer with ``statuses``.

    Args:
        *statuses: HTTP statuses from :data:`ERRORS`.

    Returns:
        The declarations, for ``@app.get(..., responses=error_responses(401, 404))``.

    Raises:
        KeyError: A status with no declaration.
    """
    return {status: ERRORS[status] for status in statuses}


# --8<-- [end:error-responses]


# --8<-- [start:validation-handler]
class AsciiJSONResponse(JSONResponse):
    r"""JSON with every non-ASCII character escaped (``\ud800`` stays an escape, never a 500)."""

    def render(self, content: Any) -> bytes:
        """The content as ASCII JSON."""
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def validation_failed(_request: Request, error: Exception) -> JSONResponse:
    r"""FastAPI's 422 body, written so that any input it echoes can be encoded.

    FastAPI's own handler echoes the offending ``input`` and writes UTF-8, which a lone surrogate
    (``"\ud800"``, legal in JSON text, not encodable in UTF-8) turns into a 500.
    """
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def install_validation_handler(app: FastAPI) -> None:
    """Answer validation errors with :func:`validation_failed` instead of FastAPI's handler."""
    app.add_exception_handler(RequestValidationError, validation_failed)


# --8<-- [end:validation-handler]
