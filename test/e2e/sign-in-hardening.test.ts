/**
 * Two rules of interactive sign-in that a spelling or a scheme could slip past, on every backend:
 * - every spelling of a username that reaches an account counts against that account's one
 *   throttle counter (src/storage/user-repository.ts usernameKey; src/domain/login-throttle.ts).
 *   The spelling that used to get through: 'İ' (U+0130), which PostgreSQL's lower() — on this
 *   machine's PostgreSQL (C.UTF-8) and on PGlite alike — folds to 'i', and JavaScript's
 *   toLowerCase() to 'i' + U+0307, so the lookup found the account and the throttle counted
 *   another name;
 * - RFC 7591 registration refuses http post-logout redirect URIs off loopback, like redirect URIs.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { createResourceServer, expectApi } from '../helpers/management.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, CALLBACK, hiddenField, interactionPath, POST_LOGOUT, SERVER_START_TIMEOUT_MS, SIGN_IN_SEED } from '../helpers/sign-in.js';

const PASSWORD = 'correct horse battery staple';

for (const backend of backends) {
  describe(`sign-in hardening on ${backend.name}`, () => {
    let server: TestServer;

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: SIGN_IN_SEED });
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    /** The login form of a fresh authorization request of the seeded public client. */
    async function loginForm() {
      const b = browserless(server);
      const challenge = randomBytes(32).toString('base64url');
      const page = await b.follow(`/auth?${new URLSearchParams({ client_id: 'web-public', response_type: 'code', redirect_uri: CALLBACK, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', state: 's' })}`);
      const path = interactionPath(page.url);
      const csrf = hiddenField(page.html!, 'csrf');
      return async (username: string, password: string) => (await b.request(`${path}/login`, { form: { csrf, username, password } })).status;
    }

    it('gives no spelling of a username fresh attempts: a locked account stays locked however it is typed', async () => {
      await addUser(server, { username: 'irene', password: PASSWORD });
      const limit = server.tessera.loginThrottle.limits.userFailures;
      const attempt = await loginForm();
      const statuses: number[] = [];
      for (let i = 0; i < limit; i++) statuses.push(await attempt('irene', `guess ${i}`));
      expect(statuses.at(-1)).toBe(429);

      // The right password, typed under another spelling, must not get in while the account is locked.
      expect(await attempt('IRENE', PASSWORD)).toBe(429);
      const dotted = await attempt('İRENE', PASSWORD);
      expect(dotted).not.toBe(303);
      // It is not a spelling of 'irene' at all (usernames are ASCII): no account, one answer for all.
      expect(dotted).toBe(401);
      const users = server.tessera.repos.users;
      expect(await users.findByUsername(server.bootstrap.organization_id, 'İRENE')).toBeUndefined();
      expect((await users.findByUsername(server.bootstrap.organization_id, ' IRENE '))?.username).toBe('irene');
    });

    it('counts failures typed in any case against the one account they reach', async () => {
      await addUser(server, { username: 'Iris.Lind', password: PASSWORD });
      const limit = server.tessera.loginThrottle.limits.userFailures;
      const attempt = await loginForm();
      const spellings = ['IRIS.LIND', 'iris.lind', 'Iris.Lind', 'iRIS.lIND', 'Ｉｒｉｓ.Ｌｉｎｄ'];
      const statuses: number[] = [];
      for (let i = 0; i < limit; i++) statuses.push(await attempt(spellings[i % spellings.length]!, `guess ${i}`));
      expect(statuses.slice(0, -1).every((s) => s === 401)).toBe(true);
      expect(statuses.at(-1)).toBe(429);
      expect(await attempt('iris.lind', PASSWORD)).toBe(429);
      const lockouts = await server.tessera.loginThrottle.listLockouts(server.bootstrap.organization_id);
      expect(lockouts.filter((l) => l.username?.toLowerCase() === 'iris.lind' || l.username === 'Ｉｒｉｓ.Ｌｉｎｄ')).toHaveLength(1);
    });

    it('refuses http post-logout redirect URIs off loopback at RFC 7591 registration, and keeps https and loopback ones', async () => {
      const rs = await createResourceServer(server, server.managementToken);
      const iat = await expectApi(server, server.managementToken, 'POST', '/initial-access-tokens', { expires_in: 600, scopes: ['openid'], resources: [rs.identifier] }, 201);
      const register = async (post_logout_redirect_uris: string[]) => {
        const response = await fetch(`${server.url}/reg`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${iat.token}` },
          body: JSON.stringify({ grant_types: ['authorization_code'], redirect_uris: ['https://rp.example.test/cb'], post_logout_redirect_uris }),
        });
        return { status: response.status, body: await response.json() };
      };
      const plain = await register(['https://rp.example.test/bye', 'http://rp.example.test/bye']);
      expect(plain.status).toBe(400);
      expect(plain.body.error).toBe('invalid_client_metadata');
      expect(plain.body.error_description).toMatch(/^post_logout_redirect_uris\.1: http is allowed on loopback addresses only/);
      expect((await register(['https://rp.example.test/bye#fragment'])).body.error_description).toMatch(/^post_logout_redirect_uris\.0: must not contain a fragment/);

      const fine = await register(['https://rp.example.test/bye', POST_LOGOUT]);
      expect(fine.status).toBe(201);
      expect(fine.body.post_logout_redirect_uris).toEqual(['https://rp.example.test/bye', POST_LOGOUT]);

      // RFC 7592 updates follow the same rule.
      const update = await fetch(`${server.url}/reg/${fine.body.client_id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${fine.body.registration_access_token}` },
        body: JSON.stringify({ client_id: fine.body.client_id, grant_types: ['authorization_code'], redirect_uris: ['https://rp.example.test/cb'], post_logout_redirect_uris: ['http://rp.example.test/bye'] }),
      });
      expect(update.status).toBe(400);
      expect((await update.json()).error).toBe('invalid_client_metadata');
    });
  });
}
