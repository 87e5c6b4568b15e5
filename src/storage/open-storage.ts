import { join } from 'node:path';

import type { Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import type { CacheStore } from './cache.js';
import type { Database } from './database.js';
import { createMemoryCache } from './memory-cache.js';
import { createPgDatabase } from './pg-database.js';
import { embeddedTemplate } from './embedded-template.js';
import { createPgliteDatabase } from './pglite-database.js';
import { createRedisCache } from './redis-cache.js';
import type { RequestDeadline } from './request-deadline.js';

export class StartupError extends Error {
  override name = 'StartupError';
}

function describe(url: string): string {
  try {
    const u = new URL(url.split(',')[0]!);
    return `${u.hostname}:${u.port || 'default port'}`;
  } catch {
    return 'the configured address';
  }
}

/** Opens PostgreSQL (DATABASE_URL) or the embedded PGlite under the data directory; a failure is one StartupError line. */
export async function openDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>, options: { schema?: string }): Promise<Database> {
  if (config.databaseUrl) {
    const db = createPgDatabase({ url: config.databaseUrl, schema: options.schema });
    try {
      await db.query('SELECT 1');
    } catch (error) {
      await db.close().catch(() => {});
      throw new StartupError(`cannot reach PostgreSQL at ${describe(config.databaseUrl)} (DATABASE_URL): ${(error as Error).message}`);
    }
    return db;
  }
  try {
    return await createPgliteDatabase({ dataDir: join(config.dataDir, 'pglite'), template: embeddedTemplate });
  } catch (error) {
    throw new StartupError(`cannot open the embedded database in ${join(config.dataDir, 'pglite')} (TESSERA_DATA_DIR): ${(error as Error).message}`);
  }
}

/** Opens Redis (REDIS_URL) or the in-process store; a failure is one StartupError line. */
export async function openCache(
  config: Pick<Config, 'redisUrl' | 'redisMode' | 'redisSentinelName'>,
  options: { clock: Clock; redisPrefix?: string; deadline?: Pick<RequestDeadline, 'remaining' | 'waitFor'> },
): Promise<CacheStore> {
  if (!config.redisUrl) return createMemoryCache({ clock: options.clock });
  try {
    const cache = await createRedisCache({ url: config.redisUrl, mode: config.redisMode, sentinelName: config.redisSentinelName, prefix: options.redisPrefix, deadline: options.deadline });
    await cache.ping();
    return cache;
  } catch (error) {
    throw new StartupError(`cannot reach Redis at ${describe(config.redisUrl)} (REDIS_URL): ${(error as Error).message}`);
  }
}

/** Both stores; the database is closed again when the cache cannot be opened. */
export async function openStorage(
  config: Pick<Config, 'databaseUrl' | 'redisUrl' | 'redisMode' | 'redisSentinelName' | 'dataDir'>,
  options: { clock: Clock; schema?: string; redisPrefix?: string },
): Promise<{ db: Database; cache: CacheStore }> {
  const db = await openDatabase(config, options);
  try {
    return { db, cache: await openCache(config, options) };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
