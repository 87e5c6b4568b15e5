/**
 * The one way tests get storage. Every test file opens its own isolated storage: a fresh
 * PostgreSQL schema with the migrations applied and a Redis key prefix, or an in-memory
 * PGlite with the in-process cache. Contract suites run once per entry of `backends`
 * ("one contract suite, every backend"); integration tests that start a whole server pass
 * `databaseUrl` + `schema` and `redisUrl` + `redisPrefix` into the app's configuration.
 *
 * PostgreSQL + Redis always run when `CI` is set: an unreachable server fails the run
 * loudly there. Locally they run when reachable and are skipped with a message otherwise.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';
import pg from 'pg';

import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import type { CacheStore } from '../../src/storage/cache.js';
import type { Database } from '../../src/storage/database.js';
import { createMemoryCache } from '../../src/storage/memory-cache.js';
import { migrate } from '../../src/storage/migrate.js';
import { createPgDatabase } from '../../src/storage/pg-database.js';
import { createPgliteDatabase } from '../../src/storage/pglite-database.js';
import { createRedisCache } from '../../src/storage/redis-cache.js';
import type { TestClock } from './test-clock.js';

export { createTestClock } from './test-clock.js';
export type { TestClock } from './test-clock.js';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

// ---------------------------------------------------------------------------------------
// PostgreSQL

export interface OpenedPostgres {
  db: Database;
  /** The schema this test owns; every pooled connection has it as its search_path. */
  schema: string;
  url: string;
  /** Drops the schema with everything in it, then closes the pool. Safe to call twice. */
  close(): Promise<void>;
}

/** Schema names carry their creation time so a run that was killed can be cleaned up later. */
const SCHEMA_PATTERN = /^t_([0-9a-z]+)_[0-9a-f]{8}$/;
const STALE_SCHEMA_AGE_MS = 6 * 60 * 60 * 1000;

export function newSchemaName(): string {
  return `t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** Opens a pool on a fresh, migrated schema of the test database. */
export async function openPostgres(options: { url?: string; max?: number } = {}): Promise<OpenedPostgres> {
  const url = options.url ?? TEST_DATABASE_URL;
  const schema = newSchemaName();
  const db = createPgDatabase({ url, schema, max: options.max ?? 4 });
  try {
    await dropStaleSchemas(db);
    await db.query(`CREATE SCHEMA "${schema}"`);
    await migrate(db, { schema });
  } catch (error) {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await db.close().catch(() => {});
    throw new Error(`cannot prepare a PostgreSQL test schema at ${redactUrl(url)}: ${(error as Error).message}`, { cause: error });
  }
  let closed = false;
  return {
    db,
    schema,
    url,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await db.close();
      }
    },
  };
}

let staleSchemasDropped = false;

/** Best effort, once per worker: schemas left behind by runs that were killed before close(). */
async function dropStaleSchemas(db: Database): Promise<void> {
  if (staleSchemasDropped) return;
  staleSchemasDropped = true;
  const { rows } = await db.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'");
  for (const { nspname } of rows) {
    const created = SCHEMA_PATTERN.exec(nspname)?.[1];
    if (created && Date.now() - parseInt(created, 36) > STALE_SCHEMA_AGE_MS) {
      await db.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`).catch(() => {});
    }
  }
}

// ---------------------------------------------------------------------------------------
// Redis

export interface OpenedRedis {
  cache: CacheStore;
  url: string;
  /** Prefix of every key and channel of this cache; a second node uses the same one. */
  prefix: string;
  /** Deletes every key under the prefix and disconnects. Safe to call twice. */
  close(): Promise<void>;
}

/** Opens a Redis cache store whose keys and channels no other test can see. */
export async function openRedis(options: { url?: string } = {}): Promise<OpenedRedis> {
  const url = options.url ?? TEST_REDIS_URL;
  const prefix = `test:${randomBytes(6).toString('hex')}:`;
  let cache: CacheStore;
  try {
    cache = await createRedisCache({ url, prefix });
  } catch (error) {
    throw new Error(`cannot connect to Redis at ${redactUrl(url)}: ${(error as Error).message}`, { cause: error });
  }
  let closed = false;
  return {
    cache,
    url,
    prefix,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await deleteKeysWithPrefix(url, prefix);
      } finally {
        await cache.close();
      }
    },
  };
}

