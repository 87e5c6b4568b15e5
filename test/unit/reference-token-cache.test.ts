/**
 * The staleness bound of the reference-token cache: a node trusts its in-process tier only while
 * its own pub/sub heartbeat comes back; when the subscription is lost, a change announced by
 * another node (and so never received here) is still seen within 1 s.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import { systemClock } from '../../src/clock.js';
import { createLogger } from '../../src/http/logger.js';
import type { CacheStore } from '../../src/storage/cache.js';
import type { ReferenceTokenRepository, ReferenceTokenWithOwner } from '../../src/storage/reference-token-repository.js';
import { generateToken, hashToken } from '../../src/tokens/format.js';
import { createReferenceTokenCache, REFERENCE_TOKEN_CHANNEL } from '../../src/tokens/reference-token-cache.js';

function fakeRedis() {
  const values = new Map<string, string>();
  const handlers = new Map<string, (message: string) => void>();
  const state = { subscribed: true };
  const cache = {
    kind: 'redis',
    get: async (key: string) => values.get(key) ?? null,
    set: async (key: string, value: string) => void values.set(key, value),
    del: async (...keys: string[]) => keys.forEach((k) => values.delete(k)),
    publish: async (channel: string, message: string) => {
      if (state.subscribed) queueMicrotask(() => handlers.get(channel)?.(message));
    },
    subscribe: async (channel: string, handler: (message: string) => void) => {
      handlers.set(channel, handler);
      return async () => {};
    },
  } as unknown as CacheStore;
  return { cache, values, state };
}

function row(token: string, revoked: boolean): ReferenceTokenWithOwner {
  const now = Date.now();
  return {
    id: 'tok_1', organization_id: 'org_1', type: 'sat', name: 'n', user_id: null, service_account_id: 'sa_1', scopes: ['a'], resources: ['https://api'],
    secret_hash: hashToken(token), previous_secret_hash: null, previous_valid_until: null, rotation_key_hash: null, created_by: null,
    created_at: new Date(now), issued_at: new Date(now), expires_at: new Date(now + 3600_000), rotated_at: null, last_used_at: null, use_count: 0,
    revoked_at: revoked ? new Date(now) : null, revoked_reason: null, lifetime_seconds: 3600, rotation_count: 0, previous_ends_on_first_use: false, previous_ended_at: null, not_before: null, allowed_ips: null, cnf_jkt: null,
    owner_name: 'worker', owner_status: 'active', owner_role: null,
  };
}

let stop: (() => void) | undefined;
afterEach(() => stop?.());

describe('reference-token cache staleness bound', () => {
  it('answers from memory while its heartbeat flows, and stops trusting memory within 1 s once it does not', async () => {
    const token = generateToken('sat');
    const { cache, values, state } = fakeRedis();
    let revoked = false;
    let lookups = 0;
    const tokens = {
      findWithOwnerByHash: async () => {
        lookups += 1;
        return row(token, revoked);
      },
      findRetired: async () => undefined,
    } as unknown as ReferenceTokenRepository;
    const rt = createReferenceTokenCache({ tokens, cache, clock: systemClock, logger: createLogger({ level: 'silent' }), sensitiveScopes: async () => new Set() });
    await cache.subscribe(REFERENCE_TOKEN_CHANNEL, (m) => rt.applyMessage(m));
    rt.start();
    stop = () => rt.stop();
    await sleep(50);

    expect((await rt.resolve(token)).ok).toBe(true);
    expect((await rt.resolve(token)).ok).toBe(true);
    expect(lookups).toBe(1);

    // The subscription breaks; another node revokes the token and its announcement never arrives.
    state.subscribed = false;
    revoked = true;
    values.clear();
    expect((await rt.resolve(token)).ok).toBe(true); // still within the bound
    await sleep(1100);
    const after = await rt.resolve(token);
    expect(after).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('drops a token at once when the change is announced', async () => {
    const token = generateToken('sat');
    const { cache } = fakeRedis();
    let revoked = false;
    const tokens = { findWithOwnerByHash: async () => row(token, revoked), findRetired: async () => undefined } as unknown as ReferenceTokenRepository;
    const rt = createReferenceTokenCache({ tokens, cache, clock: systemClock, logger: createLogger({ level: 'silent' }), sensitiveScopes: async () => new Set() });
    await cache.subscribe(REFERENCE_TOKEN_CHANNEL, (m) => rt.applyMessage(m));
    rt.start();
    stop = () => rt.stop();
    await sleep(50);
    expect((await rt.resolve(token)).ok).toBe(true);
    revoked = true;
    await rt.invalidate([{ secret_hash: hashToken(token), previous_secret_hash: null }]);
    expect(await rt.resolve(token)).toMatchObject({ ok: false, reason: 'revoked' });
  });
});
