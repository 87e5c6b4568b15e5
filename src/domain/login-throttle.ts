import { createHash } from 'node:crypto';

import type { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';

import type { Clock } from '../clock.js';
import type { CacheStore } from '../storage/cache.js';
import { CacheUnavailableError } from '../storage/cache.js';
import { usernameKey } from '../storage/user-repository.js';

/**
 * Throttling of failed sign-ins (OWASP Authentication Cheat Sheet, "Protect against automated
 * attacks"), counted in Redis so every node sees the same numbers, or in process memory on the
 * embedded single-node default.
 *
 * Two counters, because they stop different attacks:
 * - per user (organization + username, existing or not, so a lock-out reveals nothing about
 *   which usernames exist): stops guessing one account's password from many addresses;
 * - per client IP address: stops one address trying a few passwords on many accounts.
 * A successful sign-in clears the user's counter. While a counter is locked even the right
 * password is refused, with the same message for every username.
 *
 * Lock-outs are also written to a small registry in the cache store, so an administrator can
 * see and lift them (`listLockouts`, `listAddressLockouts`, `unlock`).
 */
export interface ThrottleLimits {
  /** Failed attempts for one username before it is locked: enough for honest typos. */
  userFailures: number;
  /** Window over which a username's failures are counted, and how long its lock-out lasts. */
  userWindowSeconds: number;
  /** Failed attempts from one address before it is locked: a shared office NAT stays under it. */
  addressFailures: number;
  /** Window over which an address's failures are counted, and how long its lock-out lasts. */
  addressWindowSeconds: number;
}

export const DEFAULT_THROTTLE_LIMITS: ThrottleLimits = {
  userFailures: 10,
  userWindowSeconds: 15 * 60,
  addressFailures: 100,
  addressWindowSeconds: 60 * 60,
};

export interface Lockout {
  kind: 'user' | 'address';
  organization_id: string | null;
  username: string | null;
  address: string | null;
  failures: number;
  locked_at: string;
  locked_until: string;
}

export type ThrottleVerdict = { locked: false } | { locked: true; retryAfterSeconds: number };

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

export function createLoginThrottle(deps: { cache: CacheStore; clock: Clock; limits?: Partial<ThrottleLimits> }) {
  const { cache, clock } = deps;
  const limits = { ...DEFAULT_THROTTLE_LIMITS, ...deps.limits };
  // Counted in the cache store under its own prefix: installations sharing a Redis never share lock-outs.
  const limiter = (name: string, points: number, seconds: number): RateLimiterAbstract =>
    cache.limiter({ keyPrefix: `throttle:${name}`, points, durationSeconds: seconds, blockDurationSeconds: seconds });
  const byUser = limiter('login-user', limits.userFailures, limits.userWindowSeconds);
  const byAddress = limiter('login-address', limits.addressFailures, limits.addressWindowSeconds);

  // One counter per account, whatever spelling was typed: the key is the same usernameKey the
  // sign-in lookup matches on (src/storage/user-repository.ts), so no spelling that reaches an
  // account (`Admin`, `ADMIN`) brings fresh guesses. A digest, so an arbitrary username never
  // becomes an arbitrary Redis key.
  const userKey = (organizationId: string, username: string) => digest(`${organizationId}\u0000${usernameKey(username)}`);
  const registryIndex = (organizationId: string) => `lockouts:org:${organizationId}`;
  const ADDRESS_INDEX = 'lockouts:address';

  const lockedFor = (res: RateLimiterRes | null, points: number): number | undefined =>
    res && res.consumedPoints >= points && res.msBeforeNext > 0 ? Math.ceil(res.msBeforeNext / 1000) : undefined;

  // A store that is down surfaces as the cache store's own error, so the caller answers 503.
  async function guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof Error && !(error instanceof CacheUnavailableError)) throw new CacheUnavailableError(`throttle store unavailable: ${error.message}`, { cause: error });
      throw error;
    }
  }

  /** Counts one point; the library rejects with the counter state once the limit is passed. */
  async function consume(rl: RateLimiterAbstract, key: string): Promise<RateLimiterRes> {
    try {
      return await rl.consume(key, 1);
    } catch (rejection) {
      if (rejection instanceof Error) return guard(() => Promise.reject(rejection));
      return rejection as RateLimiterRes;
    }
  }

  async function register(index: string, member: string, lockout: Lockout, seconds: number): Promise<void> {
    await cache.set(`lockout:${member}`, JSON.stringify(lockout), seconds);
    await cache.addToSet(index, member, seconds);
  }

  async function list(index: string): Promise<Lockout[]> {
    const members = await cache.members(index);
    const now = clock.now();
    const found: Lockout[] = [];
    for (const member of members) {
      const value = await cache.get(`lockout:${member}`);
      if (!value) continue;
      const lockout = JSON.parse(value) as Lockout;
      if (Date.parse(lockout.locked_until) > now) found.push(lockout);
    }
    return found.sort((a, b) => a.locked_at.localeCompare(b.locked_at));
  }

  return {
    limits,

    /** Whether this username or this address is locked out right now. */
    async check(organizationId: string, username: string, address: string): Promise<ThrottleVerdict> {
      const [user, addr] = await guard(() => Promise.all([byUser.get(userKey(organizationId, username)), byAddress.get(address)]));
      const wait = Math.max(lockedFor(user, limits.userFailures) ?? 0, lockedFor(addr, limits.addressFailures) ?? 0);
      return wait > 0 ? { locked: true, retryAfterSeconds: wait } : { locked: false };
    },

    /** Counts one failed attempt; returns the lock-out it caused, if any. */
    async recordFailure(organizationId: string, username: string, address: string): Promise<ThrottleVerdict> {
      const key = userKey(organizationId, username);
      const [user, addr] = await Promise.all([consume(byUser, key), consume(byAddress, address)]);
      const now = clock.now();
      let wait = 0;
      if (user.consumedPoints === limits.userFailures) {
        // The attempt that reaches the limit starts the lock-out, for a whole window from now.
        await guard(() => byUser.block(key, limits.userWindowSeconds));
        await register(registryIndex(organizationId), `user:${organizationId}:${key}`, {
          kind: 'user', organization_id: organizationId, username, address: null, failures: user.consumedPoints,
          locked_at: new Date(now).toISOString(), locked_until: new Date(now + limits.userWindowSeconds * 1000).toISOString(),
        }, limits.userWindowSeconds);
        wait = limits.userWindowSeconds;
      }
      if (addr.consumedPoints === limits.addressFailures) {
        await guard(() => byAddress.block(address, limits.addressWindowSeconds));
        await register(ADDRESS_INDEX, `address:${digest(address)}`, {
          kind: 'address', organization_id: null, username: null, address, failures: addr.consumedPoints,
          locked_at: new Date(now).toISOString(), locked_until: new Date(now + limits.addressWindowSeconds * 1000).toISOString(),
        }, limits.addressWindowSeconds);
        wait = Math.max(wait, limits.addressWindowSeconds);
      }
      return wait > 0 ? { locked: true, retryAfterSeconds: wait } : { locked: false };
    },

    /** A successful sign-in forgets the username's earlier failures. */
    async recordSuccess(organizationId: string, username: string): Promise<void> {
      await guard(() => byUser.delete(userKey(organizationId, username)));
    },

    /**
     * Current lock-outs of one organization's usernames, oldest first: what the Management API
     * shows an organization's administrators (address lock-outs cross organizations, so they are
     * listed separately, for platform administrators).
     */
    listLockouts(organizationId: string): Promise<Lockout[]> {
      return list(registryIndex(organizationId));
    },

    /** Current lock-outs of client addresses, installation-wide. */
    listAddressLockouts(): Promise<Lockout[]> {
      return list(ADDRESS_INDEX);
    },

    /** Lifts a username's lock-out (an administrator vouched for the user). */
    async unlock(organizationId: string, username: string): Promise<void> {
      const key = userKey(organizationId, username);
      await guard(() => byUser.delete(key));
      await cache.del(`lockout:user:${organizationId}:${key}`);
    },

    /** Lifts an address's lock-out. */
    async unlockAddress(address: string): Promise<void> {
      await guard(() => byAddress.delete(address));
      await cache.del(`lockout:address:${digest(address)}`);
    },
  };
}
export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
