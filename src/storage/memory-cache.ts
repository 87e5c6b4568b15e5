import { EventEmitter } from 'node:events';

import type { Clock } from '../clock.js';
import { RateLimiterMemory } from 'rate-limiter-flexible';

import type { CacheStore } from './cache.js';

interface Entry {
  value: string | Set<string> | Map<string, number>;
  expiresAt: number | undefined;
}

/**
 * In-process stand-in for Redis, for the embedded single-node default. Same contract as the
 * Redis store (test/integration/cache-store.test.ts runs one suite against both). Expiry is
 * measured on the injected clock; expired entries are dropped on read and by a periodic sweep.
 */
export function createMemoryCache(options: { clock: Clock; sweepIntervalMs?: number }): CacheStore {
  const { clock } = options;
  const entries = new Map<string, Entry>();
  const bus = new EventEmitter();
  bus.setMaxListeners(0);

  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= clock.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const expiry = (ttlSeconds?: number) => (ttlSeconds === undefined ? undefined : clock.now() + ttlSeconds * 1000);

  const sweep = setInterval(() => {
    const now = clock.now();
    for (const [key, entry] of entries) if (entry.expiresAt !== undefined && entry.expiresAt <= now) entries.delete(key);
  }, options.sweepIntervalMs ?? 30_000);
  sweep.unref();

  return {
    kind: 'memory',
    limiter: (options) =>
      new RateLimiterMemory({ keyPrefix: options.keyPrefix, points: options.points, duration: options.durationSeconds, ...(options.blockDurationSeconds !== undefined ? { blockDuration: options.blockDurationSeconds } : {}) }),
    async get(key) {
      const entry = live(key);
      return typeof entry?.value === 'string' ? entry.value : null;
    },
    async set(key, value, ttlSeconds) {
      entries.set(key, { value, expiresAt: expiry(ttlSeconds) });
    },
    async replaceKeepTtl(key, value) {
      const entry = live(key);
      if (!entry) return false;
      entry.value = value;
      return true;
    },
    async setIfAbsent(key, value, ttlSeconds) {
      if (live(key)) return false;
      entries.set(key, { value, expiresAt: expiry(ttlSeconds) });
      return true;
    },
    async getDel(key) {
      const entry = live(key);
      entries.delete(key);
      return typeof entry?.value === 'string' ? entry.value : null;
    },
    async del(...keys) {
      for (const key of keys) entries.delete(key);
    },
    async addToSet(key, member, ttlSeconds) {
      let entry = live(key);
      if (!entry || !(entry.value instanceof Set)) {
        entry = { value: new Set<string>(), expiresAt: undefined };
        entries.set(key, entry);
      }
      (entry.value as Set<string>).add(member);
      const until = expiry(ttlSeconds)!;
      if (entry.expiresAt === undefined || entry.expiresAt < until) entry.expiresAt = until;
    },
    async members(key) {
      const entry = live(key);
      return entry?.value instanceof Set ? [...entry.value] : [];
    },
    async hashIncrement(key, field, by) {
      let entry = live(key);
      if (!entry || !(entry.value instanceof Map)) {
        entry = { value: new Map<string, number>(), expiresAt: undefined };
        entries.set(key, entry);
      }
      const map = entry.value as Map<string, number>;
      map.set(field, (map.get(field) ?? 0) + by);
    },
    async hashTakeAll(key) {
      const entry = live(key);
      entries.delete(key);
      if (!(entry?.value instanceof Map)) return {};
      return Object.fromEntries([...entry.value].map(([k, v]) => [k, String(v)]));
    },
    async publish(channel, message) {
      // Delivered asynchronously, as Redis would, so publishers never re-enter their own handlers.
      queueMicrotask(() => bus.emit(channel, message));
    },
    async subscribe(channel, handler) {
      bus.on(channel, handler);
      return async () => {
        bus.off(channel, handler);
      };
    },
    // Nothing here waits on a network.
    waitFor: (work) => work,
    async ping() {},
    async close() {
      clearInterval(sweep);
      entries.clear();
      bus.removeAllListeners();
    },
  };
}
