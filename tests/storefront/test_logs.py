"""JSON-lines logging: the fields on every line, trace correlation, and secret redaction."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog
import uvicorn.config
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from storefront import logs
from storefront.logs import REDACTED, configure_logging, get_logger, luhn_valid, redact_value

VISA = "4111 1111 1111 1111"
MASTERCARD = "5555-5555-5555-4444"
AMEX = "378282246310005"
JWT = "eyJraWQiOiJkdW1teSJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Logging configured to write into a buffer; the previous configuration restored after."""
    previous = structlog.get_config()
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access")
        for logger in [logging.getLogger(name or None)]
    }
    stream = io.StringIO()
    configure_logging("orders", level="INFO", stream=stream, cache_loggers=False)
    yield stream
    structlog.configure(**previous)
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name or None)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def written(stream: io.StringIO) -> str:
    return stream.getvalue()


# --- The shape of every line ------------------------------------------------------------------


def test_every_line_is_one_json_object_with_timestamp_level_service_and_event(
    output: io.StringIO,
) -> None:
    log = get_logger("storefront.orders")

    log.info("order_placed", order_id="o-1", total_cents=4200, items=["TEE-1"])
    log.warning("stock_low", sku="TEE-1")

    first, second = lines(output)
    assert first["event"] == "order_placed"
    assert (first["level"], second["level"]) == ("info", "warning")
    assert first["service"] == "orders"
    assert first["logger"] == "storefront.orders"
    assert (first["order_id"], first["total_cents"], first["items"]) == ("o-1", 4200, ["TEE-1"])
    timestamp = datetime.fromisoformat(first["timestamp"])
    assert timestamp.utcoffset() is not None
    assert timestamp.utcoffset().total_seconds() == 0  # UTC


def test_lines_below_the_level_are_not_written(output: io.StringIO) -> None:
    get_logger().debug("noise")
    logging.getLogger("botocore").debug("noise too")
    get_logger().error("kept")

    assert [line["event"] for line in lines(output)] == ["kept"]


def test_standard_library_records_become_the_same_json_lines(output: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").warning("worker %s started", 7, extra={"api_key": "k-123"})

    (line,) = lines(output)
    assert line["event"] == "worker 7 started"
    assert line["logger"] == "uvicorn.error"
    assert (line["level"], line["service"]) == ("warning", "orders")
    assert line["api_key"] == REDACTED
    assert "trace_id" in line
    assert "timestamp" in line


def test_uvicorns_own_loggers_are_routed_through_the_json_handler(output: io.StringIO) -> None:
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # what uvicorn does at start-up
    configure_logging("orders", stream=output, cache_loggers=False)

    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "203.0.113.9:5123", "GET", "/catalog", "1.1", 200
    )

    (line,) = lines(output)
    assert line["logger"] == "uvicorn.access"
    assert line["event"] == '203.0.113.9:5123 - "GET /catalog HTTP/1.1" 200'


def test_configuring_twice_replaces_the_handler_instead_of_doubling_lines(
    output: io.StringIO,
) -> None:
    configure_logging("orders", stream=output, cache_loggers=False)
    logging.getLogger("x").warning("once")

    assert [line["event"] for line in lines(output)] == ["once"]


def test_request_context_is_on_every_line_until_cleared(output: io.StringIO) -> None:
    logs.bind_request_context({"request_id": "r-1", "authorization": "Bearer x"})
    get_logger().info("inside")
    logs.clear_request_context()
    get_logger().info("after")

    inside, after = lines(output)
    assert inside["request_id"] == "r-1"
    assert inside["authorization"] == REDACTED
    assert "request_id" not in after


# --- Trace correlation ------------------------------------------------------------------------


