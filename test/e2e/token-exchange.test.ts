/**
 * RFC 8693 token exchange at /token, on every backend: a certified relying-party library
 * (openid-client, its generic grant) for the flows, raw HTTP for every refusal. What is checked:
 * the answer names one API and never more scopes than the subject token; the audience is really
 * applied (the other API's introspection says inactive); the lifetime is bounded by the API and
 * the subject; `act` for delegation; the lineage (revoking, rotating past grace, or stopping the
 * owner of what a token was exchanged from ends it, through chains and from JWT and opaque
 * parents); the `token.exchanged` audit event. Two nodes are test/e2e/exchange-scale-out.test.ts.
 */
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { ACCESS_TOKEN_TYPE as ACCESS_TOKEN, basic, BILLING, EXCHANGE_GRANT as EXCHANGE, EXCHANGER, exchangerClient, ORDERS, postForm, seedWith } from '../helpers/exchange.js';
import { createOrganization, createResourceServer, createServiceAccount, expectApi, uniqueName } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const ORDERS_RS = basic('orders-rs', 'orders-rs-secret-0123456789');
const BILLING_RS = basic('billing-rs', 'billing-rs-secret-0123456789');
const WORKER = basic('worker', 'worker-secret-0123456789abcdef');

const post = (server: TestServer, path: string, form: Record<string, string> | string, authorization?: string) => postForm(server.url, path, form, authorization ? { authorization } : {});