/**
 * Calls `each` with every batch of keys under `prefix`, on a connection of its own (so it works
 * after the store was closed). SCAN, never KEYS: a shared Redis may hold many other keys.
 */
export async function forEachRedisKey(url: string, prefix: string, each: (client: Redis, keys: string[]) => Promise<void>): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await each(client, keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

const deleteKeysWithPrefix = (url: string, prefix: string) => forEachRedisKey(url, prefix, async (client, keys) => void (await client.del(...keys)));

// ---------------------------------------------------------------------------------------
// PGlite

export interface OpenedPglite {
  db: Database;
  close(): Promise<void>;
}

/** An in-memory PGlite with the migrations applied (cold start about 4 s). */
export async function openPglite(): Promise<OpenedPglite> {
  const db = await createPgliteDatabase();
  await migrate(db);
  let closed = false;
  return {
    db,
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}

// ---------------------------------------------------------------------------------------
// Backends: a database and a cache store that go together

export type BackendName = 'pglite+memory' | 'postgres+redis';

export interface OpenedBackend {
  name: BackendName;
  db: Database;
  cache: CacheStore;
  /** The clock the cache measures expiry on. Redis always uses real time, whatever was passed. */
  clock: Clock;
  /** Set for postgres+redis: what a server started by the test needs to share this storage. */
  databaseUrl?: string;
  schema?: string;
  redisUrl?: string;
  redisPrefix?: string;
  /** Releases everything: drops the schema, deletes the Redis keys, closes connections. */
  close(): Promise<void>;
}

export interface Backend {
  name: BackendName;
  open(clock?: Clock): Promise<OpenedBackend>;
}

const pgliteMemory: Backend = {
  name: 'pglite+memory',
  async open(clock = systemClock) {
    const database = await openPglite();
    const cache = createMemoryCache({ clock });
    return {
      name: 'pglite+memory',
      db: database.db,
      cache,
      clock,
      async close() {
        await cache.close();
        await database.close();
      },
    };
  },
};

const postgresRedis: Backend = {
  name: 'postgres+redis',
  async open(clock = systemClock) {
    const [postgres, redis] = await Promise.allSettled([openPostgres(), openRedis()]);
    if (postgres.status === 'rejected' || redis.status === 'rejected') {
      if (postgres.status === 'fulfilled') await postgres.value.close();
      if (redis.status === 'fulfilled') await redis.value.close();
      throw postgres.status === 'rejected' ? postgres.reason : (redis as PromiseRejectedResult).reason;
    }
    return {
      name: 'postgres+redis',
      db: postgres.value.db,
      cache: redis.value.cache,
      clock,
      databaseUrl: postgres.value.url,
      schema: postgres.value.schema,
      redisUrl: redis.value.url,
      redisPrefix: redis.value.prefix,
      async close() {
        await Promise.all([postgres.value.close(), redis.value.close()]);
      },
    };
  },
};

/** Why postgres+redis is left out of this run, or undefined when it runs. */
export const postgresRedisSkipReason: string | undefined = process.env.CI ? undefined : await unreachable();

if (postgresRedisSkipReason) {
  console.warn(
    `[test backends] skipping postgres+redis: ${postgresRedisSkipReason}. ` +
      'Start PostgreSQL and Redis (or set TEST_DATABASE_URL / TEST_REDIS_URL) to run these tests; with CI set they are required.',
  );
}

/** Every backend a contract suite must pass on. */
export const backends: readonly Backend[] = postgresRedisSkipReason ? [pgliteMemory] : [pgliteMemory, postgresRedis];

export const backendsByName: Readonly<Record<BackendName, Backend>> = { 'pglite+memory': pgliteMemory, 'postgres+redis': postgresRedis };

async function unreachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 1500 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    return `PostgreSQL at ${redactUrl(TEST_DATABASE_URL)} is unreachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    return `Redis at ${redactUrl(TEST_REDIS_URL)} is unreachable (${(error as Error).message})`;
  } finally {
    redis.disconnect();
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Time

/**
 * Lets `ms` pass for everything the backend measures time on: the test clock moves, and
 * when the cache is Redis (which expires keys on its own, real clock) the test also waits.
 * Use whole seconds just past a TTL, e.g. 1_100 for a 1-second TTL.
 */
export async function elapse(backend: OpenedBackend, clock: TestClock, ms: number): Promise<void> {
  clock.advance(ms);
  if (backend.cache.kind === 'redis') await sleep(ms);
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<invalid url>';
  }
}
