import { readdirSync } from 'node:fs';
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
    const schema = options.schema ?? (await connectionSchema(connection));
    if (options.count === undefined && (await upToDate(connection, schema))) return [];
    const applied = await runner({
      dbClient: connection as never,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      // Only the first `count` pending migrations (tests that seed data between steps); default all.
      ...(options.count !== undefined ? { count: options.count } : {}),
      migrationsTable: 'tessera_migrations',
      schema,
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
 * Whether every migration file is recorded as applied, asked without taking the lock. Most starts
 * have nothing to apply, and node-pg-migrate reads every migration file one after another
 * through the thread pool before it finds that out (over half a second of a start on a busy
 * 2-core machine). Anything pending, a missing table, or an unreadable one goes through the
 * runner, which decides under its lock.
 */
async function upToDate(connection: Queryable, schema: string): Promise<boolean> {
  const files = readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.sql')).map((name) => name.slice(0, -'.sql'.length));
  try {
    const { rows } = await connection.query<{ name: string }>(`SELECT name FROM "${schema.replace(/"/g, '""')}".tessera_migrations`);
    const applied = new Set(rows.map((row) => row.name));
    return files.every((name) => applied.has(name));
  } catch {
    return false;
  }
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
