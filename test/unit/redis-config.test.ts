/**
 * Redis deployment modes (docs/design.md, "Storage backends": standalone, Sentinel or Cluster through ioredis):
 * the environment selects the mode, and the client is built with the fail-fast options in every
 * mode. No server is contacted: every client here is lazy and closed unused.
 */
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';

import { ConfigError, loadConfig } from '../../src/config/config.js';
import { createRedisClient } from '../../src/storage/redis-cache.js';

const base = { NODE_ENV: 'test', REDIS_URL: 'redis://a.internal:7000,redis://b.internal:7001' };

describe('Redis modes', () => {
  it('reads cluster and sentinel settings from the environment', () => {
    expect(loadConfig({ NODE_ENV: 'test', REDIS_URL: 'redis://r:6379' }).redisMode).toBe('standalone');
    expect(loadConfig({ ...base, TESSERA_REDIS_MODE: 'cluster' }).redisMode).toBe('cluster');
    const sentinel = loadConfig({ ...base, TESSERA_REDIS_MODE: 'sentinel', TESSERA_REDIS_SENTINEL_NAME: 'tessera' });
    expect(sentinel).toMatchObject({ redisMode: 'sentinel', redisSentinelName: 'tessera' });
    expect(() => loadConfig({ ...base, TESSERA_REDIS_MODE: 'sentinel' })).toThrow(/TESSERA_REDIS_SENTINEL_NAME/);
    expect(() => loadConfig({ ...base, TESSERA_REDIS_MODE: 'replicas' })).toThrow(ConfigError);
  });

  it('builds a Cluster client from every seed node, failing fast instead of queueing', () => {
    const client = createRedisClient({ url: base.REDIS_URL, mode: 'cluster' });
    try {
      expect(client).toBeInstanceOf(Cluster);
      const cluster = client as Cluster;
      expect((cluster as unknown as { startupNodes: unknown }).startupNodes).toEqual([{ host: 'a.internal', port: 7000 }, { host: 'b.internal', port: 7001 }]);
      expect(cluster.options.enableOfflineQueue).toBe(false);
      expect(cluster.options.redisOptions).toMatchObject({ enableOfflineQueue: false, commandTimeout: 1000 });
      expect(cluster.status).toBe('wait');
    } finally {
      client.disconnect();
    }
  });

  it('builds a Sentinel client that asks the sentinels for the named master', () => {
    const client = createRedisClient({ url: 'redis://:pw@s1.internal:26379,redis://s2.internal:26380', mode: 'sentinel', sentinelName: 'tessera', commandTimeoutMs: 500 });
    try {
      expect(client).toBeInstanceOf(Redis);
      const options = (client as Redis).options;
      expect(options.sentinels).toEqual([{ host: 's1.internal', port: 26379 }, { host: 's2.internal', port: 26380 }]);
      expect(options).toMatchObject({ name: 'tessera', password: 'pw', enableOfflineQueue: false, commandTimeout: 500 });
    } finally {
      client.disconnect();
    }
  });

  it('keeps a standalone URL as given', () => {
    const client = createRedisClient({ url: 'redis://r.internal:6390/2' });
    try {
      expect((client as Redis).options).toMatchObject({ host: 'r.internal', port: 6390, db: 2, enableOfflineQueue: false });
    } finally {
      client.disconnect();
    }
  });
});

describe('installation scoping', () => {
  const pg = { NODE_ENV: 'test', DATABASE_URL: 'postgres://db/x', TESSERA_KEK: Buffer.alloc(32, 1).toString('base64'), TESSERA_COOKIE_KEYS: 'k'.repeat(32) };
  it('accepts a schema and a Redis prefix shared by the nodes of one installation', () => {
    expect(loadConfig({ ...pg, TESSERA_DATABASE_SCHEMA: 'tenant_a', TESSERA_REDIS_PREFIX: 'tessera:a:' })).toMatchObject({ databaseSchema: 'tenant_a', redisPrefix: 'tessera:a:' });
  });
  it('refuses a schema that is not a plain identifier, and a schema without DATABASE_URL', () => {
    expect(() => loadConfig({ ...pg, TESSERA_DATABASE_SCHEMA: 'a; drop table x' })).toThrow(/TESSERA_DATABASE_SCHEMA/);
    expect(() => loadConfig({ NODE_ENV: 'test', TESSERA_DATABASE_SCHEMA: 'a' })).toThrow(/needs DATABASE_URL/);
    expect(() => loadConfig({ ...pg, TESSERA_REDIS_PREFIX: 'a b' })).toThrow(/TESSERA_REDIS_PREFIX/);
  });
});
