/**
 * The built-in public client `tessera-cli.<organization id>` (docs/sign-in.md, "Signing in from the
 * command line"), driven by a certified relying-party library (openid-client) against a real
 * running Tessera on every backend: a user signs in with authorization code + PKCE and a loopback
 * redirect URI on a port chosen at run time (RFC 8252 §7.3), gets a Management API token with no
 * more than their role grants, and uses it. Loopback ports are free for this client only; the
 * client is listed but cannot be changed; refresh tokens rotate with reuse detection; and one
 * organization's client never signs in another organization's users.
 */
import * as client from 'openid-client';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliClientId } from '../../src/domain/cli-client.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, ROLE_SCOPES } from '../../src/domain/types.js';
import { backends, createTestClock } from '../helpers/backends.js';
import type { TestClock } from '../helpers/backends.js';
import { createOrganization, expectApi } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { api, freePort, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, interactionPath, oauthError, SERVER_START_TIMEOUT_MS, SIGN_IN_SEED, signIn } from '../helpers/sign-in.js';

const PASSWORD = 'correct horse battery staple';
const ALL_SCOPES = ORGANIZATION_SCOPES.join(' ');

const sorted = (scope: string | undefined) => (scope ?? '').split(' ').filter(Boolean).sort();

for (const backend of backends) {
  describe(`tessera-cli on ${backend.name}`, () => {
    let server: TestServer;
    let clock: TestClock;
    let organizationId: string;
    let cli: client.Configuration;
    const options = { execute: [client.allowInsecureRequests] };
    const member = { username: 'mel', password: PASSWORD };
    const admin = { username: 'ada', password: PASSWORD };
    let adminId: string;
    let other: CreatedOrganization;

    beforeAll(async () => {
      clock = createTestClock();
      server = await startTestServer(backend.name, { overrides: SIGN_IN_SEED, clock });
      organizationId = server.bootstrap.organization_id;
      await addUser(server, member);
      adminId = await addUser(server, admin);
      await expectApi(server, server.managementToken, 'PATCH', `/users/${adminId}`, { role: 'admin' }, 200);
      cli = await client.discovery(new URL(server.url), cliClientId(organizationId), undefined, client.None(), options);
      other = await createOrganization(server, server.managementToken);
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    /** An authorization request of the CLI client with a loopback redirect URI on a port picked now. */
    async function authorization(config = cli, extra: Record<string, string> = {}) {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: `openid offline_access ${ALL_SCOPES}`,
        resource: MANAGEMENT_AUDIENCE,
        prompt: 'consent',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        ...extra,
      });
      return { url, verifier, state, redirectUri };
    }

    async function signedIn(user: { username: string; password: string }, config = cli, extra: Record<string, string> = {}) {
      const request = await authorization(config, extra);
      const b = browserless(server);
      const { callback, consentShown } = await signIn(b, request.url.href, user.username, user.password);
      expect(`${callback.origin}${callback.pathname}`).toBe(request.redirectUri);
      const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state }, { resource: MANAGEMENT_AUDIENCE });
      return { tokens, consentShown, b, request };
    }

    it('exists in the bootstrap organization: listed as built in, public, PKCE, Management API only', async () => {
      const org = await expectApi(server, server.managementToken, 'GET', '/organization', undefined, 200);
      expect(org.cli_client_id).toBe(`tessera-cli.${organizationId}`);
      const listed = await expectApi(server, server.managementToken, 'GET', '/clients?limit=100', undefined, 200);
      const builtIn = listed.items.find((c: { client_id: string }) => c.client_id === org.cli_client_id);
      expect(builtIn).toMatchObject({
        name: 'Tessera CLI',
        built_in: true,
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
        redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
        resources: [MANAGEMENT_AUDIENCE],
      });
      expect(builtIn.scopes).toEqual(expect.arrayContaining([...ORGANIZATION_SCOPES]));
      expect(builtIn.scopes).not.toContain('organizations:admin');
      // The two built-in clients: tessera-cli and tessera-console (docs/console.md).
      expect(listed.items.filter((c: { built_in: boolean }) => c.built_in).map((c: { client_id: string }) => c.client_id).sort()).toEqual([org.cli_client_id, `tessera-console.${org.id}`].sort());
      expect(await expectApi(server, server.managementToken, 'GET', `/clients/${org.cli_client_id}`, undefined, 200)).toMatchObject({ built_in: true });
    });

    it('cannot be changed, deleted or given a secret through the Management API (409 problem+json)', async () => {
      const id = cliClientId(organizationId);
      for (const [method, path, body] of [
        ['DELETE', `/clients/${id}`, undefined],
        ['PATCH', `/clients/${id}`, { grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] }],
        ['PATCH', `/clients/${id}`, { redirect_uris: ['https://evil.example.test/callback'] }],
        ['PATCH', `/clients/${id}`, { name: 'renamed' }],
        ['POST', `/clients/${id}/secret`, {}],
      ] as const) {
        const response = await api(server, server.managementToken, method, path, body);
        expect(response.status, `${method} ${path}`).toBe(409);
        expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(response.body.detail).toMatch(/built-in tessera-cli client/);
      }
      expect(await expectApi(server, server.managementToken, 'GET', `/clients/${id}`, undefined, 200)).toMatchObject({ name: 'Tessera CLI', token_endpoint_auth_method: 'none' });
    });

    it('gives a member a Management API token with member scopes only, through a loopback redirect on any port', async () => {
      const { tokens, consentShown } = await signedIn(member);
      // RFC 8252 §8.6: a native client's request is always confirmed by the user.
      expect(consentShown).toBe(true);
      const claims = decodeJwt(tokens.access_token);
      expect(claims.aud).toBe(MANAGEMENT_AUDIENCE);
      expect(claims.client_id).toBe(cliClientId(organizationId));
      expect(claims.org_id).toBe(organizationId);
      expect(sorted(claims.scope as string)).toEqual([...ROLE_SCOPES.member].sort());
      expect(tokens.refresh_token).toBeTruthy();

      // PAT self-service: the member lists and issues their own tokens, and nothing else.
      expect((await api(server, tokens.access_token, 'GET', '/tokens')).status).toBe(200);
      const pat = await expectApi(server, tokens.access_token, 'POST', '/tokens', { type: 'pat', name: 'laptop', scopes: ['tokens:read'], resources: [MANAGEMENT_AUDIENCE], expires_in: 3600 }, 201);
      expect(pat.owner).toMatchObject({ type: 'user', name: member.username });
      const users = await api(server, tokens.access_token, 'GET', '/users');
      expect(users.status).toBe(403);
      expect(users.body.required_scope).toBe('users:read');
    });

    it('gives an admin the admin scopes, which reach further than a member\'s but not organization:write', async () => {
      const { tokens } = await signedIn(admin);
      const scopes = sorted(decodeJwt(tokens.access_token).scope as string);
      expect(scopes).toEqual([...ROLE_SCOPES.admin].sort());
      expect(scopes).not.toContain('organization:write');
      expect((await api(server, tokens.access_token, 'GET', '/users')).status).toBe(200);
      expect((await api(server, tokens.access_token, 'GET', '/organization')).status).toBe(200);
      expect((await api(server, tokens.access_token, 'PATCH', '/organization', { name: 'renamed' })).status).toBe(403);
    });

    it('lets a user ask for fewer scopes than their role allows', async () => {
      const { tokens } = await signedIn(admin, cli, { scope: 'openid users:read' });
      expect(decodeJwt(tokens.access_token).scope).toBe('users:read');
      expect((await api(server, tokens.access_token, 'GET', '/clients')).status).toBe(403);
    });

    it('accepts the IPv6 loopback address on any port too', async () => {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(cli, {
        redirect_uri: `http://[::1]:${await freePort()}/callback`,
        scope: 'openid tokens:read',
        resource: MANAGEMENT_AUDIENCE,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
      });
      const { callback } = await signIn(browserless(server), url.href, member.username, member.password);
      expect(callback.hostname).toBe('[::1]');
      const tokens = await client.authorizationCodeGrant(cli, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: MANAGEMENT_AUDIENCE });
      expect(decodeJwt(tokens.access_token).scope).toBe('tokens:read');
    });

    it('refuses every other redirect URI with an error page, never a redirect', async () => {
      const port = await freePort();
      for (const redirectUri of [
        `https://evil.example.test/callback`,
        `http://evil.example.test:${port}/callback`,
        `http://localhost:${port}/callback`,
        `http://127.0.0.1:${port}/other`,
        `http://127.0.0.1:${port}/callback/x`,
        `http://127.1.2.3:${port}/callback`,
      ]) {
        const request = await authorization(cli, { redirect_uri: redirectUri });
        const response = await browserless(server).request(request.url.href);
        expect(response.status, redirectUri).toBe(400);
        expect(response.headers.get('location'), redirectUri).toBeNull();
        expect(await response.text()).toMatch(/redirect_uri/);
      }
    });

    it('requires PKCE with S256', async () => {
      const request = await authorization(cli, { code_challenge_method: 'plain' });
      const response = await browserless(server).request(request.url.href);
      expect(response.status).toBe(303);
      expect(new URL(response.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
      const url = new URL(request.url);
      url.searchParams.delete('code_challenge');
      url.searchParams.delete('code_challenge_method');
      const without = await browserless(server).request(url.href);
      expect(new URL(without.headers.get('location')!).searchParams.get('error_description')).toMatch(/PKCE/i);
    });

    it('keeps exact redirect URI matching for every other client, whatever the loopback port', async () => {
      const web = await client.discovery(new URL(server.url), 'web-public', undefined, client.None(), options);
      const verifier = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(web, {
        // Registered: http://127.0.0.1:8181/callback.
        redirect_uri: 'http://127.0.0.1:8182/callback',
        scope: 'openid',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const response = await browserless(server).request(url.href);
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();

      // Nor can a client registered through RFC 7591 make itself native to get any port.
      const iat = await expectApi(server, server.managementToken, 'POST', '/initial-access-tokens', {}, 201);
      const registration = await fetch(`${server.url}/reg`, {
        method: 'POST',
        headers: { authorization: `Bearer ${iat.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ application_type: 'native', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'] }),
      });
      expect(registration.status).toBe(400);
      expect(await registration.json()).toMatchObject({ error: 'invalid_client_metadata', error_description: expect.stringMatching(/tessera-cli/) });
    });

    it('rotates refresh tokens, answers a reuse within the grace window, and revokes the family after it', async () => {
      const { tokens } = await signedIn(member);
      const first = await client.refreshTokenGrant(cli, tokens.refresh_token!, { resource: MANAGEMENT_AUDIENCE });
      expect(first.refresh_token).toBeTruthy();
      expect(first.refresh_token).not.toBe(tokens.refresh_token);
      expect(sorted(decodeJwt(first.access_token).scope as string)).toEqual([...ROLE_SCOPES.member].sort());
      expect((await api(server, first.access_token, 'GET', '/tokens')).status).toBe(200);

      const again = await client.refreshTokenGrant(cli, tokens.refresh_token!, { resource: MANAGEMENT_AUDIENCE });
      expect(again.refresh_token).toBe(first.refresh_token);

      clock.advance(6_000); // past refresh_reuse_grace_seconds (5 s by default)
      expect(await oauthError(client.refreshTokenGrant(cli, tokens.refresh_token!, { resource: MANAGEMENT_AUDIENCE }))).toBe('invalid_grant');
      // The whole family is dead: the newest refresh token too. (Its JWT access tokens live on
      // until their short `exp`, as every JWT does: docs/tokens.md, "Revocation".)
      expect(await oauthError(client.refreshTokenGrant(cli, first.refresh_token!, { resource: MANAGEMENT_AUDIENCE }))).toBe('invalid_grant');
    });

    it('narrows the next refreshed token when the user is demoted', async () => {
      const demoted = { username: 'dee', password: PASSWORD };
      const id = await addUser(server, demoted);
      await expectApi(server, server.managementToken, 'PATCH', `/users/${id}`, { role: 'admin' }, 200);
      const { tokens } = await signedIn(demoted);
      expect(sorted(decodeJwt(tokens.access_token).scope as string)).toEqual([...ROLE_SCOPES.admin].sort());
      await expectApi(server, server.managementToken, 'PATCH', `/users/${id}`, { role: 'member' }, 200);
      const refreshed = await client.refreshTokenGrant(cli, tokens.refresh_token!, { resource: MANAGEMENT_AUDIENCE });
      expect(sorted(decodeJwt(refreshed.access_token).scope as string)).toEqual([...ROLE_SCOPES.member].sort());
    });

    describe('between organizations', () => {
      it('creates the client with every organization, named after it', async () => {
        const org = await expectApi(server, other.managementToken, 'GET', '/organization', undefined, 200);
        expect(org.cli_client_id).toBe(cliClientId(other.id));
        const own = await expectApi(server, other.managementToken, 'GET', '/clients', undefined, 200);
        // A new organization's clients are its two built-in ones: tessera-cli and tessera-console.
        expect(own.items.map((c: { client_id: string }) => c.client_id).sort()).toEqual([cliClientId(other.id), `tessera-console.${other.id}`].sort());
        // Another organization's built-in client is not there for this one.
        expect((await api(server, other.managementToken, 'GET', `/clients/${cliClientId(organizationId)}`)).status).toBe(404);
        expect((await api(server, other.managementToken, 'DELETE', `/clients/${cliClientId(organizationId)}`)).status).toBe(404);
      });

      it('signs in only users of its own organization', async () => {
        const otherOwner = { username: other.owner.username, password: other.owner.password! };
        // Org B's owner at org A's tessera-cli: unknown there.
        await expect(signedIn(otherOwner)).rejects.toThrow(/login failed with 401/);

        // Signed in to org B's tessera-cli, the same browser gets nothing from org A's without
        // signing in again as a user of org A.
        const otherCli = await client.discovery(new URL(server.url), cliClientId(other.id), undefined, client.None(), options);
        const { tokens, b } = await signedIn(otherOwner, otherCli);
        const claims = decodeJwt(tokens.access_token);
        expect(claims.org_id).toBe(other.id);
        expect(sorted(claims.scope as string)).toEqual([...ROLE_SCOPES.owner].sort());
        expect((await expectApi(server, tokens.access_token, 'GET', '/organization', undefined, 200)).id).toBe(other.id);

        for (const prompt of [{}, { prompt: 'none' }] as Record<string, string>[]) {
          const request = await authorization(cli, prompt);
          const step = await b.follow(request.url.href);
          if (step.location) {
            // prompt=none: the answer is an error at the redirect URI, never a code.
            const answer = new URL(step.location);
            expect(answer.searchParams.get('code')).toBeNull();
            expect(answer.searchParams.get('error')).toBe('login_required');
          } else {
            expect(step.html).toContain(`action="${interactionPath(step.url)}/login"`);
          }
        }
      });
    });
  });
}
