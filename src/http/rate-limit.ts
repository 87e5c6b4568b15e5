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
 * counters are shared by all nodes (one atomic Lua call per request, or per batch: see
 * RateLimitSync), under the store's own key
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

/**
 * How a limiter talks to the shared store:
 * - `exact` (default): one atomic Redis call per request;
 * - `batched`, for limits on hot paths (/token): each node decides locally while the budget it
 *   knows of is comfortably large, and adds its count to Redis in one call per key every
 *   `syncIntervalMs`. The first request of a key's window on a node, and every request once
 *   a quarter of the budget or less is left, still take the exact round trip, so the limit is
 *   exact on one node and at the end of every budget; between nodes a count may reach the
 *   others up to `syncIntervalMs` late while more than a quarter of the budget is left. The
 *   round trip costs more CPU than the rest of the limiter by far (a Redis write and read per
 *   request), which a client-credentials grant cannot afford.
 */
export type RateLimitSync = { mode: 'exact' } | { mode: 'batched'; syncIntervalMs?: number; maxKeys?: number };

/** A key's current window as this node knows it. */
interface KnownWindow {
  /** The shared count as of the last answer from the store, this node's flushed requests included. */
  total: number;
  /** Requests this node allowed and has not added to the store yet. */
  pending: number;
  /** Requests sent to the store whose answer has not arrived yet. */
  inFlight: number;
  /** Epoch ms at which the store's window (and so this record) ends. */
  endsAt: number;
}

export function createRateLimiter(options: { cache: CacheStore; keyPrefix: string; sync?: RateLimitSync } & RateLimitSettings): RateLimiter {
  const redis = options.cache as CacheStore & { client?: unknown; prefix?: string };
  const common = { keyPrefix: `${redis.prefix ?? ''}${options.keyPrefix}`, points: options.points, duration: options.durationSeconds };
  const memory = new RateLimiterMemory(common);
  const limiter =
    options.cache.kind === 'redis' && redis.client
      ? // ioredis runs with the offline queue off: fail over to memory at once, never queue.
        new RateLimiterRedis({ ...common, storeClient: redis.client, insuranceLimiter: memory, rejectIfRedisNotReady: true })
      : memory;

  /** Takes `points` at once in the store; undefined when the last of them is within the limit. */
  async function take(key: string, points: number, known?: KnownWindow): Promise<number | undefined> {
    let answer: RateLimiterRes;
    let rejected = false;
    if (known) known.inFlight += points;
    try {
      answer = await limiter.consume(key, points);
    } catch (rejection) {
      // Both stores failed, which the memory stand-in cannot: never fail a request on it.
      if (!(rejection instanceof RateLimiterRes)) return undefined;
      answer = rejection;
      rejected = true;
    } finally {
      if (known) known.inFlight -= points;
    }
    if (known) {
      // One connection answers in order, so this is the newest count the store has given.
      known.total = answer.consumedPoints;
      known.endsAt = Date.now() + answer.msBeforeNext;
    }
    return rejected ? Math.max(1, Math.ceil(answer.msBeforeNext / 1000)) : undefined;
  }

  if (options.sync?.mode !== 'batched') {
    return {
      consume: (key) => take(bounded(key), 1),
      async reset(key) {
        await limiter.delete(bounded(key)).catch(() => false);
      },
    };
  }

  const syncIntervalMs = options.sync.syncIntervalMs ?? 100;
  const maxKeys = options.sync.maxKeys ?? 10_000;
  /** Below this many remaining points every request is counted in the store before it is allowed. */
  const reserve = Math.ceil(options.points / 4);
  const windows = new Map<string, KnownWindow>();
  let timer: NodeJS.Timeout | undefined;

  const flushOne = (key: string, known: KnownWindow) => {
    const points = known.pending;
    known.pending = 0;
    if (points > 0) void take(key, points, known);
  };
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    for (const [key, known] of windows) {
      // The store's window has ended: what was not written yet belonged to it and is moot.
      if (known.endsAt <= now) windows.delete(key);
      else flushOne(key, known);
    }
  };

  /** The exact path: this request and whatever this node has pending, counted in the store first. */
  async function exact(key: string, known: KnownWindow | undefined): Promise<number | undefined> {
    if (known) {
      const points = known.pending + 1;
      known.pending = 0;
      return take(key, points, known);
    }
    const fresh: KnownWindow = { total: 0, pending: 0, inFlight: 0, endsAt: 0 };
    const retryAfter = await take(key, 1, fresh);
    const current = windows.get(key);
    // Several first requests may have raced to the store: keep the highest count it gave.
    if (current) current.total = Math.max(current.total, fresh.total);
    else if (fresh.endsAt > Date.now()) {
      if (windows.size >= maxKeys) {
        const [oldest, record] = windows.entries().next().value!;
        windows.delete(oldest);
        flushOne(oldest, record);
      }
      windows.set(key, fresh);
    }
    return retryAfter;
  }

  return {
    consume(rawKey) {
      const key = bounded(rawKey);
      const now = Date.now();
      let known = windows.get(key);
      if (known && known.endsAt <= now) {
        windows.delete(key);
        known = undefined;
      }
      if (!known) return exact(key, undefined);
      const seen = known.total + known.inFlight + known.pending;
      if (seen >= options.points) return Promise.resolve(Math.max(1, Math.ceil((known.endsAt - now) / 1000)));
      if (options.points - seen <= reserve) return exact(key, known);
      known.pending += 1;
      if (!timer) {
        timer = setTimeout(flush, syncIntervalMs);
        timer.unref();
      }
      return Promise.resolve(undefined);
    },
    async reset(rawKey) {
      const key = bounded(rawKey);
      windows.delete(key);
      await limiter.delete(key).catch(() => false);
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
