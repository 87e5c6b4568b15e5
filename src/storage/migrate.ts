import { join } from 'node:path';

import { runner } from 'node-pg-migrate';

import { projectRoot } from '../project-root.js';
import type { Database, Queryable } from './database.js';

export const MIGRATIONS_DIR = join(projectRoot(), 'migrations');

/**
 * Applies the SQL migrations of `migrations/` with node-pg-migrate, on PostgreSQL or PGlite
 * alike. node-pg-migrate takes its own advisory lock, so nodes starting together wait for
 * one another instead of racing.
 */
export async function migrate(db: Database, options: { schema?: string; log?: (msg: string) => void; count?: number } = {}): Promise<string[]> {
  return db.withConnection(async (connection) => {
    const applied = await runner({
      dbClient: connection as never,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      // Only the first `count` pending migrations (tests that seed data between steps); default all.
      ...(options.count !== undefined ? { count: options.count } : {}),
      migrationsTable: 'tessera_migrations',
      schema: options.schema ?? (await connectionSchema(connection)),
      createSchema: true,
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      log: options.log ?? (() => {}),
    });
    return applied.map((m) => m.name);
  });
}

/**
 * The schema a connection works in: the first entry of its search_path (a database opened
 * with `schema` sets it on every connection). Without this, migrate(db) would create the
 * tables in `public` and leave that pooled connection pointing there.
 */
async function connectionSchema(connection: Queryable): Promise<string> {
  const { rows } = await connection.query<{ current: string | null; path: string }>(
    "SELECT current_schema() AS current, current_setting('search_path') AS path",
  );
  // Read from search_path, not current_schema(): the latter skips a schema that does not
  // exist yet, and the runner is about to create it.
  const first = rows[0]?.path.split(',')[0]?.trim().replace(/^"(.*)"$/, '$1');
  if (first && first !== '$user') return first;
  return rows[0]?.current ?? 'public';
}
