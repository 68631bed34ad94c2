/**
 * OpenTelemetry Node SDK setup, loaded before the application so that the instrumentations patch
 * http, express, pg and the AWS SDK before they are imported. The service is ESM, so the start
 * command also registers the instrumentation loader hook:
 *
 *   node --experimental-loader=@opentelemetry/instrumentation/hook.mjs \
 *     --import ./dist/telemetry.js dist/main.js
 */
// --8<-- [start:sdk]
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { awsEcsDetector } from '@opentelemetry/resource-detector-aws';
import {
  defaultResource,
  resourceAttributesEnvDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

import { service } from './config.js';

// OTLP/HTTP with protobuf bodies to the ADOT Collector sidecar, which shares the task's network
// namespace (awsvpc). Port 4318 is OTLP/HTTP; 4317 would be gRPC.
const collector = 'http://localhost:4318';

export const otelSdk = new NodeSDK({
  resource: defaultResource().merge(
    resourceFromAttributes({
      [ATTR_SERVICE_NAME]: service.name,
      [ATTR_SERVICE_VERSION]: service.version,
      // Incubating semantic convention; written out rather than imported from /incubating.
      'deployment.environment.name': service.environment,
    }),
  ),
  // cloud.*, aws.ecs.* (task ARN, cluster, launch type) from the task metadata endpoint v4,
  // plus anything the task definition puts in OTEL_RESOURCE_ATTRIBUTES.
  resourceDetectors: [awsEcsDetector, resourceAttributesEnvDetector],
  spanProcessors: [
    new BatchSpanProcessor({
      exporter: new OTLPTraceExporter({ url: `${collector}/v1/traces`, timeoutMillis: 5_000 }),
      maxQueueSize: 2_048,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 5_000,
      // Shorter than the 30 s default so that a final flush fits in the ECS stop timeout.
      exportTimeoutMillis: 10_000,
    }),
  ],
  metricReaders: [
    new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${collector}/v1/metrics`, timeoutMillis: 5_000 }),
      exportIntervalMillis: 60_000,
      exportTimeoutMillis: 10_000,
    }),
  ],
  instrumentations: [
    getNodeAutoInstrumentations({
      '@opentelemetry/instrumentation-pg': {
        // Statement text only; parameter values are customer data.
        enhancedDatabaseReporting: false,
      },
      '@opentelemetry/instrumentation-http': {
        // ALB health checks would otherwise be most of the traces.
        ignoreIncomingRequestHook: (request) => request.url?.startsWith('/health/') === true,
      },
      // Pino lines carry trace ids through the logger's own mixin (logger.ts) and go to stdout,
      // not through the OpenTelemetry logs pipeline.
      '@opentelemetry/instrumentation-pino': { enabled: false },
      '@opentelemetry/instrumentation-dns': { enabled: false },
      '@opentelemetry/instrumentation-net': { enabled: false },
    }),
  ],
});

otelSdk.start();
// --8<-- [end:sdk]

// --8<-- [start:shutdown]
/**
 * Flushes buffered spans and metrics. Called from a NestJS shutdown hook (TelemetryLifecycle),
 * after the HTTP server has stopped accepting requests, so the last requests' spans get out.
 */
export async function shutdownTelemetry(): Promise<void> {
  try {
    await otelSdk.shutdown();
  } catch (error) {
    // Telemetry must never block or fail a shutdown; the collector may already be gone.
    process.stderr.write(`telemetry shutdown failed: ${String(error)}\n`);
  }
}
// --8<-- [end:shutdown]
