/**
 * Lifetime policy at use time (docs/tokens.md), on every backend: lowering an organization's
 * max_pat_lifetime_days / max_sat_lifetime_days stops, at introspection, the tokens whose
 * lifetime is longer than the new cap, without rewriting them; the inventory says why, and the
 * audit trail names each one; raising the cap back lets them work again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { newId } from '../../src/storage/ids.js';
import { backends } from '../helpers/backends.js';
import { introspect } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

for (const backend of backends) {
  describe(`lifetime policy at use time on ${backend.name}`, () => {
    let server: TestServer;
    let org: string;
    const tokens: Record<string, { id: string; token: string }> = {};
    /** An owner's week-long PAT: the bootstrap SAT lives a year, and a lowered SAT cap stops it too. */
    let owner = '';

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED });
      org = server.bootstrap.organization_id;
      const { repos, referenceTokenIssuer: issuer } = server.tessera;
      const user = await repos.users.insert({ id: newId('usr'), organization_id: org, username: `dev-${Date.now()}`, email: null, name: null, role: 'member', password_hash: null });
      const account = await repos.serviceAccounts.insert({ id: newId('sa'), organization_id: org, name: `bot-${Date.now()}`, description: null, platform_admin: false });
      const issue = async (name: string, type: 'pat' | 'sat', days: number) => {
        const issued = await issuer.issue({ organizationId: org, type, name, ...(type === 'pat' ? { userId: user.id } : { serviceAccountId: account.id }), scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: days * 86400, createdBy: 'test' });
        tokens[name] = { id: issued.row.id, token: issued.token };
      };
      const ownerUser = await repos.users.insert({ id: newId('usr'), organization_id: org, username: `owner-${Date.now()}`, email: null, name: null, role: 'owner', password_hash: null });
      owner = (await issuer.issue({ organizationId: org, type: 'pat', name: 'owner', userId: ownerUser.id, scopes: ['organization:write', 'organization:read', 'tokens:read'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 7 * 86400, createdBy: 'test' })).token;
      await issue('sat300', 'sat', 300);
      await issue('pat60', 'pat', 60);
      await issue('pat20', 'pat', 20);
    }, 180_000);
    afterAll(async () => {
      await server?.stop();
    });

    const active = async (name: string) => (await introspect(server, 'orders-rs', 'orders-rs-secret-0123456789', tokens[name]!.token)).body.active as boolean;
    const policy = (body: Record<string, unknown>) => api(server, owner, 'PATCH', '/organization', { policy: body });
    const blocked = async () => {
      const inventory = (await api(server, owner, 'GET', '/token-inventory?limit=1000')).body.items as any[];
      return Object.fromEntries(Object.entries(tokens).map(([name, t]) => [name, inventory.find((i) => i.id === t.id)?.blocked_reason]));
    };
    const events = async (action: string) => {
      await server.tessera.audit.flush();
      const rows = await server.tessera.auditRepository.list({ organizationId: org, action, limit: 100 });
      const names = new Map(Object.entries(tokens).map(([name, t]) => [t.id, name]));
      return rows.map((r) => names.get(r.target_id!)).sort();
    };

    it('blocks, at once and without rewriting them, the tokens that live longer than a lowered cap; raising it restores them', async () => {
      expect([await active('sat300'), await active('pat60'), await active('pat20')]).toEqual([true, true, true]);
      const before = (await server.tessera.db.query('SELECT id, expires_at, revoked_at FROM reference_tokens WHERE organization_id = $1 ORDER BY id', [org])).rows;

      expect((await policy({ max_sat_lifetime_days: 200, max_pat_lifetime_days: 30 })).status).toBe(200);
      expect([await active('sat300'), await active('pat60'), await active('pat20')]).toEqual([false, false, true]);
      expect(await blocked()).toEqual({ sat300: 'lifetime_exceeds_policy', pat60: 'lifetime_exceeds_policy', pat20: null });
      expect(await events('token.blocked_by_policy')).toEqual(expect.arrayContaining(['pat60', 'sat300']));
      expect(await events('token.blocked_by_policy')).not.toContain('pat20');
      // The bootstrap SAT lives a year: a SAT cap of 200 days stops it as well.
      expect((await api(server, server.managementToken, 'GET', '/organization')).status).toBe(401);
      const detail = (await server.tessera.auditRepository.list({ organizationId: org, action: 'token.blocked_by_policy', targetId: tokens.sat300!.id, limit: 1 }))[0]!.details;
      expect(detail).toMatchObject({ reason: 'lifetime_exceeds_policy', token_kind: 'sat', lifetime_days: 300, max_lifetime_days: 200 });
      // Nothing was rewritten.
      expect((await server.tessera.db.query('SELECT id, expires_at, revoked_at FROM reference_tokens WHERE organization_id = $1 ORDER BY id', [org])).rows).toEqual(before);

      // Raising one cap back frees that kind only.
      expect((await policy({ max_sat_lifetime_days: 365 })).status).toBe(200);
      expect([await active('sat300'), await active('pat60')]).toEqual([true, false]);
      expect((await policy({ max_pat_lifetime_days: 90 })).status).toBe(200);
      expect([await active('sat300'), await active('pat60'), await active('pat20')]).toEqual([true, true, true]);
      expect(await blocked()).toEqual({ sat300: null, pat60: null, pat20: null });
      expect(await events('token.unblocked_by_policy')).toEqual(expect.arrayContaining(['pat60', 'sat300']));
      expect((await api(server, server.managementToken, 'GET', '/organization')).status).toBe(200);
    });
  });
}
