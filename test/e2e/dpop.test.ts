/**
 * DPoP (RFC 9449) at /token on every backend, with an independent client (openid-client's DPoP
 * handle) for the flows and hand-made proofs (jose) for every refusal: client credentials,
 * authorization code and refresh (a public client's refresh token bound to the key), token
 * exchange; `cnf.jkt` and `token_type: DPoP` on every introspection path; proof replay, wrong
 * `htm`/`htu`, a stale `iat` (answered with a nonce), a DPoP token presented as Bearer, a key
 * mismatch on refresh; a `dpop_required` API that gets no bearer token.
 */
import { calculateJwkThumbprint, decodeJwt, exportJWK } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { ACCESS_TOKEN_TYPE as ACCESS_TOKEN, basic, BILLING, EXCHANGE_GRANT as EXCHANGE, EXCHANGER, exchangerClient, ORDERS, postForm, proof, proofKey, seedWith } from '../helpers/exchange.js';
import { createClient, createResourceServer, createServiceAccount, expectApi } from '../helpers/management.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { browserless, CALLBACK, oauthError, SERVER_START_TIMEOUT_MS, signIn } from '../helpers/sign-in.js';

const WORKER = basic('worker', 'worker-secret-0123456789abcdef');
const ORDERS_RS = basic('orders-rs', 'orders-rs-secret-0123456789');
const BILLING_RS = basic('billing-rs', 'billing-rs-secret-0123456789');
const EXCHANGER_BASIC = basic(EXCHANGER.id, EXCHANGER.secret);

