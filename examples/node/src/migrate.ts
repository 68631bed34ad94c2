/**
 * Entry point of the one-off migration task: `node dist/migrate.js`. The deployment pipeline runs
 * it with ECS RunTask (instance endpoint, the <svc>_owner role), waits for exit code 0, and only
 * then updates the service. Every migration must work with the version still running, because
 * old tasks keep serving during the rolling update (expand first, contract in a later release).
 */
import dataSource from './data-source.js';

// --8<-- [start:migrate]
await dataSource.initialize();
try {
  const applied = await dataSource.runMigrations({ transaction: 'each' });
  process.stdout.write(`${JSON.stringify({ msg: 'migrations applied', count: applied.length })}\n`);
} finally {
  await dataSource.destroy();
}
// --8<-- [end:migrate]
