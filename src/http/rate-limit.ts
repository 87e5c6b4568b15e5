import type { Context, Next } from 'koa';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

import type { CacheStore } from '../storage/cache.js';
import { OAuthError } from './oauth-error.js';
import { ProblemError } from './middleware.js';

/**
 * Rate limits shared by every node (DESIGN.md "Storage": rate-limit counters live in Redis).
 *
 * One factory for every limit Tessera enforces (per client on /token, per IP and per user on
 * login, per IP on the leak report, …): each limit has a name, a number of points per window,
 * and a window. With Redis the counters are shared by all nodes (fixed window, one atomic Lua
 * call per request). With the in-process store, or while Redis is unreachable, each node counts
 * in its own memory instead: the limit then applies per node, which is looser but never turns
 * a Redis outage into refused requests (issue: faults; the request itself may still need Redis).
 */
export interface RateLimitSettings {
  /** Requests allowed per key in one window. */
  points: number;
  /** Window length in seconds. */
  durationSeconds: number;
}

export type RateLimitDecision = { allowed: true; remaining: number } | { allowed: false; retryAfterSeconds: number };

export interface RateLimiter {
  readonly name: string;
  readonly settings: RateLimitSettings;
  /** Counts one request for `key` and says whether it may go on. Never throws for a store outage. */
  consume(key: string): Promise<RateLimitDecision>;
  /** Forgets `key` (e.g. after a successful login). */
  reset(key: string): Promise<void>;
}

/** The ioredis client and key prefix of the Redis cache store (src/storage/redis-cache.ts). */
interface RedisBacked {
  client: unknown;
  prefix: string;
}

const isRedisBacked = (cache: CacheStore): cache is CacheStore & RedisBacked => cache.kind === 'redis' && 'client' in cache;

/** A key (client id, IP, user name) is cut to a bounded length, so no request can make a huge Redis key. */
const MAX_KEY_LENGTH = 200;
const normalizeKey = (key: string) => (key.length > MAX_KEY_LENGTH ? key.slice(0, MAX_KEY_LENGTH) : key);

export function createRateLimiter(options: { cache: CacheStore; name: string; settings: RateLimitSettings }): RateLimiter {
  const { cache, name, settings } = options;
  const base = { points: settings.points, duration: settings.durationSeconds };
  // Used alone without Redis, and as the stand-in while Redis is away.
  const memory = new RateLimiterMemory({ ...base, keyPrefix: `rl:${name}` });
  const limiter = isRedisBacked(cache)
    ? new RateLimiterRedis({
        ...base,
        storeClient: cache.client,
        keyPrefix: `${cache.prefix}rl:${name}`,
        // ioredis runs with enableOfflineQueue off: fail over to memory at once, never queue.
        rejectIfRedisNotReady: true,
        insuranceLimiter: memory,
      })
    : memory;

  return {
    name,
    settings,
    async consume(key) {
      try {
        const res = await limiter.consume(normalizeKey(key));
        return { allowed: true, remaining: res.remainingPoints };
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)) };
        }
        // Both stores failed (cannot happen with the memory stand-in, but never block on it).
        return { allowed: true, remaining: 0 };
      }
    },
    async reset(key) {
      await limiter.delete(normalizeKey(key)).catch(() => false);
    },
  };
}

/** The 429 of OAuth endpoints: RFC 6749 §5.2 JSON with Retry-After (RFC 9110 §10.2.3). */
export const oauthTooManyRequests = (retryAfterSeconds: number) =>
  new OAuthError(429, 'too_many_requests', 'too many requests, retry later', { 'retry-after': String(retryAfterSeconds) });

/** The 429 of problem+json routes (Management API, leak report). */
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
      const decision = await limiter.consume(key);
      if (!decision.allowed) throw reject(decision.retryAfterSeconds);
    }
    await next();
  };
}
