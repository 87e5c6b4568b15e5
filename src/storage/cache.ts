import type { RateLimiterAbstract } from 'rate-limiter-flexible';

/**
 * The cache store: Redis when REDIS_URL is set, an in-process stand-in otherwise. It holds
 * what is short-lived or hot (docs/design.md, "Storage backends"): oidc-provider's short-lived models,
 * the introspection cache, rate-limit counters, usage counters, and the pub/sub channel that
 * tells every node to drop a revoked token at once.
 */
export interface CacheStore {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  /** Sets `key`; with `ttlSeconds` it expires, without it lives until deleted. */
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  /** Replaces the value and keeps the remaining time to live (oidc-provider's consume()). */
  replaceKeepTtl(key: string, value: string): Promise<boolean>;
  /** SET NX: true when this call created the key (replay detection, one-time use). */
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  /** Reads and deletes in one step, so two nodes never both take the same value. */
  getDel(key: string): Promise<string | null>;
  del(...keys: string[]): Promise<void>;
  /** Adds to a set whose lifetime is extended to at least `ttlSeconds`. */
  addToSet(key: string, member: string, ttlSeconds: number): Promise<void>;
  members(key: string): Promise<string[]>;
  /** Adds `by` to field `field` of hash `key` (usage counters, flushed to PostgreSQL in batches). */
  hashIncrement(key: string, field: string, by: number): Promise<void>;
  /** Atomically reads and clears a whole hash. */
  hashTakeAll(key: string): Promise<Record<string, string>>;
  publish(channel: string, message: string): Promise<void>;
  /** Subscribes; the returned function unsubscribes. */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
  /**
   * A fixed-window counter of `points` per `durationSeconds` and key, kept where this store keeps
   * its data (Redis under this store's prefix, so installations sharing a Redis never share
   * counters; memory otherwise). Rate limits and sign-in throttling count through it, so nobody
   * reaches past the store to its driver. With `insurance`, a Redis that is not ready counts in
   * this node's memory instead of failing; without it, a Redis failure rejects (the caller
   * answers 503).
   */
  limiter(options: LimiterOptions): RateLimiterAbstract;
  /**
   * Counts the time until `work` settles as the current request's waiting on this store, for a
   * request that waits on a command another request sent (src/storage/request-deadline.ts).
   */
  waitFor<T>(work: Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface LimiterOptions {
  /** Distinguishes this counter's keys from every other's (`ratelimit:token:`, `throttle:login-user`). */
  keyPrefix: string;
  points: number;
  durationSeconds: number;
  /** Once the points are spent, the key stays refused this long (default: the window's end). */
  blockDurationSeconds?: number;
  insurance?: boolean;
}

export class CacheUnavailableError extends Error {
  override name = 'CacheUnavailableError';
}
