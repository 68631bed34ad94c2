import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'orders' })
export class Order {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('uuid', { name: 'customer_id' })
  customerId!: string;

  @Column('text')
  status!: 'placed' | 'paid' | 'shipped' | 'cancelled';

  // Money as integer minor units (cents): no floating point anywhere near it.
  @Column('bigint', { name: 'total_minor' })
  totalMinor!: string;

  @Column('char', { length: 3 })
  currency!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
