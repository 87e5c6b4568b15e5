/**
 * The device authorization grant (RFC 8628) on every backend: openid-client starts it and polls
 * the token endpoint; the user's side is posted like a browser would (code page, confirmation,
 * the same sign-in and consent pages as every flow). Checked: discovery, a token for the API with
 * the user as subject, a refresh token when offline_access was granted, DPoP binding, a wrong
 * code, a cancelled request (access_denied), pages without script under the pages' CSP.
 */
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { ORDERS, seedWith } from '../helpers/exchange.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { browserless, hiddenField, interactionPath, oauthError, SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';
import { containing, storedText } from '../helpers/stored-text.js';
import type { Browserless } from '../helpers/sign-in.js';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const TV = { client_id: 'tv-app', name: 'Living-room TV', grant_types: [DEVICE_GRANT, 'refresh_token'], token_endpoint_auth_method: 'none', scopes: ['openid', 'offline_access', 'orders:read'], resources: [ORDERS] };

/** The engine's hidden form on a device page: its action and hidden fields (CSRF; on the confirmation also the code and `confirm`). */
function engineForm(html: string, id: string): { action: string; fields: Record<string, string> } {
  const start = html.indexOf(`<form id="${id}"`);
  if (start < 0) throw new Error(`no form ${id} in:\n${html.slice(0, 800)}`);
  const form = html.slice(start, html.indexOf('</form>', start));
  const fields = Object.fromEntries([...form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  return { action: /action="([^"]+)"/.exec(form)![1]!, fields };
}

for (const backend of backends) {
  describe(`device authorization grant on ${backend.name}`, () => {
    let server: TestServer;
    let tv: client.Configuration;

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: seedWith(TV) });
      tv = await client.discovery(new URL(server.url), TV.client_id, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    /** The user's side: enter the code, confirm (or cancel), sign in, consent. Returns the last page. */
    async function approve(b: Browserless, userCode: string, options: { cancel?: boolean } = {}) {
      const input = await b.follow('/device');
      expect(input.response.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(input.html).not.toContain('<script');
      const codeForm = engineForm(input.html!, 'op.deviceInputForm');
      const confirmPage = await b.request(codeForm.action, { form: { ...codeForm.fields, user_code: userCode } });
      const confirmHtml = await confirmPage.text();
      expect(confirmHtml).toContain(TV.name);
      const confirm = engineForm(confirmHtml, 'op.deviceConfirmForm');
      const confirmed = await b.request(confirm.action, { form: { ...confirm.fields, ...(options.cancel ? { abort: 'yes' } : {}) } });
      if (options.cancel) return confirmed.text();
      let step = await b.follow(confirmed.headers.get('location')!);
      for (let pages = 0; pages < 4 && step.html && step.url.includes('/interaction/'); pages++) {
        const path = interactionPath(step.url);
        const csrf = hiddenField(step.html, 'csrf');
        const response = step.html.includes(`action="${path}/login"`)
          ? await b.request(`${path}/login`, { form: { csrf, username: server.bootstrap.admin.username, password: server.bootstrap.admin.password } })
          : await b.request(`${path}/confirm`, { form: { csrf, decision: 'allow' } });
        step = await b.follow(response.headers.get('location')!);
      }
      return step.html!;
    }

    it('advertises the device authorization endpoint and grant', () => {
      const metadata = tv.serverMetadata();
      expect(metadata.device_authorization_endpoint).toBe(`${server.url}/device/auth`);
      expect(metadata.grant_types_supported).toContain(DEVICE_GRANT);
    });

    it('signs a user in on another device: a token for the API with the user as subject, and a refresh token', async () => {
      const started = await client.initiateDeviceAuthorization(tv, { scope: 'openid offline_access orders:read', resource: ORDERS });
      expect(started.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      expect(started.verification_uri).toBe(`${server.url}/device`);
      // Before the user acts, the token endpoint says authorization_pending (RFC 8628 §3.5).
      const pending = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: started.device_code, client_id: TV.client_id }) });
      expect((await pending.json()).error).toBe('authorization_pending');
      // verification_uri_complete fills the code in for the user.
      const complete = await browserless(server).follow(started.verification_uri_complete!);
      expect(complete.html).toContain(`value="${started.user_code}"`);
      const done = await approve(browserless(server), started.user_code);
      expect(done).toContain('signed in');
      const tokens = await client.pollDeviceAuthorizationGrant(tv, { ...started, interval: 0 });
      expect(tokens.refresh_token).toBeTruthy();
      const claims = decodeJwt(tokens.access_token);
      expect(claims).toMatchObject({ aud: ORDERS, client_id: TV.client_id, scope: 'orders:read' });
      expect(claims.sub).toMatch(/^usr_/);
      // The device code is used up.
      expect(await oauthError(client.pollDeviceAuthorizationGrant(tv, { ...started, interval: 0 }))).toBe('invalid_grant');
      // No code at rest (docs/security.md, "No token at rest"): the device code and the user code
      // only as digests (the user-code index holds the device code sealed with the KEK).
      const stored = await storedText({ db: server.tessera.db, redisUrl: server.env.REDIS_URL, redisPrefix: server.redisPrefix });
      expect(containing(stored, { device_code: started.device_code, user_code: started.user_code, user_code_normalized: started.user_code.replace('-', ''), refresh_token: tokens.refresh_token! })).toEqual([]);
    });

    it('binds the device’s tokens with DPoP when it sends a proof', async () => {
      const DPoP = client.getDPoPHandle(tv, await client.randomDPoPKeyPair());
      const started = await client.initiateDeviceAuthorization(tv, { scope: 'orders:read', resource: ORDERS });
      await approve(browserless(server), started.user_code);
      const tokens = await client.pollDeviceAuthorizationGrant(tv, { ...started, interval: 0 }, undefined, { DPoP });
      expect(tokens.token_type).toBe('dpop');
      expect(decodeJwt(tokens.access_token).cnf).toBeDefined();
    });

    it('refuses a wrong code on the page, and a cancelled request at the token endpoint (access_denied)', async () => {
      const b = browserless(server);
      const input = await b.follow('/device');
      const form = engineForm(input.html!, 'op.deviceInputForm');
      const wrong = await b.request(form.action, { form: { ...form.fields, user_code: 'BCDF-GHJK' } });
      const html = await wrong.text();
      expect(html).toContain('role="alert"');
      expect(html).toContain('not right');

      const started = await client.initiateDeviceAuthorization(tv, { scope: 'orders:read', resource: ORDERS });
      await approve(browserless(server), started.user_code, { cancel: true });
      expect(await oauthError(client.pollDeviceAuthorizationGrant(tv, { ...started, interval: 0 }))).toBe('access_denied');
    });

    it('slows down guessing: past config rateLimits.deviceCode (20 a minute per address) the page answers 429 with Retry-After', async () => {
      const b = browserless(server);
      const input = await b.follow('/device');
      const form = engineForm(input.html!, 'op.deviceInputForm');
      let last: Response | undefined;
      for (let i = 0; i < 25; i += 1) {
        last = await b.request(form.action, { form: { ...form.fields, user_code: 'BCDF-GHJK' } });
        if (last.status === 429) break;
        await last.text();
      }
      expect(last!.status).toBe(429);
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await last!.text()).toContain('Too many attempts');
    });
  });
}
