/**
 * The CacheStore contract, run against the in-process store and Redis alike: whatever the
 * adapter, the introspection cache and the revocation channel rely on must behave the same
 * on a single embedded node and on a Redis-backed cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CacheStore } from '../../src/storage/cache.js';
import { createRedisCache } from '../../src/storage/redis-cache.js';
import type { OpenedBackend, TestClock } from '../helpers/backends.js';
import { backends, createTestClock, elapse } from '../helpers/backends.js';

/** Resolves with the first `count` messages delivered to `channel`, or rejects after `ms`. */
async function collect(cache: CacheStore, channel: string, count: number, ms = 2_000) {
  const received: string[] = [];
  let done!: () => void;
  const complete = new Promise<void>((resolve) => (done = resolve));
  const unsubscribe = await cache.subscribe(channel, (message) => {
    received.push(message);
    if (received.length === count) done();
  });
  return {
    received,
    unsubscribe,
    async wait(): Promise<string[]> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} messages on ${channel} within ${ms} ms`)), ms);
      });
      try {
        await Promise.race([complete, timeout]);
      } finally {
        clearTimeout(timer);
      }
      return received;
    },
  };
}

describe.each(backends)('cache store on $name', (backendFactory) => {
  let backend: OpenedBackend;
  let cache: CacheStore;
  let clock: TestClock;

  beforeAll(async () => {
    clock = createTestClock();
    backend = await backendFactory.open(clock);
    cache = backend.cache;
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('answers ping', async () => {
    await expect(cache.ping()).resolves.toBeUndefined();
  });

  describe('get / set / del', () => {
    it('returns what was set, and null for a key never set', async () => {
      await cache.set('plain', 'value-1');
      expect(await cache.get('plain')).toBe('value-1');
      expect(await cache.get('never-set')).toBeNull();
    });

    it('overwrites on a second set', async () => {
      await cache.set('overwrite', 'first');
      await cache.set('overwrite', 'second');
      expect(await cache.get('overwrite')).toBe('second');
    });

    it('keeps values byte for byte (JSON, unicode, empty string)', async () => {
      const json = JSON.stringify({ sub: 'usr_1', scope: 'a b', nested: { n: 1.5, list: [1, 'ä', null] } });
      await cache.set('json', json);
      await cache.set('unicode', 'Grüße 🔑');
      await cache.set('empty', '');
      expect(await cache.get('json')).toBe(json);
      expect(await cache.get('unicode')).toBe('Grüße 🔑');
      expect(await cache.get('empty')).toBe('');
    });

    it('del removes every key given, ignores missing ones, and accepts none', async () => {
      await cache.set('del-a', '1');
      await cache.set('del-b', '2');
      await cache.set('del-keep', '3');
      await cache.del('del-a', 'del-b', 'del-missing');
      await cache.del();
      expect(await cache.get('del-a')).toBeNull();
      expect(await cache.get('del-b')).toBeNull();
      expect(await cache.get('del-keep')).toBe('3');
    });
  });

  describe('replaceKeepTtl', () => {
    it('replaces an existing value and reports it', async () => {
      await cache.set('replace', 'before', 600);
      expect(await cache.replaceKeepTtl('replace', 'after')).toBe(true);
      expect(await cache.get('replace')).toBe('after');
    });

    it('does not create a missing key', async () => {
      expect(await cache.replaceKeepTtl('replace-missing', 'value')).toBe(false);
      expect(await cache.get('replace-missing')).toBeNull();
    });

    it('keeps a key without TTL persistent', async () => {
      await cache.set('replace-persistent', 'before');
      expect(await cache.replaceKeepTtl('replace-persistent', 'after')).toBe(true);
      expect(await cache.get('replace-persistent')).toBe('after');
    });
  });

  describe('setIfAbsent', () => {
    it('creates the key once; later calls neither succeed nor overwrite', async () => {
      expect(await cache.setIfAbsent('once', 'first', 600)).toBe(true);
      expect(await cache.setIfAbsent('once', 'second', 600)).toBe(false);
      expect(await cache.get('once')).toBe('first');
    });

    it('lets exactly one of many concurrent callers win (replay detection)', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => cache.setIfAbsent('race', `caller-${i}`, 600)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await cache.get('race')).toBe(`caller-${winner}`);
    });
  });

  describe('getDel', () => {
    it('returns the value once and removes it', async () => {
      await cache.set('take', 'code-1', 600);
      expect(await cache.getDel('take')).toBe('code-1');
      expect(await cache.getDel('take')).toBeNull();
      expect(await cache.get('take')).toBeNull();
    });

    it('gives the value to exactly one of many concurrent takers', async () => {
      await cache.set('take-race', 'only-once', 600);
      const results = await Promise.all(Array.from({ length: 20 }, () => cache.getDel('take-race')));
      expect(results.filter((r) => r === 'only-once')).toHaveLength(1);
      expect(results.filter((r) => r === null)).toHaveLength(19);
    });
  });

  describe('sets', () => {
    it('collects distinct members; a missing set has none', async () => {
      await cache.addToSet('set', 'a', 600);
      await cache.addToSet('set', 'b', 600);
      await cache.addToSet('set', 'a', 600);
      expect((await cache.members('set')).sort()).toEqual(['a', 'b']);
      expect(await cache.members('set-missing')).toEqual([]);
    });

    it('is removed by del like any other key', async () => {
      await cache.addToSet('set-del', 'x', 600);
      await cache.del('set-del');
      expect(await cache.members('set-del')).toEqual([]);
    });
  });

  describe('hashes', () => {
    it('adds increments per field, and hashTakeAll returns the totals as strings and clears them', async () => {
      await cache.hashIncrement('usage', 'tok_1', 1);
      await cache.hashIncrement('usage', 'tok_1', 4);
      await cache.hashIncrement('usage', 'tok_2', 7);
      await cache.hashIncrement('usage', 'tok_2', -2);
      expect(await cache.hashTakeAll('usage')).toEqual({ tok_1: '5', tok_2: '5' });
      expect(await cache.hashTakeAll('usage')).toEqual({});
    });

    it('loses no increment under concurrency', async () => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => cache.hashIncrement('usage-race', `f${i % 5}`, 1)));
      const totals = await cache.hashTakeAll('usage-race');
      expect(totals).toEqual({ f0: '10', f1: '10', f2: '10', f3: '10', f4: '10' });
    });

    it('keeps counting after a take: nothing counted before the take is counted twice', async () => {
      await cache.hashIncrement('usage-window', 'tok', 3);
      const first = await cache.hashTakeAll('usage-window');
      await cache.hashIncrement('usage-window', 'tok', 2);
      const second = await cache.hashTakeAll('usage-window');
      expect([first, second]).toEqual([{ tok: '3' }, { tok: '2' }]);
    });

    it('takes nothing from a hash that does not exist', async () => {
      expect(await cache.hashTakeAll('usage-missing')).toEqual({});
    });
  });

  describe('expiry', () => {
    it('keeps keys until their TTL passes, then forgets them; replaceKeepTtl keeps the TTL; sets live as long as their longest TTL', async () => {
      // One real wait for Redis (it expires on its own clock); the in-process store follows the test clock.
      await cache.set('ttl', 'short-lived', 1);
      await cache.set('ttl-long', 'long-lived', 600);
      await cache.set('no-ttl', 'persistent');
      await cache.set('ttl-replaced', 'before', 1);
      expect(await cache.replaceKeepTtl('ttl-replaced', 'after')).toBe(true);
      expect(await cache.setIfAbsent('ttl-nx', 'first', 1)).toBe(true);
      await cache.addToSet('ttl-set-short', 'm', 1);
      await cache.addToSet('ttl-set-extended', 'm1', 1);
      await cache.addToSet('ttl-set-extended', 'm2', 600);
      await cache.addToSet('ttl-set-not-shortened', 'm1', 600);
      await cache.addToSet('ttl-set-not-shortened', 'm2', 1);

      expect(await cache.get('ttl')).toBe('short-lived');
      expect(await cache.get('ttl-replaced')).toBe('after');

      await elapse(backend, clock, 1_200);

      expect(await cache.get('ttl')).toBeNull();
      expect(await cache.get('ttl-replaced')).toBeNull();
      expect(await cache.replaceKeepTtl('ttl-replaced', 'resurrected')).toBe(false);
      expect(await cache.members('ttl-set-short')).toEqual([]);
      expect(await cache.get('ttl-long')).toBe('long-lived');
      expect(await cache.get('no-ttl')).toBe('persistent');
      expect((await cache.members('ttl-set-extended')).sort()).toEqual(['m1', 'm2']);
      expect((await cache.members('ttl-set-not-shortened')).sort()).toEqual(['m1', 'm2']);
      // An expired one-time marker can be set again (a replayed JWT after its exp is rejected by exp, not by this).
      expect(await cache.setIfAbsent('ttl-nx', 'second', 600)).toBe(true);
      expect(await cache.get('ttl-nx')).toBe('second');
      expect(await cache.getDel('ttl')).toBeNull();
    });

    it.runIf(backendFactory.name === 'pglite+memory')('in-process store: expiry follows the injected clock to the millisecond', async () => {
      await cache.set('clock-ttl', 'v', 10);
      clock.advance(9_999);
      expect(await cache.get('clock-ttl')).toBe('v');
      clock.advance(1);
      expect(await cache.get('clock-ttl')).toBeNull();
    });
  });

  describe('publish / subscribe', () => {
    it('delivers messages in order to every subscriber of the channel, and nothing from other channels', async () => {
      const first = await collect(cache, 'revocations', 3);
      const second = await collect(cache, 'revocations', 3);
      const other = await collect(cache, 'other-channel', 1);
      await cache.publish('revocations', 'jti-1');
      await cache.publish('revocations', 'jti-2');
      await cache.publish('revocations', 'jti-3');
      expect(await first.wait()).toEqual(['jti-1', 'jti-2', 'jti-3']);
      expect(await second.wait()).toEqual(['jti-1', 'jti-2', 'jti-3']);
      expect(other.received).toEqual([]);
      await Promise.all([first.unsubscribe(), second.unsubscribe(), other.unsubscribe()]);
    });

    it('stops delivering to a handler once it unsubscribed', async () => {
      const leaving = await collect(cache, 'leave', 1);
      const staying = await collect(cache, 'leave', 2);
      await cache.publish('leave', 'before');
      expect(await leaving.wait()).toEqual(['before']);
      await leaving.unsubscribe();
      await cache.publish('leave', 'after');
      // Delivery is ordered per channel, so once `staying` has "after", `leaving` would have it too.
      expect(await staying.wait()).toEqual(['before', 'after']);
      expect(leaving.received).toEqual(['before']);
      await staying.unsubscribe();
    });

    it('delivers asynchronously: publish never runs handlers inside the publisher', async () => {
      let delivered = false;
      const probe = await collect(cache, 'async', 1);
      const unsubscribe = await cache.subscribe('async', () => (delivered = true));
      const published = cache.publish('async', 'x');
      expect(delivered).toBe(false);
      await published;
      await probe.wait();
      expect(delivered).toBe(true);
      await Promise.all([unsubscribe(), probe.unsubscribe()]);
    });

    it.runIf(backendFactory.name === 'postgres+redis')('reaches another node sharing the prefix, and no node with another prefix', async () => {
      const peer = await createRedisCache({ url: backend.redisUrl!, prefix: backend.redisPrefix! });
      const stranger = await createRedisCache({ url: backend.redisUrl!, prefix: `${backend.redisPrefix!}other:` });
      try {
        const onPeer = await collect(peer, 'revocations-x', 1);
        const onStranger = await collect(stranger, 'revocations-x', 1);
        const onSelf = await collect(cache, 'revocations-x', 1);
        await cache.publish('revocations-x', 'tok_42');
        expect(await onPeer.wait()).toEqual(['tok_42']);
        await onSelf.wait();
        expect(onStranger.received).toEqual([]);
        // Keys are shared with the peer in the same way, and hidden from the other prefix.
        await cache.set('shared', 'v');
        expect(await peer.get('shared')).toBe('v');
        expect(await stranger.get('shared')).toBeNull();
      } finally {
        await Promise.all([peer.close(), stranger.close()]);
      }
    });
  });
});
