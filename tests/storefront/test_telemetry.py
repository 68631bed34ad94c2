"""OpenTelemetry: spans from FastAPI, botocore, SQLAlchemy and Redis; context across messages."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import anyio
import httpx
import pytest
import redis
import sqlalchemy as sa
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from storefront import aws, telemetry
from storefront.telemetry import (
    build_providers,
    carrier_from_current_context,
    carrier_from_message_attributes,
    configure,
    context_from_carrier,
    instrument_app,
    message_attributes_from_carrier,
)

from tests.storefront.http_stub import Response, run_stub

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's in-memory span exporter, emptied before the test."""
    memory = configure("storefront-tests")
    assert memory is not None, "telemetry was configured with an OTLP endpoint in this process"
    memory.clear()
    yield memory
    memory.clear()


def catalog_app() -> FastAPI:
    app = FastAPI()

    @app.get("/catalog/products/{sku}")
    def product(sku: str) -> dict[str, str]:
        return {"sku": sku}

    return app


def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://storefront") as client:
            return await client.get(path, headers=headers)

    return anyio.run(go)


def server_spans(memory: InMemorySpanExporter) -> list[trace.Span]:
    return [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]


def test_a_request_through_the_app_creates_one_server_span_that_continues_the_callers_trace(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    app = catalog_app()
    instrument_app(app)
    with caplog.at_level(logging.WARNING):
        instrument_app(app)  # idempotent: still one span per request, and nothing to warn about
    assert "already instrumented" not in caplog.text

    response = get(app, "/catalog/products/TEE-1", traceparent=TRACEPARENT)

    assert response.status_code == 200
    (span,) = server_spans(spans)
    assert span.name == "GET /catalog/products/{sku}"
    assert span.attributes["http.route"] == "/catalog/products/{sku}"
    assert span.attributes["http.status_code"] == 200
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_requests_are_measured_by_the_meter_provider(spans: InMemorySpanExporter) -> None:
    app = catalog_app()
    instrument_app(app)
    get(app, "/catalog/products/TEE-2")

    reader = telemetry.in_memory_metrics()
    assert reader is not None
    data = reader.get_metrics_data()
    names = {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert names & {"http.server.duration", "http.server.request.duration"}


def test_a_boto3_call_to_moto_creates_a_client_span(
    spans: InMemorySpanExporter, aws_environment: str
) -> None:
    instrument_app(FastAPI())

    aws.client("sqs").create_queue(QueueName="orders-telemetry")

    (span,) = [s for s in spans.get_finished_spans() if s.name == "SQS.CreateQueue"]
    assert span.kind is SpanKind.CLIENT
    assert span.attributes["rpc.system"] == "aws-api"
    assert span.attributes["rpc.service"] == "SQS"
    assert span.attributes["rpc.method"] == "CreateQueue"


def test_the_carrier_keeps_the_trace_across_a_message_hop(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("publish order.placed", kind=SpanKind.PRODUCER) as producer:
        envelope = json.dumps(
            {"detail": {"order_id": "o-1"}, "trace": carrier_from_current_context()}
        )

    received = json.loads(envelope)  # what a consumer reads from EventBridge, SNS or SQS
    with tracer.start_as_current_span(
        "process order.placed",
        context=context_from_carrier(received["trace"]),
        kind=SpanKind.CONSUMER,
    ) as consumer:
        pass

    assert received["trace"]["traceparent"].startswith("00-")
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent.span_id == producer.context.span_id


def test_an_empty_carrier_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span(
        "process", context=context_from_carrier(carrier_from_message_attributes(None))
    ) as span:
        pass

    assert span.parent is None


def test_only_string_message_attributes_make_the_carrier() -> None:
    attributes = {
        "traceparent": {"DataType": "String", "StringValue": TRACEPARENT},
        "checksum": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        "odd": "not an attribute",
    }

    assert carrier_from_message_attributes(attributes) == {"traceparent": TRACEPARENT}


def test_an_app_the_instrumentation_already_instrumented_is_not_instrumented_again(
    spans: InMemorySpanExporter,
) -> None:
    app = catalog_app()
    FastAPIInstrumentor.instrument_app(app)
    instrument_app(app)

    get(app, "/catalog/products/TEE-3")

    assert len(server_spans(spans)) == 1


def test_the_trace_survives_a_real_sqs_message(
    spans: InMemorySpanExporter, aws_environment: str
) -> None:
    instrument_app(FastAPI())
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="fulfillment")["QueueUrl"]
    tracer = trace.get_tracer("test")

    with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER) as producer:
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps({"order_id": "o-1"}),
            MessageAttributes={
                "event_type": {"DataType": "String", "StringValue": "order.placed"},
                **message_attributes_from_carrier(carrier_from_current_context()),
            },
        )
    (message,) = sqs.receive_message(
        QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    carrier = carrier_from_message_attributes(message["MessageAttributes"])
    with tracer.start_as_current_span(
        "process", context=context_from_carrier(carrier), kind=SpanKind.CONSUMER
    ) as consumer:
        pass

    assert carrier["event_type"] == "order.placed"
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent.span_id == producer.context.span_id
    (send,) = [s for s in spans.get_finished_spans() if s.name == "SQS.SendMessage"]
    assert send.parent.span_id == producer.context.span_id  # the API call is inside the trace


def test_sqlalchemy_statements_are_traced_once_per_statement(
    spans: InMemorySpanExporter, postgres_dsn: str
) -> None:
    engine = sa.create_engine(postgres_dsn.replace("postgresql://", "postgresql+psycopg://"))
    app = FastAPI()
    instrument_app(app, engine=engine)
    instrument_app(app, engine=engine)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 41 + 1")).scalar_one() == 42
    finally:
        engine.dispose()

    statements = [s for s in spans.get_finished_spans() if "SELECT 41 + 1" in str(s.attributes)]
    assert len(statements) == 1
    assert len(list(engine.dispatch.before_cursor_execute)) == 1  # one tracer listens
    (span,) = statements
    assert span.kind is SpanKind.CLIENT
    assert span.attributes["db.system"] == "postgresql"


def test_redis_commands_are_traced_once_per_command(
    spans: InMemorySpanExporter, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    app = FastAPI()
    instrument_app(app, redis_client=client)
    with caplog.at_level(logging.WARNING):
        instrument_app(app, redis_client=client)
    assert "already instrumented" not in caplog.text
    try:
        client.set("cart:alice", "2")
        assert client.get("cart:alice") == b"2"
    finally:
        client.close()

    names = [s.name for s in spans.get_finished_spans() if s.attributes.get("db.system") == "redis"]
    assert names == ["SET", "GET"]


def test_a_redis_client_is_not_instrumented_again_when_redis_is_patched_globally(
    spans: InMemorySpanExporter, redis_url: str
) -> None:
    RedisInstrumentor().instrument()
    client = redis.Redis.from_url(redis_url)
    try:
        instrument_app(FastAPI(), redis_client=client)
        client.ping()
    finally:
        client.close()
        RedisInstrumentor().uninstrument()

    names = [s.name for s in spans.get_finished_spans() if s.attributes.get("db.system") == "redis"]
    assert names == ["PING"]


def test_with_an_otlp_endpoint_spans_and_metrics_are_exported_to_the_collector() -> None:
    with run_stub() as collector:
        collector.responses["/v1/traces"] = Response(content_type="application/x-protobuf")
        collector.responses["/v1/metrics"] = Response(content_type="application/x-protobuf")
        providers = build_providers("orders", f"{collector.url}/")
        assert (providers.span_memory, providers.metric_memory) == (None, None)

        with providers.tracer_provider.get_tracer("test").start_as_current_span("checkout"):
            providers.meter_provider.get_meter("test").create_counter("orders.placed").add(1)
        providers.shutdown()  # flushes both

        assert collector.hits["/v1/traces"] >= 1
        assert collector.hits["/v1/metrics"] >= 1
        assert b"checkout" in b"".join(collector.bodies["/v1/traces"])
        assert b"orders.placed" in b"".join(collector.bodies["/v1/metrics"])
        assert b"orders" in collector.bodies["/v1/traces"][0]  # the service.name resource


def test_configure_installs_the_providers_once(spans: InMemorySpanExporter) -> None:
    assert configure("another-name") is spans
    assert telemetry.in_memory_metrics() is not None
