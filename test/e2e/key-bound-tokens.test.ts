/**
 * Key-bound PATs and SATs (docs/tokens.md, "Key-bound PATs and SATs"), on every backend: a token
 * created with `cnf.jkt` is active at introspection only when the resource server passes the
 * thumbprint of the DPoP key it verified (`dpop_jkt`), on the fast path and the Koa path, first
 * and cached; its answer says `token_type: DPoP` and `cnf`; rotation keeps the binding; the
 * Management API shows it (token, inventory, audit) and refuses such a token as a bearer token;
 * token exchange needs a proof of its key. A bearer token is unaffected by `dpop_jkt`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { newId } from '../../src/storage/ids.js';
import { backends } from '../helpers/backends.js';
import { ACCESS_TOKEN_TYPE, basic, EXCHANGE_GRANT, EXCHANGER, exchangerClient, ORDERS, postForm, proof, proofKey, seedWith } from '../helpers/exchange.js';
import type { ProofKey } from '../helpers/exchange.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';

const ORDERS_RS = basic('orders-rs', 'orders-rs-secret-0123456789');
const EXCHANGER_BASIC = basic(EXCHANGER.id, EXCHANGER.secret);
/** Asks for JSON but names the JWT answer: the fast path hands such a request to Koa (src/tokens/introspection-fast-path.ts). */
const VIA_KOA = { accept: 'application/json, application/token-introspection+jwt;q=0' };

