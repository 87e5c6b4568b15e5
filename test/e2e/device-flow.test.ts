/**
 * The device authorization grant (RFC 8628) on every backend: openid-client starts it and polls
 * the token endpoint; the user's side is posted like a browser would (code page, confirmation,
 * the same sign-in and consent pages as every flow). Checked: discovery, a token for the API with
 * the user as subject, a refresh token when offline_access was granted, DPoP binding, a wrong
 * code, a cancelled request (access_denied), pages without script under the pages' CSP,
 * verification_uri_complete opening the code page with the code filled in, and the polling rules
 * (RFC 8628 §3.5, src/oidc/device-polling.ts): `slow_down` for a poll sooner than the interval,
 * which then grows by 5 s, on the server's injected clock; polls at the interval do not spend the
 * failure budget of config `rateLimits.tokenFailures`, wrong device codes do.
 */
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { pollStateKey } from '../../src/oidc/device-polling.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { ORDERS, seedWith } from '../helpers/exchange.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { approveDeviceCode, browserless, engineForm, oauthError, SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';
import { containing, storedText } from '../helpers/stored-text.js';
import type { Browserless } from '../helpers/sign-in.js';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const TV = { client_id: 'tv-app', name: 'Living-room TV', grant_types: [DEVICE_GRANT, 'refresh_token'], token_endpoint_auth_method: 'none', scopes: ['openid', 'offline_access', 'orders:read'], resources: [ORDERS] };
/** A second device client, whose failure budget the failure-limit test may spend without touching TV's. */
const KIOSK = { ...TV, client_id: 'kiosk-app', name: 'Lobby kiosk' };
/** A third, for presenting another client's device code. */
const SCREEN = { ...TV, client_id: 'hall-screen', name: 'Hall screen' };
/** Config `rateLimits.tokenFailures` for this file: small enough to reach, far below the polls one sign-in makes. */
const FAILURE_BUDGET = 10;

for (const backend of backends) {
  describe(`device authorization grant on ${backend.name}`, () => {
    let server: TestServer;
    let tv: client.Configuration;
    // The server's clock: polling intervals are measured on it, so the tests move it instead of waiting.
    const clock = createTestClock();

    beforeAll(async () => {
      server = await startTestServer(backend.name, {
        clock,
        overrides: { ...seedWith(TV, KIOSK, SCREEN), rateLimits: { tokenFailures: { points: FAILURE_BUDGET, durationSeconds: 600 } } },
      });
      tv = await client.discovery(new URL(server.url), TV.client_id, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    /**
     * The user's side: enter the code (or, with `complete`, open verification_uri_complete and
     * submit the code it filled in), confirm (or cancel), sign in, consent. Returns the last page.
     */
    async function approve(b: Browserless, userCode: string, options: { cancel?: boolean; complete?: string } = {}) {
      const input = await b.follow(options.complete ?? '/device');
      expect(input.response.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(input.html).not.toContain('<script');
      const shown = /<input [^>]*id="user_code"[^>]*>/.exec(input.html!)![0];
      const typed = options.complete ? /\svalue="([^"]*)"/.exec(shown)![1]! : userCode;
      return approveDeviceCode(b, input.html!, typed, server.bootstrap.admin, { cancel: options.cancel, checkConfirmation: (html) => expect(html).toContain(TV.name) });
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
      // RFC 8628 §3.2: the interval is said, not left to the client's default.
      expect(started.interval).toBe(5);
      // Before the user acts, the token endpoint says authorization_pending (RFC 8628 §3.5).
      const pending = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: started.device_code, client_id: TV.client_id }) });
      expect((await pending.json()).error).toBe('authorization_pending');
      // verification_uri_complete opens Tessera's code page (no script) with the code in its
      // field; submitted as it stands, it leads to the confirmation like a typed code.
      const complete = await browserless(server).follow(started.verification_uri_complete!);
      expect(complete.html).toMatch(new RegExp(`<input [^>]*id="user_code"[^>]*value="${started.user_code}"`));
      expect(complete.html).toContain('Connect a device');
      const done = await approve(browserless(server), started.user_code, { complete: started.verification_uri_complete! });
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

    it('shows a code from verification_uri_complete as text, whatever it holds', async () => {
      const hostile = '"><script>alert(1)</script>';
      const page = await browserless(server).follow(`/device?user_code=${encodeURIComponent(hostile)}`);
      expect(page.response.status).toBe(200);
      expect(page.html).not.toContain('<script');
      expect(page.html).toContain('value="&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;"');
      // Too long to be a code: the page asks for one, with an empty field.
      const long = await browserless(server).follow(`/device?user_code=${'B'.repeat(200)}`);
      expect(long.html).toContain('Connect a device');
      expect(long.html).not.toContain('B'.repeat(200));
    });

    /** One poll of the token endpoint, as a device sends it: the status and the error, if any. */
    async function poll(deviceCode: string, clientId = TV.client_id) {
      const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }) });
      const body = (await response.json()) as { error?: string; access_token?: string };
      return { status: response.status, error: body.error, body, cacheControl: response.headers.get('cache-control') };
    }

    it('answers slow_down to a poll sooner than the interval, and adds 5 s to the interval for every later poll (RFC 8628 §3.5)', async () => {
      const started = await client.initiateDeviceAuthorization(tv, { scope: 'orders:read', resource: ORDERS });
      expect(started.interval).toBe(5);
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'authorization_pending' });
      // Back to back: too soon.
      const tooSoon = await poll(started.device_code);
      expect(tooSoon).toMatchObject({ status: 400, error: 'slow_down', cacheControl: 'no-store' });
      // The interval is 10 s now: a poll at the old 5 s is still too soon, and makes it 15 s.
      clock.advance(5_000);
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'slow_down' });
      clock.advance(10_000);
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'slow_down' });
      // 20 s from then (the interval after that slow_down) is on time, and the interval stays.
      clock.advance(20_000);
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'authorization_pending' });
      clock.advance(19_999);
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'slow_down' });
      clock.advance(25_000);
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'authorization_pending' });

      // The state is kept under the code's digest, in the cache store, and holds no code.
      const key = pollStateKey(started.device_code);
      expect(key).not.toContain(started.device_code);
      expect(JSON.parse((await server.tessera.cache.get(key))!)).toMatchObject({ interval: 25 });
      const stored = await storedText({ db: server.tessera.db, redisUrl: server.env.REDIS_URL, redisPrefix: server.redisPrefix });
      if (server.env.REDIS_URL) expect(stored.redis.some((entry) => entry.includes(key))).toBe(true);
      expect(containing(stored, { device_code: started.device_code })).toEqual([]);

      // Another device's code keeps its own interval.
      const other = await client.initiateDeviceAuthorization(tv, { scope: 'orders:read', resource: ORDERS });
      expect(await poll(other.device_code)).toMatchObject({ error: 'authorization_pending' });
      clock.advance(5_000);
      expect(await poll(other.device_code)).toMatchObject({ error: 'authorization_pending' });

      // Once approved, the next poll gets the tokens, too soon or not; the state goes with the code.
      await approve(browserless(server), started.user_code);
      const issued = await poll(started.device_code);
      expect(issued.status).toBe(200);
      expect(issued.body.access_token).toBeTruthy();
      expect(await server.tessera.cache.get(key)).toBeNull();
      expect(await poll(started.device_code)).toMatchObject({ status: 400, error: 'invalid_grant' });
    });

    it('a code polled by another client is that client’s wrong code: invalid_grant, never slow_down', async () => {
      const started = await client.initiateDeviceAuthorization(tv, { scope: 'orders:read', resource: ORDERS });
      expect(await poll(started.device_code)).toMatchObject({ error: 'authorization_pending' });
      expect(await poll(started.device_code, 'no-such-client')).toMatchObject({ status: 401, error: 'invalid_client' });
      expect(await poll(started.device_code, SCREEN.client_id)).toMatchObject({ status: 400, error: 'invalid_grant' });
      // Neither reset the device's pacing.
      expect(await poll(started.device_code)).toMatchObject({ error: 'slow_down' });
    });

    it('does not count authorization_pending or slow_down against config rateLimits.tokenFailures; wrong device codes count', async () => {
      const kiosk = await client.discovery(new URL(server.url), KIOSK.client_id, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const started = await client.initiateDeviceAuthorization(kiosk, { scope: 'orders:read', resource: ORDERS });
      // Four times the budget of polls at the interval, a few too soon among them.
      let interval = started.interval!;
      const answers: string[] = [];
      for (let i = 0; i < 4 * FAILURE_BUDGET; i += 1) {
        const { error } = await poll(started.device_code, KIOSK.client_id);
        answers.push(error!);
        if (i % 10 === 9) {
          expect(await poll(started.device_code, KIOSK.client_id)).toMatchObject({ status: 400, error: 'slow_down' });
          interval += 5;
        }
        clock.advance(interval * 1000);
      }
      expect(new Set(answers)).toEqual(new Set(['authorization_pending']));
      // The budget is whole: that many wrong codes are answered, and only then is this address shut out.
      for (let i = 0; i < FAILURE_BUDGET; i += 1) expect(await poll(`wrong-${i}`, KIOSK.client_id)).toMatchObject({ status: 400, error: 'invalid_grant' });
      let last = await poll('wrong-last', KIOSK.client_id);
      for (let i = 0; i < 3 && last.status !== 429; i += 1) last = await poll(`wrong-more-${i}`, KIOSK.client_id);
      expect(last.status).toBe(429);
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
