"""OpenTelemetry set-up, and trace context carried across messages.

:func:`configure` installs a tracer provider and a meter provider for the service: exporting over
OTLP/HTTP to the Collector sidecar when ``STOREFRONT_OTLP_ENDPOINT`` is set, and keeping spans and
metrics in memory otherwise (the tests read them). :func:`instrument_app` adds the FastAPI,
botocore, SQLAlchemy and Redis instrumentations.

HTTP calls carry the W3C ``traceparent`` header automatically. Messages need it carried by hand:
:func:`carrier_from_current_context` gives the headers to put into an event envelope or message
attributes, and :func:`context_from_carrier` turns them back into the parent of the consumer's span,
so one trace spans the hop through EventBridge, SNS or SQS. For SQS and SNS,
:func:`message_attributes_from_carrier` and :func:`carrier_from_message_attributes` convert the
carrier to and from the ``MessageAttributes`` shape. The botocore instrumentation does not do this:
it only propagates the X-Ray header on the HTTP request to the AWS API, which ends at the service.

Versions (requirements.lock): opentelemetry-sdk 1.45.2 and the 0.66b2 instrumentations. The
SQLAlchemy instrumentor declares support for ``sqlalchemy < 2.1`` only and refuses to instrument the
locked 2.1; its ``instrument()`` can also run only once per process and patches ``create_engine``
globally. :func:`instrument_app` therefore attaches the instrumentation's ``EngineTracer`` to each
engine it is given (the engine events it listens to are unchanged in 2.1; the tests prove the spans
appear).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_state: dict[str, object] = {}


@dataclass(frozen=True)
class Providers:
    """What :func:`build_providers` made.

    Attributes:
        tracer_provider: The SDK tracer provider.
        meter_provider: The SDK meter provider.
        span_memory: Finished spans, when they are kept in memory (no OTLP endpoint).
        metric_memory: The metric reader to collect from, when metrics are kept in memory.
    """

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    span_memory: InMemorySpanExporter | None
    metric_memory: InMemoryMetricReader | None

    def shutdown(self) -> None:
        """Flush and stop both providers (exports what is still buffered)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


# --8<-- [start:providers]
def build_providers(service_name: str, otlp_endpoint: str | None = None) -> Providers:
    """Make (but do not install) a tracer provider and a meter provider for one service.

    Args:
        service_name: The ``service.name`` resource attribute.
        otlp_endpoint: The Collector's OTLP/HTTP base URL (``http://localhost:4318`` in a task);
            spans go to ``/v1/traces`` in batches and metrics to ``/v1/metrics`` every
            ``OTEL_METRIC_EXPORT_INTERVAL`` ms. None keeps both in memory.

    Returns:
        The providers, with the in-memory exporter and reader when there is no endpoint.
    """
    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    span_memory: InMemorySpanExporter | None = None
    metric_memory: InMemoryMetricReader | None = None
    reader: MetricReader
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
        )
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
    else:
        span_memory = InMemorySpanExporter()
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_memory))
        reader = metric_memory = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return Providers(tracer_provider, meter_provider, span_memory, metric_memory)


# --8<-- [end:providers]


def configure(service_name: str, otlp_endpoint: str | None = None) -> InMemorySpanExporter | None:
    """Install the tracer provider and the meter provider once per process.

    OpenTelemetry's global providers can be set only once; later calls return what the first
    call installed.

    Args:
        service_name: The ``service.name`` resource attribute.
        otlp_endpoint: The Collector's OTLP/HTTP endpoint (``http://localhost:4318`` in a task);
            None keeps finished spans and metrics in memory.

    Returns:
        The in-memory span exporter when spans are kept in memory, else None.
    """
    if "provider" in _state:
        return _state.get("memory")  # type: ignore[return-value]
    providers = build_providers(service_name, otlp_endpoint)
    trace.set_tracer_provider(providers.tracer_provider)
    metrics.set_meter_provider(providers.meter_provider)
    _state["provider"] = providers.tracer_provider
    _state["providers"] = providers
    _state["memory"] = providers.span_memory
    return providers.span_memory