for (const backend of backends) {
  describe(`DPoP on ${backend.name}`, () => {
    let server: TestServer;
    let worker: client.Configuration;
    let web: client.Configuration;
    let tokenUrl: string;

    const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) => postForm(server.url, path, form, headers);
    const introspect = async (token: string, rs = ORDERS_RS, koa = false) =>
      (await post('/token/introspection', { token }, { authorization: rs, ...(koa ? { accept: 'application/json, application/token-introspection+jwt;q=0' } : {}) })).body;
    const clientCredentials = (form: Record<string, string>, dpop?: string, authorization = WORKER) =>
      post('/token', { grant_type: 'client_credentials', ...form }, { authorization, ...(dpop ? { dpop } : {}) });

    beforeAll(async () => {
      server = await startTestServer(backend.name, {
        overrides: seedWith(
          exchangerClient(['orders:read', 'billing:read']),
          { client_id: 'admin-robot', client_secret: 'admin-robot-secret-0123456789abcd', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scopes: ['organization:read'], resources: ['urn:tessera:management'] },
          { client_id: 'web-public', grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: [CALLBACK], scopes: ['openid', 'offline_access'] },
        ),
      });
      tokenUrl = `${server.url}/token`;
      const options = { execute: [client.allowInsecureRequests] };
      worker = await client.discovery(new URL(server.url), 'worker', undefined, client.ClientSecretBasic('worker-secret-0123456789abcdef'), options);
      web = await client.discovery(new URL(server.url), 'web-public', undefined, client.None(), options);
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it('advertises DPoP in discovery', () => {
      expect(worker.serverMetadata().dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
    });

    it('binds a client-credentials token to the key (openid-client DPoP handle); introspection says DPoP and cnf on both paths, JWT and opaque', async () => {
      const keyPair = await client.randomDPoPKeyPair();
      const thumbprint = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
      const DPoP = client.getDPoPHandle(worker, keyPair);
      const jwt = await client.clientCredentialsGrant(worker, { resource: ORDERS, scope: 'orders:read' }, { DPoP });
      expect(jwt.token_type).toBe('dpop');
      expect(decodeJwt(jwt.access_token).cnf).toEqual({ jkt: thumbprint });
      const opaque = await client.clientCredentialsGrant(worker, { resource: BILLING, scope: 'billing:read' }, { DPoP });
      for (const koa of [false, true]) {
        expect(await introspect(jwt.access_token, ORDERS_RS, koa)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: thumbprint } });
        expect(await introspect(opaque.access_token, BILLING_RS, koa)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: thumbprint } });
      }
      // Without a proof: Bearer, and no cnf.
      const bearer = await clientCredentials({ resource: ORDERS, scope: 'orders:read' });
      expect(bearer.body.token_type).toBe('Bearer');
      const answer = await introspect(bearer.body.access_token);
      expect(answer.token_type).toBe('Bearer');
      expect(answer.cnf).toBeUndefined();
    });

    it('refuses a replayed proof, a wrong htm or htu, and answers a stale iat with a nonce', async () => {
      const key = await proofKey();
      const form = { resource: ORDERS, scope: 'orders:read' };
      const once = await proof(key, { htu: tokenUrl });
      const first = await clientCredentials(form, once);
      expect(first.status).toBe(200);
      expect(decodeJwt(first.body.access_token).cnf).toEqual({ jkt: key.thumbprint });
      // The same proof again (its jti): refused. Through Koa (a query string) as on the fast path.
      for (const path of ['/token', '/token?via=koa']) {
        const replay = await post(path, { grant_type: 'client_credentials', ...form }, { authorization: WORKER, dpop: once });
        expect([replay.status, replay.body.error]).toEqual([400, 'invalid_grant']);
        expect(replay.body.error_description ?? '').not.toContain('secret');
      }
      const wrongMethod = await clientCredentials(form, await proof(key, { htu: tokenUrl, htm: 'GET' }));
      expect([wrongMethod.status, wrongMethod.body.error]).toEqual([400, 'invalid_dpop_proof']);
      const wrongUri = await clientCredentials(form, await proof(key, { htu: `${server.url}/token/introspection` }));
      expect([wrongUri.status, wrongUri.body.error]).toEqual([400, 'invalid_dpop_proof']);
      const notAJwt = await clientCredentials(form, 'not-a-proof');
      expect([notAJwt.status, notAJwt.body.error]).toEqual([400, 'invalid_dpop_proof']);
      // A stale iat: the server offers a nonce (RFC 9449 §8), and a proof carrying it is accepted.
      const stale = await clientCredentials(form, await proof(key, { htu: tokenUrl, iat: Math.floor(Date.now() / 1000) - 600 }));
      expect([stale.status, stale.body.error]).toEqual([400, 'use_dpop_nonce']);
      const nonce = stale.headers.get('dpop-nonce');
      expect(nonce).toBeTruthy();
      const withNonce = await clientCredentials(form, await proof(key, { htu: tokenUrl, iat: Math.floor(Date.now() / 1000) - 600, nonce: nonce! }));
      expect(withNonce.status).toBe(200);
    });

    it('a dpop_required API gets no bearer token: refused at /token, issued with a proof (Management API and OpenAPI)', async () => {
      const rs = await createResourceServer(server, server.managementToken, { dpop_required: true, token_format: 'opaque' });
      expect(rs.dpop_required).toBe(true);
      const openapi = await (await fetch(`${server.url}/api/v1/openapi.json`)).text();
      expect(openapi).toContain('dpop_required');
      const created = await createClient(server, server.managementToken, { scopes: ['things:read'], resources: [rs.identifier], token_endpoint_auth_method: 'client_secret_basic' });
      const authorization = basic(created.client_id, created.client_secret);
      const refused = await clientCredentials({ resource: rs.identifier, scope: 'things:read' }, undefined, authorization);
      expect([refused.status, refused.body.error]).toEqual([400, 'invalid_request']);
      expect(refused.body.error_description).toContain('DPoP');
      const key = await proofKey();
      const issued = await clientCredentials({ resource: rs.identifier, scope: 'things:read' }, await proof(key, { htu: tokenUrl }), authorization);
      expect([issued.status, issued.body.token_type]).toEqual([200, 'DPoP']);
      // Token exchange for it likewise: a SAT (a bearer token) is exchanged for it only with a proof.
      const exchanging = await createClient(server, server.managementToken, { grant_types: [EXCHANGE], scopes: ['things:read'], resources: [rs.identifier], token_endpoint_auth_method: 'client_secret_basic' });
      const account = await createServiceAccount(server, server.managementToken);
      const sat = await expectApi(server, server.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'dpop api', scopes: ['things:read'], resources: [rs.identifier], expires_in: 3600 }, 201);
      const exchange = (dpop?: string) =>
        post('/token', { grant_type: EXCHANGE, subject_token: sat.token, subject_token_type: ACCESS_TOKEN }, { authorization: basic(exchanging.client_id, exchanging.client_secret), ...(dpop ? { dpop } : {}) });
      const bearerExchange = await exchange();
      expect([bearerExchange.status, bearerExchange.body.error]).toEqual([400, 'invalid_request']);
      const boundExchange = await exchange(await proof(key, { htu: tokenUrl }));
      expect([boundExchange.status, boundExchange.body.token_type]).toEqual([200, 'DPoP']);
      // Turned off again: bearer tokens are issued.
      await expectApi(server, server.managementToken, 'PATCH', `/resource-servers/${rs.id}`, { dpop_required: false }, 200);
      let again = await clientCredentials({ resource: rs.identifier, scope: 'things:read' }, undefined, authorization);
      // The resource-server cache keeps an API for up to 5 s (docs/operations.md, staleness windows).
      for (let i = 0; i < 60 && again.status !== 200; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        again = await clientCredentials({ resource: rs.identifier, scope: 'things:read' }, undefined, authorization);
      }
      expect([again.status, again.body.token_type]).toEqual([200, 'Bearer']);
    });

    it('refuses a DPoP-bound token presented as a bearer token at the Management API and at userinfo', async () => {
      const key = await proofKey();
      const issued = await clientCredentials({ resource: 'urn:tessera:management', scope: 'organization:read' }, await proof(key, { htu: tokenUrl }), basic('admin-robot', 'admin-robot-secret-0123456789abcd'));
      expect(issued.body.token_type).toBe('DPoP');
      const asBearer = await fetch(`${server.url}/api/v1/organization`, { headers: { authorization: `Bearer ${issued.body.access_token}` } });
      expect(asBearer.status).toBe(401);
      expect(asBearer.headers.get('www-authenticate')).toContain('invalid_token');
      // The same client's bearer token works, so the refusal is about the binding.
      const bearer = await clientCredentials({ resource: 'urn:tessera:management', scope: 'organization:read' }, undefined, basic('admin-robot', 'admin-robot-secret-0123456789abcd'));
      expect((await fetch(`${server.url}/api/v1/organization`, { headers: { authorization: `Bearer ${bearer.body.access_token}` } })).status).toBe(200);
    });

    it('authorization code and refresh: the public client’s tokens are bound to its key, a refresh with another key or none is refused', async () => {
      const keyPair = await client.randomDPoPKeyPair();
      const DPoP = client.getDPoPHandle(web, keyPair);
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(web, { redirect_uri: CALLBACK, scope: 'openid offline_access', prompt: 'consent', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
      const { callback } = await signIn(browserless(server), url.href, server.bootstrap.admin.username, server.bootstrap.admin.password);
      const tokens = await client.authorizationCodeGrant(web, callback, { pkceCodeVerifier: verifier, expectedState: state }, undefined, { DPoP });
      expect(tokens.token_type).toBe('dpop');
      expect(tokens.refresh_token).toBeTruthy();
      // userinfo: with the proof it answers; the same token as Bearer is refused (RFC 9449 §7.1).
      const claims = tokens.claims()!;
      expect((await client.fetchUserInfo(web, tokens.access_token, claims.sub, { DPoP })).sub).toBe(claims.sub);
      const asBearer = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(asBearer.status).toBe(401);
      // The refresh token is bound to the key: another key, or none, is invalid_grant.
      const other = client.getDPoPHandle(web, await client.randomDPoPKeyPair());
      expect(await oauthError(client.refreshTokenGrant(web, tokens.refresh_token!, undefined, { DPoP: other }))).toBe('invalid_grant');
      const noProof = await post('/token', { grant_type: 'refresh_token', client_id: 'web-public', refresh_token: tokens.refresh_token! });
      expect([noProof.status, noProof.body.error]).toEqual([400, 'invalid_grant']);
      const refreshed = await client.refreshTokenGrant(web, tokens.refresh_token!, undefined, { DPoP });
      expect(refreshed.token_type).toBe('dpop');
    });

    it('token exchange: a proof binds the result; a DPoP-bound subject is exchanged only with a proof of its key', async () => {
      const account = await createServiceAccount(server, server.managementToken);
      const sat = await expectApi(server, server.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'dpop', scopes: ['orders:read'], resources: [ORDERS], expires_in: 3600 }, 201);
      const key = await proofKey();
      const exchange = (subject: string, dpop?: string) =>
        post('/token', { grant_type: EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN, resource: ORDERS }, { authorization: EXCHANGER_BASIC, ...(dpop ? { dpop } : {}) });
      const bound = await exchange(sat.token, await proof(key, { htu: tokenUrl }));
      expect([bound.status, bound.body.token_type]).toEqual([200, 'DPoP']);
      expect(await introspect(bound.body.access_token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.thumbprint }, sub: account.id });
      // The bound token as subject: without a proof, or with another key, it is refused.
      expect((await exchange(bound.body.access_token)).body.error).toBe('invalid_grant');
      expect((await exchange(bound.body.access_token, await proof(await proofKey(), { htu: tokenUrl }))).body.error).toBe('invalid_grant');
      const again = await exchange(bound.body.access_token, await proof(key, { htu: tokenUrl }));
      expect([again.status, again.body.token_type]).toEqual([200, 'DPoP']);
      // openid-client's generic grant with its DPoP handle.
      const exchanger = await client.discovery(new URL(server.url), EXCHANGER.id, undefined, client.ClientSecretBasic(EXCHANGER.secret), { execute: [client.allowInsecureRequests] });
      const viaLibrary = await client.genericGrantRequest(exchanger, EXCHANGE, { subject_token: sat.token, subject_token_type: ACCESS_TOKEN, resource: ORDERS }, { DPoP: client.getDPoPHandle(exchanger, await client.randomDPoPKeyPair()) });
      expect(viaLibrary.token_type).toBe('dpop');
    });
  });
}

