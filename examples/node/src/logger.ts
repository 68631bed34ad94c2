import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import { trace } from '@opentelemetry/api';
import type { Params } from 'nestjs-pino';
import { type LoggerOptions, stdTimeFunctions } from 'pino';

import { optional, service } from './config.js';

// --8<-- [start:pino-options]
/**
 * Pino options shared by the request logger (pino-http, through nestjs-pino) and any standalone
 * logger. One JSON object per line on stdout; the awslogs driver ships it to CloudWatch Logs.
 */
export const pinoOptions: LoggerOptions = {
  level: optional('LOG_LEVEL', 'info'),
  // No pid/hostname: in a Fargate task they say nothing the resource attributes don't.
  base: { service: service.name, version: service.version, env: service.environment },
  timestamp: stdTimeFunctions.isoTime,
  formatters: {
    // "level":"info" instead of "level":30, readable in CloudWatch Logs Insights.
    level: (label) => ({ level: label }),
  },
  // Joins every line to its trace: the ids of the span that is active when the line is written.
  mixin() {
    const span = trace.getActiveSpan();
    if (span === undefined) {
      return {};
    }
    const { traceId, spanId, traceFlags } = span.spanContext();
    return { trace_id: traceId, span_id: spanId, trace_flags: traceFlags };
  },
  redact: {
    paths: [
      'req.headers.authorization',
      'req.headers.cookie',
      // The origin-lock secret that Cloudflare adds and AWS WAF checks.
      'req.headers["x-origin-verify"]',
      'res.headers["set-cookie"]',
      '*.password',
      '*.accessToken',
      '*.refreshToken',
      '*.idToken',
      'customer.email',
      'customer.phone',
    ],
    censor: '[Redacted]',
  },
};
// --8<-- [end:pino-options]

// --8<-- [start:pino-http]
/** nestjs-pino: one line per request with its request id; app logs carry the request context. */
export const loggerParams: Params = {
  pinoHttp: {
    ...pinoOptions,
    // Reuse the id the edge set, so that a line can be found from the client side.
    genReqId: (request: IncomingMessage) => {
      const header = request.headers['x-request-id'];
      return typeof header === 'string' && header.length <= 128 ? header : randomUUID();
    },
    autoLogging: {
      ignore: (request: IncomingMessage) => request.url?.startsWith('/health/') === true,
    },
    customLogLevel: (_request, response, error) => {
      if (error !== undefined || response.statusCode >= 500) {
        return 'error';
      }
      return response.statusCode >= 400 ? 'warn' : 'info';
    },
    // Request and response bodies are never logged; headers are, minus the redacted paths.
    quietReqLogger: true,
  },
};
// --8<-- [end:pino-http]
