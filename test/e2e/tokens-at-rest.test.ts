/**
 * docs/design.md, "No secret at rest, none in a log", end to end: after real clients have signed in (code + PKCE, PAR), refreshed,
 * obtained an opaque client-credentials token and registered dynamically, no token, code,
 * request_uri, secret or password they hold is anywhere in storage: not in any row of any
 * table, not in any Redis key or value. Every one of them still works, looked up by its SHA-256.
 */
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { modelKey } from '../../src/oidc/adapter.js';
import { storedId } from '../../src/oidc/model-keys.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, CALLBACK, CONFIDENTIAL_SECRET, SIGN_IN_SEED, signIn } from '../helpers/sign-in.js';
import { containing, storedText } from '../helpers/stored-text.js';

const PASSWORD = 'correct horse battery staple';
const WORKER_SECRET = EXAMPLE_SEED.seed.clients[0]!.client_secret;
const BILLING_RS = EXAMPLE_SEED.seed.resourceServers[1]!;
/** A server on the embedded default compiles PGlite's WASM and initialises its data directory: slow on a busy machine. */
const SERVER_START_TIMEOUT_MS = 180_000;

/** Both seeds: the sign-in clients, and the opaque Billing API with its machine client. */
const SEED = {
  seed: {
    resourceServers: EXAMPLE_SEED.seed.resourceServers,
    clients: [...SIGN_IN_SEED.seed.clients, ...EXAMPLE_SEED.seed.clients],
  },
};

