/**
 * The token inventory against a real running Tessera, on every backend. Fixtures are made
 * through the repositories and SQL with an injected clock (the Management API routes for
 * tokens and users land separately): a year-long SAT with Management API write scopes idle
 * for 60 days must outrank a week-long read-only PAT used an hour ago; every kind of
 * long-lived credential is listed with its owner, reach, age, expiry, last use and reasons;
 * filters, cursors, CSV and `tessera tokens audit` present the same ranking.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { inventoryTable } from '../../src/audit/token-inventory.js';
import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { encodeCursor } from '../../src/management/pagination.js';
import { newId } from '../../src/storage/ids.js';
import { hashToken } from '../../src/tokens/format.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const DAY = 86_400_000;
const HOUR = 3_600_000;

/** Starting storage (PGlite initializes a fresh data directory in WASM) is slow on a busy two-core machine. */
const START_TIMEOUT_MS = 180_000;

for (const backend of backends) {
  describe(`token inventory on ${backend.name}`, () => {
    let server: TestServer;
    let org: string;
    const now = Date.now();
    const clock = createTestClock(now);
    const ids = { sat: '', pat: '', bobPat: '', revoked: '', bob: '', alice: '', deploy: '' };

    const inventory = async (query = '') => {
      const response = await api(server, server.managementToken, 'GET', `/token-inventory${query}`);
      expect(response.status, response.text).toBe(200);
      return response.body as { items: any[]; next_cursor: string | null };
    };

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED, clock });
      org = server.bootstrap.organization_id;
      const { repos, referenceTokenIssuer: issuer, db } = server.tessera;

      const deploy = await repos.serviceAccounts.insert({ id: newId('sa'), organization_id: org, name: 'deploy-bot', description: null, platform_admin: false });
      const alice = await repos.users.insert({ id: newId('usr'), organization_id: org, username: 'alice', email: null, name: null, role: 'member', password_hash: null });
      const bob = await repos.users.insert({ id: newId('usr'), organization_id: org, username: 'bob', email: null, name: null, role: 'admin', password_hash: null });
      Object.assign(ids, { deploy: deploy.id, alice: alice.id, bob: bob.id });

      // A year-long SAT with Management API write scopes, issued 61 days ago, last used 60 days ago.
      clock.set(now - 61 * DAY);
      const sat = await issuer.issue({ organizationId: org, type: 'sat', name: 'deploy', serviceAccountId: deploy.id, scopes: ['clients:write', 'tokens:write', 'audit:read'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 365 * 86400, createdBy: 'test' });
      // A week-long read-only PAT, issued two hours ago, used an hour ago.
      clock.set(now - 2 * HOUR);
      const pat = await issuer.issue({ organizationId: org, type: 'pat', name: 'laptop', userId: alice.id, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 7 * 86400, createdBy: 'test' });
      const bobPat = await issuer.issue({ organizationId: org, type: 'pat', name: 'script', userId: bob.id, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 7 * 86400, createdBy: 'test' });
      const revoked = await issuer.issue({ organizationId: org, type: 'pat', name: 'gone', userId: alice.id, scopes: ['orders:write'], resources: ['https://orders.test'], expiresInSeconds: 7 * 86400, createdBy: 'test' });
      clock.set(now);
      Object.assign(ids, { sat: sat.row.id, pat: pat.row.id, bobPat: bobPat.row.id, revoked: revoked.row.id });

      await db.query('UPDATE reference_tokens SET last_used_at = $2, use_count = 40 WHERE id = $1', [sat.row.id, new Date(now - 60 * DAY)]);
      await db.query('UPDATE reference_tokens SET last_used_at = $2, use_count = 3 WHERE id = $1', [pat.row.id, new Date(now - HOUR)]);
      await db.query('UPDATE reference_tokens SET last_used_at = $2 WHERE id = $1', [bobPat.row.id, new Date(now - HOUR)]);
      await server.tessera.repos.referenceTokens.revoke(revoked.row.id, 'api', new Date(now));
      await db.query("UPDATE users SET status = 'deactivated' WHERE id = $1", [bob.id]);
      await db.query("UPDATE resource_servers SET sensitive = true WHERE identifier = 'https://billing.test'");
      // The worker's secret was set 200 days ago: past the 90-day rotation policy.
      await db.query("UPDATE clients SET secret_rotated_at = $1 WHERE client_id = 'worker'", [new Date(now - 200 * DAY)]);

      // A refresh-token family of alice's: started 10 days ago, last rotated a day ago; the token it replaced is consumed.
      const s = (ms: number) => Math.floor(ms / 1000);
      const family = { accountId: alice.id, clientId: 'worker', scope: 'openid offline_access orders:write', resource: 'https://orders.test', iiat: s(now - 10 * DAY), grantId: 'grant-family-1', kind: 'RefreshToken' };
      await db.query(
        `INSERT INTO oidc_payloads (model, id, payload, grant_id, expires_at, consumed_at) VALUES
           ('RefreshToken', 'rt-old', $1, 'grant-family-1', $3, $4),
           ('RefreshToken', 'rt-new', $2, 'grant-family-1', $3, NULL)`,
        [JSON.stringify({ ...family, iat: s(now - 3 * DAY), exp: s(now + 4 * DAY) }), JSON.stringify({ ...family, iat: s(now - DAY), exp: s(now + 4 * DAY) }), new Date(now + 4 * DAY), new Date(now - DAY)],
      );
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it('ranks a year-long Management-write SAT idle for 60 days above a week-long read-only PAT used an hour ago', async () => {
      const { items } = await inventory();
      const sat = items.find((i) => i.id === ids.sat);
      const pat = items.find((i) => i.id === ids.pat);
      expect(items.indexOf(sat)).toBeLessThan(items.indexOf(pat));
      expect(sat.risk_score).toBeGreaterThan(pat.risk_score + 30);
      expect(sat.risk_reasons.map((r: any) => r.code)).toEqual(expect.arrayContaining(['management_write', 'lifetime', 'idle']));
      expect(sat.risk_reasons.find((r: any) => r.code === 'idle')).toMatchObject({ points: 10, detail: 'last used 60 days ago' });
      expect(pat.risk_reasons.map((r: any) => r.code)).not.toContain('management_write');
      expect(pat.risk_score).toBeLessThanOrEqual(5);
      expect(sat).toMatchObject({
        kind: 'sat',
        owner: { type: 'service_account', id: ids.deploy, name: 'deploy-bot', status: 'active' },
        scopes: ['clients:write', 'tokens:write', 'audit:read'],
        audiences: [MANAGEMENT_AUDIENCE],
        age_days: 61,
        expires_in_days: 304,
        last_used_at: new Date(now - 60 * DAY).toISOString(),
        idle_days: 60,
        use_count: 40,
      });
      expect(pat).toMatchObject({ kind: 'pat', owner: { type: 'user', name: 'alice', status: 'active' }, expires_in_days: 6, idle_days: 0 });
      // Sorted by risk.
      expect(items.map((i) => i.risk_score)).toEqual([...items.map((i) => i.risk_score)].sort((a, b) => b - a));
    });

    it('lists every live long-lived kind: PATs, SATs, client secrets and refresh-token families, and nothing revoked', async () => {
      const { items } = await inventory();
      expect(new Set(items.map((i) => i.kind))).toEqual(new Set(['pat', 'sat', 'client_secret', 'refresh_token_family']));
      expect(items.map((i) => i.id)).not.toContain(ids.revoked);

      const worker = items.find((i) => i.kind === 'client_secret' && i.id === 'worker');
      expect(worker).toMatchObject({ expires_at: null, age_days: 200, last_used_at: null, idle_days: 200, use_count: 0 });
      expect(worker.risk_reasons.map((r: any) => r.code)).toEqual(expect.arrayContaining(['no_expiry', 'rotation_overdue', 'sensitive_audience', 'idle']));
      expect(worker.risk_reasons.find((r: any) => r.code === 'idle')).toMatchObject({ detail: 'never used in 200 days' });
      expect(items.find((i) => i.kind === 'client_secret' && i.id === 'orders-rs')).toMatchObject({ owner: { type: 'resource_server', id: 'https://orders.test' } });

      const families = items.filter((i) => i.kind === 'refresh_token_family');
      expect(families).toHaveLength(1);
      expect(families[0]).toMatchObject({
        id: 'grant-family-1',
        client_id: 'worker',
        owner: { type: 'user', id: ids.alice, name: 'alice', status: 'active' },
        scopes: ['openid', 'offline_access', 'orders:write'],
        audiences: ['https://orders.test'],
        age_days: 10,
        idle_days: 1,
        expires_in_days: 4,
      });
      expect(families[0].risk_reasons.map((r: any) => r.code)).toContain('write_scope');

      const bobs = items.find((i) => i.id === ids.bobPat);
      expect(bobs.owner.status).toBe('deactivated');
      expect(bobs.risk_reasons.find((r: any) => r.code === 'owner_inactive')).toMatchObject({ points: 20 });
      expect(bobs.risk_score).toBeGreaterThan(items.find((i) => i.id === ids.pat).risk_score);
    });

    it('records the last use of client secrets, at /token and at introspection', async () => {
      const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      const issued = await fetch(`${server.url}/token`, { method: 'POST', headers: { ...form, authorization: basic('worker', 'worker-secret-0123456789abcdef') }, body: 'grant_type=client_credentials&resource=https%3A%2F%2Forders.test&scope=orders%3Aread' });
      expect(issued.status).toBe(200);
      const { access_token } = (await issued.json()) as { access_token: string };
      for (let i = 0; i < 2; i += 1) {
        const answer = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { ...form, authorization: basic('orders-rs', 'orders-rs-secret-0123456789') }, body: `token=${access_token}` });
        expect((await answer.json()).active).toBe(true);
      }
      // A wrong secret is not a use.
      await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { ...form, authorization: basic('billing-rs', 'wrong') }, body: `token=${access_token}` });
      await server.tessera.secretUsage.flush();
      const { items } = await inventory();
      const secret = (id: string) => items.find((i) => i.kind === 'client_secret' && i.id === id);
      expect(secret('worker')).toMatchObject({ use_count: 1, idle_days: 0 });
      expect(secret('orders-rs')).toMatchObject({ use_count: 2, idle_days: 0 });
      expect(Date.parse(secret('orders-rs').last_used_at)).toBeGreaterThan(0);
      expect(secret('billing-rs')).toMatchObject({ use_count: 0, last_used_at: null });
      await server.tessera.db.query("UPDATE clients SET secret_use_count = 0, secret_last_used_at = NULL WHERE client_id IN ('worker', 'orders-rs')");
    });

    it('filters by kind, owner, owner status, minimum score, audience and scope', async () => {
      expect((await inventory('?kind=pat')).items.map((i) => i.id).sort()).toEqual([ids.pat, ids.bobPat].sort());
      expect((await inventory(`?owner=${ids.bob}`)).items.map((i) => i.id)).toEqual([ids.bobPat]);
      expect((await inventory('?owner_status=inactive')).items.map((i) => i.id)).toEqual([ids.bobPat]);
      const risky = (await inventory('?min_score=50')).items;
      expect(risky.length).toBeGreaterThan(0);
      expect(risky.every((i) => i.risk_score >= 50)).toBe(true);
      expect(risky.map((i) => i.id)).toContain(ids.sat);
      expect((await inventory(`?audience=${encodeURIComponent('https://billing.test')}`)).items.map((i) => i.id)).toEqual(expect.arrayContaining(['worker', 'billing-rs']));
      expect((await inventory('?scope=clients:write')).items.map((i) => i.id)).toContain(ids.sat);
    });

    it('filters by idle and expiring days as the listed facts say, kind and owner narrowed in the statement alike', async () => {
      const { items: all } = await inventory('?limit=1000');
      for (const days of [0, 6, 7, 30, 59, 60, 365]) {
        const idle = (await inventory(`?limit=1000&min_idle_days=${days}`)).items.map((i) => i.id);
        expect(idle, `idle ${days}`).toEqual(all.filter((i) => (i.idle_days ?? i.age_days) >= days).map((i) => i.id));
        const expiring = (await inventory(`?limit=1000&expires_within_days=${days}`)).items.map((i) => i.id);
        expect(expiring, `expiring ${days}`).toEqual(all.filter((i) => i.expires_in_days !== null && i.expires_in_days <= days).map((i) => i.id));
      }
      expect((await inventory(`?kind=pat&owner=${ids.bob}`)).items.map((i) => i.id)).toEqual([ids.bobPat]);
    });

    it('lists tokens by id among those the caller may see, and counts activity per day and week', async () => {
      const listed = await api(server, server.managementToken, 'GET', `/tokens?ids=${ids.pat},${ids.sat},tok_unknown`);
      expect(listed.status).toBe(200);
      expect(listed.body.items.map((t: any) => t.id).sort()).toEqual([ids.pat, ids.sat].sort());
      expect((await api(server, server.managementToken, 'GET', '/tokens?ids=')).status).toBe(422);
      await server.tessera.audit.flush();
      const activity = await api(server, server.managementToken, 'GET', '/token-activity?days=7&weeks=4');
      expect(activity.status).toBe(200);
      expect(activity.body.days).toHaveLength(7);
      expect(activity.body.days.at(-1).day).toBe(new Date(Date.now()).toISOString().slice(0, 10));
      expect(activity.body.weeks).toHaveLength(4);
      // The week-long PATs expire in the second week from now (7 days, a little less by now).
      expect(activity.body.weeks[0].expiring + activity.body.weeks[1].expiring).toBeGreaterThanOrEqual(2);
      expect((await api(server, server.managementToken, 'GET', '/token-activity?days=0')).status).toBe(400);
    });

    it('counts every introspection per day, JWT, opaque and PAT alike, active or not, beside the PAT/SAT uses', async () => {
      const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      const today = async () => {
        await server.tessera.introspectionCounts.flush();
        await server.tessera.usage.flush();
        const activity = await api(server, server.managementToken, 'GET', '/token-activity?days=2&weeks=1');
        expect(activity.status).toBe(200);
        const day = activity.body.days.at(-1);
        expect(day.day).toBe(new Date(clock.now()).toISOString().slice(0, 10));
        return day as { introspections: number; uses: number };
      };
      const before = await today();
      const token = async (resource: string, scope: string) => {
        const issued = await fetch(`${server.url}/token`, { method: 'POST', headers: { ...form, authorization: basic('worker', 'worker-secret-0123456789abcdef') }, body: `grant_type=client_credentials&resource=${encodeURIComponent(resource)}&scope=${encodeURIComponent(scope)}` });
        expect(issued.status).toBe(200);
        return ((await issued.json()) as { access_token: string }).access_token;
      };
      const introspect = async (rs: [string, string], value: string) => {
        const answer = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { ...form, authorization: basic(...rs) }, body: `token=${encodeURIComponent(value)}` });
        expect(answer.status).toBe(200);
        return ((await answer.json()) as { active: boolean }).active;
      };
      const orders: [string, string] = ['orders-rs', 'orders-rs-secret-0123456789'];
      const billing: [string, string] = ['billing-rs', 'billing-rs-secret-0123456789'];
      const jwt = await token('https://orders.test', 'orders:read');
      const opaque = await token('https://billing.test', 'billing:read');
      expect(jwt.split('.')).toHaveLength(3);
      expect(opaque.split('.')).toHaveLength(1);
      const pat = await server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'pat', name: 'counted', userId: ids.alice, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 86400, createdBy: 'test' });
      try {
        expect(await introspect(orders, jwt)).toBe(true);
        expect(await introspect(orders, jwt)).toBe(true);
        expect(await introspect(billing, opaque)).toBe(true);
        expect(await introspect(orders, pat.token)).toBe(true);
        expect(await introspect(orders, 'not-a-token')).toBe(false);
        // A caller that fails authentication gets no answer, and no count.
        await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { ...form, authorization: basic('orders-rs', 'wrong') }, body: `token=${jwt}` });
        const after = await today();
        expect(after.introspections - before.introspections).toBe(5);
        // PAT/SAT uses count only the PAT's (and the management token's own calls made meanwhile).
        expect(after.uses - before.uses).toBeGreaterThanOrEqual(1);
        expect(after.uses - before.uses).toBeLessThan(5);
      } finally {
        await server.tessera.repos.referenceTokens.revoke(pat.row.id, 'api', new Date(now));
        await server.tessera.secretUsage.flush();
        await server.tessera.db.query("UPDATE clients SET secret_use_count = 0, secret_last_used_at = NULL WHERE client_id IN ('worker', 'orders-rs', 'billing-rs')");
      }
    });

    it('pages with a cursor through the same ranking', async () => {
      const { items: all } = await inventory('?limit=1000');
      const seen: any[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: any[]; next_cursor: string | null } = await inventory(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      expect(seen.map((i) => i.id)).toEqual(all.map((i) => i.id));
    });

    /**
     * The listing's pages come from the stored scores (migrations/1700000016200_token_risk_scores.sql):
     * walked a few at a time they must be the whole inventory as list() scores it now, and every
     * stored score the score list() gives.
     */
    const agrees = async (why: string) => {
      // The test's own management token is left out of the comparison: the requests below use it,
      // and a usage flush between list() and a page read moves its last use, so its score may
      // rightly differ between the two reads.
      const caller = (await server.tessera.db.query<{ id: string }>('SELECT id FROM reference_tokens WHERE secret_hash = $1', [hashToken(server.managementToken)])).rows[0]?.id;
      const org_ = await server.tessera.repos.organizations.findById(org);
      const full = await server.tessera.tokenInventory.list(org, { ...server.config.policyDefaults, ...org_?.policy });
      const seen: any[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: any[]; next_cursor: string | null } = await inventory(`?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      // The ranking and its reasons (use counts move on as the test's own management token is used).
      const ranking = (items: any[]) => items.filter((i) => i.id !== caller).map((i) => ({ id: i.id, kind: i.kind, risk_score: i.risk_score, risk_reasons: i.risk_reasons }));
      expect(ranking(seen), why).toEqual(ranking(full));
      const { rows } = await server.tessera.db.query<{ id: string; risk_score: number }>('SELECT id, risk_score FROM reference_tokens WHERE organization_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND id IS DISTINCT FROM $3', [org, new Date(clock.now()), caller]);
      const listed = new Map(full.filter((i) => (i.kind === 'pat' || i.kind === 'sat') && i.id !== caller).map((i) => [i.id, i.risk_score]));
      expect(new Map(rows.map((r) => [r.id, r.risk_score])), why).toEqual(listed);
      return new Map(full.map((i) => [i.id, i]));
    };

    it('keeps each PAT/SAT score on its row and recomputes it when its owner, last use, sensitive APIs or rotation policy change', async () => {
      await agrees('as seeded');
      const { db, repos } = server.tessera;
      await db.query("UPDATE users SET status = 'active' WHERE id = $1", [ids.bob]);
      expect((await agrees('owner reactivated')).get(ids.bobPat)!.risk_reasons.map((r) => r.code)).not.toContain('owner_inactive');
      await db.query("UPDATE users SET status = 'deactivated' WHERE id = $1", [ids.bob]);
      expect((await agrees('owner deactivated again')).get(ids.bobPat)!.risk_reasons.map((r) => r.code)).toContain('owner_inactive');

      await db.query('UPDATE reference_tokens SET last_used_at = $2 WHERE id = $1', [ids.pat, new Date(now - 45 * DAY)]);
      expect((await agrees('a use long ago')).get(ids.pat)!.risk_reasons.find((r) => r.code === 'idle')).toMatchObject({ points: 8 });
      await db.query('UPDATE reference_tokens SET last_used_at = $2 WHERE id = $1', [ids.pat, new Date(now - HOUR)]);
      expect((await agrees('used an hour ago')).get(ids.pat)!.risk_reasons.map((r) => r.code)).not.toContain('idle');

      await db.query("UPDATE resource_servers SET sensitive = true WHERE identifier = 'https://orders.test'");
      expect((await agrees('orders marked sensitive')).get(ids.pat)!.risk_reasons.map((r) => r.code)).toContain('sensitive_audience');
      await db.query("UPDATE resource_servers SET sensitive = false WHERE identifier = 'https://orders.test'");
      expect((await agrees('orders not sensitive')).get(ids.pat)!.risk_reasons.map((r) => r.code)).not.toContain('sensitive_audience');

      const before = (await repos.organizations.findById(org))!.policy;
      await repos.organizations.update(org, { policy: { secret_rotation_days: 30 } });
      expect((await agrees('rotation every 30 days')).get(ids.sat)!.risk_reasons.map((r) => r.code)).toContain('rotation_overdue');
      await db.query('UPDATE organizations SET policy = $2 WHERE id = $1', [org, JSON.stringify(before)]);
      expect((await agrees('rotation policy as it was')).get(ids.sat)!.risk_reasons.map((r) => r.code)).not.toContain('rotation_overdue');
    });

    it('recomputes stored scores as days pass, and when the clock is set back', async () => {
      try {
        for (const later of [3, 20, 40]) {
          clock.set(now + later * DAY);
          await agrees(`${later} days later`);
        }
        // The periodic job (src/app/jobs.ts) brings due scores up to date before a page is read.
        clock.set(now + 50 * DAY);
        await server.tessera.tokenInventory.refresh(org, server.config.policyDefaults);
        const { rows } = await server.tessera.db.query<{ n: number }>('SELECT count(*)::int AS n FROM reference_tokens WHERE organization_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND risk_valid_until <= $2', [org, new Date(clock.now())]);
        expect(rows[0]!.n).toBe(0);
      } finally {
        clock.set(now);
      }
      await agrees('back to now');
    });

    it('exports CSV with ?format=csv or Accept: text/csv, riskiest first', async () => {
      const { items } = await inventory();
      for (const request of [
        fetch(`${server.url}/api/v1/token-inventory?format=csv`, { headers: { authorization: `Bearer ${server.managementToken}` } }),
        fetch(`${server.url}/api/v1/token-inventory`, { headers: { authorization: `Bearer ${server.managementToken}`, accept: 'text/csv' } }),
      ]) {
        const response = await request;
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toContain('text/csv');
        const lines = (await response.text()).trimEnd().split('\r\n');
        expect(lines[0]).toMatch(/^risk_score,kind,id,name,owner_type,owner_id,owner_name,owner_status,/);
        expect(lines).toHaveLength(items.length + 1);
        expect(lines[1]!.startsWith(`${items[0].risk_score},${items[0].kind},${items[0].id},`)).toBe(true);
        expect(lines.find((l) => l.includes(ids.sat))).toContain('management_write+35');
      }
    });

    it('documents the inventory and the audit events in the OpenAPI document', async () => {
      const document = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
      const inventoryOp = document.paths['/api/v1/token-inventory'].get;
      expect(inventoryOp.security).toEqual([{ bearer: ['tokens:read'] }]);
      expect(inventoryOp.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['kind', 'owner', 'owner_status', 'min_score', 'audience', 'scope', 'format', 'limit', 'cursor']));
      expect(inventoryOp.responses['400']).toBeDefined();
      const auditOp = document.paths['/api/v1/audit-events'].get;
      expect(auditOp.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['from', 'to', 'actor', 'action', 'target', 'outcome', 'format']));
    });

    it('answers bad input with a 400 problem+json', async () => {
      for (const [query, field] of [
        ['?format=xml', 'format'],
        ['?min_score=101', 'min_score'],
        ['?kind=password', 'kind'],
        ['?cursor=%%%', 'cursor'],
        [`?cursor=${encodeCursor('org_other', { k: '50', id: 'x' })}`, 'cursor'],
        [`?cursor=${encodeCursor(org, { k: 'high', id: 'x' })}`, 'cursor'],
        ['?limit=5000', 'limit'],
      ] as const) {
        const response = await api(server, server.managementToken, 'GET', `/token-inventory${query}`);
        expect(response.status, query).toBe(400);
        expect(response.headers.get('content-type')).toContain('application/problem+json');
        expect(response.body.detail, query).toContain(field);
      }
    });

    it('prints the inventory as a table for the terminal', async () => {
      const { items } = await inventory();
      const table = inventoryTable(items).trimEnd().split('\n');
      expect(table[0]).toMatch(/^RISK\s+KIND\s+ID\s+NAME\s+OWNER\s+STATUS/);
      expect(table).toHaveLength(items.length + 1);
      expect(table[1]).toMatch(new RegExp(`^${items[0].risk_score}\\s+${items[0].kind}\\s+`));

      if (server.config.databaseUrl) {
        // `tessera tokens audit`, as an operator runs it, against the same PostgreSQL schema.
        const { rows } = await server.tessera.db.query<{ schema: string }>('SELECT current_schema() AS schema');
        const url = new URL(server.config.databaseUrl);
        url.searchParams.set('options', `-c search_path=${rows[0]!.schema}`);
        const env = {
          PATH: process.env.PATH,
          NODE_ENV: 'test',
          LOG_LEVEL: 'silent',
          DATABASE_URL: url.toString(),
          TESSERA_DATA_DIR: server.config.dataDir,
          TESSERA_KEK: server.config.kek!.toString('base64'),
          TESSERA_COOKIE_KEYS: server.config.cookieKeys!.join(','),
        };
        const { stdout } = await run(resolve(ROOT, 'node_modules/.bin/tsx'), ['src/cli.ts', 'tokens', 'audit', '--organization', org, '--min-score', '40'], { cwd: ROOT, env, timeout: 60_000 });
        const lines = stdout.trimEnd().split('\n');
        expect(lines[0]).toMatch(/^RISK\s+KIND/);
        expect(lines.some((l) => l.includes(ids.sat) && l.includes('deploy-bot'))).toBe(true);
        expect(lines.some((l) => l.includes(ids.pat))).toBe(false);
      }
    });
  });
}
