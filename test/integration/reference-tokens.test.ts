/**
 * PAT/SAT lifecycle through the HTTP surface, once per backend (PGlite + the in-process store,
 * and PostgreSQL + Redis), with an injected clock: issue within policy, introspection (fast path
 * and Koa path), revoke (API and RFC 7009), rotation with grace and reuse detection, token pairs,
 * ownership changes, idle revocation, usage counters, listing, and leaked-token reports.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Clock } from '../../src/clock.js';
import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import type { Database } from '../../src/storage/database.js';
import { checksum, hashToken, parseToken } from '../../src/tokens/format.js';
import { backends, createTestClock } from '../helpers/backends.js';
import type { Backend } from '../helpers/backends.js';
import { createResourceServer, createServiceAccount, createOrganization, createUser, managementPat, startTessera } from '../helpers/token-fixtures.js';
import type { ResourceServerFixture, RunningTessera } from '../helpers/token-fixtures.js';

const DAY = 86_400_000;

interface Started {
  running: RunningTessera;
  /** Stops the server, then releases its storage (schema and Redis keys, or data directory). */
  stop(): Promise<void>;
}

/**
 * A whole Tessera on `backend`. Both get a temporary data directory: the embedded database lives
 * there, and a first start on PostgreSQL writes bootstrap.json there (src/app/foundation.ts),
 * which must not land in the working directory.
 */
