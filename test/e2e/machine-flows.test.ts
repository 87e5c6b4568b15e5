/**
 * The foundation's machine flows, driven by a certified relying-party library (openid-client)
 * against a real running Tessera, on every backend: discovery, client credentials with resource
 * indicators (JWT and opaque), introspection restricted to the token's API, revocation, JWKS.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { createClient, createResourceServer, expectApi } from '../helpers/management.js';
import { api } from '../helpers/server.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

for (const backend of backends) {
  describe(`machine flows on ${backend.name}`, () => {
    let server: TestServer;
    let worker: client.Configuration;
    let ordersRs: client.Configuration;
    let billingRs: client.Configuration;
    /** A confidential client of the same organization that has nothing to do with the tokens below. */
    let bystander: client.Configuration;

    const configure = async (id: string, secret: string) => {
      const config = await client.discovery(new URL(server.url), id, undefined, client.ClientSecretBasic(secret), { execute: [client.allowInsecureRequests] });
      return config;
    };

    beforeAll(async () => {
      const bystanderClient = {
        client_id: 'bystander',
        client_secret: 'bystander-secret-0123456789abcdef',
        name: 'Bystander',
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
        scopes: ['orders:read'],
        resources: ['https://orders.test'],
      };
      server = await startTestServer(backend.name, { overrides: { seed: { ...EXAMPLE_SEED.seed, clients: [...EXAMPLE_SEED.seed.clients, bystanderClient] } } });
      worker = await configure('worker', 'worker-secret-0123456789abcdef');
      bystander = await configure('bystander', bystanderClient.client_secret);
      ordersRs = await configure('orders-rs', 'orders-rs-secret-0123456789');
      billingRs = await configure('billing-rs', 'billing-rs-secret-0123456789');
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('publishes discovery with the endpoints it serves', async () => {
      const metadata = worker.serverMetadata();
      expect(metadata.issuer).toBe(server.url);
      expect(metadata.introspection_endpoint).toBe(`${server.url}/token/introspection`);
      expect(metadata.revocation_endpoint).toBe(`${server.url}/token/revocation`);
      expect(metadata.grant_types_supported).toContain('client_credentials');
      const oauth = await (await fetch(`${server.url}/.well-known/oauth-authorization-server`)).json();
      expect(oauth.issuer).toBe(server.url);
    });

    it('issues an RFC 9068 JWT for a jwt resource server, verifiable with /jwks, with sub = client_id and no refresh token', async () => {
      const tokens = await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      expect(tokens.refresh_token).toBeUndefined();
      expect(tokens.scope).toBe('orders:read');
      expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
      const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${server.url}/jwks`)), {
        issuer: server.url,
        audience: 'https://orders.test',
        typ: 'at+jwt',
      });
      expect(payload.sub).toBe('worker');
      expect(payload.client_id).toBe('worker');
    });

    it('answers a client-credentials grant before Koa exactly as through it', async () => {
      // POST /token with client_secret_basic takes the fast path; the same request with a query
      // string goes through Koa's middlewares (src/oidc/token-fast-path.ts).
      const grant = (path: string) =>
        fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
            'x-request-id': 'machine-flow-1',
          },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read', resource: 'https://orders.test' }),
        });
      const { answered } = server.tessera.tokenFastPathStats;
      const fast = await grant('/token');
      expect(server.tessera.tokenFastPathStats.answered).toBe(answered + 1);
      const koa = await grant('/token?through=koa');
      expect(server.tessera.tokenFastPathStats.answered).toBe(answered + 1);
      expect([fast.status, koa.status]).toEqual([200, 200]);
      const headers = (response: Response) => Object.fromEntries([...response.headers].filter(([name]) => !['date', 'content-length'].includes(name)));
      expect(headers(fast)).toEqual(headers(koa));
      expect(fast.headers.get('x-request-id')).toBe('machine-flow-1');
      const [a, b] = [(await fast.json()) as Record<string, unknown>, (await koa.json()) as Record<string, unknown>];
      expect({ ...a, access_token: undefined }).toEqual({ ...b, access_token: undefined });
      const claims = (token: unknown) => {
        const { jti, iat, exp, ...rest } = JSON.parse(Buffer.from(String(token).split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
        expect([typeof jti, typeof iat, typeof exp]).toEqual(['string', 'number', 'number']);
        return rest;
      };
      expect(claims(a.access_token)).toEqual(claims(b.access_token));
    });

    it('introspects a JWT as active only for its own resource server', async () => {
      const { access_token } = await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      const mine = await client.tokenIntrospection(ordersRs, access_token);
      expect(mine).toMatchObject({ active: true, scope: 'orders:read', sub: 'worker', client_id: 'worker', aud: 'https://orders.test', iss: server.url, token_type: 'Bearer' });
      expect(typeof mine.exp).toBe('number');
      const theirs = await client.tokenIntrospection(billingRs, access_token);
      expect(theirs).toEqual({ active: false });
    });

    it('issues opaque tokens for an opaque resource server and restricts their introspection the same way', async () => {
      const { access_token } = await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: 'https://billing.test' });
      expect(access_token.split('.')).toHaveLength(1);
      expect(await client.tokenIntrospection(billingRs, access_token)).toMatchObject({ active: true, sub: 'worker', scope: 'billing:read', aud: 'https://billing.test' });
      expect(await client.tokenIntrospection(ordersRs, access_token)).toEqual({ active: false });
    });

    it('answers JWT and opaque introspection the same on the fast path and the Koa path, on every repeat and with either secret method', async () => {
      const jwt = (await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' })).access_token;
      const opaque = (await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: 'https://billing.test' })).access_token;
      const koaOnly = { accept: 'application/json, application/token-introspection+jwt;q=0' };
      const ask = async (body: string, headers: Record<string, string>) => {
        const response = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
        return { status: response.status, text: await response.text(), headers: [...response.headers].filter(([name]) => name !== 'date' && name !== 'x-request-id') };
      };
      const cases: [string, string, string][] = [
        [jwt, 'orders-rs', 'orders-rs-secret-0123456789'],
        [opaque, 'billing-rs', 'billing-rs-secret-0123456789'],
      ];
      for (const [token, id, secret] of cases) {
        const basic = { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` };
        const viaKoa = await ask(`token=${token}`, { ...basic, ...koaOnly });
        expect(JSON.parse(viaKoa.text)).toMatchObject({ active: true });
        // Repeats are answered from what the first one cached; each must still be the same answer.
        for (let i = 0; i < 3; i += 1) expect(await ask(`token=${token}`, basic)).toEqual(viaKoa);
        // client_secret_post, and a body with escapes (parsed the general way), give the same answer.
        const post = `token=${token}&client_id=${id}&client_secret=${secret}`;
        expect(await ask(post, {})).toEqual(await ask(post, koaOnly));
        expect((await ask(`token=${token}&token_type_hint=access%5Ftoken`, basic)).text).toBe(viaKoa.text);
      }
    });

    it('revokes JWT and opaque tokens through RFC 7009, after which they introspect as inactive', async () => {
      const jwt = (await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' })).access_token;
      const opaque = (await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: 'https://billing.test' })).access_token;
      await client.tokenRevocation(ordersRs, jwt);
      await client.tokenRevocation(billingRs, opaque);
      expect(await client.tokenIntrospection(ordersRs, jwt)).toEqual({ active: false });
      expect(await client.tokenIntrospection(billingRs, opaque)).toEqual({ active: false });
    });

    it('lets the client a token was issued to revoke it (RFC 7009 §2.1), JWT and opaque alike', async () => {
      const jwt = (await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' })).access_token;
      const opaque = (await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: 'https://billing.test' })).access_token;
      expect((await client.tokenIntrospection(ordersRs, jwt)).active).toBe(true);
      expect((await client.tokenIntrospection(billingRs, opaque)).active).toBe(true);
      await client.tokenRevocation(worker, jwt);
      await client.tokenRevocation(worker, opaque);
      expect(await client.tokenIntrospection(ordersRs, jwt)).toEqual({ active: false });
      expect(await client.tokenIntrospection(billingRs, opaque)).toEqual({ active: false });
    });

    it('answers 200 to an unrelated client of the same organization and leaves the token alone (RFC 7009 §2.2)', async () => {
      const jwt = (await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' })).access_token;
      const opaque = (await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: 'https://billing.test' })).access_token;
      // tokenRevocation rejects on anything but 200.
      await client.tokenRevocation(bystander, jwt);
      await client.tokenRevocation(bystander, opaque);
      expect((await client.tokenIntrospection(ordersRs, jwt)).active).toBe(true);
      expect((await client.tokenIntrospection(billingRs, opaque)).active).toBe(true);
    });

    it('does not let a resource server revoke a token meant for another API', async () => {
      const jwt = (await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' })).access_token;
      await client.tokenRevocation(billingRs, jwt);
      expect((await client.tokenIntrospection(ordersRs, jwt)).active).toBe(true);
    });

    it('answers RFC 9701 signed introspection responses', async () => {
      const { access_token } = await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      const response = await fetch(`${server.url}/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/token-introspection+jwt',
        },
        body: new URLSearchParams({ token: access_token }),
      });
      expect(response.headers.get('content-type')).toContain('application/token-introspection+jwt');
      const { payload } = await jwtVerify(await response.text(), createRemoteJWKSet(new URL(`${server.url}/jwks`)), { issuer: server.url, audience: 'orders-rs', typ: 'token-introspection+jwt' });
      expect(payload.token_introspection).toMatchObject({ active: true, sub: 'worker' });
    });

    it('answers RFC 9701 in the format the introspection client registered: ES256, then encrypted to its key', async () => {
      const admin = server.managementToken;
      const rs = await createResourceServer(server, admin, { scopes: ['things:read'], introspection_signed_response_alg: 'ES256' });
      expect(rs.introspection_signed_response_alg).toBe('ES256');
      const caller = await createClient(server, admin, { scopes: ['things:read'], resources: [rs.identifier] });
      const { access_token } = await client.clientCredentialsGrant(await configure(caller.client_id, caller.client_secret), { scope: 'things:read', resource: rs.identifier });
      const basic = `Basic ${Buffer.from(`${rs.introspection_client_id}:${rs.introspection_client_secret}`).toString('base64')}`;
      const ask = async (accept: string) => {
        const response = await fetch(`${server.url}/token/introspection`, {
          method: 'POST',
          headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept },
          body: new URLSearchParams({ token: access_token }),
        });
        return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
      };
      const jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
      const expectAnswer = async (jwt: string) => {
        expect(decodeProtectedHeader(jwt)).toMatchObject({ alg: 'ES256', typ: 'token-introspection+jwt' });
        const { payload } = await jwtVerify(jwt, jwks, { issuer: server.url, audience: rs.introspection_client_id, typ: 'token-introspection+jwt', algorithms: ['ES256'] });
        expect(payload.token_introspection).toMatchObject({ active: true, sub: caller.client_id, aud: rs.identifier });
      };

      const signed = await ask('application/token-introspection+jwt');
      expect([signed.status, signed.type]).toEqual([200, 'application/token-introspection+jwt; charset=utf-8']);
      await expectAnswer(signed.text);
      // JSON is still answered, alike on the fast path and the Koa path.
      const koaOnly = 'application/json, application/token-introspection+jwt;q=0';
      expect(await ask('application/json')).toEqual(await ask(koaOnly));

      // Encryption to a registered key (RFC 9701 §5): a nested JWT, with iss and aud in the JWE header.
      const { publicKey, privateKey } = await generateKeyPair('ECDH-ES', { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: 'rs-enc-1', use: 'enc' };
      const refused = await api(server, admin, 'PATCH', `/resource-servers/${rs.id}`, { introspection_encrypted_response_alg: 'ECDH-ES' });
      expect(refused.status).toBe(422);
      const privateJwk = await exportJWK(privateKey);
      expect((await api(server, admin, 'PATCH', `/resource-servers/${rs.id}`, { introspection_encrypted_response_alg: 'ECDH-ES', introspection_jwks: { keys: [privateJwk] } })).status).toBe(422);
      const patched = await expectApi(server, admin, 'PATCH', `/resource-servers/${rs.id}`, { introspection_encrypted_response_alg: 'ECDH-ES', introspection_encrypted_response_enc: 'A256GCM', introspection_jwks: { keys: [jwk] } }, 200);
      expect(patched).toMatchObject({ introspection_signed_response_alg: 'ES256', introspection_encrypted_response_alg: 'ECDH-ES', introspection_encrypted_response_enc: 'A256GCM' });
      const encrypted = await ask('application/token-introspection+jwt');
      expect([encrypted.status, encrypted.type]).toEqual([200, 'application/token-introspection+jwt; charset=utf-8']);
      const { plaintext, protectedHeader } = await compactDecrypt(encrypted.text, privateKey);
      expect(protectedHeader).toMatchObject({ alg: 'ECDH-ES', enc: 'A256GCM', cty: 'JWT', kid: 'rs-enc-1', iss: server.url, aud: rs.introspection_client_id });
      await expectAnswer(new TextDecoder().decode(plaintext));
      // A client that registered encryption must ask for a JWT, on either path (as the engine requires).
      const plain = await ask('application/json');
      expect(plain.status).toBe(400);
      expect(JSON.parse(plain.text)).toEqual({ error: 'invalid_request', error_description: 'introspection must be requested with Accept: application/token-introspection+jwt for this client' });
      expect(await ask(koaOnly)).toEqual(plain);

      // Cleared, the answer is signed again (and JSON is allowed again).
      const cleared = await expectApi(server, admin, 'PATCH', `/resource-servers/${rs.id}`, { introspection_encrypted_response_alg: null, introspection_encrypted_response_enc: null, introspection_jwks: null }, 200);
      expect(cleared.introspection_encrypted_response_alg).toBeUndefined();
      await expectAnswer((await ask('application/token-introspection+jwt')).text);
      expect((await ask('application/json')).status).toBe(200);
      // RFC 7591 registration is for clients, not resource servers: it takes no encryption.
      const iat = await expectApi(server, admin, 'POST', '/initial-access-tokens', { expires_in: 600, scopes: ['things:read'], resources: [rs.identifier] }, 201);
      const registered = await fetch(`${server.url}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${iat.token}` },
        body: JSON.stringify({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] }, introspection_encrypted_response_alg: 'ECDH-ES' }),
      });
      expect(registered.status).toBe(400);
      expect(await registered.json()).toMatchObject({ error: 'invalid_client_metadata', error_description: expect.stringContaining('introspection_encrypted_response_alg') });
    });

    it('gives the engine\'s CORS answer at introspection and revocation, for the tokens Tessera answers as for those the engine does', async () => {
      const { access_token } = await client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://orders.test' });
      const basic = `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`;
      const ask = async (path: string, token: string, headers: Record<string, string>) => {
        const response = await fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams({ token }),
        });
        const cors = ['access-control-allow-origin', 'access-control-expose-headers', 'vary'].map((name) => response.headers.get(name));
        return { status: response.status, cors, body: await response.text() };
      };
      const koaOnly = { accept: 'application/json, application/token-introspection+jwt;q=0' };
      // Without Origin: `*` on every answer, Tessera's (a JWT, on either path) as the engine's (a value it does not hold).
      const anywhere = ['*', 'WWW-Authenticate', 'Origin'];
      for (const headers of [{}, koaOnly]) expect((await ask('/token/introspection', access_token, headers)).cors).toEqual(anywhere);
      expect(await ask('/token/introspection', 'not-a-token-tessera-holds', {})).toMatchObject({ status: 200, cors: anywhere });
      expect(await ask('/token/revocation', access_token, {})).toMatchObject({ status: 200, cors: anywhere });
      const wrongSecret = await ask('/token/introspection', access_token, { authorization: `Basic ${Buffer.from('orders-rs:wrong').toString('base64')}` });
      expect(wrongSecret).toMatchObject({ status: 401, cors: anywhere });
      // With an Origin, a confidential client is refused as the engine's default clientBasedCORS does,
      // before its secret is checked, by Tessera and by the engine alike.
      const origin = { origin: 'https://app.example.test' };
      const refused = { status: 400, cors: [null, 'WWW-Authenticate', 'Origin'], body: JSON.stringify({ error: 'invalid_request', error_description: 'origin https://app.example.test not allowed for client: orders-rs' }) };
      expect(await ask('/token/introspection', access_token, origin)).toEqual(refused);
      expect(await ask('/token/introspection', 'not-a-token-tessera-holds', origin)).toEqual(refused);
      expect(await ask('/token/introspection', access_token, { ...origin, authorization: `Basic ${Buffer.from('orders-rs:wrong').toString('base64')}` })).toEqual(refused);
      expect(await ask('/token/revocation', access_token, origin)).toEqual(refused);
      // An unknown client is answered 401, with the Origin allowed, as the engine does.
      const unknown = await ask('/token/introspection', access_token, { ...origin, authorization: `Basic ${Buffer.from('nobody:wrong').toString('base64')}` });
      expect(unknown).toMatchObject({ status: 401, cors: ['https://app.example.test', 'WWW-Authenticate', 'Origin'] });
      // The revocation asked without Origin above was carried out.
      expect((await client.tokenIntrospection(ordersRs, access_token)).active).toBe(false);
    });

    it('advertises the RFC 9701 algorithms it honours', async () => {
      const metadata = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(metadata.introspection_signing_alg_values_supported).toEqual(['RS256', 'ES256']);
      expect(metadata.introspection_encryption_alg_values_supported).toEqual(['RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES']);
    });

    it('refuses a resource the client may not use, and unknown scopes', async () => {
      await expect(client.clientCredentialsGrant(worker, { scope: 'orders:read', resource: 'https://elsewhere.test' })).rejects.toMatchObject({ error: 'invalid_target' });
      const tokens = await client.clientCredentialsGrant(worker, { scope: 'orders:read orders:write', resource: 'https://orders.test' }).catch((e) => e);
      // orders:write is defined by the API but not allowed to this client.
      expect(tokens.error ?? tokens.scope).not.toContain('orders:write');
    });

    it('answers bad input in the OAuth error format, never with a 500', async () => {
      const post = (path: string, body: string, headers: Record<string, string> = {}) =>
        fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
      const basic = { authorization: `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}` };
      const rsBasic = { authorization: `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}` };

      const unknownGrant = await post('/token', 'grant_type=password&username=a&password=b', basic);
      expect(unknownGrant.status).toBe(400);
      expect((await unknownGrant.json()).error).toBe('unsupported_grant_type');

      const wrongSecret = await post('/token', 'grant_type=client_credentials', { authorization: `Basic ${Buffer.from('worker:nope').toString('base64')}` });
      expect(wrongSecret.status).toBe(401);
      expect((await wrongSecret.json()).error).toBe('invalid_client');

      const wrongType = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { 'content-type': 'application/json', ...rsBasic }, body: '{"token":"x"}' });
      expect(wrongType.status).toBe(400);
      expect((await wrongType.json()).error).toBe('invalid_request');

      const oversized = await post('/token/introspection', `token=${'a'.repeat(70_000)}`, rsBasic);
      expect(oversized.status).toBeGreaterThanOrEqual(400);
      expect(oversized.status).toBeLessThan(500);

      for (const garbage of ['x', 'tsr_sat_short_abc', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', '%00%ff']) {
        const response = await post('/token/introspection', `token=${garbage}`, rsBasic);
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ active: false });
      }

      const badIntrospectionAuth = await post('/token/introspection', 'token=abc', { authorization: `Basic ${Buffer.from('orders-rs:wrong').toString('base64')}` });
      expect(badIntrospectionAuth.status).toBe(401);
      expect(badIntrospectionAuth.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      expect(await badIntrospectionAuth.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    });

    it('reports health and readiness', async () => {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ database: 'ok', cache: 'ok' });
    });

    if (backend.name === 'pglite+memory') {
      it('writes bootstrap.json once, readable by its owner only', () => {
        const path = join(server.config.dataDir, 'bootstrap.json');
        expect(statSync(path).mode & 0o777).toBe(0o600);
        expect(server.bootstrap).toMatchObject({ admin: { username: 'admin' }, issuer: server.url });
        expect(server.bootstrap.management_token).toMatch(/^tsr_sat_/);
      });
    }
  });
}
