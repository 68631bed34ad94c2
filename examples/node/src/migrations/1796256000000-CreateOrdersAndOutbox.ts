import type { MigrationInterface, QueryRunner } from 'typeorm';

// --8<-- [start:migration]
export class CreateOrdersAndOutbox1796256000000 implements MigrationInterface {
  // Plain DDL runs in a transaction; a CREATE INDEX CONCURRENTLY migration would set this to false.
  transaction = true;

  async up(queryRunner: QueryRunner): Promise<void> {
    // Fail fast instead of queueing every request behind a waiting ACCESS EXCLUSIVE lock.
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`
      CREATE TABLE orders (
        id          uuid PRIMARY KEY,
        customer_id uuid        NOT NULL,
        status      text        NOT NULL
                    CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled')),
        total_minor bigint      NOT NULL CHECK (total_minor >= 0),
        currency    char(3)     NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`CREATE INDEX orders_customer_idx ON orders (customer_id, created_at)`);
    await queryRunner.query(`
      CREATE TABLE outbox (
        id           uuid PRIMARY KEY,
        event_type   text        NOT NULL,
        aggregate_id uuid        NOT NULL,
        payload      jsonb       NOT NULL,
        traceparent  text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
      )`);
    // The relay polls only what it has not published yet.
    await queryRunner.query(
      `CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE outbox`);
    await queryRunner.query(`DROP TABLE orders`);
  }
}
// --8<-- [end:migration]
