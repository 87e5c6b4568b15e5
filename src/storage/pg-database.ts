import pg from 'pg';

import { createHash } from 'node:crypto';

import type { Database, Queryable, QueryOptions, QueryResult } from './database.js';
import { StorageUnavailableError } from './database.js';

export interface PgDatabaseOptions {
  url: string;
  /** Schema to work in; tests give each file its own so they never see each other's rows. */
  schema?: string;
  max?: number;
  /** Bounded waits: a request never hangs on a database that is gone (issue: faults). */
  connectionTimeoutMs?: number;
  statementTimeoutMs?: number;
}

// int8 counters fit a JS number for any realistic use count; read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '08006', '08003', '08001']);

function isConnectionError(error: unknown): boolean {
  if (error instanceof StorageUnavailableError) return false;
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? '';
  return Boolean((code && CONNECTION_ERRORS.has(code)) || (/timeout|Connection terminated|connect|not queryable/i.test(message) && !code?.match(/^[0-9A-Z]{5}$/)));
}

/** SQLSTATE 0A000 from a prepared statement whose tables changed shape since it was planned. */
const PG_PLAN_CHANGED = '0A000';

const unavailable = (error: unknown) => new StorageUnavailableError(`database unavailable: ${(error as Error).message}`, { cause: error });

function wrap(error: unknown): never {
  if (isConnectionError(error)) throw unavailable(error);
  throw error;
}

export function createPgDatabase(options: PgDatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 3000,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
    query_timeout: (options.statementTimeoutMs ?? 10_000) + 1000,
    idleTimeoutMillis: 30_000,
    options: options.schema ? `-c search_path=${options.schema}` : undefined,
  });
  // A pooled connection killed by the server (pg_terminate_backend) emits here; the pool
  // discards it and the next query opens a fresh one. Without a listener the process would crash.
  pool.on('error', () => {});

  /**
   * Takes a connection out of the pool for several statements. While it is out, the pool no
   * longer listens for its errors: a connection killed between two statements
   * (pg_terminate_backend, a failover) would emit an unhandled 'error' and end the process. The
   * listener keeps it a failed request instead, and a broken connection is destroyed on release,
   * never handed to the next caller.
   */
  const checkout = async (): Promise<{ client: pg.PoolClient; release(): void }> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      wrap(error);
    }
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken = error;
    };
    client.on('error', onError);
    return {
      client,
      release() {
        client.removeListener('error', onError);
        client.release(broken);
      },
    };
  };

  /**
   * A prepared statement's name: the same text gets the same name on every connection. A
   * migration on another node can change a table under a prepared `SELECT *` ("cached plan must
   * not change result type"); the statement is then prepared again under a new name.
   */
  const names = new Map<string, string>();
  let renamed = 0;
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (name === undefined) names.set(text, (name = `tessera_${createHash('sha256').update(text).digest('base64url').slice(0, 24)}_${renamed}`));
    return name;
  };
  const prepared = async (client: pg.Pool | pg.PoolClient, text: string, params?: readonly unknown[]) => {
    try {
      return await client.query({ name: nameOf(text), text, values: params as unknown[] });
    } catch (error) {
      if ((error as { code?: string }).code !== PG_PLAN_CHANGED) throw error;
      renamed += 1;
      names.delete(text);
      return client.query({ name: nameOf(text), text, values: params as unknown[] });
    }
  };
  const run = async <R>(client: pg.Pool | pg.PoolClient, text: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>> => {
    try {
      const result = options?.prepare ? await prepared(client, text, params) : await client.query(text, params as unknown[]);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
    } catch (error) {
      wrap(error);
    }
  };

  return {
    kind: 'postgres',
    query: (text, params, options) => run(pool, text, params, options),
    async transaction(fn) {
      const { client, release } = await checkout();
      const tx: Queryable = { query: (text, params, options) => run(client, text, params, options) };
      try {
        await client.query('BEGIN');
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw isConnectionError(error) ? unavailable(error) : error;
      } finally {
        release();
      }
    },
    async withAdvisoryLock(key, fn) {
      const { client, release } = await checkout();
      try {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [key]);
        if (!rows[0]?.locked) return undefined;
        try {
          return await fn();
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => {});
        }
      } finally {
        release();
      }
    },
    async withConnection(fn) {
      const { client, release } = await checkout();
      try {
        return await fn(client as unknown as Queryable);
      } finally {
        release();
      }
    },
    async close() {
      await pool.end();
    },
  };
}
