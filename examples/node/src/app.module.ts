import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LoggerModule } from 'nestjs-pino';

import { dataSourceOptions } from './data-source.js';
import { HealthController } from './health.controller.js';
import { loggerParams } from './logger.js';
import { Order } from './orders/order.entity.js';
import { OrdersService } from './orders/orders.service.js';
import { OutboxEvent } from './orders/outbox-event.entity.js';
import { TelemetryLifecycle } from './telemetry.lifecycle.js';

// --8<-- [start:module]
@Module({
  imports: [
    LoggerModule.forRoot(loggerParams),
    TypeOrmModule.forRoot({
      ...dataSourceOptions,
      // Fail start-up after 5 attempts 3 s apart (the default is 10), so that a task that cannot
      // reach the database exits and ECS replaces it, instead of hanging half a minute or more.
      retryAttempts: 5,
      retryDelay: 3_000,
    }),
    TypeOrmModule.forFeature([Order, OutboxEvent]),
  ],
  controllers: [HealthController],
  providers: [OrdersService, TelemetryLifecycle],
})
export class AppModule {}
// --8<-- [end:module]
