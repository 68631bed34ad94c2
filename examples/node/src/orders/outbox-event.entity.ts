import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** A domain event waiting for the relay to publish it to EventBridge (transactional outbox). */
@Entity({ name: 'outbox' })
@Index('outbox_unpublished_idx', ['createdAt'], { where: 'published_at IS NULL' })
export class OutboxEvent {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('text', { name: 'event_type' })
  eventType!: string;

  @Column('uuid', { name: 'aggregate_id' })
  aggregateId!: string;

  @Column('jsonb')
  payload!: Record<string, unknown>;

  // W3C traceparent of the request that wrote the event, so the consumer's span joins the trace.
  @Column('text', { nullable: true })
  traceparent!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column('timestamptz', { name: 'published_at', nullable: true })
  publishedAt!: Date | null;
}