for (const backend of backends) {
  describe(`tokens at rest on ${backend.name}`, () => {
    let server: TestServer;
    let publicClient: client.Configuration;
    let registrationUri: string;
    const options = { execute: [client.allowInsecureRequests] };
    /** Every value a client holds, by name; none may be stored. */
    const held: Record<string, string> = {};
    /** The ones the adapter keeps in the cache store, with their model. */
    const cached: { model: string; value: string }[] = [];

    /** An API asks (RFC 7662) or revokes (RFC 7009) with its introspection credentials; the Billing API unless said otherwise. */
    const asApi = (path: string, token: string, api: { introspection_client_id: string; introspection_client_secret: string } = BILLING_RS) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${api.introspection_client_id}:${api.introspection_client_secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token }),
      });
    const introspect = async (token: string, api?: typeof BILLING_RS) => (await (await asApi('/token/introspection', token, api)).json()) as { active: boolean; aud?: string };
    const revoke = async (token: string) => expect((await asApi('/token/revocation', token)).status).toBe(200);

    async function authorize(config: client.Configuration, url: URL, verifier: string, state: string, nonce: string) {
      const { callback } = await signIn(browserless(server), url.href, 'alice', PASSWORD);
      return { code: callback.searchParams.get('code')!, tokens: await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }) };
    }

    /** Code + PKCE (S256) through the public client, with consent, as alice. */
    async function signInWithPkce(scope: string) {
      const verifier = client.randomPKCECodeVerifier();
      const [state, nonce] = [client.randomState(), client.randomNonce()];
      const url = client.buildAuthorizationUrl(publicClient, {
        redirect_uri: CALLBACK,
        scope,
        prompt: 'consent',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return authorize(publicClient, url, verifier, state, nonce);
    }

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: SEED, clock: createTestClock() });
      await addUser(server, { username: 'alice', password: PASSWORD });
      publicClient = await client.discovery(new URL(server.url), 'web-public', undefined, client.None(), options);
      const confidentialClient = await client.discovery(new URL(server.url), 'web-confidential', undefined, client.ClientSecretBasic(CONFIDENTIAL_SECRET), options);
      const worker = await client.discovery(new URL(server.url), 'worker', undefined, client.ClientSecretBasic(WORKER_SECRET), options);

      // Code + PKCE with offline_access: an opaque access token (userinfo), a refresh token, rotated once.
      {
        const { code, tokens } = await signInWithPkce('openid profile offline_access');
        const refreshed = await client.refreshTokenGrant(publicClient, tokens.refresh_token!);
        Object.assign(held, {
          authorization_code: code,
          access_token: tokens.access_token,
          refresh_token_rotated: tokens.refresh_token!,
          refreshed_access_token: refreshed.access_token,
          refresh_token: refreshed.refresh_token!,
        });
        cached.push({ model: 'AuthorizationCode', value: code }, { model: 'AccessToken', value: tokens.access_token }, { model: 'AccessToken', value: refreshed.access_token });
        // Still a working family: the refreshed pair is found by the values the client holds.
        expect((await client.fetchUserInfo(publicClient, refreshed.access_token, client.skipSubjectCheck)).sub).toBeTruthy();
      }

      // PAR (RFC 9126): the request_uri names a stored request.
      {
        const verifier = client.randomPKCECodeVerifier();
        const [state, nonce] = [client.randomState(), client.randomNonce()];
        const url = await client.buildAuthorizationUrlWithPAR(confidentialClient, {
          redirect_uri: CALLBACK,
          scope: 'openid orders:read',
          resource: 'https://orders.test',
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
          nonce,
        });
        const requestUri = url.searchParams.get('request_uri')!.replace('urn:ietf:params:oauth:request_uri:', '');
        const { code } = await authorize(confidentialClient, url, verifier, state, nonce);
        Object.assign(held, { request_uri: requestUri, par_authorization_code: code });
        cached.push({ model: 'PushedAuthorizationRequest', value: requestUri }, { model: 'AuthorizationCode', value: code });
      }

      // Client credentials for the opaque Billing API.
      const machine = await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: BILLING_RS.identifier });
      held.client_credentials_token = machine.access_token;
      cached.push({ model: 'ClientCredentials', value: machine.access_token });

      // RFC 7591 registration with an initial access token; RFC 7592 reads it back.
      const iat = await api(server, server.managementToken, 'POST', '/initial-access-tokens', { expires_in: 600, scopes: ['billing:read'], resources: [BILLING_RS.identifier] });
      expect(iat.status).toBe(201);
      const registered = await (
        await fetch(`${server.url}/reg`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${iat.body.token}` },
          body: JSON.stringify({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', resources: [BILLING_RS.identifier] }),
        })
      ).json();
      registrationUri = registered.registration_client_uri;
      Object.assign(held, {
        initial_access_token: iat.body.token,
        registration_access_token: registered.registration_access_token,
        registered_client_secret: registered.client_secret,
        // Long-lived secrets and passwords, stored hashed or encrypted since the start.
        management_token: server.managementToken,
        confidential_client_secret: CONFIDENTIAL_SECRET,
        worker_secret: WORKER_SECRET,
        password: PASSWORD,
      });
      await server.tessera.audit.flush();
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it('stores none of the values clients hold, in any table or Redis key or value', async () => {
      expect(Object.values(held).every((value) => typeof value === 'string' && value.length >= 20)).toBe(true);
      const stored = await storedText({ db: server.tessera.db, redisUrl: server.env.REDIS_URL, redisPrefix: server.redisPrefix });
      expect(stored.rows.some((row) => row.startsWith('oidc_payloads '))).toBe(true);
      if (backend.name === 'postgres+redis') expect(stored.redis.some((entry) => entry.includes(':oidc:AccessToken:'))).toBe(true);
      expect(containing(stored, held)).toEqual([]);
    });

    it('keeps nothing in the in-process or Redis store under a token value', async () => {
      // The in-process store cannot be listed; its keys are checked by name.
      for (const { model, value } of cached) expect(await server.tessera.cache.get(`oidc:${model}:${value}`), `${model} under its value`).toBeNull();
    });

    it('still finds every token by the value its holder presents', async () => {
      expect(await introspect(held.client_credentials_token!)).toMatchObject({ active: true, aud: BILLING_RS.identifier });
      expect((await fetch(registrationUri, { headers: { authorization: `Bearer ${held.registration_access_token}` } })).status).toBe(200);
      const refreshed = await client.refreshTokenGrant(publicClient, held.refresh_token!);
      expect(refreshed.refresh_token).toBeTruthy();

      // RFC 7009 revocation reaches the token under its digest.
      await revoke(held.client_credentials_token!);
      expect(await introspect(held.client_credentials_token!)).toEqual({ active: false });
    });

    it('serves tokens issued before the upgrade, stored the old way, and moves them to the new layout', async () => {
      // Put a live opaque token and refresh token back the way the previous release stored them:
      // under the raw value, which the payload repeats as jti.
      const worker = await client.discovery(new URL(server.url), 'worker', undefined, client.ClientSecretBasic(WORKER_SECRET), options);
      const opaque = (await client.clientCredentialsGrant(worker, { scope: 'billing:read', resource: BILLING_RS.identifier })).access_token;
      const { cache, db } = server.tessera;
      const record = JSON.parse((await cache.get(modelKey('ClientCredentials', opaque)))!) as Record<string, unknown>;
      await cache.del(modelKey('ClientCredentials', opaque));
      await cache.set(`oidc:ClientCredentials:${opaque}`, JSON.stringify({ ...record, jti: opaque }), 600);
      const { tokens } = await signInWithPkce('openid offline_access');
      const refreshToken = tokens.refresh_token!;
      await db.query("UPDATE oidc_payloads SET id = $2, payload = payload || jsonb_build_object('jti', $2::text) WHERE model = 'RefreshToken' AND id = $1", [
        storedId('RefreshToken', refreshToken),
        refreshToken,
      ]);

      // Introspection (handed from the fast path to the token endpoints) finds the old record, and
      // answers for it like for any other: nothing for an API it is not for (docs/design.md, "Least privilege per tenant").
      expect(await introspect(opaque, EXAMPLE_SEED.seed.resourceServers[0]!)).toEqual({ active: false });
      expect(await introspect(opaque)).toMatchObject({ active: true, aud: BILLING_RS.identifier, client_id: 'worker' });
      expect(await cache.get(`oidc:ClientCredentials:${opaque}`)).toBeNull();
      expect(await cache.get(modelKey('ClientCredentials', opaque))).not.toBeNull();
      // The engine finds the old refresh token row, and rotates it.
      expect((await client.refreshTokenGrant(publicClient, refreshToken)).refresh_token).toBeTruthy();
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM oidc_payloads WHERE id = $1', [refreshToken]);
      expect(rows[0]!.n).toBe(0);

      // What is stored now, the digest, is no token, even while old records are looked for.
      expect(await introspect(storedId('ClientCredentials', opaque))).toEqual({ active: false });
      await revoke(opaque);
      expect(await introspect(opaque)).toEqual({ active: false });
    });
  });
}
