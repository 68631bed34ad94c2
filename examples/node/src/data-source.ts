import { Signer } from '@aws-sdk/rds-signer';
import { DataSource, type DataSourceOptions } from 'typeorm';

import { integer, required, service } from './config.js';
import { CreateOrdersAndOutbox1796256000000 } from './migrations/1796256000000-CreateOrdersAndOutbox.js';
import { Order } from './orders/order.entity.js';
import { OutboxEvent } from './orders/outbox-event.entity.js';
import { PinoTypeOrmLogger } from './typeorm-logger.js';

// --8<-- [start:data-source]
// Services reach the database through the RDS Proxy endpoint as <svc>_app; the one-off
// migration task uses the same file with the instance endpoint and the <svc>_owner role.
const host = required('DB_HOST');
const port = integer('DB_PORT', 5432);
const username = required('DB_USER');

// IAM database authentication: a token signed with the task role's credentials
// (rds-db:connect), valid for 15 minutes. node-postgres calls this for every new connection, so
// there is no password to store or rotate.
const signer = new Signer({ hostname: host, port, username });

export const dataSourceOptions: DataSourceOptions = {
  type: 'postgres',
  host,
  port,
  database: required('DB_NAME'),
  username,
  password: () => signer.getAuthToken(),
  // TLS with certificate verification; the proxy requires TLS. RDS Proxy presents an ACM
  // certificate, which Node's built-in CA store trusts, so no RDS CA bundle is needed.
  ssl: { rejectUnauthorized: true },
  applicationName: service.name,

  entities: [Order, OutboxEvent],
  migrations: [CreateOrdersAndOutbox1796256000000],
  // The schema changes only through reviewed migrations...
  synchronize: false,
  // ...which a one-off ECS task runs before the service update, not every starting task.
  migrationsRun: false,
  migrationsTransactionMode: 'each',

  // JSON lines through Pino; queries slower than maxQueryExecutionTime (ms) become warnings.
  logger: new PinoTypeOrmLogger(),
  maxQueryExecutionTime: 500,

  // Passed to the node-postgres Pool as is (and it wins over TypeORM's poolSize).
  extra: {
    // Per task. Budget: max x tasks of all services <= what the proxy may open.
    max: integer('DB_POOL_MAX', 10),
    // Close idle clients long before the proxy's 30-minute idle client timeout.
    idleTimeoutMillis: 60_000,
    // Wait at most 3 s for a free client or a new connection (the pg default, 0, waits forever).
    connectionTimeoutMillis: 3_000,
    // Client-side backstop, just above the 5 s statement_timeout set on the database role (a SET
    // on the session would pin the connection to one RDS Proxy backend), so the server cancels
    // first; both sit inside the 10 s API Gateway integration timeout.
    query_timeout: 6_000,
  },
};

/** Used by the migration task (migrate.ts). */
export default new DataSource(dataSourceOptions);
// --8<-- [end:data-source]