describe('DPoP with nonces required (config dpop.requireNonce)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('pglite+memory', { overrides: { ...seedWith(), dpop: { requireNonce: true } } });
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
  });

  it('answers a proof without a nonce with use_dpop_nonce and a DPoP-Nonce header; openid-client retries with it', async () => {
    const key = await proofKey();
    const form = { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' };
    const first = await postForm(server.url, '/token', form, { authorization: WORKER, dpop: await proof(key, { htu: `${server.url}/token` }) });
    expect([first.status, first.body.error]).toEqual([400, 'use_dpop_nonce']);
    const nonce = first.headers.get('dpop-nonce')!;
    expect(nonce).toBeTruthy();
    const second = await postForm(server.url, '/token', form, { authorization: WORKER, dpop: await proof(key, { htu: `${server.url}/token`, nonce }) });
    expect([second.status, second.body.token_type]).toEqual([200, 'DPoP']);
    const worker = await client.discovery(new URL(server.url), 'worker', undefined, client.ClientSecretBasic('worker-secret-0123456789abcdef'), { execute: [client.allowInsecureRequests] });
    const tokens = await client.clientCredentialsGrant(worker, { resource: ORDERS, scope: 'orders:read' }, { DPoP: client.getDPoPHandle(worker, await client.randomDPoPKeyPair()) });
    expect(tokens.token_type).toBe('dpop');
  });
});
