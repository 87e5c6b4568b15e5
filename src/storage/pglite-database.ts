import { mkdirSync } from 'node:fs';

import { PGlite, types } from '@electric-sql/pglite';

import type { Database, Queryable, QueryResult } from './database.js';

/**
 * The embedded default: PostgreSQL compiled to WASM, keeping its files under the data
 * directory. One process owns it, so advisory locks always succeed and transactions are
 * serialized by PGlite itself.
 */
export async function createPgliteDatabase(options: { dataDir?: string } = {}): Promise<Database> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const db = new PGlite({
    dataDir: options.dataDir,
    // bytea as a Buffer, as `pg` returns it: callers compare hashes with Buffer#equals.
    parsers: { [types.BYTEA]: (value: string) => Buffer.from(value.slice(2), 'hex') },
  });
  await db.waitReady;

  const run = async <R>(target: Pick<PGlite, 'query'>, text: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const result = await target.query<R>(text, params as unknown[]);
    // PGlite reports affectedRows = 0 for a SELECT; pg's rowCount counts the rows returned.
    return { rows: result.rows, rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
  };

  return {
    kind: 'pglite',
    query: (text, params) => run(db, text, params),
    transaction(fn) {
      return db.transaction((tx) => fn({ query: (text, params) => run(tx, text, params) } satisfies Queryable));
    },
    async withAdvisoryLock(_key, fn) {
      return fn();
    },
    withConnection(fn) {
      // The migration runner sends whole multi-statement files without parameters; PGlite's
      // extended-protocol query() refuses those, so they go through the simple protocol.
      return fn({
        async query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
          if (params && params.length > 0) return run<R>(db, text, params);
          const results = await db.exec(text);
          const last = results.at(-1);
          return { rows: (last?.rows ?? []) as R[], rowCount: last?.affectedRows ?? 0 };
        },
      });
    },
    async close() {
      await db.close();
    },
  };
}

