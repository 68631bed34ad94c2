"""The declared error answers, and a 422 that can always be written."""

from __future__ import annotations

import anyio
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from storefront.responses import ErrorBody, RateLimitedBody, error_responses
from storefront.responses import install_validation_handler as install


class Named(BaseModel):
    """A body with one short string field."""

    name: str = Field(max_length=3)


def app_with(*, handler: bool) -> FastAPI:
    app = FastAPI()

    @app.post("/named", responses=error_responses(401, 429))
    def named(body: Named) -> dict[str, str]:
        return {"name": body.name}

    if handler:
        install(app)
    return app


def post(app: FastAPI, content: bytes) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            headers = {"content-type": "application/json"}
            return await client.post("/named", content=content, headers=headers)

    return anyio.run(go)


def test_routes_declare_the_error_bodies_and_headers_they_answer_with() -> None:
    schema = app_with(handler=True).openapi()
    responses = schema["paths"]["/named"]["post"]["responses"]
    assert set(responses) == {"200", "401", "422", "429"}
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]
    assert responses["429"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RateLimitedBody"
    }
    assert {"ErrorBody", "RateLimitedBody"} <= set(schema["components"]["schemas"])
    assert error_responses(401)[401]["model"] is ErrorBody
    assert error_responses(429)[429]["model"] is RateLimitedBody


def test_an_undeclared_status_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        error_responses(418)


def test_a_lone_surrogate_gets_a_422_not_a_500() -> None:
    # Legal JSON text, too long for the field; the string cannot be encoded in UTF-8.
    lone = b'{"name": "\\ud800\\ud800\\ud800\\ud800"}'
    assert post(app_with(handler=False), lone).status_code == 500  # FastAPI's own handler
    answer = post(app_with(handler=True), lone)
    assert answer.status_code == 422
    assert b"\\ud800" in answer.content  # echoed as an escape, so the body is still ASCII JSON
    assert answer.json()["detail"][0]["loc"] == ["body", "name"]


def test_ordinary_validation_errors_keep_fastapis_shape() -> None:
    answer = post(app_with(handler=True), b'{"name": 1}')
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"] == "Input should be a valid string"
