import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

import type { CacheStore } from '../storage/cache.js';

/**
 * A fixed-window rate limit shared by every node when the cache store is Redis (and per node
 * otherwise). Should Redis fail, a per-node memory limiter with the same limits stands in, so
 * the endpoint neither fails open nor becomes unavailable.
 */
export interface RateLimiter {
  /** Takes one point for `key`; undefined when allowed, else the seconds to wait (for Retry-After). */
  consume(key: string): Promise<number | undefined>;
}

export function createRateLimiter(options: { cache: CacheStore; keyPrefix: string; points: number; durationSeconds: number }): RateLimiter {
  const redis = options.cache as CacheStore & { client?: unknown; prefix?: string };
  const client = redis.client;
  // Under the store's own prefix, so deployments (and test runs) sharing a Redis never share counters.
  const common = { keyPrefix: `${redis.prefix ?? ''}${options.keyPrefix}`, points: options.points, duration: options.durationSeconds };
  const memory = new RateLimiterMemory(common);
  const limiter = options.cache.kind === 'redis' && client ? new RateLimiterRedis({ ...common, storeClient: client, insuranceLimiter: memory, rejectIfRedisNotReady: true }) : memory;
  return {
    async consume(key) {
      try {
        await limiter.consume(key);
        return undefined;
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        throw rejection;
      }
    },
  };
}
