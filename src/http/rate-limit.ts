import type { Context, Next } from 'koa';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

import type { CacheStore } from '../storage/cache.js';
import { ProblemError } from './middleware.js';
import { OAuthError } from './oauth-error.js';

/**
 * Rate limits shared by every node (DESIGN.md "Storage": rate-limit counters live in Redis).
 *
 * One factory for every limit Tessera enforces (per client on /token, per IP on the leaked-token
 * report, …): a fixed window of `points` requests per `durationSeconds` and key. With Redis the
 * counters are shared by all nodes (one atomic Lua call per request), under the store's own key
 * prefix so installations sharing a Redis never share counters. With the in-process store, or
 * while Redis is unreachable, each node counts in its own memory instead: the limit then holds
 * per node, so a Redis outage neither opens the endpoint wide nor makes it unavailable.
 */
export interface RateLimitSettings {
  /** Requests allowed per key in one window. */
  points: number;
  /** Window length in seconds. */
  durationSeconds: number;
}

export interface RateLimiter {
  /** Takes one point for `key`; undefined when allowed, else the seconds to wait (for Retry-After). */
  consume(key: string): Promise<number | undefined>;
  /** Forgets `key` (e.g. after a successful sign-in). */
  reset(key: string): Promise<void>;
}

/** A key (client id, IP, user name) is cut to a bounded length, so no request can make a huge Redis key. */
const MAX_KEY_LENGTH = 200;
const bounded = (key: string) => (key.length > MAX_KEY_LENGTH ? key.slice(0, MAX_KEY_LENGTH) : key);

export function createRateLimiter(options: { cache: CacheStore; keyPrefix: string } & RateLimitSettings): RateLimiter {
  const redis = options.cache as CacheStore & { client?: unknown; prefix?: string };
  const common = { keyPrefix: `${redis.prefix ?? ''}${options.keyPrefix}`, points: options.points, duration: options.durationSeconds };
  const memory = new RateLimiterMemory(common);
  const limiter =
    options.cache.kind === 'redis' && redis.client
      ? // ioredis runs with the offline queue off: fail over to memory at once, never queue.
        new RateLimiterRedis({ ...common, storeClient: redis.client, insuranceLimiter: memory, rejectIfRedisNotReady: true })
      : memory;
  return {
    async consume(key) {
      try {
        await limiter.consume(bounded(key));
        return undefined;
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        // Both stores failed, which the memory stand-in cannot: never fail a request on it.
        return undefined;
      }
    },
    async reset(key) {
      await limiter.delete(bounded(key)).catch(() => false);
    },
  };
}

/** The 429 of OAuth endpoints: RFC 6749 §5.2 JSON with Retry-After (RFC 9110 §10.2.3). */
export const oauthTooManyRequests = (retryAfterSeconds: number) =>
  new OAuthError(429, 'too_many_requests', 'too many requests, retry later', { 'retry-after': String(retryAfterSeconds) });

/** The 429 of problem+json routes (Management API, leaked-token report). */
export const problemTooManyRequests = (retryAfterSeconds: number) =>
  new ProblemError(429, 'Too Many Requests', 'too many requests, retry later', {}, { 'retry-after': String(retryAfterSeconds) });

/**
 * Koa middleware that limits the requests `keyOf` picks out (undefined: not limited), answering
 * with `reject`'s error. Routes that know their key only after parsing call `consume` directly.
 */
export function rateLimit(limiter: RateLimiter, keyOf: (ctx: Context) => Promise<string | undefined> | string | undefined, reject: (retryAfterSeconds: number) => Error = oauthTooManyRequests) {
  return async (ctx: Context, next: Next) => {
    const key = await keyOf(ctx);
    if (key !== undefined) {
      const retryAfter = await limiter.consume(key);
      if (retryAfter !== undefined) throw reject(retryAfter);
    }
    await next();
  };
}
