/**
 * Rotation that cannot cause an outage (docs/tokens.md), on every backend: a rotation with
 * cutover "first_use" keeps the old secret working until the new one is first used (or the grace
 * ends), after which a straggler still holding the old one is refused but does not get the token
 * revoked; and a rotation retried with the same Idempotency-Key (by id, or with a token pair's
 * rotation key) answers the same new secret instead of making another.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends, createTestClock } from '../helpers/backends.js';
import { introspect } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const DAY = 86_400_000;

for (const backend of backends) {
  describe(`rotation without outage on ${backend.name}`, () => {
    const clock = createTestClock();
    let server: TestServer;
    let org: string;
    let accountId: string;

    beforeAll(async () => {
      server = await startTestServer(backend.name, { clock, overrides: EXAMPLE_SEED });
      org = server.bootstrap.organization_id;
      accountId = (await server.tessera.repos.serviceAccounts.insert({ id: `sa_${Date.now()}`, organization_id: org, name: `deploy-${Date.now()}`, description: null, platform_admin: false })).id;
    }, 180_000);
    afterAll(async () => {
      await server?.stop();
    });

    const sat = (pair = false) =>
      server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'sat', name: 'deploy', serviceAccountId: accountId, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 30 * 86400, createdBy: 'test', pair });
    const active = async (token: string) => (await introspect(server, 'orders-rs', 'orders-rs-secret-0123456789', token)).body.active as boolean;
    const rotate = async (id: string, body: unknown, key?: string) => {
      const response = await fetch(`${server.url}/api/v1/tokens/${id}/rotate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.managementToken}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as any };
    };
    const row = async (id: string) => (await server.tessera.db.query<{ revoked_at: Date | null; rotation_count: number }>('SELECT revoked_at, rotation_count FROM reference_tokens WHERE id = $1', [id])).rows[0]!;

    it('cutover first_use: the old secret works until the new one is used, then is refused without revoking the token', async () => {
      const issued = await sat();
      const rotated = await rotate(issued.row.id, { cutover: 'first_use' });
      expect(rotated.status).toBe(200);
      // Nobody has the new secret in use yet: the old one keeps working.
      clock.advance(60_000);
      expect(await active(issued.token)).toBe(true);
      // The new secret's first use ends the old one, on this node at once.
      expect(await active(rotated.body.token)).toBe(true);
      await expect.poll(() => active(issued.token), { timeout: 3000 }).toBe(false);
      expect(await active(rotated.body.token)).toBe(true);
      expect((await row(issued.row.id)).revoked_at).toBeNull();
      await server.tessera.audit.flush();
      const trail = await server.tessera.auditRepository.list({ organizationId: org, targetId: issued.row.id, limit: 10 });
      expect(trail.map((e) => e.action)).toEqual(['token.rotated', 'token.previous_secret_ended']);
      expect(trail[0]!.details).toMatchObject({ cutover: 'first_use' });
      // After the grace the rotation would have had, the old secret is reuse as always.
      clock.advance(DAY);
      expect(await active(issued.token)).toBe(false);
      await expect.poll(async () => (await row(issued.row.id)).revoked_at, { timeout: 3000 }).not.toBeNull();
    });

    it('without cutover the old secret keeps its whole grace period', async () => {
      const issued = await sat();
      const rotated = await rotate(issued.row.id, {});
      expect(await active(rotated.body.token)).toBe(true);
      clock.advance(3_600_000);
      expect(await active(issued.token)).toBe(true);
    });

    it('a rotation retried with the same Idempotency-Key returns the same new secret', async () => {
      const issued = await sat();
      const first = await rotate(issued.row.id, {}, 'retry-7f3a');
      const again = await rotate(issued.row.id, {}, 'retry-7f3a');
      expect(first.status).toBe(200);
      expect(again.status).toBe(200);
      expect(again.body.token).toBe(first.body.token);
      expect((await row(issued.row.id)).rotation_count).toBe(1);
      expect(await active(first.body.token)).toBe(true);
      expect(await active(issued.token)).toBe(true);
      // The same key for another request is refused; a new key is a new rotation.
      const other = await rotate(issued.row.id, { cutover: 'first_use' }, 'retry-7f3a');
      expect(other.status).toBe(422);
      expect((await rotate(issued.row.id, {}, 'bad key with spaces')).status).toBe(400);
      const next = await rotate(issued.row.id, {}, 'retry-8b2c');
      expect(next.body.token).not.toBe(first.body.token);
      expect((await row(issued.row.id)).rotation_count).toBe(2);
      // The kept answer holds a secret: it is stored encrypted, never in plain text.
      if (server.tessera.cache.kind === 'redis') {
        const { Redis } = await import('ioredis');
        const redis = new Redis(server.config.redisUrl!);
        try {
          const keys = await redis.keys(`${server.redisPrefix}idempotency:*`);
          expect(keys.length).toBeGreaterThan(0);
          for (const key of keys) expect(await redis.get(key)).not.toContain(first.body.token);
        } finally {
          redis.disconnect();
        }
      }
    });

    it('a token-pair rotation retried with the same Idempotency-Key is not mistaken for a stolen key', async () => {
      const issued = await sat(true);
      const withKey = (key: string, idempotency?: string) =>
        fetch(`${server.url}/api/v1/tokens/rotate`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(idempotency ? { 'idempotency-key': idempotency } : {}) }, body: '{}' });
      const first = await withKey(issued.rotationKey!, 'pair-1');
      const again = await withKey(issued.rotationKey!, 'pair-1');
      expect(first.status).toBe(200);
      expect(again.status).toBe(200);
      const [a, b] = [await first.json(), await again.json()] as any[];
      expect(b.token).toBe(a.token);
      expect(b.rotation_key).toBe(a.rotation_key);
      expect((await row(issued.row.id)).revoked_at).toBeNull();
      expect(await active(a.token)).toBe(true);
      // Without the key, presenting the consumed rotation key again is reuse, as before.
      expect((await withKey(issued.rotationKey!)).status).toBe(401);
      await expect.poll(async () => (await row(issued.row.id)).revoked_at, { timeout: 3000 }).not.toBeNull();
    });
  });
}
