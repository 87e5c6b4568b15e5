import { Cluster, Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';

import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';

import type { CacheStore } from './cache.js';
import { CacheUnavailableError } from './cache.js';
import type { RequestDeadline } from './request-deadline.js';

export interface RedisCacheOptions {
  url: string;
  mode?: 'standalone' | 'cluster' | 'sentinel';
  sentinelName?: string;
  /** Prefix of every key and channel; tests give each file its own. */
  prefix?: string;
  /** Bound on every command: a request never hangs on a Redis that is gone. */
  commandTimeoutMs?: number;
  /**
   * The time left to the request a command is sent for (src/storage/request-deadline.ts): a
   * command gets at most that, and fails at once when it is spent.
   */
  deadline?: Pick<RequestDeadline, 'remaining' | 'waitFor'>;
}

type Client = Redis | Cluster;

/** A command outside any request (start-up, jobs, pub/sub) waits at most this long. */
const DEFAULT_COMMAND_TIMEOUT_MS = 1000;

function hostsOf(url: string): { host: string; port: number }[] {
  return url.split(',').map((part) => {
    const u = new URL(part.trim());
    return { host: u.hostname, port: Number(u.port || 6379) };
  });
}

/** Builds an ioredis client for one server, a Cluster, or a Sentinel group. */
export function createRedisClient(options: RedisCacheOptions): Client {
  const common: RedisOptions = {
    // Fail fast instead of queueing commands while Redis is away: the caller answers
    // 503 temporarily_unavailable, and ioredis keeps reconnecting in the background.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    lazyConnect: true,
  };
  const mode = options.mode ?? 'standalone';
  if (mode === 'cluster') {
    // Same fail-fast rules as standalone; lazyConnect so start-up connects (and fails) explicitly.
    return new Cluster(hostsOf(options.url), { redisOptions: common, enableOfflineQueue: false, lazyConnect: true });
  }
  if (mode === 'sentinel') {
    const first = new URL(options.url.split(',')[0]!.trim());
    return new Redis({
      ...common,
      sentinels: hostsOf(options.url),
      name: options.sentinelName,
      password: first.password || undefined,
    });
  }
  return new Redis(options.url, common);
}

function wrap(error: unknown): never {
  throw new CacheUnavailableError(`cache unavailable: ${(error as Error).message}`, { cause: error });
}

/** The ioredis command as far as a deadline needs it. */
interface PendingCommand {
  setTimeout(ms: number): void;
  reject(error: Error): void;
  promise: Promise<unknown>;
}

/**
 * Every command of `client`, the rate limiter's included (it is handed the client itself),
 * passes through its `sendCommand`: that is where the request's remaining time becomes the
 * command's timeout. ioredis keeps the first timeout set on a command, so its own
 * `commandTimeout` stays the bound outside a request and the longest one inside.
 */
function boundByDeadline(client: Client, deadline: Pick<RequestDeadline, 'remaining' | 'waitFor'>, commandTimeoutMs: number): void {
  const target = client as unknown as { sendCommand(command: PendingCommand, ...rest: unknown[]): unknown };
  const send = target.sendCommand.bind(target);
  target.sendCommand = (command, ...rest) => {
    const left = deadline.remaining();
    if (left !== undefined) {
      if (left <= 0) {
        command.reject(new Error('the request\'s time for the cache is spent'));
        return command.promise;
      }
      command.setTimeout(Math.min(left, commandTimeoutMs));
      void deadline.waitFor(command.promise);
    }
    return send(command, ...rest);
  };
}

async function connect(client: Client): Promise<void> {
  if (client.status === 'wait') await client.connect();
}


/** The Redis cache store, through ioredis. */
export async function createRedisCache(options: RedisCacheOptions): Promise<CacheStore> {
  const prefix = options.prefix ?? 'tessera:';
  const client = createRedisClient(options);
  if (options.deadline) boundByDeadline(client, options.deadline, options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
  // Errors surface on the commands that meet them; without a listener ioredis would log
  // every reconnect attempt as an unhandled error.
  client.on('error', () => {});
  await connect(client).catch((error: unknown) => {
    // Stop the background reconnects, or a process that gives up on Redis never exits.
    client.disconnect();
    wrap(error);
  });
  const subscriber: Client = (client as Redis).duplicate();
  subscriber.on('error', () => {});
  let subscriberReady: Promise<void> | undefined;
  const handlers = new Map<string, Set<(message: string) => void>>();
  subscriber.on('message', (channel: string, message: string) => {
    for (const handler of handlers.get(channel) ?? []) handler(message);
  });

  const k = (key: string) => prefix + key;
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      wrap(error);
    }
  };

  return {
    kind: 'redis',
    limiter(options) {
      const settings = { keyPrefix: `${prefix}${options.keyPrefix}`, points: options.points, duration: options.durationSeconds, ...(options.blockDurationSeconds !== undefined ? { blockDuration: options.blockDurationSeconds } : {}) };
      // ioredis runs with the offline queue off: a Redis that is not ready fails at once, never queues.
      return new RateLimiterRedis({ ...settings, storeClient: client, rejectIfRedisNotReady: true, ...(options.insurance ? { insuranceLimiter: new RateLimiterMemory(settings) } : {}) });
    },
    get: (key) => call(() => client.get(k(key))),
    async set(key, value, ttlSeconds) {
      await call(() => (ttlSeconds === undefined ? client.set(k(key), value) : client.set(k(key), value, 'EX', Math.max(1, Math.ceil(ttlSeconds)))));
    },
    async replaceKeepTtl(key, value) {
      const result = await call(() => client.set(k(key), value, 'KEEPTTL', 'XX'));
      return result === 'OK';
    },
    async setIfAbsent(key, value, ttlSeconds) {
      const result = await call(() => client.set(k(key), value, 'EX', Math.max(1, Math.ceil(ttlSeconds)), 'NX'));
      return result === 'OK';
    },
    getDel: (key) => call(() => client.getdel(k(key))),
    async del(...keys) {
      if (keys.length === 0) return;
      // One DEL per key keeps Cluster happy when keys hash to different slots.
      await call(() => Promise.all(keys.map((key) => client.del(k(key)))));
    },
    async addToSet(key, member, ttlSeconds) {
      await call(async () => {
        const ttl = Math.max(1, Math.ceil(ttlSeconds));
        await client.multi().sadd(k(key), member).expire(k(key), ttl, 'GT').expire(k(key), ttl, 'NX').exec();
      });
    },
    members: (key) => call(() => client.smembers(k(key))),
    async hashIncrement(key, field, by) {
      await call(() => client.hincrby(k(key), field, by));
    },
    async hashTakeAll(key) {
      return call(async () => {
        const result = await client.multi().hgetall(k(key)).del(k(key)).exec();
        return (result?.[0]?.[1] as Record<string, string> | undefined) ?? {};
      });
    },
    async publish(channel, message) {
      await call(() => client.publish(k(channel), message));
    },
    async subscribe(channel, handler) {
      subscriberReady ??= connect(subscriber);
      await subscriberReady.catch(wrap);
      const full = k(channel);
      let set = handlers.get(full);
      if (!set) {
        set = new Set();
        handlers.set(full, set);
        await call(() => subscriber.subscribe(full));
      }
      set.add(handler);
      return async () => {
        set.delete(handler);
      };
    },
    waitFor: (work) => options.deadline?.waitFor(work) ?? work,
    async ping() {
      await call(() => client.ping());
    },
    async close() {
      subscriber.disconnect();
      client.disconnect();
    },
  };
}
