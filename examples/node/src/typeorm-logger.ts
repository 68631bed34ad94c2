import { pino } from 'pino';
import type { Logger } from 'typeorm';

import { pinoOptions } from './logger.js';

const log = pino(pinoOptions).child({ component: 'typeorm' });

/**
 * TypeORM's messages as Pino JSON lines, so that nothing on stdout is plain text. Queries
 * themselves are not logged (each one is a span); query parameters are never logged, because
 * they carry customer data.
 */
export class PinoTypeOrmLogger implements Logger {
  logQuery(): void {}

  logQueryError(error: string | Error, query: string): void {
    log.error({ err: error, query }, 'query failed');
  }

  logQuerySlow(time: number, query: string): void {
    log.warn({ durationMs: time, query }, 'slow query');
  }

  logSchemaBuild(message: string): void {
    log.info(message);
  }

  logMigration(message: string): void {
    log.info({ migration: true }, message);
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    log[level === 'warn' ? 'warn' : 'info']({ detail: message }, 'typeorm');
  }
}