def test_each_line_carries_the_current_spans_ids_as_in_the_w3c_traceparent(
    output: io.StringIO,
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("checkout"):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        get_logger().info("inside_span")
        logging.getLogger("botocore").warning("inside_span_too")
    get_logger().info("outside_span")

    inside, inside_stdlib, outside = lines(output)
    _, trace_id, span_id, _ = carrier["traceparent"].split("-")
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert (inside_stdlib["trace_id"], inside_stdlib["span_id"]) == (trace_id, span_id)
    assert re.fullmatch(r"[0-9a-f]{32}", inside["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", inside["span_id"])
    assert (outside["trace_id"], outside["span_id"]) == (None, None)


# --- Redaction --------------------------------------------------------------------------------


def test_credential_headers_are_redacted_wherever_they_are(output: io.StringIO) -> None:
    get_logger().info(
        "request",
        headers={"Authorization": "Bearer abc", "Cookie": "session=s3cr3t", "Accept": "json"},
        response={"headers": {"Set-Cookie": "session=s3cr3t; HttpOnly", "Content-Type": "json"}},
        raw_headers=[(b"authorization", b"Bearer abc"), (b"cookie", b"session=s3cr3t")],
        upstream=[{"proxy-authorization": "Basic Zm9vOmJhcg=="}],
    )

    text = written(output)
    (line,) = lines(output)
    for secret in ("abc", "s3cr3t", "Zm9vOmJhcg=="):
        assert secret not in text
    assert line["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "Accept": "json"}
    assert line["response"]["headers"] == {"Set-Cookie": REDACTED, "Content-Type": "json"}
    assert line["raw_headers"] == [["authorization", REDACTED], ["cookie", REDACTED]]
    assert line["upstream"] == [{"proxy-authorization": REDACTED}]


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "db_password",
        "secret",
        "CLIENT_SECRET",
        "clientSecret",
        "token",
        "access_token",
        "accessToken",
        "id_token",
        "refresh_token",
        "Refresh-Token",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "passwd",
    ],
)
def test_secret_keys_are_redacted_in_any_case_and_at_any_depth(
    output: io.StringIO, key: str
) -> None:
    get_logger().info("login", **{key: "hunter2"}, nested={"deeper": [{key: "hunter2"}]})

    (line,) = lines(output)
    assert "hunter2" not in written(output)
    assert line[key] == REDACTED
    assert line["nested"] == {"deeper": [{key: REDACTED}]}


def test_card_numbers_inside_strings_are_redacted(output: io.StringIO) -> None:
    get_logger().info(
        f"charge failed for {VISA}",
        note=f"customer typed {MASTERCARD} then {AMEX}",
        attempts=[{"text": "card 4012888888881881 declined"}],
        payload=b"pan=4111111111111111",
    )

    text = written(output)
    (line,) = lines(output)
    for number in ("4111", "5555-5555", "378282246310005", "4012888888881881"):
        assert number not in text
    assert line["event"] == f"charge failed for {REDACTED}"
    assert line["note"] == f"customer typed {REDACTED} then {REDACTED}"
    assert line["payload"] == f"pan={REDACTED}"


def test_tokens_inside_strings_are_redacted(output: io.StringIO) -> None:
    get_logger().info(
        "upstream said", body=f'{{"id_token": "{JWT}"}}', header="Bearer opaque.tok-en"
    )

    (line,) = lines(output)
    assert JWT not in written(output)
    assert line["body"] == f'{{"id_token": "{REDACTED}"}}'
    assert line["header"] == f"Bearer {REDACTED}"


def test_a_card_number_in_an_exception_traceback_is_redacted(output: io.StringIO) -> None:
    try:
        raise ValueError(f"gateway rejected {VISA}")
    except ValueError:
        get_logger().exception("payment_failed")

    (line,) = lines(output)
    assert "ValueError: gateway rejected [REDACTED]" in line["exception"]
    assert "4111" not in written(output)


def test_values_that_are_not_secrets_survive(output: io.StringIO) -> None:
    kept = {
        "token_use": "access",
        "order_number": "4111111111111112",  # 16 digits, fails the Luhn check
        "phone": "+44 20 7946 0958",
        "placed_at": "2026-12-03T09:30:00Z",
        "amount_cents": 129_900,
        "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db",
        "sku": "TEE-1234567890123",
        "tags": ["vip", "eu"],
        "ratio": 0.5,
        "flag": True,
        "missing": None,
    }
    get_logger().info("order_placed", **kept)

    (line,) = lines(output)
    assert {key: line[key] for key in kept} == kept


def test_redaction_copies_and_never_changes_the_callers_objects() -> None:
    headers = {"Authorization": "Bearer abc", "tags": {"a", "b"}, 404: "not found"}
    pairs = (("cookie", "x=1"), ("accept", "json"))

    redacted = redact_value({"headers": headers, "pairs": pairs})

    assert headers == {"Authorization": "Bearer abc", "tags": {"a", "b"}, 404: "not found"}
    assert redacted["headers"]["Authorization"] == REDACTED
    assert redacted["headers"][404] == "not found"  # a key that is not text names no secret
    assert sorted(redacted["headers"]["tags"]) == ["a", "b"]
    assert redacted["pairs"] == (("cookie", REDACTED), ("accept", "json"))


def test_a_structure_too_deep_to_walk_is_cut_off_rather_than_leaked() -> None:
    deep: dict[str, Any] = {"password": "x"}
    for _ in range(40):
        deep = {"next": deep}

    text = json.dumps(redact_value(deep))

    assert '"x"' not in text
    assert REDACTED in text


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("4111111111111112", False),
        ("1234567890123", False),
    ],
)
def test_the_luhn_check(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid
