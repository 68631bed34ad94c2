import { randomUUID } from 'node:crypto';

import { Injectable } from '@nestjs/common';
import { context, propagation } from '@opentelemetry/api';
import { DataSource } from 'typeorm';

import { Order } from './order.entity.js';
import { OutboxEvent } from './outbox-event.entity.js';

export interface PlaceOrder {
  customerId: string;
  totalMinor: bigint;
  currency: string;
}

@Injectable()
export class OrdersService {
  constructor(private readonly dataSource: DataSource) {}

  // --8<-- [start:outbox-transaction]
  /** The order row and its OrderPlaced event commit together or not at all. */
  async placeOrder(command: PlaceOrder): Promise<Order> {
    return this.dataSource.transaction('READ COMMITTED', async (manager) => {
      const order = manager.create(Order, {
        id: randomUUID(),
        customerId: command.customerId,
        status: 'placed',
        totalMinor: command.totalMinor.toString(),
        currency: command.currency,
      });
      await manager.insert(Order, order);

      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      await manager.insert(OutboxEvent, {
        id: randomUUID(),
        eventType: 'OrderPlaced',
        aggregateId: order.id,
        payload: {
          orderId: order.id,
          totalMinor: order.totalMinor,
          currency: order.currency,
        },
        traceparent: carrier['traceparent'] ?? null,
      });
      return order;
    });
  }
  // --8<-- [end:outbox-transaction]
}
