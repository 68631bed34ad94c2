import { Injectable, type OnApplicationShutdown } from '@nestjs/common';

import { shutdownTelemetry } from './telemetry.js';

/** Flushes telemetry as the last step of the NestJS shutdown sequence. */
@Injectable()
export class TelemetryLifecycle implements OnApplicationShutdown {
  async onApplicationShutdown(): Promise<void> {
    await shutdownTelemetry();
  }
}
