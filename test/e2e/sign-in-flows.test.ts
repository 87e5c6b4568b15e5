/**
 * Interactive sign-in, driven by a certified relying-party library (openid-client) against a real
 * running Tessera on every backend: authorization code + PKCE, login and consent pages, ID token,
 * userinfo, refresh-token rotation with the reuse grace window and family revocation, PAR, the
 * hybrid flow, RP-initiated logout, and the bad inputs that must never become a redirect or a 500.
 * The pages are posted with plain fetch and a cookie jar (the browser tests use Chromium).
 */
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { modelKey } from '../../src/oidc/adapter.js';
import { newId } from '../../src/storage/ids.js';
import { backends, createTestClock } from '../helpers/backends.js';
import type { TestClock } from '../helpers/backends.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, CALLBACK, CONFIDENTIAL_SECRET, hiddenField, interactionPath, oauthError, POST_LOGOUT, SERVER_START_TIMEOUT_MS, SIGN_IN_SEED, signIn } from '../helpers/sign-in.js';

const PASSWORD = 'correct horse battery staple';

for (const backend of backends) {
  describe(`interactive sign-in on ${backend.name}`, () => {
    let server: TestServer;
    let clock: TestClock;
    let publicClient: client.Configuration;
    let confidentialClient: client.Configuration;
    let admin: { username: string; password: string };
    const alice = { username: 'alice', password: PASSWORD };

    beforeAll(async () => {
      clock = createTestClock();
      server = await startTestServer(backend.name, { overrides: SIGN_IN_SEED, clock });
      admin = server.bootstrap.admin;
      await addUser(server, { ...alice, name: 'Alice Example', email: 'alice@example.test' });
      const options = { execute: [client.allowInsecureRequests] };
      publicClient = await client.discovery(new URL(server.url), 'web-public', undefined, client.None(), options);
      confidentialClient = await client.discovery(new URL(server.url), 'web-confidential', undefined, client.ClientSecretBasic(CONFIDENTIAL_SECRET), options);
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    /**
     * A fresh authorization request of the public client, with its PKCE verifier, state and nonce.
     * OpenID Connect Core §11: offline_access is honoured only together with prompt=consent.
     */
    async function authorization(extra: Record<string, string> = {}, config = publicClient) {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: CALLBACK,
        scope: 'openid profile email offline_access',
        prompt: 'consent',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...extra,
      });
      return { url, verifier, state, nonce };
    }

    async function signedIn(config = publicClient, username = alice.username, password = alice.password, extra: Record<string, string> = {}) {
      const request = await authorization(extra, config);
      const b = browserless(server);
      const { callback } = await signIn(b, request.url.href, username, password);
      const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
      return { tokens, b, request, callback };
    }

    it('advertises the interactive endpoints and only the flows RFC 9700 keeps', () => {
      const metadata = publicClient.serverMetadata();
      expect(metadata.authorization_endpoint).toBe(`${server.url}/auth`);
      expect(metadata.userinfo_endpoint).toBe(`${server.url}/me`);
      expect(metadata.end_session_endpoint).toBe(`${server.url}/session/end`);
      expect(metadata.pushed_authorization_request_endpoint).toBe(`${server.url}/request`);
      expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
      expect(metadata.response_types_supported).toEqual(expect.arrayContaining(['code', 'code id_token']));
      expect(metadata.response_types_supported).not.toContain('id_token');
      expect(metadata.response_types_supported).not.toContain('token');
      expect(metadata.grant_types_supported).not.toContain('password');
    });

    it('runs code + PKCE as the bootstrap admin: login, consent, ID token, userinfo by scope, refresh rotation', async () => {
      const request = await authorization();
      const b = browserless(server);
      const { callback, loginShown, consentShown } = await signIn(b, request.url.href, admin.username, admin.password);
      expect(loginShown).toBe(true);
      expect(consentShown).toBe(true);
      expect(callback.searchParams.get('state')).toBe(request.state);
      expect(callback.searchParams.get('iss')).toBe(server.url);

      const tokens = await client.authorizationCodeGrant(publicClient, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
      const claims = tokens.claims()!;
      expect(claims.iss).toBe(server.url);
      expect(claims.aud).toBe('web-public');
      expect(claims.nonce).toBe(request.nonce);
      expect(claims.org_id).toBe(server.bootstrap.organization_id);
      expect(tokens.refresh_token).toBeTruthy();
      expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'offline_access', 'openid', 'profile']);

      const userinfo = await client.fetchUserInfo(publicClient, tokens.access_token, claims.sub);
      expect(userinfo).toMatchObject({ sub: claims.sub, preferred_username: 'admin', name: 'Administrator', org_id: server.bootstrap.organization_id });

      const refreshed = await client.refreshTokenGrant(publicClient, tokens.refresh_token!);
      expect(refreshed.refresh_token).toBeTruthy();
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
      expect(refreshed.claims()?.sub).toBe(claims.sub);
      expect((await client.fetchUserInfo(publicClient, refreshed.access_token, claims.sub)).sub).toBe(claims.sub);
    });

    it('answers a rotated refresh token again within the grace window, and revokes the family after it', async () => {
      const { tokens } = await signedIn();
      const first = await client.refreshTokenGrant(publicClient, tokens.refresh_token!);
      // Two tabs, or a retry after a lost answer: the same old token, the same answer.
      const again = await client.refreshTokenGrant(publicClient, tokens.refresh_token!);
      expect(again.refresh_token).toBe(first.refresh_token);
      expect(again.access_token).toBe(first.access_token);

      clock.advance(6_000); // past refresh_reuse_grace_seconds (5 s by default)
      expect(await oauthError(client.refreshTokenGrant(publicClient, tokens.refresh_token!))).toBe('invalid_grant');
      // The whole family is dead: the newest refresh token and the access tokens too.
      expect(await oauthError(client.refreshTokenGrant(publicClient, first.refresh_token!))).toBe('invalid_grant');
      await expect(client.fetchUserInfo(publicClient, first.access_token, client.skipSubjectCheck)).rejects.toThrow();
    });

    it('replays concurrent refreshes with the same token instead of treating the race as theft', async () => {
      const { tokens } = await signedIn();
      const results = await Promise.all([1, 2, 3].map(() => client.refreshTokenGrant(publicClient, tokens.refresh_token!)));
      expect(new Set(results.map((r) => r.refresh_token)).size).toBe(1);
      expect((await client.refreshTokenGrant(publicClient, results[0]!.refresh_token!)).refresh_token).toBeTruthy();
    });

    it('replays within the grace window to a confidential client that authenticates again', async () => {
      const { tokens } = await signedIn(confidentialClient, alice.username, alice.password, { scope: 'openid offline_access' });
      const first = await client.refreshTokenGrant(confidentialClient, tokens.refresh_token!);
      const again = await client.refreshTokenGrant(confidentialClient, tokens.refresh_token!);
      expect(again.refresh_token).toBe(first.refresh_token);
      // Without its secret, the client gets nothing from the window.
      const anonymous = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'web-confidential' }),
      });
      expect(anonymous.status).toBe(401);
      expect((await anonymous.json()).error).toBe('invalid_client');
    });

    it('tells only the client that holds a refresh token about it, at introspection and revocation', async () => {
      const { tokens } = await signedIn(confidentialClient, alice.username, alice.password, { scope: 'openid offline_access' });
      const refreshToken = tokens.refresh_token!;
      const ask = (path: string, id: string, secret: string) =>
        fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: refreshToken }),
        });
      // A resource server (here of the same organization) learns nothing, and cannot revoke it.
      expect(await (await ask('/token/introspection', 'orders-rs', 'orders-rs-secret-0123456789')).json()).toEqual({ active: false });
      expect((await ask('/token/revocation', 'orders-rs', 'orders-rs-secret-0123456789')).status).toBe(200);
      const own = await (await ask('/token/introspection', 'web-confidential', CONFIDENTIAL_SECRET)).json();
      expect(own).toMatchObject({ active: true, client_id: 'web-confidential' });
      // Its own client may revoke it.
      expect((await ask('/token/revocation', 'web-confidential', CONFIDENTIAL_SECRET)).status).toBe(200);
      expect(await (await ask('/token/introspection', 'web-confidential', CONFIDENTIAL_SECRET)).json()).toEqual({ active: false });
    });

    it('does not replay the grace answer to another client', async () => {
      const { tokens } = await signedIn();
      await client.refreshTokenGrant(publicClient, tokens.refresh_token!);
      expect(await oauthError(client.refreshTokenGrant(confidentialClient, tokens.refresh_token!))).toMatch(/invalid_grant|invalid_client/);
    });

    it('remembers consent: a new session of the same user is not asked again', async () => {
      await addUser(server, { username: 'remy', password: PASSWORD });
      const online = { scope: 'openid profile', prompt: 'login' };
      const first = await signIn(browserless(server), (await authorization(online)).url.href, 'remy', PASSWORD);
      expect(first.consentShown).toBe(true);
      const request = await authorization(online);
      const { callback, loginShown, consentShown } = await signIn(browserless(server), request.url.href, 'remy', PASSWORD);
      expect(loginShown).toBe(true);
      expect(consentShown).toBe(false);
      const tokens = await client.authorizationCodeGrant(publicClient, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
      expect(tokens.scope?.split(' ').sort()).toEqual(['openid', 'profile']);
      expect(tokens.refresh_token).toBeUndefined();
    });

    it('gives every sign-in its own refresh family: reuse on one device does not end another', async () => {
      const first = await signedIn();
      const second = (await signedIn()).tokens;
      expect(second.refresh_token).toBeTruthy();
      // Reuse on the first device does not end the second one's family.
      await client.refreshTokenGrant(publicClient, first.tokens.refresh_token!);
      clock.advance(6_000);
      await oauthError(client.refreshTokenGrant(publicClient, first.tokens.refresh_token!));
      expect((await client.refreshTokenGrant(publicClient, second.refresh_token!)).access_token).toBeTruthy();
    });

    it('reuses the session: a second authorization in the same browser needs no page at all (prompt=none works)', async () => {
      const { b } = await signedIn();
      const request = await authorization({ scope: 'openid profile', prompt: 'none' });
      const step = await b.follow(request.url.href);
      expect(step.location).toMatch(new RegExp(`^${CALLBACK}\\?code=`));
    });

    it('signs out through RP-initiated logout: the session ends and its refresh tokens are revoked', async () => {
      const { tokens, b } = await signedIn();
      const logoutUrl = client.buildEndSessionUrl(publicClient, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
      const page = await b.request(logoutUrl.href);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
      const html = await page.text();
      expect(html).toContain('Sign out');
      const confirm = await b.request('/session/end/confirm', { form: { xsrf: hiddenField(html, 'xsrf'), logout: 'yes' } });
      expect(confirm.status).toBe(303);
      expect(confirm.headers.get('location')).toBe(`${POST_LOGOUT}?state=bye`);

      expect(await oauthError(client.refreshTokenGrant(publicClient, tokens.refresh_token!))).toBe('invalid_grant');
      const again = await b.follow((await authorization()).url.href);
      expect(again.html).toContain('action="' + interactionPath(again.url) + '/login"');
    });

    it('keeps offline_access refresh tokens after sign-out when the organization policy says so', async () => {
      const org = await server.tessera.repos.organizations.insert({ id: newId('org'), name: `keep-${Date.now()}`, policy: { logout_revokes_refresh_tokens: false } });
      await server.tessera.repos.clients.insert({
        client_id: `keep-${org.id}`, organization_id: org.id, kind: 'oauth', name: 'Keeper', resource_server_id: null, service_account_id: null,
        metadata: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [CALLBACK], post_logout_redirect_uris: [POST_LOGOUT], token_endpoint_auth_method: 'none' },
        allowed_scopes: ['openid', 'offline_access'], allowed_resources: [], secret_enc: null, registration: false,
      });
      await addUser(server, { username: 'keeper', password: PASSWORD, organizationId: org.id });
      const keeper = await client.discovery(new URL(server.url), `keep-${org.id}`, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const { tokens, b } = await signedIn(keeper, 'keeper', PASSWORD);
      const html = await (await b.request(client.buildEndSessionUrl(keeper, { id_token_hint: tokens.id_token! }).href)).text();
      expect((await b.request('/session/end/confirm', { form: { xsrf: hiddenField(html, 'xsrf'), logout: 'yes' } })).status).toBe(303);
      expect((await client.refreshTokenGrant(keeper, tokens.refresh_token!)).access_token).toBeTruthy();
    });

    it('supports PAR (RFC 9126) and the hybrid flow for a confidential client', async () => {
      const verifier = client.randomPKCECodeVerifier();
      const nonce = client.randomNonce();
      const state = client.randomState();
      const url = await client.buildAuthorizationUrlWithPAR(confidentialClient, {
        redirect_uri: CALLBACK,
        scope: 'openid profile orders:read',
        resource: 'https://orders.test',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      expect(url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
      const { callback } = await signIn(browserless(server), url.href, alice.username, alice.password);
      const tokens = await client.authorizationCodeGrant(confidentialClient, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
      expect(tokens.scope).toBe('orders:read');
      expect(tokens.claims()?.sub).toBeTruthy();

      // Hybrid: code and ID token come back in the fragment.
      const hybrid = await authorization({ response_type: 'code id_token', scope: 'openid' }, confidentialClient);
      const b = browserless(server);
      const done = await signIn(b, hybrid.url.href, alice.username, alice.password);
      const fragment = new URLSearchParams(done.callback.hash.slice(1));
      expect(fragment.get('code')).toBeTruthy();
      expect(fragment.get('id_token')?.split('.')).toHaveLength(3);
    });

    it('refuses the hybrid and implicit flows for a public client, and the password grant for everyone', async () => {
      const hybrid = await authorization({ response_type: 'code id_token' });
      const step = await browserless(server).follow(hybrid.url.href);
      expect(step.location).toBeDefined();
      expect(new URLSearchParams(new URL(step.location!).hash.slice(1)).get('error') ?? new URL(step.location!).searchParams.get('error')).toMatch(/unauthorized_client|unsupported_response_type|invalid_request/);
      // A public client registered for the hybrid flow is refused as misconfigured, with a page.
      await server.tessera.repos.clients.insert({
        client_id: 'hybrid-public', organization_id: server.bootstrap.organization_id, kind: 'oauth', name: 'Misconfigured', resource_server_id: null, service_account_id: null,
        metadata: { grant_types: ['authorization_code', 'implicit'], response_types: ['code', 'code id_token'], redirect_uris: [CALLBACK], token_endpoint_auth_method: 'none' },
        allowed_scopes: ['openid'], allowed_resources: [], secret_enc: null, registration: false,
      });
      const misconfigured = await authorization({ response_type: 'code id_token', client_id: 'hybrid-public', scope: 'openid' });
      const refused = await fetch(misconfigured.url, { redirect: 'manual' });
      expect(refused.status).toBe(400);
      expect(refused.headers.get('location')).toBeNull();
      expect(await refused.text()).toContain('only for confidential clients');

      const implicit = await authorization({ response_type: 'token' });
      const implicitStep = await browserless(server).follow(implicit.url.href);
      expect(implicitStep.location ?? implicitStep.html).toMatch(/unsupported_response_type/);
      const password = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: admin.password, client_id: 'web-public' }),
      });
      expect(password.status).toBe(400);
      expect((await password.json()).error).toBe('unsupported_grant_type');
    });

    it('shows an error page, never a redirect, for an unknown client or an unregistered redirect URI', async () => {
      const unknown = await authorization();
      unknown.url.searchParams.set('client_id', 'nobody');
      const a = await fetch(unknown.url, { redirect: 'manual' });
      expect(a.status).toBe(400);
      expect(a.headers.get('location')).toBeNull();
      expect(await a.text()).toContain('invalid_client');

      const foreign = await authorization({ redirect_uri: 'https://attacker.example/cb' });
      const b = await fetch(foreign.url, { redirect: 'manual' });
      expect(b.status).toBe(400);
      expect(b.headers.get('location')).toBeNull();
      expect(await b.text()).toContain('invalid_redirect_uri');
    });

    it('requires PKCE (S256) and tells the client so through its redirect URI', async () => {
      const request = await authorization();
      request.url.searchParams.delete('code_challenge');
      request.url.searchParams.delete('code_challenge_method');
      const response = await fetch(request.url, { redirect: 'manual' });
      const location = new URL(response.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(CALLBACK);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toMatch(/PKCE/);

      const plain = await authorization({ code_challenge_method: 'plain' });
      const plainResponse = await fetch(plain.url, { redirect: 'manual' });
      expect(new URL(plainResponse.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
    });

    it('lets the relying party detect a tampered state', async () => {
      const request = await authorization();
      const { callback } = await signIn(browserless(server), request.url.href, alice.username, alice.password);
      callback.searchParams.set('state', 'tampered');
      await expect(client.authorizationCodeGrant(publicClient, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state })).rejects.toThrow();
    });

    it('rejects a replayed authorization code and revokes the tokens already issued from it (RFC 6749 §4.1.2)', async () => {
      const { tokens, callback, request } = await signedIn();
      expect(await oauthError(client.authorizationCodeGrant(publicClient, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce }))).toBe('invalid_grant');
      await expect(client.fetchUserInfo(publicClient, tokens.access_token, client.skipSubjectCheck)).rejects.toThrow();
      expect(await oauthError(client.refreshTokenGrant(publicClient, tokens.refresh_token!))).toBe('invalid_grant');
    });

    it('rejects a wrong PKCE verifier', async () => {
      const request = await authorization();
      const { callback } = await signIn(browserless(server), request.url.href, alice.username, alice.password);
      expect(await oauthError(client.authorizationCodeGrant(publicClient, callback, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: request.state }))).toBe('invalid_grant');
    });

    it('shows one generic message for a wrong password or an unknown user, and refuses deactivated and foreign users', async () => {
      await addUser(server, { username: 'dora', password: PASSWORD, status: 'deactivated' });
      const other = await server.tessera.repos.organizations.insert({ id: newId('org'), name: `other-${Date.now()}`, policy: {} });
      await addUser(server, { username: 'olga', password: PASSWORD, organizationId: other.id });

      const attempt = async (username: string, password: string) => {
        const b = browserless(server);
        const page = await b.follow((await authorization()).url.href);
        const path = interactionPath(page.url);
        const response = await b.request(`${path}/login`, { form: { csrf: hiddenField(page.html!, 'csrf'), username, password } });
        return { status: response.status, html: await response.text() };
      };
      const wrongPassword = await attempt('alice', 'not the password');
      const unknownUser = await attempt('nobody-here', 'not the password');
      const foreignUser = await attempt('olga', PASSWORD);
      for (const result of [wrongPassword, unknownUser, foreignUser]) {
        expect(result.status).toBe(401);
        expect(result.html).toContain('Incorrect username or password.');
        expect(result.html).toContain('aria-describedby="form-error"');
      }
      const deactivated = await attempt('dora', PASSWORD);
      expect(deactivated.status).toBe(403);
      expect(deactivated.html).toContain('deactivated');
    });

    it('matches usernames without regard to case, at sign-in, in the throttle and for a new account', async () => {
      await addUser(server, { username: 'Carol.Case', password: PASSWORD });
      const request = await authorization();
      const { callback } = await signIn(browserless(server), request.url.href, 'cAROL.cASE', PASSWORD);
      expect(callback.searchParams.get('code')).toBeTruthy();
      const duplicate = await api(server, server.managementToken, 'POST', '/users', { username: 'CAROL.CASE', role: 'member' });
      expect(duplicate.status).toBe(409);
      expect((await server.tessera.repos.users.findByUsername(server.bootstrap.organization_id, 'carol.case'))?.username).toBe('Carol.Case');
      // Failures typed in different cases count against one account (no extra guesses by case).
      const throttle = server.tessera.loginThrottle;
      const orgId = server.bootstrap.organization_id;
      const cases = ['carol.case', 'CAROL.CASE', 'Carol.Case', 'cArOl.CaSe', 'CAROL.case'];
      // As many failures as the per-user limit (10 by default), each typed differently, from different addresses.
      for (let i = 0; i < 10; i += 1) await throttle.recordFailure(orgId, cases[i % cases.length]!, `192.0.2.${i + 1}`);
      const lockouts = await throttle.listLockouts(orgId);
      expect(lockouts.filter((l) => l.username?.toLowerCase() === 'carol.case')).toHaveLength(1);
      expect((await throttle.check(orgId, 'carol.CASE', '198.51.100.9')).locked).toBe(true);
      await throttle.unlock(orgId, 'Carol.Case');
      expect((await throttle.check(orgId, 'carol.case', '198.51.100.9')).locked).toBe(false);
    });

    it('throttles repeated failures for a username and shows the lock-out to administrators', async () => {
      await addUser(server, { username: 'tina', password: PASSWORD });
      const b = browserless(server);
      const page = await b.follow((await authorization()).url.href);
      const path = interactionPath(page.url);
      const csrf = hiddenField(page.html!, 'csrf');
      const limit = server.tessera.loginThrottle.limits.userFailures;
      const statuses: number[] = [];
      for (let i = 0; i < limit; i++) statuses.push((await b.request(`${path}/login`, { form: { csrf, username: 'tina', password: `guess ${i}` } })).status);
      expect(statuses.slice(0, -1).every((s) => s === 401)).toBe(true);
      expect(statuses.at(-1)).toBe(429);
      // Locked: even the right password is refused, with a retry hint.
      const locked = await b.request(`${path}/login`, { form: { csrf, username: 'tina', password: PASSWORD } });
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await locked.text()).toContain('Too many failed sign-in attempts');

      // Administrators see the lock-out through the Management API, and can lift it.
      const listed = await api(server, server.managementToken, 'GET', '/sign-in-lockouts');
      expect(listed.status).toBe(200);
      expect(listed.body).toEqual({ items: [expect.objectContaining({ kind: 'user', username: 'tina', failures: limit })], next_cursor: null });
      expect((await api(server, server.managementToken, 'DELETE', '/sign-in-lockouts/tina')).status).toBe(204);
      expect((await api(server, server.managementToken, 'GET', '/sign-in-lockouts')).body.items).toEqual([]);
      const after = await b.request(`${path}/login`, { form: { csrf, username: 'tina', password: PASSWORD } });
      expect(after.status).toBe(303);

      // Every step left an audit event.
      await server.tessera.audit.flush();
      const actions = async (action: string) => (await api(server, server.managementToken, 'GET', `/audit-events?action=${action}`)).body.items as { actor: { name: string | null } }[];
      expect((await actions('login.failed')).filter((e) => e.actor.name === 'tina').length).toBeGreaterThanOrEqual(limit);
      expect((await actions('login.locked_out')).filter((e) => e.actor.name === 'tina')).toHaveLength(1);
      expect((await actions('user.unlocked')).length).toBeGreaterThanOrEqual(1);
      expect((await actions('login.succeeded')).filter((e) => e.actor.name === 'tina')).toHaveLength(1);
    });

    it('refuses forms without a valid CSRF token, oversized fields and bodies, and expired interactions, with pages instead of 500s', async () => {
      const b = browserless(server);
      const page = await b.follow((await authorization()).url.href);
      const path = interactionPath(page.url);
      const csrf = hiddenField(page.html!, 'csrf');
      expect(page.response.headers.get('content-security-policy')).toMatch(/default-src 'none'.*form-action 'self' http:\/\/127\.0\.0\.1:8181/);
      expect(page.html).not.toMatch(/<script/i);

      expect((await b.request(`${path}/login`, { form: { username: 'admin', password: 'x' } })).status).toBe(403);
      expect((await b.request(`${path}/login`, { form: { csrf: `${csrf.slice(0, -2)}AA`, username: 'admin', password: 'x' } })).status).toBe(403);
      // Another browser (no CSRF cookie) cannot post this browser's form.
      const stranger = browserless(server);
      expect((await stranger.request(`${path}/login`, { form: { csrf, username: 'admin', password: 'x' } })).status).toBe(400);

      const longName = await b.request(`${path}/login`, { form: { csrf, username: 'a'.repeat(300), password: 'x' } });
      expect(longName.status).toBe(400);
      expect(await longName.text()).toMatch(/id="username-error"[^>]*>A username has at most 256 characters/);
      const longPassword = await b.request(`${path}/login`, { form: { csrf, username: 'admin', password: 'p'.repeat(2000) } });
      expect(longPassword.status).toBe(400);
      const huge = await b.request(`${path}/login`, { form: { csrf, username: 'admin', password: 'p'.repeat(70_000) } });
      expect(huge.status).toBe(413);
      const json = await b.request(`${path}/login`, { body: '{"username":"admin"}', contentType: 'application/json' });
      expect(json.status).toBe(400);

      // The interaction expires (here: removed from the store, as its TTL would).
      await server.tessera.cache.del(modelKey('Interaction', path.split('/').pop()!));
      const expired = await b.request(path);
      expect(expired.status).toBe(400);
      expect(await expired.text()).toContain('This sign-in has expired');
      expect((await b.request(`${path}/login`, { form: { csrf, username: 'admin', password: admin.password } })).status).toBe(400);
      expect((await fetch(`${server.url}/interaction/not-a-real-uid`)).status).toBe(400);
    });

    it('ends a refresh family that stays unused for the organization\'s idle lifetime', async () => {
      const org = await server.tessera.repos.organizations.insert({ id: newId('org'), name: `idle-${Date.now()}`, policy: { refresh_idle_lifetime_seconds: 120 } });
      await server.tessera.repos.clients.insert({
        client_id: `idle-${org.id}`, organization_id: org.id, kind: 'oauth', name: 'Idle', resource_server_id: null, service_account_id: null,
        metadata: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [CALLBACK], token_endpoint_auth_method: 'none' },
        allowed_scopes: ['openid', 'offline_access'], allowed_resources: [], secret_enc: null, registration: false,
      });
      await addUser(server, { username: 'ida', password: PASSWORD, organizationId: org.id });
      const idle = await client.discovery(new URL(server.url), `idle-${org.id}`, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const { tokens } = await signedIn(idle, 'ida', PASSWORD, { scope: 'openid offline_access' });
      clock.advance(100_000);
      const rotated = await client.refreshTokenGrant(idle, tokens.refresh_token!);
      clock.advance(100_000); // each use starts a new idle period
      const again = await client.refreshTokenGrant(idle, rotated.refresh_token!);
      clock.advance(121_000);
      expect(await oauthError(client.refreshTokenGrant(idle, again.refresh_token!))).toBe('invalid_grant');
    });

    it('lets the user deny consent, which the client learns as access_denied', async () => {
      await addUser(server, { username: 'denise', password: PASSWORD });
      const request = await authorization();
      const b = browserless(server);
      let step = await b.follow(request.url.href);
      let path = interactionPath(step.url);
      const login = await b.request(`${path}/login`, { form: { csrf: hiddenField(step.html!, 'csrf'), username: 'denise', password: PASSWORD } });
      step = await b.follow(login.headers.get('location')!);
      path = interactionPath(step.url);
      expect(step.html).toContain('Public Web App');
      expect(step.html).toContain('See your email address');
      const denied = await b.request(`${path}/confirm`, { form: { csrf: hiddenField(step.html!, 'csrf'), decision: 'deny' } });
      const end = await b.follow(denied.headers.get('location')!);
      expect(new URL(end.location!).searchParams.get('error')).toBe('access_denied');
    });
  });
}