def in_memory_metrics() -> InMemoryMetricReader | None:
    """The metric reader :func:`configure` installed when metrics are kept in memory."""
    providers = _state.get("providers")
    return providers.metric_memory if isinstance(providers, Providers) else None


# --8<-- [start:instrument-app]
_SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
_instrumented: dict[str, weakref.WeakSet[Any]] = {
    "engines": weakref.WeakSet(),
    "redis": weakref.WeakSet(),
}


def instrument_app(app: Any, *, engine: Any = None, redis_client: Any = None) -> None:
    """Trace the app's requests and its calls to AWS, PostgreSQL and Redis.

    Idempotent: an app, engine or client already instrumented (here or by the instrumentations
    themselves) is left as it is, so calling this twice never doubles spans.

    Args:
        app: The FastAPI application: one SERVER span per request, plus the
            ``http.server.*`` duration metrics.
        engine: A SQLAlchemy :class:`~sqlalchemy.engine.Engine` (for an ``AsyncEngine`` pass
            ``.sync_engine``): one CLIENT span per statement. Only the engines passed here are
            traced.
        redis_client: A ``redis.Redis`` (sync or asyncio) client: one CLIENT span per command.

    Every boto3 client in the process gets a CLIENT span per AWS API call (botocore is patched
    once, globally).
    """
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):  # the flag it sets
        FastAPIInstrumentor.instrument_app(app)

    botocore = BotocoreInstrumentor()
    if not botocore.is_instrumented_by_opentelemetry:
        botocore.instrument()

    if engine is not None:
        _instrument_engine(engine)
    if redis_client is not None:
        _instrument_redis(redis_client)


def _instrument_engine(engine: Any) -> None:
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.semconv.metrics import MetricInstruments

    if engine in _instrumented["engines"] or _engine_is_traced(engine):
        return
    connections_usage = metrics.get_meter(_SQLALCHEMY_SCOPE).create_up_down_counter(
        name=MetricInstruments.DB_CLIENT_CONNECTIONS_USAGE,
        unit="connections",
        description="The number of connections that are currently in the state of the attribute.",
    )
    EngineTracer(trace.get_tracer(_SQLALCHEMY_SCOPE), engine, connections_usage)
    _instrumented["engines"].add(engine)


def _engine_is_traced(engine: Any) -> bool:
    """Whether an OpenTelemetry EngineTracer already listens to this engine's statements."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    return any(
        isinstance(getattr(listener, "__self__", None), EngineTracer)
        for listener in engine.dispatch.before_cursor_execute
    )


def _instrument_redis(client: Any) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if client in _instrumented["redis"]:
        return
    if not RedisInstrumentor().is_instrumented_by_opentelemetry:  # not patched globally
        RedisInstrumentor.instrument_client(client)
    _instrumented["redis"].add(client)


# --8<-- [end:instrument-app]


# --8<-- [start:carrier]
def carrier_from_current_context() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_carrier(carrier: Mapping[str, str]) -> Context:
    """A context whose parent is the span described by ``carrier`` (from a message)."""
    return propagate.extract(dict(carrier))


def message_attributes_from_carrier(carrier: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The carrier as SQS/SNS ``MessageAttributes`` (one ``String`` attribute per header).

    Args:
        carrier: From :func:`carrier_from_current_context`.

    Returns:
        For example ``{"traceparent": {"DataType": "String", "StringValue": "00-..."}}``; merge
        it into the message's other attributes.
    """
    return {name: {"DataType": "String", "StringValue": value} for name, value in carrier.items()}


def carrier_from_message_attributes(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """The carrier back from a received message's ``MessageAttributes``.

    Args:
        attributes: ``message.get("MessageAttributes")`` of an SQS message received with
            ``MessageAttributeNames=["All"]`` (or naming ``traceparent`` and ``tracestate``).

    Returns:
        The string attributes; an empty carrier (a new trace) when there are none.
    """
    carrier: dict[str, str] = {}
    for name, attribute in (attributes or {}).items():
        value = attribute.get("StringValue") if isinstance(attribute, Mapping) else None
        if isinstance(value, str):
            carrier[name] = value
    return carrier


# --8<-- [end:carrier]