async function start(backend: Backend, clock: Clock): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-lifecycle-'));
  const releases: (() => Promise<void>)[] = [async () => rmSync(dataDir, { recursive: true, force: true })];
  const release = async () => {
    for (const step of releases.reverse()) await step().catch(() => {});
  };
  try {
    let running: RunningTessera;
    if (backend.name === 'postgres+redis') {
      // A fresh schema and Redis key prefix; the server opens its own connections to them.
      const shared = await backend.open(clock);
      releases.push(() => shared.close());
      running = await startTessera({ clock, dataDir, databaseUrl: shared.databaseUrl, schema: shared.schema, redisUrl: shared.redisUrl, redisPrefix: shared.redisPrefix });
    } else {
      running = await startTessera({ clock, dataDir });
    }
    return {
      running,
      async stop() {
        await running.stop();
        await release();
      },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

function lifecycleSuite(backend: Backend) {
  describe(`PAT/SAT lifecycle on ${backend.name}`, () => {
    const clock = createTestClock();
    let storage: Started;
    let running: RunningTessera;
    let db: Database;
    let orgId: string;
    let ownerToken: string;
    let orders: ResourceServerFixture;
    let secrets: ResourceServerFixture;
    let billing: ResourceServerFixture;
    let foreign: ResourceServerFixture;
    let member: { id: string; username: string };
    let memberPat: string;
    let admin: { id: string; username: string };
    let adminPat: string;
    let account: { id: string; name: string };

    async function api(method: string, path: string, token: string | undefined, body?: unknown) {
      const response = await fetch(`${running.url}/api/v1${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
    }

    async function introspect(rs: ResourceServerFixture, token: string, extra: Record<string, string> = {}) {
      const response = await fetch(`${running.url}/token/introspection`, {
        method: 'POST',
        headers: { authorization: rs.basic, 'content-type': 'application/x-www-form-urlencoded', ...extra },
        body: new URLSearchParams({ token }).toString(),
      });
      const text = await response.text();
      return { status: response.status, headers: response.headers, text, body: response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined };
    }

    async function issue(token: string, body: Record<string, unknown>) {
      return api('POST', '/tokens', token, { name: 'test', expires_in: 30 * 86400, ...body });
    }

    async function auditActions(targetId: string): Promise<string[]> {
      await running.tessera.audit.flush();
      const { rows } = await db.query<{ action: string; details: Record<string, unknown> }>('SELECT action, details FROM audit_events WHERE target_id = $1 ORDER BY seq', [targetId]);
      return rows.map((r) => (r.details.reason ? `${r.action}:${String(r.details.reason)}` : r.action));
    }

    beforeAll(async () => {
      // Each backend's suite starts after the one before it has run; the engine stamps tokens
      // with real time (see 'the token endpoint beside the fast path'), so the test clock starts
      // from real time here rather than when the file was loaded.
      clock.set(Date.now());
      storage = await start(backend, clock);
      running = storage.running;
      // The server's own handle, so fixtures and audit reads work on either backend.
      db = running.tessera.db;
      const { tessera } = running;
      orgId = tessera.bootstrapped!.organization_id;
      ownerToken = tessera.bootstrapped!.management_token;
      orders = await createResourceServer({ db, envelope: tessera.envelope }, orgId, { scopes: ['orders:read', 'orders:write'] });
      secrets = await createResourceServer({ db, envelope: tessera.envelope }, orgId, { scopes: ['secrets:read'], sensitive: true });
      billing = await createResourceServer({ db, envelope: tessera.envelope }, orgId, { scopes: ['billing:read'] });
      const otherOrg = await createOrganization(db);
      foreign = await createResourceServer({ db, envelope: tessera.envelope }, otherOrg, { scopes: ['orders:read'] });
      member = await createUser(db, orgId, 'member');
      memberPat = await managementPat(tessera, orgId, member.id, ['tokens:read', 'tokens:write']);
      admin = await createUser(db, orgId, 'admin');
      adminPat = await managementPat(tessera, orgId, admin.id, ['tokens:read', 'tokens:write', 'organization:read', 'service-accounts:write']);
      account = await createServiceAccount(db, orgId);
    });

    afterAll(async () => {
      await storage?.stop();
    });

    describe('issuing', () => {
      it('issues a PAT for the calling member, shown once, stored only as its SHA-256', async () => {
        const res = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier] });
        expect(res.status).toBe(201);
        expect(res.body).toMatchObject({ type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], owner: { type: 'user', id: member.id }, state: 'active' });
        expect(res.body.token).toMatch(/^tsr_pat_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}$/);
        expect(parseToken(res.body.token)).toBe('pat');
        expect(new Date(res.body.expires_at).getTime()).toBe(Math.floor((clock.now() + 30 * DAY) / 1000) * 1000 + (clock.now() % 1000));
        const { rows } = await db.query<Record<string, unknown>>('SELECT * FROM reference_tokens WHERE id = $1', [res.body.id]);
        expect((rows[0]!.secret_hash as Buffer).equals(hashToken(res.body.token))).toBe(true);
        expect(JSON.stringify(rows[0])).not.toContain(res.body.token.slice(8, 51));
        const got = await api('GET', `/tokens/${res.body.id}`, memberPat);
        expect(got.status).toBe(200);
        expect(got.body.token).toBeUndefined();
        expect(JSON.stringify(got.body)).not.toContain(res.body.token);
      });

      it('keeps a member to what their role may grant', async () => {
        expect((await issue(memberPat, { type: 'pat', scopes: ['users:read'], resources: [MANAGEMENT_AUDIENCE] })).status).toBe(403);
        expect((await issue(memberPat, { type: 'pat', scopes: ['secrets:read'], resources: [secrets.identifier] })).status).toBe(403);
        expect((await issue(memberPat, { type: 'pat', scopes: ['tokens:read'], resources: [MANAGEMENT_AUDIENCE] })).status).toBe(201);
        expect((await issue(adminPat, { type: 'pat', scopes: ['secrets:read'], resources: [secrets.identifier] })).status).toBe(201);
      });

      it('rejects unknown scopes, foreign resources and lifetimes beyond policy with a clear problem', async () => {
        const unknownScope = await issue(memberPat, { type: 'pat', scopes: ['orders:delete'], resources: [orders.identifier] });
        expect(unknownScope.status).toBe(422);
        expect(unknownScope.headers.get('content-type')).toContain('application/problem+json');
        expect(unknownScope.body.errors[0].field).toBe('scopes');
        const foreignRs = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [foreign.identifier] });
        expect(foreignRs.status).toBe(422);
        expect(foreignRs.body.errors[0].field).toBe('resources');
        const tooLong = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 91 * 86400 });
        expect(tooLong.status).toBe(422);
        expect(tooLong.body.errors[0].field).toBe('expires_in');
        const missing = await api('POST', '/tokens', memberPat, { type: 'pat', name: 'x', scopes: [], resources: [orders.identifier] });
        expect(missing.status).toBe(422);
        expect(missing.body.errors[0].field).toBe('expires_in');
      });

      it('lets only an admin or owner issue a SAT, for a service account of the organization, within the SAT lifetime', async () => {
        expect((await issue(memberPat, { type: 'sat', service_account_id: account.id, scopes: ['orders:read'], resources: [orders.identifier] })).status).toBe(403);
        const ok = await issue(adminPat, { type: 'sat', service_account_id: account.id, scopes: ['orders:read'], resources: [orders.identifier], expires_in: 365 * 86400 });
        expect(ok.status).toBe(201);
        expect(ok.body.token).toMatch(/^tsr_sat_/);
        expect(ok.body.owner).toMatchObject({ type: 'service_account', id: account.id });
        expect((await issue(adminPat, { type: 'sat', service_account_id: account.id, scopes: [], resources: [orders.identifier], expires_in: 366 * 86400 })).status).toBe(422);
        expect((await issue(adminPat, { type: 'sat', service_account_id: 'sa_nope', scopes: [], resources: [orders.identifier] })).status).toBe(422);
        expect((await issue(adminPat, { type: 'sat', scopes: [], resources: [orders.identifier] })).status).toBe(422);
        // An admin cannot hand a SAT Management API scopes the admin does not hold.
        expect((await issue(adminPat, { type: 'sat', service_account_id: account.id, scopes: ['organization:write'], resources: [MANAGEMENT_AUDIENCE] })).status).toBe(403);
        expect(await auditActions(ok.body.id)).toEqual(['token.issued']);
      });

      it('applies the organization policy: allowed PAT scopes and maximum lifetime', async () => {
        // A week-long PAT of the member's: a 30-day one is itself stopped by a 7-day cap (the cap holds at use too).
        const memberPat = await managementPat(running.tessera, orgId, member.id, ['tokens:read', 'tokens:write'], 7);
        const patch = await api('PATCH', '/organization', ownerToken, { policy: { allowed_pat_scopes: ['orders:read'], max_pat_lifetime_days: 7 } });
        expect(patch.status).toBe(200);
        try {
          expect((await issue(memberPat, { type: 'pat', scopes: ['orders:write'], resources: [orders.identifier], expires_in: 86400 })).status).toBe(422);
          expect((await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 8 * 86400 })).status).toBe(422);
          expect((await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 7 * 86400 })).status).toBe(201);
        } finally {
          await api('PATCH', '/organization', ownerToken, { policy: { allowed_pat_scopes: null, max_pat_lifetime_days: 90 } });
        }
      });
    });

    // Runs before any test moves the clock: the engine stamps tokens with real time.
    describe('the token endpoint beside the fast path', () => {
      it('issues client-credentials tokens with Tessera\'s headers, and Tessera introspects them', async () => {
        const secret = 'worker-secret-0123456789abcdef';
        await db.query(
          `INSERT INTO clients (client_id, organization_id, kind, name, metadata, allowed_scopes, allowed_resources, secret_enc)
           VALUES ('worker', $1, 'oauth', 'worker', $2, '["orders:read"]', $3, $4)`,
          [orgId, JSON.stringify({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' }), JSON.stringify([orders.identifier]), running.tessera.envelope.seal(secret, 'client-secret:worker:current')],
        );
        const res = await fetch(`${running.url}/token`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`worker:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'req-123' },
          body: new URLSearchParams({ grant_type: 'client_credentials', resource: orders.identifier, scope: 'orders:read' }).toString(),
        });
        expect(res.status).toBe(200);
        expect(res.headers.get('x-request-id')).toBe('req-123');
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        const { access_token: accessToken } = (await res.json()) as { access_token: string };
        expect((await introspect(orders, accessToken)).body).toMatchObject({ active: true, client_id: 'worker', sub: 'worker', scope: 'orders:read' });
        const bad = await fetch(`${running.url}/token`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from('worker:wrong').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
        });
        expect(bad.status).toBe(401);
        expect(await bad.json()).toMatchObject({ error: 'invalid_client' });
      });
    });

    describe('introspection', () => {
      let sat: { id: string; token: string };
      beforeAll(async () => {
        const res = await issue(adminPat, { type: 'sat', service_account_id: account.id, name: 'worker', scopes: ['orders:read', 'billing:read'], resources: [orders.identifier, billing.identifier] });
        sat = res.body;
      });

      it('answers RFC 7662 members plus Tessera\'s, for the audience only', async () => {
        const res = await introspect(orders, sat.token);
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(res.body).toEqual({
          active: true,
          scope: 'orders:read billing:read',
          client_id: orders.clientId,
          sub: account.id,
          aud: [orders.identifier, billing.identifier],
          exp: expect.any(Number),
          iat: Math.floor(clock.now() / 1000),
          iss: 'http://127.0.0.1:3999',
          token_type: 'Bearer',
          token_kind: 'sat',
          token_id: sat.id,
          org_id: orgId,
          owner_name: account.name,
          expires_in: expect.any(Number),
        });
        // The remaining lifetime: what `exp` says, counted from now.
        expect(Math.abs(res.body.exp - Math.floor(clock.now() / 1000) - res.body.expires_in)).toBeLessThanOrEqual(1);
        expect((await introspect(secrets, sat.token)).body).toEqual({ active: false });
        expect((await introspect(foreign, sat.token)).body).toEqual({ active: false });
      });

      it('answers from the fast path exactly as the Koa path does (body and headers)', async () => {
        const stats = running.tessera.fastPathStats;
        const before = { ...stats };
        const fast = await introspect(orders, sat.token);
        expect(stats.answered).toBe(before.answered + 1);
        // An Accept header naming the JWT format (here refused with q=0) always takes the Koa path.
        const koa = await introspect(orders, sat.token, { accept: 'application/json, application/token-introspection+jwt;q=0' });
        expect(stats.handedOn).toBe(before.handedOn + 1);
        expect(koa.text).toBe(fast.text);
        const names = (h: Headers) => [...h.keys()].filter((k) => k !== 'date').sort();
        expect(names(fast.headers)).toEqual(names(koa.headers));
        for (const name of names(fast.headers)) if (name !== 'x-request-id') expect(fast.headers.get(name), name).toBe(koa.headers.get(name));
      });

      it('answers with a signed JWT (RFC 9701) when asked', async () => {
        const res = await introspect(orders, sat.token, { accept: 'application/token-introspection+jwt' });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toContain('application/token-introspection+jwt');
        const payload = JSON.parse(Buffer.from(res.text.split('.')[1]!, 'base64url').toString('utf8'));
        expect(payload.token_introspection).toMatchObject({ active: true, token_id: sat.id });
      });

      it('answers {"active":false} to every kind of bad token, never an error', async () => {
        const body = sat.token.slice(0, sat.token.lastIndexOf('_'));
        const flipped = `${body.slice(0, -1)}${body.endsWith('a') ? 'b' : 'a'}`;
        const bad = [
          sat.token.replace('tsr_sat_', 'tsr_xyz_'),
          `${body}_${checksum(body) === '000000' ? '000001' : '000000'}`,
          `${flipped}_${sat.token.slice(-6)}`,
          sat.token.slice(0, 30),
          `tsr_sat_${'a'.repeat(10_000)}`,
          `${flipped}_${checksum(flipped)}`,
        ];
        for (const token of bad) {
          const res = await introspect(orders, token);
          expect(res.status, token.slice(0, 20)).toBe(200);
          expect(res.body).toEqual({ active: false });
        }
      });

      it('answers no bad token more slowly than a valid one (no timing oracle)', async () => {
        const body = sat.token.slice(0, sat.token.lastIndexOf('_'));
        const otherOrg = await createOrganization(db);
        const otherAccount = await createServiceAccount(db, otherOrg);
        const foreignToken = (await running.tessera.referenceTokenIssuer.issue({ organizationId: otherOrg, type: 'sat', name: 'x', serviceAccountId: otherAccount.id, scopes: [], resources: [orders.identifier], expiresInSeconds: 3600, createdBy: 'test' })).token;
        const revoked = (await issue(adminPat, { type: 'sat', service_account_id: account.id, scopes: ['orders:read'], resources: [orders.identifier] })).body;
        await api('DELETE', `/tokens/${revoked.id}`, adminPat);
        const kinds: Record<string, string> = {
          valid: sat.token,
          wrongPrefix: sat.token.replace('tsr_sat_', 'tsr_xyz_'),
          badChecksum: `${body}_${checksum(body) === '000000' ? '000001' : '000000'}`,
          truncated: sat.token.slice(0, 40),
          huge: `tsr_sat_${'a'.repeat(10_000)}`,
          otherOrganization: foreignToken,
          revoked: revoked.token,
        };
        // Every kind goes through the same HTTP handling; what could differ is the lookup, so it is
        // timed directly, without the network's noise, once each kind has been seen.
        const caller = { clientId: orders.clientId, organizationId: orgId, audiences: [orders.identifier] };
        for (const [kind, token] of Object.entries(kinds)) {
          const res = await introspect(orders, token);
          expect(res.status).toBe(200);
          expect(res.body.active, kind).toBe(kind === 'valid');
        }
        const times: Record<string, number[]> = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
        // Interleaved rounds, so background load affects every kind alike.
        for (let round = 0; round < 300; round += 1) {
          for (const [kind, token] of Object.entries(kinds)) {
            const started = performance.now();
            await running.tessera.introspection.introspect(token, caller);
            times[kind]!.push(performance.now() - started);
          }
        }
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
        const valid = median(times.valid!);
        // A storage round-trip costs far more than 0.1 ms; nothing here may need one.
        for (const kind of Object.keys(kinds)) expect(median(times[kind]!), kind).toBeLessThanOrEqual(valid * 2 + 0.1);
      });

      it('rejects a wrong client secret exactly as the Koa path does (401, WWW-Authenticate)', async () => {
        const wrong = { ...orders, basic: `Basic ${Buffer.from(`${orders.clientId}:nope`).toString('base64')}` };
        const res = await introspect(wrong, sat.token);
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
        expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      });

      it('counts use per token and resource server in batches', async () => {
        await introspect(orders, sat.token);
        await introspect(billing, sat.token);
        await running.tessera.usage.flush();
        const got = await api('GET', `/tokens/${sat.id}`, adminPat);
        expect(got.body.use_count).toBeGreaterThanOrEqual(4);
        expect(got.body.last_used_at).not.toBeNull();
        expect(got.body.usage.map((u: { resource: string }) => u.resource).sort()).toEqual([orders.identifier, billing.identifier].sort());
      });

      it('stops answering once the token expires', async () => {
        const res = await issue(adminPat, { type: 'sat', service_account_id: account.id, scopes: ['orders:read'], resources: [orders.identifier], expires_in: 3600 });
        expect((await introspect(orders, res.body.token)).body.active).toBe(true);
        clock.advance(3601_000);
        expect((await introspect(orders, res.body.token)).body).toEqual({ active: false });
      });
    });

    describe('revocation', () => {
      it('DELETE /api/v1/tokens/{id} revokes at once, with its reason in the audit trail', async () => {
        const { body } = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier] });
        expect((await introspect(orders, body.token)).body.active).toBe(true);
        expect((await api('DELETE', `/tokens/${body.id}?reason=no+longer+needed`, memberPat)).status).toBe(204);
        expect((await introspect(orders, body.token)).body).toEqual({ active: false });
        expect((await api('GET', `/tokens/${body.id}`, memberPat)).body).toMatchObject({ state: 'revoked', revoked_reason: 'no longer needed' });
        expect(await auditActions(body.id)).toEqual(['token.issued', 'token.revoked:no longer needed']);
      });

      it('RFC 7009 revocation by the resource server revokes a PAT', async () => {
        const { body } = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier] });
        const res = await fetch(`${running.url}/token/revocation`, {
          method: 'POST',
          headers: { authorization: orders.basic, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: body.token }).toString(),
        });
        expect(res.status).toBe(200);
        expect((await introspect(orders, body.token)).body).toEqual({ active: false });
        expect(await auditActions(body.id)).toEqual(['token.issued', 'token.revoked:rfc7009']);
      });

      it('a member cannot see or revoke somebody else\'s token', async () => {
        const { body } = await issue(adminPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier] });
        expect((await api('GET', `/tokens/${body.id}`, memberPat)).status).toBe(404);
        expect((await api('DELETE', `/tokens/${body.id}`, memberPat)).status).toBe(404);
        expect((await introspect(orders, body.token)).body.active).toBe(true);
      });
    });

    describe('rotation', () => {
      it('returns a new secret; the old one works for the grace period, then its use revokes the family', async () => {
        const { body } = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier] });
        const rotated = await api('POST', `/tokens/${body.id}/rotate`, memberPat, {});
        expect(rotated.status).toBe(200);
        expect(rotated.body.id).toBe(body.id);
        expect(rotated.body.token).not.toBe(body.token);
        expect((await introspect(orders, rotated.body.token)).body.active).toBe(true);
        expect((await introspect(orders, body.token)).body.active).toBe(true);
        clock.advance(24 * 3600_000 + 1000);
        expect((await introspect(orders, body.token)).body).toEqual({ active: false });
        // Reuse of the replaced secret revoked the whole family: the new secret is dead too.
        await expect.poll(async () => (await introspect(orders, rotated.body.token)).body.active, { timeout: 3000 }).toBe(false);
        expect(await auditActions(body.id)).toEqual(['token.issued', 'token.rotated', 'token.reuse_detected', 'token.revoked:replaced_secret_reused']);
      });

      it('never extends the grace period past the token\'s expiry', async () => {
        const { body } = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 3600 });
        const rotated = await api('POST', `/tokens/${body.id}/rotate`, memberPat, {});
        expect(rotated.body.expires_at).toBe(body.expires_at);
        clock.advance(3601_000);
        expect((await introspect(orders, body.token)).body).toEqual({ active: false });
        expect((await introspect(orders, rotated.body.token)).body).toEqual({ active: false });
      });

      it('token pairs: the rotation key rotates once; a consumed key presented again revokes the family', async () => {
        const { body } = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 10 * 86400, pair: true });
        expect(body.rotation_key).toMatch(/^tsr_rk_/);
        expect(body.paired).toBe(true);
        // The key can do nothing else: not introspect, not call the API.
        expect((await introspect(orders, body.rotation_key)).body).toEqual({ active: false });
        expect((await api('GET', '/tokens', body.rotation_key)).status).toBe(401);
        // And the access secret cannot rotate itself through the pair endpoint.
        expect((await api('POST', '/tokens/rotate', body.token, {})).status).toBe(401);
        clock.advance(5 * DAY);
        const first = await api('POST', '/tokens/rotate', body.rotation_key, {});
        expect(first.status).toBe(200);
        expect(first.body.rotation_key).toMatch(/^tsr_rk_/);
        expect(first.body.rotation_key).not.toBe(body.rotation_key);
        // A fresh lifetime from the rotation (the cap counts from the original issue; see below).
        expect(new Date(first.body.expires_at).getTime() - new Date(body.expires_at).getTime()).toBe(5 * DAY);
        expect((await introspect(orders, first.body.token)).body.active).toBe(true);
        const replay = await api('POST', '/tokens/rotate', body.rotation_key, {});
        expect(replay.status).toBe(401);
        expect(replay.headers.get('www-authenticate')).toContain('invalid_token');
        expect((await introspect(orders, first.body.token)).body).toEqual({ active: false });
        expect((await api('POST', '/tokens/rotate', first.body.rotation_key, {})).status).toBe(401);
        expect(await auditActions(body.id)).toContain('token.revoked:rotation_key_reused');
      });

      it('token pairs: renewal is capped by the maximum lifetime counted from the original issue, unless the policy allows sliding renewal', async () => {
        const memberPat = await managementPat(running.tessera, orgId, member.id, ['tokens:read', 'tokens:write'], 7);
        await api('PATCH', '/organization', ownerToken, { policy: { max_pat_lifetime_days: 12 } });
        try {
          const fixed = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 10 * 86400, pair: true });
          await api('PATCH', '/organization', ownerToken, { policy: { token_pair_sliding_renewal: true } });
          const sliding = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 10 * 86400, pair: true });
          await api('PATCH', '/organization', ownerToken, { policy: { token_pair_sliding_renewal: false } });
          const issuedAt = new Date(fixed.body.created_at).getTime();
          clock.advance(5 * DAY);
          const capped = await api('POST', '/tokens/rotate', fixed.body.rotation_key, {});
          expect(capped.status).toBe(200);
          expect(new Date(capped.body.expires_at).getTime()).toBe(issuedAt + 12 * DAY);
          await api('PATCH', '/organization', ownerToken, { policy: { token_pair_sliding_renewal: true } });
          const renewed = await api('POST', '/tokens/rotate', sliding.body.rotation_key, {});
          expect(renewed.status).toBe(200);
          expect(new Date(renewed.body.expires_at).getTime()).toBe(clock.now() + 10 * DAY);
        } finally {
          await api('PATCH', '/organization', ownerToken, { policy: { token_pair_sliding_renewal: false, max_pat_lifetime_days: 90 } });
        }
      });
    });

    describe('ownership changes', () => {
      it('a deactivated user\'s PATs stop at once, at introspection and at the Management API', async () => {
        const user = await createUser(db, orgId, 'member');
        const pat = await managementPat(running.tessera, orgId, user.id, ['tokens:read']);
        const forOrders = await running.tessera.referenceTokenIssuer.issue({ organizationId: orgId, type: 'pat', name: 'x', userId: user.id, scopes: ['orders:read'], resources: [orders.identifier], expiresInSeconds: 86400, createdBy: 'test' });
        expect((await api('GET', '/tokens', pat)).status).toBe(200);
        expect((await introspect(orders, forOrders.token)).body.active).toBe(true);
        await db.query(`UPDATE users SET status = 'deactivated' WHERE id = $1`, [user.id]);
        await running.tessera.tokenService.ownerChanged(user.id);
        expect((await api('GET', '/tokens', pat)).status).toBe(401);
        expect((await introspect(orders, forOrders.token)).body).toEqual({ active: false });
      });

      it('a demoted user loses the now-excess scopes at once', async () => {
        const user = await createUser(db, orgId, 'admin');
        const pat = await managementPat(running.tessera, orgId, user.id, ['tokens:read', 'organization:read']);
        const sensitive = await running.tessera.referenceTokenIssuer.issue({ organizationId: orgId, type: 'pat', name: 'x', userId: user.id, scopes: ['secrets:read'], resources: [secrets.identifier], expiresInSeconds: 86400, createdBy: 'test' });
        expect((await api('GET', '/organization', pat)).status).toBe(200);
        expect((await introspect(secrets, sensitive.token)).body.scope).toBe('secrets:read');
        await db.query(`UPDATE users SET role = 'member' WHERE id = $1`, [user.id]);
        await running.tessera.tokenService.ownerChanged(user.id);
        expect((await api('GET', '/organization', pat)).status).toBe(403);
        expect((await api('GET', '/tokens', pat)).status).toBe(200);
        expect((await introspect(secrets, sensitive.token)).body).toMatchObject({ active: true, scope: '' });
      });

      it('a disabled service account\'s SATs stop at once', async () => {
        const sa = await createServiceAccount(db, orgId);
        const { body } = await issue(adminPat, { type: 'sat', service_account_id: sa.id, scopes: ['orders:read'], resources: [orders.identifier] });
        expect((await introspect(orders, body.token)).body.active).toBe(true);
        await db.query(`UPDATE service_accounts SET status = 'disabled' WHERE id = $1`, [sa.id]);
        await running.tessera.tokenService.ownerChanged(sa.id);
        expect((await introspect(orders, body.token)).body).toEqual({ active: false });
      });
    });

    describe('idle revocation and listing', () => {
      it('revokes tokens unused for the organization\'s idle limit, on one node at a time', async () => {
        await api('PATCH', '/organization', ownerToken, { policy: { idle_revocation_days: 2 } });
        try {
          const idle = await issue(memberPat, { type: 'pat', name: 'idle', scopes: ['orders:read'], resources: [orders.identifier] });
          const busy = await issue(memberPat, { type: 'pat', name: 'busy', scopes: ['orders:read'], resources: [orders.identifier] });
          clock.advance(1.5 * DAY);
          expect((await introspect(orders, busy.body.token)).body.active).toBe(true);
          // The suite's own management tokens are in use too.
          for (const t of [memberPat, adminPat, ownerToken]) expect((await api('GET', '/tokens?limit=1', t)).status).toBe(200);
          await running.tessera.usage.flush();
          clock.advance(1 * DAY);
          // Another holder of the lock makes this node skip the tick: here another session of
          // the server's pool holds it (src/storage/pg-database.ts checks out a connection per
          // lock). PostgreSQL only: PGlite is one process, and its advisory locks always succeed
          // (src/storage/pglite-database.ts), so there is no other holder to test against.
          if (backend.name === 'postgres+redis') {
            const ranWhileLocked = await db.withAdvisoryLock(0x74_6b_69_64, () => running.tessera.scheduler.runOnce({ name: 'idle', lockKey: 0x74_6b_69_64, intervalMs: 1, run: () => running.tessera.tokenService.revokeIdle().then(() => {}) }));
            expect(ranWhileLocked).toBe(false);
          }
          expect(await running.tessera.tokenService.revokeIdle()).toBeGreaterThanOrEqual(1);
          expect((await introspect(orders, idle.body.token)).body).toEqual({ active: false });
          expect((await introspect(orders, busy.body.token)).body.active).toBe(true);
          expect((await api('GET', `/tokens/${idle.body.id}`, memberPat)).body.revoked_reason).toBe('idle');
        } finally {
          await api('PATCH', '/organization', ownerToken, { policy: { idle_revocation_days: 90 } });
        }
      });

      it('records each expiry once in the audit trail, as a revocation with reason expired', async () => {
        const short = await issue(memberPat, { type: 'pat', name: 'short-lived', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 3600 });
        expect(short.status).toBe(201);
        await running.tessera.tokenService.recordExpiries();
        expect(await auditActions(short.body.id)).toEqual(['token.issued']);
        clock.advance(2 * 3600 * 1000);
        expect(await running.tessera.tokenService.recordExpiries()).toBeGreaterThanOrEqual(1);
        expect(await running.tessera.tokenService.recordExpiries()).toBe(0);
        expect(await auditActions(short.body.id)).toEqual(['token.issued', 'token.revoked:expired']);
        // The record changes nothing about the token itself: it is expired, not revoked.
        const { body } = await api('GET', `/tokens/${short.body.id}`, memberPat);
        expect(body.state).toBe('expired');
        expect(body.revoked_at).toBeNull();
      });

      it('lists with filters; a member sees only their own PATs', async () => {
        const mine = await api('GET', '/tokens?limit=1000', memberPat);
        expect(mine.status).toBe(200);
        expect(mine.body.items.length).toBeGreaterThan(0);
        expect(mine.body.items.every((t: { owner: { id: string } }) => t.owner.id === member.id)).toBe(true);
        expect((await api('GET', '/tokens?kind=sat', memberPat)).body.items).toEqual([]);
        await issue(adminPat, { type: 'sat', service_account_id: account.id, scopes: ['orders:read'], resources: [orders.identifier] });
        const sats = await api('GET', `/tokens?kind=sat&owner=${account.id}&state=active`, adminPat);
        expect(sats.body.items.length).toBeGreaterThan(0);
        expect(sats.body.items.every((t: { type: string; state: string }) => t.type === 'sat' && t.state === 'active')).toBe(true);
        const revoked = await api('GET', '/tokens?state=revoked&limit=1000', adminPat);
        expect(revoked.body.items.every((t: { state: string }) => t.state === 'revoked')).toBe(true);
        const soon = new Date(clock.now() + 2 * DAY).toISOString();
        const expiring = await api('GET', `/tokens?expiring_before=${encodeURIComponent(soon)}&state=active`, adminPat);
        expect(expiring.body.items).toEqual([]);
        const page1 = await api('GET', '/tokens?limit=2', adminPat);
        expect(page1.body.items).toHaveLength(2);
        const page2 = await api('GET', `/tokens?limit=2&cursor=${page1.body.next_cursor}`, adminPat);
        expect(page2.body.items[0].id).not.toBe(page1.body.items[0].id);
        expect((await api('GET', '/tokens?last_used_before=yesterday', adminPat)).status).toBe(422);
      });
    });

    describe('OpenAPI', () => {
      it('documents every /tokens route', async () => {
        const res = await fetch(`${running.url}/api/v1/openapi.json`);
        expect(res.status).toBe(200);
        const doc = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
        expect(Object.keys(doc.paths['/api/v1/tokens']!).sort()).toEqual(['get', 'post']);
        expect(Object.keys(doc.paths['/api/v1/tokens/{id}']!).sort()).toEqual(['delete', 'get']);
        expect(Object.keys(doc.paths['/api/v1/tokens/{id}/rotate']!)).toEqual(['post']);
        expect(Object.keys(doc.paths['/api/v1/tokens/rotate']!)).toEqual(['post']);
        expect(Object.keys(doc.paths['/api/v1/tokens/leaks']!)).toEqual(['post']);
      });
    });

    describe('leaked-token reports', () => {
      it('revokes a reported token, records it for its organization, and answers the same whatever was sent', async () => {
        const { body } = await issue(memberPat, { type: 'pat', scopes: ['orders:read'], resources: [orders.identifier] });
        const real = await api('POST', '/tokens/leaks', undefined, { tokens: [body.token] });
        const garbage = await api('POST', '/tokens/leaks', undefined, { tokens: ['tsr_pat_not-a-token'] });
        expect(real.status).toBe(202);
        expect(garbage.status).toBe(202);
        expect(real.body).toEqual(garbage.body);
        await expect.poll(async () => (await introspect(orders, body.token)).body.active, { timeout: 3000 }).toBe(false);
        await expect.poll(() => auditActions(body.id), { timeout: 3000 }).toEqual(['token.issued', 'token.leak_reported', 'token.revoked:leaked']);
      });

      it('is rate-limited with 429 and Retry-After', async () => {
        let limited: Awaited<ReturnType<typeof api>> | undefined;
        for (let i = 0; i < 12 && !limited; i += 1) {
          const res = await api('POST', '/tokens/leaks', undefined, { tokens: ['x'] });
          if (res.status === 429) limited = res;
          else expect(res.status).toBe(202);
        }
        expect(limited?.status).toBe(429);
        expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThan(0);
      });
    });
  });
}

// PostgreSQL + Redis is left out of `backends` locally when unreachable (with a message), and
// required under CI (test/helpers/backends.ts).
for (const backend of backends) lifecycleSuite(backend);
