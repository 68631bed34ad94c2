import { Controller, Get } from '@nestjs/common';

/**
 * Health endpoints. The ALB target group checks /health/ready every 10 s. Readiness looks at the
 * process only, never at PostgreSQL or Redis: a shared dependency in the check would take every
 * task out of the target group at once.
 */
@Controller('health')
export class HealthController {
  /** Nest starts listening only after every module (the TypeORM pool included) has initialised. */
  @Get('ready')
  ready(): { status: 'ready' } {
    return { status: 'ready' };
  }

  @Get('live')
  live(): { status: 'live' } {
    return { status: 'live' };
  }
}
