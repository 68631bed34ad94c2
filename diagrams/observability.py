"""Observability: services -> OpenTelemetry SDK -> collector sidecar -> backends.

Logs join traces through the trace id that Pino writes on every line.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Observability: traces, metrics and logs"
ALT = (
    "Inside each ECS task, the NestJS service emits spans and metrics through the OpenTelemetry "
    "SDK to the OpenTelemetry Collector sidecar over OTLP on localhost, and writes Pino JSON logs "
    "with the trace id to stdout. The collector batches and exports traces and metrics to the "
    "telemetry backends; the log driver ships the logs there, where the trace id joins them."
)


def draw() -> Drawing:
    """Draw the telemetry path."""
    with Drawing(TITLE) as drawing:
        with cluster("ECS Fargate task"):
            service = tech("nestjs", "NestJS service")
            otel = tech("opentelemetry", "OpenTelemetry SDK")
            pino = tech("pino", "Pino logger")
            collector = tech("otel-collector")
        backend = tech("observability-backend", "CloudWatch, X-Ray")
        correlation = box("trace_id joins logs to traces")

        service >> flow("telemetry", "spans, metrics") >> otel
        service >> flow("telemetry", "log records") >> pino
        otel >> flow("telemetry", "OTLP/HTTP :4318") >> collector
        pino >> flow("telemetry", "JSON + trace_id on stdout, log driver") >> backend
        collector >> flow("telemetry", "batched export") >> backend
        backend >> flow("control", "query") >> correlation
    return drawing
