import type { Server } from 'node:http';

import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Logger } from 'nestjs-pino';

import { AppModule } from './app.module.js';
import { integer } from './config.js';

// --8<-- [start:bootstrap]
async function bootstrap(): Promise<void> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    // Hold Nest's start-up lines until the Pino logger is in place, so every line is JSON.
    bufferLogs: true,
  });
  app.useLogger(app.get(Logger));

  // ECS sends SIGTERM, waits stopTimeout (30 s by default), then SIGKILL. With shutdown hooks
  // Nest stops accepting connections, lets in-flight requests finish, then runs the
  // onApplicationShutdown hooks: the TypeORM pool closes and telemetry is flushed.
  // useProcessExit ends with process.exit(0), so the 'exit' event fires and Pino's
  // asynchronous stdout writes are flushed (the exit code becomes 0 instead of 143).
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });

  // Keep idle keep-alive connections open longer than the ALB's idle timeout (60 s), so that the
  // ALB, not Node.js, closes them. Otherwise the ALB can send a request on a socket Node.js is
  // closing, and the client gets a 502. Set explicitly: the Node.js default was 5 s before v26.
  const server: Server = app.getHttpServer();
  server.keepAliveTimeout = 65_000;

  await app.listen(integer('PORT', 3000), '0.0.0.0');
}
// --8<-- [end:bootstrap]

await bootstrap();