for (const backend of backends) {
  describe(`token exchange on ${backend.name}`, () => {
    let server: TestServer;
    let exchanger: client.Configuration;
    let robot: { id: string };

    const exchange = (form: Record<string, string>, authorization = basic(EXCHANGER.id, EXCHANGER.secret)) =>
      post(server, '/token', { grant_type: EXCHANGE, subject_token_type: ACCESS_TOKEN, ...form }, authorization);
    const introspect = async (token: string, rs = ORDERS_RS) => (await post(server, '/token/introspection', { token }, rs)).body;
    /** A SAT of the test's service account through the Management API. */
    const sat = async (scopes: string[], resources: string[], expiresIn = 3600) =>
      (await expectApi(server, server.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: robot.id, name: uniqueName('sat'), scopes, resources, expires_in: expiresIn }, 201)) as { id: string; token: string };

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: seedWith(exchangerClient()) });
      exchanger = await client.discovery(new URL(server.url), EXCHANGER.id, undefined, client.ClientSecretBasic(EXCHANGER.secret), { execute: [client.allowInsecureRequests] });
      robot = await createServiceAccount(server, server.managementToken);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('advertises the exchange grant in discovery', () => {
      expect(exchanger.serverMetadata().grant_types_supported).toContain(EXCHANGE);
    });

    it('exchanges a SAT for a short-lived JWT for one API with the scopes asked for (openid-client, generic grant)', async () => {
      const { token, id } = await sat(['orders:read', 'orders:write', 'billing:read'], [ORDERS, BILLING]);
      const answer = await client.genericGrantRequest(exchanger, EXCHANGE, { subject_token: token, subject_token_type: ACCESS_TOKEN, resource: ORDERS, scope: 'orders:read' });
      expect(answer).toMatchObject({ token_type: 'bearer', issued_token_type: ACCESS_TOKEN, scope: 'orders:read' });
      expect(answer.expires_in).toBeLessThanOrEqual(600);
      const claims = decodeJwt(answer.access_token);
      expect(claims).toMatchObject({ aud: ORDERS, sub: robot.id, client_id: EXCHANGER.id, scope: 'orders:read', iss: server.url });
      expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
      expect(claims.act).toBeUndefined();
      // The audience is applied: Orders sees it, Billing (also in the SAT) does not.
      expect(await introspect(answer.access_token)).toMatchObject({ active: true, sub: robot.id, client_id: EXCHANGER.id, scope: 'orders:read', aud: ORDERS, token_type: 'Bearer' });
      expect(await introspect(answer.access_token, BILLING_RS)).toEqual({ active: false });
      // Without scope: every scope the SAT and the client share at the API.
      const all = await exchange({ subject_token: token, resource: ORDERS });
      expect(all.status).toBe(200);
      expect(all.body.scope.split(' ').sort()).toEqual(['orders:read', 'orders:write']);
      // `audience` names the API as `resource` does; an opaque API gets an opaque token.
      const opaque = await exchange({ subject_token: token, audience: BILLING });
      expect(opaque.status).toBe(200);
      expect(opaque.body.access_token.split('.')).toHaveLength(1);
      expect(await introspect(opaque.body.access_token, BILLING_RS)).toMatchObject({ active: true, sub: robot.id, scope: 'billing:read', aud: BILLING });
      expect(await introspect(opaque.body.access_token)).toEqual({ active: false });
      expect(JSON.stringify(await introspect(opaque.body.access_token, BILLING_RS))).not.toContain('tsr_from');

      // Audit: the SAT, the client, the audience and the scopes.
      let events: any[] = [];
      for (let i = 0; i < 50 && events.length < 3; i += 1) {
        events = (await api(server, server.managementToken, 'GET', `/audit-events?action=token.exchanged&target=${id}`)).body?.items ?? [];
        if (events.length < 3) await new Promise((r) => setTimeout(r, 100));
      }
      expect(events).toHaveLength(3);
      expect(events.map((e) => e.details.audience).sort()).toEqual([BILLING, ORDERS, ORDERS]);
      expect(events[0]).toMatchObject({ actor: { type: 'client', id: EXCHANGER.id }, target: { type: 'reference_token', id } });
      expect(events.find((e) => e.details.scope === 'orders:read').details).toMatchObject({ client_id: EXCHANGER.id, subject: { kind: 'sat', id, sub: robot.id } });
      expect(JSON.stringify(events)).not.toContain(token);
    });

    it('never hands out more than the subject token holds: invalid_scope, invalid_target', async () => {
      const { token } = await sat(['orders:read'], [ORDERS]);
      const other = await createOrganization(server, server.managementToken);
      const foreign = await createResourceServer(server, other.managementToken);
      const refusals: [Record<string, string>, string][] = [
        [{ resource: ORDERS, scope: 'orders:write' }, 'invalid_scope'],
        [{ resource: ORDERS, scope: 'orders:read orders:write' }, 'invalid_scope'],
        [{ resource: ORDERS, scope: 'billing:read' }, 'invalid_scope'],
        [{ resource: BILLING }, 'invalid_target'],
        [{ resource: foreign.identifier }, 'invalid_target'],
        [{ resource: 'https://nowhere.test' }, 'invalid_target'],
        [{ audience: 'urn:tessera:management' }, 'invalid_target'],
      ];
      for (const [form, error] of refusals) {
        const answer = await exchange({ subject_token: token, ...form });
        expect({ form, status: answer.status, error: answer.body.error }).toEqual({ form, status: 400, error });
        expect(answer.headers.get('cache-control')).toBe('no-store');
      }
      // Two targets at once is one too many (RFC 8693 §2.2.2).
      const both = await post(server, '/token', `grant_type=${encodeURIComponent(EXCHANGE)}&subject_token_type=${encodeURIComponent(ACCESS_TOKEN)}&subject_token=${token}&resource=${encodeURIComponent(ORDERS)}&audience=${encodeURIComponent(BILLING)}`, basic(EXCHANGER.id, EXCHANGER.secret));
      expect([both.status, both.body.error]).toEqual([400, 'invalid_target']);
      // Without a target, the subject's only API.
      const defaulted = await exchange({ subject_token: token });
      expect([defaulted.status, decodeJwt(defaulted.body.access_token).aud]).toEqual([200, ORDERS]);
    });

    it('refuses malformed and dead subject tokens and clients not allowed the grant, in RFC 6749 JSON', async () => {
      const { token, id } = await sat(['orders:read'], [ORDERS]);
      const cases: [Record<string, string>, string | undefined, number, string][] = [
        [{ subject_token: '' }, undefined, 400, 'invalid_request'],
        [{ subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }, undefined, 400, 'invalid_request'],
        [{ subject_token: token, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, undefined, 400, 'invalid_request'],
        [{ subject_token: token, actor_token: token }, undefined, 400, 'invalid_request'],
        [{ subject_token: token, actor_token_type: ACCESS_TOKEN }, undefined, 400, 'invalid_request'],
        [{ subject_token: 'tsr_sat_garbage' }, undefined, 400, 'invalid_grant'],
        [{ subject_token: 'not-a-token-at-all' }, undefined, 400, 'invalid_grant'],
        // A client without the grant (the engine's answer for every grant a client is not registered for), and a wrong secret.
        [{ subject_token: token }, WORKER, 400, 'invalid_request'],
        [{ subject_token: token }, basic(EXCHANGER.id, 'wrong-secret-0123456789abcdef'), 401, 'invalid_client'],
      ];
      for (const [form, authorization, status, error] of cases) {
        const answer = await exchange(form, authorization);
        expect({ form, status: answer.status, error: answer.body.error }).toEqual({ form, status, error });
      }
      await expectApi(server, server.managementToken, 'DELETE', `/tokens/${id}`, undefined, 204);
      expect((await exchange({ subject_token: token })).body.error).toBe('invalid_grant');
    });

    it('bounds the lifetime by the subject token expiry', async () => {
      const { token } = await sat(['billing:read'], [BILLING], 120);
      const answer = await exchange({ subject_token: token });
      expect(answer.status).toBe(200);
      expect(answer.body.expires_in).toBeLessThanOrEqual(120);
      expect(answer.body.expires_in).toBeGreaterThan(100);
      const introspected = await introspect(answer.body.access_token, BILLING_RS);
      expect(introspected.exp - introspected.iat).toBeLessThanOrEqual(120);
    });

    it('delegation: with an actor token the result carries act, and introspection returns it', async () => {
      const { token } = await sat(['orders:read', 'billing:read'], [ORDERS, BILLING]);
      const actor = (await post(server, '/token', { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' }, WORKER)).body.access_token as string;
      const jwt = await exchange({ subject_token: token, resource: ORDERS, actor_token: actor, actor_token_type: ACCESS_TOKEN });
      expect(jwt.status).toBe(200);
      expect(decodeJwt(jwt.body.access_token).act).toEqual({ sub: 'worker' });
      expect(await introspect(jwt.body.access_token)).toMatchObject({ active: true, sub: robot.id, act: { sub: 'worker' } });
      const opaque = await exchange({ subject_token: token, resource: BILLING, actor_token: actor, actor_token_type: ACCESS_TOKEN });
      expect(await introspect(opaque.body.access_token, BILLING_RS)).toMatchObject({ active: true, act: { sub: 'worker' } });
      // The actor's credential is part of the lineage: revoking it ends the delegation.
      await post(server, '/token/revocation', { token: actor }, WORKER);
      expect(await introspect(jwt.body.access_token)).toEqual({ active: false });
      expect(await introspect(opaque.body.access_token, BILLING_RS)).toEqual({ active: false });
      // A second delegation nests the first actor (RFC 8693 §4.1).
      const actor2 = (await post(server, '/token', { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' }, WORKER)).body.access_token as string;
      const first = await exchange({ subject_token: token, resource: ORDERS, actor_token: actor2, actor_token_type: ACCESS_TOKEN });
      const second = await exchange({ subject_token: first.body.access_token, actor_token: token, actor_token_type: ACCESS_TOKEN });
      expect(decodeJwt(second.body.access_token).act).toEqual({ sub: robot.id, act: { sub: 'worker' } });
    });

    it('revoking the parent SAT ends every token exchanged from it, JWT and opaque, through chains', async () => {
      const { token, id } = await sat(['orders:read', 'billing:read'], [ORDERS, BILLING]);
      const jwt = (await exchange({ subject_token: token, resource: ORDERS })).body.access_token as string;
      const opaque = (await exchange({ subject_token: token, resource: BILLING })).body.access_token as string;
      const grandchild = (await exchange({ subject_token: jwt })).body.access_token as string;
      for (const [t, rs] of [[jwt, ORDERS_RS], [opaque, BILLING_RS], [grandchild, ORDERS_RS]] as const) expect((await introspect(t, rs)).active).toBe(true);
      await expectApi(server, server.managementToken, 'DELETE', `/tokens/${id}`, undefined, 204);
      for (const [t, rs] of [[jwt, ORDERS_RS], [opaque, BILLING_RS], [grandchild, ORDERS_RS]] as const) expect(await introspect(t, rs)).toEqual({ active: false });
      // Nor can a dead child be exchanged again.
      expect((await exchange({ subject_token: jwt })).body.error).toBe('invalid_grant');
    });

    it('revoking an exchanged token (RFC 7009) ends what was exchanged from it; JWT and opaque parents alike', async () => {
      const { token } = await sat(['orders:read'], [ORDERS]);
      const child = (await exchange({ subject_token: token })).body.access_token as string;
      const grandchild = (await exchange({ subject_token: child })).body.access_token as string;
      await post(server, '/token/revocation', { token: child }, ORDERS_RS);
      expect(await introspect(grandchild)).toEqual({ active: false });

      const jwtParent = (await post(server, '/token', { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' }, WORKER)).body.access_token as string;
      const fromJwt = await exchange({ subject_token: jwtParent });
      expect(await introspect(fromJwt.body.access_token)).toMatchObject({ active: true, sub: 'worker', client_id: EXCHANGER.id });
      await post(server, '/token/revocation', { token: jwtParent }, WORKER);
      expect(await introspect(fromJwt.body.access_token)).toEqual({ active: false });

      const opaqueParent = (await post(server, '/token', { grant_type: 'client_credentials', resource: BILLING, scope: 'billing:read' }, WORKER)).body.access_token as string;
      const fromOpaque = await exchange({ subject_token: opaqueParent });
      expect(await introspect(fromOpaque.body.access_token, BILLING_RS)).toMatchObject({ active: true, sub: 'worker' });
      await post(server, '/token/revocation', { token: opaqueParent }, WORKER);
      expect(await introspect(fromOpaque.body.access_token, BILLING_RS)).toEqual({ active: false });
    });

    it('rotating the parent keeps children through the grace period only; stopping the owner ends them', async () => {
      const { token, id } = await sat(['orders:read'], [ORDERS]);
      const child = (await exchange({ subject_token: token })).body.access_token as string;
      const rotated = await expectApi(server, server.managementToken, 'POST', `/tokens/${id}/rotate`, {}, 200);
      // The old secret is inside its grace period: its child lives on, and a child of the new secret too.
      expect((await introspect(child)).active).toBe(true);
      const second = (await exchange({ subject_token: rotated.token })).body.access_token as string;
      await expectApi(server, server.managementToken, 'POST', `/tokens/${id}/rotate`, {}, 200);
      // Rotated again: the first secret is gone, and its child with it; the second is in its grace.
      expect(await introspect(child)).toEqual({ active: false });
      expect((await introspect(second)).active).toBe(true);

      const owner = await createServiceAccount(server, server.managementToken);
      const issued = await expectApi(server, server.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: owner.id, name: 'x', scopes: ['orders:read'], resources: [ORDERS], expires_in: 3600 }, 201);
      const ownersChild = (await exchange({ subject_token: issued.token })).body.access_token as string;
      expect((await introspect(ownersChild)).active).toBe(true);
      await expectApi(server, server.managementToken, 'PATCH', `/service-accounts/${owner.id}`, { status: 'disabled' }, 200);
      expect(await introspect(ownersChild)).toEqual({ active: false });
    });

    it("refuses another organization's subject token and another organization's client", async () => {
      const other = await createOrganization(server, server.managementToken);
      const rs = await createResourceServer(server, other.managementToken);
      const account = await createServiceAccount(server, other.managementToken);
      const theirs = await expectApi(server, other.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'x', scopes: ['things:read'], resources: [rs.identifier], expires_in: 3600 }, 201);
      // Our client with their SAT: as if the SAT did not exist.
      const answer = await exchange({ subject_token: theirs.token, resource: rs.identifier });
      expect([answer.status, answer.body.error]).toEqual([400, 'invalid_grant']);
    });
  });
}
