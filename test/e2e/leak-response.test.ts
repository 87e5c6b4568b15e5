/**
 * Leak response that works with the world's scanners (docs/leaked-tokens.md), on every backend:
 * GitHub's secret-scanning partner reports (ECDSA P-256 signatures over the raw body, keys fetched
 * from a configurable URL through the outbound guard, cached, fetched again once for an unknown
 * key), the public batch revocation of up to 1,000 strings, and the checksum that keeps garbage
 * away from storage. A small HTTP server on 127.0.0.1 plays GitHub's key list; the operator
 * allows that address with TESSERA_OUTBOUND_ALLOWED_HOSTS, as they would for an internal mirror.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { newId } from '../../src/storage/ids.js';
import { generateToken, hashToken } from '../../src/tokens/format.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { clientCredentials, createClient, createOrganization, introspect } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const START_TIMEOUT_MS = 180_000;

interface SigningKey {
  id: string;
  privateKey: KeyObject;
  pem: string;
}

function signingKey(id: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { id, privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** GitHub's key list, served from 127.0.0.1; counts how often Tessera fetched it. */
async function keyList(keys: SigningKey[]) {
  const state = { keys, fetches: 0 };
  const server: Server = createServer((req, res) => {
    state.fetches += 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ public_keys: state.keys.map((k, i) => ({ key_identifier: k.id, key: k.pem, is_current: i === 0 })) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { state, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/meta/public_keys/secret_scanning`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

for (const backend of backends) {
  describe(`leak response on ${backend.name}`, () => {
    const clock = createTestClock();
    const k1 = signingKey('k1');
    const k2 = signingKey('k2');
    let keys: Awaited<ReturnType<typeof keyList>>;
    let server: TestServer;
    let org: string;
    let userId: string;

    beforeAll(async () => {
      keys = await keyList([k1]);
      server = await startTestServer(backend.name, {
        clock,
        overrides: { ...EXAMPLE_SEED, leakScanning: { github: { keysUrl: keys.url, keysCacheSeconds: 3600, refetchIntervalSeconds: 60, replayWindowSeconds: 86400 } } },
        env: { TESSERA_OUTBOUND_ALLOWED_HOSTS: '127.0.0.1' },
      });
      org = server.bootstrap.organization_id;
      const user = await server.tessera.repos.users.insert({ id: newId('usr'), organization_id: org, username: `dev-${Date.now()}`, email: null, name: null, role: 'member', password_hash: null });
      userId = user.id;
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
      await keys?.close();
    });

    const pat = async (name = 'ci') =>
      server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'pat', name, userId, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 30 * 86400, createdBy: 'test', pair: true });

    const ordersRs = (token: string) => introspect(server, 'orders-rs', 'orders-rs-secret-0123456789', token);

    /** POSTs a report to the partner endpoint, signed by `key` (under `keyId`, by default its own). */
    async function report(body: string | Buffer, key: SigningKey, options: { keyId?: string; signature?: string } = {}) {
      const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
      const signature = options.signature ?? sign('sha256', bytes, { key: key.privateKey, dsaEncoding: 'der' }).toString('base64');
      const response = await fetch(`${server.url}/api/v1/tokens/leaks/github`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'github-public-key-identifier': options.keyId ?? key.id, 'github-public-key-signature': signature },
        body: new Uint8Array(bytes),
      });
      const text = await response.text();
      return { status: response.status, type: response.headers.get('content-type') ?? '', json: text ? JSON.parse(text) : undefined, text };
    }

    const match = (token: string, extra: Record<string, string> = {}) => ({ token, type: 'tessera_personal_access_token', url: 'https://github.com/octo/repo/blob/abc/config.yml', source: 'Content', ...extra });

    const auditOf = async (tokenId: string) => {
      await server.tessera.audit.flush();
      const rows = await server.tessera.auditRepository.list({ organizationId: org, targetId: tokenId, limit: 100 });
      return rows.map((r) => ({ action: r.action, details: r.details, actor: r.actor_name }));
    };
    const revokedReason = async (id: string) =>
      (await server.tessera.db.query<{ revoked_reason: string | null }>('SELECT revoked_reason FROM reference_tokens WHERE id = $1', [id])).rows[0]!.revoked_reason;

    describe('GitHub secret-scanning partner reports', () => {
      it('revokes what Tessera holds, tells the organization, and labels the rest as false positives', async () => {
        const leaked = await pat('leaked');
        const byKey = await pat('leaked-rotation-key');
        expect((await ordersRs(leaked.token)).body.active).toBe(true);
        const unknown = generateToken('pat');
        const garbage = 'tsr_pat_thisIsNotATesseraTokenAtAll000000000000000_abcdef';
        const body = JSON.stringify([match(leaked.token), match(unknown, { url: '' }), match(garbage, { source: 'COMMIT' }), match(byKey.rotationKey!, { type: 'tessera_rotation_key' })]);
        const answer = await report(body, k1);
        expect(answer.status, answer.text).toBe(200);
        expect(answer.json).toEqual([
          { token_hash: hashToken(unknown).toString('hex'), token_type: 'tessera_personal_access_token', label: 'false_positive' },
          { token_hash: hashToken(garbage).toString('hex'), token_type: 'tessera_personal_access_token', label: 'false_positive' },
        ]);
        // Revoked before the answer, on this node and in storage.
        expect((await ordersRs(leaked.token)).body.active).toBe(false);
        expect((await ordersRs(byKey.token)).body.active).toBe(false);
        expect(await revokedReason(leaked.row.id)).toBe('leaked');
        expect(await revokedReason(byKey.row.id)).toBe('leaked');
        const trail = await auditOf(leaked.row.id);
        expect(trail.map((e) => e.action)).toEqual(['token.leak_reported', 'token.revoked']);
        expect(trail[0]).toMatchObject({ actor: 'GitHub secret scanning', details: { reporter: 'github', credential: 'token', already_revoked: false, url: 'https://github.com/octo/repo/blob/abc/config.yml', location: 'content' } });
        expect(trail[1]!.details).toEqual({ reason: 'leaked' });
        expect((await auditOf(byKey.row.id))[0]!.details).toMatchObject({ credential: 'rotation_key' });
        expect(keys.state.fetches).toBe(1);
      });

      it('refuses a replayed report with 409 and changes nothing', async () => {
        const leaked = await pat();
        const body = JSON.stringify([match(leaked.token)]);
        expect((await report(body, k1)).status).toBe(200);
        await server.tessera.audit.flush();
        const before = (await auditOf(leaked.row.id)).length;
        const replay = await report(body, k1);
        expect(replay.status).toBe(409);
        expect(replay.type).toContain('application/problem+json');
        expect((await auditOf(leaked.row.id)).length).toBe(before);
      });

      it('refuses forged reports with 400 and revokes nothing', async () => {
        const target = await pat('target');
        const body = JSON.stringify([match(target.token)]);
        const forger = signingKey('k1');
        const cases = [
          await report(body, forger), // signed by someone else under GitHub's key id
          await report(body, k1, { signature: sign('sha256', Buffer.from(`${body} `), { key: k1.privateKey, dsaEncoding: 'der' }).toString('base64') }), // a signature of other bytes
          await report(body, k1, { signature: 'not base64 at all!' }),
          await report(body, k1, { keyId: '' }),
        ];
        for (const answer of cases) {
          expect(answer.status, answer.text).toBe(400);
          expect(answer.type).toContain('application/problem+json');
        }
        expect((await ordersRs(target.token)).body.active).toBe(true);
        expect(await revokedReason(target.row.id)).toBeNull();
      });

      it('fetches the key list again once for an unknown key id, and picks up a rotated-in key', async () => {
        const target = await pat('rotation');
        const body = JSON.stringify([match(target.token)]);
        const fetchesBefore = keys.state.fetches;
        // Signed by k2, which GitHub has not published yet: unknown, after one more fetch.
        clock.advance(61_000);
        expect((await report(body, k2)).status).toBe(400);
        expect(keys.state.fetches).toBe(fetchesBefore + 1);
        // Another unknown id at once does not make Tessera fetch again.
        expect((await report(body, k2, { keyId: 'made-up' })).status).toBe(400);
        expect(keys.state.fetches).toBe(fetchesBefore + 1);
        // GitHub publishes k2; a minute later the next report signed with it is verified.
        keys.state.keys = [k2, k1];
        clock.advance(61_000);
        const answer = await report(body, k2);
        expect(answer.status, answer.text).toBe(200);
        expect(keys.state.fetches).toBe(fetchesBefore + 2);
        expect(await revokedReason(target.row.id)).toBe('leaked');
      });

      it('answers bad input with a clear 4xx: 10 MB, malformed JSON, 1,001 matches, a wrong shape', async () => {
        const huge = Buffer.alloc(10 * 1024 * 1024, 0x20);
        const tooLarge = await report(huge, k1);
        expect(tooLarge.status).toBe(413);
        expect(tooLarge.type).toContain('application/problem+json');
        const malformed = await report('[{"token": ', k1);
        expect(malformed.status).toBe(400);
        expect(malformed.json.detail).toContain('not valid JSON');
        const many = await report(JSON.stringify(Array.from({ length: 1001 }, () => match(generateToken('pat')))), k1);
        expect(many.status).toBe(422);
        const shape = await report(JSON.stringify({ token: 'x' }), k1);
        expect(shape.status).toBe(422);
        const unsigned = await fetch(`${server.url}/api/v1/tokens/leaks/github`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' });
        expect(unsigned.status).toBe(400);
      });

      it('answers 1,000 matches within seconds, every held token revoked', async () => {
        const issued = [];
        for (let i = 0; i < 500; i += 1) issued.push(await pat(`bulk-${i}`));
        const strings = [...issued.map((t) => t.token), ...Array.from({ length: 500 }, () => generateToken('sat'))];
        const started = performance.now();
        const answer = await report(JSON.stringify(strings.map((s) => match(s))), k1);
        const elapsed = performance.now() - started;
        expect(answer.status, answer.text).toBe(200);
        expect(answer.json).toHaveLength(500);
        expect(elapsed).toBeLessThan(5000);
        const { rows } = await server.tessera.db.query<{ n: string }>("SELECT count(*) AS n FROM reference_tokens WHERE id = ANY($1::text[]) AND revoked_reason = 'leaked'", [issued.map((t) => t.row.id)]);
        expect(Number(rows[0]!.n)).toBe(500);
      }, 120_000);
    });

    describe('public batch revocation', () => {
      const post = (body: unknown) => fetch(`${server.url}/api/v1/tokens/leaks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

      it('takes up to 1,000 strings, answers the same whatever they are, and revokes the ones held', async () => {
        const leaked = await pat('public');
        const strings = [leaked.token, ...Array.from({ length: 999 }, () => generateToken('pat'))];
        const real = await post({ tokens: strings });
        const garbage = await post({ tokens: ['nothing', 'tsr_pat_x'] });
        expect(real.status).toBe(202);
        expect(garbage.status).toBe(202);
        expect(await real.text()).toBe(await garbage.text());
        await expect.poll(async () => (await ordersRs(leaked.token)).body.active, { timeout: 5000 }).toBe(false);
        await expect.poll(async () => (await auditOf(leaked.row.id)).map((e) => e.action), { timeout: 5000 }).toEqual(['token.leak_reported', 'token.revoked']);
        expect((await auditOf(leaked.row.id))[0]!.details).toMatchObject({ reporter: 'public' });
      });

      it('refuses 1,001 strings with a 422 problem and revokes nothing', async () => {
        const leaked = await pat('too-many');
        const response = await post({ tokens: [leaked.token, ...Array.from({ length: 1000 }, () => 'x')] });
        expect(response.status).toBe(422);
        expect(response.headers.get('content-type')).toContain('application/problem+json');
        expect(await revokedReason(leaked.row.id)).toBeNull();
      });

      it('drops strings whose checksum fails before any storage lookup', async () => {
        const statements: string[] = [];
        const db = server.tessera.db;
        const query = db.query.bind(db);
        (db as { query: typeof db.query }).query = (async (text: string, params?: readonly unknown[]) => {
          if (text.includes('reference_tokens')) statements.push(text);
          return query(text, params);
        }) as typeof db.query;
        try {
          const valid = generateToken('pat');
          // Same shape, one character changed: the checksum no longer matches.
          const broken = Array.from({ length: 1000 }, () => {
            const t = generateToken('pat');
            return `${t.slice(0, 10)}${t[10] === 'a' ? 'b' : 'a'}${t.slice(11)}`;
          });
          await server.tessera.tokenService.reportLeaks(broken.map((token) => ({ token })), { source: 'public', facts: {} });
          expect(statements).toEqual([]);
          await server.tessera.tokenService.reportLeaks([...broken, valid].map((token) => ({ token })), { source: 'public', facts: {} });
          expect(statements).toHaveLength(1);
        } finally {
          (db as { query: typeof db.query }).query = query;
        }
      });
    });

    describe('identifying a raw string', () => {
      const identify = (token: string, body: Record<string, unknown>, bearer = server.managementToken) => api(server, bearer, 'POST', '/tokens/identify', body);

      it('tells an administrator whose PAT, rotation key or previous secret it is, and ends it with revoke: true', async () => {
        const found = await pat('found-in-a-log');
        const answer = await identify(found.token, { token: found.token });
        expect(answer.status, answer.text).toBe(200);
        expect(answer.body).toMatchObject({
          kind: 'pat',
          id: found.row.id,
          matched: 'current_secret',
          name: 'found-in-a-log',
          owner: { type: 'user', id: userId, status: 'active' },
          scopes: ['orders:read'],
          resources: ['https://orders.test'],
          state: 'active',
          revoked: false,
        });
        expect(answer.body.risk_score).toEqual(expect.any(Number));
        expect((await identify(found.rotationKey!, { token: found.rotationKey })).body).toMatchObject({ kind: 'rotation_key', id: found.row.id, matched: 'rotation_key' });
        const ended = await identify(found.token, { token: found.token, revoke: true });
        expect(ended.status).toBe(200);
        expect(ended.body).toMatchObject({ state: 'revoked', revoked: true });
        expect((await ordersRs(found.token)).body.active).toBe(false);
        expect(await revokedReason(found.row.id)).toBe('leaked');
        expect((await auditOf(found.row.id)).map((e) => e.action)).toEqual(['credential.identified', 'credential.identified', 'token.revoked', 'credential.identified']);
      });

      it('lists the addresses the audit trail saw for the credential', async () => {
        const leaked = await pat('reported');
        await fetch(`${server.url}/api/v1/tokens/leaks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: [leaked.token] }) });
        await expect.poll(async () => revokedReason(leaked.row.id), { timeout: 5000 }).toBe('leaked');
        await server.tessera.audit.flush();
        const answer = await identify(leaked.token, { token: leaked.token });
        expect(answer.body).toMatchObject({ state: 'revoked', risk_score: null, revoked: false });
        expect(answer.body.addresses).toHaveLength(1);
        expect(answer.body.addresses[0].ip).toMatch(/(^|:)127\.0\.0\.1$/);
      });

      it('identifies a client secret of the organization and replaces it with revoke: true', async () => {
        const client = await createClient(server, server.managementToken, { token_endpoint_auth_method: 'client_secret_basic', scopes: ['orders:read'], resources: ['https://orders.test'] });
        expect((await clientCredentials(server, client.client_id, client.client_secret, { resource: 'https://orders.test' })).status).toBe(200);
        const answer = await identify(client.client_secret, { token: client.client_secret });
        expect(answer.status, answer.text).toBe(200);
        expect(answer.body).toMatchObject({ kind: 'client_secret', id: client.client_id, matched: 'current_secret', scopes: ['orders:read'], state: 'active' });
        const ended = await identify(client.client_secret, { token: client.client_secret, revoke: true });
        expect(ended.body).toMatchObject({ kind: 'client_secret', revoked: true });
        expect((await clientCredentials(server, client.client_id, client.client_secret, { resource: 'https://orders.test' })).status).toBe(401);
        await server.tessera.audit.flush();
        const rows = await server.tessera.auditRepository.list({ organizationId: org, targetId: client.client_id, action: 'client.secret_revoked', limit: 10 });
        expect(rows).toHaveLength(1);
      });

      it('answers 404 for garbage, unknown strings and another organization\'s credentials, 403 for a non-administrator', async () => {
        const found = await pat('not-yours');
        const other = await createOrganization(server, server.managementToken);
        for (const [token, bearer] of [
          ['tsr_pat_garbage', server.managementToken],
          [generateToken('sat'), server.managementToken],
          ['some-random-client-secret-that-nobody-has', server.managementToken],
          [found.token, other.managementToken],
        ] as const) {
          const answer = await identify(token, { token }, bearer);
          expect(answer.status, token).toBe(404);
          expect(answer.headers.get('content-type')).toContain('application/problem+json');
        }
        const member = await server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'pat', name: 'member', userId, scopes: ['tokens:read', 'tokens:write'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 86400, createdBy: 'test' });
        const refused = await identify(found.token, { token: found.token }, member.token);
        expect(refused.status).toBe(403);
        expect(refused.body.missing_authority).toEqual(['role:admin']);
        expect((await ordersRs(found.token)).body.active).toBe(true);
        expect((await identify('x', { token: 'x', revoke: 'yes' })).status).toBe(422);
      });
    });

    it('documents both endpoints in the OpenAPI document', async () => {
      const document = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
      expect(document.paths['/api/v1/tokens/leaks/github'].post.security).toEqual([]);
      expect(document.paths['/api/v1/tokens/leaks/github'].post.responses['409']).toBeDefined();
      expect(document.paths['/api/v1/tokens/identify'].post.security).toEqual([{ bearer: ['tokens:read'] }]);
      expect(document.paths['/api/v1/tokens/leaks'].post.requestBody.content['application/json'].schema.properties.tokens.maxItems).toBe(1000);
    });
  });
}
