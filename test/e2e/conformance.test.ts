/**
 * Discovery says what Tessera does, no more and no less. This suite reads the published
 * discovery document and exercises every endpoint, grant type, response type and mode, client
 * authentication method and algorithm it advertises; and probes what the engine could serve,
 * so that nothing that works is left out of discovery either.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { secretContext } from '../../src/domain/client-metadata.js';
import { postgresRedisSkipReason } from '../helpers/backends.js';
import { browserless, signIn } from '../helpers/sign-in.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const WEBAPP = { id: 'webapp', secret: 'webapp-secret-0123456789abcdef', redirect: 'https://app.test/cb' };

const overrides = {
  seed: {
    resourceServers: EXAMPLE_SEED.seed.resourceServers,
    clients: [
      ...EXAMPLE_SEED.seed.clients,
      { client_id: 'poster', client_secret: 'poster-secret-0123456789abcdef', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post', scopes: ['orders:read'], resources: ['https://orders.test'] },
      { client_id: WEBAPP.id, client_secret: WEBAPP.secret, grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'client_secret_basic', redirect_uris: [WEBAPP.redirect], scopes: ['openid', 'offline_access', 'orders:read'], resources: ['https://orders.test'] },
      { client_id: 'spa', grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['https://spa.test/cb'], scopes: ['openid', 'orders:read'], resources: ['https://orders.test'] },
    ],
  },
};

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe.skipIf(postgresRedisSkipReason)('discovery conformance', () => {
  let server: TestServer;
  let discovery: Record<string, any>;

  beforeAll(async () => {
    server = await startTestServer('postgres+redis', { overrides });
    discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json();
  });
  afterAll(async () => {
    await server?.stop();
  });

  const form = (path: string, body: Record<string, string>, authorization?: string) =>
    fetch(`${server.url}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) }, body: new URLSearchParams(body) });

  /** GET /auth with a valid code + PKCE request for the web app, changed by `extra`; returns the redirect target. */
  const authorize = async (extra: Record<string, string> = {}) => {
    const { challenge } = pkce();
    const query = new URLSearchParams({ client_id: WEBAPP.id, response_type: 'code', redirect_uri: WEBAPP.redirect, scope: 'openid', state: 's', code_challenge: challenge, code_challenge_method: 'S256', resource: 'https://orders.test', ...extra });
    const response = await fetch(`${server.url}/auth?${query}`, { redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location') ?? '', text: await response.text() };
  };
  const reachedInteraction = (location: string) => new URL(location, server.url).pathname.startsWith('/interaction/');

  it('publishes the same endpoints in both discovery documents, for this issuer', async () => {
    expect(discovery.issuer).toBe(server.url);
    const oauth = await (await fetch(`${server.url}/.well-known/oauth-authorization-server`)).json();
    for (const key of Object.keys(discovery).filter((k) => k.endsWith('_endpoint') || k === 'jwks_uri')) expect(oauth[key], key).toBe(discovery[key]);
  });

  it('serves every advertised endpoint', async () => {
    const endpoints = Object.entries(discovery).filter(([k]) => k.endsWith('_endpoint') || k === 'jwks_uri') as [string, string][];
    expect(endpoints.length).toBeGreaterThanOrEqual(8);
    // The method each endpoint's specification requires (the engine leaves POST to the
    // authorization and end-session endpoints off by default).
    const getOnly = new Set(['authorization_endpoint', 'jwks_uri', 'userinfo_endpoint', 'end_session_endpoint']);
    for (const [name, url] of endpoints) {
      expect(url.startsWith(server.url), name).toBe(true);
      const response = getOnly.has(name)
        ? await fetch(url, { redirect: 'manual' })
        : await fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
      // An endpoint may refuse a bare request (400/401) but must exist and not fail.
      expect(response.status, `${name} ${url}`).not.toBe(404);
      expect(response.status, `${name} ${url}`).toBeLessThan(500);
    }
  });

  it('advertises no engine endpoint it does not serve, and serves none it does not advertise', async () => {
    const probes: [string, string, string][] = [
      ['registration_endpoint', 'POST', '/reg'],
      ['device_authorization_endpoint', 'POST', '/device/auth'],
      ['backchannel_authentication_endpoint', 'POST', '/backchannel'],
      ['pushed_authorization_request_endpoint', 'POST', '/request'],
      ['userinfo_endpoint', 'GET', '/me'],
      ['end_session_endpoint', 'GET', '/session/end'],
    ];
    for (const [key, method, path] of probes) {
      const response = await fetch(`${server.url}${path}`, { method, redirect: 'manual', headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      if (discovery[key]) expect(response.status, path).not.toBe(404);
      else expect(response.status, `${path} answers but discovery has no ${key}`).toBe(404);
    }
  });

  it('advertises only grant types that work: implicit only as the pair of the hybrid flow', async () => {
    expect(discovery.grant_types_supported).not.toContain('password');
    // OpenID Connect Registration §2: `implicit` is listed because `code id_token` is offered;
    // it is a front-channel grant, never one of the token endpoint.
    if ((discovery.grant_types_supported as string[]).includes('implicit')) expect(discovery.response_types_supported).toContain('code id_token');
    for (const grant of (discovery.grant_types_supported as string[]).filter((g) => g !== 'implicit')) {
      const response = await form('/token', { grant_type: grant, code: 'x', refresh_token: 'x', redirect_uri: WEBAPP.redirect, code_verifier: 'x'.repeat(43) }, basic(WEBAPP.id, WEBAPP.secret));
      const body = await response.json();
      // Reaching grant-specific validation proves the grant is enabled (client_credentials is not
      // this client's grant: unauthorized_client is the engine's answer for an enabled grant).
      expect(body.error, grant).not.toBe('unsupported_grant_type');
    }
    for (const grant of ['password', 'implicit', 'urn:openid:params:grant-type:ciba']) {
      const response = await form('/token', { grant_type: grant }, basic(WEBAPP.id, WEBAPP.secret));
      expect((await response.json()).error, grant).toBe('unsupported_grant_type');
    }
  });

  it('issues client-credentials tokens with every advertised token endpoint authentication method', async () => {
    const methods = discovery.token_endpoint_auth_methods_supported as string[];
    const viaBasic = await form('/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }, basic('worker', 'worker-secret-0123456789abcdef'));
    expect(methods).toContain('client_secret_basic');
    expect(viaBasic.status).toBe(200);
    expect(viaBasic.headers.get('cache-control')).toBe('no-store');
    expect(methods).toContain('client_secret_post');
    const viaPost = await form('/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read', client_id: 'poster', client_secret: 'poster-secret-0123456789abcdef' });
    expect(viaPost.status).toBe(200);
    // `none` is for public clients at the authorization endpoint and PAR (below).
    expect(methods).toContain('none');
    const par = await form('/request', { client_id: 'spa', response_type: 'code', redirect_uri: 'https://spa.test/cb', scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256', resource: 'https://orders.test' });
    expect(par.status).toBe(201);
  });

  it('accepts private_key_jwt client assertions with every advertised signing algorithm, and no other', async () => {
    const algs = discovery.token_endpoint_auth_signing_alg_values_supported as string[];
    expect(discovery.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    const org = server.bootstrap.organization_id;
    const tryAlg = async (alg: string, advertised: boolean) => {
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
      const clientId = `pkjwt-${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
      await server.tessera.repos.clients.insert({
        client_id: clientId,
        organization_id: org,
        kind: 'oauth',
        name: clientId,
        resource_server_id: null,
        service_account_id: null,
        metadata: { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(publicKey)), alg, use: 'sig' }] } },
        allowed_scopes: ['orders:read'],
        allowed_resources: ['https://orders.test'],
        secret_enc: null,
        registration: false,
      });
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(server.url)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(privateKey);
      const response = await form('/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
      const body = await response.json();
      if (advertised) expect(response.status, `${alg}: ${JSON.stringify(body)}`).toBe(200);
      else expect(body.error, alg).toBe('invalid_client');
    };
    for (const alg of algs) await tryAlg(alg, true);
    await tryAlg('ES384', false);
  });

  it('starts the authorization code flow for every advertised response type and mode, with PKCE S256 only', async () => {
    expect(discovery.response_types_supported).toEqual(expect.arrayContaining(['code']));
    expect(discovery.response_types_supported).not.toContain('token');
    expect(discovery.response_types_supported).not.toContain('id_token');
    if ((discovery.response_types_supported as string[]).includes('code id_token')) {
      // The hybrid flow, for a confidential client registered for it (a fresh one: the web app is not).
      await server.tessera.repos.clients.insert({
        client_id: 'hybrid-rp',
        organization_id: server.bootstrap.organization_id,
        kind: 'oauth',
        name: 'hybrid',
        resource_server_id: null,
        service_account_id: null,
        metadata: { grant_types: ['authorization_code', 'implicit'], response_types: ['code', 'code id_token'], redirect_uris: ['https://rp.test/cb'], token_endpoint_auth_method: 'client_secret_basic' },
        allowed_scopes: ['openid'],
        allowed_resources: [],
        secret_enc: server.tessera.envelope.seal('hybrid-rp-secret-0123456789abcdef', secretContext('hybrid-rp')),
        registration: false,
      });
      const { challenge } = pkce();
      const hybrid = await fetch(`${server.url}/auth?${new URLSearchParams({ client_id: 'hybrid-rp', response_type: 'code id_token', redirect_uri: 'https://rp.test/cb', scope: 'openid', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' })}`, { redirect: 'manual' });
      expect(hybrid.status).toBe(303);
      expect(reachedInteraction(hybrid.headers.get('location') ?? '')).toBe(true);
    }
    for (const mode of discovery.response_modes_supported as string[]) {
      const { status, location } = await authorize({ response_mode: mode });
      expect(status, mode).toBe(303);
      expect(reachedInteraction(location), `${mode}: ${location}`).toBe(true);
    }
    expect(discovery.code_challenge_methods_supported).toEqual(['S256']);
    const plain = await authorize({ code_challenge_method: 'plain', code_challenge: 'x'.repeat(43) });
    expect(plain.location).toContain('error=invalid_request');
    const none = await authorize({ code_challenge: '', code_challenge_method: '' });
    expect(none.location).toContain('error=invalid_request');
    // Unadvertised types, and the hybrid type for a client not registered for it.
    for (const type of ['token', 'id_token', 'code id_token', 'code token']) {
      const refused = await authorize({ response_type: type });
      expect(refused.status, type).toBeGreaterThanOrEqual(300);
      expect(refused.location + refused.text, type).toMatch(/unsupported_response_type|invalid_request|unauthorized_client/);
    }
  });

  it('accepts every advertised scope at the authorization endpoint, and pushed requests', async () => {
    for (const scope of discovery.scopes_supported as string[]) {
      const { location } = await authorize({ scope: scope === 'openid' ? 'openid' : `openid ${scope}`, prompt: 'consent' });
      expect(reachedInteraction(location), `${scope}: ${location}`).toBe(true);
    }
    const { challenge } = pkce();
    // RFC 9126 §2.1: client_id is required in a pushed request, whatever the authentication.
    const par = await form('/request', { client_id: WEBAPP.id, response_type: 'code', redirect_uri: WEBAPP.redirect, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', resource: 'https://orders.test' }, basic(WEBAPP.id, WEBAPP.secret));
    expect(par.status).toBe(201);
    const { request_uri } = await par.json();
    const resumed = await fetch(`${server.url}/auth?${new URLSearchParams({ client_id: WEBAPP.id, request_uri })}`, { redirect: 'manual' });
    expect(reachedInteraction(resumed.headers.get('location') ?? '')).toBe(true);
  });

  it('publishes a signing key for every advertised ID token algorithm, and signs introspection responses with an advertised one', async () => {
    const jwks = await (await fetch(discovery.jwks_uri)).json();
    for (const alg of discovery.id_token_signing_alg_values_supported as string[]) expect(jwks.keys.map((k: { alg: string }) => k.alg), alg).toContain(alg);
    const { access_token } = await (await form('/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }, basic('worker', 'worker-secret-0123456789abcdef'))).json();
    const response = await fetch(discovery.introspection_endpoint, {
      method: 'POST',
      headers: { authorization: basic('orders-rs', 'orders-rs-secret-0123456789'), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' },
      body: new URLSearchParams({ token: access_token }),
    });
    expect(discovery.introspection_signing_alg_values_supported).toContain(decodeProtectedHeader(await response.text()).alg);
    // DPoP is advertised with the algorithms the engine verifies proofs with (test/e2e/dpop.test.ts walks it).
    expect(discovery.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
  });

  it('completes the code flow for every advertised ID token algorithm: ID token, userinfo, refresh', async () => {
    const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
    for (const alg of discovery.id_token_signing_alg_values_supported as string[]) {
      const clientId = `rp-${alg.toLowerCase()}`;
      const secret = `${clientId}-secret-0123456789abcdef`;
      await server.tessera.repos.clients.insert({
        client_id: clientId,
        organization_id: server.bootstrap.organization_id,
        kind: 'oauth',
        name: clientId,
        resource_server_id: null,
        service_account_id: null,
        metadata: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: ['https://rp.test/cb'], token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: alg },
        allowed_scopes: ['openid', 'offline_access'],
        allowed_resources: [],
        secret_enc: server.tessera.envelope.seal(secret, secretContext(clientId)),
        registration: false,
      });
      const { verifier, challenge } = pkce();
      const nonce = randomUUID();
      const authorization = `${server.url}/auth?${new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: 'https://rp.test/cb', scope: 'openid offline_access', prompt: 'consent', nonce, code_challenge: challenge, code_challenge_method: 'S256' })}`;
      const { callback } = await signIn(browserless(server), authorization, 'admin', server.bootstrap.admin.password);
      expect(callback.searchParams.get('iss'), 'RFC 9207 iss in the response').toBe(server.url);
      const tokens = await (await form('/token', { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: 'https://rp.test/cb', code_verifier: verifier }, basic(clientId, secret))).json();
      expect(tokens.token_type).toBe('Bearer');
      const { payload, protectedHeader } = await jwtVerify(tokens.id_token, jwks, { issuer: server.url, audience: clientId });
      expect(protectedHeader.alg).toBe(alg);
      expect(payload.nonce).toBe(nonce);
      const userinfo = await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(userinfo.status).toBe(200);
      expect((await userinfo.json()).sub).toBe(payload.sub);
      expect(tokens.refresh_token, 'offline_access yields a refresh token').toBeTruthy();
      const refreshed = await form('/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, basic(clientId, secret));
      expect(refreshed.status).toBe(200);
      expect((await refreshed.json()).refresh_token).not.toBe(tokens.refresh_token);
    }
  });
});
