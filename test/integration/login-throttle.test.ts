/**
 * Failed sign-in throttling on both cache stores (rate-limiter-flexible's Redis limiter, and its
 * memory limiter on the embedded default): lock-out after the limit, for a username or an address,
 * visible to administrators, lifted by them or by a successful sign-in before the limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { systemClock } from '../../src/clock.js';
import { createLoginThrottle } from '../../src/domain/login-throttle.js';
import type { CacheStore } from '../../src/storage/cache.js';
import { createMemoryCache } from '../../src/storage/memory-cache.js';
import { openRedis, postgresRedisSkipReason } from '../helpers/backends.js';

const stores: { name: string; open(): Promise<{ cache: CacheStore; prefix?: string; close(): Promise<void> }> }[] = [
  { name: 'memory', open: async () => { const cache = createMemoryCache({ clock: systemClock }); return { cache, close: () => cache.close() }; } },
  ...(postgresRedisSkipReason ? [] : [{ name: 'redis', open: async () => openRedis() }]),
];

for (const store of stores) {
  describe(`login throttle on ${store.name}`, () => {
    let opened: Awaited<ReturnType<(typeof store)['open']>>;
    let throttle: ReturnType<typeof createLoginThrottle>;

    beforeAll(async () => {
      opened = await store.open();
      throttle = createLoginThrottle({ cache: opened.cache, clock: systemClock, limits: { userFailures: 3, addressFailures: 5 } });
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('locks a username after the limit, whatever the address, and lists the lock-out for its organization only', async () => {
      expect(await throttle.check('org_a', 'ursula', '10.0.0.1')).toEqual({ locked: false });
      expect(await throttle.recordFailure('org_a', 'ursula', '192.0.2.1')).toEqual({ locked: false });
      expect(await throttle.recordFailure('org_a', 'ursula', '192.0.2.2')).toEqual({ locked: false });
      expect(await throttle.recordFailure('org_a', 'ursula', '192.0.2.3')).toMatchObject({ locked: true });
      expect(await throttle.check('org_a', 'ursula', '192.0.2.99')).toMatchObject({ locked: true });
      // The same username in another organization is another account.
      expect(await throttle.check('org_b', 'ursula', '192.0.2.99')).toEqual({ locked: false });

      const lockouts = await throttle.listLockouts('org_a');
      expect(lockouts).toEqual([expect.objectContaining({ kind: 'user', organization_id: 'org_a', username: 'ursula', failures: 3 })]);
      expect(Date.parse(lockouts[0]!.locked_until)).toBeGreaterThan(Date.now());
      expect(await throttle.listLockouts('org_b')).toEqual([]);

      await throttle.unlock('org_a', 'ursula');
      expect(await throttle.check('org_a', 'ursula', '192.0.2.99')).toEqual({ locked: false });
      expect(await throttle.listLockouts('org_a')).toEqual([]);
    });

    it('keeps the lock-outs of installations sharing one Redis apart (each store\'s own prefix)', async () => {
      // A second installation on the same server: a store of its own, with its own prefix.
      const neighbour = await store.open();
      try {
        const other = createLoginThrottle({ cache: neighbour.cache, clock: systemClock, limits: { userFailures: 3, addressFailures: 5 } });
        for (let i = 0; i < 3; i++) await throttle.recordFailure('org_shared', 'nina', '192.0.2.50');
        expect(await throttle.check('org_shared', 'nina', '192.0.2.51')).toMatchObject({ locked: true });
        expect(await other.check('org_shared', 'nina', '192.0.2.51')).toEqual({ locked: false });
        expect(await other.check('org_shared', 'someone', '192.0.2.50')).toEqual({ locked: false });
      } finally {
        await neighbour.close();
      }
    });

    it('forgets earlier failures after a successful sign-in', async () => {
      await throttle.recordFailure('org_a', 'sam', '198.51.100.1');
      await throttle.recordFailure('org_a', 'sam', '198.51.100.1');
      await throttle.recordSuccess('org_a', 'sam');
      expect(await throttle.recordFailure('org_a', 'sam', '198.51.100.1')).toEqual({ locked: false });
    });

    it('locks an address that tries many usernames, and lists it for platform administrators', async () => {
      for (let i = 0; i < 4; i++) expect(await throttle.recordFailure('org_c', `user${i}`, '203.0.113.7')).toEqual({ locked: false });
      expect(await throttle.recordFailure('org_c', 'user4', '203.0.113.7')).toMatchObject({ locked: true });
      expect(await throttle.check('org_c', 'someone-else', '203.0.113.7')).toMatchObject({ locked: true });
      expect(await throttle.listAddressLockouts()).toEqual([expect.objectContaining({ kind: 'address', address: '203.0.113.7' })]);
      await throttle.unlockAddress('203.0.113.7');
      expect(await throttle.check('org_c', 'someone-else', '203.0.113.7')).toEqual({ locked: false });
    });
  });
}
