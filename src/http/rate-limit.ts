import { RateLimiterRes } from 'rate-limiter-flexible';

import type { CacheStore } from '../storage/cache.js';
import { OAuthError } from './oauth-error.js';

/**
 * Rate limits shared by every node (docs/design.md, "Storage backends": rate-limit counters live in Redis).
 *
 * One factory for every limit Tessera enforces (per client on /token, per IP on the leaked-token
 * report, …): a fixed window of `points` requests per `durationSeconds` and key. With Redis the
 * counters are shared by all nodes (one atomic Lua call per request, or per batch of concurrent
 * requests: see RateLimitSync), under the store's own key
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
  /**
   * Takes one point for `key` and says where that left its count, for a caller that acts on it
   * later (a failure counted against a source): `over`, the seconds to wait, when this point is
   * beyond the budget; `spent`, the seconds until the window ends, once the budget is used up
   * (this point included). Always counted on its own, never coalesced.
   */
  count(key: string): Promise<{ over?: number; spent?: number }>;
  /** The seconds until `key`'s window ends when its budget is used up, else undefined; takes nothing. */
  peek(key: string): Promise<number | undefined>;
  /** Forgets `key` (e.g. after a successful sign-in). */
  reset(key: string): Promise<void>;
}

/** A key (client id, IP, user name) is cut to a bounded length, so no request can make a huge Redis key. */
const MAX_KEY_LENGTH = 200;
const bounded = (key: string) => (key.length > MAX_KEY_LENGTH ? key.slice(0, MAX_KEY_LENGTH) : key);

/**
 * How a limiter talks to the shared store:
 * - `exact` (default): one atomic Redis call per request;
 * - `coalesced`, for limits on hot paths (/token): still exact — every request is counted in
 *   Redis before it is allowed — but the requests of one key that arrive while that key's call
 *   is in flight wait for it and then go together, as one call that takes all their points.
 *   Each learns its place in the count from the total Redis answers, so the limit, Retry-After
 *   and the sharing between nodes are those of `exact`; a busy client costs one Redis round trip
 *   per batch instead of one per request.
 */
export type RateLimitSync = { mode: 'exact' } | { mode: 'coalesced' };

interface Waiter {
  resolve(retryAfter: number | undefined): void;
}

export function createRateLimiter(options: { cache: CacheStore; keyPrefix: string; sync?: RateLimitSync } & RateLimitSettings): RateLimiter {
  // With Redis away, each node counts in its own memory (the store's insurance limiter).
  const limiter = options.cache.limiter({ keyPrefix: options.keyPrefix, points: options.points, durationSeconds: options.durationSeconds, insurance: true });

  /**
   * Takes `points` at once for `key`. Answers the count after them and the window's remaining
   * time, or undefined when both stores failed (which the memory stand-in cannot: never fail a
   * request on it).
   */
  async function take(key: string, points: number): Promise<RateLimiterRes | undefined> {
    try {
      return await limiter.consume(key, points);
    } catch (rejection) {
      // Over the limit is an answer too: it carries the count and the window's end.
      return rejection instanceof RateLimiterRes ? rejection : undefined;
    }
  }
  const secondsLeft = (answer: RateLimiterRes) => Math.max(1, Math.ceil(answer.msBeforeNext / 1000));
  /** The i-th (0-based) of `points` requests counted at once is allowed if its place is within the limit. */
  const verdict = (answer: RateLimiterRes | undefined, points: number, i: number) =>
    !answer || answer.consumedPoints - points + i + 1 <= options.points ? undefined : secondsLeft(answer);

  const reset = async (key: string) => {
    await limiter.delete(bounded(key)).catch(() => false);
  };
  const count = async (key: string) => {
    const answer = await take(bounded(key), 1);
    if (!answer) return {};
    return { over: verdict(answer, 1, 0), spent: answer.consumedPoints >= options.points ? secondsLeft(answer) : undefined };
  };
  const peek = async (key: string) => {
    // A store that cannot answer refuses nothing, as `take` does.
    const answer = await limiter.get(bounded(key)).catch(() => null);
    return answer && answer.consumedPoints >= options.points ? secondsLeft(answer) : undefined;
  };
  if (options.sync?.mode !== 'coalesced') {
    return {
      consume: async (key) => verdict(await take(bounded(key), 1), 1, 0),
      count,
      peek,
      reset,
    };
  }

  /** Per key: the requests waiting for the call in flight to return (the key is absent when none is). */
  const queues = new Map<string, Waiter[]>();
  async function run(key: string, batch: Waiter[]): Promise<void> {
    const answer = await take(key, batch.length);
    batch.forEach((waiter, i) => waiter.resolve(verdict(answer, batch.length, i)));
    const next = queues.get(key)!;
    if (next.length === 0) queues.delete(key);
    else {
      queues.set(key, []);
      void run(key, next);
    }
  }
  return {
    consume(rawKey) {
      const key = bounded(rawKey);
      const waiting = queues.get(key);
      if (waiting) {
        // Another request's call answers this one too: the wait is this request's cache time.
        return options.cache.waitFor(new Promise((resolve) => waiting.push({ resolve })));
      }
      return new Promise((resolve) => {
        queues.set(key, []);
        void run(key, [{ resolve }]);
      });
    },
    count,
    peek,
    reset,
  };
}

/** The 429 of OAuth endpoints: RFC 6749 §5.2 JSON with Retry-After (RFC 9110 §10.2.3). */
export const oauthTooManyRequests = (retryAfterSeconds: number) =>
  new OAuthError(429, 'too_many_requests', 'too many requests, retry later', { 'retry-after': String(retryAfterSeconds) });
