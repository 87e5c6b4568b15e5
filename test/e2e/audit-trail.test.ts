/**
 * The audit trail end to end, on every backend, against a real running Tessera: the events
 * that token issuance, RFC 7009 revocation, failed client authentication and Management API
 * changes leave; secrets that never reach a row or a log line; the API's filters, cursors and
 * refusals; and the Prometheus metrics. The hash chain and retention: integration/audit-chain.
 */

import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { secretContext } from '../../src/domain/client-metadata.js';
import { encodeCursor } from '../../src/management/pagination.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { addUser, browserless, CALLBACK, SIGN_IN_SEED, signIn } from '../helpers/sign-in.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const DAY = 86_400_000;

// Values planted in requests; none may appear in an audit row or a log line.
const PLANTED = {
  clientSecret: 'planted-client-secret-7f3a9c1e55d2',
  basicSecret: 'planted-basic-secret-0b8e4d2a7c61',
  token: 'tsr_sat_PLANTEDtokenValue0123456789abcdefghijklmno_0AbCdE',
  password: 'planted-password-Zq81kLm2',
};

/** Starting storage (PGlite initializes a fresh data directory in WASM) is slow on a busy two-core machine. */
const START_TIMEOUT_MS = 180_000;

for (const backend of backends) {
  describe(`audit trail on ${backend.name}`, () => {
    let server: TestServer;
    let org: string;
    const clock = createTestClock();
    let worker: client.Configuration;
    let ordersRs: client.Configuration;

    const configure = (id: string, secret: string) =>
      client.discovery(new URL(server.url), id, undefined, client.ClientSecretBasic(secret), { execute: [client.allowInsecureRequests] });

    /** Waits until the writer has written what was recorded (failed-auth events are recorded a moment after the answer). */
    const settle = async () => {
      await new Promise((r) => setTimeout(r, 50));
      await server.tessera.audit.flush();
    };
    const events = async (query: string) => {
      const response = await api(server, server.managementToken, 'GET', `/audit-events?${query}`);
      expect(response.status, response.text).toBe(200);
      return response.body.items as any[];
    };

    beforeAll(async () => {
      // The machine client and APIs of the example seed, plus the sign-in tests' interactive clients.
      const seed = { seed: { resourceServers: EXAMPLE_SEED.seed.resourceServers, clients: [...EXAMPLE_SEED.seed.clients, ...SIGN_IN_SEED.seed.clients] } };
      server = await startTestServer(backend.name, { overrides: seed, clock, logLevel: 'debug' });
      org = server.bootstrap.organization_id;
      worker = await configure('worker', 'worker-secret-0123456789abcdef');
      ordersRs = await configure('orders-rs', 'orders-rs-secret-0123456789');
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it('records a client-credentials token with grant type, client, audience and scopes', async () => {
      await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      await settle();
      const [event] = await events('action=token.issued&actor=worker');
      expect(event).toMatchObject({
        actor: { type: 'client', id: 'worker' },
        target: { type: 'client', id: 'worker' },
        outcome: 'success',
        details: { grant_type: 'client_credentials', client_id: 'worker', audience: 'https://orders.test', scope: 'orders:read', token_format: 'jwt' },
      });
      expect(event.request_id).toBeTruthy();
      expect(event.ip).toBeTruthy();
    });

    it('records an RFC 7009 revocation: by which client, and why', async () => {
      const { access_token } = await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      await client.tokenRevocation(ordersRs, access_token);
      await settle();
      const revoked = await events('action=token.revoked');
      expect(revoked).toHaveLength(1);
      expect(revoked[0]).toMatchObject({ actor: { type: 'client', id: 'orders-rs' }, outcome: 'success', details: { reason: 'rfc7009', token_kind: 'access_token' } });
      expect(revoked[0].target.id).toBeTruthy();
    });

    it('records failed client authentication at the token and introspection endpoints, in the client\'s organization', async () => {
      const post = (path: string, body: URLSearchParams, headers: Record<string, string> = {}) =>
        fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
      const atToken = await post('/token', new URLSearchParams({ grant_type: 'client_credentials', client_id: 'worker', client_secret: PLANTED.clientSecret }));
      expect(atToken.status).toBe(401);
      const atIntrospection = await post('/token/introspection', new URLSearchParams({ token: PLANTED.token }), {
        authorization: `Basic ${Buffer.from(`orders-rs:${PLANTED.basicSecret}`).toString('base64')}`,
      });
      expect(atIntrospection.status).toBe(401);
      await settle();
      const failed = await events('action=client.authentication_failed&outcome=failure');
      expect(failed.map((e) => e.actor.id).sort()).toEqual(['orders-rs', 'worker']);
      expect(failed.every((e) => e.outcome === 'failure')).toBe(true);
      expect(failed.find((e) => e.actor.id === 'orders-rs')!.details.endpoint).toBe('/token/introspection');
    });

    it('flags a replaced client secret presented after its grace period', async () => {
      const old = 'orders-rs-previous-secret-0123456789';
      const { envelope, db, clients } = server.tessera;
      await db.query("UPDATE clients SET previous_secret_enc = $1, previous_secret_expires_at = $2 WHERE client_id = 'orders-rs'", [envelope.seal(old, secretContext('orders-rs', 'previous')), new Date(clock.now() - 1000)]);
      clients.invalidate('orders-rs');
      const response = await fetch(`${server.url}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`orders-rs:${old}`).toString('base64')}` },
        // A token Tessera answers for itself (an unknown opaque value goes to the engine, whose client authentication is its own).
        body: new URLSearchParams({ token: PLANTED.token }),
      });
      expect(response.status).toBe(401);
      await settle();
      const [event] = await events('action=client.replaced_secret_presented');
      expect(event).toMatchObject({ actor: { type: 'client', id: 'orders-rs' }, target: { type: 'client', id: 'orders-rs' }, outcome: 'failure' });
      expect(JSON.stringify(event)).not.toContain(old);
      await db.query("UPDATE clients SET previous_secret_enc = NULL, previous_secret_expires_at = NULL WHERE client_id = 'orders-rs'");
      clients.invalidate('orders-rs');
    });

    it('records a Management API change with a before/after diff of only the fields that changed', async () => {
      const response = await api(server, server.managementToken, 'PATCH', '/organization', { name: 'acme', policy: { idle_revocation_days: 30 } });
      expect(response.status, response.text).toBe(200);
      await settle();
      const [event] = await events(`action=organization.updated&target=${org}`);
      expect(event.actor).toMatchObject({ type: 'service_account' });
      expect(event.details.changes).toEqual({ name: { before: 'default', after: 'acme' }, idle_revocation_days: { before: null, after: 30 } });
    });

    it('records sign-ins that fail and succeed, the code exchange and a refresh, and counts them', async () => {
      const password = 'lena-correct-password-42';
      const userId = await addUser(server, { username: 'lena', password });
      const web = await client.discovery(new URL(server.url), 'web-public', undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const authorization = async () => {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const url = client.buildAuthorizationUrl(web, { redirect_uri: CALLBACK, scope: 'openid offline_access', prompt: 'consent', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
        return { url, verifier, state };
      };
      await expect(signIn(browserless(server), (await authorization()).url.href, 'lena', PLANTED.password)).rejects.toThrow(/login failed/);
      const request = await authorization();
      const { callback } = await signIn(browserless(server), request.url.href, 'lena', password);
      const tokens = await client.authorizationCodeGrant(web, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state });
      expect(tokens.refresh_token).toBeTruthy();
      await client.refreshTokenGrant(web, tokens.refresh_token!);
      await settle();

      expect(await events('action=login.failed&actor=lena')).toHaveLength(0);
      const failed = (await events('action=login.failed')).filter((e) => e.details.reason === 'wrong_credentials');
      expect(failed.length).toBeGreaterThanOrEqual(1);
      expect(await events(`action=login.succeeded&actor=${userId}`)).toHaveLength(1);
      const [code] = await events(`action=token.issued&actor=${userId}`);
      expect(code.details).toMatchObject({ grant_type: 'authorization_code', client_id: 'web-public', refresh_token_issued: true, id_token_issued: true });
      const [refreshed] = await events(`action=token.refreshed&actor=${userId}`);
      expect(refreshed.details).toMatchObject({ grant_type: 'refresh_token', client_id: 'web-public', refresh_token_issued: true });

      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toMatch(/^tessera_logins_total\{outcome="success"\} 1$/m);
      expect(text).toMatch(/^tessera_logins_total\{outcome="failure"\} [1-9]/m);
      expect(text).toMatch(/^tessera_tokens_issued_total\{grant_type="authorization_code",kind="refresh_token"\} 1$/m);
      expect(text).toMatch(/^tessera_tokens_issued_total\{grant_type="refresh_token",kind="access_token"\} 1$/m);
    });

    it('never writes a planted secret into an audit row or a log line', async () => {
      // More places a secret could leak from: a rejected body, and a Bearer token that is not one.
      const rejected = await fetch(`${server.url}/api/v1/organization`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${server.managementToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'acme', password: PLANTED.password }),
      });
      expect(rejected.status).toBe(422);
      expect((await api(server, PLANTED.token, 'GET', '/organization')).status).toBe(401);
      await settle();

      const { rows } = await server.tessera.db.query('SELECT * FROM audit_events');
      const everything = JSON.stringify(rows);
      // The failed attempts are there, so the rows were written, without what was presented.
      expect(everything).toContain('client.authentication_failed');
      expect(server.logs.join('\n')).toContain('/token/introspection');
      for (const secret of [...Object.values(PLANTED), server.managementToken, 'worker-secret-0123456789abcdef']) {
        expect(everything).not.toContain(secret);
        expect(server.logs.join('\n')).not.toContain(secret);
      }
    });

    it('filters by time range, actor, action, target and outcome, and pages with a cursor', async () => {
      const all = await events('limit=1000');
      expect(all.length).toBeGreaterThanOrEqual(6);
      expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((a, b) => a - b));

      const pages: any[] = [];
      let cursor: string | null = null;
      do {
        const response: any = await api(server, server.managementToken, 'GET', `/audit-events?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(response.status).toBe(200);
        expect(response.body.items.length).toBeLessThanOrEqual(2);
        pages.push(...response.body.items);
        cursor = response.body.next_cursor;
      } while (cursor);
      expect(pages.map((e) => e.seq)).toEqual(all.map((e) => e.seq));

      expect((await events('outcome=failure&action=client.authentication_failed')).length).toBe(2);
      expect((await events('actor=orders-rs&action=token.revoked')).length).toBe(1);
      expect((await events('target=worker')).every((e) => e.target.id === 'worker')).toBe(true);
      const now = clock.now();
      expect((await events(`from=${new Date(now - 60_000).toISOString()}&to=${new Date(now + 60_000).toISOString()}`)).length).toBe(all.length);
      expect(await events(`from=${new Date(now - 2 * DAY).toISOString()}&to=${new Date(now - DAY).toISOString()}`)).toEqual([]);
    });

    it('answers bad input with a 400 problem+json that says what is wrong', async () => {
      const now = clock.now();
      const cases: [string, string][] = [
        [`from=${new Date(now).toISOString()}&to=${new Date(now - 1000).toISOString()}`, 'from'],
        [`from=1970-01-01T00:00:00Z`, 'from'],
        [`to=2999-01-01T00:00:00Z`, 'to'],
        ['from=yesterday', 'from'],
        ['cursor=not-a-cursor', 'cursor'],
        [`cursor=${encodeCursor('org_someone_else', { k: '1', id: '' })}`, 'cursor'],
        [`cursor=${encodeCursor(org, { k: 'abc', id: '' })}`, 'cursor'],
        ['format=xml', 'format'],
        ['outcome=failure', 'outcome'],
        ['actor=*', 'actor'],
        ['actor=', 'actor'],
        ['limit=1001', 'limit'],
        ['limit=0', 'limit'],
        ['colour=blue', 'colour'],
      ];
      for (const [query, field] of cases) {
        const response = await api(server, server.managementToken, 'GET', `/audit-events?${query}`);
        expect(response.status, query).toBe(400);
        expect(response.headers.get('content-type'), query).toContain('application/problem+json');
        expect(response.body.detail, query).toContain(field);
      }
    });

    it('streams JSON Lines for export, with the same filters', async () => {
      const response = await fetch(`${server.url}/api/v1/audit-events?format=jsonl&action=token.issued`, { headers: { authorization: `Bearer ${server.managementToken}` } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/x-ndjson');
      const lines = (await response.text()).trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.length).toBeGreaterThanOrEqual(2);
      expect(lines.every((l) => l.action === 'token.issued')).toBe(true);
    });

    it('exposes Prometheus metrics without organization labels', async () => {
      const { access_token } = await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      await client.tokenIntrospection(ordersRs, access_token);
      await client.tokenIntrospection(ordersRs, 'tsr_sat_NotAToken');
      await settle();
      const response = await fetch(`${server.url}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/plain');
      const text = await response.text();
      const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      expect(value('tessera_tokens_issued_total{grant_type="client_credentials",kind="access_token"}')).toBeGreaterThanOrEqual(3);
      expect(value('tessera_introspections_total{result="active",kind="jwt"}')).toBeGreaterThanOrEqual(1);
      expect(value('tessera_introspections_total{result="inactive",kind="sat"}')).toBeGreaterThanOrEqual(1);
      expect(value('tessera_introspection_duration_seconds_count{kind="jwt"}')).toBeGreaterThanOrEqual(1);
      expect(value('tessera_tokens_revoked_total{reason="rfc7009",kind="access_token"}')).toBe(1);
      expect(value('tessera_audit_batches_written_total')).toBeGreaterThanOrEqual(1);
      expect(value('tessera_audit_rows_written_total')).toBeGreaterThanOrEqual(6);
      expect(value('tessera_audit_rows_lost_total')).toBe(0);
      expect(text).toContain('tessera_audit_queue_depth');
      expect(text).not.toContain('organization=');
      expect(text).not.toContain(org);
    });
  });
}