for (const backend of backends) {
  describe(`key-bound PATs and SATs on ${backend.name}`, () => {
    let server: TestServer;
    let accountId: string;
    /** A member's Management API PAT: what issues and rotates PATs for her. */
    let alicePat: string;
    let key: ProofKey;
    let otherKey: ProofKey;

    const introspect = async (token: string, extra: Record<string, string> = {}, koa = false) => {
      const answer = await postForm(server.url, '/token/introspection', { token, ...extra }, { authorization: ORDERS_RS, ...(koa ? VIA_KOA : {}) });
      return answer;
    };
    const fastPathAnswered = () => server.tessera.fastPathStats.answered;
    /** Introspects on the fast path (and insists it answered) and on the Koa path; both answers must agree. */
    async function onBothPaths(token: string, extra: Record<string, string> = {}) {
      const before = fastPathAnswered();
      const fast = await introspect(token, extra);
      expect(fastPathAnswered(), 'answered by the fast path').toBe(before + 1);
      const koa = await introspect(token, extra, true);
      expect(fastPathAnswered(), 'answered by Koa').toBe(before + 1);
      expect(koa.status).toBe(fast.status);
      // `expires_in` counts seconds to `exp` at the time of each answer: a second may turn between the two.
      const { expires_in: koaExpiresIn, ...koaRest } = koa.body as { expires_in?: number };
      const { expires_in: fastExpiresIn, ...fastRest } = fast.body as { expires_in?: number };
      expect(koaRest).toEqual(fastRest);
      expect(Math.abs((koaExpiresIn ?? 0) - (fastExpiresIn ?? 0))).toBeLessThanOrEqual(1);
      expect(koaExpiresIn === undefined).toBe(fastExpiresIn === undefined);
      return fast.body;
    }
    const issueSat = (extra: Record<string, unknown>, resources = [ORDERS]) =>
      api(server, server.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: accountId, name: 'bound', scopes: ['orders:read'], resources, expires_in: 86400, ...extra });

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: seedWith(exchangerClient(['orders:read'])) });
      const org = server.bootstrap.organization_id;
      accountId = (await server.tessera.repos.serviceAccounts.insert({ id: newId('sa'), organization_id: org, name: `bot-${Date.now()}`, description: null, platform_admin: false })).id;
      const alice = await addUser(server, { username: `alice-${Date.now()}`, password: 'alice-password-0123456789' });
      alicePat = (await server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'pat', name: 'laptop', userId: alice, scopes: ['tokens:read', 'tokens:write'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 86400, createdBy: 'test' })).token;
      [key, otherKey] = await Promise.all([proofKey(), proofKey()]);
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it('a bound SAT is inactive without dpop_jkt and with another key, active with its own, on both paths, first and cached', async () => {
      const issued = await issueSat({ cnf: { jkt: key.thumbprint } });
      expect(issued.status, issued.text).toBe(201);
      expect(issued.body.cnf).toEqual({ jkt: key.thumbprint });
      const sat = issued.body.token as string;
      // The first introspection loads the token on the fast path; every later one is cached.
      for (let round = 0; round < 2; round += 1) {
        expect(await onBothPaths(sat)).toEqual({ active: false });
        expect(await onBothPaths(sat, { dpop_jkt: otherKey.thumbprint })).toEqual({ active: false });
        const active = await onBothPaths(sat, { dpop_jkt: key.thumbprint });
        expect(active).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.thumbprint }, token_kind: 'sat', scope: 'orders:read' });
      }
      // After an active answer was cached for this caller, a call without the key is still refused.
      expect(await onBothPaths(sat)).toEqual({ active: false });
      // A value that is not a thumbprint is refused as a malformed request, as client_ip is.
      for (const koa of [false, true]) {
        const garbage = await introspect(sat, { dpop_jkt: 'not-a-thumbprint' }, koa);
        expect([garbage.status, garbage.body.error]).toEqual([400, 'invalid_request']);
      }
    });

    it('a bound PAT likewise; rotation keeps the binding for the new secret and the previous one', async () => {
      const issued = await api(server, alicePat, 'POST', '/tokens', { type: 'pat', name: 'bound-pat', scopes: ['orders:read'], resources: [ORDERS], expires_in: 86400, cnf: { jkt: key.thumbprint } });
      expect(issued.status, issued.text).toBe(201);
      expect(issued.body).toMatchObject({ type: 'pat', cnf: { jkt: key.thumbprint } });
      const pat = issued.body.token as string;
      expect(await onBothPaths(pat)).toEqual({ active: false });
      expect(await onBothPaths(pat, { dpop_jkt: otherKey.thumbprint })).toEqual({ active: false });
      expect(await onBothPaths(pat, { dpop_jkt: key.thumbprint })).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.thumbprint }, token_kind: 'pat' });

      const rotated = await api(server, alicePat, 'POST', `/tokens/${issued.body.id}/rotate`, {});
      expect(rotated.status, rotated.text).toBe(200);
      expect(rotated.body.cnf).toEqual({ jkt: key.thumbprint });
      for (const secret of [rotated.body.token as string, pat]) {
        expect(await onBothPaths(secret)).toEqual({ active: false });
        expect(await onBothPaths(secret, { dpop_jkt: otherKey.thumbprint })).toEqual({ active: false });
        expect(await onBothPaths(secret, { dpop_jkt: key.thumbprint })).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.thumbprint } });
      }
      const shown = await api(server, alicePat, 'GET', `/tokens/${issued.body.id}`);
      expect(shown.body.cnf).toEqual({ jkt: key.thumbprint });
    });

    it('refuses a malformed thumbprint with 422 problem+json, and a bound token for the Management API', async () => {
      for (const jkt of ['abc', `${key.thumbprint}=`, `${key.thumbprint.slice(0, 42)}+`, 42]) {
        const refused = await issueSat({ cnf: { jkt } });
        expect(refused.status, String(jkt)).toBe(422);
        expect(refused.headers.get('content-type')).toContain('application/problem+json');
        expect(JSON.stringify(refused.body.errors)).toContain('cnf');
      }
      const extra = await issueSat({ cnf: { jkt: key.thumbprint, x5t: 'x' } });
      expect(extra.status).toBe(422);
      const management = await issueSat({ cnf: { jkt: key.thumbprint } }, [ORDERS, MANAGEMENT_AUDIENCE]);
      expect(management.status).toBe(422);
      expect(management.body.errors[0].field).toBe('cnf');
    });

    it('a bearer token is unaffected: active with or without dpop_jkt, Bearer, no cnf', async () => {
      const issued = await issueSat({});
      expect(issued.status).toBe(201);
      expect(issued.body.cnf).toBeUndefined();
      for (const extra of [{}, { dpop_jkt: key.thumbprint }] as Record<string, string>[]) {
        const answer = await onBothPaths(issued.body.token, extra);
        expect(answer).toMatchObject({ active: true, token_type: 'Bearer' });
        expect(answer.cnf).toBeUndefined();
      }
    });

    it('shows the binding in the inventory and the audit trail, and refuses a bound token as a bearer token at the Management API', async () => {
      const issued = await issueSat({ cnf: { jkt: key.thumbprint } });
      const inventory = await api(server, server.managementToken, 'GET', '/token-inventory?kind=sat&limit=200');
      expect(inventory.status).toBe(200);
      expect(inventory.body.items.find((i: { id: string }) => i.id === issued.body.id)).toMatchObject({ cnf: { jkt: key.thumbprint } });
      await expect
        .poll(async () => (await api(server, server.managementToken, 'GET', `/audit-events?action=token.issued&target=${issued.body.id}`)).body.items?.[0]?.details, { timeout: 5000 })
        .toMatchObject({ key_bound: true, cnf: { jkt: key.thumbprint } });
      const unbound = await issueSat({});
      await expect
        .poll(async () => (await api(server, server.managementToken, 'GET', `/audit-events?action=token.issued&target=${unbound.body.id}`)).body.items?.[0]?.details, { timeout: 5000 })
        .toMatchObject({ key_bound: false });
      // The API refuses to create one, but a bound token holding Management API scopes is refused there all the same.
      const bound = await server.tessera.referenceTokenIssuer.issue({ organizationId: server.bootstrap.organization_id, type: 'sat', name: 'bound-admin', serviceAccountId: accountId, scopes: ['tokens:read'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 3600, createdBy: 'test', jkt: key.thumbprint });
      const refused = await api(server, bound.token, 'GET', '/tokens');
      expect(refused.status).toBe(401);
      expect(refused.body.detail).toContain('bound to a key');
    });

    it('token exchange of a bound SAT needs a proof of its key; the result is bound to it', async () => {
      const sat = (await issueSat({ cnf: { jkt: key.thumbprint } })).body.token as string;
      const form = { grant_type: EXCHANGE_GRANT, subject_token: sat, subject_token_type: ACCESS_TOKEN_TYPE, resource: ORDERS, scope: 'orders:read' };
      const htu = `${server.url}/token`;
      const bare = await postForm(server.url, '/token', form, { authorization: EXCHANGER_BASIC });
      expect([bare.status, bare.body.error]).toEqual([400, 'invalid_grant']);
      const wrong = await postForm(server.url, '/token', form, { authorization: EXCHANGER_BASIC, dpop: await proof(otherKey, { htu }) });
      expect([wrong.status, wrong.body.error]).toEqual([400, 'invalid_grant']);
      const right = await postForm(server.url, '/token', form, { authorization: EXCHANGER_BASIC, dpop: await proof(key, { htu }) });
      expect(right.status, JSON.stringify(right.body)).toBe(200);
      expect(right.body.token_type).toBe('DPoP');
      const answer = await onBothPaths(right.body.access_token);
      expect(answer).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.thumbprint } });
      // A DPoP-bound access token: a dpop_jkt of another key makes it inactive, its own key changes nothing.
      expect(await onBothPaths(right.body.access_token, { dpop_jkt: otherKey.thumbprint })).toEqual({ active: false });
      expect(await onBothPaths(right.body.access_token, { dpop_jkt: key.thumbprint })).toMatchObject({ active: true });
    });
  });
}
